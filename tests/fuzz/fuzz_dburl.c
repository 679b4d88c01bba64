/*
 * fuzz_dburl.c — database URLs (--db, RATCHET_DB, rt_enqueue's db_url):
 * which backend takes one, the SQLite URL parser, the PostgreSQL check
 * (our fast_takeover option, then libpq's own parser; nothing connects)
 * and the password masking of url_display and of the messages.
 *
 * Invariants: at most one backend takes a URL; a URL none takes is refused
 * with a message naming only its scheme; a SQLite URL gives a path and
 * options in range, or one line of error. For PostgreSQL the secrets are
 * what libpq itself reads as password and sslpassword: read back from the
 * masked text the same way, each is absent or "***"; and neither the
 * masked text nor any error message shows 4 characters of a secret in a
 * row (with care not to cry wolf: see fuzz_not_in). On errors the secret
 * is a URI's user:PASSWORD@ as libpq reads it. A message is left as it is by masking again (it echoes nothing the
 * masking would hide).
 * Input: the URL.
 */
#define _POSIX_C_SOURCE 200809L
#include <libpq-fe.h>
#include <strings.h>

#include "fuzz.h"
#include "service/service.h"

static const char *const fuzz_secret_keys[] = {"password", "sslpassword", NULL};

/* libpq's value of key in conninfo (malloc'd; NULL if none or malformed). */
static char *fuzz_pq_value(const char *conninfo, const char *key, bool *parsed) {
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    PQfreemem(perr);
    *parsed = opts != NULL;
    char *v = NULL;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, key) && o->val) v = strdup(o->val);
    PQconninfoFree(opts);
    return v;
}

static int fuzz_count(const char *hay, const char *needle) {
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = hay; len && (p = strstr(p, needle)) != NULL; p += len) n++;
    return n;
}

/* A URI's user:PASSWORD@ as libpq reads it (malloc'd, raw), or NULL. */
static char *fuzz_uri_password(const char *given) {
    const char *p = strstr(given, "://");
    if (strncmp(given, "postgresql://", 13) && strncmp(given, "postgres://", 11)) return NULL;
    p += 3;
    size_t span = strcspn(p, "@/");
    if (p[span] != '@') return NULL;
    const char *colon = memchr(p, ':', span);
    return colon ? strndup(colon + 1, (size_t)(p + span - colon - 1)) : NULL;
}

static void fuzz_one_line(const char *what, const char *msg, const char *given) {
    FUZZ_CHECK(*msg, "'%s': empty %s", given, what);
    for (const char *p = msg; *p; p++)
        FUZZ_CHECK(*p != '\n' && *p != '\r', "'%s': %s '%s' is not one line", given, what,
                   msg);
}

/* Where a secret's text can start in given: after a "://" (a URI's
 * user:PASSWORD@ or query), or a "password" keyword (any case). */
static const char *fuzz_secret_start(const char *given) {
    const char *from = given + strlen(given), *p;
    if ((p = strstr(given, "://")) && p + 3 < from) from = p + 3;
    for (p = given; *p && p + 8 < from; p++)
        if (!strncasecmp(p, "password", 8)) from = p + 8;
    return from;
}

/*
 * No piece of the secret (4 characters) that the given text holds once,
 * where a secret can be, is in text: a piece held elsewhere too (the same
 * bytes in the host name, say) proves nothing, and in a message neither does a piece that could be
 * wording (letters, space, ':', '"', '-', '_': the secret "token:" and
 * libpq's "invalid percent-encoded token").
 */
static void fuzz_not_in(const char *what, const char *text, const char *secret,
                        const char *given, bool raw) {
    /* A secret libpq decoded from escapes (%40, \ ) reads differently from
     * its text, and its pieces may then be another field's: the re-parse
     * check covers those. A raw secret is text of given itself. */
    const char *from = fuzz_secret_start(given);
    size_t n = secret && (raw || !strpbrk(from, "%\\")) ? strlen(secret) : 0;
    bool message = strcmp(what, "display") != 0;
    for (size_t i = 0; i + 4 <= n; i++) {
        char piece[5];
        memcpy(piece, secret + i, 4);
        piece[4] = '\0';
        if (message && strspn(piece, "abcdefghijklmnopqrstuvwxyz"
                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ :\"-_") == 4)
            continue;
        if (strchr(piece, '*')) continue; /* the mask's own "***" */
        const char *at = strstr(given, piece);
        if (at && at >= from && fuzz_count(given, piece) == 1)
            FUZZ_CHECK(!strstr(text, piece), "'%s': %s '%s' shows '%s' of the password '%s'",
                       given, what, text, piece, secret);
    }
}

/* text shows nothing the masking would hide (it is masked already). */
static void fuzz_masked(const char *what, const char *text, const char *given) {
    char *again = rt__mask_secrets(text);
    FUZZ_CHECK(!strcmp(again, text), "'%s': %s '%s' is masked again as '%s'", given, what,
               text, again);
    free(again);
}

static void fuzz_pg(const char *given) {
    char err[RT_ERRMSG_MAX] = "", *conninfo = NULL;
    bool fast;
    int rc = rt__pg_parse_url(given, &conninfo, &fast, err, sizeof err);
    char *display = rt__mask_secrets(given);
    char *uri_pw = fuzz_uri_password(given);
    if (rc != RT_OK) {
        FUZZ_CHECK(rc == RT_INVALID && !conninfo, "'%s': rc %d", given, rc);
        fuzz_one_line("message", err, given);
        fuzz_masked("message", err, given);
        fuzz_not_in("message", err, uri_pw, given, true);
        fuzz_not_in("display", display, uri_pw, given, true);
    }
    for (int k = 0; rc == RT_OK && fuzz_secret_keys[k]; k++) {
        bool parsed;
        char *secret = fuzz_pq_value(conninfo, fuzz_secret_keys[k], &parsed);
        FUZZ_CHECK(parsed, "'%s': checked, yet libpq refuses '%s'", given, conninfo);
        if (!secret || !*secret) {
            free(secret);
            continue;
        }
        char derr[RT_ERRMSG_MAX], *dconn = NULL;
        bool dfast;
        if (rt__pg_parse_url(display, &dconn, &dfast, derr, sizeof derr) == RT_OK) {
            char *shown = fuzz_pq_value(dconn, fuzz_secret_keys[k], &parsed);
            FUZZ_CHECK(!shown || !strcmp(shown, "***"),
                       "'%s': display '%s' gives %s '%s' (the secret: '%s')", given, display,
                       fuzz_secret_keys[k], shown, secret);
            free(shown);
        } else {
            fuzz_not_in("message about the display", derr, secret, given, false);
        }
        fuzz_not_in("display", display, secret, given, false);
        free(dconn);
        free(secret);
    }
    free(uri_pw);
    free(display);
    free(conninfo);
}

static void fuzz_sqlite(const char *url) {
    char err[RT_ERRMSG_MAX] = "", *path = NULL;
    int sync = -1, busy = -1;
    int rc = rt__sqlite_parse_url(url, &path, &sync, &busy, err, sizeof err);
    if (rc == RT_OK) {
        FUZZ_CHECK(path && *path && !strchr(path, '?'), "'%s': path '%s'", url, path);
        FUZZ_CHECK(sync >= 0 && sync <= 2 && busy >= 0 && busy <= 3600000,
                   "'%s': sync %d busy %d", url, sync, busy);
    } else {
        FUZZ_CHECK(rc == RT_INVALID && !path && *err, "'%s': rc %d", url, rc);
    }
    free(path);
}

/* "unrecognised database URL ['SCHEME:...' ](use ...)": a scheme at most. */
static void fuzz_unrecognised(const char *url) {
    char err[RT_ERRMSG_MAX] = "";
    rt_store *s = (rt_store *)(void *)err;
    int rc = rt__store_open(url, &s, err, sizeof err);
    FUZZ_CHECK(rc == RT_INVALID && !s, "'%s': rc %d", url, rc);
    static const char prefix[] = "unrecognised database URL ";
    FUZZ_CHECK(!strncmp(err, prefix, sizeof prefix - 1), "'%s': message '%s'", url, err);
    const char *name = err + sizeof prefix - 1;
    if (*name != '\'') return;
    for (name++; strncmp(name, ":...'", 5); name++)
        FUZZ_CHECK((*name >= 'a' && *name <= 'z') || (*name >= 'A' && *name <= 'Z') ||
                       (*name >= '0' && *name <= '9') || (*name && strchr("+-.", *name)),
                   "'%s': message '%s' shows more than a scheme", url, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *url = fuzz_str(data, size);
    bool sqlite = rt__sqlite_ops.accepts(url), pg = rt__pg_ops.accepts(url);
    FUZZ_CHECK(!(sqlite && pg), "'%s': two backends take it", url);
    if (sqlite) fuzz_sqlite(url);
    if (pg) fuzz_pg(url);
    if (!sqlite && !pg) fuzz_unrecognised(url);
    /* Any text (libpq's messages are masked too): no crash, no leak. */
    free(rt__mask_secrets(url));
    free(url);
    return 0;
}
