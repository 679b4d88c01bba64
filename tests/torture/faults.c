/*
 * faults.c — the database misbehaves under a run, at random instants:
 *
 *   pg-terminate  pg_terminate_backend() on ratchet's sessions (found by
 *                 application_name ratchet:JOB) up to three times per run;
 *   pg-restart    the whole PostgreSQL server restarted (fast) mid-run;
 *   sqlite-lock   another process holds SQLite's write lock (BEGIN
 *                 IMMEDIATE) for 3-5 s while the run works.
 *
 * The run must ride it out (reconnect, or wait for the lock) and finish, or
 * exit 75 (resumable) and finish when started again; either way its data
 * end exact, as after a SIGKILL.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "torture.h"

/* Rounds of faults; the fault function gets the running pid and returns
 * whether it landed (the process was still there to suffer it). */
typedef bool fault_fn(const t_env *env, t_db *db, pid_t pid, const char *errpath,
                      t_rng *rng, int64_t t_us, int64_t *note);

/* Faults that landed while the run was at work (it had logged its start or
 * resume) count towards the target; those in its start-up are counted
 * apart. */
typedef struct faults {
    int landed, in_startup, rounds, exits75, reconnects, refused_start;
    int64_t note_max; /* scenario's own figure (longest hold, ...) */
} faults;

/* One full run without faults: its time (µs), to place the instants in. */
static int64_t faults_calibrate(const t_env *env, t_db *db, const t_job *job,
                                const char *key, const char *errpath) {
    const char *argv[40];
    t_run_argv(job, key, NULL, argv);
    int64_t t0 = t_now_us();
    pid_t pid = t_spawn(env, db->url, errpath, argv, NULL);
    int code = t_wait(pid, 60000);
    if (code != 0) t_fail("%s/%s: exit %d; %s", job->name, key, code, t_file_gist(errpath));
    t_check_done(db, job, key);
    return t_now_us() - t0;
}

static void faults_run(const t_env *env, int backend, t_rng *rng, const char *tag,
                       int target, int per_run, fault_fn *fault, faults *F) {
    t_db db;
    t_db_create(env, backend, tag, &db);
    char errpath[600];
    snprintf(errpath, sizeof errpath, "%s/%s-%s.err", env->dir, tag, t_backend_name(backend));
    int64_t t_us[2] = {faults_calibrate(env, &db, &t_rowcopy, "c0", errpath),
                       faults_calibrate(env, &db, &t_aggregate, "c1", errpath)};
    for (int r = 0; F->landed < target; r++) {
        if (r > 20 * target + 20)
            t_fail("only %d faults landed on runs at work in %d rounds", F->landed, r);
        const t_job *job = r % 2 ? &t_aggregate : &t_rowcopy;
        char key[32];
        snprintf(key, sizeof key, "r%d", r);
        const char *argv[40];
        t_run_argv(job, key, NULL, argv);
        for (int start = 0;; start++) {
            if (start > 50) t_fail("%s/%s did not finish in 50 starts", job->name, key);
            pid_t pid = t_spawn(env, db.url, errpath, argv, NULL);
            for (int k = 0; k < per_run; k++) {
                int64_t note = 0;
                if (!fault(env, &db, pid, errpath, rng, t_us[r % 2], &note)) break;
                if (t_file_has(errpath, "\"event\":\"start\"") ||
                    t_file_has(errpath, "\"event\":\"resume\""))
                    F->landed++;
                else
                    F->in_startup++;
                if (note > F->note_max) F->note_max = note;
            }
            int code = t_wait(pid, 120000);
            F->reconnects += t_file_count(errpath, "\"event\":\"db_reconnected\"");
            if (code == 0) break;
            if (code == 75) { /* resumable: a supervisor starts it again */
                F->exits75++;
                t_check_progress(&db, job, key, NULL);
                continue;
            }
            /* The server was away as the process started: it says so and
             * exits 1 (README: Errors at start) before touching the run. */
            if (code == 1 && t_file_has(errpath, "\"event\":\"db_open\"") &&
                !t_file_has(errpath, "\"event\":\"start\"") &&
                !t_file_has(errpath, "\"event\":\"resume\"")) {
                F->refused_start++;
                t_check_progress(&db, job, key, NULL);
                continue;
            }
            t_fail("%s/%s under %s: exit %d, want 0 or 75; %s", job->name, key, tag, code,
                   t_file_gist(errpath));
        }
        t_check_done(&db, job, key);
        F->rounds++;
    }
    t_db_drop(&db);
}

/* ---------------------------------------------------------- pg-terminate */

static bool fault_terminate(const t_env *env, t_db *db, pid_t pid, const char *errpath,
                            t_rng *rng, int64_t t_us, int64_t *note) {
    (void)env;
    (void)errpath;
    t_sleep_us(t_between(rng, 0, t_us));
    if (!t_alive(pid)) return false;
    int n = t_pg_terminate(db);
    *note = n;
    return n > 0 && t_alive(pid);
}

void t_pg_kill(const t_env *env, int backend, t_rng *rng) {
    faults F = {0};
    faults_run(env, backend, rng, "pg-terminate", t_count(env, 20), 3, fault_terminate, &F);
    t_report("%d pg_terminate_backend() landed on runs at work, %d on starting ones "
             "(up to %lld sessions at once) in %d rounds: %d reconnects, %d exits 75, "
             "%d refused starts; every run finished exact",
             F.landed, F.in_startup, (long long)F.note_max, F.rounds, F.reconnects,
             F.exits75, F.refused_start);
}

/* ------------------------------------------------------------ pg-restart */

static bool fault_restart(const t_env *env, t_db *db, pid_t pid, const char *errpath,
                          t_rng *rng, int64_t t_us, int64_t *note) {
    (void)db;
    (void)errpath;
    t_sleep_us(t_between(rng, 0, t_us));
    if (!t_alive(pid)) return false;
    int64_t t0 = t_now_ms();
    t_pg_restart(env);
    *note = t_now_ms() - t0;
    return true;
}

void t_pg_restarts(const t_env *env, int backend, t_rng *rng) {
    if (!env->pg_dir || !env->pg_server) {
        t_report("skipped: the server is not ours (RATCHET_TEST_PG_DIR unset)");
        return;
    }
    faults F = {0};
    faults_run(env, backend, rng, "pg-restart", t_count(env, 2), 1, fault_restart, &F);
    t_report("%d server restarts while a run was at work, %d while one started (each "
             "down for up to %lld ms) in %d rounds: %d reconnects, %d exits 75, %d "
             "refused starts; every run finished exact",
             F.landed, F.in_startup, (long long)F.note_max, F.rounds, F.reconnects,
             F.exits75, F.refused_start);
}

/* ----------------------------------------------------------- sqlite-lock */

static bool fault_lock(const t_env *env, t_db *db, pid_t pid, const char *errpath,
                       t_rng *rng, int64_t t_us, int64_t *note) {
    (void)env;
    /* A hold costs seconds: place it in the run's work, after its start. */
    while (t_alive(pid) && !t_file_has(errpath, "\"event\":\"start\"") &&
           !t_file_has(errpath, "\"event\":\"resume\""))
        t_sleep_us(1000);
    t_sleep_us(t_between(rng, 0, t_us / 2));
    sqlite3 *c = NULL;
    if (sqlite3_open_v2(db->path, &c, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        t_fail("open %s: %s", db->path, sqlite3_errmsg(c));
    sqlite3_busy_timeout(c, 30000);
    if (sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        t_fail("BEGIN IMMEDIATE: %s", sqlite3_errmsg(c));
    bool landed = t_alive(pid);
    int64_t hold = t_between(rng, 3000, 5000), t0 = t_now_ms();
    /* Holding the lock is the fault itself: keep it for 3-5 s. */
    if (landed) t_sleep_us(hold * 1000);
    *note = t_now_ms() - t0;
    sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(c);
    return landed;
}

void t_sqlite_lock(const t_env *env, int backend, t_rng *rng) {
    faults F = {0};
    faults_run(env, backend, rng, "sqlite-lock", t_count(env, 2), 1, fault_lock, &F);
    t_report("%d runs at work and %d starting ones waited out another process's "
             "write lock (held up to %lld ms) and finished exact; %d exits 75",
             F.landed, F.in_startup, (long long)F.note_max, F.exits75);
}
