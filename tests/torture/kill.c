/*
 * kill.c — SIGKILL and SIGTERM at random instants, over and over.
 *
 * Rounds alternate rowcopy and aggregate, each under a new key; every fifth
 * round starts from an empty database, so the first process also creates
 * the schema. A round starts the run, waits a random time uniform in
 * [0, T] — T is the job's full-run time — sends the signal, and starts the
 * run again until one exits 0. T is measured first and then follows the
 * machine: a little longer after each start the signal cut short, shorter
 * after each that finished first, so that about seven starts in ten are
 * hit however busy the machine is.
 * A kill that lands (the process dies of it) may hit start-up, migration,
 * any step or the exit; after each, the database must be intact and its
 * progress row agree with its data; after each round, the run is done, its
 * data exact, and no run or lease is left behind.
 *
 * SIGTERM: the process must exit 75 within --grace (or 0, having finished);
 * a process that had not installed its handlers yet (the instant fell in
 * its start-up, as /proc's SigCgt shows just before the signal) may die of
 * it, and that is counted apart.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "torture.h"

#define KILL_FRESH_EVERY 5
#define KILL_MAX_STARTS 2000
#define TERM_GRACE "2"
#define TERM_GRACE_S 2
#define TERM_SLACK_MS 250

typedef struct loop {
    const t_env *env;
    t_rng *rng;
    t_db db;
    int sig;
    int64_t t_us[2];        /* T per job (0 rowcopy, 1 aggregate) */
    int64_t t_first[2];     /* T as first measured */
    int round, fresh, landed, starts;
    int phase[2][6];        /* per job: -2 .. 3, as t_check_progress says */
    /* SIGTERM */
    int interrupted, finished_on_signal, before_handlers;
    int64_t max_exit_ms;
    char errpath[600];
} loop;

static const t_job *loop_job(int round) { return round % 2 ? &t_aggregate : &t_rowcopy; }

/* One run to its end without a signal: how long it took (µs). */
static int64_t loop_calibrate(loop *L, int round) {
    const t_job *job = loop_job(round);
    char key[32];
    snprintf(key, sizeof key, "k%d", round);
    const char *argv[40];
    t_run_argv(job, key, NULL, argv);
    int64_t t0 = t_now_us();
    pid_t pid = t_spawn(L->env, L->db.url, L->errpath, argv, NULL);
    int code = t_wait(pid, 60000);
    int64_t took = t_now_us() - t0;
    if (code != 0) t_fail("%s/%s without a signal: exit %d; %s", job->name, key, code,
                          t_file_gist(L->errpath));
    t_check_done(&L->db, job, key);
    return took;
}

/* After SIGTERM: exit 75 (or 0) within the grace, or death before the
 * handlers were there. Returns whether the run finished. */
static bool loop_after_term(loop *L, pid_t pid, bool caught, const t_job *job,
                            const char *key) {
    int64_t t0 = t_now_us();
    kill(pid, SIGTERM);
    int code = t_wait(pid, TERM_GRACE_S * 1000 + 10000);
    int64_t ms = (t_now_us() - t0) / 1000;
    if (code == -1)
        t_fail("%s/%s: no exit %lld ms after SIGTERM (grace %d s)", job->name, key,
               (long long)ms, TERM_GRACE_S);
    if (ms > L->max_exit_ms) L->max_exit_ms = ms;
    if (ms > TERM_GRACE_S * 1000 + TERM_SLACK_MS)
        t_fail("%s/%s: exit %d only %lld ms after SIGTERM, grace is %d s", job->name, key,
               code, (long long)ms, TERM_GRACE_S);
    if (code == 0) {
        L->finished_on_signal++;
        return true;
    }
    if (code == 128 + SIGTERM) {
        if (caught)
            t_fail("%s/%s died of SIGTERM although it catches it (exit %d); %s",
                   job->name, key, code, t_file_gist(L->errpath));
        L->before_handlers++;
        t_check_progress(&L->db, job, key, NULL);
        return false;
    }
    if (code != 75)
        t_fail("%s/%s: exit %d after SIGTERM, want 75 or 0; %s", job->name, key, code,
               t_file_gist(L->errpath));
    L->interrupted++;
    L->landed++;
    t_check_progress(&L->db, job, key, NULL);
    /* Interrupted means not running: the run row says so (or none exists). */
    inv_db *c = t_db_check(&L->db);
    inv_run run = {0};
    char msg[512];
    if (c && !inv_run_read(c, job->name, key, &run, msg, sizeof msg)) t_fail("%s", msg);
    t_db_release(&L->db, c);
    if (run.exists && strcmp(run.status, "interrupted") != 0)
        t_fail("%s/%s exited 75 but its run is '%s'", job->name, key, run.status);
    return false;
}

/* T follows the run's time on this machine right now: +3 % after a start
 * the signal hit, -7 % after one that had finished (about 70 % hit). */
static void loop_adapt(loop *L, int j, bool hit) {
    L->t_us[j] = hit ? L->t_us[j] * 103 / 100 : L->t_us[j] * 93 / 100;
    if (L->t_us[j] < 5000) L->t_us[j] = 5000;
}

/* One round: start, signal, start again until the run finishes. */
static void loop_round(loop *L) {
    int r = L->round++;
    const t_job *job = loop_job(r);
    if (r % KILL_FRESH_EVERY == 0) {
        t_db_wipe(&L->db);
        L->fresh++;
    }
    char key[32];
    snprintf(key, sizeof key, "k%d", r);
    const char *argv[40];
    const char *const term_extra[] = {"--grace", TERM_GRACE, NULL};
    t_run_argv(job, key, L->sig == SIGTERM ? term_extra : NULL, argv);
    for (int start = 0;; start++) {
        if (start == KILL_MAX_STARTS)
            t_fail("%s/%s did not finish in %d starts", job->name, key, start);
        L->starts++;
        pid_t pid = t_spawn(L->env, L->db.url, L->errpath, argv, NULL);
        /* The window widens with each start of a round, so that every
         * round ends however slow the machine is today. */
        t_sleep_us(t_between(L->rng, 0, L->t_us[r % 2] * (8 + start) / 8));
        if (L->sig == SIGTERM) {
            bool caught = t_catches(pid, SIGTERM);
            bool done = loop_after_term(L, pid, caught, job, key);
            loop_adapt(L, r % 2, !done);
            if (done) break;
            continue;
        }
        kill(pid, SIGKILL);
        int code = t_wait(pid, 60000);
        loop_adapt(L, r % 2, code != 0);
        if (code == 0) break;
        if (code != 128 + SIGKILL)
            t_fail("%s/%s: exit %d, want 0 or death by SIGKILL; %s", job->name, key, code,
                   t_file_gist(L->errpath));
        int step = 0;
        t_check_progress(&L->db, job, key, &step);
        L->landed++;
        L->phase[r % 2][step + 2]++;
    }
    t_check_done(&L->db, job, key);
}

static void loop_run(const t_env *env, int backend, t_rng *rng, int sig, int target) {
    loop L;
    memset(&L, 0, sizeof L);
    L.env = env;
    L.rng = rng;
    L.sig = sig;
    snprintf(L.errpath, sizeof L.errpath, "%s/%s-%s.err", env->dir,
             sig == SIGKILL ? "sigkill" : "sigterm", t_backend_name(backend));
    t_db_create(env, backend, sig == SIGKILL ? "sigkill" : "sigterm", &L.db);
    /* T per job: the faster of two full runs on a database that has the
     * schema (rounds 0-5 alternate the jobs, as every round does; 0 and 1
     * create the schema and the job's tables). The faster, because a busy
     * machine only ever makes a run slower: a T from a slow moment would
     * spend most starts running to the end. A start on an empty database
     * takes longer, so more of its instants fall into start-up. */
    for (int k = 0; k < 6; k++) {
        int64_t took = loop_calibrate(&L, L.round++);
        if (k >= 2 && (!L.t_us[k % 2] || took < L.t_us[k % 2])) L.t_us[k % 2] = took;
    }
    L.t_first[0] = L.t_us[0];
    L.t_first[1] = L.t_us[1];
    L.round = 10; /* round 10 wipes the database: a fresh start */
    while (L.landed < target) loop_round(&L);
    t_db_drop(&L.db);
    if (sig == SIGKILL) {
        char by[2][300];
        for (int j = 0; j < 2; j++) {
            const t_job *job = j ? &t_aggregate : &t_rowcopy;
            int *p = L.phase[j];
            snprintf(by[j], sizeof by[j],
                     "%s: start-up/migration %d, before the run %d, %s %d, %s %d, %s %d, "
                     "at exit %d",
                     job->name, p[0], p[1], job->steps[0], p[2], job->steps[1], p[3],
                     job->steps[2], p[4], p[5]);
        }
        t_report("%d SIGKILLs landed (%d starts, %d rounds done, %d from an empty "
                 "database; T rowcopy/aggregate %lld/%lld ms measured, %lld/%lld ms at "
                 "the end); %s; %s",
                 L.landed, L.starts, L.round, L.fresh, (long long)L.t_first[0] / 1000,
                 (long long)L.t_first[1] / 1000, (long long)L.t_us[0] / 1000,
                 (long long)L.t_us[1] / 1000, by[0], by[1]);
    } else {
        t_report("%d SIGTERMs: %d exits 75, %d runs finished first (exit 0), %d died "
                 "of it before their handlers existed (start-up, /proc SigCgt); max "
                 "exit latency %lld ms (grace %d s); %d rounds done, %d from an empty "
                 "database",
                 L.starts, L.interrupted, L.finished_on_signal, L.before_handlers,
                 (long long)L.max_exit_ms, TERM_GRACE_S, L.round, L.fresh);
    }
}

/* At scale 1 (make check) 1000 SIGKILLs on SQLite and 200 on PostgreSQL,
 * side by side: about two minutes on the 2-core machine. make torture: ten
 * times as many. */
void t_sigkill(const t_env *env, int backend, t_rng *rng) {
    loop_run(env, backend, rng, SIGKILL, t_count(env, backend == T_PG ? 200 : 1000));
}

void t_sigterm(const t_env *env, int backend, t_rng *rng) {
    loop_run(env, backend, rng, SIGTERM, t_count(env, backend == T_PG ? 20 : 40));
}
