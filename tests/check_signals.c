/*
 * check_signals.c — stops from the first instruction, and `reset` of a
 * running run (issue 18, items 6 and 8), with the real binaries and real
 * signals: SIGTERM in the first milliseconds of `daemon` and `worker` exits
 * 0 and of `run` exits 75, 50 times out of 50 (20 on PostgreSQL); `reset` of a running run is
 * refused with exit 3 (the run goes on to done) unless --force, and then
 * its holder exits 3 saying "reset by an operator". Loop tests run on both
 * backends (_i).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

#define EVENT(name) "\"event\":\"" name "\""
/* Tries per command: 50 on SQLite; 20 on PostgreSQL, where a start costs
 * a few hundred ms on a busy machine (the delays still cover 0-9 ms). */
#define TRIES_SQLITE 50
#define TRIES_PG 20

/* ------------------------------------------- SIGTERM in the first ms */

/*
 * Start bin with argv on url, its stderr into err_path, with SIGTERM and
 * SIGINT blocked across exec. Between fork and exec, and while the dynamic
 * loader runs, no code of ratchet can take a signal; a parent that blocks
 * them across exec (as ratchet's daemon does for its children) hands a
 * signal sent that early to the program's first instruction, where rt_main
 * must take it over. From there on the timing is real: the signal lands
 * pending (before the handlers) or in them.
 */
static pid_t sig_spawn(const char *bin, const char *url,
                       const char *const *argv, const char *err_path) {
    const char *args[32];
    int n = 0;
    args[n++] = bin;
    for (int i = 0; argv[i] && n < 31; i++) args[n++] = argv[i];
    args[n] = NULL;
    /* Blocked from the fork on: the child runs the test's handlers until
     * it execs. */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, &old);
    pid_t pid = fork();
    if (pid != 0) sigprocmask(SIG_SETMASK, &old, NULL);
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int o = open("/dev/null", O_WRONLY);
        if (e < 0 || o < 0) _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        close(o);
        close(e);
        setenv("RATCHET_DB", url, 1);
        setenv("RATCHET_LOG", "json", 1);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        sigprocmask(SIG_SETMASK, &stop, NULL); /* only these */
        execv(bin, (char *const *)args);
        _exit(127);
    }
    return pid;
}

/* The last 2 KiB err_path holds (for a failure's message); malloc'd. */
static char *sig_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    char *text = calloc(1, 2049);
    ck_assert_ptr_nonnull(text);
    if (f) {
        if (fseek(f, -2048, SEEK_END) != 0) rewind(f);
        size_t got = fread(text, 1, 2048, f);
        text[got] = '\0';
        fclose(f);
    }
    return text;
}

static void sig_sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * tries times: start bin with argv (argv_odd on odd tries, when given),
 * SIGTERM it 0-9 ms after the fork (spread over the microseconds too), and
 * expect exit code want within 8 s.
 */
static void sig_early_stop(int backend, const char *bin, const char *url,
                           const char *const *argv,
                           const char *const *argv_odd, int want) {
    int tries = backend == H_PG ? TRIES_PG : TRIES_SQLITE;
    /* A directory of the harness's (removed at exit) for the stderr. */
    const char *scratch = h_db_new(H_SQLITE) + strlen("sqlite:");
    char err_path[600];
    snprintf(err_path, sizeof err_path, "%.*s/stderr",
             (int)(strrchr(scratch, '/') - scratch), scratch);
    int seen[256] = {0};
    for (int t = 0; t < tries; t++) {
        long delay_us = (t % 10) * 1000L + (t * 7919L) % 1000;
        const char *const *a = argv_odd && t % 2 ? argv_odd : argv;
        pid_t pid = sig_spawn(bin, url, a, err_path);
        sig_sleep_us(delay_us);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        int code = h_wait(pid, 8000);
        if (code != want) {
            char *err = sig_slurp(err_path);
            ck_abort_msg("try %d (%s, SIGTERM %ld us after the fork): exit "
                         "%d, want %d; stderr:\n%s",
                         t + 1, a[0], delay_us, code, want, err);
        }
        seen[code & 255]++;
    }
    ck_assert_int_eq(seen[want], tries);
}

START_TEST(test_early_sigterm_daemon) {
    const char *url = h_db_new(_i);
    sig_early_stop(_i, h_bin(), url,
                   ARGS("daemon", "--schedule", "tick=* * * * * *"),
                   ARGS("daemon", "--schedule", "tick=* * * * * *",
                        "--grace", "5"),
                   0);
}
END_TEST

START_TEST(test_early_sigterm_worker) {
    const char *url = h_db_new(_i);
    /* One process, and a supervisor of two (prefork). */
    sig_early_stop(_i, h_bin(), url, ARGS("worker"),
                   ARGS("worker", "--concurrency", "2"), 0);
}
END_TEST

START_TEST(test_early_sigterm_run) {
    const char *url = h_db_new(_i);
    /* A minute of work: stopped at any point it is interrupted, 75. */
    sig_early_stop(_i, h_bin(), url,
                   ARGS("run", "tick", "--key", "early", "--param",
                        "sleep_ms=60000"),
                   NULL, 75);
    /* Nothing lost: the run is there, resumable. */
    char *status = h_query_text(url, "SELECT status FROM rt_run WHERE run_key = 'early'");
    ck_assert_msg(status == NULL || strcmp(status, "interrupted") == 0,
                  "run early is '%s' after the stops, want interrupted", status);
    free(status);
}
END_TEST

/* ------------------------------------------------ reset of a running run */

/* keyed fills 40 rows 50 ms apart, one commit per row: about 2 s running,
 * the write lock free between its commits. */
#define SIG_KEYED_RUN(key) \
    ARGS("run", "keyed", "--key", key, "--param", "rows=40", "--chunk-items", "1")

static void sig_await_running(const char *url, const char *key) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM rt_run WHERE run_key = '%s' AND status = "
             "'running' AND items >= 2", key);
    ck_assert_msg(h_await_int(url, sql, 1, 20000), "run %s never ran", key);
}

START_TEST(test_reset_running_refused) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t run = h_spawn(h_test_bin(), url, SIG_KEYED_RUN("r1"), NULL);
    sig_await_running(url, "r1");
    pid_t reset = h_spawn(h_test_bin(), url, ARGS("reset", "keyed", "--key", "r1"), NULL);
    EXPECT_EXIT(reset, h_wait(reset, 30000), 3);
    const char *err = h_stderr(reset);
    ck_assert_msg(h_count_lines(err) == 1 && strstr(err, "is running") &&
                      strstr(err, "--force"),
                  "want one line saying it is running and naming --force, got:\n%s",
                  err);
    ck_assert_str_eq(h_stdout(reset), "");
    /* The run was left alone: it goes on to done. */
    EXPECT_EXIT(run, h_wait(run, 60000), 0);
    char *status = h_query_text(url, "SELECT status FROM rt_run WHERE run_key = 'r1'");
    ck_assert_str_eq(status, "done");
    free(status);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM keyed_rows WHERE run_key = 'r1'"),
                     40);
}
END_TEST

START_TEST(test_reset_running_force) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t run = h_spawn(h_test_bin(), url, SIG_KEYED_RUN("r2"), NULL);
    sig_await_running(url, "r2");
    pid_t reset = h_spawn(h_test_bin(), url,
                          ARGS("reset", "keyed", "--key", "r2", "--force"), NULL);
    EXPECT_EXIT(reset, h_wait(reset, 30000), 0);
    ck_assert_msg(strstr(h_stdout(reset), "reset keyed[r2]: discarded run") &&
                      strstr(h_stdout(reset), "was running"),
                  "reset said:\n%s", h_stdout(reset));
    /* Its holder stops at its next commit, and says why. */
    EXPECT_EXIT(run, h_wait(run, 30000), 3);
    const char *err = h_stderr(run);
    ck_assert_msg(strstr(err, "reset by an operator") && strstr(err, EVENT("reset")),
                  "the holder did not say it was reset:\n%s", err);
    ck_assert_msg(!strstr(err, "taken over"), "the holder says taken over:\n%s", err);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE run_key = 'r2'"),
                     0);
}
END_TEST

Suite *signals_suite(void) {
    Suite *s = suite_create("signals");
    TCase *tc = tcase_create("signals");
    tcase_set_timeout(tc, 60);
    int n = h_backends();
    tcase_add_loop_test(tc, test_early_sigterm_daemon, 0, n);
    tcase_add_loop_test(tc, test_early_sigterm_worker, 0, n);
    tcase_add_loop_test(tc, test_early_sigterm_run, 0, n);
    tcase_add_loop_test(tc, test_reset_running_refused, 0, n);
    tcase_add_loop_test(tc, test_reset_running_force, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
