/*
 * postgres.c — the PostgreSQL backend (libpq), for runs shared by replicas.
 *
 * URL: postgresql://... or postgres://... (libpq URI), or a libpq conninfo
 * string ("host=... dbname=..."). Our session defaults come before the URL
 * in PQconnectdbParams, so anything the URL says wins:
 *   application_name ratchet:<job>; TCP keepalives (10 s idle, 5 s interval,
 *   3 probes) and tcp_user_timeout 30 s, so a dead peer is noticed; and
 *   options "-c idle_in_transaction_session_timeout=60s -c lock_timeout=30s
 *   -c statement_timeout=0 -c tcp_keepalives_idle=10
 *   -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3", so a stalled
 *   holder cannot keep row locks for ever (the idle timeout only starts
 *   once the server answered all it was sent; a client cut off in the
 *   middle of a pipeline is found by the server's own keepalives, over
 *   TCP), a lock wait turns into a retryable RT_BUSY, and no statement is
 *   cut short unless the job asks (a URL's own options= replaces them all).
 *
 * Statements are prepared once per connection (PQprepare, parameter types
 * inferred by the server) and cached by SQL text. Parameters go as text,
 * blobs as binary bytea; results come back as text and are converted on
 * access (bytea from its hex form). A statement's result is fetched whole on
 * its first step; steps then walk its rows.
 *
 * pool_mode=transaction (our own URL option, taken out before libpq sees
 * the URL) says a transaction-pooling proxy (pgbouncer pool_mode=transaction)
 * stands between us and the server: each transaction may run on another
 * server session, so nothing may rely on session state. Statements then go
 * unnamed (Parse/Bind/Execute in one message batch, PQsendQueryParams: a
 * named one prepared on one server session is missing on the next, or
 * collides with another client's of the same name), no startup options are
 * sent (pgbouncer refuses them), and fast_takeover is off (a session
 * advisory lock stays on the pooled server session, not with the holder).
 *
 * Errors: after any failure the connection is judged by PQstatus, not by the
 * SQLSTATE (a backend killed by the server often reports none): CONNECTION_BAD
 * is RT_CONN, and rt__store_reconnect() makes a new session on the same
 * store. 40001/40P01/55P03 are RT_BUSY; 57014 during a stop is RT_STOPPED.
 * Any other SQLSTATE is RT_DBERR, marked refused (base.refused: the statement
 * itself is wrong, a step that meets it fails its run) unless its class
 * says the server is in trouble (pg_refused). Passwords never reach a message: every URL and libpq text shown passes
 * through rt__mask_secrets().
 *
 * The queue's batched claim is this backend's (pg_claim_sql): one
 * statement picks a due run FOR UPDATE SKIP LOCKED, inserts its lease row
 * and bumps its epoch, around the parts the core gives it.
 *
 * libpq is not linked: pq_loader.c loads it when a PostgreSQL URL is first
 * checked (rt__pg_parse_url, so also pg_open) or a connection wrapped.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/failpoint.h"
#include "store/pq_loader.h" /* libpq is dlopen()ed: every PQ* call goes through it */

/* PostgreSQL type OIDs (pg_type.h is a server header). */
enum {
    PG_BOOL = 16,
    PG_BYTEA = 17,
    PG_INT8 = 20,
    PG_INT2 = 21,
    PG_INT4 = 23,
    PG_OID = 26,
    PG_FLOAT4 = 700,
    PG_FLOAT8 = 701,
    PG_NUMERIC = 1700,
};

typedef struct pg_stmt {
    rt_stmt base;
    char *sql;
    const char *key_ptr;
    char name[24];      /* server-side prepared statement name */
    bool prepared;      /* on the current session */
    int nparams;
    char **values;      /* bound parameters: into buf, NULL = SQL NULL */
    int *lengths;
    int *formats;
    char **buf;         /* per parameter, kept from bind to bind (owned) */
    size_t *cap;
    PGresult *res;      /* result being walked, or NULL */
    int row;            /* current row in res (-1 before the first) */
    int nrows;
    unsigned char **blob; /* per column: decoded bytea of the current row */
    size_t *blob_len;
    int nblob;
} pg_stmt;

typedef struct pg_store {
    rt_store base;
    PGconn *conn;
    PGcancel *volatile cancel;
    char *url;          /* as given (may hold a password; never printed) */
    int64_t changes;
    pg_stmt **stmts;
    int nstmts, capstmts;
    unsigned next_name;
    bool begin_pending; /* BEGIN goes out with the next statement */
    /* Pipeline mode: commands sent whose results are not read yet. */
    bool piped;
    struct pg_sent {
        pg_stmt *stmt;        /* NULL for BEGIN and COMMIT */
        bool prepare;         /* the statement's Parse, not its execution */
        int64_t item;         /* the step's item it was sent for, or 0 */
    } *sent;
    int nsent, capsent;
    char *claim[2];     /* pg_claim_sql's texts, built on first use */
} pg_store;

static const char *pg_app_name = "ratchet";

void rt__store_set_label(const char *label) {
    static char buf[64];
    snprintf(buf, sizeof buf, "ratchet:%s", label);
    pg_app_name = buf;
}

static bool pg_accepts(const char *url) {
    if (!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11))
        return true;
    /* A conninfo string: key=value pairs, no scheme. */
    return strchr(url, '=') != NULL && strstr(url, "://") == NULL &&
           strncmp(url, "sqlite:", 7) != 0;
}

/* libpq's messages span lines, with tabs and double spaces: make one line
 * ("a\n\tb\n" -> "a; b"). */
static void pg_one_line(char *s) {
    char *w = s;
    bool sep = false;
    for (const char *p = s; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            sep = true;
        } else if ((*p == ' ' || *p == '\t') &&
                   (w == s || w[-1] == ' ' || sep)) {
            /* collapse */
        } else {
            if (sep && w != s) {
                if (w[-1] == ' ') w--;
                if (w[-1] != '.' && w[-1] != ';') *w++ = ';';
                *w++ = ' ';
            }
            sep = false;
            *w++ = *p == '\t' ? ' ' : *p;
        }
    }
    while (w > s && (w[-1] == ' ' || w[-1] == ';')) w--;
    *w = '\0';
}

/* Set errmsg from libpq's own message (masked, one line). */
static int pg_fail_native(pg_store *s, int rc, const char *what,
                          const char *native) {
    char *masked = rt__mask_secrets(native && *native ? native : "no detail");
    pg_one_line(masked);
    rt__store_fail(&s->base, rc, "postgres: %s%s%s", what ? what : "",
                   what ? ": " : "", masked);
    free(masked);
    return rc;
}

static bool pg_broken(rt_store *base) {
    pg_store *s = (pg_store *)base;
    return !s->conn || PQstatus(s->conn) == CONNECTION_BAD;
}

/*
 * An idle connection's news, without blocking: a terminated session's
 * FATAL and the EOF after it, or a shutting-down server's EOF, make libpq
 * mark the connection bad once read. Only on a connection with no query in
 * flight (a lease's, between its statements).
 */
static bool pg_watch(rt_store *base) {
    pg_store *s = (pg_store *)base;
    if (pg_broken(base)) return true;
    if (s->piped || s->base.in_tx) return false;
    for (int i = 0; i < 2; i++) { /* the message, then its EOF */
        struct pollfd p = {PQsocket(s->conn), POLLIN, 0};
        if (p.fd < 0 || poll(&p, 1, 0) <= 0) break;
        if (!PQconsumeInput(s->conn)) break;
    }
    return pg_broken(base);
}

/* A transaction-pooling proxy seems to be in the way: say what to do. */
static void pg_hint_pooler(pg_store *s) {
    size_t n = strlen(s->base.errmsg);
    snprintf(s->base.errmsg + n, sizeof s->base.errmsg - n, "%s",
             " (a transaction-pooling proxy such as pgbouncer in front of "
             "the server? add pool_mode=transaction to the database URL)");
}

/*
 * Did the server refuse the statement itself (a UNIQUE violation 23505, a
 * syntax error 42601, bad data 22xxx, a RAISE P0001, a statement timeout
 * 57014 ...)? Running it again gives the same answer. Not so the classes
 * of server trouble, which may pass: 53 insufficient resources (a full
 * disk, out of memory), 57P0x the server shutting down, 58 system (I/O)
 * errors, F0 configuration, XX internal errors, and an idle transaction
 * timed out (25P03, the session ends with it).
 */
static bool pg_refused(const char *state) {
    static const char *const trouble[] = {"53", "57P", "58", "F0", "XX",
                                          "25P03", NULL};
    for (const char *const *t = trouble; *t; t++)
        if (!strncmp(state, *t, strlen(*t))) return false;
    return true;
}

/* Map a failed result (or none) to an RT code with a message. */
static int pg_result_error(pg_store *s, PGresult *res) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                          : NULL;
    if (!msg) msg = PQerrorMessage(s->conn);
    if (pg_broken(&s->base)) {
        s->base.in_tx = 0;
        return pg_fail_native(s, RT_CONN, "connection lost", msg);
    }
    int rc = RT_DBERR;
    if (state) {
        if (!strcmp(state, "40001") || !strcmp(state, "40P01") ||
            !strcmp(state, "55P03"))
            rc = RT_BUSY;
        else if (!strcmp(state, "57014") && rt__store_stop_requested())
            rc = RT_STOPPED;
        else if (!strncmp(state, "08", 2))
            rc = RT_CONN;
        /* The server's disk is full: temporary, as on SQLite (exit 75). */
        s->base.disk_full |= !strcmp(state, "53100");
    }
    char what[16];
    snprintf(what, sizeof what, "%s", state ? state : "error");
    pg_fail_native(s, rc, what, msg);
    s->base.refused = rc == RT_DBERR && state && pg_refused(state);
    /* Our named statement missing (26000) or taken (42P05): another server
     * session answers than the one it was prepared on. */
    if (state && !s->base.pooled && strstr(msg, "\"rt_") &&
        (!strcmp(state, "26000") || !strcmp(state, "42P05")))
        pg_hint_pooler(s);
    return rc;
}

static void pg_notice(void *arg, const char *message) {
    (void)arg; /* NOTICEs ("relation exists, skipping") are not ours to show */
    (void)message;
}

/* Signals whose handlers use s->cancel are blocked while it changes. */
static void pg_swap_cancel(pg_store *s, PGcancel *fresh) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGALRM);
    sigprocmask(SIG_BLOCK, &block, &old);
    PGcancel *was = s->cancel;
    s->cancel = fresh;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (was) PQfreeCancel(was);
}

/* Connect s->url with our defaults; RT_OK, RT_INVALID or RT_CONN. */
static int pg_connect(pg_store *s) {
    const char *keys[] = {"application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "connect_timeout",
                          "options",
                          "dbname",
                          NULL};
    /* A pooler refuses startup options (pgbouncer: "unsupported startup
     * parameter: options"), and the session they would set is not ours:
     * behind one, the server's or the pooler's own timeouts apply. An
     * empty value is ignored by libpq. */
    const char *vals[] = {pg_app_name,
                          "1",
                          "10",
                          "5",
                          "3",
                          "30000",
                          "10",
                          s->base.pooled ? ""
                                    : "-c idle_in_transaction_session_timeout=60s "
                                      "-c lock_timeout=30s -c statement_timeout=0 "
                                      "-c tcp_keepalives_idle=10 "
                                      "-c tcp_keepalives_interval=5 "
                                      "-c tcp_keepalives_count=3",
                          s->url,
                          NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) return rt__store_fail(&s->base, RT_NOMEM, "out of memory");
    if (PQstatus(conn) != CONNECTION_OK) {
        s->conn = conn; /* for the message */
        pg_fail_native(s, RT_CONN, NULL, PQerrorMessage(conn));
        char keep[RT_ERRMSG_MAX];
        snprintf(keep, sizeof keep, "cannot connect to %s: %s",
                 s->base.url_display, s->base.errmsg + 10 /* "postgres: " */);
        memcpy(s->base.errmsg, keep, sizeof keep);
        if (!s->base.pooled && strstr(keep, "unsupported startup parameter"))
            pg_hint_pooler(s); /* pgbouncer refusing our options */
        PQfinish(conn);
        s->conn = NULL;
        /* A bad option value (sslmode=bogus, port=x) is configuration,
         * found only now: libpq words all of them "invalid ...". */
        return strstr(s->base.errmsg, "invalid ") ? RT_INVALID : RT_CONN;
    }
    PQsetNoticeProcessor(conn, pg_notice, NULL);
    s->conn = conn;
    pg_swap_cancel(s, PQgetCancel(conn));
    for (int i = 0; i < s->nstmts; i++) s->stmts[i]->prepared = false;
    return RT_OK;
}

static void pg_close(rt_store *base);

/*
 * Take our own option NAME=VALUE out of a URI query or a conninfo string
 * (libpq refuses keywords it does not know). Returns the URL without it
 * (malloc'd); *value is the option's value (malloc'd) or NULL if absent.
 */
static char *pg_take_option(const char *url, const char *name, char **value) {
    *value = NULL;
    size_t nlen = strlen(name);
    bool uri = strstr(url, "://") != NULL;
    for (const char *p = url; (p = strstr(p, name)) != NULL; p += nlen) {
        bool starts = uri ? (p > url && (p[-1] == '?' || p[-1] == '&'))
                          : (p == url || p[-1] == ' ' || p[-1] == '\t');
        const char *eq = p + nlen;
        while (!uri && *eq == ' ') eq++;
        if (!starts || *eq != '=') continue;
        const char *v = eq + 1;
        while (!uri && *v == ' ') v++;
        size_t vlen = strcspn(v, uri ? "&#" : " \t");
        *value = rt__xstrndup(v, vlen);
        const char *end = v + vlen;
        rt__buf b = {0};
        if (uri) {
            /* "?opt=v&x" -> "?x"; "&opt=v" -> ""; "?opt=v" -> "" */
            size_t keep = (size_t)(p - url);
            if (*end == '&') end++;
            else if (keep) keep--; /* drop the '?' or '&' before it */
            rt__buf_add(&b, url, keep);
        } else {
            rt__buf_add(&b, url, (size_t)(p - url));
        }
        rt__buf_puts(&b, end);
        return b.p;
    }
    return rt__xstrdup(url);
}

/*
 * libpq's parse errors quote the piece they stopped at, and that piece may
 * be (part of) a password: 'invalid percent-encoded token: "pa%zz"', or
 * 'missing "=" after "secret"' for an unquoted password with a space. Keep
 * the words; hide what is quoted, from the first quote to the last one
 * (a piece may hold quotes and line breaks), except libpq's own
 * one-character pieces ("=", ":", "/") before it, and the name of an
 * unknown option ('invalid connection option "passwrd"'), which the user
 * needs to see: a lower-case word given as a keyword of the conninfo.
 */
static bool pg_is_option_name(const char *p, size_t n, const char *url) {
    if (n == 0 || n > 40 || strspn(p, "abcdefghijklmnopqrstuvwxyz_") != n)
        return false;
    for (const char *k = strstr(url, "="); k; k = strstr(k + 1, "=")) {
        const char *start = k;
        while (start > url && start[-1] == ' ') start--; /* "key = v" */
        if ((size_t)(start - url) < n || strncmp(start - n, p, n) != 0) continue;
        const char *before = start - n;
        if (before == url || strchr(" \t\n&?", before[-1])) return true;
    }
    return false;
}

static char *pg_hide_quoted(const char *msg, const char *url) {
    rt__buf b = {0};
    for (const char *p = msg; *p;) {
        const char *close = *p == '"' ? strchr(p + 1, '"') : NULL;
        if (close && pg_is_option_name(p + 1, (size_t)(close - p - 1), url) &&
            !strstr(close + 1, "\"")) { /* the last quoted piece, alone */
            rt__buf_add(&b, p, (size_t)(close - p + 1));
            p = close + 1;
            continue;
        }
        if (*p != '"' || (p[1] && strchr("=:/", p[1]) && p[2] == '"')) {
            size_t n = *p == '"' ? 3 : 1;
            rt__buf_add(&b, p, n);
            p += n;
            continue;
        }
        const char *last = strrchr(p, '"');
        rt__buf_puts(&b, "\"***\"");
        p = last > p ? last + 1 : p + strlen(p);
    }
    rt__buf_add(&b, "", 0);
    return b.p;
}

/* A bad value of our option NAME: one line in err; RT_INVALID. */
static int pg_bad_option(const char *name, const char *value,
                         const char *allowed, char *err, size_t errlen) {
    /* Shown only when it is a word: in a URI the value runs to the next
     * '&', and may have swallowed the rest of the URL. */
    size_t n = strlen(value);
    bool word = n <= 16 && strspn(value, "abcdefghijklmnopqrstuvwxyz"
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_-") == n;
    snprintf(err, errlen, "bad %s value%s%s%s in database URL (%s)", name,
             word ? " '" : "", word ? value : "", word ? "'" : "", allowed);
    return RT_INVALID;
}

/* rt__pg_parse_url, and *pooled: pool_mode=transaction was given. */
static int pg_parse(const char *given, char **conninfo, bool *fast,
                    bool *pooled, char *err, size_t errlen) {
    *conninfo = NULL;
    *fast = true;
    *pooled = false;
    int rc = rt__pq_load(err, errlen);
    if (rc != RT_OK) return rc;
    char *fast_opt = NULL, *pool_opt = NULL;
    char *no_fast = pg_take_option(given, "fast_takeover", &fast_opt);
    char *url = pg_take_option(no_fast, "pool_mode", &pool_opt);
    free(no_fast);
    if (fast_opt && !rt__parse_bool(fast_opt, fast))
        rc = pg_bad_option("fast_takeover", fast_opt, "on or off", err, errlen);
    else if (pool_opt && strcmp(pool_opt, "session") != 0 &&
             strcmp(pool_opt, "transaction") != 0)
        rc = pg_bad_option("pool_mode", pool_opt, "session or transaction",
                           err, errlen);
    else if (pool_opt && !strcmp(pool_opt, "transaction")) {
        /* A session advisory lock would stay on the pooled server session
         * after the holder died, or be found taken by another client. */
        if (fast_opt && *fast) {
            snprintf(err, errlen, "fast_takeover=on cannot work with "
                                  "pool_mode=transaction in database URL");
            rc = RT_INVALID;
        }
        *fast = false;
        *pooled = true;
    }
    free(fast_opt);
    free(pool_opt);
    if (rc != RT_OK) {
        free(url);
        return rc;
    }
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        char *hidden = pg_hide_quoted(perr ? perr : "out of memory", url);
        char *masked = rt__mask_secrets(hidden);
        free(hidden);
        pg_one_line(masked);
        /* Not the URL itself: where it is malformed, a mistyped keyword
         * may be hiding a password from the masking. */
        snprintf(err, errlen, "malformed PostgreSQL URL or conninfo: %s",
                 masked);
        free(masked);
        PQfreemem(perr);
        free(url);
        return RT_INVALID;
    }
    PQconninfoFree(opts);
    *conninfo = url;
    return RT_OK;
}

int rt__pg_parse_url(const char *given, char **conninfo, bool *fast,
                     char *err, size_t errlen) {
    bool pooled;
    return pg_parse(given, conninfo, fast, &pooled, err, errlen);
}

static int pg_open(const char *given, rt_store **out, char *err,
                   size_t errlen) {
    *out = NULL;
    char *url;
    bool fast, pooled;
    int rc = pg_parse(given, &url, &fast, &pooled, err, errlen);
    if (rc != RT_OK) return rc;
    pg_store *s = rt__xcalloc(1, sizeof *s);
    s->base.ops = &rt__pg_ops;
    s->base.url_display = rt__mask_secrets(given);
    s->base.fast_takeover = fast;
    s->base.liveness_drops = true;
    s->base.pooled = pooled;
    s->url = url;
    rc = pg_connect(s);
    if (rc != RT_OK) {
        snprintf(err, errlen, "%s", s->base.errmsg);
        pg_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return RT_OK;
}

static void pg_stmt_clear_result(pg_stmt *c) {
    for (int i = 0; i < c->nblob; i++) {
        free(c->blob[i]);
        c->blob[i] = NULL;
    }
    PQclear(c->res);
    c->res = NULL;
    c->row = -1;
    c->nrows = 0;
}

/* res becomes c's result, its rows read by pg_step. */
static void pg_stmt_hold(pg_stmt *c, PGresult *res) {
    c->res = res;
    c->row = -1;
    c->nrows = PQntuples(res);
    int ncols = PQnfields(res);
    if (ncols > c->nblob) {
        c->blob = rt__xrealloc(c->blob, sizeof *c->blob * (size_t)ncols);
        c->blob_len = rt__xrealloc(c->blob_len, sizeof *c->blob_len * (size_t)ncols);
        for (int i = c->nblob; i < ncols; i++) c->blob[i] = NULL;
        c->nblob = ncols;
    }
}

/* Unbind; a parameter's buffer stays for the next bind unless it is big. */
static void pg_stmt_clear_params(pg_stmt *c) {
    for (int i = 0; i < c->nparams; i++) {
        c->values[i] = NULL;
        c->lengths[i] = 0;
        c->formats[i] = 0;
        if (c->cap[i] > 65536) {
            free(c->buf[i]);
            c->buf[i] = NULL;
            c->cap[i] = 0;
        }
    }
}

static void pg_stmt_free(pg_stmt *c) {
    pg_stmt_clear_result(c);
    for (int i = 0; i < c->nparams; i++) free(c->buf[i]);
    free(c->values);
    free(c->lengths);
    free(c->formats);
    free(c->buf);
    free(c->cap);
    free(c->blob);
    free(c->blob_len);
    free(c->sql);
    free(c);
}

static int pg_wrap(void *handle, rt_store **out) {
    /* The caller's PGconn: libpq is in the process, dlopen finds it. */
    if (rt__pq_load(NULL, 0) != RT_OK) return RT_DBERR;
    pg_store *s = rt__xcalloc(1, sizeof *s);
    s->base.ops = &rt__pg_ops;
    s->base.url_display = rt__xstrdup("postgres:(the caller's connection)");
    s->base.borrowed = true;
    s->base.liveness_drops = true;
    s->conn = handle;
    /* Statement names of their own for each wrap: one that a failed
     * transaction kept the caller from deallocating must not collide. */
    static unsigned serial;
    s->next_name = __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED) * 100000u;
    *out = &s->base;
    return RT_OK;
}

static void pg_close(rt_store *base) {
    if (!base) return;
    pg_store *s = (pg_store *)base;
    if (s->base.borrowed) {
        /* Leave the caller's session as it was: no statements of ours. */
        for (int i = 0; i < s->nstmts && s->conn; i++) {
            char sql[64];
            snprintf(sql, sizeof sql, "DEALLOCATE %s", s->stmts[i]->name);
            if (s->stmts[i]->prepared) PQclear(PQexec(s->conn, sql));
        }
        s->conn = NULL;
    }
    for (int i = 0; i < s->nstmts; i++) pg_stmt_free(s->stmts[i]);
    free(s->stmts);
    free(s->sent);
    free(s->claim[0]);
    free(s->claim[1]);
    pg_swap_cancel(s, NULL);
    if (s->conn) PQfinish(s->conn);
    free(s->url);
    free(s->base.url_display);
    free(s);
}

static int pg_reconnect(rt_store *base) {
    pg_store *s = (pg_store *)base;
    for (int i = 0; i < s->nstmts; i++) pg_stmt_clear_result(s->stmts[i]);
    pg_swap_cancel(s, NULL);
    if (s->conn) PQfinish(s->conn);
    s->conn = NULL;
    s->base.in_tx = 0;
    s->begin_pending = s->piped = false;
    s->nsent = 0;
    return pg_connect(s);
}

/*
 * Pipelining (libpq pipeline mode): inside a transaction, a statement whose
 * result nobody reads (pg_send) goes out without waiting, and BEGIN goes out
 * with the first statement. The next statement that needs its result, or
 * COMMIT, flushes them all in the same round trip; the first error among
 * them is the transaction's (the server skips the rest) and names its
 * statement.
 */
static bool pg_pipe_note(pg_store *s, pg_stmt *stmt, bool prepare) {
    if (s->nsent == s->capsent) {
        s->capsent = s->capsent ? s->capsent * 2 : 16;
        s->sent = rt__xrealloc(s->sent, sizeof *s->sent * (size_t)s->capsent);
    }
    s->sent[s->nsent].stmt = stmt;
    s->sent[s->nsent].item = s->base.item;
    s->sent[s->nsent++].prepare = prepare;
    return true;
}

static bool pg_pipe_send(pg_store *s, pg_stmt *c);
static int pg_prepare(rt_store *base, const char *sql, rt_stmt **out);

/* Queue BEGIN or COMMIT: a statement like the others, prepared once per
 * session, so a transaction costs the server no Parse of its own. */
static bool pg_pipe_send_command(pg_store *s, const char *sql) {
    rt_stmt *c;
    pg_prepare(&s->base, sql, &c);
    return pg_pipe_send(s, (pg_stmt *)c);
}

/* Enter pipeline mode, BEGIN first when it is pending. */
static bool pg_pipe_enter(pg_store *s) {
    if (s->piped) return true;
    if (!PQenterPipelineMode(s->conn)) return false;
    s->piped = true;
    s->nsent = 0;
    if (s->begin_pending) {
        s->begin_pending = false;
        return pg_pipe_send_command(s, "BEGIN");
    }
    return true;
}

/* Queue one execution of c (its Parse first when the session lacks it). */
static bool pg_pipe_send(pg_store *s, pg_stmt *c) {
    if (s->base.pooled) /* unnamed: Parse, Bind, Execute together */
        return PQsendQueryParams(s->conn, c->sql, c->nparams, NULL,
                                 (const char *const *)c->values, c->lengths,
                                 c->formats, 0) &&
               pg_pipe_note(s, c, false);
    if (!c->prepared) {
        if (!PQsendPrepare(s->conn, c->name, c->sql, c->nparams, NULL)) return false;
        pg_pipe_note(s, c, true);
        c->prepared = true; /* undone by pg_pipe_flush if it failed */
    }
    return PQsendQueryPrepared(s->conn, c->name, c->nparams,
                               (const char *const *)c->values, c->lengths,
                               c->formats, 0) &&
           pg_pipe_note(s, c, false);
}

/*
 * Sync and read every queued result; leave pipeline mode. *last receives
 * the last command's result (the caller's), unless an earlier one failed.
 * RT_OK, or the first error, its message naming the failed statement.
 */
static int pg_pipe_flush(pg_store *s, PGresult **last) {
    if (last) *last = NULL;
    if (!s->piped) return RT_OK;
    int rc = RT_OK;
    bool sent = PQpipelineSync(s->conn) != 0;
    for (int i = 0; sent && i < s->nsent; i++) {
        PGresult *first = NULL;
        for (PGresult *r; (r = PQgetResult(s->conn)) != NULL;) {
            if (first) PQclear(r);
            else first = r;
        }
        ExecStatusType st = PQresultStatus(first);
        bool failed = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK;
        pg_stmt *c = s->sent[i].prepare ? NULL : s->sent[i].stmt;
        if (failed && s->sent[i].prepare) s->sent[i].stmt->prepared = false;
        const char *state = PQresultErrorField(first, PG_DIAG_SQLSTATE);
        if (failed && rc == RT_OK && c && c->base.fence && state &&
            !strcmp(state, "22012")) {
            rc = rt__store_fail(&s->base, RT_FENCED,
                                "the fence did not hold: another process "
                                "took the run over");
        } else if (failed && rc == RT_OK && st != PGRES_PIPELINE_ABORTED) {
            rc = pg_result_error(s, first);
            bool own_parse = s->sent[i].prepare && i + 2 == s->nsent &&
                             s->sent[i + 1].stmt == s->sent[i].stmt;
            if (s->sent[i].stmt && i + 1 < s->nsent && !own_parse) {
                /* Not the caller's statement: say which one failed. */
                char sql[48];
                snprintf(sql, sizeof sql, "%s", s->sent[i].stmt->sql);
                size_t n = strlen(s->base.errmsg);
                char item[40] = "";
                if (s->sent[i].item > 0)
                    snprintf(item, sizeof item, "item %lld, ",
                             (long long)s->sent[i].item);
                snprintf(s->base.errmsg + n, sizeof s->base.errmsg - n,
                         " (%sin pipelined statement: %s%s)", item, sql,
                         strlen(s->sent[i].stmt->sql) >= sizeof sql ? "..."
                                                                    : "");
            }
        }
        if (c && c->base.keep && !failed && i + 1 < s->nsent) {
            pg_stmt_hold(c, first); /* the caller reads it later */
            first = NULL;
        }
        if (c) c->base.keep = c->base.fence = false;
        if (last && i + 1 == s->nsent && rc == RT_OK) *last = first;
        else PQclear(first);
    }
    if (sent) { /* the sync's own result */
        for (PGresult *r; (r = PQgetResult(s->conn)) != NULL;) {
            bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
            PQclear(r);
            if (sync) break;
        }
    } else if (rc == RT_OK) {
        rc = pg_result_error(s, NULL);
    }
    s->piped = false;
    s->nsent = 0;
    if (!PQexitPipelineMode(s->conn)) {
        /* Results still owed: the server went away in the middle of the
         * pipeline. libpq stays in pipeline mode, where every later call
         * fails; the connection is lost, and only a reconnect helps. */
        if (rc == RT_OK)
            rc = rt__store_fail(&s->base, RT_CONN,
                                "postgres: connection lost in the middle of "
                                "a pipeline");
        rc = RT_CONN;
        pg_swap_cancel(s, NULL);
        PQfinish(s->conn);
        s->conn = NULL;
        s->base.in_tx = 0;
    }
    if (rc != RT_OK && last && *last) {
        PQclear(*last);
        *last = NULL;
    }
    return rc;
}

/* rt_store_ops.send: execute, its result unread (errors come later). */
static int pg_send(rt_stmt *base) {
    RT_FAILPOINT_EXEC(base->store); /* test builds */
    pg_stmt *c = (pg_stmt *)base;
    pg_store *s = (pg_store *)base->store;
    if (!s->conn) return pg_fail_native(s, RT_CONN, "not connected", NULL);
    /* rt__store_exec_later sends only inside a transaction; outside one
     * it executes the statement itself. */
    if (!pg_pipe_enter(s) || !pg_pipe_send(s, c)) {
        int rc = pg_pipe_flush(s, NULL);
        return rc != RT_OK ? rc : pg_result_error(s, NULL);
    }
    return RT_OK;
}

/* rt_store_ops.prepare_ahead: its Parse goes out now, in the pipeline (BEGIN
 * first), flushed so the server parses it while the caller goes on; the
 * answer is read by the next flush, which also reports a failure. */
static int pg_prepare_ahead(rt_stmt *base) {
    pg_stmt *c = (pg_stmt *)base;
    pg_store *s = (pg_store *)base->store;
    if (!s->conn) return pg_fail_native(s, RT_CONN, "not connected", NULL);
    if (s->base.pooled || c->prepared) return RT_OK; /* unnamed, or done */
    if (!pg_pipe_enter(s) ||
        !PQsendPrepare(s->conn, c->name, c->sql, c->nparams, NULL))
        return pg_result_error(s, NULL);
    pg_pipe_note(s, c, true);
    c->prepared = true; /* undone by pg_pipe_flush if it failed */
    return PQflush(s->conn) < 0 ? pg_result_error(s, NULL) : RT_OK;
}

/* Run a command without parameters; RT_OK or an error. */
static int pg_simple(pg_store *s, const char *sql, PGresult **keep) {
    if (!s->conn) return pg_fail_native(s, RT_CONN, "not connected", NULL);
    if (s->piped) {
        int rc = pg_pipe_flush(s, NULL);
        if (rc != RT_OK) return rc;
    }
    if (s->begin_pending) { /* a command inside the transaction */
        s->begin_pending = false;
        int rc = pg_simple(s, "BEGIN", NULL);
        if (rc != RT_OK) return rc;
    }
    PGresult *res = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        s->changes = strtoll(PQcmdTuples(res), NULL, 10);
        if (keep)
            *keep = res;
        else
            PQclear(res);
        return RT_OK;
    }
    int rc = pg_result_error(s, res);
    PQclear(res);
    return rc;
}

static int pg_exec_script(rt_store *base, const char *sql) {
    RT_FAILPOINT_EXEC(base); /* test builds */
    return pg_simple((pg_store *)base, sql, NULL);
}

/*
 * BEGIN is not sent on its own: it goes out with the transaction's first
 * statement, in one pipeline (pg_execute), which saves a round trip per
 * transaction. The server takes no snapshot and no lock at BEGIN anyway.
 */
static int pg_begin(rt_store *base) {
    pg_store *s = (pg_store *)base;
    if (!s->conn) return pg_fail_native(s, RT_CONN, "not connected", NULL);
    s->begin_pending = true;
    return RT_OK;
}

static int pg_commit(rt_store *base) {
    pg_store *s = (pg_store *)base;
    if (s->begin_pending) { /* nothing was sent: nothing to commit */
        s->begin_pending = false;
        return RT_OK;
    }
    PGresult *res = NULL;
    int rc = RT_OK;
    if (s->piped) { /* COMMIT goes out with what was sent before it */
        if (!pg_pipe_send_command(s, "COMMIT"))
            rc = pg_result_error(s, NULL);
        int frc = pg_pipe_flush(s, &res);
        if (rc == RT_OK) rc = frc;
    } else {
        rc = pg_simple(s, "COMMIT", &res);
    }
    if (rc != RT_OK) return rc;
    /* COMMIT of a transaction an earlier error aborted answers ROLLBACK. */
    bool rolled_back = strcmp(PQcmdStatus(res), "COMMIT") != 0;
    PQclear(res);
    if (rolled_back)
        return rt__store_fail(base, RT_DBERR,
                              "postgres: the transaction was aborted by an "
                              "earlier error and rolled back");
    return RT_OK;
}

static int pg_rollback(rt_store *base) {
    pg_store *s = (pg_store *)base;
    if (pg_broken(base)) return RT_OK; /* the server dropped it with us */
    for (int i = 0; i < s->nstmts; i++) pg_stmt_clear_result(s->stmts[i]);
    if (s->begin_pending) {
        s->begin_pending = false;
        return RT_OK;
    }
    pg_pipe_flush(s, NULL); /* its error, if any, dies with the transaction */
    return pg_simple(s, "ROLLBACK", NULL);
}

static int pg_lock_schema(rt_store *base) {
    /* A migration's ALTER waits for every open transaction on its table (a
     * running step's), and every statement after it waits behind the ALTER:
     * the whole fleet would stall for as long as the longest step. So it
     * waits 500 ms at most, gives way, and rt__migrate tries again. */
    int rc = pg_simple((pg_store *)base, "SET LOCAL lock_timeout = '500ms'",
                       NULL);
    /* Any constant shared by every ratchet: "ratchet" in ASCII. */
    if (rc == RT_OK)
        rc = pg_simple((pg_store *)base,
                       "SELECT pg_advisory_xact_lock(126879154549864)", NULL);
    return rc;
}

/* A pointer seen before is tried first, but the text decides: a buffer
 * may hold another text by now. */
static pg_stmt *pg_cache_find(pg_store *s, const char *sql) {
    for (int i = 0; i < s->nstmts; i++)
        if (s->stmts[i]->key_ptr == sql && !strcmp(s->stmts[i]->sql, sql))
            return s->stmts[i];
    for (int i = 0; i < s->nstmts; i++)
        if (!strcmp(s->stmts[i]->sql, sql)) return s->stmts[i];
    return NULL;
}

static int pg_prepare(rt_store *base, const char *sql, rt_stmt **out) {
    pg_store *s = (pg_store *)base;
    pg_stmt *c = pg_cache_find(s, sql);
    if (c) {
        pg_stmt_clear_result(c);
        pg_stmt_clear_params(c);
        *out = &c->base;
        return RT_OK;
    }
    c = rt__xcalloc(1, sizeof *c);
    c->base.store = base;
    c->sql = rt__xstrdup(sql);
    c->base.sql = c->sql;
    c->key_ptr = sql;
    c->row = -1;
    snprintf(c->name, sizeof c->name, "rt_%u", s->next_name++);
    c->nparams = rt__sql_max_placeholder(sql);
    size_t n = (size_t)c->nparams + 1;
    c->values = rt__xcalloc(n, sizeof *c->values);
    c->lengths = rt__xcalloc(n, sizeof *c->lengths);
    c->formats = rt__xcalloc(n, sizeof *c->formats);
    c->buf = rt__xcalloc(n, sizeof *c->buf);
    c->cap = rt__xcalloc(n, sizeof *c->cap);
    if (s->nstmts == s->capstmts) {
        s->capstmts = s->capstmts ? s->capstmts * 2 : 16;
        s->stmts = rt__xrealloc(s->stmts, sizeof *s->stmts * (size_t)s->capstmts);
    }
    s->stmts[s->nstmts++] = c;
    *out = &c->base;
    return RT_OK;
}

/*
 * Parameter i's buffer, at least n bytes, set as its bound value. Kept from
 * bind to bind: libpq copies a value when the statement is sent, so one
 * buffer per parameter serves every execution (no malloc per item).
 */
static char *pg_param_buf(pg_stmt *c, int i, size_t n) {
    if (c->cap[i] < n) {
        size_t cap = n < 64 ? 64 : n;
        free(c->buf[i]);
        c->buf[i] = rt__xmalloc(cap);
        c->cap[i] = cap;
    }
    return c->values[i] = c->buf[i];
}

static int pg_bind(rt_stmt *base, int idx, const rt_value *v) {
    pg_stmt *c = (pg_stmt *)base;
    if (idx < 1 || idx > c->nparams)
        return rt__store_fail(base->store, RT_MISUSE,
                              "parameter $%d out of range (statement has %d)",
                              idx, c->nparams);
    int i = idx - 1;
    c->values[i] = NULL;
    c->formats[i] = 0;
    c->lengths[i] = 0;
    char num[40];
    size_t n;
    switch (v->type) {
    case RT_TNULL: break;
    case RT_TINT: { /* digits backwards: no snprintf per item */
        uint64_t u = v->u.i < 0 ? 0 - (uint64_t)v->u.i : (uint64_t)v->u.i;
        char *p = num + sizeof num;
        *--p = '\0';
        do *--p = (char)('0' + u % 10); while ((u /= 10) != 0);
        if (v->u.i < 0) *--p = '-';
        n = (size_t)(num + sizeof num - p);
        memcpy(pg_param_buf(c, i, n), p, n);
        break;
    }
    case RT_TREAL:
        snprintf(num, sizeof num, "%.17g", v->u.d);
        n = strlen(num) + 1;
        memcpy(pg_param_buf(c, i, n), num, n);
        break;
    case RT_TTEXT:
        if (!v->u.b.p) break;
        n = v->u.b.n == (size_t)-1 ? strlen(v->u.b.p) : strnlen(v->u.b.p, v->u.b.n);
        memcpy(pg_param_buf(c, i, n + 1), v->u.b.p, n);
        c->values[i][n] = '\0';
        break;
    case RT_TBLOB:
        n = v->u.b.n;
        if (n) memcpy(pg_param_buf(c, i, n), v->u.b.p, n);
        else pg_param_buf(c, i, 1);
        c->lengths[i] = (int)n;
        c->formats[i] = 1;
        break;
    default:
        return rt__store_fail(base->store, RT_MISUSE, "bad value type %d",
                              (int)v->type);
    }
    return RT_OK;
}

static int pg_execute(pg_stmt *c) {
    pg_store *s = (pg_store *)c->base.store;
    if (!s->conn) return pg_fail_native(s, RT_CONN, "not connected", NULL);
    PGresult *res;
    if (s->begin_pending || s->piped || !c->prepared) {
        /* With BEGIN, what was sent before it and its own Parse on first
         * use (a process's start uses a dozen statements): one round trip.
         * Unnamed (pool_mode=transaction), every execution comes here. */
        int rc = RT_OK;
        if (!pg_pipe_enter(s) || !pg_pipe_send(s, c)) rc = pg_result_error(s, NULL);
        int frc = pg_pipe_flush(s, &res);
        if (rc == RT_OK) rc = frc;
        if (rc != RT_OK) return rc;
    } else {
        res = PQexecPrepared(s->conn, c->name, c->nparams,
                             (const char *const *)c->values, c->lengths,
                             c->formats, 0);
    }
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        int rc = pg_result_error(s, res);
        PQclear(res);
        return rc;
    }
    s->changes = strtoll(PQcmdTuples(res), NULL, 10);
    pg_stmt_hold(c, res);
    return RT_OK;
}

static int pg_step(rt_stmt *base) {
    RT_FAILPOINT_EXEC(base->store); /* test builds */
    pg_stmt *c = (pg_stmt *)base;
    if (!c->res) {
        int rc = pg_execute(c);
        if (rc != RT_OK) return rc;
    }
    for (int i = 0; i < c->nblob; i++) {
        free(c->blob[i]);
        c->blob[i] = NULL;
    }
    if (++c->row < c->nrows) return RT_ROW;
    pg_stmt_clear_result(c); /* done: the next step executes it again */
    return RT_DONE;
}

static int pg_reset(rt_stmt *base) {
    pg_stmt *c = (pg_stmt *)base;
    pg_stmt_clear_result(c);
    pg_stmt_clear_params(c);
    return RT_OK;
}

static bool pg_has_cell(pg_stmt *c, int col) {
    return c->res && c->row >= 0 && c->row < c->nrows && col >= 0 &&
           col < PQnfields(c->res);
}

static int pg_column_count(rt_stmt *base) {
    pg_stmt *c = (pg_stmt *)base;
    return c->res ? PQnfields(c->res) : 0;
}

static rt_type pg_column_type(rt_stmt *base, int col) {
    pg_stmt *c = (pg_stmt *)base;
    if (!pg_has_cell(c, col) || PQgetisnull(c->res, c->row, col))
        return RT_TNULL;
    switch (PQftype(c->res, col)) {
    case PG_BOOL:
    case PG_INT2:
    case PG_INT4:
    case PG_INT8:
    case PG_OID: return RT_TINT;
    case PG_FLOAT4:
    case PG_FLOAT8:
    case PG_NUMERIC: return RT_TREAL;
    case PG_BYTEA: return RT_TBLOB;
    default: return RT_TTEXT;
    }
}

static int64_t pg_column_int64(rt_stmt *base, int col) {
    pg_stmt *c = (pg_stmt *)base;
    if (!pg_has_cell(c, col) || PQgetisnull(c->res, c->row, col)) return 0;
    const char *v = PQgetvalue(c->res, c->row, col);
    if (PQftype(c->res, col) == PG_BOOL) return v[0] == 't';
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*end == '.' || *end == 'e' || *end == 'E') return (int64_t)strtod(v, NULL);
    return n;
}

static double pg_column_double(rt_stmt *base, int col) {
    pg_stmt *c = (pg_stmt *)base;
    if (!pg_has_cell(c, col) || PQgetisnull(c->res, c->row, col)) return 0;
    const char *v = PQgetvalue(c->res, c->row, col);
    if (PQftype(c->res, col) == PG_BOOL) return v[0] == 't';
    return strtod(v, NULL);
}

static const char *pg_column_text(rt_stmt *base, int col) {
    pg_stmt *c = (pg_stmt *)base;
    if (!pg_has_cell(c, col) || PQgetisnull(c->res, c->row, col)) return NULL;
    return PQgetvalue(c->res, c->row, col);
}

static int pg_hex(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static const void *pg_column_blob(rt_stmt *base, int col, size_t *len) {
    pg_stmt *c = (pg_stmt *)base;
    if (len) *len = 0;
    if (!pg_has_cell(c, col) || PQgetisnull(c->res, c->row, col)) return NULL;
    const char *v = PQgetvalue(c->res, c->row, col);
    size_t n = (size_t)PQgetlength(c->res, c->row, col);
    if (PQftype(c->res, col) != PG_BYTEA) {
        if (len) *len = n;
        return v;
    }
    if (!c->blob[col]) {
        /* bytea_output=hex: "\x" then two digits a byte. */
        if (n < 2 || v[0] != '\\' || v[1] != 'x') {
            size_t out_len;
            unsigned char *u = PQunescapeBytea((const unsigned char *)v, &out_len);
            if (!u) return NULL;
            c->blob[col] = rt__xmalloc(out_len + 1);
            memcpy(c->blob[col], u, out_len);
            c->blob[col][out_len] = '\0';
            c->blob_len[col] = out_len;
            PQfreemem(u);
        } else {
            size_t out_len = (n - 2) / 2;
            unsigned char *u = rt__xmalloc(out_len + 1);
            for (size_t i = 0; i < out_len; i++)
                u[i] = (unsigned char)(pg_hex(v[2 + 2 * i]) << 4 |
                                       pg_hex(v[3 + 2 * i]));
            u[out_len] = '\0';
            c->blob[col] = u;
            c->blob_len[col] = out_len;
        }
    }
    if (len) *len = c->blob_len[col];
    return c->blob[col];
}

static int64_t pg_changes(rt_store *base) { return ((pg_store *)base)->changes; }

/* Async-signal-safe: PQcancel with a buffer on this stack (libpq docs). */
static void pg_interrupt(rt_store *base) {
    pg_store *s = (pg_store *)base;
    PGcancel *cancel = s->cancel;
    char errbuf[256];
    if (cancel) PQcancel(cancel, errbuf, sizeof errbuf);
}

/* The caller talks to the server itself, in our transaction: BEGIN and
 * what is queued in the pipeline go out first (an error among them fails
 * the transaction, and its COMMIT says so). */
static void *pg_handle(rt_store *base) {
    pg_store *s = (pg_store *)base;
    if (s->conn && (s->piped || s->begin_pending) && pg_pipe_enter(s))
        (void)pg_pipe_flush(s, NULL);
    return s->conn;
}

static int pg_liveness_try(rt_store *base, uint64_t key, bool *got) {
    *got = false;
    rt_value arg = rt_int((int64_t)key);
    rt_stmt *st;
    int rc = rt__store_query(base, "SELECT pg_try_advisory_lock($1)", 1, &arg, &st);
    if (rc != RT_ROW) return rc == RT_DONE ? RT_DBERR : rc;
    *got = pg_column_int64(st, 0) == 1;
    pg_reset(st);
    return RT_OK;
}

static void pg_liveness_release(rt_store *base, uint64_t key) {
    rt_value arg = rt_int((int64_t)key);
    if (!pg_broken(base))
        rt__store_exec(base, "SELECT pg_advisory_unlock($1)", 1, &arg, NULL);
}

static int64_t pg_session_id(rt_store *base) {
    rt_stmt *st;
    if (rt__store_query(base, "SELECT pg_backend_pid()", 0, NULL, &st) != RT_ROW)
        return -1;
    int64_t pid = pg_column_int64(st, 0);
    pg_reset(st);
    return pid;
}

/*
 * The queue's claim (store.h, rt__store_claim_sql; service/worker.c drives
 * it). Held jobs ($3: the job-scoped ones) are read once per claim, by key
 * (a hashed NOT IN over an index scan): a probe per candidate row would be
 * planned as a scan of rt_lease per row, and a busy queue leaves that
 * table full of dead rows between two vacuums (a lease row per run,
 * inserted and deleted): 53 runs/s instead of 550, measured. The pick is a
 * row lock taken with SKIP LOCKED, so concurrent claims pass each other
 * instead of queueing on the same row. %1: the parts' claimable.
 */
#define PG_CLAIM_WHERE                                                         \
    "%s AND (run_at_ms IS NULL OR run_at_ms <= "                               \
    "rt_now_ms()) AND NOT (id = ANY ($2::bigint[])) AND (cardinality("        \
    "$3::text[]) = 0 OR job NOT IN (SELECT scope FROM rt_lease WHERE scope "   \
    "= ANY ($3::text[]))) AND NOT EXISTS "                                     \
    "(SELECT 1 FROM rt_lease l WHERE "                                          \
    "l.scope = rt_run.job || '/' || rt_run.run_key) ORDER BY priority DESC, " \
    "coalesce(run_at_ms, created_ms), id LIMIT 1 FOR UPDATE SKIP LOCKED"
/* RT_STORE_CLAIM_PICK: the parts' columns, then PG_CLAIM_WHERE's. */
#define PG_CLAIM_PICK                                                          \
    "SELECT %s, EXISTS (SELECT 1 FROM rt_param p WHERE "                       \
    "p.run_id = rt_run.id) FROM rt_run WHERE job = ANY ($1::text[]) AND "     \
    PG_CLAIM_WHERE
/*
 * RT_STORE_CLAIM_ONE: the pick, the lease row and, if the row went in, the
 * claim. Alone it needs no round trip of its own: it goes out with the
 * COMMIT before it. The parts' columns, claimable, claim_cte, columns.
 */
#define PG_CLAIM_ONE                                                           \
    "WITH c AS (SELECT %s, EXISTS (SELECT 1 FROM rt_param "                    \
    "p WHERE p.run_id = rt_run.id) AS has_params, CASE WHEN job = ANY "       \
    "($3::text[]) THEN job ELSE job || '/' || run_key END AS scope FROM "     \
    "rt_run WHERE (job, fingerprint) IN (SELECT * FROM unnest($1::text[], "   \
    "$8::text[])) AND " PG_CLAIM_WHERE "), l AS (INSERT INTO rt_lease "       \
    "(scope, job, run_key, owner, fast, live_key, acquired_ms, "              \
    "heartbeat_ms, expires_ms) SELECT scope, job, run_key, $4::text, "        \
    "$5::integer, $6::bigint, rt_now_ms(), rt_now_ms(), rt_now_ms() + "       \
    "$7::bigint FROM c ON CONFLICT (scope) DO NOTHING RETURNING scope), u "   \
    "AS (%s AND EXISTS (SELECT 1 FROM l) RETURNING id) "                      \
    "SELECT %s, has_params, "                                                  \
    "scope, EXISTS (SELECT 1 FROM u) FROM c"

/* Built once per connection: a stable text, so the statement cache finds
 * it by its pointer. */
static const char *pg_claim_sql(rt_store *base, int which,
                                const rt_store_claim_parts *parts) {
    pg_store *s = (pg_store *)base;
    if (which != RT_STORE_CLAIM_PICK && which != RT_STORE_CLAIM_ONE)
        return NULL;
    if (!s->claim[which]) {
        rt__buf b = {0};
        if (which == RT_STORE_CLAIM_PICK)
            rt__buf_printf(&b, PG_CLAIM_PICK, parts->columns, parts->claimable);
        else
            rt__buf_printf(&b, PG_CLAIM_ONE, parts->columns, parts->claimable,
                           parts->claim_cte, parts->columns);
        s->claim[which] = b.p;
    }
    return s->claim[which];
}

/* Not behind a transaction-pooling proxy: the SET would stay on the
 * pooled server session and cut another client's statements short. */
static int pg_statement_timeout(rt_store *base, int ms) {
    if (base->pooled) return RT_OK;
    char sql[64];
    snprintf(sql, sizeof sql, "SET statement_timeout = %d", ms);
    return pg_exec_script(base, sql);
}

/* libpq is loaded for PostgreSQL URLs only (pq_loader.c), not for this. */
static const char *pg_versions(void) { return "libpq loaded on demand"; }

const rt_store_ops rt__pg_ops = {
    .name = "postgres",
    .accepts = pg_accepts,
    .open = pg_open,
    .close = pg_close,
    .wrap = pg_wrap,
    .exec_script = pg_exec_script,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .lock_schema = pg_lock_schema,
    .prepare = pg_prepare,
    .bind = pg_bind,
    .step = pg_step,
    .reset = pg_reset,
    .column_count = pg_column_count,
    .column_type = pg_column_type,
    .column_int64 = pg_column_int64,
    .column_double = pg_column_double,
    .column_text = pg_column_text,
    .column_blob = pg_column_blob,
    .changes = pg_changes,
    .interrupt = pg_interrupt,
    .handle = pg_handle,
    .send = pg_send,
    .prepare_ahead = pg_prepare_ahead,
    .liveness_try = pg_liveness_try,
    .liveness_release = pg_liveness_release,
    .session_id = pg_session_id,
    .broken = pg_broken,
    .watch = pg_watch,
    .reconnect = pg_reconnect,
    .remote = true,
    .claim_sql = pg_claim_sql,
    .statement_timeout = pg_statement_timeout,
    .versions = pg_versions,
};
