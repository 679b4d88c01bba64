/*
 * check_lease.c — exclusion across processes (issue 4): the real binaries
 * racing for one run, --if-running fail|skip|wait, takeover of a SIGKILLed
 * holder, fencing of a stopped one, a long step that keeps its lease,
 * per-key exclusion, fast_takeover=off, and `ratchet wait` / rt_wait().
 * Loop tests run on both backends (_i); PostgreSQL-only ones use H_PG.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ratchet.h>

#include "harness.h"
#include "suites.h"

#define EVENT(name) "\"event\":\"" name "\""

static bool lease_has(pid_t pid, const char *needle) {
    return strstr(h_stderr(pid), needle) != NULL;
}

static int lease_count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* Wait until someone holds a lease (the run is under way). */
static void lease_await_holder(const char *url, pid_t holder, int n) {
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_lease", n, 20000),
                  "no lease taken; stderr:\n%s", h_stderr(holder));
}

static int64_t lease_epoch(const char *url, const char *key) {
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT epoch FROM rt_run WHERE run_key = '%s'", key);
    return h_query_int(url, sql);
}

/* The "items" of pid's first log line with event ev (-1 if none). */
static int64_t lease_logged_items(pid_t pid, const char *ev) {
    const char *line = strstr(h_stderr(pid), ev);
    const char *it = line ? strstr(line, "\"items\":") : NULL;
    return it ? strtoll(it + 8, NULL, 10) : -1;
}

/* ------------------------------------- four processes start one run together */

START_TEST(test_four_together) {
    static const char *const modes[] = {"fail", "skip", "wait"};
    for (int m = 0; m < 3; m++) {
        /* Fresh, unmigrated databases: the four also race to create the schema. */
        const char *url = h_db_new(_i);
        pid_t p[4];
        for (int k = 0; k < 4; k++)
            p[k] = h_spawn(h_bin(), url,
                           ARGS("run", "rowcopy", "--key", "q", "--param", "rows=20000",
                                "--param", "item_us=50", "--if-running", modes[m]),
                           NULL);
        int worked = 0;
        for (int k = 0; k < 4; k++) {
            int code = h_wait(p[k], 60000);
            if (lease_has(p[k], EVENT("start"))) {
                worked++;
                EXPECT_EXIT(p[k], code, 0);
                ck_assert(lease_has(p[k], EVENT("done")));
            } else if (m == 0) {
                EXPECT_EXIT(p[k], code, 3);
                /* One line says why (another may report a migration it did). */
                ck_assert_int_eq(lease_count(h_stderr(p[k]), "\"level\":\"error\""), 1);
                ck_assert(lease_has(p[k], EVENT("held")));
                ck_assert(lease_has(p[k], "s ago)"));  /* heartbeat age */
                ck_assert_msg(lease_has(p[k], "run 'q'"), "%s", h_stderr(p[k]));
            } else if (m == 1) {
                EXPECT_EXIT(p[k], code, 0);
                ck_assert(lease_has(p[k], EVENT("skipped")));
            } else {
                EXPECT_EXIT(p[k], code, 0);
                ck_assert(lease_has(p[k], EVENT("waiting")));
                ck_assert(lease_has(p[k], EVENT("already_done")));
            }
            ck_assert(!lease_has(p[k], EVENT("takeover")));
        }
        ck_assert_msg(worked == 1, "%s: %d processes worked on the run", modes[m], worked);
        ck_assert_int_eq(lease_epoch(url, "q"), 1);
        h_assert_rowcopy_exact(url);
        ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 20000);
        /* Every holder stopped cleanly: no lease is left behind. */
        ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_lease"), 0);
    }
}
END_TEST

/* ------------------------------- SIGKILL the holder while a replica waits */

START_TEST(test_sigkill_holder_replica_resumes) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    const char *const argv_a[] = {"run", "rowcopy", "--key", "k", "--param", "rows=60000",
                                  "--param", "item_us=50", "--chunk-items", "100", NULL};
    pid_t a = h_spawn(h_bin(), url, argv_a, NULL);
    ck_assert_msg(h_await_int(url, "SELECT items FROM rt_run WHERE run_key = 'k'", 1, 20000),
                  "no commit; stderr:\n%s", h_stderr(a));
    pid_t b = h_spawn(h_bin(), url,
                      ARGS("run", "rowcopy", "--key", "k", "--chunk-items", "100",
                           "--if-running", "wait"),
                      ARGS("RATCHET_LOG_LEVEL=debug"));
    ck_assert_msg(h_await_stderr(b, EVENT("waiting"), 20000), "B does not wait:\n%s",
                  h_stderr(b));
    ck_assert_int_eq(kill(a, SIGKILL), 0);
    int64_t killed = h_now_ms();
    EXPECT_EXIT(a, h_wait(a, 10000), EXIT_SIGKILL);
    int64_t at_kill = h_query_int(url, "SELECT step_items FROM rt_run WHERE run_key = 'k'");

    /* The replica resumes from the last checkpoint within 2 s. */
    ck_assert_msg(h_await_stderr(b, EVENT("commit"), 2000 - (int)(h_now_ms() - killed)),
                  "no commit by the replica 2 s after the kill:\n%s", h_stderr(b));
    ck_assert(lease_has(b, "(died)"));
    ck_assert_int_eq(lease_logged_items(b, EVENT("resume")), at_kill);
    EXPECT_EXIT(b, h_wait(b, 60000), 0);
    ck_assert_int_eq(lease_epoch(url, "k"), 2);
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 60000);
}
END_TEST

/* --------------- fencing: a stopped holder is taken over and writes nothing */

START_TEST(test_fencing_sigstop) {
    /* The stopped holder may be inside a transaction: the server ends it. */
    char url[1024];
    snprintf(url, sizeof url, "%s options='-c idle_in_transaction_session_timeout=2s'",
             h_db_new(_i));
    h_migrate(url);
    const char *const argv[] = {"run", "rowcopy", "--key", "f", "--param", "rows=50000",
                                "--param", "item_us=40", "--chunk-items", "100",
                                "--lease-ttl", "1", "--if-running", "wait", NULL};
    pid_t a = h_spawn(h_bin(), url, argv, NULL);
    ck_assert_msg(h_await_int(url, "SELECT items FROM rt_run WHERE run_key = 'f'", 1, 20000),
                  "no commit; stderr:\n%s", h_stderr(a));
    int status;
    ck_assert_int_eq(kill(a, SIGSTOP), 0);
    ck_assert_int_eq(waitpid(a, &status, WUNTRACED), a);
    ck_assert(WIFSTOPPED(status));

    pid_t b = h_spawn(h_bin(), url, argv, NULL);
    int code = h_wait(b, 90000);
    if (code != 0) kill(a, SIGKILL);
    EXPECT_EXIT(b, code, 0);
    ck_assert(lease_has(b, "lease expired"));
    ck_assert_int_eq(lease_epoch(url, "f"), 2);
    h_assert_rowcopy_exact(url);

    ck_assert_int_eq(kill(a, SIGCONT), 0);
    code = h_wait(a, 60000);
    EXPECT_EXIT(a, code, 3);
    ck_assert(lease_has(a, EVENT("lease_lost")));
    ck_assert(!lease_has(a, EVENT("done")));
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 50000);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'f'"), 50000);
    ck_assert_int_eq(lease_epoch(url, "f"), 2);
}
END_TEST

/* ------------------------ a step lasting 4 x TTL is not taken over */

START_TEST(test_long_step_keeps_lease) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t a = h_spawn(h_test_bin(), url,
                      ARGS("run", "slowstep", "--key", "s", "--param", "ms=2000",
                           "--lease-ttl", "0.5"),
                      NULL);
    lease_await_holder(url, a, 1);
    int64_t held_since = h_now_ms();
    pid_t b = h_spawn(h_test_bin(), url,
                      ARGS("run", "slowstep", "--key", "s", "--lease-ttl", "0.5",
                           "--if-running", "wait"),
                      NULL);
    /* More than twice the TTL into the step, no takeover has happened... */
    ck_assert(!h_await_stderr(b, EVENT("takeover"), 1100));
    ck_assert_int_gt(h_now_ms() - held_since, 1000);
    /* ...and a third process is told the run is held. */
    pid_t c = h_spawn(h_test_bin(), url, ARGS("run", "slowstep", "--key", "s"), NULL);
    EXPECT_EXIT(c, h_wait(c, 30000), 3);
    ck_assert(lease_has(c, EVENT("held")));

    EXPECT_EXIT(a, h_wait(a, 30000), 0);
    EXPECT_EXIT(b, h_wait(b, 30000), 0);
    ck_assert(!lease_has(b, EVENT("takeover")));
    ck_assert(lease_has(b, EVENT("already_done")));
    ck_assert_int_eq(lease_epoch(url, "s"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM slow_rows"), 1);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM slow_rows WHERE pid = %d", (int)a);
    ck_assert_int_eq(h_query_int(url, sql), 1);
}
END_TEST

/* ------------------------------- scope: per key in parallel, per job not */

START_TEST(test_scopes) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    /* Two CREATE TABLE IF NOT EXISTS at once can collide on PostgreSQL. */
    h_exec(url, "CREATE TABLE keyed_rows (run_key TEXT, n BIGINT)");
    pid_t a = h_spawn(h_test_bin(), url,
                      ARGS("run", "keyed", "--key", "k1", "--param", "rows=40", "--chunk-items", "1"),
                      NULL);
    pid_t b = h_spawn(h_test_bin(), url,
                      ARGS("run", "keyed", "--key", "k2", "--param", "rows=40", "--chunk-items", "1"),
                      NULL);
    /* Both hold their own lease at once. */
    lease_await_holder(url, a, 2);
    pid_t c = h_spawn(h_test_bin(), url, ARGS("run", "keyed", "--key", "k1"), NULL);
    EXPECT_EXIT(c, h_wait(c, 30000), 3);
    ck_assert(lease_has(c, "keyed/k1 is held by"));
    EXPECT_EXIT(a, h_wait(a, 30000), 0);
    EXPECT_EXIT(b, h_wait(b, 30000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM keyed_rows"), 80);
    ck_assert_int_eq(h_query_int(url, "SELECT count(DISTINCT run_key || ':' || n) FROM keyed_rows"),
                     80);

    /* rowcopy excludes per job: another key is refused while one runs. */
    a = h_spawn(h_bin(), url,
                ARGS("run", "rowcopy", "--key", "j1", "--param", "rows=20000", "--param",
                     "item_us=50"),
                NULL);
    lease_await_holder(url, a, 1);
    c = h_spawn(h_bin(), url, ARGS("run", "rowcopy", "--key", "j2"), NULL);
    EXPECT_EXIT(c, h_wait(c, 30000), 3);
    ck_assert(lease_has(c, "run 'j1'"));
    /* Waiting without a key waits for the run that is going, and returns
     * its outcome instead of starting another. */
    b = h_spawn(h_bin(), url, ARGS("run", "rowcopy", "--if-running", "wait"), NULL);
    EXPECT_EXIT(a, h_wait(a, 60000), 0);
    EXPECT_EXIT(b, h_wait(b, 60000), 0);
    ck_assert(lease_has(b, EVENT("already_done")));
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE job = 'rowcopy'"), 1);
}
END_TEST

/*
 * Two jobs on one database: the second is not starved by the first's
 * back-to-back chunks (SQLite has one writer at a time; ratchet's writers
 * take turns) and finishes while the first is still going.
 */
START_TEST(test_two_jobs_take_turns) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    h_exec(url, "CREATE TABLE keyed_rows (run_key TEXT, n BIGINT)");
    pid_t a = h_spawn(h_test_bin(), url,
                      ARGS("run", "rowcopy", "--key", "long", "--param", "rows=400000",
                           "--param", "item_us=50"),
                      NULL);
    ck_assert_msg(h_await_int(url, "SELECT items FROM rt_run WHERE run_key = 'long'", 1, 20000),
                  "no commit; stderr:\n%s", h_stderr(a));
    pid_t b = h_spawn(h_test_bin(), url,
                      ARGS("run", "keyed", "--key", "short", "--param", "rows=5", "--param",
                           "item_ms=1"),
                      NULL);
    EXPECT_EXIT(b, h_wait(b, 60000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM keyed_rows"), 5);
    /* The first is still at work (its copy takes ~20 s of CPU). */
    ck_assert_int_eq(kill(a, SIGTERM), 0);
    EXPECT_EXIT(a, h_wait(a, 30000), 75);
}
END_TEST

/* ------------------- fast_takeover=off: a dead holder waits out its TTL */

START_TEST(test_fast_takeover_off) {
    /* ratchet gets the option; the test's own queries use plain libpq. */
    const char *plain = h_db_new(_i);
    char url[1024];
    snprintf(url, sizeof url, "%s fast_takeover=off", plain);
    h_migrate(url);
    pid_t a = h_spawn(h_bin(), url,
                      ARGS("run", "rowcopy", "--key", "o", "--param", "rows=40000", "--param",
                           "item_us=50", "--lease-ttl", "1"),
                      NULL);
    ck_assert_msg(h_await_int(plain, "SELECT items FROM rt_run WHERE run_key = 'o'", 1, 20000),
                  "no commit; stderr:\n%s", h_stderr(a));
    pid_t b = h_spawn(h_bin(), url,
                      ARGS("run", "rowcopy", "--key", "o", "--lease-ttl", "1", "--if-running",
                           "wait"),
                      NULL);
    ck_assert(h_await_stderr(b, EVENT("waiting"), 20000));
    ck_assert_int_eq(kill(a, SIGKILL), 0);
    EXPECT_EXIT(a, h_wait(a, 10000), EXIT_SIGKILL);
    EXPECT_EXIT(b, h_wait(b, 60000), 0);
    ck_assert(lease_has(b, "lease expired"));
    ck_assert(!lease_has(b, "(died)"));
    h_assert_rowcopy_exact(plain);
    ck_assert_int_eq(lease_epoch(plain, "o"), 2);
}
END_TEST

/* ------------------------------------------------ ratchet wait, rt_wait() */

START_TEST(test_wait) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t w = h_spawn(h_bin(), url, ARGS("wait", "rowcopy", "--key", "none"), NULL);
    EXPECT_EXIT(w, h_wait(w, 30000), 2);
    ck_assert_int_eq(h_count_lines(h_stderr(w)), 1);

    pid_t a = h_spawn(h_bin(), url,
                      ARGS("run", "rowcopy", "--key", "w", "--param", "rows=30000", "--param",
                           "item_us=50"),
                      NULL);
    lease_await_holder(url, a, 1);
    w = h_spawn(h_bin(), url, ARGS("wait", "rowcopy", "--key", "w", "--timeout", "0.2"), NULL);
    EXPECT_EXIT(w, h_wait(w, 30000), 124);
    char err[256];
    ck_assert_int_eq(rt_wait(url, "rowcopy", "w", 0.1, err, sizeof err), RT_TIMEOUT);
    /* Without a timeout: returns when the run is done, not before. */
    w = h_spawn(h_bin(), url, ARGS("wait", "rowcopy", "--key", "w"), NULL);
    EXPECT_EXIT(w, h_wait(w, 60000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'w'"), 30000);
    EXPECT_EXIT(a, h_wait(a, 30000), 0);
    ck_assert_int_eq(rt_wait(url, "rowcopy", "w", -1, err, sizeof err), RT_OK);
    ck_assert_int_eq(rt_wait(url, "rowcopy", NULL, 0, err, sizeof err), RT_OK);
    ck_assert_int_eq(rt_wait(url, "rowcopy", "none", 0, err, sizeof err), RT_NOTFOUND);

    /* A failed run: exit 1 with its error. */
    pid_t f = h_spawn(h_test_bin(), url, ARGS("run", "fail", "--key", "x"), NULL);
    EXPECT_EXIT(f, h_wait(f, 30000), 1);
    w = h_spawn(h_test_bin(), url, ARGS("wait", "fail", "--key", "x"), NULL);
    EXPECT_EXIT(w, h_wait(w, 30000), 1);
    ck_assert(lease_has(w, "boom"));
    ck_assert_int_eq(rt_wait(url, "fail", "x", 0, err, sizeof err), RT_ERROR);
    ck_assert_msg(strstr(err, "boom") != NULL, "rt_wait error: %s", err);
}
END_TEST

Suite *lease_suite(void) {
    Suite *s = suite_create("lease");
    TCase *tc = tcase_create("lease");
    tcase_set_timeout(tc, 180);
    int n = h_backends();
    tcase_add_loop_test(tc, test_four_together, 0, n);
    tcase_add_loop_test(tc, test_sigkill_holder_replica_resumes, 0, n);
    tcase_add_loop_test(tc, test_fencing_sigstop, H_PG, n);
    tcase_add_loop_test(tc, test_long_step_keeps_lease, 0, n);
    tcase_add_loop_test(tc, test_scopes, 0, n);
    tcase_add_loop_test(tc, test_two_jobs_take_turns, 0, n);
    tcase_add_loop_test(tc, test_fast_takeover_off, H_PG, n);
    tcase_add_loop_test(tc, test_wait, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
