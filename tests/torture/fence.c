/*
 * fence.c — a stalled holder and a waiting replica: A runs rowcopy with a
 * short lease, is stopped (SIGSTOP) at a random instant of its copy, B
 * starts with --if-running wait, takes the run over once A's heartbeat is a
 * TTL old and finishes it; then A continues (SIGCONT) and must exit 3
 * (fenced) without having committed anything: the copy stays exact and the
 * epoch stays B's.
 *
 * SQLite: a process stopped inside a write transaction keeps SQLite's one
 * write lock (README: use PostgreSQL for that), so there A is stopped
 * between two transactions: the driver takes the write lock itself, stops
 * A while A can only be waiting for it, and lets go. PostgreSQL: A is
 * stopped wherever it is; the server ends a transaction it left open after
 * idle_in_transaction_session_timeout (2 s here), and B's wait for A's row
 * lock ends with it.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "torture.h"

#define FENCE_ROWS "3000"
#define FENCE_ROWS_N 3000

/* SQLite: stop pid between two of its transactions (see above); false if
 * it ended first. */
static bool fence_stop_between(t_db *db, pid_t pid) {
    sqlite3 *c = NULL;
    if (sqlite3_open_v2(db->path, &c, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        t_fail("open %s: %s", db->path, sqlite3_errmsg(c));
    int64_t until = t_now_ms() + 20000;
    int rc;
    while ((rc = sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, NULL)) == SQLITE_BUSY)
        if (t_now_ms() > until) t_fail("could not take the write lock between two commits in 20 s");
    if (rc != SQLITE_OK) t_fail("BEGIN IMMEDIATE: %s", sqlite3_errmsg(c));
    bool stopped = t_stop(pid);
    sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(c);
    return stopped;
}

static int64_t fence_int(t_db *db, const char *sql) {
    inv_db *c = t_db_check(db);
    int64_t v = 0;
    char err[512];
    if (!c || inv_int(c, sql, &v, err, sizeof err) == INV_ERROR) t_fail("%s", c ? err : "no database");
    t_db_release(db, c);
    return v;
}

void t_fencing(const t_env *env, int backend, t_rng *rng) {
    t_db db;
    t_db_create(env, backend, "fencing", &db);
    char url[1200], a_err[600], b_err[600];
    snprintf(url, sizeof url, "%s%s", db.url,
             backend == T_PG ? " options='-c idle_in_transaction_session_timeout=2s'" : "");
    snprintf(a_err, sizeof a_err, "%s/fencing-%s-A.err", env->dir, t_backend_name(backend));
    snprintf(b_err, sizeof b_err, "%s/fencing-%s-B.err", env->dir, t_backend_name(backend));
    int target = t_count(env, 2), takeovers = 0, early = 0, rounds = 0;
    int64_t max_takeover_ms = 0;
    for (; takeovers < target; rounds++) {
        if (rounds > 4 * target + 10) t_fail("only %d takeovers in %d rounds", takeovers, rounds);
        char key[32], sql[200];
        snprintf(key, sizeof key, "f%d", rounds);
        const char *const argv[] = {"run", "rowcopy", "--key", key, "--param",
                                    "rows=" FENCE_ROWS, "--param", "item_us=100",
                                    "--chunk-items", "50", "--lease-ttl", "1",
                                    "--if-running", "wait", NULL};
        pid_t a = t_spawn(env, url, a_err, argv, NULL);
        int code;
        /* A's copy is under way: its first chunk committed. */
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM rt_run WHERE run_key = '%s' AND step_index = 1 "
                 "AND step_items > 0", key);
        for (int64_t until = t_now_ms() + 30000;;) {
            inv_db *c = t_db_check(&db);
            int64_t n = 0;
            char err[256];
            bool up = c && inv_int(c, sql, &n, err, sizeof err) == INV_VALUE && n > 0;
            t_db_release(&db, c);
            if (up) break;
            if (t_now_ms() > until) t_fail("A made no progress in 30 s; %s", t_file_gist(a_err));
            t_sleep_us(2000);
        }
        /* A random instant of the copy (~0.3 s of it at 100 µs per row). */
        t_sleep_us(t_between(rng, 0, 250000));
        if (!(backend == T_SQLITE ? fence_stop_between(&db, a) : t_stop(a))) {
            code = t_wait(a, 60000); /* it finished first: another round */
            if (code != 0) t_fail("A: exit %d; %s", code, t_file_gist(a_err));
            t_check_done(&db, &t_rowcopy, key);
            early++;
            continue;
        }
        snprintf(sql, sizeof sql, "SELECT epoch FROM rt_run WHERE run_key = '%s'", key);
        int64_t epoch = fence_int(&db, sql);
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM rt_run WHERE run_key = '%s' AND status = 'done'", key);
        bool done_before = fence_int(&db, sql) > 0;

        /* B takes over after the TTL and finishes. */
        int64_t t0 = t_now_ms();
        pid_t b = t_spawn(env, url, b_err, argv, NULL);
        code = t_wait(b, 60000);
        int64_t took = t_now_ms() - t0;
        if (code != 0) t_fail("replica B: exit %d; %s", code, t_file_gist(b_err));
        t_check_done(&db, &t_rowcopy, key);
        bool took_over = t_file_has(b_err, "\"event\":\"takeover\"");
        if (!done_before && !took_over)
            t_fail("B finished %s without taking it over from the stopped A; %s", key,
                   t_file_gist(b_err));

        /* A continues: fenced, writes nothing. */
        kill(a, SIGCONT);
        code = t_wait(a, 60000);
        if (done_before) {
            /* A had committed its last chunk before the stop. */
            if (code != 0 && code != 3)
                t_fail("A (its run done before the stop): exit %d; %s", code, t_file_gist(a_err));
            early++;
            continue;
        }
        if (code != 3) t_fail("stopped holder A: exit %d after SIGCONT, want 3 (fenced); %s",
                              code, t_file_gist(a_err));
        if (!t_file_has(a_err, "\"event\":\"lease_lost\"") || t_file_has(a_err, "\"event\":\"done\""))
            t_fail("A's log does not say lease_lost (or says done); %s", t_file_gist(a_err));
        t_check_done(&db, &t_rowcopy, key);
        snprintf(sql, sizeof sql, "SELECT epoch FROM rt_run WHERE run_key = '%s'", key);
        int64_t now_epoch = fence_int(&db, sql);
        if (now_epoch != epoch + 1)
            t_fail("epoch of %s is %lld after one takeover from epoch %lld", key,
                   (long long)now_epoch, (long long)epoch);
        takeovers++;
        if (took > max_takeover_ms) max_takeover_ms = took;
    }
    t_db_drop(&db);
    t_report("%d holders stopped mid-copy, each taken over by a waiting replica and "
             "fenced on SIGCONT (exit 3, nothing committed); %d finished before "
             "the stop took; replica finished within %lld ms (lease TTL 1 s)",
             takeovers, early, (long long)max_takeover_ms);
}
