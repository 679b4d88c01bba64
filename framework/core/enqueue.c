/*
 * enqueue.c — putting runs on the queue and reading one back: rt_enqueue
 * (its own connection), rt_enqueue_sqlite / rt_enqueue_pg (the caller's
 * connection and open transaction, so a run is enqueued exactly when the
 * caller's business transaction commits), and rt_run_status.
 *
 * A queued run is an rt_run row with queued = 1, status 'pending'; workers
 * claim it (worker.c). Enqueueing is idempotent by (job, key).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* "2026-11-23T12:40:00.123Z-1a2b3c4d": unique without coordination. */
static void enqueue_new_key(char *out, size_t n) {
    char iso[40];
    rt__iso8601_ms(rt__wall_ms(), iso, sizeof iso);
    snprintf(out, n, "%s-%08x", iso, rt__random_u32());
}

int rt__enqueue_params(const rt_job *job, const rt_enqueue_opts *o,
                          rt__params *out, char *err, size_t errlen) {
    for (const char *const *p = o->params; p && *p; p++) {
        const char *eq = strchr(*p, '=');
        if (!eq || eq == *p) {
            snprintf(err, errlen, "param '%s' is not NAME=VALUE", *p);
            return RT_INVALID;
        }
        char *name = rt__xstrndup(*p, (size_t)(eq - *p));
        int rc = rt__job_check_param(job, name, eq + 1, err, errlen);
        if (rc == RT_OK) rt__params_set(out, name, eq + 1);
        free(name);
        if (rc != RT_OK) return rc;
    }
    /* The job's own rules, before anything is stored. */
    return rt__job_check(job, o->key, out, err, errlen);
}

int rt__enqueue(rt_store *s, bool own_tx, const rt_job *job,
                const rt_enqueue_opts *o, char *key_out, size_t key_len,
                bool *created, char *err, size_t errlen) {
    static const rt_enqueue_opts none;
    if (!o) o = &none;
    char key[RT__KEY_MAX + 1];
    if (o->key && rt__key_check(o->key, err, errlen) != RT_OK)
        return RT_INVALID;
    if (o->key) snprintf(key, sizeof key, "%s", o->key);
    else enqueue_new_key(key, sizeof key);
    if (o->max_attempts < 0 || o->run_at_ms < 0) {
        snprintf(err, errlen, "max_attempts and run_at must not be negative");
        return RT_INVALID;
    }
    rt__params params = {0};
    int rc = rt__enqueue_params(job, o, &params, err, errlen);
    rt__run_new n = {.key = o->key ? o->key : key,
                     .params = &params,
                     .slot_ms = -1,
                     .queued = true,
                     .priority = o->priority,
                     .run_at_ms = o->run_at_ms,
                     .max_attempts = o->max_attempts};
    int64_t id = 0;
    if (rc == RT_OK && own_tx) rc = rt__store_begin(s);
    if (rc == RT_OK) rc = rt__run_create(s, job, &n, &id);
    if (own_tx && rc == RT_OK) rc = rt__store_commit(s);
    else if (own_tx && s->in_tx) rt__store_abort(s, rc);
    rt__params_free(&params);
    if (rc != RT_OK && rc != RT_INVALID)
        snprintf(err, errlen, "%s", s->errmsg);
    if (rc != RT_OK) return rc;
    if (created) *created = id != 0;
    if (key_out && key_len) snprintf(key_out, key_len, "%s", n.key);
    return RT_OK;
}

static int enqueue_on(int (*wrap)(void *, rt_store **), void *handle,
                      const rt_job *job, const rt_enqueue_opts *o,
                      char *key_out, size_t key_len, bool *created, char *err,
                      size_t errlen) {
    err = rt__err_out(err, &errlen);
    rt_store *s;
    if (!job || wrap(handle, &s) != RT_OK) {
        snprintf(err, errlen, "rt_enqueue_*: a connection and a job are required");
        return RT_MISUSE;
    }
    int rc = rt__enqueue(s, false, job, o, key_out, key_len, created, err,
                         errlen);
    rt__store_close(s);
    return rc;
}

int rt_enqueue_sqlite(struct sqlite3 *db, const rt_job *job,
                      const rt_enqueue_opts *o, char *key_out, size_t key_len,
                      bool *created, char *err, size_t errlen) {
    return enqueue_on(rt__store_wrap_sqlite_db, db, job, o, key_out, key_len,
                      created, err, errlen);
}

int rt_enqueue_pg(struct pg_conn *conn, const rt_job *job,
                  const rt_enqueue_opts *o, char *key_out, size_t key_len,
                  bool *created, char *err, size_t errlen) {
    return enqueue_on(rt__store_wrap_pg_conn, conn, job, o, key_out, key_len,
                      created, err, errlen);
}

/* Open db_url and bring its schema up to date; err gets the reason. */
static int enqueue_open(const char *db_url, rt_store **s, char *err,
                        size_t errlen) {
    int rc = rt__store_open(db_url, s, err, errlen);
    if (rc != RT_OK) return rc;
    if ((rc = rt__migrate(*s, NULL, NULL)) != RT_OK) {
        snprintf(err, errlen, "%s", (*s)->errmsg);
        rt__store_close(*s);
        *s = NULL;
    }
    return rc;
}

int rt_enqueue(const char *db_url, const rt_job *job, const rt_enqueue_opts *o,
               char *key_out, size_t key_len, bool *created, char *err,
               size_t errlen) {
    err = rt__err_out(err, &errlen);
    if (!db_url || !job) {
        snprintf(err, errlen, "rt_enqueue: db_url and job are required");
        return RT_MISUSE;
    }
    rt_store *s;
    int rc = enqueue_open(db_url, &s, err, errlen);
    if (rc != RT_OK) return rc;
    rc = rt__enqueue(s, true, job, o, key_out, key_len, created, err, errlen);
    rt__store_close(s);
    return rc;
}

int rt_run_status(const char *db_url, const char *job, const char *key,
                  rt_run_info *info, char *err, size_t errlen) {
    static _Thread_local rt__run last;
    err = rt__err_out(err, &errlen);
    if (!db_url || !job || !key || !info) {
        snprintf(err, errlen, "rt_run_status: db_url, job, key and info are required");
        return RT_MISUSE;
    }
    if (rt__key_check(key, err, errlen) != RT_OK) return RT_INVALID;
    rt_store *s;
    int rc = enqueue_open(db_url, &s, err, errlen);
    if (rc != RT_OK) return rc;
    rt__run_free(&last);
    rc = rt__run_load(s, job, key, &last);
    if (rc == RT_NOTFOUND)
        snprintf(err, errlen, "no run of job '%s' with key '%s'", job, key);
    else if (rc != RT_OK)
        snprintf(err, errlen, "%s", s->errmsg);
    rt__store_close(s);
    if (rc != RT_OK) return rc;
    memset(info, 0, sizeof *info);
    info->id = last.id;
    info->status = rt__status_name(last.status);
    bool finished = last.status == RT__ST_DONE;
    info->step = finished ? NULL : last.step_name;
    info->items = last.items;
    info->attempt = last.attempt;
    info->error = last.error && *last.error ? last.error : NULL;
    return RT_OK;
}
