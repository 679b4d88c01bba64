/*
 * sched.c — the resident processes under SIGKILL while they work:
 *
 *   daemon  two `ratchet daemon`s schedule tick every second (each run
 *           lasts 400 ms); at random instants one of the daemons or one of
 *           their `run` children is SIGKILLed, and a killed daemon is
 *           started again at once, as a supervisor would;
 *   queue   a batch of tick runs (100 ms each) is enqueued and two
 *           `ratchet worker --concurrency 2` pools work it off; at random
 *           instants a pool or one of its worker processes is SIGKILLed,
 *           and a killed pool is started again.
 *
 * Afterwards, with the killing over and the processes left alive: every
 * run still 'running' has a live holder (the dead ones' runs were taken
 * over) — awaited, since healing takes a moment — then SIGTERM stops them
 * all (exit 0 within the grace), and tick_log shows each slot or queued run
 * done exactly once, never two at a time (tick is one run of the job at a
 * time), each row belonging to a run that is done.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "torture.h"

#define SCHED_GRACE "3"
#define SCHED_GRACE_MS 3000
#define SCHED_MAX_TOP 2

typedef struct sched {
    const t_env *env;
    t_db db;
    int backend;
    const char *const *argv;
    pid_t top[SCHED_MAX_TOP];
    char err[SCHED_MAX_TOP][600];
    int kills_top, kills_child, restarts;
} sched;

static void sched_start(sched *S, int i) {
    S->top[i] = t_spawn(S->env, S->db.url, S->err[i], S->argv, NULL);
}

static int64_t sched_int(sched *S, const char *sql) {
    inv_db *c = t_db_check(&S->db);
    int64_t v = 0;
    char err[512];
    if (!c || inv_int(c, sql, &v, err, sizeof err) != INV_VALUE)
        t_fail("%s", c ? err : "no database");
    t_db_release(&S->db, c);
    return v;
}

/* Poll until sql returns at least want, up to timeout_ms. */
static bool sched_await(sched *S, const char *sql, int64_t want, int timeout_ms) {
    for (int64_t until = t_now_ms() + timeout_ms;;) {
        if (sched_int(S, sql) >= want) return true;
        if (t_now_ms() > until) return false;
        t_sleep_us(20000);
    }
}

/* The process that took a lease last (host:pid:nonce), 0 if none. */
static pid_t sched_holder(sched *S) {
    inv_db *c = t_db_check(&S->db);
    char owner[256] = "", err[256];
    if (c) inv_text(c, "SELECT owner FROM rt_lease ORDER BY acquired_ms DESC",
                    owner, sizeof owner, err, sizeof err);
    t_db_release(&S->db, c);
    const char *colon = strchr(owner, ':');
    return colon ? (pid_t)atoi(colon + 1) : 0;
}

/*
 * SIGKILL, at random: one of the top processes (a third of the time), the
 * child that holds the newest lease — a run at work (a third), or any of
 * their children (the rest; a daemon's are runs, a pool's are workers).
 */
static void sched_kill_one(sched *S, t_rng *rng) {
    pid_t kids[64];
    int nkids = 0;
    for (int i = 0; i < SCHED_MAX_TOP; i++)
        nkids += t_children(S->top[i], kids + nkids, 64 / SCHED_MAX_TOP);
    int64_t what = t_between(rng, 0, 2);
    if (nkids > 0 && what > 0) {
        pid_t victim = kids[t_between(rng, 0, nkids - 1)], holder = sched_holder(S);
        for (int k = 0; what == 1 && k < nkids; k++)
            if (kids[k] == holder) victim = holder;
        if (kill(victim, SIGKILL) != 0) return; /* it ended meanwhile */
        /* Dead before anything is looked at: a victim still running a
         * moment after kill() would pass for a live holder. */
        if (!t_await_death(victim, 10000))
            t_fail("process %d still alive 10 s after its SIGKILL", (int)victim);
        S->kills_child++;
        return;
    }
    int i = (int)t_between(rng, 0, SCHED_MAX_TOP - 1);
    kill(S->top[i], SIGKILL);
    int code = t_wait(S->top[i], 10000);
    if (code != 128 + SIGKILL)
        t_fail("%s: exit %d, want death by SIGKILL; %s", S->argv[0], code,
               t_file_gist(S->err[i]));
    S->kills_top++;
    S->restarts++;
    sched_start(S, i);
}

/* Kill at random instants for duration_ms, then let them heal. */
static void sched_torment(sched *S, t_rng *rng, int64_t duration_ms) {
    for (int64_t until = t_now_ms() + duration_ms; t_now_ms() < until;) {
        t_sleep_us(t_between(rng, 100000, 600000));
        sched_kill_one(S, rng);
    }
}

/* Every run left 'running' has a live holder: awaited (takeover of a dead
 * holder's run takes a poll or two). */
static void sched_await_no_orphans(sched *S) {
    char msg[512] = "";
    for (int64_t until = t_now_ms() + 15000;;) {
        inv_db *c = t_db_check(&S->db);
        bool ok = inv_no_orphans(c, msg, sizeof msg);
        t_db_release(&S->db, c);
        if (ok) return;
        if (t_now_ms() > until) t_fail("15 s after the last kill: %s", msg);
        t_sleep_us(50000);
    }
}

/* SIGTERM each: exit 0 within the grace. A process started a moment ago
 * (a restart after the last kill) gets the signal once its handlers are
 * there: before, it would just die of it, as any program does. */
static void sched_stop_all(sched *S) {
    for (int i = 0; i < SCHED_MAX_TOP; i++)
        for (int64_t until = t_now_ms() + 10000; !t_catches(S->top[i], SIGTERM);) {
            if (t_now_ms() > until) t_fail("%s does not catch SIGTERM 10 s after its start",
                                           S->argv[0]);
            t_sleep_us(1000);
        }
    for (int i = 0; i < SCHED_MAX_TOP; i++) kill(S->top[i], SIGTERM);
    int64_t t0 = t_now_ms();
    for (int i = 0; i < SCHED_MAX_TOP; i++) {
        int code = t_wait(S->top[i], SCHED_GRACE_MS + 5000);
        int64_t ms = t_now_ms() - t0;
        if (code != 0 || ms > SCHED_GRACE_MS + 250)
            t_fail("%s after SIGTERM: exit %d after %lld ms (grace %d ms); %s", S->argv[0],
                   code, (long long)ms, SCHED_GRACE_MS, t_file_gist(S->err[i]));
    }
}

/* tick_log: one row per run, each of a done run, none overlapping; and
 * nothing is left running. Returns the rows. */
static int64_t sched_check_ticks(sched *S) {
    int64_t rows = sched_int(S, "SELECT count(*) FROM tick_log");
    int64_t keys = sched_int(S, "SELECT count(DISTINCT run_key) FROM tick_log");
    int64_t of_done = sched_int(S, "SELECT count(*) FROM tick_log t JOIN rt_run r ON "
                                   "r.job = 'tick' AND r.run_key = t.run_key AND "
                                   "r.status = 'done'");
    int64_t done = sched_int(S, "SELECT count(*) FROM rt_run WHERE job = 'tick' AND "
                                "status = 'done'");
    int64_t overlap = sched_int(S, "SELECT count(*) FROM tick_log a JOIN tick_log b ON "
                                   "a.run_key < b.run_key AND a.start_ms < b.end_ms AND "
                                   "b.start_ms < a.end_ms");
    int64_t running = sched_int(S, "SELECT count(*) FROM rt_run WHERE status = 'running'");
    if (keys != rows) t_fail("tick_log: %lld rows for %lld runs: a run ran twice",
                             (long long)rows, (long long)keys);
    if (of_done != rows || done != rows)
        t_fail("tick_log has %lld rows, %lld of them of done runs; %lld runs are done",
               (long long)rows, (long long)of_done, (long long)done);
    if (overlap) t_fail("%lld pairs of tick runs overlapped", (long long)overlap);
    if (running) t_fail("%lld runs left 'running' after every process stopped",
                        (long long)running);
    return rows;
}

static void sched_setup(sched *S, const t_env *env, int backend, const char *tag,
                        const char *const *argv) {
    memset(S, 0, sizeof *S);
    S->env = env;
    S->backend = backend;
    S->argv = argv;
    t_db_create(env, backend, tag, &S->db);
    for (int i = 0; i < SCHED_MAX_TOP; i++)
        snprintf(S->err[i], sizeof S->err[i], "%s/%s-%s-%d.err", env->dir, tag,
                 t_backend_name(backend), i);
    const char *const migrate[] = {"migrate", NULL};
    pid_t m = t_spawn(env, S->db.url, S->err[0], migrate, NULL);
    int code = t_wait(m, 30000);
    if (code != 0) t_fail("migrate: exit %d; %s", code, t_file_gist(S->err[0]));
}

void t_daemon(const t_env *env, int backend, t_rng *rng) {
    static const char *const argv[] = {"daemon", "--schedule", "tick=* * * * * *",
                                       "--param", "tick.sleep_ms=400", "--workers", "0",
                                       "--grace", SCHED_GRACE, NULL};
    sched S;
    sched_setup(&S, env, backend, "daemon", argv);
    for (int i = 0; i < SCHED_MAX_TOP; i++) sched_start(&S, i);
    if (!sched_await(&S, "SELECT count(*) FROM rt_run WHERE status = 'done'", 1, 30000))
        t_fail("no slot ran in 30 s; %s", t_file_gist(S.err[0]));
    sched_torment(&S, rng, t_count(env, 5000));
    sched_await_no_orphans(&S);
    /* One more slot done after the last kill: the schedule goes on. */
    int64_t done = sched_int(&S, "SELECT count(*) FROM rt_run WHERE status = 'done'");
    if (!sched_await(&S, "SELECT count(*) FROM rt_run WHERE status = 'done'", done + 1, 20000))
        t_fail("no slot finished in the 20 s after the last kill; %s", t_file_gist(S.err[0]));
    sched_stop_all(&S);
    int64_t rows = sched_check_ticks(&S);
    int64_t healed = sched_int(&S, "SELECT count(*) FROM rt_run WHERE status = 'done' "
                                   "AND attempt > 1");
    int64_t skipped = sched_int(&S, "SELECT count(*) FROM rt_run WHERE status = 'skipped'");
    t_db_drop(&S.db);
    t_report("%d SIGKILLs (%d daemons, restarted at once; %d of their runs): %lld slots "
             "done exactly once, %lld of them after a takeover, %lld skipped; no run "
             "left without a live holder",
             S.kills_top + S.kills_child, S.kills_top, S.kills_child, (long long)rows,
             (long long)healed, (long long)skipped);
}

void t_queue(const t_env *env, int backend, t_rng *rng) {
    static const char *const argv[] = {"worker", "--concurrency", "2", "--grace",
                                       SCHED_GRACE, NULL};
    sched S;
    sched_setup(&S, env, backend, "queue", argv);
    int n = t_count(env, 30);
    for (int k = 0; k < n; k++) {
        char key[32];
        snprintf(key, sizeof key, "q%03d", k);
        const char *const enqueue[] = {"enqueue", "tick", "--key", key, "--param",
                                       "sleep_ms=100", "--max-attempts", "1000", NULL};
        pid_t e = t_spawn(env, S.db.url, S.err[0], enqueue, NULL);
        int code = t_wait(e, 30000);
        if (code != 0) t_fail("enqueue: exit %d; %s", code, t_file_gist(S.err[0]));
    }
    for (int i = 0; i < SCHED_MAX_TOP; i++) sched_start(&S, i);
    if (!sched_await(&S, "SELECT count(*) FROM rt_run WHERE status = 'done'", 1, 30000))
        t_fail("no queued run ran in 30 s; %s", t_file_gist(S.err[0]));
    /* Kill while about half of the batch is still to do. */
    sched_torment(&S, rng, t_count(env, 2500));
    /* A dead worker's run is taken over at once (its liveness lock is
     * free): first no orphan, then the rest of the batch. */
    sched_await_no_orphans(&S);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM rt_run WHERE status = 'done'");
    if (!sched_await(&S, sql, n, 120000))
        t_fail("only %lld of %d queued runs done 120 s after the last kill; %s",
               (long long)sched_int(&S, sql), n, t_file_gist(S.err[0]));
    sched_stop_all(&S);
    int64_t rows = sched_check_ticks(&S);
    if (rows != n) t_fail("%lld of %d queued runs wrote their row", (long long)rows, n);
    int64_t retried = sched_int(&S, "SELECT count(*) FROM rt_run WHERE failures > 0");
    int64_t failed = sched_int(&S, "SELECT count(*) FROM rt_run WHERE status <> 'done'");
    if (failed) t_fail("%lld queued runs are not done", (long long)failed);
    t_db_drop(&S.db);
    t_report("%d SIGKILLs (%d pools, restarted at once; %d workers): all %d queued runs "
             "done exactly once, %lld of them after a crash of their worker; no run "
             "left without a live holder",
             S.kills_top + S.kills_child, S.kills_top, S.kills_child, n,
             (long long)retried);
}
