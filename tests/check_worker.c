/*
 * check_worker.c — the worker suite (framework/service/worker.c): the run
 * queue (issue 6): enqueue inside the caller's transaction
 * (rt_enqueue_sqlite / rt_enqueue_pg), `ratchet enqueue`, workers of several
 * processes running every queued run exactly once, retries with backoff up
 * to max attempts, a crashed attempt counted, a SIGTERMed worker pool
 * stopping within its grace period, and a run whose job changed set aside
 * untouched. Loop tests run on both backends (_i).
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ratchet.h>

#include "harness.h"
#include "suites.h"

#define EVENT(name) "\"event\":\"" name "\""

/* The tick job's definition as the ratchet binary has it (same step names,
 * so the same fingerprint); params are checked by the binary. */
static int queue_never(rt_ctx *ctx) {
    (void)ctx;
    return RT_ERROR;
}
static const rt_step queue_tick_steps[] = {{"tick", queue_never}, {NULL, NULL}};
static const rt_job queue_tick = {.name = "tick", .steps = queue_tick_steps};

/* A raw connection of the caller's kind, for the transactional API. */
typedef struct caller {
    int backend;
    sqlite3 *db;
    PGconn *pg;
} caller;

static caller queue_connect(int backend, const char *url) {
    caller c = {backend, NULL, NULL};
    if (backend == H_SQLITE) {
        ck_assert_int_eq(sqlite3_open(url + strlen("sqlite:"), &c.db), SQLITE_OK);
        sqlite3_busy_timeout(c.db, 5000);
    } else {
        c.pg = PQconnectdb(url);
        ck_assert_msg(PQstatus(c.pg) == CONNECTION_OK, "%s", PQerrorMessage(c.pg));
    }
    return c;
}

static void queue_sql(caller *c, const char *sql) {
    if (c->db) {
        ck_assert_msg(sqlite3_exec(c->db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s: %s", sql,
                      sqlite3_errmsg(c->db));
    } else {
        PGresult *r = PQexec(c->pg, sql);
        ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql,
                      PQerrorMessage(c->pg));
        PQclear(r);
    }
}

static int queue_enqueue(caller *c, const rt_job *job, const rt_enqueue_opts *o,
                         bool *created) {
    char err[512] = "";
    int rc = c->db ? rt_enqueue_sqlite(c->db, job, o, NULL, 0, created, err, sizeof err)
                   : rt_enqueue_pg(c->pg, job, o, NULL, 0, created, err, sizeof err);
    ck_assert_msg(rc == RT_OK, "enqueue: %s", err);
    return rc;
}

static void queue_close(caller *c) {
    if (c->db) sqlite3_close(c->db);
    if (c->pg) PQfinish(c->pg);
}

/* ---------------------------------------- enqueue in the caller's tx */

START_TEST(test_transactional_enqueue) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    caller c = queue_connect(_i, url);
    queue_sql(&c, "CREATE TABLE orders (id INTEGER)");
    bool created = false;
    /* Rolled back: neither the order nor its run exist. */
    queue_sql(&c, "BEGIN");
    queue_sql(&c, "INSERT INTO orders VALUES (1)");
    queue_enqueue(&c, &queue_tick, &(rt_enqueue_opts){.key = "order-1"}, &created);
    ck_assert(created);
    queue_sql(&c, "ROLLBACK");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 0);
    /* Committed: both, together. */
    queue_sql(&c, "BEGIN");
    queue_sql(&c, "INSERT INTO orders VALUES (2)");
    queue_enqueue(&c, &queue_tick,
                  &(rt_enqueue_opts){.key = "order-2", .priority = 5, .max_attempts = 2},
                  &created);
    ck_assert(created);
    queue_sql(&c, "COMMIT");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE run_key = 'order-2' "
                                      "AND queued = 1 AND status = 'pending' AND priority = 5 "
                                      "AND max_attempts = 2"), 1);
    /* Idempotent: the same key again changes nothing. */
    queue_sql(&c, "BEGIN");
    queue_enqueue(&c, &queue_tick, &(rt_enqueue_opts){.key = "order-2"}, &created);
    ck_assert(!created);
    queue_sql(&c, "COMMIT");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);
    /* A key longer than 255 bytes is refused, nothing written. */
    char long_key[300], err[512] = "";
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    const rt_enqueue_opts lo = {.key = long_key};
    int rc = c.db ? rt_enqueue_sqlite(c.db, &queue_tick, &lo, NULL, 0, NULL, err, sizeof err)
                  : rt_enqueue_pg(c.pg, &queue_tick, &lo, NULL, 0, NULL, err, sizeof err);
    ck_assert_int_eq(rc, RT_INVALID);
    ck_assert_msg(strstr(err, "at most 255 bytes"), "%s", err);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);
    queue_close(&c);
    /* A worker runs it. */
    pid_t w = h_spawn(h_bin(), url, ARGS("worker"), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 1,
                              20000), "%s", h_stderr(w));
    ck_assert_int_eq(kill(w, SIGTERM), 0);
    EXPECT_EXIT(w, h_wait(w, 9000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log WHERE run_key = 'order-2'"),
                     1);
}
END_TEST

/* ------------------------- 500 runs, two pools of two: each exactly once */

START_TEST(test_two_pools_every_run_once) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    caller c = queue_connect(_i, url);
    queue_sql(&c, "BEGIN");
    for (int k = 0; k < 500; k++) {
        char key[32];
        snprintf(key, sizeof key, "t%03d", k);
        bool created = false;
        queue_enqueue(&c, &queue_tick, &(rt_enqueue_opts){.key = key}, &created);
        ck_assert(created);
    }
    queue_sql(&c, "COMMIT");
    queue_close(&c);
    pid_t w[2];
    for (int k = 0; k < 2; k++)
        w[k] = h_spawn(h_bin(), url, ARGS("worker", "--concurrency", "2"), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 500,
                              120000), "not all done; stderr:\n%s", h_stderr(w[0]));
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(kill(w[k], SIGTERM), 0);
        EXPECT_EXIT(w[k], h_wait(w[k], 9000), 0);
    }
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log"), 500);
    ck_assert_int_eq(h_query_int(url, "SELECT count(DISTINCT run_key) FROM tick_log"), 500);
    /* tick is job-scoped: no two of its runs overlapped. */
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log a JOIN tick_log b ON "
                                      "a.run_key < b.run_key AND a.start_ms < b.end_ms AND "
                                      "b.start_ms < a.end_ms"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_lease"), 0);
}
END_TEST

/* --------------------------------- flaky: retried, then done or failed */

START_TEST(test_retries) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t e = h_spawn(h_bin(), url,
                      ARGS("enqueue", "flaky", "--key", "ok", "--param", "fail_times=2"), NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    ck_assert_str_eq(h_stdout(e), "flaky/ok\n");
    e = h_spawn(h_bin(), url,
                ARGS("enqueue", "flaky", "--key", "bad", "--param", "fail_times=5",
                     "--max-attempts", "2"),
                NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    pid_t w = h_spawn(h_bin(), url, ARGS("worker"), NULL);
    pid_t ok = h_spawn(h_bin(), url, ARGS("wait", "flaky", "--key", "ok", "--timeout", "60"),
                       NULL);
    pid_t bad = h_spawn(h_bin(), url,
                        ARGS("wait", "flaky", "--key", "bad", "--timeout", "60"), NULL);
    EXPECT_EXIT(ok, h_wait(ok, 70000), 0);
    EXPECT_EXIT(bad, h_wait(bad, 70000), 1);
    ck_assert_msg(strstr(h_stderr(bad), "failing on purpose: attempt 2"), "%s",
                  h_stderr(bad));
    ck_assert_int_eq(kill(w, SIGTERM), 0);
    EXPECT_EXIT(w, h_wait(w, 9000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT attempt FROM rt_run WHERE run_key = 'ok'"), 3);
    ck_assert_int_eq(h_query_int(url, "SELECT failures FROM rt_run WHERE run_key = 'ok'"), 2);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM flaky_log"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT attempt FROM rt_run WHERE run_key = 'bad'"), 2);
    char *error = h_query_text(url, "SELECT error FROM rt_run WHERE run_key = 'bad'");
    ck_assert_msg(error && strstr(error, "step work: failing on purpose"), "%s", error);
    free(error);
    /* The two retries of 'ok' waited out a backoff of at least 0.5 s + 1 s. */
    ck_assert_int_ge(h_query_int(url, "SELECT finished_ms - started_ms FROM rt_run WHERE "
                                      "run_key = 'ok'"), 1500);
    ck_assert(strstr(h_stderr(w), EVENT("retry")));
}
END_TEST

/* ----------------------- a worker killed mid-run: the crash is counted */

START_TEST(test_crash_counts_as_attempt) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t e = h_spawn(h_bin(), url,
                      ARGS("enqueue", "tick", "--key", "poison", "--param", "sleep_ms=60000",
                           "--max-attempts", "2"),
                      NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    for (int attempt = 1; attempt <= 2; attempt++) {
        pid_t w = h_spawn(h_bin(), url, ARGS("worker"), NULL);
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM rt_run WHERE status = 'running' AND "
                 "attempt = %d", attempt);
        ck_assert_msg(h_await_int(url, sql, 1, 20000), "%s", h_stderr(w));
        ck_assert_int_eq(kill(w, SIGKILL), 0);
        EXPECT_EXIT(w, h_wait(w, 5000), EXIT_SIGKILL);
    }
    /* The next worker finds it crashed twice: out of attempts. */
    pid_t w = h_spawn(h_bin(), url, ARGS("worker"), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'failed'", 1,
                              20000), "%s", h_stderr(w));
    ck_assert_int_eq(kill(w, SIGTERM), 0);
    EXPECT_EXIT(w, h_wait(w, 9000), 0);
    char *error = h_query_text(url, "SELECT error FROM rt_run");
    ck_assert_msg(error && strstr(error, "its process died"), "%s", error);
    free(error);
    ck_assert_int_eq(h_query_int(url, "SELECT failures FROM rt_run"), 2);
}
END_TEST

/* A queued run 'running' with no lease at all (its claimer gave the lease
 * up, or an operator deleted it): it is not claimable as it stands (the
 * claim index holds pending and interrupted runs only), so a worker's heal
 * must find it, count the attempt and run it to the end. */
START_TEST(test_orphan_without_lease_runs) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t e = h_spawn(h_bin(), url, ARGS("enqueue", "tick", "--key", "orphan"), NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    h_exec(url, "UPDATE rt_run SET status = 'running', attempt = 1, epoch = 1");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_lease"), 0);
    pid_t w = h_spawn(h_bin(), url, ARGS("worker"), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 1,
                              20000), "%s", h_stderr(w));
    ck_assert_int_eq(kill(w, SIGTERM), 0);
    EXPECT_EXIT(w, h_wait(w, 9000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT failures FROM rt_run"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log WHERE run_key = 'orphan'"),
                     1);
}
END_TEST

/* One worker, one heartbeat thread for all its runs: a run after a short
 * one must still be kept alive. Lease TTL 0.5 s, the second run lasts 2.5 s
 * (5 TTLs): a second worker would take it over if no beat came. */
START_TEST(test_heartbeat_kept_across_runs) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t e = h_spawn(h_bin(), url, ARGS("enqueue", "tick", "--key", "a1", "--priority", "2"),
                      NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    e = h_spawn(h_bin(), url,
                ARGS("enqueue", "tick", "--key", "a2", "--priority", "1", "--param",
                     "sleep_ms=2500"),
                NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    pid_t w1 = h_spawn(h_bin(), url, ARGS("worker", "--lease-ttl", "0.5"), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE run_key = 'a2' AND "
                                   "status = 'running'", 1, 20000), "%s", h_stderr(w1));
    pid_t w2 = h_spawn(h_bin(), url, ARGS("worker", "--lease-ttl", "0.5"), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 2,
                              20000), "%s\n%s", h_stderr(w1), h_stderr(w2));
    ck_assert_int_eq(kill(w1, SIGTERM), 0);
    ck_assert_int_eq(kill(w2, SIGTERM), 0);
    EXPECT_EXIT(w1, h_wait(w1, 9000), 0);
    EXPECT_EXIT(w2, h_wait(w2, 9000), 0);
    /* Each ran once, by its first claimer: no takeover, no second attempt. */
    ck_assert_int_eq(h_query_int(url, "SELECT max(attempt) FROM rt_run"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log"), 2);
    ck_assert_msg(!strstr(h_stderr(w2), "\"event\":\"takeover\"") &&
                      !strstr(h_stderr(w2), "\"event\":\"retry\""),
                  "%s", h_stderr(w2));
}
END_TEST

/* ------------------------ SIGTERM to a pool: stop in grace, resume later */

START_TEST(test_pool_sigterm_resumes) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    for (int k = 0; k < 3; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        pid_t e = h_spawn(h_test_bin(), url,
                          ARGS("enqueue", "tick_keyed", "--key", key, "--param",
                               "sleep_ms=3000"),
                          NULL);
        EXPECT_EXIT(e, h_wait(e, 20000), 0);
    }
    const char *const argv[] = {"worker", "--concurrency", "2", "--grace", "3", NULL};
    pid_t w = h_spawn(h_test_bin(), url, argv, NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'running'", 1,
                              20000), "%s", h_stderr(w));
    int64_t t0 = h_now_ms();
    ck_assert_int_eq(kill(w, SIGTERM), 0);
    EXPECT_EXIT(w, h_wait(w, 4000), 0);
    ck_assert_int_lt(h_now_ms() - t0, 3000);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = 'running'"),
                     0);
    ck_assert_int_ge(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = "
                                      "'interrupted'"), 1);
    /* Interrupted by a stop request: not a failed attempt. */
    ck_assert_int_eq(h_query_int(url, "SELECT sum(failures) FROM rt_run"), 0);
    w = h_spawn(h_test_bin(), url, argv, NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 3,
                              30000), "%s", h_stderr(w));
    ck_assert_int_eq(kill(w, SIGTERM), 0);
    EXPECT_EXIT(w, h_wait(w, 9000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log"), 3);
}
END_TEST

/* -------------------- a run whose job changed: refused, bytes untouched */

START_TEST(test_changed_definition_set_aside) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t e = h_spawn(h_test_bin(), url, ARGS("enqueue", "shape", "--key", "s"), NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    e = h_spawn(h_bin(), url, ARGS("enqueue", "noop", "--key", "after"), NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    const char *row = "SELECT status || steps || fingerprint || epoch || attempt || items "
                      "FROM rt_run WHERE run_key = 's'";
    char *before = h_query_text(url, row);
    pid_t w = h_spawn(h_test_bin(), url, ARGS("worker"), ARGS("RATCHET_TEST_SHAPE=renamed"));
    ck_assert_msg(h_await_stderr(w, EVENT("set_aside"), 20000), "%s", h_stderr(w));
    /* It goes on with the other runs. */
    ck_assert(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 1, 20000));
    ck_assert_int_eq(kill(w, SIGTERM), 0);
    EXPECT_EXIT(w, h_wait(w, 9000), 0);
    char *after = h_query_text(url, row);
    ck_assert_str_eq(after, before);
    ck_assert_msg(strstr(h_stderr(w), "job shape changed since run 's' began"), "%s",
                  h_stderr(w));
    free(before);
    free(after);
}
END_TEST

/* ------------------------------------------------------------ bad input */

START_TEST(test_enqueue_bad_input) {
    const char *url = h_db_new(H_SQLITE);
    char long_key[257]; /* one byte too many */
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    const struct {
        const char *const *argv;
        const char *says;
    } cases[] = {
        {ARGS("enqueue"), "which job"},
        {ARGS("enqueue", "nosuch"), "unknown job 'nosuch'"},
        {ARGS("enqueue", "flaky", "--param", "nope=1"), "no param 'nope'"},
        {ARGS("enqueue", "flaky", "--param", "fail_times=x"), "not an integer"},
        {ARGS("enqueue", "flaky", "--run-at", "tomorrow"), "--run-at"},
        {ARGS("enqueue", "flaky", "--run-at", "2026-13-01T00:00:00Z"), "--run-at"},
        {ARGS("enqueue", "flaky", "--max-attempts", "0"), "--max-attempts"},
        {ARGS("enqueue", "flaky", "--priority", "high"), "--priority"},
        {ARGS("worker", "--concurrency", "0"), "--concurrency"},
        {ARGS("worker", "--only", "nosuch"), "unknown job 'nosuch'"},
        {ARGS("enqueue", "flaky", "--key", long_key), "at most 255 bytes"},
        {ARGS("run", "flaky", "--key", long_key), "at most 255 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_expect_usage(h_bin(), url, cases[i].argv, cases[i].says);
    }
    /* --run-at: ISO-8601 with an offset, and relative. */
    pid_t p = h_spawn(h_bin(), url,
                      ARGS("enqueue", "flaky", "--key", "later", "--run-at",
                           "2030-01-01T01:00:00+01:00"),
                      NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT run_at_ms FROM rt_run WHERE run_key = 'later'"),
                     1893456000000LL);
}
END_TEST

Suite *worker_suite(void) {
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("worker");
    tcase_set_timeout(tc, 180);
    int n = h_backends();
    tcase_add_loop_test(tc, test_transactional_enqueue, 0, n);
    tcase_add_loop_test(tc, test_two_pools_every_run_once, 0, n);
    tcase_add_loop_test(tc, test_retries, 0, n);
    tcase_add_loop_test(tc, test_crash_counts_as_attempt, 0, n);
    tcase_add_loop_test(tc, test_orphan_without_lease_runs, 0, n);
    tcase_add_loop_test(tc, test_heartbeat_kept_across_runs, 0, n);
    tcase_add_loop_test(tc, test_pool_sigterm_resumes, 0, n);
    tcase_add_loop_test(tc, test_changed_definition_set_aside, 0, n);
    tcase_add_test(tc, test_enqueue_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
