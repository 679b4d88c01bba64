/*
 * ctx.c — the API a step sees through its rt_ctx: the run's identity and
 * parameters, the cursor, item counting and the between-items question, SQL
 * on the step's own connection, logging and errors.
 *
 * Stop semantics live here. A step that calls rt_continue() is chunked: on a
 * stop it is told "no" and commits what it finished. A step that has not
 * asked is atomic: from the stop on, each of its SQL calls fails with
 * RT_STOPPED (the signal handler also interrupts the call in flight), so its
 * transaction rolls back right away instead of finishing doomed work.
 *
 * A job's params check (rt_job.check) gets an rt_ctx too, with no store and
 * no step: the param getters work, SQL answers RT_MISUSE.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

const char *rt_code_name(int rc) {
    switch (rc) {
#define RT_XX(name, value, text)                                               \
    case value: return "RT_" #name;
        RT_CODE_MAP(RT_XX)
#undef RT_XX
    default: return "RT_UNKNOWN";
    }
}

const char *rt_strerror(int rc) {
    switch (rc) {
#define RT_XX(name, value, text)                                               \
    case value: return text;
        RT_CODE_MAP(RT_XX)
#undef RT_XX
    default: return "unknown code";
    }
}

/* ------------------------------------------------------------ identity */

const char *rt_job_name(const rt_ctx *ctx) { return ctx->job->name; }
const char *rt_key(const rt_ctx *ctx) { return ctx->run->key; }
int64_t rt_run_id(const rt_ctx *ctx) { return ctx->run->id; }
const char *rt_step_name(const rt_ctx *ctx) {
    return ctx->step ? ctx->step->name : NULL;
}
int rt_attempt(const rt_ctx *ctx) { return ctx->attempt; }
const char *rt_backend(const rt_ctx *ctx) {
    return ctx->store ? rt__store_name(ctx->store) : NULL;
}

struct sqlite3 *rt_sqlite3(rt_ctx *ctx) {
    return rt__store_sqlite_db(ctx->store);
}

struct pg_conn *rt_pgconn(rt_ctx *ctx) {
    return rt__store_pg_conn(ctx->store);
}

/* -------------------------------------------------------------- params */

const char *rt_param(const rt_ctx *ctx, const char *name, const char *def) {
    const char *v = rt__params_get(&ctx->run->params, name);
    if (v) return v;
    for (const rt_param_def *p = ctx->job->params; p && p->name; p++)
        if (!strcmp(p->name, name) && p->def) return p->def;
    return def;
}

static int ctx_bad_param(rt_ctx *ctx, const char *name, const char *value,
                         const char *want) {
    snprintf(ctx->errmsg, sizeof ctx->errmsg,
             "param %s: '%s' is not %s", name, value, want);
    return RT_INVALID;
}

int rt_param_int64(rt_ctx *ctx, const char *name, int64_t def, int64_t *out) {
    const char *v = rt_param(ctx, name, NULL);
    *out = def;
    if (!v) return RT_OK;
    return rt__parse_int64(v, out) ? RT_OK
                                   : ctx_bad_param(ctx, name, v, "an integer");
}

int rt_param_double(rt_ctx *ctx, const char *name, double def, double *out) {
    const char *v = rt_param(ctx, name, NULL);
    *out = def;
    if (!v) return RT_OK;
    return rt__parse_double(v, out) ? RT_OK
                                    : ctx_bad_param(ctx, name, v, "a number");
}

int rt_param_bool(rt_ctx *ctx, const char *name, bool def, bool *out) {
    const char *v = rt_param(ctx, name, NULL);
    *out = def;
    if (!v) return RT_OK;
    return rt__parse_bool(v, out)
               ? RT_OK
               : ctx_bad_param(ctx, name, v, "a boolean (true/false)");
}

int rt__job_check(const rt_job *job, const char *key, const rt__params *params,
                  char *err, size_t errlen) {
    if (!job->check) return RT_OK;
    /* A run that is not stored yet: its key and params, nothing else. */
    rt__run run;
    memset(&run, 0, sizeof run);
    run.job = (char *)job->name;
    run.key = (char *)(key ? key : "");
    if (params) run.params = *params; /* borrowed: not freed here */
    rt_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.job = job;
    ctx.run = &run;
    ctx.total = -1;
    int rc = job->check(&ctx);
    free(ctx.cursor_bytes);
    if (rc == RT_OK) return RT_OK;
    snprintf(err, errlen, "job %s refuses these params: %s", job->name,
             ctx.errmsg[0] ? ctx.errmsg : rt_strerror(rc));
    return RT_INVALID;
}

/* -------------------------------------------------------------- cursor */

bool rt_has_cursor(const rt_ctx *ctx) { return ctx->has_cursor; }

int64_t rt_cursor_int64(const rt_ctx *ctx) { return ctx->cursor_int; }

const void *rt_cursor_bytes(const rt_ctx *ctx, size_t *len) {
    if (len) *len = ctx->has_cursor_bytes ? ctx->cursor_len : 0;
    return ctx->has_cursor_bytes ? ctx->cursor_bytes : NULL;
}

void rt_set_cursor_int64(rt_ctx *ctx, int64_t value) {
    ctx->cursor_int = value;
    ctx->has_cursor = true;
}

int rt_set_cursor_bytes(rt_ctx *ctx, const void *bytes, size_t len) {
    if (len > RT_CURSOR_MAX) {
        snprintf(ctx->errmsg, sizeof ctx->errmsg,
                 "cursor of %zu bytes exceeds RT_CURSOR_MAX (%d)", len,
                 RT_CURSOR_MAX);
        return RT_INVALID;
    }
    if (len + 1 > ctx->cursor_cap) {
        ctx->cursor_cap = len + 1;
        ctx->cursor_bytes = rt__xrealloc(ctx->cursor_bytes, ctx->cursor_cap);
    }
    if (len) memcpy(ctx->cursor_bytes, bytes, len);
    ctx->cursor_bytes[len] = 0;
    ctx->cursor_len = len;
    ctx->has_cursor_bytes = ctx->has_cursor = true;
    return RT_OK;
}

/* ------------------------------------------------------ items, stopping */

/*
 * Whether this chunk's time budget is spent. Asked between every two items,
 * where a read of the precise clock (~35 ns) is a noticeable share of a
 * cheap item's cost: a budget of CTX_COARSE_BUDGET_MS or more is read on the
 * coarse clock, which lags by at most a tick (1-4 ms), so such a chunk ends
 * at most that much late, never early.
 */
#define CTX_COARSE_BUDGET_MS 100

static bool ctx_budget_spent(const rt_ctx *ctx) {
    int64_t now = ctx->budget_ms >= CTX_COARSE_BUDGET_MS ? rt__mono_coarse_ns()
                                                         : rt__mono_ns();
    return now - ctx->chunk_start_ns >= ctx->budget_ms * 1000000;
}

bool rt_continue(rt_ctx *ctx) {
    /* Failpoint step (test builds): between items, inside the chunk's
     * transaction; an ioerr there fails the step's next SQL call. */
    (void)RT_FAILPOINT(ctx->store, "step");
    if (!ctx->asked) {
        ctx->asked = true;
        rt__signals_atomic(false);
    }
    if (rt__stop_flag) {
        ctx->stopped = true;
        return false;
    }
    if (ctx->budget_items && ctx->chunk_items >= ctx->budget_items)
        return false;
    /* `ratchet cancel`: end the chunk here; its commit ends the run. */
    if (ctx->cancel && *ctx->cancel) return false;
    if (ctx->budget_ms && ctx_budget_spent(ctx)) return false;
    return true;
}

bool rt_stop_requested(const rt_ctx *ctx) {
    (void)ctx;
    return rt__stop_flag != 0;
}

int64_t rt_chunk_left(const rt_ctx *ctx) {
    if (!ctx->budget_items) return INT64_MAX;
    int64_t left = ctx->budget_items - ctx->chunk_items;
    return left > 0 ? left : 0;
}

/* Saturated rather than overflowing (a count near INT64_MAX, if only from
 * a row edited by hand): items are a measure, not the run's position, and
 * a step has no way to hear of an error here, so the count sticks at the
 * limit and the work goes on. */
void rt_add_items(rt_ctx *ctx, int64_t n) {
    ctx->chunk_items = rt__add_sat(ctx->chunk_items, n);
    ctx->step_items = rt__add_sat(ctx->step_items, n);
}

int64_t rt_items(const rt_ctx *ctx) { return ctx->step_items; }

void rt_set_total(rt_ctx *ctx, int64_t total) { ctx->total = total; }

int rt__ctx_check_stop(rt_ctx *ctx) {
    if (!ctx->store) { /* a job's params check (rt_job.check) */
        snprintf(ctx->errmsg, sizeof ctx->errmsg,
                 "no SQL in a job's params check: it runs before the run "
                 "exists");
        return RT_MISUSE;
    }
    int rc = RT_FAILPOINT_ARMED(ctx->store); /* test builds: see rt_continue */
    if (rc != RT_OK) {
        memcpy(ctx->errmsg, ctx->store->errmsg, sizeof ctx->errmsg);
        ctx->sql_refused = false; /* an injected I/O error */
        return rc;
    }
    if (!rt__signals_atomic_stopped()) return RT_OK;
    ctx->sql_stopped = true;
    snprintf(ctx->errmsg, sizeof ctx->errmsg,
             "stop requested: atomic step %s rolled back", ctx->step->name);
    return RT_STOPPED;
}

/* ------------------------------------------------------ errors, logging */

void rt__ctx_fields(const rt_ctx *ctx, rt__log_fields *f) {
    f->job = ctx->job->name;
    f->key = ctx->run->key;
    f->run = ctx->run->id;
    f->step = ctx->step ? ctx->step->name : NULL;
    f->items = ctx->step_items;
    f->ms = -1;
}

void rt_log(rt_ctx *ctx, int level, const char *fmt, ...) {
    if (level < RT_LOG_DEBUG || level > RT_LOG_ERROR) level = RT_LOG_ERROR;
    if (!rt__log_enabled(level)) return;
    char msg[RT_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rt__log_fields f;
    rt__ctx_fields(ctx, &f);
    rt__log(level, "log", &f, "%s", msg);
}

int rt_fail(rt_ctx *ctx, const char *fmt, ...) {
    /* Formatted aside, then copied: an argument may be rt_errmsg(ctx). */
    char msg[sizeof ctx->errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(ctx->errmsg, msg, sizeof msg);
    return RT_ERROR;
}

const char *rt_errmsg(const rt_ctx *ctx) { return ctx->errmsg; }

/* ----------------------------------------------------------------- SQL */

/* Copy the store's message to the step's context, and whether the
 * database refused the statement (the runner fails the run then, should
 * the step return the code); returns rc. */
static int ctx_sql_error(rt_store *s, int rc) {
    if (s->ctx && rc != RT_ROW && rc != RT_DONE && rc != RT_OK) {
        memcpy(s->ctx->errmsg, s->errmsg, sizeof s->ctx->errmsg);
        s->ctx->sql_refused = rc == RT_DBERR && s->refused;
        if (rc == RT_STOPPED) s->ctx->sql_stopped = true;
    }
    return rc;
}

int rt_prepare(rt_ctx *ctx, const char *sql, rt_stmt **stmt) {
    int rc = rt__ctx_check_stop(ctx);
    if (rc != RT_OK) return rc;
    return ctx_sql_error(ctx->store, rt__store_prepare(ctx->store, sql, stmt));
}

int rt_bind(rt_stmt *stmt, int idx, rt_value value) {
    return ctx_sql_error(stmt->store, rt__store_bind(stmt, idx, &value));
}

int rt_bind_int64(rt_stmt *stmt, int idx, int64_t value) {
    return rt_bind(stmt, idx, rt_int(value));
}

int rt_bind_text(rt_stmt *stmt, int idx, const char *text) {
    return rt_bind(stmt, idx, text ? rt_text(text) : rt_null());
}

int rt_next(rt_stmt *stmt) {
    if (rt__stop_flag && stmt->store->ctx && rt__signals_atomic_stopped()) {
        rt__store_reset(stmt);
        return rt__ctx_check_stop(stmt->store->ctx);
    }
    return ctx_sql_error(stmt->store, rt__store_step(stmt));
}

int rt_reset(rt_stmt *stmt) { return rt__store_reset(stmt); }

int rt_column_count(rt_stmt *stmt) {
    return rt__store_column_count(stmt);
}

rt_type rt_column_type(rt_stmt *stmt, int col) {
    return rt__store_column_type(stmt, col);
}

int64_t rt_column_int64(rt_stmt *stmt, int col) {
    return rt__store_column_int64(stmt, col);
}

double rt_column_double(rt_stmt *stmt, int col) {
    return rt__store_column_double(stmt, col);
}

const char *rt_column_text(rt_stmt *stmt, int col) {
    return rt__store_column_text(stmt, col);
}

const void *rt_column_blob(rt_stmt *stmt, int col, size_t *len) {
    return rt__store_column_blob(stmt, col, len);
}

int rt_exec(rt_ctx *ctx, const char *sql, int nargs, const rt_value *args) {
    int rc = rt__ctx_check_stop(ctx);
    if (rc != RT_OK) return rc;
    if (nargs == 0 && rt__sql_max_placeholder(sql) == 0)
        return ctx_sql_error(ctx->store,
                             rt__store_exec_script(ctx->store, sql));
    return ctx_sql_error(ctx->store,
                         rt__store_exec(ctx->store, sql, nargs, args, NULL));
}

int rt_exec_later(rt_ctx *ctx, const char *sql, int nargs,
                  const rt_value *args) {
    int rc = rt__ctx_check_stop(ctx);
    if (rc != RT_OK) return rc;
    ctx->store->item = ctx->step_items + 1; /* for its error message */
    return ctx_sql_error(ctx->store,
                         rt__store_exec_later(ctx->store, sql, nargs, args));
}

int rt_query_int64(rt_ctx *ctx, const char *sql, int nargs,
                   const rt_value *args, int64_t *out) {
    int rc = rt__ctx_check_stop(ctx);
    if (rc != RT_OK) return rc;
    rt_stmt *st;
    rc = rt__store_query(ctx->store, sql, nargs, args, &st);
    if (rc == RT_ROW) {
        *out = rt__store_column_int64(st, 0);
        rt__store_reset(st);
        return RT_OK;
    }
    if (rc == RT_DONE) {
        snprintf(ctx->errmsg, sizeof ctx->errmsg, "query returned no row");
        return RT_NOTFOUND;
    }
    return ctx_sql_error(ctx->store, rc);
}

int64_t rt_changes(rt_ctx *ctx) {
    return ctx->store ? rt__store_changes(ctx->store) : 0;
}
