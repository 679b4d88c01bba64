/*
 * wait.c — rt_wait(): block until a run is finished, for `ratchet wait` and
 * for programs that embed ratchet and must not start a duplicate (a web
 * request that needs a batch's result waits for the run that is going).
 *
 * It only reads: the run row, polled every 100 ms at first and every 500 ms
 * after a few seconds, on a connection of its own.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"

/* The run (job, key), or job's latest run when key is NULL. */
static int wait_load(rt_store *s, const char *job, const char *key,
                     rt__run *run) {
    if (key) return rt__run_load(s, job, key, run);
    rt_value arg = rt_text(job);
    rt_stmt *st;
    int rc = rt__store_query(s,
                             "SELECT run_key FROM rt_run WHERE job = $1 "
                             "ORDER BY id DESC LIMIT 1",
                             1, &arg, &st);
    if (rc == RT_DONE) return RT_NOTFOUND;
    if (rc != RT_ROW) return rc;
    char *latest = rt__xstrdup(rt__store_column_text(st, 0));
    rt__store_reset(st);
    rc = rt__run_load(s, job, latest, run);
    free(latest);
    return rc;
}

int rt_wait(const char *db_url, const char *job, const char *key,
            double timeout_s, char *err, size_t errlen) {
    err = rt__err_out(err, &errlen);
    if (!db_url || !job) {
        snprintf(err, errlen, "rt_wait: db_url and job are required");
        return RT_MISUSE;
    }
    if (key && rt__key_check(key, err, errlen) != RT_OK) return RT_INVALID;
    rt_store *s = NULL;
    int rc = rt__store_open(db_url, &s, err, errlen);
    if (rc != RT_OK) return rc;
    rc = rt__migrate(s, NULL, NULL);
    int64_t start = rt__mono_ns();
    while (rc == RT_OK) {
        rt__run run;
        memset(&run, 0, sizeof run);
        rc = wait_load(s, job, key, &run);
        if (rc == RT_NOTFOUND) {
            snprintf(err, errlen, "no run of job '%s'%s%s%s", job,
                     key ? " with key '" : "", key ? key : "", key ? "'" : "");
            break;
        }
        if (rc != RT_OK) break;
        bool done = run.status == RT__ST_DONE;
        /* Ended without its work: failed, skipped or cancelled. */
        const char *how = run.status == RT__ST_FAILED      ? "failed"
                          : run.status == RT__ST_SKIPPED   ? "was skipped"
                          : run.status == RT__ST_CANCELLED ? "was cancelled"
                                                           : NULL;
        if (how)
            snprintf(err, errlen, "run '%s' of %s %s: %s", run.key, job, how,
                     run.error ? run.error : "no message");
        else if (!done)
            snprintf(err, errlen, "run '%s' of %s is still %s", run.key, job,
                     rt__status_name(run.status));
        rt__run_free(&run);
        if (done) break;
        if (how) {
            rc = RT_ERROR;
            break;
        }
        double waited = (double)(rt__mono_ns() - start) / 1e9;
        if (timeout_s >= 0 && waited >= timeout_s) {
            rc = RT_TIMEOUT;
            break;
        }
        double nap = waited < 3 ? 0.1 : 0.5;
        if (timeout_s >= 0 && nap > timeout_s - waited) nap = timeout_s - waited;
        struct timespec ts = {0, (long)(nap * 1e9)};
        nanosleep(&ts, NULL);
    }
    if (rc != RT_OK && rc != RT_ERROR && rc != RT_TIMEOUT && rc != RT_NOTFOUND)
        snprintf(err, errlen, "%s", s->errmsg);
    rt__store_close(s);
    return rc;
}
