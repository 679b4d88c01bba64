/*
 * jobs.c — the jobs the torture runs (rowcopy and aggregate, sized so one
 * run lasts tens of milliseconds) and the checks after each kill and each
 * finished round, built on tests/invariants.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "torture.h"

/* rowcopy: 12 chunks of copy; aggregate: 6 chunks of report. */
static const char *const rowcopy_params[] = {"--param", "rows=600", "--param",
                                             "item_us=10", NULL};
static const char *const aggregate_params[] = {"--param", "days=12", "--param",
                                               "per_day=200", NULL};

const t_job t_rowcopy = {"rowcopy", rowcopy_params, "50", {"seed", "copy", "report"}};
const t_job t_aggregate = {"aggregate", aggregate_params, "2",
                           {"seed", "summarize", "report"}};

void t_run_argv(const t_job *job, const char *key, const char *const *extra,
                const char **out) {
    int n = 0;
    out[n++] = "run";
    out[n++] = job->name;
    out[n++] = "--key";
    out[n++] = key;
    for (int i = 0; job->params[i]; i++) out[n++] = job->params[i];
    out[n++] = "--chunk-items";
    out[n++] = job->chunk;
    out[n++] = "--if-running";
    out[n++] = "wait";
    for (int i = 0; extra && extra[i] && n < 39; i++) out[n++] = extra[i];
    out[n] = NULL;
}

void t_check_progress(t_db *db, const t_job *job, const char *key, int *step) {
    inv_db *c = t_db_check(db);
    if (!c) { /* killed before the database file existed */
        if (step) *step = -2;
        return;
    }
    t_db_integrity(db, c);
    inv_run run;
    char msg[1024];
    /* One snapshot for the progress row and the data: the session of a
     * client killed just after it sent COMMIT may still be committing. */
    if (!inv_exec(c, db->backend == T_SQLITE ? "BEGIN"
                                              : "BEGIN ISOLATION LEVEL REPEATABLE READ",
                  msg, sizeof msg))
        t_fail("checker: %s", msg);
    if (!inv_run_read(c, job->name, key, &run, msg, sizeof msg)) t_fail("%s", msg);
    bool ok = job == &t_rowcopy ? inv_rowcopy_progress(c, &run, key, msg, sizeof msg)
                                : inv_aggregate_progress(c, &run, key, msg, sizeof msg);
    char err[512];
    if (!inv_exec(c, "COMMIT", err, sizeof err)) t_fail("checker: %s", err);
    t_db_release(db, c);
    if (!ok) t_fail("progress row and data disagree: %s", msg);
    if (step)
        *step = !run.schema ? -2 : !run.exists ? -1
                : !strcmp(run.status, "done") ? 3 : (int)run.step_index;
}

void t_check_done(t_db *db, const t_job *job, const char *key) {
    inv_db *c = t_db_check(db);
    if (!c) t_fail("%s/%s exited 0 but there is no database", job->name, key);
    t_db_integrity(db, c);
    inv_run run;
    char msg[1024];
    int64_t running = -1, leases = -1;
    if (!inv_run_read(c, job->name, key, &run, msg, sizeof msg) ||
        inv_int(c, "SELECT count(*) FROM rt_run WHERE status = 'running'", &running,
                msg, sizeof msg) != INV_VALUE ||
        inv_int(c, "SELECT count(*) FROM rt_lease", &leases, msg, sizeof msg) != INV_VALUE)
        t_fail("%s", msg);
    if (!run.exists || strcmp(run.status, "done") != 0)
        t_fail("%s/%s exited 0 but its run is %s", job->name, key,
               run.exists ? run.status : "missing");
    bool ok = job == &t_rowcopy ? inv_rowcopy_progress(c, &run, key, msg, sizeof msg)
                                : inv_aggregate_progress(c, &run, key, msg, sizeof msg);
    if (ok) ok = inv_no_orphans(c, msg, sizeof msg);
    t_db_release(db, c);
    if (!ok) t_fail("after %s/%s finished: %s", job->name, key, msg);
    if (running != 0)
        t_fail("after %s/%s finished, %lld runs are still 'running'", job->name, key,
               (long long)running);
    if (leases != 0)
        t_fail("after %s/%s finished, %lld leases are still held", job->name, key,
               (long long)leases);
}
