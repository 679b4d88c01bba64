/*
 * ops.c — the operator's commands on runs that exist: `retry` (a failed,
 * cancelled or skipped run becomes pending again and resumes where it
 * stopped), `cancel` (a run ends 'cancelled') and `prune` (delete finished runs older than a duration).
 *
 * Each change is one UPDATE or DELETE guarded by the state it was decided
 * on (status, and epoch where a process may hold the run), so a race with a
 * runner never half-applies: the guard matches nothing, the run is read
 * again and the decision made anew. A running run is never written under
 * its holder: cancel only sets cancel_requested, which the runner reads back
 * with the fenced progress UPDATE of each commit (runner.c) and, in that
 * same transaction, ends the run 'cancelled' with the chunk's work kept. A
 * run marked 'running' whose process is gone (its lease is free) is
 * cancelled at once, with its epoch bumped so that a stalled holder that
 * wakes up can no longer commit.
 */
#include <stdlib.h>
#include <string.h>

#include "core/lifecycle.h"

/* The statuses of a run that is over. */
#define OPS_FINISHED RT__FINISHED_SQL

/* ----------------------------------------------------------- naming runs */

int rt__run_ref_parse(const char *text, rt__run_ref *out, char *err,
                      size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *p = text;
    while (*p >= '0' && *p <= '9') p++;
    if (*text && !*p) {
        if (!rt__parse_int64(text, &out->id) || out->id <= 0) {
            snprintf(err, errlen, "RUN '%s': not a run id", text);
            return RT_INVALID;
        }
        return RT_OK;
    }
    const char *slash = strchr(text, '/');
    if (!slash || slash == text || !slash[1]) {
        snprintf(err, errlen,
                 "RUN '%s': give a run id (digits, as in 'ratchet history') "
                 "or JOB/KEY",
                 text);
        return RT_INVALID;
    }
    char why[160];
    if (rt__key_check(slash + 1, why, sizeof why) != RT_OK) {
        snprintf(err, errlen, "RUN '%s': %s", text, why);
        return RT_INVALID;
    }
    out->job = rt__xstrndup(text, (size_t)(slash - text));
    out->key = rt__xstrdup(slash + 1);
    return RT_OK;
}

void rt__run_ref_free(rt__run_ref *ref) {
    free(ref->job);
    free(ref->key);
    memset(ref, 0, sizeof *ref);
}

/* Load the run ref names; RT_NOTFOUND (s->errmsg says so) if absent. */
static int ops_load(rt_store *s, const rt__run_ref *ref, rt__run *run) {
    memset(run, 0, sizeof *run);
    if (!ref->id) {
        int rc = rt__run_load(s, ref->job, ref->key, run);
        if (rc == RT_NOTFOUND)
            rt__store_fail(s, rc, "no run of job '%s' with key '%s'",
                           ref->job, ref->key);
        return rc;
    }
    rt_value arg = rt_int(ref->id);
    rt_stmt *st;
    int rc = rt__store_query(s, "SELECT job, run_key FROM rt_run WHERE id = $1",
                             1, &arg, &st);
    if (rc == RT_ROW) {
        char *job = rt__xstrdup(rt__store_column_text(st, 0));
        char *key = rt__xstrdup(rt__store_column_text(st, 1));
        rt__store_reset(st);
        rc = rt__run_load(s, job, key, run);
        free(job);
        free(key);
        /* Deleted and its key used again in between: not the same run. */
        if (rc == RT_OK && run->id != ref->id) {
            rt__run_free(run);
            rc = RT_NOTFOUND;
        }
    } else if (rc == RT_DONE) {
        rc = RT_NOTFOUND;
    }
    if (rc == RT_NOTFOUND)
        rt__store_fail(s, rc, "no run with id %lld", (long long)ref->id);
    return rc;
}

/* "run 12 (rowcopy/nightly)", control characters escaped (a key stored
 * before keys were checked may hold them). */
static void ops_name(const rt__run *run, char *out, size_t n) {
    char *job = rt__text_safe(run->job), *key = rt__text_safe(run->key);
    snprintf(out, n, "run %lld (%s/%s)", (long long)run->id, job, key);
    free(job);
    free(key);
}

static int ops_nsteps(const rt__run *run) {
    int n = 1;
    for (const char *p = run->steps ? run->steps : ""; *p; p++) n += *p == '\n';
    return n;
}

/* The run's name into name; RT_INVALID unless the lifecycle lets the
 * event move it from its status (the message names the states it would
 * take, want, for which the command is done: verb). */
static int ops_expect(rt_store *s, const rt__run *run, char *name, size_t n,
                      rt__event ev, const rt__status want[3],
                      const char *verb) {
    ops_name(run, name, n);
    if (rt__lifecycle_move(run->status, ev).allowed) return RT_OK;
    return rt__store_fail(s, RT_INVALID,
                          "%s is %s; only %s, %s or %s runs can be %s", name,
                          rt__status_name(run->status), rt__status_name(want[0]),
                          rt__status_name(want[1]), rt__status_name(want[2]),
                          verb);
}

/* The operator's verdict on run (lifecycle.c); *raced: it changed since it
 * was read, nothing was done. */
static int ops_move(rt_store *s, const rt__run *run, rt__event ev,
                    const char *why, bool settle_lease, bool *raced) {
    rt__verdict v = {.event = ev, .id = run->id, .job = run->job,
                     .key = run->key, .from = run->status,
                     .epoch = run->epoch, .who = "an operator", .why = why,
                     .failures = -1, .delay_ms = -1,
                     .scope = settle_lease ? run->job : NULL};
    bool moved = false;
    int rc = rt__transition(s, &v, &moved);
    *raced = rc == RT_OK && !moved;
    return rc;
}

/* One guarded change in a transaction of its own; *changes: rows hit. */
static int ops_change(rt_store *s, const char *sql, int nargs,
                      const rt_value *args, int64_t *changes) {
    *changes = 0;
    int rc = rt__store_begin(s);
    if (rc == RT_OK) rc = rt__store_exec(s, sql, nargs, args, changes);
    return rc == RT_OK ? rt__store_commit(s) : rt__store_abort(s, rc);
}

/* One decision and its guarded change; *raced: the guard matched nothing. */
typedef int (*ops_once_fn)(rt_store *s, const rt_job *const *jobs,
                           const rt__run *run, rt__buf *out, bool *raced);

/* The run changed between reading and writing it: read it again. Racing a
 * runner settles within a few rounds; this bounds a pathological one. */
#define OPS_ROUNDS 8

static int ops_rounds(rt_store *s, const rt_job *const *jobs,
                      const rt__run_ref *ref, rt__buf *out, ops_once_fn once) {
    for (int round = 0; round < OPS_ROUNDS; round++) {
        rt__run run;
        int rc = ops_load(s, ref, &run);
        if (rc != RT_OK) return rc;
        bool raced = false;
        rc = once(s, jobs, &run, out, &raced);
        rt__run_free(&run);
        if (!raced) return rc;
    }
    char name[600];
    if (ref->id) snprintf(name, sizeof name, "%lld", (long long)ref->id);
    else snprintf(name, sizeof name, "%s/%s", ref->job, ref->key);
    return rt__store_fail(s, RT_BUSY,
                          "run %s kept changing while this command ran; "
                          "nothing was done, try again",
                          name);
}

/* ----------------------------------------------------------------- retry */

static int ops_retry_once(rt_store *s, const rt_job *const *jobs,
                          const rt__run *run, rt__buf *out, bool *raced) {
    (void)jobs; /* a retry needs no definition: `run` checks it */
    static const rt__status retryable[3] = {RT__ST_FAILED, RT__ST_CANCELLED,
                                            RT__ST_SKIPPED};
    char name[600];
    int rc = ops_expect(s, run, name, sizeof name, RT__EV_RETRY, retryable,
                        "retried");
    if (rc != RT_OK) return rc;
    /* Progress stays: it resumes at the step and cursor where it stopped.
     * The epoch moves: whatever process still thinks it holds the run
     * cannot write to it again. */
    rc = ops_move(s, run, RT__EV_RETRY, "retry", false, raced);
    if (rc != RT_OK || *raced) return rc;
    rt__buf_printf(out, "retry: %s is pending again at step %d/%d (%s) with "
                        "%lld items done; ",
                   name, run->step_index + 1, ops_nsteps(run),
                   run->step_name ? run->step_name : "-",
                   (long long)run->items);
    if (run->queued)
        rt__buf_puts(out, "a worker picks it up\n");
    else {
        rt__buf_puts(out, "'ratchet run ");
        rt__buf_text(out, run->job);
        rt__buf_puts(out, " --key ");
        rt__buf_text(out, run->key);
        rt__buf_puts(out, "' resumes it\n");
    }
    return RT_OK;
}

int rt__ops_retry(rt_store *s, const rt_job *const *jobs,
                  const rt__run_ref *ref, rt__buf *out) {
    return ops_rounds(s, jobs, ref, out, ops_retry_once);
}

/* ---------------------------------------------------------------- cancel */

/*
 * Is the process that ran this 'running' run gone? Its lease scope is free
 * (the holder died or its lease expired), or a per-job lease is held for
 * another of the job's runs. A job this binary does not know: not known,
 * so not gone (the cancel is only requested).
 */
static int ops_holder_gone(rt_store *s, const rt_job *const *jobs,
                           const rt__run *run, bool *gone) {
    *gone = false;
    const rt_job *job = rt__job_find(jobs, run->job);
    if (!job) return RT_OK;
    bool per_job = job->exclusive == RT_EXCLUSIVE_JOB;
    /* The scope exactly as the runner names it (and cuts it) in runner.c. */
    char scope[512], holder_key[256];
    if (per_job) snprintf(scope, sizeof scope, "%s", run->job);
    else snprintf(scope, sizeof scope, "%s/%s", run->job, run->key);
    bool free_now = false;
    int rc = rt__lease_peek(s, scope, &free_now, holder_key, sizeof holder_key,
                            NULL, 0, NULL, NULL);
    /* An empty holder key: the holder has not said which run it took yet,
     * and it may be this one. */
    *gone = free_now ||
            (per_job && holder_key[0] && strcmp(holder_key, run->key) != 0);
    return rc;
}

static int ops_cancel_once(rt_store *s, const rt_job *const *jobs,
                           const rt__run *run, rt__buf *out, bool *raced) {
    static const rt__status unfinished[3] = {RT__ST_PENDING, RT__ST_RUNNING,
                                             RT__ST_INTERRUPTED};
    char name[600];
    int rc = ops_expect(s, run, name, sizeof name, RT__EV_CANCEL, unfinished,
                        "cancelled");
    if (rc != RT_OK) return rc;
    bool running = run->status == RT__ST_RUNNING, gone = true;
    if (running) rc = ops_holder_gone(s, jobs, run, &gone);
    int64_t changes = 0;
    if (rc == RT_OK && gone) {
        /* Cancelled now, fenced on the epoch read; the epoch moves on so
         * that no older holder can commit over it, and its lease goes. */
        rc = ops_move(s, run, RT__EV_CANCEL, RT_CANCELLED_ERROR, true, raced);
        changes = rc == RT_OK && !*raced;
    } else if (rc == RT_OK && !run->cancel_requested) {
        /* The holder may be taken over meanwhile: the request is for the
         * run, whoever holds it, so only the status guards it. */
        rt_value arg = rt_int(run->id);
        rc = ops_change(s,
                        "UPDATE rt_run SET cancel_requested = 1 "
                        "WHERE id = $1 AND status = 'running'",
                        1, &arg, &changes);
    } else {
        changes = 1; /* asked before; its holder is still at work */
    }
    *raced = rc == RT_OK && changes == 0;
    if (rc != RT_OK || *raced) return rc;
    if (!gone)
        rt__buf_printf(out, "cancel requested: %s stops at its next commit "
                            "(item boundary), keeping the work done by then\n",
                       name);
    else if (running)
        rt__buf_printf(out, "cancelled %s: it was marked running but its "
                            "process is gone\n",
                       name);
    else
        rt__buf_printf(out, "cancelled %s: it was %s at step %d/%d with "
                            "%lld items done\n",
                       name, rt__status_name(run->status),
                       run->step_index + 1, ops_nsteps(run),
                       (long long)run->items);
    return RT_OK;
}

int rt__ops_cancel(rt_store *s, const rt_job *const *jobs,
                   const rt__run_ref *ref, rt__buf *out) {
    return ops_rounds(s, jobs, ref, out, ops_cancel_once);
}

/* ----------------------------------------------------------------- prune */

int rt__ops_prune(rt_store *s, int64_t older_than_ms, int64_t *deleted) {
    *deleted = 0;
    int rc = rt__store_begin(s);
    if (rc != RT_OK) return rc;
    /* One cutoff for both statements, on the database's clock. */
    int64_t cutoff = 0;
    rc = rt__store_now_ms(s, -older_than_ms, &cutoff);
    rt_value at = rt_int(cutoff);
    if (rc == RT_OK)
        rc = rt__store_exec(s,
                            "DELETE FROM rt_param WHERE run_id IN (SELECT id "
                            "FROM rt_run WHERE " OPS_FINISHED " AND "
                            "coalesce(finished_ms, updated_ms) < $1)",
                            1, &at, NULL);
    if (rc == RT_OK)
        rc = rt__store_exec(s,
                            "DELETE FROM rt_run WHERE " OPS_FINISHED " AND "
                            "coalesce(finished_ms, updated_ms) < $1",
                            1, &at, deleted);
    if (rc == RT_OK) return rt__store_commit(s);
    *deleted = 0;
    return rt__store_abort(s, rc);
}
