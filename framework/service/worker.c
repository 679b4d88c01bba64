/*
 * worker.c — `ratchet worker`: claims queued runs and runs them.
 *
 * A worker process loops: claim the next due queued run (priority, then
 * run_at, then age) whose scope no live process holds, and run it in this
 * process. The claim is one transaction that takes the scope's lease and
 * bumps the run's epoch: a claimed run is a held run, so claims compose
 * with leases, fencing and takeover, on both backends alike. Two workers
 * after the same run race for its lease row; the loser moves on. On
 * PostgreSQL the pick is FOR UPDATE SKIP LOCKED, so they rarely meet. A run
 * whose steps differ from its job's takes the ordinary start (runner.c),
 * which adopts appended steps or refuses the run.
 *
 * The claim itself is the core's (core/claim.c). On a busy queue it rides on
 * the transaction that finishes the run before (rt__run_opts.claim_next:
 * the runner asks for it in that commit): one commit per run, and on
 * PostgreSQL one round trip, for the claim is a single statement sent with
 * that COMMIT.
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

#include "core/lifecycle.h"
#include "service/metrics.h"

#define WORKER_IDLE_MS 50
#define WORKER_HEAL_MS 500
#define WORKER_PICK 32 /* heal reads up to 32; claims 8 */

typedef struct worker {
    const rt__worker_opts *o;
    const rt_job *const *jobs;
    rt_store *s;
    rt_store *lease;      /* the leases' connection, kept across runs */
    int64_t trouble_logged_ns;
    rt__lease claim;       /* the lease of the claimed run, on w->lease */
    rt__claim claimer;     /* the claims (core/claim.c), with that lease */
} worker;

static bool worker_wants(const worker *w, const char *job) {
    return rt__claim_wants(&w->claimer, job);
}

typedef rt__claim_pick pick;

/* Queued runs of job found 'running' (heal looks at their holders). The
 * claim index holds only claimable runs; these are read by job. */
static int worker_candidates_of(worker *w, rt_store *s, const char *job,
                                pick *out, int *n) {
    rt_stmt *st;
    rt_value arg = rt_text(job);
    int rc = rt__store_query(s,
                             "SELECT job, run_key, priority FROM rt_run WHERE "
                             "job = $1 AND status = 'running' AND queued = 1 "
                             "ORDER BY id LIMIT 32",
                             1, &arg, &st);
    return rt__claim_rows(&w->claimer, st, rc, out, WORKER_PICK, n);
}

/* Queued runs found 'running', job by job (through rt_run_job_status);
 * *n of them. */
static int worker_candidates(worker *w, rt_store *s, pick *out, int *n) {
    *n = 0;
    int rc = RT_OK;
    for (int i = 0; rc == RT_OK && w->jobs[i] && *n < WORKER_PICK; i++)
        if (worker_wants(w, w->jobs[i]->name))
            rc = worker_candidates_of(w, s, w->jobs[i]->name, out, n);
    return rc;
}

/*
 * A run found 'running' with its holder dead (lease.c, lease_judge): the
 * verdict, fenced (the epoch moves, so a holder that comes back cannot
 * commit) and, when the holder left a lease (dead_owner non-empty), only
 * while that lease still says dead, deleted in the same transaction. A
 * queued run's attempt counts: it is queued again after its backoff, or
 * failed after its last; a run of `run` is left 'interrupted' for its next
 * start. why says how the holder was found dead.
 */
static void worker_count_crash(worker *w, const rt_job *job, const char *key,
                               const char *scope, const char *dead_owner,
                               int64_t heartbeat, const char *why) {
    rt__run run;
    if (rt__run_load(w->s, job->name, key, &run) != RT_OK) return;
    if (run.status != RT__ST_RUNNING) {
        rt__run_free(&run);
        return;
    }
    int failures = run.queued ? run.failures + 1 : -1;
    bool again = !run.queued || failures < rt__run_max_attempts(&run, job);
    char error[512], who[200];
    snprintf(error, sizeof error,
             "attempt %d ended without finishing (its process died: %s)%s",
             run.attempt, why, again ? "" : "; no attempts left");
    snprintf(who, sizeof who, "worker %s", w->claim.owner);
    rt__verdict v = {
        /* Asked to cancel while its holder died: it ends so. */
        .event = run.cancel_requested ? RT__EV_CANCEL
                 : again              ? RT__EV_HOLDER_DEAD
                                      : RT__EV_HOLDER_DEAD_LAST,
        .id = run.id, .job = job->name, .key = key, .from = run.status,
        .epoch = run.epoch, .who = who, .why = error, .failures = failures,
        .delay_ms = run.queued && again ? rt__retry_backoff_ms(job, failures)
                                        : -1,
        .scope = dead_owner[0] ? scope : NULL,
        .owner = dead_owner[0] ? dead_owner : NULL,
        .unrenewed = dead_owner[0] != '\0', .heartbeat = heartbeat};
    if (rt__transition(w->s, &v, NULL) != RT_OK)
        rt__store_trouble(w->s, &w->trouble_logged_ns,
                          "recording a dead holder's verdict");
    rt__run_free(&run);
}

/*
 * Leases no live holder keeps: expired ones, and those of finished runs
 * (taken more than 3 s ago: a take over a dead holder names the holder's
 * run until its taker names its own, at once): a lease left behind (its
 * release failed, its holder moved on) would keep every claim of its scope
 * waiting. A finished run's holder is done with it: every way a run ends
 * deletes its lease with it, so such a row is one a release missed. An
 * expired lease
 * of a run still 'running' is a dead holder's: that run gets its verdict
 * with it (worker_count_crash). The rest go alone, each only while it is
 * still what was read.
 */
static void worker_sweep(worker *w) {
    rt_stmt *st;
    int rc = rt__store_query(
        w->s,
        "SELECT l.scope, l.owner, l.job, coalesce(l.run_key, ''), CASE WHEN "
        "l.expires_ms < rt_now_ms() THEN 1 ELSE 0 END, l.heartbeat_ms FROM "
        "rt_lease l WHERE "
        "l.expires_ms < rt_now_ms() OR (l.acquired_ms < rt_now_ms() - 3000 "
        "AND EXISTS (SELECT 1 FROM rt_run "
        "r WHERE r.job = l.job AND r.run_key = l.run_key AND r.status IN "
        "('done', 'failed', 'skipped', 'cancelled'))) LIMIT 16",
        0, NULL, &st);
    struct stale {
        char scope[600], owner[160], job[128], key[256];
        bool expired;
        int64_t heartbeat;
    } stale[16];
    int n = 0;
    while (rc == RT_ROW) {
        if (n < 16) {
            struct stale *x = &stale[n++];
            snprintf(x->scope, sizeof x->scope, "%s",
                     rt__store_column_text(st, 0));
            snprintf(x->owner, sizeof x->owner, "%s",
                     rt__store_column_text(st, 1));
            snprintf(x->job, sizeof x->job, "%s", rt__store_column_text(st, 2));
            snprintf(x->key, sizeof x->key, "%s", rt__store_column_text(st, 3));
            x->expired = rt__store_column_int64(st, 4) != 0;
            x->heartbeat = rt__store_column_int64(st, 5);
        }
        rc = rt__store_step(st);
    }
    if (rc != RT_DONE) {
        rt__store_trouble(w->s, &w->trouble_logged_ns, "looking for stale leases");
        return;
    }
    for (int i = 0; i < n && !rt__stop_flag; i++) {
        struct stale *x = &stale[i];
        const rt_job *job = rt__job_find(w->jobs, x->job);
        rt__run run;
        bool running = false;
        if (x->key[0] && rt__run_load(w->s, x->job, x->key, &run) == RT_OK) {
            running = run.status == RT__ST_RUNNING;
            rt__run_free(&run);
        }
        if (running && x->expired && job && worker_wants(w, x->job)) {
            worker_count_crash(w, job, x->key, x->scope, x->owner,
                               x->heartbeat, "its lease expired");
            continue;
        }
        if (running) continue; /* a holder at work, or not ours to judge */
        /* Only as it was read: not renewed since. */
        rt_value args[] = {rt_text(x->scope), rt_text(x->owner),
                           rt_int(x->heartbeat)};
        int64_t gone = 0;
        rc = rt__store_exec(w->s, RT__LEASE_DELETE_UNRENEWED_SQL, 3, args,
                            &gone);
        rt__log_fields f = RT_LOG_FIELDS_NONE;
        f.job = x->job;
        f.key = x->key[0] ? x->key : NULL;
        if (rc == RT_OK && gone)
            rt__log(RT_LOG_INFO, "lease_swept", &f,
                    "lease of %s held by %s removed: %s", x->scope, x->owner,
                    x->expired ? "it expired" : "its run is finished");
        else if (rc != RT_OK)
            rt__store_trouble(w->s, &w->trouble_logged_ns, "removing a stale lease");
    }
}

/* Runs 'running' whose holder died or stalled: judge them; and the leases
 * no live holder keeps. */
static void worker_heal(worker *w) {
    pick picks[WORKER_PICK];
    int n = 0;
    if (worker_candidates(w, w->s, picks, &n) != RT_OK) {
        rt__store_trouble(w->s, &w->trouble_logged_ns, "looking for runs whose holder died");
        return;
    }
    for (int i = 0; i < n && !rt__stop_flag; i++) {
        const rt_job *job = rt__job_find(w->jobs, picks[i].job);
        char scope[600], holder_key[256];
        rt__claim_scope(job, picks[i].key, scope, sizeof scope);
        char owner[160];
        bool free_now = false;
        const char *why = NULL;
        int64_t hb = -1;
        if (rt__lease_peek(w->s, scope, &free_now, holder_key,
                           sizeof holder_key, owner, sizeof owner, &why,
                           &hb) != RT_OK) {
            rt__store_trouble(w->s, &w->trouble_logged_ns, "reading a lease");
            return;
        }
        /* A per-job scope held for another run says nothing of this one. */
        bool other = job->exclusive == RT_EXCLUSIVE_JOB && !free_now &&
                     strcmp(holder_key, picks[i].key) != 0;
        if (free_now || other)
            worker_count_crash(w, job, picks[i].key, scope,
                               free_now ? owner : "", hb,
                               other ? "its job's lease is another run's"
                                     : why);
    }
    worker_sweep(w);
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
    ro.lease = &w->claim; /* its lease, on its own connection */
    rt__run_out out;
    rt__signals_store(w->s);
    rt__runner_run(w->s, job, &ro, &out);
    rt__signals_store(NULL);
    if (out.result.skipped) { /* a race lost: nothing to say aloud */
        rt__log_fields f = RT_LOG_FIELDS_NONE;
        f.job = job->name;
        f.key = key;
        rt__log(RT_LOG_DEBUG, "skipped", &f,
                "%s is held by %s (run '%s'); skipped", out.held_scope,
                out.holder, out.holder_key);
    }
    return out.exit_code;
}

/* Drive a claimed run in this process. */
static void worker_run_claimed(worker *w, const rt_job *job, rt__run *run,
                               bool fresh) {
    rt__run_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.key = run->key;
    ro.chunk_items = w->o->chunk_items;
    ro.chunk_ms = w->o->chunk_ms;
    ro.url = w->o->url;
    ro.lease_ttl_ms = w->o->lease_ttl_ms;
    ro.claim_next = &w->claimer;
    rt__signals_store(w->s);
    rt__runner_run_claimed(w->s, job, &ro, run, fresh, &w->claim, NULL);
    rt__signals_store(NULL);
}

/* A run this process will not pick again. */
static void worker_set_aside(worker *w, const rt__run *run) {
    rt__log_fields f = RT_LOG_FIELDS_NONE;
    f.job = run->job;
    f.key = run->key;
    rt__log(RT_LOG_ERROR, "set_aside", &f, "%s",
            "this worker leaves the run alone from now on (see the line "
            "above for what to do)");
    rt__claim_set_aside(&w->claimer, run);
}

static void worker_sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a stop signal cuts it short */
}

/* One worker process: claim and run until a stop is requested. */
static int worker_loop(worker *w) {
    int64_t next_heal_ns = 0;
    /* A run claimed with the last one's commit is ours: it runs even after
     * a stop request (its start records it interrupted, lease given up). */
    while (!rt__stop_flag || w->claimer.claimed) {
        if (rt__mono_ns() >= next_heal_ns && !rt__stop_flag) {
            worker_heal(w);
            next_heal_ns = rt__mono_ns() + WORKER_HEAL_MS * 1000000LL;
        }
        rt__run run;
        bool fresh = false;
        const rt_job *job = NULL;
        int rc = rt__claim_chained(&w->claimer, &run, &job);
        if (rc == RT_OK) rt__claim_taken(&w->claimer, job, &run, &fresh);
        else if (rt__stop_flag) break;
        else rc = rt__claim_run(&w->claimer, &run, &fresh, &job);
        if (rc == RT_OK) {
            worker_run_claimed(w, job, &run, fresh);
        } else if (rc == RT_CHANGED) {
            /* Steps appended (adopted) or changed (refused: not for a
             * worker to fix, and its saved bytes stay as they are; an
             * operator resets or restarts it). */
            if (worker_run(w, job, run.key) == RT_EXIT_USAGE)
                worker_set_aside(w, &run);
            rt__run_free(&run);
        } else if (rc == RT_NOTFOUND || rc == RT_BUSY) {
            worker_sleep_ms(WORKER_IDLE_MS);
        } else if (rc != RT_HELD) {
            rt__store_trouble(w->lease, &w->trouble_logged_ns,
                              "claiming a queued run");
            worker_sleep_ms(500);
        }
    }
    return RT_EXIT_OK;
}

static int worker_process(const rt__worker_opts *o, const rt_job *const *jobs) {
    worker w;
    memset(&w, 0, sizeof w);
    w.o = o;
    w.jobs = jobs;
    char err[RT_ERRMSG_MAX];
    rt__store_set_label("ratchet-worker");
    /* The claim connection (PostgreSQL) opens on a thread while the work
     * one opens and migrates, as for `run`: each costs a server backend's
     * start. */
    rt__store_bg claim_bg;
    rt__store_bg_start(&claim_bg, o->url);
    /* Open and migrate as every command does; logged, with the exit code
     * it means (a full disk: 75). */
    int open_code;
    int rc = rt__db_open(o->url, &w.s, NULL, NULL, &open_code, NULL, 0);
    if (rc != RT_OK) {
        rt__store_close(rt__store_bg_join(&claim_bg));
        return open_code;
    }
    w.lease = rt__store_bg_join(&claim_bg);
    if (!w.lease &&
        (rc = rt__store_open(o->url, &w.lease, err, sizeof err)) != RT_OK) {
        rt__log(RT_LOG_ERROR, "db_open", NULL, "%s", err);
        rt__store_close(w.s);
        return RT_EXIT_FAILED;
    }
    w.claim.s = w.lease;
    rt__lease_open(&w.claim, o->url, "", "", o->lease_ttl_ms, err, sizeof err);
    /* Its liveness lock, for every lease it will take. */
    if (rt__lease_lock(&w.claim) != RT_OK)
        rt__log(RT_LOG_WARN, "lease", NULL, "could not take the liveness "
                "lock (%s); a crash of this worker is noticed after the "
                "lease TTL", w.lease->errmsg);
    /* The jobs it runs, their fingerprints and which of them are
     * job-scoped: the batched claim's list parameters. */
    rt__claim_init(&w.claimer, jobs, o->only, &w.claim);
    int code = worker_loop(&w);
    rt__claim_free(&w.claimer); /* and a run claimed last, unrun */
    rt__lease_close(&w.claim);
    rt__store_close(w.lease);
    rt__store_close(w.s);
    return code;
}

/* ----------------------------------------------------------- prefork */

static pid_t worker_fork(const rt__worker_opts *o, const rt_job *const *jobs) {
    pid_t pid = rt__fork_tied();
    if (pid != 0) return pid;
    /* Its own deadline (exit 0), the stop signals blocked until then. */
    rt__signals_child(o->grace_ms * 8 / 10);
    _exit(worker_process(o, jobs));
}

static int worker_supervise(const rt__worker_opts *o, const rt_job *const *jobs) {
    int n = o->concurrency;
    pid_t *kids = rt__xcalloc((size_t)n, sizeof *kids);
    int64_t *restart_at = rt__xcalloc((size_t)n, sizeof *restart_at);
    bool usage = false;
    /* None forked once stopping: a stop may have come while it started. */
    for (int i = 0; i < n && !rt__stop_flag; i++) kids[i] = worker_fork(o, jobs);
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
    /* Served by this process, the pool's supervisor: its children fork
     * without exec, hence the fork guard. */
    rt__metrics_server *metrics = NULL;
    if (o->metrics_listen &&
        (code = rt__metrics_serve_start(o->metrics_listen, o->url,
                                        o->concurrency > 1, &metrics)))
        return code;
    /* The stop handlers are in since rt_main began (cli.c, exit 0 at the
     * deadline): a stop that came while it started ends it at once. */
    if (o->concurrency > 1) {
        code = worker_supervise(o, jobs);
    } else {
        rt__notify("READY=1");
        code = worker_process(o, jobs);
        if (rt__stop_flag) rt__notify("STOPPING=1");
    }
    rt__metrics_serve_stop(metrics); /* still under the stop deadline */
    /* The stop handlers stay until exit (see cli_run): another SIGTERM
     * must not kill a worker that is finishing. */
    return code;
}
