/*
 * check_runner_errors.c — the runner suite's errors part: a step's errors
 * have one meaning each, and input is checked before anything is stored
 * (issue 18, items 2, 3 and 5): a UNIQUE violation a step returns as it is,
 * through rt_fail(ctx, "%s", rt_errmsg(ctx)), or from a pipelined INSERT at
 * the chunk's COMMIT fails the run with the database's own words — `run`
 * exits 1, a queued run records them as its failed attempt — instead of
 * exiting 75 for ever; a params check (rt_job.check) refuses a bad value
 * before a run exists, and a step that refuses its input leaves its key
 * free. Loop tests run on both backends (_i, or _i / N).
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "service/service.h"
#include "suites.h"

/* The database's own words for a UNIQUE violation. */
static const char *err_unique_words(int backend) {
    return backend == H_SQLITE ? "UNIQUE constraint failed"
                               : "duplicate key value violates unique constraint";
}

/* The run's column col ("status", "error") of job/key, malloc'd. */
static char *err_run_text(const char *url, const char *job, const char *key,
                          const char *col) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM rt_run WHERE job = '%s' AND run_key = '%s'",
             col, job, key);
    return h_query_text(url, sql);
}

static int64_t err_runs(const char *url, const char *job, const char *key) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM rt_run WHERE job = '%s' AND run_key = '%s'",
             job, key);
    return h_query_int(url, sql);
}

static void err_assert_failed_with(const char *url, const char *job, const char *key,
                                   const char *words) {
    char *status = err_run_text(url, job, key, "status");
    char *error = err_run_text(url, job, key, "error");
    ck_assert_msg(status && !strcmp(status, "failed"), "%s/%s is %s, want failed (error: %s)",
                  job, key, status ? status : "(no run)", error ? error : "(null)");
    ck_assert_msg(error && strstr(error, words), "%s/%s: error '%s' lacks '%s'", job, key,
                  error ? error : "(null)", words);
    free(status);
    free(error);
}

static const char *const err_modes[] = {"mode=rc", "mode=fail", "mode=later"};

/* ------------------------------------------- a UNIQUE violation, `run` */

/* _i: backend * 3 + mode. Exit 1 (not 75), 'failed', the database's words
 * in the run's error and on stderr, whichever way the step returns it. */
START_TEST(test_unique_violation_fails_run) {
    int backend = _i / 3;
    const char *mode = err_modes[_i % 3];
    const char *url = h_db_new(backend);
    pid_t pid = h_spawn(h_test_bin(), url, ARGS("run", "uniq", "--key", "k", "--param", mode),
                        NULL);
    EXPECT_EXIT(pid, h_wait(pid, 30000), 1);
    const char *words = err_unique_words(backend);
    ck_assert_msg(strstr(h_stderr(pid), words), "%s: stderr lacks '%s':\n%s", mode, words,
                  h_stderr(pid));
    err_assert_failed_with(url, "uniq", "k", words);
    /* The error names the step; the first step's row stays, once. */
    err_assert_failed_with(url, "uniq", "k", "step dup: ");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM uniq_rows"), 1);
    /* A failed run is not resumed by a plain start: exit 1 again, no loop. */
    pid = h_spawn(h_test_bin(), url, ARGS("run", "uniq", "--key", "k", "--param", mode), NULL);
    EXPECT_EXIT(pid, h_wait(pid, 30000), 1);
}
END_TEST

/* ------------------------------------ a UNIQUE violation, a queued run */

/* _i: backend * 2 + mode (rc, fail). With one attempt, the worker records
 * the database's message, not "its process died". */
START_TEST(test_unique_violation_fails_queued) {
    int backend = _i / 2;
    const char *mode = err_modes[_i % 2];
    const char *url = h_db_new(backend);
    h_migrate(url);
    pid_t e = h_spawn(h_test_bin(), url,
                      ARGS("enqueue", "uniq", "--key", "q", "--param", mode, "--max-attempts",
                           "1"),
                      NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    pid_t w = h_spawn(h_test_bin(), url, ARGS("worker"), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'failed'", 1,
                              20000),
                  "%s: the run did not fail; worker:\n%s", mode, h_stderr(w));
    ck_assert_int_eq(kill(w, SIGTERM), 0);
    EXPECT_EXIT(w, h_wait(w, 9000), 0);
    err_assert_failed_with(url, "uniq", "q", err_unique_words(backend));
    char *error = err_run_text(url, "uniq", "q", "error");
    ck_assert_msg(!strstr(error, "process died"), "%s", error);
    free(error);
    ck_assert_int_eq(h_query_int(url, "SELECT failures FROM rt_run"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_lease"), 0);
}
END_TEST

/* ------------------------------------- rt_fail with its own rt_errmsg */

/* In process: the message rt_fail formats from rt_errmsg(ctx) is kept. */
START_TEST(test_fail_formats_own_errmsg) {
    rt_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    snprintf(ctx.errmsg, sizeof ctx.errmsg, "sqlite: UNIQUE constraint failed: t.k");
    ck_assert_int_eq(rt_fail(&ctx, "%s", rt_errmsg(&ctx)), RT_ERROR);
    ck_assert_str_eq(rt_errmsg(&ctx), "sqlite: UNIQUE constraint failed: t.k");
    ck_assert_int_eq(rt_fail(&ctx, "copying row %d: %s", 7, rt_errmsg(&ctx)), RT_ERROR);
    ck_assert_str_eq(rt_errmsg(&ctx), "copying row 7: sqlite: UNIQUE constraint failed: t.k");
}
END_TEST

/* ----------------------------------- params refused before a run exists */

/* rows=-5 is refused by rowcopy's check with nothing stored; the key then
 * takes rows=100 and copies 100 rows. */
START_TEST(test_refused_param_leaves_key_usable) {
    const char *url = h_db_new(_i);
    pid_t pid = h_spawn(h_bin(), url, ARGS("run", "rowcopy", "--key", "p1", "--param", "rows=-5"),
                        NULL);
    EXPECT_EXIT(pid, h_wait(pid, 30000), 2);
    ck_assert_msg(strstr(h_stderr(pid), "negative"), "%s", h_stderr(pid));
    ck_assert_int_eq(err_runs(url, "rowcopy", "p1"), 0);
    pid = h_spawn(h_bin(), url, ARGS("run", "rowcopy", "--key", "p1", "--param", "rows=100"),
                  NULL);
    EXPECT_EXIT(pid, h_wait(pid, 30000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 100);
    h_assert_rowcopy_report(url, "p1", 100);
    /* Without a key, as with one: refused, nothing stored. */
    pid = h_spawn(h_bin(), url, ARGS("run", "rowcopy", "--param", "rows=-1"), NULL);
    EXPECT_EXIT(pid, h_wait(pid, 30000), 2);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);
    /* enqueue: the same check, before the database is written. */
    pid = h_spawn(h_bin(), url, ARGS("enqueue", "rowcopy", "--key", "p2", "--param", "rows=-5"),
                  NULL);
    EXPECT_EXIT(pid, h_wait(pid, 30000), 2);
    ck_assert_msg(strstr(h_stderr(pid), "negative"), "%s", h_stderr(pid));
    ck_assert_int_eq(h_count_lines(h_stderr(pid)), 1);
    ck_assert_int_eq(err_runs(url, "rowcopy", "p2"), 0);
}
END_TEST

/* The daemon checks its --param values for its jobs when it starts. */
START_TEST(test_daemon_refuses_params) {
    const char *url = h_db_new(H_SQLITE);
    h_migrate(url);
    h_expect_usage(h_bin(), url,
                   ARGS("daemon", "--schedule", "rowcopy=@hourly", "--param", "rowcopy.rows=-5"),
                   "negative");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 0);
}
END_TEST

/* A job of this process whose check wants rows >= 0 and reads the key. */
static int err_check(rt_ctx *ctx) {
    int64_t rows;
    int rc = rt_param_int64(ctx, "rows", 1, &rows);
    if (rc != RT_OK) return rc;
    /* No SQL before the run exists. */
    if (rt_exec(ctx, "SELECT 1", 0, NULL) != RT_MISUSE) return rt_fail(ctx, "SQL ran");
    if (rows < 0) return rt_fail(ctx, "rows %lld for key '%s'", (long long)rows, rt_key(ctx));
    return RT_OK;
}
static int err_never(rt_ctx *ctx) { return rt_fail(ctx, "not run here"); }
static const rt_step err_steps[] = {{"s", err_never}, {NULL, NULL}};
static const rt_param_def err_params[] = {{"rows", RT_PARAM_INT, "1", "rows"},
                                          {NULL, 0, NULL, NULL}};
static const rt_job err_job = {.name = "checked", .steps = err_steps, .params = err_params,
                               .check = err_check};

/* rt_enqueue* run the check too: RT_INVALID, nothing stored. */
START_TEST(test_enqueue_api_checks) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    char err[RT_ERRMSG_MAX] = "";
    const char *const bad[] = {"rows=-3", NULL};
    rt_enqueue_opts o = {.key = "api", .params = bad};
    int rc = rt_enqueue(url, &err_job, &o, NULL, 0, NULL, err, sizeof err);
    ck_assert_int_eq(rc, RT_INVALID);
    ck_assert_msg(strstr(err, "job checked refuses these params: rows -3 for key 'api'"), "%s",
                  err);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 0);
    const char *const good[] = {"rows=3", NULL};
    o.params = good;
    bool created = false;
    rc = rt_enqueue(url, &err_job, &o, NULL, 0, &created, err, sizeof err);
    ck_assert_msg(rc == RT_OK && created, "%s", err);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);
}
END_TEST

/* ------------------------------------ a step that refuses its input */

/* looseparams (no declared params) reads n=abc in its step: exit 2, and
 * the run it created and never committed is not kept. */
START_TEST(test_step_invalid_leaves_key_usable) {
    const char *url = h_db_new(_i);
    pid_t pid = h_spawn(h_test_bin(), url,
                        ARGS("run", "looseparams", "--key", "bad", "--param", "n=abc"), NULL);
    EXPECT_EXIT(pid, h_wait(pid, 30000), 2);
    ck_assert_msg(strstr(h_stderr(pid), "param n: 'abc' is not an integer"), "%s",
                  h_stderr(pid));
    ck_assert_int_eq(err_runs(url, "looseparams", "bad"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_param"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_lease"), 0);
    pid = h_spawn(h_test_bin(), url,
                  ARGS("run", "looseparams", "--key", "bad", "--param", "n=5"), NULL);
    EXPECT_EXIT(pid, h_wait(pid, 30000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT n FROM loose"), 5);
}
END_TEST

/* The same input in a queued run: it fails at once (no retry can mend its
 * params) instead of going back to the queue for ever. */
START_TEST(test_step_invalid_fails_queued) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t e = h_spawn(h_test_bin(), url,
                      ARGS("enqueue", "looseparams", "--key", "q", "--param", "n=abc"), NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    pid_t w = h_spawn(h_test_bin(), url, ARGS("worker"), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'failed'", 1,
                              20000),
                  "the run did not fail; worker:\n%s", h_stderr(w));
    ck_assert_int_eq(kill(w, SIGTERM), 0);
    EXPECT_EXIT(w, h_wait(w, 9000), 0);
    err_assert_failed_with(url, "looseparams", "q", "param n: 'abc' is not an integer");
    ck_assert_int_eq(h_query_int(url, "SELECT failures FROM rt_run"), 1);
}
END_TEST

void runner_errors_add(Suite *s) {
    TCase *tc = tcase_create("step_errors");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_unique_violation_fails_run, 0, 3 * h_backends());
    tcase_add_loop_test(tc, test_unique_violation_fails_queued, 0, 2 * h_backends());
    tcase_add_test(tc, test_fail_formats_own_errmsg);
    suite_add_tcase(s, tc);
    tc = tcase_create("input");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_refused_param_leaves_key_usable, 0, h_backends());
    tcase_add_test(tc, test_daemon_refuses_params);
    tcase_add_loop_test(tc, test_enqueue_api_checks, 0, h_backends());
    tcase_add_loop_test(tc, test_step_invalid_leaves_key_usable, 0, h_backends());
    tcase_add_loop_test(tc, test_step_invalid_fails_queued, 0, h_backends());
    suite_add_tcase(s, tc);
}
