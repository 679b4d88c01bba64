/*
 * worker.c — `ratchet worker`: claims queued runs and runs them.
 *
 * A worker process loops: pick the next due queued run (priority, then
 * run_at, then age) whose scope no live process holds, and run it in this
 * process through the runner, which takes the scope's lease and bumps the
 * run's epoch: a claimed run is a held run, so claims compose with leases,
 * fencing and takeover, on both backends alike. Two workers that pick the
 * same run race for its lease; the loser moves on. To keep them apart, a
 * worker picks at random among the first few runs of the top priority.
 *
 * A queued run whose holder died (its lease's liveness lock is free, or the
 * lease expired) is taken over; that start counts as a failed attempt, so a
 * run that crashes its process every time ends 'failed' after its attempts
 * instead of looping for ever. A step's error is an attempt too: the run
 * goes back to the queue with an exponential backoff (runner.c).
 *
 * With --concurrency N > 1 the process is a supervisor of N worker
 * processes (prefork, before any connection is open): it passes SIGTERM on,
 * restarts a worker that crashed, and exits 0 once they stopped, within the
 * grace period.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define WORKER_IDLE_MS 50
#define WORKER_HEAL_MS 500
#define WORKER_PICK 32 /* heal reads up to 32; claims 8 */

typedef struct worker {
    const rt__worker_opts *o;
    const rt_job *const *jobs;
    rt_store *s;
    rt_store *lease;      /* the leases' connection, kept across runs */
    unsigned seed;
    int64_t trouble_logged_ns;
    struct pick *refused;  /* runs this process will not pick again */
    int nrefused;
} worker;

static bool worker_wants(const worker *w, const char *job) {
    return rt__job_find(w->jobs, job) && rt__job_listed(w->o->only, job);
}


typedef struct pick {
    char job[128], key[256];
    int64_t priority;
} pick;

static bool worker_refused(const worker *w, const char *job, const char *key) {
    for (int i = 0; i < w->nrefused; i++)
        if (!strcmp(w->refused[i].job, job) && !strcmp(w->refused[i].key, key))
            return true;
    return false;
}

/* The next runs to try, best first; *n of them. */
static int worker_candidates(worker *w, pick *out, int *n, bool heal) {
    rt_stmt *st;
    *n = 0;
    int rc = rt__store_query(
        w->s,
        heal ? "SELECT job, run_key, priority FROM rt_run WHERE queued = 1 AND "
               "status = 'running' AND cancel_requested = 0 ORDER BY id "
               "LIMIT 32"
             /* The inner query walks rt_run_claim in claim order and
              * skips jobs whose job-wide lease is held; the outer one
              * skips keys held. Either way a claim reads a few rows. */
             : "SELECT r.job, r.run_key, r.priority FROM (SELECT job, run_key, "
               "priority, run_at_ms, created_ms, id FROM rt_run WHERE queued = "
               "1 AND status IN ('pending', 'interrupted', 'running') AND "
               "cancel_requested = 0 AND (run_at_ms IS NULL OR run_at_ms <= "
               "rt_now_ms()) AND job NOT IN (SELECT scope FROM rt_lease) "
               "ORDER BY priority DESC, coalesce(run_at_ms, created_ms), id "
               "LIMIT 64) r WHERE NOT EXISTS (SELECT 1 FROM rt_lease l WHERE "
               "l.scope = r.job || '/' || r.run_key) ORDER BY r.priority DESC, "
               "coalesce(r.run_at_ms, r.created_ms), r.id LIMIT 8",
        0, NULL, &st);
    while (rc == RT_ROW) {
        const char *job = w->s->ops->column_text(st, 0);
        const char *key = w->s->ops->column_text(st, 1);
        if (*n < WORKER_PICK && job && key && worker_wants(w, job) &&
            !worker_refused(w, job, key)) {
            pick *p = &out[(*n)++];
            snprintf(p->job, sizeof p->job, "%s", job);
            snprintf(p->key, sizeof p->key, "%s", key);
            p->priority = w->s->ops->column_int64(st, 2);
        }
        rc = w->s->ops->step(st);
    }
    return rc == RT_DONE ? RT_OK : rc;
}

/*
 * A queued run found 'running' with its holder gone: that start crashed.
 * Count it as a failed attempt; false when the run is failed for good.
 */
static bool worker_count_crash(worker *w, const rt_job *job, const char *key,
                               const char *scope, const char *dead_owner) {
    rt__run run;
    if (rt__run_load(w->s, job->name, key, &run) != RT_OK) return false;
    int failures = run.failures + 1;
    bool again = failures < rt__run_max_attempts(&run, job);
    char error[512];
    snprintf(error, sizeof error,
             "attempt %d ended without finishing (its process died)%s",
             run.attempt, again ? "" : "; no attempts left");
    rt__attempt at = {again, failures, error,
                      again ? rt__retry_backoff_ms(job, failures) : 0,
                      "interrupted", true};
    int64_t changes = 0;
    int rc = rt__run_attempt_failed(w->s, run.id, run.epoch, &at, &changes);
    /* The dead holder's lease goes too (only if no one took it over since),
     * so the run is free for the next attempt after its backoff. */
    rt_value largs[] = {rt_text(scope), rt_text(dead_owner)};
    if (rc == RT_OK && changes == 1 && dead_owner[0])
        rc = rt__store_exec(w->s,
                            "DELETE FROM rt_lease WHERE scope = $1 AND owner = $2",
                            2, largs, NULL);
    if (changes != 1) again = true; /* it moved on meanwhile: not a crash */
    rt__log_fields f = RT_LOG_FIELDS_NONE;
    f.job = job->name;
    f.key = key;
    f.run = run.id;
    if (rc == RT_OK && changes == 1)
        rt__log(again ? RT_LOG_WARN : RT_LOG_ERROR, again ? "retry" : "failed",
                &f, "%s", error);
    rt__run_free(&run);
    return rc == RT_OK && again;
}

/* Runs 'running' whose holder died or stalled: count the crash, requeue. */
static void worker_heal(worker *w) {
    pick picks[WORKER_PICK];
    int n = 0;
    if (worker_candidates(w, picks, &n, true) != RT_OK) {
        rt__store_trouble(w->s, &w->trouble_logged_ns, "looking for runs whose holder died");
        return;
    }
    for (int i = 0; i < n && !rt__stop_flag; i++) {
        const rt_job *job = rt__job_find(w->jobs, picks[i].job);
        char scope[600], holder_key[256];
        if (job->exclusive == RT_EXCLUSIVE_JOB)
            snprintf(scope, sizeof scope, "%s", job->name);
        else
            snprintf(scope, sizeof scope, "%.300s/%.255s", job->name,
                     picks[i].key);
        char owner[160];
        bool free_now = false;
        if (rt__lease_peek(w->s, scope, &free_now, holder_key,
                           sizeof holder_key, owner, sizeof owner) != RT_OK) {
            rt__store_trouble(w->s, &w->trouble_logged_ns, "reading a lease");
            return;
        }
        /* A per-job scope held for another run says nothing of this one. */
        bool other = job->exclusive == RT_EXCLUSIVE_JOB && !free_now &&
                     strcmp(holder_key, picks[i].key) != 0;
        if (free_now || other)
            worker_count_crash(w, job, picks[i].key, scope,
                               free_now ? owner : "");
    }
}

/* Run one queued run in this process. */
static int worker_run(worker *w, const rt_job *job, const char *key) {
    rt__run_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.key = key;
    ro.chunk_items = w->o->chunk_items;
    ro.chunk_ms = w->o->chunk_ms;
    ro.url = w->o->url;
    ro.if_running = RT_IF_RUNNING_SKIP;
    ro.lease_ttl_ms = w->o->lease_ttl_ms;
    ro.quiet_skip = true;
    ro.lease_store = w->lease;
    rt__signals_store(w->s);
    int code = rt__runner_run(w->s, job, &ro);
    rt__signals_store(NULL);
    return code;
}

static void worker_sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a stop signal cuts it short */
}

/* One worker process: claim and run until a stop is requested. */
static int worker_loop(worker *w) {
    int64_t next_heal_ns = 0;
    while (!rt__stop_flag) {
        if (rt__mono_ns() >= next_heal_ns) {
            worker_heal(w);
            next_heal_ns = rt__mono_ns() + WORKER_HEAL_MS * 1000000LL;
        }
        pick picks[WORKER_PICK];
        int n = 0;
        if (worker_candidates(w, picks, &n, false) != RT_OK) {
            rt__store_trouble(w->s, &w->trouble_logged_ns, "looking for queued runs");
            worker_sleep_ms(500);
            continue;
        }
        if (n == 0) {
            worker_sleep_ms(WORKER_IDLE_MS);
            continue;
        }
        /* At random among the first few of the top priority. */
        int top = 1;
        while (top < n && top < 4 && picks[top].priority == picks[0].priority)
            top++;
        pick *p = &picks[rand_r(&w->seed) % (unsigned)top];
        const rt_job *job = rt__job_find(w->jobs, p->job);
        int code = worker_run(w, job, p->key);
        if (code == RT_EXIT_USAGE) {
            /* Refused (its job changed, a bad param): not for a worker to
             * fix, and its saved bytes stay as they are. This process does
             * not pick it again; an operator resets or restarts it. */
            rt__log_fields f = RT_LOG_FIELDS_NONE;
            f.job = job->name;
            f.key = p->key;
            rt__log(RT_LOG_ERROR, "set_aside", &f, "%s",
                    "this worker leaves the run alone from now on (see the "
                    "line above for what to do)");
            w->refused = rt__xrealloc(w->refused, sizeof *w->refused *
                                                      (size_t)(w->nrefused + 1));
            snprintf(w->refused[w->nrefused].job, sizeof p->job, "%s", p->job);
            snprintf(w->refused[w->nrefused++].key, sizeof p->key, "%s", p->key);
        }
    }
    return RT_EXIT_OK;
}

static int worker_process(const rt__worker_opts *o, const rt_job *const *jobs) {
    worker w;
    memset(&w, 0, sizeof w);
    w.o = o;
    w.jobs = jobs;
    w.seed = (unsigned)(rt__mono_ns() ^ (int64_t)getpid() << 16);
    char err[RT_ERRMSG_MAX];
    rt__store_set_label("ratchet-worker");
    int rc = rt__store_open(o->url, &w.s, err, sizeof err);
    if (rc != RT_OK) {
        rt__log(RT_LOG_ERROR, "db_open", NULL, "%s", err);
        return rc == RT_CONN ? RT_EXIT_FAILED : RT_EXIT_USAGE;
    }
    if ((rc = rt__migrate(w.s, NULL, NULL)) != RT_OK) {
        rt__log(RT_LOG_ERROR, "migrate", NULL, "%s", w.s->errmsg);
        rt__store_close(w.s);
        return rc == RT_SCHEMA ? RT_EXIT_USAGE : RT_EXIT_FAILED;
    }
    if ((rc = rt__store_open(o->url, &w.lease, err, sizeof err)) != RT_OK) {
        rt__log(RT_LOG_ERROR, "db_open", NULL, "%s", err);
        rt__store_close(w.s);
        return RT_EXIT_FAILED;
    }
    int code = worker_loop(&w);
    rt__store_close(w.lease);
    rt__store_close(w.s);
    free(w.refused);
    return code;
}

/* ----------------------------------------------------------- prefork */

static pid_t worker_fork(const rt__worker_opts *o, const rt_job *const *jobs) {
    pid_t pid = rt__fork_tied();
    if (pid != 0) return pid;
    rt__signals_restore();
    rt__signals_deadline_code(RT_EXIT_OK);
    rt__signals_install(o->grace_ms * 8 / 10);
    _exit(worker_process(o, jobs));
}

static int worker_supervise(const rt__worker_opts *o, const rt_job *const *jobs) {
    int n = o->concurrency;
    pid_t *kids = rt__xcalloc((size_t)n, sizeof *kids);
    int64_t *restart_at = rt__xcalloc((size_t)n, sizeof *restart_at);
    bool usage = false;
    for (int i = 0; i < n; i++) kids[i] = worker_fork(o, jobs);
    rt__log(RT_LOG_INFO, "worker_start", NULL, "%d worker processes", n);
    rt__notify("READY=1");
    while (!rt__stop_flag) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        for (int i = 0; pid > 0 && i < n; i++) {
            if (kids[i] != pid) continue;
            kids[i] = 0;
            int code = WIFEXITED(status) ? WEXITSTATUS(status)
                                         : 128 + WTERMSIG(status);
            if (code == RT_EXIT_USAGE) { /* its configuration: all alike */
                rt__log(RT_LOG_ERROR, "worker_exit", NULL,
                        "worker process %d refused its configuration; "
                        "stopping", (int)pid);
                kill(getpid(), SIGTERM);
                usage = true;
                break;
            }
            rt__log(RT_LOG_ERROR, "worker_exit", NULL,
                    "worker process %d exited with code %d; restarting it",
                    (int)pid, code);
            restart_at[i] = rt__mono_ns() + 1000000000LL; /* 1 s later */
        }
        for (int i = 0; i < n && !usage; i++)
            if (!kids[i] && rt__mono_ns() >= restart_at[i])
                kids[i] = worker_fork(o, jobs);
        if (pid <= 0) worker_sleep_ms(20);
    }
    int64_t stop_ns = rt__mono_ns();
    rt__notify("STOPPING=1");
    for (int i = 0; i < n; i++)
        if (kids[i]) kill(kids[i], SIGTERM);
    int64_t deadline = stop_ns + (o->grace_ms - 200) * 1000000;
    for (int left = n; left > 0;) {
        left = 0;
        for (int i = 0; i < n; i++) {
            if (kids[i] && waitpid(kids[i], NULL, WNOHANG) == kids[i]) kids[i] = 0;
            if (kids[i] && rt__mono_ns() >= deadline) {
                kill(kids[i], SIGKILL);
                waitpid(kids[i], NULL, 0);
                kids[i] = 0;
            }
            left += kids[i] != 0;
        }
        if (left) worker_sleep_ms(5);
    }
    rt__log(RT_LOG_INFO, "stopped", NULL, "workers stopped after %lld ms",
            (long long)((rt__mono_ns() - stop_ns) / 1000000));
    free(kids);
    free(restart_at);
    return usage ? RT_EXIT_USAGE : RT_EXIT_OK;
}

int rt__worker(const rt_job *const *jobs, const rt__worker_opts *o) {
    int code = rt__job_list_check(jobs, o->only, "worker");
    if (code) return code;
    rt__signals_deadline_code(RT_EXIT_OK);
    if (rt__signals_install(o->grace_ms) != RT_OK)
        rt__log(RT_LOG_WARN, "signals", NULL,
                "could not arm the stop deadline timer");
    if (o->concurrency > 1) {
        code = worker_supervise(o, jobs);
    } else {
        rt__notify("READY=1");
        code = worker_process(o, jobs);
        if (rt__stop_flag) rt__notify("STOPPING=1");
    }
    rt__signals_restore();
    return code;
}
