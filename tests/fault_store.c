/*
 * fault_store.c — the fault-injecting store behind fault_store.h: every
 * method forwards to the wrapped backend, statements are wrapped so that
 * their calls come back through here, and the plan's begin, exec or commit
 * fails instead of (or, for a lost COMMIT reply, after) the real call.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "fault_store.h"

/* The runner's fenced progress UPDATE (RUNNER_PROGRESS_SQL in runner.c,
 * alone or inside RUNNER_FENCED_SQL's WITH):
 * $3 step_index, $5 cursor_int, $7 items, $8 step_items. */
#define FS_PROGRESS_SQL "UPDATE rt_run SET step_index = $3,"

typedef struct fs_stmt {
    rt_stmt base;
    rt_stmt *inner;
    bool progress;  /* the progress UPDATE */
    fs_progress bound;
} fs_stmt;

typedef struct fs_store {
    rt_store base;
    rt_store_ops ops; /* this wrapper's table: the inner's name */
    rt_store *inner;
    fs_plan plan;
    int64_t calls[3]; /* FS_BEGIN, FS_EXEC, FS_COMMIT */
    int64_t injected;
    bool broken;      /* an injected RT_CONN until reconnect */
    bool pending;     /* this transaction ran a progress UPDATE */
    fs_progress next, committed;
    fs_stmt **stmts;
    int nstmts;
} fs_store;

static fs_store *fs_of(rt_store *s) { return (fs_store *)s; }
static fs_stmt *fs_st(rt_stmt *st) { return (fs_stmt *)st; }

/* The inner call failed: its message becomes ours. */
static int fs_pass(fs_store *f, int rc) {
    if (rc != RT_OK && rc != RT_ROW && rc != RT_DONE)
        memcpy(f->base.errmsg, f->inner->errmsg, sizeof f->base.errmsg);
    return rc;
}

/* Is this call of op the one (or one of those) to fail? */
static bool fs_due(fs_store *f, fs_op op) {
    int64_t n = ++f->calls[op == FS_COMMIT_LOST ? FS_COMMIT : op];
    fs_op planned = f->plan.op == FS_COMMIT_LOST ? FS_COMMIT : f->plan.op;
    if (f->plan.nth <= 0 || planned != op) return false;
    return n == f->plan.nth || (f->plan.persistent && n > f->plan.nth);
}

static int fs_inject(fs_store *f, const char *what) {
    f->injected++;
    if (f->plan.rc == RT_CONN) f->broken = true;
    return rt__store_fail(&f->base, f->plan.rc, "injected %s on %s #%lld",
                          rt_code_name(f->plan.rc), what,
                          (long long)f->calls[f->plan.op == FS_COMMIT_LOST
                                                  ? FS_COMMIT
                                                  : f->plan.op]);
}

static int fs_exec_script(rt_store *s, const char *sql) {
    fs_store *f = fs_of(s);
    if (f->broken) return rt__store_fail(s, RT_CONN, "connection lost (injected)");
    if (fs_due(f, FS_EXEC)) return fs_inject(f, "exec");
    return fs_pass(f, f->inner->ops->exec_script(f->inner, sql));
}

static int fs_begin(rt_store *s) {
    fs_store *f = fs_of(s);
    if (f->broken) return rt__store_fail(s, RT_CONN, "connection lost (injected)");
    if (fs_due(f, FS_BEGIN)) return fs_inject(f, "begin");
    f->inner->finishing = s->finishing;
    int rc = fs_pass(f, f->inner->ops->begin(f->inner));
    if (rc == RT_OK) f->pending = false;
    return rc;
}

static int fs_commit(rt_store *s) {
    fs_store *f = fs_of(s);
    if (f->broken) return rt__store_fail(s, RT_CONN, "connection lost (injected)");
    bool due = fs_due(f, FS_COMMIT);
    if (due && f->plan.op != FS_COMMIT_LOST) return fs_inject(f, "commit");
    int rc = fs_pass(f, f->inner->ops->commit(f->inner));
    if (rc == RT_OK && f->pending) f->committed = f->next;
    if (rc == RT_OK) f->pending = false;
    if (rc == RT_OK && due) return fs_inject(f, "commit (after it committed)");
    return rc;
}

static int fs_rollback(rt_store *s) {
    fs_store *f = fs_of(s);
    f->pending = false;
    int rc = fs_pass(f, f->inner->ops->rollback(f->inner));
    /* A connection that dropped took its transaction with it. */
    return f->broken ? RT_OK : rc;
}

static int fs_lock_schema(rt_store *s) {
    fs_store *f = fs_of(s);
    return fs_pass(f, f->inner->ops->lock_schema(f->inner));
}

static int fs_prepare(rt_store *s, const char *sql, rt_stmt **out) {
    fs_store *f = fs_of(s);
    *out = NULL;
    if (f->broken) return rt__store_fail(s, RT_CONN, "connection lost (injected)");
    rt_stmt *in;
    int rc = fs_pass(f, f->inner->ops->prepare(f->inner, sql, &in));
    if (rc != RT_OK) return rc;
    for (int i = 0; i < f->nstmts; i++)
        if (f->stmts[i]->inner == in) {
            *out = &f->stmts[i]->base;
            return RT_OK;
        }
    fs_stmt *w = calloc(1, sizeof *w);
    fs_stmt **grown = realloc(f->stmts, sizeof *grown * (size_t)(f->nstmts + 1));
    if (!w || !grown) {
        free(w);
        if (grown) f->stmts = grown;
        return rt__store_fail(s, RT_NOMEM, "out of memory");
    }
    f->stmts = grown;
    w->base.store = s;
    w->base.sql = in->sql;
    w->inner = in;
    w->progress = strstr(sql, FS_PROGRESS_SQL) != NULL;
    f->stmts[f->nstmts++] = w;
    *out = &w->base;
    return RT_OK;
}

static int fs_bind(rt_stmt *st, int idx, const rt_value *v) {
    fs_stmt *w = fs_st(st);
    if (w->progress) {
        bool null = v->type == RT_TNULL;
        int64_t i = v->type == RT_TINT ? v->u.i : 0;
        if (idx == 3) w->bound.step_index = i;
        if (idx == 5) {
            w->bound.has_cursor = !null;
            w->bound.cursor_int = i;
        }
        if (idx == 7) w->bound.items = i;
        if (idx == 8) w->bound.step_items = i;
    }
    return fs_pass(fs_of(st->store), w->inner->store->ops->bind(w->inner, idx, v));
}

static int fs_step(rt_stmt *st) {
    fs_stmt *w = fs_st(st);
    fs_store *f = fs_of(st->store);
    if (f->broken) return rt__store_fail(&f->base, RT_CONN, "connection lost (injected)");
    if (fs_due(f, FS_EXEC)) return fs_inject(f, "exec");
    f->inner->finishing = f->base.finishing;
    int rc = fs_pass(f, f->inner->ops->step(w->inner));
    if (w->progress && (rc == RT_ROW || rc == RT_DONE)) {
        f->next = w->bound;
        f->next.known = true;
        f->pending = true;
    }
    return rc;
}

/* A pipelined statement (PostgreSQL): an exec whose reply comes later. */
static int fs_send(rt_stmt *st) {
    fs_stmt *w = fs_st(st);
    fs_store *f = fs_of(st->store);
    if (f->broken) return rt__store_fail(&f->base, RT_CONN, "connection lost (injected)");
    if (fs_due(f, FS_EXEC)) return fs_inject(f, "exec");
    w->inner->keep = st->keep; /* rt__store_send_fenced's */
    w->inner->fence = st->fence;
    int rc = fs_pass(f, f->inner->ops->send(w->inner));
    if (w->progress && rc == RT_OK) {
        f->next = w->bound;
        f->next.known = true;
        f->pending = true;
    }
    return rc;
}

static int fs_reset(rt_stmt *st) {
    fs_stmt *w = fs_st(st);
    return fs_pass(fs_of(st->store), w->inner->store->ops->reset(w->inner));
}

static int fs_column_count(rt_stmt *st) {
    rt_stmt *in = fs_st(st)->inner;
    return in->store->ops->column_count(in);
}

static rt_type fs_column_type(rt_stmt *st, int col) {
    rt_stmt *in = fs_st(st)->inner;
    return in->store->ops->column_type(in, col);
}

static int64_t fs_column_int64(rt_stmt *st, int col) {
    rt_stmt *in = fs_st(st)->inner;
    return in->store->ops->column_int64(in, col);
}

static double fs_column_double(rt_stmt *st, int col) {
    rt_stmt *in = fs_st(st)->inner;
    return in->store->ops->column_double(in, col);
}

static const char *fs_column_text(rt_stmt *st, int col) {
    rt_stmt *in = fs_st(st)->inner;
    return in->store->ops->column_text(in, col);
}

static const void *fs_column_blob(rt_stmt *st, int col, size_t *len) {
    rt_stmt *in = fs_st(st)->inner;
    return in->store->ops->column_blob(in, col, len);
}

static int64_t fs_changes(rt_store *s) {
    fs_store *f = fs_of(s);
    return f->inner->ops->changes(f->inner);
}

static void fs_interrupt(rt_store *s) {
    fs_store *f = fs_of(s);
    f->inner->ops->interrupt(f->inner);
}

static void *fs_handle(rt_store *s) {
    fs_store *f = fs_of(s);
    return f->inner->ops->handle(f->inner);
}

static int fs_liveness_try(rt_store *s, uint64_t key, bool *got) {
    fs_store *f = fs_of(s);
    return fs_pass(f, f->inner->ops->liveness_try(f->inner, key, got));
}

static void fs_liveness_release(rt_store *s, uint64_t key) {
    fs_store *f = fs_of(s);
    f->inner->ops->liveness_release(f->inner, key);
}

static void fs_set_busy_timeout(rt_store *s, int ms) {
    fs_store *f = fs_of(s);
    if (f->inner->ops->set_busy_timeout) f->inner->ops->set_busy_timeout(f->inner, ms);
}

static int64_t fs_session_id(rt_store *s) {
    fs_store *f = fs_of(s);
    return f->inner->ops->session_id ? f->inner->ops->session_id(f->inner) : -1;
}

static bool fs_broken(rt_store *s) {
    fs_store *f = fs_of(s);
    return f->broken || (f->inner->ops->broken && f->inner->ops->broken(f->inner));
}

/* A new session: the old one's transaction is gone, as after a drop. */
static int fs_reconnect(rt_store *s) {
    fs_store *f = fs_of(s);
    if (f->broken) {
        f->inner->ops->rollback(f->inner);
        f->broken = false;
        f->pending = false;
        return RT_OK;
    }
    if (!f->inner->ops->reconnect) return RT_OK;
    return fs_pass(f, f->inner->ops->reconnect(f->inner));
}

static void fs_close_ops(rt_store *s) { fs_close(s); }

static const rt_store_ops fs_template = {
    .close = fs_close_ops,
    .exec_script = fs_exec_script,
    .begin = fs_begin,
    .commit = fs_commit,
    .rollback = fs_rollback,
    .lock_schema = fs_lock_schema,
    .prepare = fs_prepare,
    .bind = fs_bind,
    .step = fs_step,
    .reset = fs_reset,
    .column_count = fs_column_count,
    .column_type = fs_column_type,
    .column_int64 = fs_column_int64,
    .column_double = fs_column_double,
    .column_text = fs_column_text,
    .column_blob = fs_column_blob,
    .changes = fs_changes,
    .interrupt = fs_interrupt,
    .handle = fs_handle,
    .liveness_try = fs_liveness_try,
    .liveness_release = fs_liveness_release,
    .set_busy_timeout = fs_set_busy_timeout,
    .session_id = fs_session_id,
    .broken = fs_broken,
    .reconnect = fs_reconnect,
};

rt_store *fs_wrap(rt_store *inner, const fs_plan *plan) {
    fs_store *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->ops = fs_template;
    f->ops.name = inner->ops->name; /* migrations pick SQL by name */
    if (inner->ops->send) f->ops.send = fs_send; /* optional, as there */
    f->base.ops = &f->ops;
    f->base.url_display = inner->url_display;
    f->base.single_writer = inner->single_writer;
    f->base.in_process = inner->in_process;
    f->base.fast_takeover = inner->fast_takeover;
    f->base.borrowed = true;
    f->inner = inner;
    f->plan = *plan;
    return &f->base;
}

void fs_close(rt_store *s) {
    if (!s) return;
    fs_store *f = fs_of(s);
    for (int i = 0; i < f->nstmts; i++) free(f->stmts[i]);
    free(f->stmts);
    free(f);
}

int64_t fs_injected(const rt_store *s) { return ((const fs_store *)s)->injected; }

const fs_progress *fs_committed(const rt_store *s) {
    return &((const fs_store *)s)->committed;
}
