/*
 * check_daemon.c — `ratchet daemon` (issue 5) with the real binary and real
 * signals: several replicas making one run per cron slot, overlap skip and
 * queue, a daemon SIGKILLed mid-run healed by another, misfires after every
 * daemon was down, SIGTERM -> exit 0 within the grace period, the sd_notify
 * messages, and bad input refused with exit 2. Loop tests run on both
 * backends (_i).
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

#define EVENT(name) "\"event\":\"" name "\""
#define EVERY_SECOND "tick=* * * * * *"

static bool daemon_has(pid_t pid, const char *needle) {
    return strstr(h_stderr(pid), needle) != NULL;
}

static int64_t daemon_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SIGTERM a daemon: it must exit 0 within its grace period (8 s default). */
static void daemon_stop(pid_t pid) {
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    EXPECT_EXIT(pid, h_wait(pid, 9000), 0);
    ck_assert(daemon_has(pid, EVENT("stopped")));
}

/* The scheduled runs of tick that finished. */
static int64_t daemon_done(const char *url) {
    return h_query_int(url, "SELECT count(*) FROM rt_run WHERE job = 'tick' "
                            "AND status = 'done'");
}

/* ---------------------------------- three replicas: one run per slot */

START_TEST(test_three_replicas_one_run_per_slot) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t d[3];
    for (int k = 0; k < 3; k++)
        d[k] = h_spawn(h_bin(), url, ARGS("daemon", "--schedule", EVERY_SECOND), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE job = 'tick' "
                                   "AND status = 'done'", 9, 30000),
                  "fewer than 9 slots ran; stderr:\n%s", h_stderr(d[0]));
    int64_t stopped_ms = daemon_wall_ms();
    for (int k = 0; k < 3; k++) daemon_stop(d[k]);

    /* No slot ran twice, and every run that finished wrote one row. */
    int64_t rows = h_query_int(url, "SELECT count(*) FROM tick_log");
    ck_assert_int_eq(h_query_int(url, "SELECT count(DISTINCT run_key) FROM tick_log"), rows);
    ck_assert_int_eq(rows, daemon_done(url));
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log t JOIN rt_run r "
                                      "ON r.job = 'tick' AND r.run_key = t.run_key "
                                      "AND r.status = 'done'"), rows);
    /* Until the daemons were stopped, every second had its run, done. */
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM rt_run WHERE slot_ms < %lld",
             (long long)stopped_ms - 1000);
    int64_t before_stop = h_query_int(url, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM rt_run WHERE slot_ms < %lld AND "
             "status = 'done'", (long long)stopped_ms - 1000);
    ck_assert_int_eq(h_query_int(url, sql), before_stop);
    snprintf(sql, sizeof sql, "SELECT (max(slot_ms) - min(slot_ms)) / 1000 + 1 FROM rt_run "
             "WHERE slot_ms < %lld", (long long)stopped_ms - 1000);
    ck_assert_int_eq(h_query_int(url, sql), before_stop);
    ck_assert_int_ge(before_stop, 8);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status NOT IN "
                                      "('done', 'pending', 'interrupted')"), 0);
    /* Keys are the slot times, whole seconds in ISO-8601 UTC. */
    char *key = h_query_text(url, "SELECT run_key FROM rt_run ORDER BY slot_ms LIMIT 1");
    ck_assert_int_eq((int)strlen(key), 20);
    ck_assert(key[10] == 'T' && key[19] == 'Z');
    free(key);
}
END_TEST

/* ------------------------------------------- overlap: skip and queue */

/* tick_log's runs, by start time: none began before the previous ended. */
static void daemon_assert_no_overlap(const char *url) {
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log a JOIN tick_log b "
                                      "ON a.run_key < b.run_key AND a.start_ms < b.end_ms "
                                      "AND b.start_ms < a.end_ms"), 0);
}

START_TEST(test_overlap_skip) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t d[2];
    for (int k = 0; k < 2; k++)
        d[k] = h_spawn(h_bin(), url,
                       ARGS("daemon", "--schedule", EVERY_SECOND, "--param",
                            "tick.sleep_ms=2500"),
                       NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 2,
                              30000), "no runs; stderr:\n%s", h_stderr(d[0]));
    ck_assert(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'skipped'", 4,
                          10000));
    for (int k = 0; k < 2; k++) daemon_stop(d[k]);
    daemon_assert_no_overlap(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = 'skipped' "
                                      "AND error NOT LIKE 'slot skipped: run %still going%'"),
                     0);
    /* Skipped slots never ran. */
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log t JOIN rt_run r ON "
                                      "r.run_key = t.run_key AND r.status = 'skipped'"), 0);
    /* ...and show in status. */
    pid_t st = h_spawn(h_bin(), url, ARGS("status", "tick", "--limit", "100"), NULL);
    EXPECT_EXIT(st, h_wait(st, 10000), 0);
    ck_assert_msg(strstr(h_stdout(st), "skipped"), "%s", h_stdout(st));
}
END_TEST

START_TEST(test_overlap_queue) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t d = h_spawn(h_bin(), url,
                      ARGS("daemon", "--schedule", EVERY_SECOND, "--param",
                           "tick.sleep_ms=1400", "--overlap", "tick=queue"),
                      NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 4,
                              30000), "no runs; stderr:\n%s", h_stderr(d));
    daemon_stop(d);
    daemon_assert_no_overlap(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = 'skipped'"),
                     0);
    /* Queued slots ran oldest first. */
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log a JOIN tick_log b "
                                      "ON a.run_key < b.run_key AND a.start_ms > b.start_ms"),
                     0);
    /* More slots came due than could run: some are still queued. */
    ck_assert_int_gt(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = 'pending'"),
                     0);
}
END_TEST

/* A job's own schedule; a per-key job's slots may overlap and never skip. */
START_TEST(test_declared_schedule_per_key) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t d = h_spawn(h_test_bin(), url,
                      ARGS("daemon", "--only", "tick_keyed", "--param",
                           "tick_keyed.sleep_ms=2500"),
                      NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 3,
                              30000), "no runs; stderr:\n%s", h_stderr(d));
    daemon_stop(d);
    ck_assert(daemon_has(d, "'TZ=Europe/Paris * * * * * *' (Europe/Paris)"));
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = 'skipped'"),
                     0);
    /* On SQLite one writer at a time: tick's transaction spans its sleep. */
    if (_i == H_PG)
        ck_assert_int_gt(h_query_int(url, "SELECT count(*) FROM tick_log a JOIN tick_log b "
                                          "ON a.run_key < b.run_key AND a.start_ms < "
                                          "b.end_ms AND b.start_ms < a.end_ms"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log"),
                     h_query_int(url, "SELECT count(DISTINCT run_key) FROM tick_log"));
}
END_TEST

/* ---------------------- a daemon killed mid-run: another one finishes it */

/* The parent pid of pid, from /proc. */
static pid_t daemon_ppid(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* after "pid (comm)" */
    int ppid = -1;
    if (p) sscanf(p + 2, "%*c %d", &ppid);
    return ppid;
}

START_TEST(test_killed_daemon_healed) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    /* One slot only, two seconds from now. */
    time_t at = (time_t)(daemon_wall_ms() / 1000 + 2);
    struct tm tm;
    gmtime_r(&at, &tm);
    char sched[128];
    snprintf(sched, sizeof sched, "tick=%d %d %d %d %d *", tm.tm_sec, tm.tm_min,
             tm.tm_hour, tm.tm_mday, tm.tm_mon + 1);
    pid_t d[2];
    for (int k = 0; k < 2; k++)
        d[k] = h_spawn(h_bin(), url,
                       ARGS("daemon", "--schedule", sched, "--param", "tick.sleep_ms=3000"),
                       NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_lease", 1, 20000),
                  "the slot did not start; stderr:\n%s", h_stderr(d[0]));
    /* The holder is a `run` child of one daemon: kill that daemon. */
    char *owner = h_query_text(url, "SELECT owner FROM rt_lease");
    pid_t holder = (pid_t)atoi(strchr(owner, ':') + 1);
    free(owner);
    pid_t parent = daemon_ppid(holder);
    int victim = parent == d[0] ? 0 : 1;
    ck_assert_msg(parent == d[victim], "holder %d has parent %d", (int)holder, (int)parent);
    ck_assert_int_eq(kill(d[victim], SIGKILL), 0);
    EXPECT_EXIT(d[victim], h_wait(d[victim], 5000), EXIT_SIGKILL);

    /* The other daemon resumes the run; it finishes once, exactly. */
    pid_t other = d[1 - victim];
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 1,
                              20000), "not healed; stderr:\n%s", h_stderr(other));
    ck_assert(daemon_has(other, EVENT("pick_up")));
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM tick_log"), 1);
    ck_assert_int_ge(h_query_int(url, "SELECT attempt FROM rt_run"), 2);
    daemon_stop(other);
}
END_TEST

/* ------------------------------------ misfires while every daemon was down */

/* A 6-field expression that fires at the given seconds (and, far from the
 * test's few seconds, at their fields' other combinations). */
static void daemon_cron_at(time_t a, time_t b, char *out, size_t n) {
    struct tm x, y;
    gmtime_r(&a, &x);
    gmtime_r(&b, &y);
    snprintf(out, n, "tick=%d,%d %d,%d %d,%d %d,%d %d,%d *", x.tm_sec, y.tm_sec, x.tm_min,
             y.tm_min, x.tm_hour, y.tm_hour, x.tm_mday, y.tm_mday, x.tm_mon + 1,
             y.tm_mon + 1);
}

START_TEST(test_misfire) {
    /* catch-up, skip, and catch-up refused by --max-lateness. */
    const char *urls[3];
    for (int v = 0; v < 3; v++) {
        urls[v] = h_db_new(_i);
        h_migrate(urls[v]);
    }
    time_t first = (time_t)(daemon_wall_ms() / 1000 + 2), missed = first + 2;
    char sched[160];
    daemon_cron_at(first, missed, sched, sizeof sched);
    pid_t d[3];
    for (int v = 0; v < 3; v++)
        d[v] = h_spawn(h_bin(), urls[v], ARGS("daemon", "--schedule", sched), NULL);
    for (int v = 0; v < 3; v++) {
        ck_assert_msg(h_await_int(urls[v], "SELECT count(*) FROM rt_run WHERE status = 'done'",
                                  1, 20000), "first slot: %s", h_stderr(d[v]));
        daemon_stop(d[v]);
    }
    /* Every daemon is down while the second slot passes, and a while after. */
    while (daemon_wall_ms() < (int64_t)missed * 1000 + 2500) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    const char *const *argv[3] = {
        ARGS("daemon", "--schedule", sched),
        ARGS("daemon", "--schedule", sched, "--misfire", "tick=skip"),
        ARGS("daemon", "--schedule", sched, "--max-lateness", "tick=1"),
    };
    for (int v = 0; v < 3; v++) d[v] = h_spawn(h_bin(), urls[v], argv[v], NULL);
    for (int v = 0; v < 3; v++)
        ck_assert_msg(h_await_stderr(d[v], EVENT("misfire"), 20000), "%d: %s", v,
                      h_stderr(d[v]));
    /* catch-up: the missed slot ran, once. */
    ck_assert_msg(h_await_int(urls[0], "SELECT count(*) FROM rt_run WHERE status = 'done'", 2,
                              20000), "%s", h_stderr(d[0]));
    for (int v = 0; v < 3; v++) daemon_stop(d[v]);
    char where[128];
    snprintf(where, sizeof where, "SELECT status FROM rt_run WHERE slot_ms = %lld",
             (long long)missed * 1000);
    const char *want[] = {"done", "skipped", "skipped"};
    for (int v = 0; v < 3; v++) {
        char *status = h_query_text(urls[v], where);
        ck_assert_msg(status && !strcmp(status, want[v]), "variant %d: slot is %s", v,
                      status ? status : "absent");
        free(status);
        ck_assert_int_eq(h_query_int(urls[v], "SELECT count(*) FROM rt_run"), 2);
    }
    ck_assert_int_eq(h_query_int(urls[0], "SELECT count(*) FROM tick_log"), 2);
    ck_assert_int_eq(h_query_int(urls[1], "SELECT count(*) FROM rt_run WHERE error LIKE "
                                          "'missed:%'"), 1);
    ck_assert_int_eq(h_query_int(urls[2], "SELECT count(*) FROM rt_run WHERE error LIKE "
                                          "'%max-lateness%'"), 1);
}
END_TEST

/* ------------------- SIGTERM: exit 0 within grace; the run resumes later */

START_TEST(test_sigterm_mid_run) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    const char *const argv[] = {"daemon", "--schedule", EVERY_SECOND, "--param",
                                "tick.sleep_ms=3000", "--grace", "2", NULL};
    pid_t d = h_spawn(h_bin(), url, argv, NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'running'", 1,
                              20000), "no run; stderr:\n%s", h_stderr(d));
    int64_t t0 = h_now_ms();
    ck_assert_int_eq(kill(d, SIGTERM), 0);
    EXPECT_EXIT(d, h_wait(d, 3000), 0);
    ck_assert_int_lt(h_now_ms() - t0, 2000);
    ck_assert(daemon_has(d, EVENT("stopping")));
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = 'running'"),
                     0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'"),
                     0);
    ck_assert_int_ge(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = "
                                      "'interrupted'"), 1);
    /* The next start of any daemon finishes the interrupted run. */
    d = h_spawn(h_bin(), url, argv, NULL);
    ck_assert_msg(h_await_stderr(d, EVENT("pick_up"), 10000), "%s", h_stderr(d));
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done' AND "
                                   "attempt = 2", 1, 20000), "%s", h_stderr(d));
    daemon_stop(d);
}
END_TEST

/* ------------------------------- the daemon is scheduler and worker too */

START_TEST(test_daemon_runs_queue) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    for (int k = 0; k < 5; k++) {
        char key[16];
        snprintf(key, sizeof key, "q%d", k);
        pid_t e = h_spawn(h_bin(), url, ARGS("enqueue", "noop", "--key", key), NULL);
        EXPECT_EXIT(e, h_wait(e, 20000), 0);
    }
    pid_t d = h_spawn(h_bin(), url, ARGS("daemon", "--schedule", "tick=@hourly"), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE job = 'noop' AND "
                                   "status = 'done'", 5, 20000), "%s", h_stderr(d));
    daemon_stop(d);
    /* --workers 0: schedules only; the queue waits. */
    pid_t e = h_spawn(h_bin(), url, ARGS("enqueue", "noop", "--key", "later"), NULL);
    EXPECT_EXIT(e, h_wait(e, 20000), 0);
    d = h_spawn(h_bin(), url, ARGS("daemon", "--schedule", "tick=@hourly", "--workers", "0"),
                NULL);
    ck_assert(h_await_stderr(d, EVENT("daemon_start"), 20000));
    ck_assert(!h_await_int(url, "SELECT count(*) FROM rt_run WHERE run_key = 'later' AND "
                                "status = 'done'", 1, 1000));
    daemon_stop(d);
}
END_TEST

/* ------------------------------------------------ systemd notifications */

START_TEST(test_sd_notify) {
    const char *url = h_db_new(H_SQLITE);
    char dir[] = "/tmp/ratchet-notify.XXXXXX";
    ck_assert(mkdtemp(dir));
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/notify", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char env_sock[160];
    snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", addr.sun_path);
    pid_t d = h_spawn(h_bin(), url, ARGS("daemon", "--schedule", "tick=@hourly"),
                      ARGS(env_sock, "WATCHDOG_USEC=200000"));
    char msg[256];
    bool ready = false, watchdog = false, stopping = false;
    int readies = 0, stoppings = 0;
    for (int i = 0; i < 20 && !(ready && watchdog); i++) {
        ssize_t n = recv(fd, msg, sizeof msg - 1, 0);
        ck_assert_msg(n > 0, "no notification; stderr:\n%s", h_stderr(d));
        msg[n] = '\0';
        if (!strcmp(msg, "READY=1")) ready = true, readies++;
        if (!strcmp(msg, "WATCHDOG=1")) watchdog = ready; /* after READY */
    }
    ck_assert(ready && watchdog);
    ck_assert_int_eq(kill(d, SIGTERM), 0);
    for (int i = 0; i < 50 && !stopping; i++) {
        ssize_t n = recv(fd, msg, sizeof msg - 1, 0);
        ck_assert_int_gt(n, 0);
        msg[n] = '\0';
        stopping = !strcmp(msg, "STOPPING=1");
        readies += !strcmp(msg, "READY=1");
    }
    ck_assert(stopping);
    stoppings = 1;
    EXPECT_EXIT(d, h_wait(d, 9000), 0);
    /* Only the daemon speaks to systemd, not its worker pool (a child). */
    ssize_t n;
    while ((n = recv(fd, msg, sizeof msg - 1, MSG_DONTWAIT)) > 0) {
        msg[n] = '\0';
        readies += !strcmp(msg, "READY=1");
        stoppings += !strcmp(msg, "STOPPING=1");
    }
    ck_assert_int_eq(readies, 1);
    ck_assert_int_eq(stoppings, 1);
    close(fd);
    unlink(addr.sun_path);
    rmdir(dir);
}
END_TEST

/* ------------------------------------------------------------ bad input */

START_TEST(test_bad_input) {
    const char *url = h_db_new(H_SQLITE);
    const char *path = url + strlen("sqlite:");
    const struct {
        const char *const *argv;
        const char *says;
    } cases[] = {
        {ARGS("daemon", "--schedule", "tick=61 * * * *"), "position 1"},
        {ARGS("daemon", "--schedule", "tick=* * *"), "cron '* * *'"},
        {ARGS("daemon", "--schedule", "tick=0 0 30 2 *"), "never fires"},
        {ARGS("daemon", "--schedule", "tick=TZ=Mars/Olympus 0 3 * * *"), "Mars/Olympus"},
        {ARGS("daemon", "--schedule", "nosuch=* * * * *"), "unknown job 'nosuch'"},
        {ARGS("daemon", "--only", "nosuch"), "unknown job 'nosuch'"},
        {ARGS("daemon", "--only", "rowcopy"), "has no schedule"},
        {ARGS("daemon"), "no job has a schedule"},
        {ARGS("daemon", "--schedule", EVERY_SECOND, "--param", "tick.nope=1"), "no param 'nope'"},
        {ARGS("daemon", "--schedule", EVERY_SECOND, "--param", "tick.sleep_ms=x"), "not an integer"},
        {ARGS("daemon", "--schedule", EVERY_SECOND, "--param", "rowcopy.rows=1"), "not scheduled"},
        {ARGS("daemon", "--schedule", EVERY_SECOND, "--overlap", "tick=sometimes"), "skip or queue"},
        {ARGS("daemon", "--schedule", EVERY_SECOND, "--misfire", "tick=never"), "catch-up or skip"},
        {ARGS("daemon", "--schedule", EVERY_SECOND, "--max-lateness", "tick=-1"), "seconds"},
        {ARGS("daemon", "--schedule", EVERY_SECOND, "--grace", "0"), "--grace"},
        {ARGS("daemon", "--frobnicate"), "unknown option"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_expect_usage(h_bin(), url, cases[i].argv, cases[i].says);
        /* Refused before the database was touched. */
        struct stat sb;
        ck_assert_msg(stat(path, &sb) != 0, "case %zu created the database", i);
    }
}
END_TEST

Suite *daemon_suite(void) {
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 120);
    int n = h_backends();
    tcase_add_loop_test(tc, test_three_replicas_one_run_per_slot, 0, n);
    tcase_add_loop_test(tc, test_overlap_skip, 0, n);
    tcase_add_loop_test(tc, test_overlap_queue, 0, n);
    tcase_add_loop_test(tc, test_declared_schedule_per_key, 0, n);
    tcase_add_loop_test(tc, test_killed_daemon_healed, 0, n);
    tcase_add_loop_test(tc, test_misfire, 0, n);
    tcase_add_loop_test(tc, test_sigterm_mid_run, 0, n);
    tcase_add_loop_test(tc, test_daemon_runs_queue, 0, n);
    tcase_add_test(tc, test_sd_notify);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
