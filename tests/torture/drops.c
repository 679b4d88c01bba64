/*
 * drops.c — PostgreSQL drops sessions under queued and scheduled runs that
 * nobody killed: a daemon schedules mjob every second (its runs as `run`
 * children) and keeps a pool of two workers, a second `ratchet worker`
 * competes for a batch of queued runs (mjob, one at a time for the job,
 * and mkey, one per key; half of them with a single attempt), and at random
 * instants ratchet's sessions are terminated (pg_terminate_backend) or the
 * whole server restarts.
 *
 * No process dies, so the lifecycle (docs/DESIGN.md, "Dead means dead")
 * allows no verdict: every queued run ends done with no failed attempt, a
 * finished run stays finished, never are two processes inside a step of one
 * lease scope at once (mjob.c's flock, outside the transaction), no lease
 * names a finished run, every running run has its lease, every done run
 * wrote its rows once, and the processes stop with exit 0 on SIGTERM,
 * leaving no lease.
 *
 * Every violation is printed (the first of each kind); the scenario fails at
 * the end if there was any.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "torture.h"

#define D_MAX_RUNS 4096

enum {
    DV_OVERLAP, DV_TERMINAL, DV_FAILED, DV_ATTEMPTS, DV_LEASE, DV_DRAIN, DV_ORPHAN,
    DV_STOP, DV_LEFT, DV_DATA, DV_EXIT, DV_UNLEASED, DV_KINDS
};
static const char *const dv_names[DV_KINDS] = {
    "overlap", "terminal", "failed", "attempts", "lease", "drain", "orphan",
    "stop", "leases-left", "data", "exit", "unleased"};

typedef struct drops {
    const t_env *env;
    t_env self;
    t_db db;
    char log[600], env_log[700];
    char terminal[D_MAX_RUNS][12]; /* by run id: the finished status seen */
    int violations, by_kind[DV_KINDS];
    int terminates, sessions, restarts, checks;
} drops;

static void d_violation(drops *D, int kind, const char *fmt, ...) T_PRINTF(3, 4);

static void d_violation(drops *D, int kind, const char *fmt, ...) {
    if (D->by_kind[kind]++) return; /* the first of each kind */
    D->violations++;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    t_vline(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("torture: drops  postgres VIOLATION %s: %s\n", dv_names[kind], msg);
    fflush(stdout);
}

static pid_t d_spawn(drops *D, const char *errpath, const char *const *argv) {
    const char *const extra[] = {"TORTURE_RATCHET=1", D->env_log, NULL};
    return t_spawn(&D->self, D->db.url, errpath, argv, extra);
}

static int d_command(drops *D, const char *tag, const char *const *argv) {
    char err[700];
    snprintf(err, sizeof err, "%s/drops-%s.err", D->env->dir, tag);
    pid_t pid = d_spawn(D, err, argv);
    int code = t_wait(pid, 60000);
    if (code != 0) t_fail("%s: exit %d; %s", argv[0], code, t_file_gist(err));
    return code;
}

static bool d_run_row(void *arg, int ncols, const char *const *c) {
    drops *D = arg;
    if (ncols < 6) return false;
    int64_t id = c[0] ? strtoll(c[0], NULL, 10) : 0;
    const char *status = c[3] ? c[3] : "";
    int64_t failures = c[4] ? strtoll(c[4], NULL, 10) : 0;
    bool finished = !strcmp(status, "done") || !strcmp(status, "failed") ||
                    !strcmp(status, "cancelled") || !strcmp(status, "skipped");
    if (id > 0 && id < D_MAX_RUNS) {
        char *was = D->terminal[id];
        if (was[0] && strcmp(was, status) != 0)
            d_violation(D, DV_TERMINAL, "%s/%s was %s and is now %s (error: %s)", c[1], c[2],
                        was, status, c[5] ? c[5] : "none");
        if (finished) snprintf(was, sizeof D->terminal[id], "%s", status);
    }
    if (!strcmp(status, "failed"))
        d_violation(D, DV_FAILED, "%s/%s failed though no process died: %s", c[1], c[2],
                    c[5] ? c[5] : "no error");
    if (failures > 0)
        d_violation(D, DV_ATTEMPTS, "%s/%s counts %lld failed attempts though no process "
                    "died (status %s, error: %s)",
                    c[1], c[2], (long long)failures, status, c[5] ? c[5] : "none");
    return true;
}

static bool d_lease_row(void *arg, int ncols, const char *const *c) {
    drops *D = arg;
    if (ncols >= 4)
        d_violation(D, DV_LEASE, "lease of scope %s (owner %s) names run %s, which is %s",
                    c[0], c[1], c[2], c[3]);
    return false;
}

static bool d_unleased_row(void *arg, int ncols, const char *const *c) {
    drops *D = arg;
    if (ncols >= 2)
        d_violation(D, DV_UNLEASED, "%s/%s is 'running' with no lease row", c[0], c[1]);
    return false;
}

/* One snapshot of rt_run and rt_lease against what may be. */
static void d_check(drops *D) {
    char err[512];
    for (int attempt = 0;; attempt++) {
        inv_db *c = t_db_check(&D->db);
        bool ok = inv_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", err, sizeof err) &&
                  inv_each(c, "SELECT id, job, run_key, status, failures, error "
                              "FROM rt_run ORDER BY id",
                           d_run_row, D, err, sizeof err) == INV_VALUE &&
                  inv_each(c, "SELECT l.scope, l.owner, r.run_key, r.status FROM rt_lease l "
                              "JOIN rt_run r ON r.job = l.job AND r.run_key = l.run_key "
                              "WHERE r.status IN ('done', 'failed', 'cancelled', 'skipped')",
                           d_lease_row, D, err, sizeof err) == INV_VALUE &&
                  inv_each(c, "SELECT r.job, r.run_key FROM rt_run r WHERE r.status = "
                              "'running' AND NOT EXISTS (SELECT 1 FROM rt_lease l WHERE "
                              "l.job = r.job AND (l.scope = r.job || '/' || r.run_key OR "
                              "(l.scope = r.job AND l.run_key = r.run_key)))",
                           d_unleased_row, D, err, sizeof err) == INV_VALUE;
        char e2[256];
        inv_exec(c, ok ? "COMMIT" : "ROLLBACK", e2, sizeof e2);
        if (ok) break;
        if (attempt > 20) t_fail("drops: cannot read the database: %s", err);
        t_sleep_us(200000);
    }
    char first[600];
    if (t_mjob_overlaps(D->log, first, sizeof first))
        d_violation(D, DV_OVERLAP, "two processes inside a step of one lease scope at "
                    "once: %s", first);
    D->checks++;
}

static int64_t d_int(drops *D, const char *sql) {
    char err[512];
    int64_t v = 0;
    inv_db *c = t_db_check(&D->db);
    if (inv_int(c, sql, &v, err, sizeof err) != INV_VALUE) t_fail("%s", err);
    return v;
}

/* SIGTERM: exit 0 within the grace. */
static void d_stop(drops *D, pid_t pid, const char *what, const char *errpath) {
    for (int64_t until = t_now_ms() + 10000; !t_catches(pid, SIGTERM);) {
        if (t_now_ms() > until) break;
        t_sleep_us(1000);
    }
    kill(pid, SIGTERM);
    int code = t_wait(pid, 3000 + 5000);
    if (code != 0) {
        d_violation(D, DV_STOP, "%s after SIGTERM: exit %d, want 0 within the grace; %s",
                    what, code, t_file_gist(errpath));
        if (code < 0) t_kill_reap(pid);
    }
}

void t_drops(const t_env *env, int backend, t_rng *rng) {
    static drops D;
    memset(&D, 0, sizeof D);
    D.env = env;
    t_env_self(env, &D.self);
    t_db_create(env, backend, "drops", &D.db);
    snprintf(D.log, sizeof D.log, "%s/drops.log", env->dir);
    snprintf(D.env_log, sizeof D.env_log, "TORTURE_MJOB_LOG=%s", D.log);
    const char *const migrate[] = {"migrate", NULL};
    d_command(&D, "migrate", migrate);
    t_mjob_prepare(&D.db);

    /* The batch: mkey runs go side by side, mjob runs one at a time (and
     * share their scope with the daemon's scheduled mjob runs). */
    int nq = t_count(env, 8);
    for (int k = 0; k < nq; k++) {
        char key[32];
        bool per_key = k % 2 == 0;
        snprintf(key, sizeof key, "q%03d", k);
        /* Every other pair has a single attempt: a live holder judged dead
         * fails it, and then writes over the verdict (issue 18). */
        const char *const argv[] = {"enqueue", per_key ? "mkey" : "mjob", "--key", key,
                                    "--param", "items=12", "--max-attempts",
                                    k % 4 < 2 ? "1000" : "1", NULL};
        d_command(&D, "enqueue", argv);
    }
    char err_daemon[700], err_worker[700];
    snprintf(err_daemon, sizeof err_daemon, "%s/drops-daemon.err", env->dir);
    snprintf(err_worker, sizeof err_worker, "%s/drops-worker.err", env->dir);
    static const char *const daemon_argv[] = {
        "daemon", "--schedule", "mjob=* * * * * *", "--param", "mjob.items=6",
        "--workers", "2", "--grace", "3", "--lease-ttl", "8", "--chunk-items", "3", NULL};
    static const char *const worker_argv[] = {"worker", "--grace", "3", "--lease-ttl", "8",
                                              "--chunk-items", "3", NULL};
    pid_t daemon = d_spawn(&D, err_daemon, daemon_argv);
    pid_t worker = d_spawn(&D, err_worker, worker_argv);
    /* Faults begin once both are at work: a process that cannot reach the
     * server as it starts exits 1 (README: Errors at start). */
    for (int64_t until = t_now_ms() + 30000;
         d_int(&D, "SELECT count(*) FROM rt_run WHERE status = 'done'") < 2;) {
        if (t_now_ms() > until) t_fail("no run done 30 s after the start; %s",
                                       t_file_gist(err_daemon));
        t_sleep_us(50000);
    }

    /* Faults while the batch and the schedule go. */
    int max_restarts = env->pg_dir && env->pg_server ? t_count(env, 2) : 0;
    int64_t fault_ms = t_count(env, 8000) < 4000 ? 4000 : t_count(env, 8000);
    for (int64_t until = t_now_ms() + fault_ms; t_now_ms() < until;) {
        t_sleep_us(t_between(rng, 200000, 900000));
        if (D.restarts < max_restarts && t_between(rng, 0, 4) == 0) {
            t_pg_restart(env);
            D.restarts++;
        } else {
            D.sessions += t_pg_terminate(&D.db);
            D.terminates++;
        }
        d_check(&D);
        /* A process at work rides a drop out; one that ended is started
         * again, as a supervisor would. */
        int code;
        if ((code = t_wait(daemon, 0)) >= 0) {
            d_violation(&D, DV_EXIT, "the daemon ended while its sessions were dropped: "
                        "exit %d; %s", code, t_file_gist(err_daemon));
            daemon = d_spawn(&D, err_daemon, daemon_argv);
        }
        if ((code = t_wait(worker, 0)) >= 0) {
            d_violation(&D, DV_EXIT, "the worker ended while its sessions were dropped: "
                        "exit %d; %s", code, t_file_gist(err_worker));
            worker = d_spawn(&D, err_worker, worker_argv);
        }
    }

    /* The faults are over: the batch ends done, and a slot after them. */
    int64_t slots = d_int(&D, "SELECT count(*) FROM rt_run WHERE slot_ms IS NOT NULL AND "
                              "status = 'done'");
    char orphan[512] = "";
    int64_t orphan_since = 0;
    for (int64_t t0 = t_now_ms();;) {
        d_check(&D);
        inv_db *c = t_db_check(&D.db);
        bool ok = inv_no_orphans(c, orphan, sizeof orphan);
        int64_t now = t_now_ms();
        if (ok) orphan_since = 0;
        else if (!orphan_since) orphan_since = now;
        else if (now - orphan_since > 8000 + 3000)
            d_violation(&D, DV_ORPHAN, "%s for %lld ms after the last fault", orphan,
                        (long long)(now - orphan_since));
        /* A failed run (a violation already) is not waited for. */
        int64_t left = d_int(&D, "SELECT count(*) FROM rt_run WHERE queued = 1 AND "
                                 "status NOT IN ('done', 'failed')");
        int64_t slots_now = d_int(&D, "SELECT count(*) FROM rt_run WHERE slot_ms IS NOT "
                                      "NULL AND status = 'done'");
        if (!left && slots_now > slots) break;
        if (now - t0 > 90000) {
            d_violation(&D, DV_DRAIN, "90 s after the last fault %lld queued runs are not "
                        "done, %lld slots done since; %s",
                        (long long)left, (long long)(slots_now - slots),
                        orphan[0] ? orphan : "no orphan");
            break;
        }
        t_sleep_us(100000);
    }
    d_stop(&D, daemon, "daemon", err_daemon);
    d_stop(&D, worker, "worker", err_worker);
    d_check(&D);
    int64_t leases = d_int(&D, "SELECT count(*) FROM rt_lease");
    if (leases)
        d_violation(&D, DV_LEFT, "%lld lease rows left after every process stopped",
                    (long long)leases);
    char msg[512];
    if (!t_mjob_data(t_db_check(&D.db), msg, sizeof msg)) d_violation(&D, DV_DATA, "%s", msg);
    int64_t done = d_int(&D, "SELECT count(*) FROM rt_run WHERE status = 'done'");
    int64_t skipped = d_int(&D, "SELECT count(*) FROM rt_run WHERE status = 'skipped'");
    int64_t reconnects = t_file_count(err_daemon, "\"event\":\"db_reconnected\"") +
                         t_file_count(err_worker, "\"event\":\"db_reconnected\"");
    t_db_drop(&D.db);
    char kinds[300] = "";
    for (int v = 0; v < DV_KINDS; v++)
        if (D.by_kind[v])
            snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%s", kinds[0] ? ", " : "",
                     dv_names[v]);
    t_report("%d pg_terminate_backend() (%d sessions) and %d server restarts under %d "
             "queued runs, a daemon's schedule and 3 workers: %lld runs done, %lld slots "
             "skipped, %lld reconnects logged; %d checks, %d violations%s%s%s",
             D.terminates, D.sessions, D.restarts, nq, (long long)done, (long long)skipped,
             (long long)reconnects, D.checks, D.violations, kinds[0] ? " (" : "", kinds,
             kinds[0] ? ")" : "");
    if (D.violations)
        t_fail("%d invariants violated while sessions dropped under queued and scheduled "
               "runs: %s (each printed above)", D.violations, kinds);
}
