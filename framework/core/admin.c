/*
 * admin.c — the operator's calls of the public API (ratchet.h,
 * "operating"): an open database handle (rt_db: a connection opened and
 * migrated the way every command opens one, rt__db_open), the exit-code
 * table for callers that exit like the CLI (rt_exit_code over
 * rt__exit_code), and retry, cancel, reset and prune of runs over ops.c
 * and run.c. `ratchet` itself calls these; so may an embedder or an HTTP
 * front end. They write nothing to stdout; rt_db_open logs why it failed
 * as every command does.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

struct rt_db {
    rt_store *s;  /* NULL: the open failed */
    int from, to; /* the schema's version before and after opening */
    int fail_code; /* the open's exit code when it failed (rt__exit_code) */
    char fail[2 * RT_ERRMSG_MAX]; /* and why */
};

int rt_db_open(const char *db_url, rt_db **db, char *err, size_t errlen) {
    err = rt__err_out(err, &errlen);
    if (!db) {
        snprintf(err, errlen, "rt_db_open: db is NULL");
        return RT_MISUSE;
    }
    rt_db *d = rt__xcalloc(1, sizeof *d);
    *db = d;
    if (!db_url) {
        snprintf(d->fail, sizeof d->fail, "rt_db_open: db_url is NULL");
        snprintf(err, errlen, "%s", d->fail);
        d->fail_code = RT_EXIT_USAGE;
        return RT_MISUSE;
    }
    int rc = rt__db_open(db_url, &d->s, &d->from, &d->to, &d->fail_code,
                         d->fail, sizeof d->fail);
    snprintf(err, errlen, "%s", d->fail);
    return rc;
}

void rt_db_close(rt_db *db) {
    if (!db) return;
    rt__store_close(db->s);
    free(db);
}

const char *rt_db_errmsg(const rt_db *db) {
    return !db ? "" : db->s ? db->s->errmsg : db->fail;
}

const char *rt_db_url(const rt_db *db) {
    return db && db->s ? db->s->url_display : "";
}

void rt_db_schema(const rt_db *db, int *from, int *to, int *latest) {
    bool open = db && db->s;
    if (from) *from = open ? db->from : 0;
    if (to) *to = open ? db->to : 0;
    if (latest) *latest = open ? rt__schema_latest(rt__store_name(db->s)) : 0;
}

rt_store *rt__db_store(rt_db *db) { return db && db->s ? db->s : NULL; }

const char *rt_versions(void) { return rt__store_versions(); }

int rt_exit_code(const rt_db *db, int rc) {
    if (db && !db->s) return db->fail_code; /* how its open failed */
    return rt__exit_code(rc, db ? db->s : NULL);
}

/* The operations need an open handle. */
#define ADMIN_OPEN(db)                                                       \
    do {                                                                     \
        if (!(db) || !(db)->s) return RT_MISUSE;                             \
    } while (0)

int rt_run_name_check(const char *run, char *err, size_t errlen) {
    err = rt__err_out(err, &errlen);
    rt__run_ref ref;
    int rc = rt__run_ref_parse(run ? run : "", &ref, err, errlen);
    rt__run_ref_free(&ref);
    return rc;
}

/* retry or cancel of RUN ("ID" or "JOB/KEY"): one line for people in msg. */
static int admin_run_op(rt_db *db, const rt_job *const *jobs, const char *run,
                        char *msg, size_t msglen,
                        int (*op)(rt_store *, const rt_job *const *,
                                  const rt__run_ref *, rt__buf *)) {
    if (msg && msglen) msg[0] = '\0';
    ADMIN_OPEN(db);
    static const rt_job *const none[] = {NULL};
    rt__run_ref ref;
    char err[RT_ERRMSG_MAX];
    if (rt__run_ref_parse(run ? run : "", &ref, err, sizeof err) != RT_OK)
        return rt__store_fail(db->s, RT_INVALID, "%s", err);
    rt__buf out = {0};
    int rc = op(db->s, jobs ? jobs : none, &ref, &out);
    if (rc == RT_OK && msg && msglen)
        snprintf(msg, msglen, "%s", out.p ? out.p : "");
    rt__buf_free(&out);
    rt__run_ref_free(&ref);
    return rc;
}

int rt_retry_run(rt_db *db, const rt_job *const *jobs, const char *run,
                 char *msg, size_t msglen) {
    return admin_run_op(db, jobs, run, msg, msglen, rt__ops_retry);
}

int rt_cancel_run(rt_db *db, const rt_job *const *jobs, const char *run,
                  char *msg, size_t msglen) {
    return admin_run_op(db, jobs, run, msg, msglen, rt__ops_cancel);
}

int rt_prune_runs(rt_db *db, int64_t older_than_ms, int64_t *deleted) {
    ADMIN_OPEN(db);
    int64_t scratch;
    return rt__ops_prune(db->s, older_than_ms, deleted ? deleted : &scratch);
}

/* Tries of a reset whose run moves on between its read and its delete. */
#define ADMIN_RESET_ROUNDS 10

int rt_reset_run(rt_db *db, const char *job, const char *key, bool force,
                 rt_reset_info *was) {
    ADMIN_OPEN(db);
    rt_store *s = db->s;
    if (!job || !key)
        return rt__store_fail(s, RT_MISUSE, "rt_reset_run: job and key are "
                              "required");
    int rc = RT_NOTFOUND;
    bool deleted = false;
    /* The delete is fenced on what was read: a run that moved on meanwhile
     * (started, taken over, finished) is read and judged again. */
    for (int round = 0; round < ADMIN_RESET_ROUNDS && !deleted; round++) {
        rt__run run;
        rc = rt__run_load(s, job, key, &run);
        if (rc != RT_OK) break;
        if (!force && run.status == RT__ST_RUNNING) {
            rt__run_free(&run);
            return rt__store_fail(s, RT_HELD, "reset: run %s[%s] is running; "
                                  "stop its process first, or use --force to "
                                  "discard it anyway (that process then "
                                  "stops, exit 3)", job, key);
        }
        rc = rt__run_delete(s, &run);
        deleted = rc == RT_OK;
        if (deleted && was) {
            was->id = run.id;
            was->status = rt__status_name(run.status);
            was->step = run.step_index + 1;
            was->items = run.items;
        }
        rt__run_free(&run);
        if (rc != RT_OK && rc != RT_NOTFOUND) break;
    }
    if (rc == RT_NOTFOUND && !deleted) {
        /* Still there after every round: it kept moving on. */
        rt__run probe;
        if (rt__run_load(s, job, key, &probe) == RT_OK) {
            rt__run_free(&probe);
            return rt__store_fail(s, RT_BUSY, "run %s[%s] changed under every "
                                  "one of %d tries; try again", job, key,
                                  ADMIN_RESET_ROUNDS);
        }
        return rt__store_fail(s, RT_NOTFOUND, "reset: no run of job '%s' with "
                              "key '%s'", job, key);
    }
    return rc;
}

/* ------------------------------------------------------------ listing */

/* An integer column, -1 when NULL. */
static int64_t admin_int(rt_stmt *st, int col) {
    return rt__store_column_type(st, col) == RT_TNULL
               ? -1
               : rt__store_column_int64(st, col);
}

static char *admin_text(rt_stmt *st, int col) {
    const char *t = rt__store_column_text(st, col);
    return t ? rt__xstrdup(t) : NULL;
}

/* The columns both listings read, in rt_run_row's order. */
#define ADMIN_RUN_COLUMNS                                                    \
    "r.id, r.job, r.run_key, r.status, r.step_index, r.step_name, r.items, " \
    "r.step_items, r.step_total, r.epoch, r.attempt, r.error, "             \
    "r.created_ms, r.started_ms, r.updated_ms, "

int rt_list_runs(rt_db *db, const char *job, int64_t limit, bool finished,
                 rt_run_row **rows, size_t *n) {
    if (!rows || !n) return RT_MISUSE;
    *rows = NULL;
    *n = 0;
    ADMIN_OPEN(db);
    rt_store *s = db->s;
    rt_value args[] = {job ? rt_text(job) : rt_null(),
                       rt_int(limit > 0 ? limit : INT64_MAX)};
    /* status: every run, newest first, with its lease's holder and ages
     * on the database's clock; history: the finished runs, newest finish
     * first (updated_ms stands in for a row written without one). */
    const char *sql =
        finished
            ? "SELECT " ADMIN_RUN_COLUMNS "coalesce(r.finished_ms, "
              "r.updated_ms), r.steps, NULL, NULL, NULL FROM rt_run r "
              "WHERE " RT__FINISHED_SQL " AND (CAST($1 AS TEXT) IS NULL OR "
              "job = $1) ORDER BY coalesce(finished_ms, updated_ms) DESC, "
              "id DESC LIMIT $2"
            : "SELECT " ADMIN_RUN_COLUMNS "r.finished_ms, r.steps, l.owner, "
              "rt_now_ms() - l.heartbeat_ms, rt_now_ms() - r.updated_ms "
              "FROM rt_run r LEFT JOIN rt_lease l ON l.job = r.job AND "
              "l.run_key = r.run_key "
              "WHERE CAST($1 AS TEXT) IS NULL OR r.job = $1 "
              "ORDER BY r.id DESC LIMIT $2";
    rt_stmt *st;
    int rc = rt__store_query(s, sql, 2, args, &st);
    size_t cap = 0;
    while (rc == RT_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *rows = rt__xrealloc(*rows, cap * sizeof **rows);
        }
        rt_run_row *r = &(*rows)[(*n)++];
        memset(r, 0, sizeof *r);
        r->id = rt__store_column_int64(st, 0);
        r->job = admin_text(st, 1);
        r->key = admin_text(st, 2);
        r->status = admin_text(st, 3);
        r->step_index = rt__count_clamp(rt__store_column_int64(st, 4));
        r->step = admin_text(st, 5);
        r->items = rt__store_column_int64(st, 6);
        r->step_items = rt__store_column_int64(st, 7);
        r->step_total = admin_int(st, 8);
        r->epoch = rt__store_column_int64(st, 9);
        r->attempt = rt__store_column_int64(st, 10);
        r->error = admin_text(st, 11);
        r->created_ms = admin_int(st, 12);
        r->started_ms = admin_int(st, 13);
        r->updated_ms = admin_int(st, 14);
        r->finished_ms = admin_int(st, 15);
        const char *steps = rt__store_column_text(st, 16);
        r->steps = 1;
        for (const char *p = steps ? steps : ""; *p; p++) r->steps += *p == '\n';
        r->holder = admin_text(st, 17);
        r->heartbeat_age_ms = admin_int(st, 18);
        r->since_progress_ms = admin_int(st, 19);
        rc = rt__store_step(st);
    }
    if (rc != RT_DONE) {
        rt_free_runs(*rows, *n);
        *rows = NULL;
        *n = 0;
        return rc;
    }
    return RT_OK;
}

void rt_free_runs(rt_run_row *rows, size_t n) {
    for (size_t i = 0; rows && i < n; i++) {
        free((void *)rows[i].job);
        free((void *)rows[i].key);
        free((void *)rows[i].status);
        free((void *)rows[i].step);
        free((void *)rows[i].error);
        free((void *)rows[i].holder);
    }
    free(rows);
}
