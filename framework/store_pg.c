/*
 * store_pg.c — the PostgreSQL backend (libpq), for runs shared by replicas.
 *
 * URL: postgresql://... or postgres://... (libpq URI), or a libpq conninfo
 * string ("host=... dbname=..."). Our session defaults come before the URL
 * in PQconnectdbParams, so anything the URL says wins:
 *   application_name ratchet:<job>; TCP keepalives (10 s idle, 5 s interval,
 *   3 probes) and tcp_user_timeout 30 s, so a dead peer is noticed; and
 *   options "-c idle_in_transaction_session_timeout=60s -c lock_timeout=30s
 *   -c statement_timeout=0", so a stalled holder cannot keep row locks for
 *   ever, a lock wait turns into a retryable RT_BUSY, and no statement is cut
 *   short unless the job asks (a URL's own options= replaces all three).
 *
 * Statements are prepared once per connection (PQprepare, parameter types
 * inferred by the server) and cached by SQL text. Parameters go as text,
 * blobs as binary bytea; results come back as text and are converted on
 * access (bytea from its hex form). A statement's result is fetched whole on
 * its first step; steps then walk its rows.
 *
 * Errors: after any failure the connection is judged by PQstatus, not by the
 * SQLSTATE (a backend killed by the server often reports none): CONNECTION_BAD
 * is RT_CONN, and rt__store_reconnect() makes a new session on the same
 * store. 40001/40P01/55P03 are RT_BUSY; 57014 during a stop is RT_STOPPED.
 * Passwords never reach a message: every URL and libpq text shown passes
 * through rt__mask_secrets().
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
    char **values;      /* bound parameters (owned), NULL = SQL NULL */
    int *lengths;
    int *formats;
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
        else if (!strcmp(state, "57014") && rt__stop_flag)
            rc = RT_STOPPED;
        else if (!strncmp(state, "08", 2))
            rc = RT_CONN;
    }
    char what[16];
    snprintf(what, sizeof what, "%s", state ? state : "error");
    return pg_fail_native(s, rc, what, msg);
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
    const char *vals[] = {pg_app_name,
                          "1",
                          "10",
                          "5",
                          "3",
                          "30000",
                          "10",
                          "-c idle_in_transaction_session_timeout=60s "
                          "-c lock_timeout=30s -c statement_timeout=0",
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

static int pg_open(const char *given, rt_store **out, char *err,
                   size_t errlen) {
    *out = NULL;
    char *fast_opt = NULL;
    char *url = pg_take_option(given, "fast_takeover", &fast_opt);
    bool fast = true;
    if (fast_opt && !rt__parse_bool(fast_opt, &fast)) {
        snprintf(err, errlen,
                 "bad fast_takeover value '%s' in database URL (on or off)",
                 fast_opt);
        free(fast_opt);
        free(url);
        return RT_INVALID;
    }
    free(fast_opt);
    int rc = RT_OK;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        char *masked = rt__mask_secrets(perr ? perr : "out of memory");
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
    pg_store *s = rt__xcalloc(1, sizeof *s);
    s->base.ops = &rt__pg_ops;
    s->base.url_display = rt__mask_secrets(given);
    s->base.fast_takeover = fast;
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

static void pg_stmt_clear_params(pg_stmt *c) {
    for (int i = 0; i < c->nparams; i++) {
        free(c->values[i]);
        c->values[i] = NULL;
        c->lengths[i] = 0;
        c->formats[i] = 0;
    }
}

static void pg_stmt_free(pg_stmt *c) {
    pg_stmt_clear_result(c);
    pg_stmt_clear_params(c);
    free(c->values);
    free(c->lengths);
    free(c->formats);
    free(c->blob);
    free(c->blob_len);
    free(c->sql);
    free(c);
}

static int pg_wrap(void *handle, rt_store **out) {
    pg_store *s = rt__xcalloc(1, sizeof *s);
    s->base.ops = &rt__pg_ops;
    s->base.url_display = rt__xstrdup("postgres:(the caller's connection)");
    s->base.borrowed = true;
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
    return pg_connect(s);
}

/* Run a command without parameters; RT_OK or an error. */
static int pg_simple(pg_store *s, const char *sql, PGresult **keep) {
    if (!s->conn) return pg_fail_native(s, RT_CONN, "not connected", NULL);
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
    return pg_simple((pg_store *)base, sql, NULL);
}

static int pg_begin(rt_store *base) {
    return pg_simple((pg_store *)base, "BEGIN", NULL);
}

static int pg_commit(rt_store *base) {
    pg_store *s = (pg_store *)base;
    PGresult *res = NULL;
    int rc = pg_simple(s, "COMMIT", &res);
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
    return pg_simple(s, "ROLLBACK", NULL);
}

static int pg_lock_schema(rt_store *base) {
    /* Any constant shared by every ratchet: "ratchet" in ASCII. */
    return pg_simple((pg_store *)base,
                     "SELECT pg_advisory_xact_lock(126879154549864)", NULL);
}

static pg_stmt *pg_cache_find(pg_store *s, const char *sql) {
    for (int i = 0; i < s->nstmts; i++)
        if (s->stmts[i]->key_ptr == sql) return s->stmts[i];
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
    if (s->nstmts == s->capstmts) {
        s->capstmts = s->capstmts ? s->capstmts * 2 : 16;
        s->stmts = rt__xrealloc(s->stmts, sizeof *s->stmts * (size_t)s->capstmts);
    }
    s->stmts[s->nstmts++] = c;
    *out = &c->base;
    return RT_OK;
}

static int pg_bind(rt_stmt *base, int idx, const rt_value *v) {
    pg_stmt *c = (pg_stmt *)base;
    if (idx < 1 || idx > c->nparams)
        return rt__store_fail(base->store, RT_MISUSE,
                              "parameter $%d out of range (statement has %d)",
                              idx, c->nparams);
    int i = idx - 1;
    free(c->values[i]);
    c->values[i] = NULL;
    c->formats[i] = 0;
    c->lengths[i] = 0;
    char num[40];
    switch (v->type) {
    case RT_TNULL: break;
    case RT_TINT:
        snprintf(num, sizeof num, "%lld", (long long)v->u.i);
        c->values[i] = rt__xstrdup(num);
        break;
    case RT_TREAL:
        snprintf(num, sizeof num, "%.17g", v->u.d);
        c->values[i] = rt__xstrdup(num);
        break;
    case RT_TTEXT:
        if (v->u.b.p)
            c->values[i] = v->u.b.n == (size_t)-1
                               ? rt__xstrdup(v->u.b.p)
                               : rt__xstrndup(v->u.b.p, v->u.b.n);
        break;
    case RT_TBLOB:
        c->values[i] = rt__xmalloc(v->u.b.n ? v->u.b.n : 1);
        if (v->u.b.n) memcpy(c->values[i], v->u.b.p, v->u.b.n);
        c->lengths[i] = (int)v->u.b.n;
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
    if (!c->prepared) {
        PGresult *res = PQprepare(s->conn, c->name, c->sql, c->nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            int rc = pg_result_error(s, res);
            PQclear(res);
            return rc;
        }
        PQclear(res);
        c->prepared = true;
    }
    PGresult *res = PQexecPrepared(s->conn, c->name, c->nparams,
                                   (const char *const *)c->values, c->lengths,
                                   c->formats, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        int rc = pg_result_error(s, res);
        PQclear(res);
        return rc;
    }
    s->changes = strtoll(PQcmdTuples(res), NULL, 10);
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
    return RT_OK;
}

static int pg_step(rt_stmt *base) {
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

static void *pg_handle(rt_store *base) { return ((pg_store *)base)->conn; }

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
    .liveness_try = pg_liveness_try,
    .liveness_release = pg_liveness_release,
    .session_id = pg_session_id,
    .broken = pg_broken,
    .reconnect = pg_reconnect,
};
