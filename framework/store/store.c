/*
 * store.c — picks a backend for a URL and wraps the backend methods, so the
 * rest of the library never calls a function pointer directly. Also the
 * helpers every backend shares (placeholder scan, error formatting).
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/failpoint.h"

static const rt_store_ops *const store_backends[] = {&rt__sqlite_ops,
                                                     &rt__pg_ops, NULL};

int rt__store_open(const char *url, rt_store **out, char *err, size_t errlen) {
    *out = NULL;
    for (const rt_store_ops *const *b = store_backends; *b; b++)
        if ((*b)->accepts(url)) return (*b)->open(url, out, err, errlen);
    /* Name the scheme only, and only a real one (RFC 3986: a letter, then
     * letters, digits, '+', '-', '.', ending at ':'): the rest, or text that
     * is no URL at all ("password=x://"), may hold a password. */
    static const char scheme[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "abcdefghijklmnopqrstuvwxyz0123456789+-.";
    size_t n = 0;
    if ((url[0] >= 'a' && url[0] <= 'z') || (url[0] >= 'A' && url[0] <= 'Z'))
        n = strspn(url, scheme);
    if (url[n] != ':' || n > 40) n = 0;
    snprintf(err, errlen,
             "unrecognised database URL %s%.*s%s(use sqlite:PATH, "
             "postgresql://... or a libpq conninfo such as 'host=... "
             "dbname=...')",
             n ? "'" : "", (int)n, url, n ? ":...' " : "");
    return RT_INVALID;
}

static int store_wrap(const rt_store_ops *b, void *handle, rt_store **out) {
    *out = NULL;
    return handle ? b->wrap(handle, out) : RT_MISUSE;
}

int rt__store_wrap_sqlite_db(void *handle, rt_store **out) {
    return store_wrap(&rt__sqlite_ops, handle, out);
}

int rt__store_wrap_pg_conn(void *handle, rt_store **out) {
    return store_wrap(&rt__pg_ops, handle, out);
}

bool rt__store_url_remote(const char *url) {
    for (const rt_store_ops *const *b = store_backends; *b; b++)
        if ((*b)->accepts(url)) return (*b)->remote;
    return false;
}

static char store_versions_text[200];

static void store_versions_init(void) {
    size_t n = 0;
    for (const rt_store_ops *const *b = store_backends; *b; b++) {
        if (!(*b)->versions) continue;
        int k = snprintf(store_versions_text + n, sizeof store_versions_text - n,
                         "%s%s", n ? ", " : "", (*b)->versions());
        if (k < 0 || (size_t)k >= sizeof store_versions_text - n) break;
        n += (size_t)k;
    }
}

const char *rt__store_versions(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, store_versions_init);
    return store_versions_text;
}

const char *rt__store_name(const rt_store *s) { return s->ops->name; }

void *rt__store_sqlite_db(rt_store *s) {
    return s && s->ops == &rt__sqlite_ops ? s->ops->handle(s) : NULL;
}

void *rt__store_pg_conn(rt_store *s) {
    return s && s->ops == &rt__pg_ops ? s->ops->handle(s) : NULL;
}

void rt__store_close(rt_store *s) {
    if (s) s->ops->close(s);
}

int rt__store_fail(rt_store *s, int rc, const char *fmt, ...) {
    s->refused = false; /* a backend's mapping sets it after, when it is */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return rc;
}

const char *rt__store_errmsg(const rt_store *s) { return s->errmsg; }

bool rt__store_broken(rt_store *s) {
    if (RT_FAILPOINT_BROKEN(s)) return true; /* test builds: a connerr */
    return s->ops->broken && s->ops->broken(s);
}

bool rt__store_watch(rt_store *s) {
    return s->ops->watch && s->ops->watch(s);
}

int rt__store_reconnect(rt_store *s) {
    RT_FAILPOINT_MEND(s); /* test builds: a connerr's break ends here */
    if (!s->ops->reconnect) return RT_OK;
    s->in_tx = 0;
    s->sessions++;
    return s->ops->reconnect(s);
}

int rt__store_exec_script(rt_store *s, const char *sql) {
    return s->ops->exec_script(s, sql);
}

/* Failpoints (test builds): begin.before, begin.after, commit.before and
 * commit.after sit here, for every transaction on both backends. */
int rt__store_begin(rt_store *s) {
    int rc = RT_FAILPOINT(s, "begin.before");
    if (rc == RT_OK) rc = s->ops->begin(s);
    if (rc != RT_OK) return rc;
    s->in_tx = 1;
    /* Began, but the caller hears an error: it must find no transaction. */
    rc = RT_FAILPOINT(s, "begin.after");
    return rc == RT_OK ? RT_OK : rt__store_abort(s, rc);
}

int rt__store_commit(rt_store *s) {
    /* An error before COMMIT leaves the transaction to roll back, as a
     * failed COMMIT does. */
    int rc = RT_FAILPOINT(s, "commit.before");
    if (rc == RT_OK) rc = s->ops->commit(s);
    /* A failed COMMIT leaves the transaction to roll back. */
    if (rc == RT_OK) s->in_tx = 0;
    /* Committed, but the caller hears an error: the in-doubt case. */
    if (rc == RT_OK) rc = RT_FAILPOINT(s, "commit.after");
    return rc;
}

int rt__store_rollback(rt_store *s) {
    int rc = s->ops->rollback(s);
    s->in_tx = 0;
    return rc;
}

int rt__store_abort(rt_store *s, int rc) {
    char keep[RT_ERRMSG_MAX];
    memcpy(keep, s->errmsg, sizeof keep);
    bool refused = s->refused;
    rt__store_rollback(s);
    memcpy(s->errmsg, keep, sizeof keep);
    s->refused = refused;
    return rc;
}

int rt__store_prepare(rt_store *s, const char *sql, rt_stmt **out) {
    return s->ops->prepare(s, sql, out);
}

int rt__store_lock_schema(rt_store *s) { return s->ops->lock_schema(s); }

int rt__store_bind(rt_stmt *st, int idx, const rt_value *v) {
    return st->store->ops->bind(st, idx, v);
}

int rt__store_step(rt_stmt *st) { return st->store->ops->step(st); }

int rt__store_reset(rt_stmt *st) { return st->store->ops->reset(st); }

int rt__store_column_count(rt_stmt *st) {
    return st->store->ops->column_count(st);
}

rt_type rt__store_column_type(rt_stmt *st, int col) {
    return st->store->ops->column_type(st, col);
}

int64_t rt__store_column_int64(rt_stmt *st, int col) {
    return st->store->ops->column_int64(st, col);
}

double rt__store_column_double(rt_stmt *st, int col) {
    return st->store->ops->column_double(st, col);
}

const char *rt__store_column_text(rt_stmt *st, int col) {
    return st->store->ops->column_text(st, col);
}

const void *rt__store_column_blob(rt_stmt *st, int col, size_t *len) {
    return st->store->ops->column_blob(st, col, len);
}

int64_t rt__store_changes(rt_store *s) { return s->ops->changes(s); }

bool rt__store_pipelined(const rt_store *s) {
    return s->ops->send && !s->in_process;
}

void rt__store_set_busy_timeout(rt_store *s, int ms) {
    if (s->ops->set_busy_timeout) s->ops->set_busy_timeout(s, ms);
}

int rt__store_statement_timeout(rt_store *s, int ms) {
    return s->ops->statement_timeout ? s->ops->statement_timeout(s, ms) : RT_OK;
}

void rt__store_lax_commits(rt_store *s) {
    if (s->ops->lax_commits) s->ops->lax_commits(s);
}

void rt__store_lax_transaction(rt_store *s) {
    if (s->ops->lax_transaction) s->ops->lax_transaction(s);
}

int64_t rt__store_session_id(rt_store *s) {
    return s->ops->session_id ? s->ops->session_id(s) : -1;
}

bool rt__store_fast_takeover(const rt_store *s) {
    return s->fast_takeover && s->ops->liveness_try;
}

int rt__store_liveness_try(rt_store *s, uint64_t key, bool *got) {
    *got = false;
    if (!s->ops->liveness_try) return RT_OK;
    return s->ops->liveness_try(s, key, got);
}

void rt__store_liveness_release(rt_store *s, uint64_t key) {
    if (s->ops->liveness_release) s->ops->liveness_release(s, key);
}

const char *rt__store_claim_sql(rt_store *s, int which,
                                const rt_store_claim_parts *parts) {
    return s->ops->claim_sql ? s->ops->claim_sql(s, which, parts) : NULL;
}

void rt__store_list_text(rt__buf *b, int n, const char *text) {
    rt__buf_puts(b, n ? ",\"" : "{\"");
    for (const char *c = text; *c; c++)
        rt__buf_printf(b, "%s%c", *c == '"' || *c == '\\' ? "\\" : "", *c);
    rt__buf_puts(b, "\"");
}

void rt__store_list_int(rt__buf *b, int n, int64_t v) {
    rt__buf_printf(b, "%s%" PRId64, n ? "," : "{", v);
}

void rt__store_list_end(rt__buf *b, int n) { rt__buf_puts(b, n ? "}" : "{}"); }

int rt__store_query(rt_store *s, const char *sql, int nargs,
                    const rt_value *args, rt_stmt **out) {
    rt_stmt *st;
    int rc = s->ops->prepare(s, sql, &st);
    if (rc != RT_OK) return rc;
    for (int i = 0; i < nargs; i++)
        if ((rc = s->ops->bind(st, i + 1, &args[i])) != RT_OK) return rc;
    rc = s->ops->step(st);
    *out = st;
    return rc;
}

int rt__store_now_ms(rt_store *s, int64_t plus_ms, int64_t *out) {
    rt_value arg = rt_int(plus_ms);
    rt_stmt *st = NULL;
    int rc = rt__store_query(s, "SELECT rt_now_ms() + $1", 1, &arg, &st);
    if (rc == RT_DONE)
        return rt__store_fail(s, RT_DBERR, "SELECT rt_now_ms() returned no row");
    if (rc != RT_ROW) return rc;
    *out = s->ops->column_int64(st, 0);
    rc = s->ops->step(st);
    return rc == RT_DONE ? RT_OK : rc;
}

/* Prepare, bind and send st without waiting for its result. */
static int store_send(rt_store *s, const char *sql, int nargs,
                      const rt_value *args, bool keep, bool fence,
                      rt_stmt **out) {
    rt_stmt *st = NULL;
    int rc = s->ops->prepare(s, sql, &st);
    for (int i = 0; rc == RT_OK && i < nargs; i++)
        rc = s->ops->bind(st, i + 1, &args[i]);
    if (rc == RT_OK) {
        st->keep = keep;
        st->fence = fence;
        rc = s->ops->send(st);
    }
    s->item = 0;
    if (out) *out = st;
    return rc;
}

int rt__store_exec_later(rt_store *s, const char *sql, int nargs,
                         const rt_value *args) {
    if (!s->ops->send || !s->in_tx) return rt__store_exec(s, sql, nargs, args, NULL);
    return store_send(s, sql, nargs, args, false, false, NULL);
}

int rt__store_send_kept(rt_store *s, const char *sql, int nargs,
                        const rt_value *args, bool fence, rt_stmt **out) {
    return store_send(s, sql, nargs, args, true, fence, out);
}

int rt__store_prepare_ahead(rt_store *s, const char *sql) {
    if (!s->ops->prepare_ahead || !s->in_tx) return RT_OK;
    rt_stmt *st = NULL;
    int rc = s->ops->prepare(s, sql, &st);
    return rc == RT_OK ? s->ops->prepare_ahead(st) : rc;
}

int rt__store_exec(rt_store *s, const char *sql, int nargs,
                   const rt_value *args, int64_t *changes) {
    rt_stmt *st;
    int rc = rt__store_query(s, sql, nargs, args, &st);
    while (rc == RT_ROW) rc = s->ops->step(st);
    if (rc == RT_DONE) {
        rc = RT_OK;
        if (changes) *changes = s->ops->changes(s);
    }
    return rc;
}

/*
 * Highest $N in sql, skipping quoted strings, quoted identifiers, comments
 * and dollar-quoted bodies, so '$1' inside a literal is not a placeholder.
 */
int rt__sql_max_placeholder(const char *sql) {
    int max = 0;
    const char *p = sql;
    while (*p) {
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            while (*p && !(*p == q && p[1] != q)) p += (*p == q) ? 2 : 1;
            if (*p) p++;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else if (*p == '$' && isdigit((unsigned char)p[1])) {
            int n = 0;
            for (p++; isdigit((unsigned char)*p) && n < 100000; p++)
                n = n * 10 + (*p - '0');
            if (n > max) max = n;
        } else if (*p == '$') {
            /* $tag$ ... $tag$ (PostgreSQL dollar quoting) */
            const char *e = p + 1;
            while (isalnum((unsigned char)*e) || *e == '_') e++;
            if (*e == '$') {
                size_t taglen = (size_t)(e - p + 1);
                const char *end = p + taglen;
                while (*end && strncmp(end, p, taglen)) end++;
                p = *end ? end + taglen : end;
            } else {
                p = e;
            }
        } else {
            p++;
        }
    }
    return max;
}

void rt__store_trouble(rt_store *s, int64_t *logged_ns, const char *what) {
    int64_t now = rt__mono_ns();
    if (now - *logged_ns > 10000000000LL) {
        rt__log(RT_LOG_ERROR, "db_error", NULL, "%s: %s; retrying", what,
                s->errmsg);
        *logged_ns = now;
    }
    if (rt__store_broken(s)) rt__store_reconnect(s);
}

static const volatile sig_atomic_t *store_stop_flag;

void rt__store_on_stop(const volatile sig_atomic_t *flag) {
    store_stop_flag = flag;
}

bool rt__store_stop_requested(void) {
    return store_stop_flag && *store_stop_flag;
}

void rt__store_interrupt(rt_store *s) {
    if (s) s->ops->interrupt(s);
}
