/*
 * check_embed.c — rt_run, the public entry for programs that embed
 * ratchet (core/entry.c), on both backends (_i loop tests).
 *
 * build/ratchet-embed (tests/embed_main.c) is such a program: linked with
 * libratchet.a, it calls rt_run itself, never rt_main, and its own SIGTERM
 * handler calls rt_request_stop. Its job inserts items 0..99 and, after 50,
 * waits for a stop. The tests check that:
 *   - a stop requested from a signal handler, or from another thread,
 *     ends rt_run with RT_STOPPED, the run 'interrupted' with its 50 items
 *     committed; while the request stands a new rt_run does nothing; after
 *     rt_clear_stop, rt_run resumes the same run (not a restart: the
 *     items' primary key would refuse a second insert) and finishes with
 *     exactly the 100 items;
 *   - a second rt_run, from another process, on a run that is held
 *     follows its if_running policy (fail: RT_HELD, exit 3, no run
 *     created; skip: RT_OK, skipped), and once the holder stopped, rt_run
 *     resumes its run;
 *   - a step stuck in one long statement is interrupted grace_s after
 *     the stop (the run 'interrupted', nothing of the step kept);
 *   - in this process: a run to its end and again (already done), and the
 *     refusals — a bad URL (RT_INVALID, one line), a bad param or key, no
 *     job, a stop requested before the call (RT_STOPPED, no database
 *     touched).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ratchet.h"
#include "suites.h"

#define EVENT(name) "\"event\":\"" name "\""

/* build/ratchet-embed, beside build/ratchet (RATCHET_BIN). */
static const char *embed_bin(void) {
    static char path[1024];
    const char *bin = h_bin();
    const char *slash = strrchr(bin, '/');
    int dir = slash ? (int)(slash - bin) : 1;
    snprintf(path, sizeof path, "%.*s/ratchet-embed", dir, slash ? bin : ".");
    ck_assert_msg(access(path, X_OK) == 0,
                  "%s is missing: build it with 'make %s'", path, path);
    return path;
}

/* One result line of ratchet-embed, by its label. */
typedef struct embed_line {
    char rc[32], status[16], key[64];
    long long items, id;
    int exit_code, skipped;
} embed_line;

static embed_line embed_parse(pid_t pid, const char *label) {
    const char *out = h_stdout(pid);
    char want[64];
    snprintf(want, sizeof want, "%s rc=", label);
    const char *p = strstr(out, want);
    ck_assert_msg(p != NULL, "no '%s' line on stdout:\n%s\nstderr:\n%s", label,
                  out, h_stderr(pid));
    embed_line l;
    memset(&l, 0, sizeof l);
    char fmt[128];
    snprintf(fmt, sizeof fmt,
             "%s rc=%%31s status=%%15s items=%%lld id=%%lld key=%%63s "
             "exit=%%d skipped=%%d",
             label);
    int n = sscanf(p, fmt, l.rc, l.status, &l.items, &l.id, l.key,
                   &l.exit_code, &l.skipped);
    ck_assert_msg(n == 7, "cannot read the '%s' line (%d fields):\n%s", label,
                  n, out);
    return l;
}

/* The job's work is there exactly once: items 0..99 of key, the report. */
static void embed_assert_exact(const char *url, const char *key) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM embed_item WHERE run_key = '%s'", key);
    ck_assert_int_eq(h_query_int(url, sql), 100);
    snprintf(sql, sizeof sql,
             "SELECT sum(i) FROM embed_item WHERE run_key = '%s'", key);
    ck_assert_int_eq(h_query_int(url, sql), 99 * 100 / 2);
    snprintf(sql, sizeof sql, "SELECT n FROM embed_report WHERE run_key = '%s'",
             key);
    ck_assert_int_eq(h_query_int(url, sql), 100);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM rt_run WHERE run_key = '%s' AND status = "
             "'done' AND items = 100", key);
    ck_assert_int_eq(h_query_int(url, sql), 1);
}

/* Stop mid-run (how: ratchet-embed's mode), resume in the same process. */
static void embed_stop_resume(int backend, const char *mode) {
    const char *url = h_db_new(backend);
    pid_t pid = h_spawn(embed_bin(), url, ARGS(mode, "k"), NULL);
    ck_assert_msg(h_await_stderr(pid, "embed: halfway", 60000),
                  "the job never reached item 50:\n%s", h_stderr(pid));
    if (!strcmp(mode, "signal")) ck_assert_int_eq(kill(pid, SIGTERM), 0);
    EXPECT_EXIT(pid, h_wait(pid, 60000), 0);

    embed_line first = embed_parse(pid, "first");
    ck_assert_str_eq(first.rc, "RT_STOPPED");
    ck_assert_str_eq(first.status, "interrupted");
    ck_assert_int_eq(first.items, 50); /* items 0..49, committed */
    ck_assert_int_eq(first.exit_code, 75);
    ck_assert_str_eq(first.key, "k");
    ck_assert_int_gt(first.id, 0);
    /* What the database held between the calls. */
    char between[128];
    snprintf(between, sizeof between,
             "between rc=RT_OK status=interrupted items=50 id=%lld\n", first.id);
    ck_assert_msg(strstr(h_stdout(pid), between) != NULL, "want '%s' in:\n%s",
                  between, h_stdout(pid));
    /* The request still stood: nothing was done. */
    embed_line refused = embed_parse(pid, "refused");
    ck_assert_str_eq(refused.rc, "RT_STOPPED");
    ck_assert_int_eq(refused.id, 0);
    ck_assert_int_eq(refused.exit_code, 75);
    /* Withdrawn: the same run resumed and finished. */
    embed_line second = embed_parse(pid, "second");
    ck_assert_str_eq(second.rc, "RT_OK");
    ck_assert_str_eq(second.status, "done");
    ck_assert_int_eq(second.items, 100);
    ck_assert_int_eq(second.id, first.id);
    ck_assert_int_eq(second.exit_code, 0);
    const char *err = h_stderr(pid);
    ck_assert_msg(strstr(err, "stopped by request (rt_request_stop)") != NULL,
                  "no interrupted line naming the request:\n%s", err);
    ck_assert_msg(strstr(err, EVENT("resume")) != NULL &&
                      strstr(err, "resuming at step 2/3 after 50 items") != NULL,
                  "the second rt_run did not resume at item 50:\n%s", err);
    embed_assert_exact(url, "k");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);
}

START_TEST(test_embed_signal_stop_resume) { embed_stop_resume(_i, "signal"); }
END_TEST

START_TEST(test_embed_thread_stop_resume) { embed_stop_resume(_i, "thread"); }
END_TEST

/* A second rt_run while another process holds the job's lease. */
START_TEST(test_embed_if_running) {
    const char *url = h_db_new(_i);
    const char *bin = embed_bin();
    pid_t holder = h_spawn(bin, url, ARGS("hold", "k"), NULL);
    ck_assert_msg(h_await_stderr(holder, "embed: halfway", 60000),
                  "the holder never reached item 50:\n%s", h_stderr(holder));

    /* fail: RT_HELD, exit 3, and no run is created for k2. */
    pid_t pid = h_spawn(bin, url, ARGS("once", "k2", "fail"), NULL);
    EXPECT_EXIT(pid, h_wait(pid, 60000), 3);
    embed_line l = embed_parse(pid, "once");
    ck_assert_str_eq(l.rc, "RT_HELD");
    ck_assert_int_eq(l.skipped, 0);
    ck_assert_msg(strstr(h_stdout(pid), "is held by") != NULL,
                  "err does not say who holds it:\n%s", h_stdout(pid));
    /* skip: RT_OK, skipped, nothing done either. */
    pid = h_spawn(bin, url, ARGS("once", "k2", "skip"), NULL);
    EXPECT_EXIT(pid, h_wait(pid, 60000), 0);
    l = embed_parse(pid, "once");
    ck_assert_str_eq(l.rc, "RT_OK");
    ck_assert_int_eq(l.skipped, 1);
    ck_assert_str_eq(l.status, "-");
    ck_assert_int_eq(
        h_query_int(url, "SELECT count(*) FROM rt_run WHERE run_key = 'k2'"), 0);

    /* The holder stops at its boundary... */
    ck_assert_int_eq(kill(holder, SIGTERM), 0);
    EXPECT_EXIT(holder, h_wait(holder, 60000), 75);
    l = embed_parse(holder, "first");
    ck_assert_str_eq(l.rc, "RT_STOPPED");
    ck_assert_str_eq(l.status, "interrupted");
    ck_assert_int_eq(l.items, 50);
    /* ...and another process's rt_run resumes its run to the end. */
    pid = h_spawn(bin, url, ARGS("once", "k", "fail"), NULL);
    EXPECT_EXIT(pid, h_wait(pid, 60000), 0);
    l = embed_parse(pid, "once");
    ck_assert_str_eq(l.rc, "RT_OK");
    ck_assert_str_eq(l.status, "done");
    ck_assert_int_eq(l.items, 100);
    ck_assert_msg(strstr(h_stderr(pid), EVENT("resume")) != NULL,
                  "the run was not resumed:\n%s", h_stderr(pid));
    embed_assert_exact(url, "k");
}
END_TEST

/* rt_run_opts.grace_s: a step stuck in one long statement is interrupted
 * that long after the stop, and rt_run returns RT_STOPPED. */
START_TEST(test_embed_grace) {
    const char *url = h_db_new(_i);
    pid_t pid = h_spawn(embed_bin(), url, ARGS("grace", "g"), NULL);
    /* The statement takes minutes: a timely exit is the interrupt's. */
    EXPECT_EXIT(pid, h_wait(pid, 60000), 75);
    embed_line l = embed_parse(pid, "grace");
    ck_assert_str_eq(l.rc, "RT_STOPPED");
    ck_assert_str_eq(l.status, "interrupted");
    ck_assert_int_eq(l.items, 0);
    const char *ms = strstr(h_stdout(pid), " ms=");
    ck_assert(ms != NULL);
    long long took = atoll(ms + 4);
    ck_assert_msg(took >= 250 && took < 20000,
                  "rt_run returned %lld ms after the stop (grace 300 ms)", took);
    ck_assert_msg(strstr(h_stderr(pid), EVENT("deadline")) != NULL,
                  "no line saying the grace passed:\n%s", h_stderr(pid));
    ck_assert_int_eq(
        h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = "
                         "'interrupted' AND step_index = 0"), 1);
}
END_TEST

/* ------------------------------------------------- in this process */

static int embed_noop_step(rt_ctx *ctx) {
    rt_add_items(ctx, 3);
    return RT_DONE;
}
static const rt_step embed_noop_steps[] = {{"only", embed_noop_step},
                                           {NULL, NULL}};
static const rt_param_def embed_noop_params[] = {
    {"n", RT_PARAM_INT, "1", "a number"}, {NULL, 0, NULL, NULL}};
static const rt_job embed_noop = {.name = "embed_noop",
                                  .steps = embed_noop_steps,
                                  .params = embed_noop_params};

START_TEST(test_embed_in_process) {
    const char *url = h_db_new(_i);
    rt_run_opts o = RT_RUN_OPTS_INIT;
    rt_run_result res;
    char err[512];
    int rc = rt_run(url, &embed_noop, "a", &o, &res, err, sizeof err);
    ck_assert_msg(rc == RT_OK, "%s: %s", rt_code_name(rc), err);
    ck_assert_str_eq(res.status, "done");
    ck_assert_str_eq(res.key, "a");
    ck_assert_int_eq(res.items, 3);
    ck_assert_int_eq(res.exit_code, 0);
    ck_assert_str_eq(err, "");
    int64_t id = res.run_id;
    ck_assert_int_gt(id, 0);
    /* Done already: nothing to do, the same answer. NULL opts and out. */
    rc = rt_run(url, &embed_noop, "a", NULL, NULL, err, sizeof err);
    ck_assert_int_eq(rc, RT_OK);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run"), 3);
    /* An older caller's smaller struct: its fields only, the rest zero. */
    rt_run_opts small;
    memset(&small, 0xff, sizeof small); /* beyond size: never read */
    small.size = offsetof(rt_run_opts, params) + sizeof small.params;
    small.params = NULL;
    rc = rt_run(url, &embed_noop, "b", &small, &res, err, sizeof err);
    ck_assert_msg(rc == RT_OK, "%s: %s", rt_code_name(rc), err);
    ck_assert_str_eq(res.status, "done");
}
END_TEST

/* err holds one line: not empty, no newline. */
static void embed_assert_one_line(const char *err) {
    ck_assert_msg(err[0] != '\0', "no message");
    ck_assert_msg(strchr(err, '\n') == NULL, "more than one line: %s", err);
}

START_TEST(test_embed_refusals) {
    rt_run_result res;
    char err[512];
    /* A bad URL: RT_INVALID, one line naming the scheme, exit 2. */
    int rc = rt_run("nosuch:place", &embed_noop, NULL, NULL, &res, err,
                    sizeof err);
    ck_assert_int_eq(rc, RT_INVALID);
    embed_assert_one_line(err);
    ck_assert_msg(strstr(err, "unrecognised database URL 'nosuch:...'") != NULL,
                  "%s", err);
    ck_assert_int_eq(res.exit_code, 2);
    ck_assert_str_eq(res.status, "");

    const char *url = h_db_new(H_SQLITE);
    const char *path = url + strlen("sqlite:");
    /* A param that is not the declared type: nothing is stored. */
    rt_run_opts o = RT_RUN_OPTS_INIT;
    o.params = (const char *const[]){"n=abc", NULL};
    rc = rt_run(url, &embed_noop, "k", &o, &res, err, sizeof err);
    ck_assert_int_eq(rc, RT_INVALID);
    embed_assert_one_line(err);
    ck_assert_msg(strstr(err, "n") != NULL, "%s", err);
    ck_assert_int_eq(res.exit_code, 2);
    o.params = (const char *const[]){"=1", NULL};
    ck_assert_int_eq(rt_run(url, &embed_noop, "k", &o, &res, err, sizeof err),
                     RT_INVALID);
    embed_assert_one_line(err);
    /* A key no run may have. */
    ck_assert_int_eq(rt_run(url, &embed_noop, "", NULL, &res, err, sizeof err),
                     RT_INVALID);
    embed_assert_one_line(err);
    /* No job. */
    ck_assert_int_eq(rt_run(url, NULL, "k", NULL, &res, err, sizeof err),
                     RT_MISUSE);
    embed_assert_one_line(err);
    ck_assert_msg(access(path, F_OK) != 0, "a refused call created %s", path);

    /* A stop requested before the call: RT_STOPPED, nothing opened. */
    rt_request_stop();
    rc = rt_run(url, &embed_noop, "k", NULL, &res, err, sizeof err);
    ck_assert_int_eq(rc, RT_STOPPED);
    embed_assert_one_line(err);
    ck_assert_int_eq(res.exit_code, 75);
    ck_assert_msg(access(path, F_OK) != 0, "a stopped call created %s", path);
    rt_clear_stop();
    rc = rt_run(url, &embed_noop, "k", NULL, &res, err, sizeof err);
    ck_assert_msg(rc == RT_OK, "%s: %s", rt_code_name(rc), err);
    ck_assert_str_eq(res.status, "done");
}
END_TEST

Suite *embed_suite(void) {
    Suite *s = suite_create("embed");
    TCase *tc = tcase_create("embed");
    tcase_set_timeout(tc, 180);
    int n = h_backends();
    tcase_add_loop_test(tc, test_embed_signal_stop_resume, 0, n);
    tcase_add_loop_test(tc, test_embed_thread_stop_resume, 0, n);
    tcase_add_loop_test(tc, test_embed_if_running, 0, n);
    tcase_add_loop_test(tc, test_embed_grace, 0, n);
    tcase_add_loop_test(tc, test_embed_in_process, 0, n);
    tcase_add_test(tc, test_embed_refusals);
    suite_add_tcase(s, tc);
    return s;
}
