/*
 * check_cli.c — integration tests of the real binaries (build/ratchet and
 * build/ratchet-test) as child processes: exit codes, real signals (SIGTERM,
 * SIGINT, SIGKILL, SIGSTOP/SIGCONT), stderr contents, and what the runs left
 * in the database, checked over a separate connection.
 *
 * Every test that touches a database is a loop test over the backends
 * (_i = H_SQLITE, H_PG), so the same assertions run on PostgreSQL. SQL used
 * in checks is portable between SQLite and PostgreSQL.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ratchet.h>

#include "harness.h"
#include "suites.h"

/* ------------------------------------------------------------- helpers */

static void cli_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static unsigned cli_seed_state;

/* A random integer in [lo, hi]; the seed is printed once per test process. */
static int cli_rand(int lo, int hi) {
    if (!cli_seed_state) {
        cli_seed_state = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
        if (!cli_seed_state) cli_seed_state = 1;
        fprintf(stderr, "check_cli: random seed %u (pid %d)\n", cli_seed_state,
                (int)getpid());
    }
    /* xorshift32 */
    unsigned x = cli_seed_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    cli_seed_state = x;
    return lo + (int)(x % (unsigned)(hi - lo + 1));
}

/* Spawn and wait; *pid_out (if given) receives the pid for h_stderr(). */
static int cli_run(const char *bin, const char *url, const char *const *argv,
                   const char *const *env, int timeout_ms, pid_t *pid_out) {
    pid_t pid = h_spawn(bin, url, argv, env);
    if (pid_out) *pid_out = pid;
    return h_wait(pid, timeout_ms);
}


/* stderr is exactly one non-empty line, ending in a newline. */
static void cli_assert_one_line(pid_t pid) {
    const char *err = h_stderr(pid);
    size_t len = strlen(err);
    ck_assert_msg(len > 1 && err[len - 1] == '\n' && h_count_lines(err) == 1,
                  "want exactly one line on stderr, got:\n%s", err);
}

static void cli_assert_contains(const char *hay, const char *needle) {
    ck_assert_msg(strstr(hay, needle) != NULL, "'%s' not found in:\n%s", needle,
                  hay);
}

static void cli_assert_lacks(const char *hay, const char *needle) {
    ck_assert_msg(strstr(hay, needle) == NULL, "'%s' unexpectedly in:\n%s",
                  needle, hay);
}


/* Signal a child that must still exist (not yet reaped). */
static void cli_kill(pid_t pid, int sig) {
    ck_assert_msg(kill(pid, sig) == 0, "kill(%d, %d): %s", (int)pid, sig,
                  strerror(errno));
}


/* Query text that must not be NULL; the caller frees it. */
static char *cli_text(const char *url, const char *sql) {
    char *t = h_query_text(url, sql);
    ck_assert_msg(t != NULL, "%s: NULL", sql);
    return t;
}

static void cli_assert_text(const char *url, const char *sql, const char *want) {
    char *t = cli_text(url, sql);
    ck_assert_msg(!strcmp(t, want), "%s: got '%s', want '%s'", sql, t, want);
    free(t);
}

/*
 * A structural JSON check: one value, strings closed, escapes well-formed,
 * brackets balanced and matching, nothing but whitespace after it.
 */
static bool cli_json_plausible(const char *s) {
    char stack[64];
    int depth = 0;
    bool in_str = false, seen = false;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (in_str) {
            if (ch == '\\') {
                p++;
                if (!*p || !strchr("\"\\/bfnrtu", *p)) return false;
            } else if (ch == '"') {
                in_str = false;
            } else if ((unsigned char)ch < 0x20) {
                return false;
            }
            continue;
        }
        if (depth == 0 && seen && !strchr(" \t\r\n", ch)) return false;
        if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            if (depth == (int)sizeof stack) return false;
            stack[depth++] = ch;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0 || stack[depth - 1] != (ch == '}' ? '{' : '[')) return false;
            if (--depth == 0) seen = true;
        }
    }
    return seen && !in_str && depth == 0;
}

static void cli_assert_status(const char *url, const char *job, const char *key,
                              const char *want) {
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT status FROM rt_run WHERE job = '%s' AND run_key = '%s'",
             job, key);
    cli_assert_text(url, sql, want);
}

/* ---------------------------------------------- 1. a plain run, rerun, status */

START_TEST(test_basic_run) {
    const char *url = h_db_new(_i);
    pid_t pid;
    int code = cli_run(h_bin(), url, ARGS("run", "rowcopy", "--param", "rows=2000", "--key", "k"),
                       NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    const char *err = h_stderr(pid);
    cli_assert_contains(err, "\"event\":\"start\"");
    cli_assert_contains(err, "\"event\":\"done\"");
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_src"), 2000);
    h_assert_rowcopy_report(url, "k", 2000);
    cli_assert_status(url, "rowcopy", "k", "done");
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'k'"), 2000);
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'k'"), 1);

    /* A finished key is not run again: exit 0, says so, claims nothing. */
    code = cli_run(h_bin(), url, ARGS("run", "rowcopy", "--param", "rows=2000", "--key", "k"),
                   NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stderr(pid), "\"event\":\"already_done\"");
    cli_assert_lacks(h_stderr(pid), "\"event\":\"start\"");
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'k'"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 2000);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);

    /* --flag=value forms, and the global --db after the command. */
    code = cli_run(h_bin(), NULL,
                   ARGS("run", "rowcopy", "--key=k", "--param=rows=2000", "--db", url), NULL,
                   30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stderr(pid), "\"event\":\"already_done\"");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);

    /* status --json: one JSON document naming the run. */
    code = cli_run(h_bin(), url, ARGS("status", "--json"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    const char *out = h_stdout(pid);
    ck_assert_msg(cli_json_plausible(out), "status --json is not JSON:\n%s", out);
    cli_assert_contains(out, "\"runs\":[");
    cli_assert_contains(out, "\"job\":\"rowcopy\"");
    cli_assert_contains(out, "\"key\":\"k\"");
    cli_assert_contains(out, "\"status\":\"done\"");
    cli_assert_contains(out, "\"items\":2000");

    /* status (text) and status for another job. */
    code = cli_run(h_bin(), url, ARGS("status"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stdout(pid), "rowcopy");
    cli_assert_contains(h_stdout(pid), "done");
    code = cli_run(h_bin(), url, ARGS("status", "aggregate", "--json"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    ck_assert_msg(cli_json_plausible(h_stdout(pid)), "%s", h_stdout(pid));
    cli_assert_lacks(h_stdout(pid), "rowcopy");
}
END_TEST

/* ------------------------------------------------------ 2. SIGKILL, again and again */

START_TEST(test_sigkill_loop) {
    const char *url = h_db_new(_i);
    int kills = 0, mid_copy = 0, iterations = 0, code = -1;
    pid_t pid = 0;
    /* item_us makes the run last ~1 s of CPU so that kills land all over it. */
    for (; iterations < 200; iterations++) {
        pid = h_spawn(h_bin(), url,
                      ARGS("run", "rowcopy", "--key", "kk", "--param", "rows=20000",
                           "--param", "item_us=50", "--chunk-items", "50"),
                      NULL);
        /* Longer and longer: slow builds (sanitizers) finish too. */
        cli_sleep_ms(cli_rand(0, 150 + 5 * iterations));
        kill(pid, SIGKILL); /* may already have exited: then it is a zombie */
        code = h_wait(pid, 30000);
        if (code == EXIT_SIGKILL) {
            kills++;
            mid_copy += h_rowcopy_consistent(url, "kk");
            continue;
        }
        EXPECT_EXIT(pid, code, 0);
        break;
    }
    ck_assert_msg(code == 0, "no run finished in %d attempts (%d kills)", iterations, kills);
    ck_assert_msg(kills >= 3, "only %d runs were killed by SIGKILL", kills);
    ck_assert_msg(mid_copy >= 1, "no kill left the run in the middle of step copy");
    if (getenv("CLI_DEBUG"))
        fprintf(stderr, "sigkill: %d kills, %d mid-copy, %d runs\n", kills, mid_copy, iterations + 1);
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 20000);
    h_assert_rowcopy_report(url, "kk", 20000);
    cli_assert_status(url, "rowcopy", "kk", "done");
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'kk'"), 20000);
}
END_TEST

/*
 * Another process reading while a run commits sees every commit, and a
 * SIGKILL loses none of what it saw. (Regression: opening the lease's own
 * SQLite connection once closed a descriptor of the database, dropping the
 * writer's POSIX locks; a reader closing then deleted the live WAL.)
 */
START_TEST(test_reader_sees_commits) {
    const char *url = h_db_new(_i);
    const char *items =
        "SELECT coalesce(max(step_items), 0) FROM rt_run WHERE run_key = 'rd' AND step_index = 1";
    h_migrate(url);
    pid_t pid = h_spawn(h_bin(), url,
                        ARGS("run", "rowcopy", "--key", "rd", "--param", "rows=100000",
                             "--param", "item_us=100", "--chunk-items", "100"),
                        ARGS("RATCHET_LOG_LEVEL=debug"));
    ck_assert_msg(h_await_int(url, items, 1, 20000), "no commit; stderr:\n%s", h_stderr(pid));
    /* Readers come and go while it commits, for a second. */
    int64_t until = h_now_ms() + 1000;
    while (h_now_ms() < until) h_await_int(url, items, h_query_int(url, items) + 1, 100);
    cli_kill(pid, SIGSTOP);
    /* The last chunk it logged as committed (the log line follows the commit). */
    const char *err = h_stderr(pid), *last = NULL;
    for (const char *p = err; (p = strstr(p, "\"event\":\"commit\"")); p++) last = p;
    ck_assert_msg(last && strstr(last, "\"items\":"), "no commit logged:\n%s", err);
    int64_t logged = strtoll(strstr(last, "\"items\":") + 8, NULL, 10);
    cli_kill(pid, SIGKILL);
    EXPECT_EXIT(pid, h_wait(pid, 10000), EXIT_SIGKILL);
    ck_assert_int_gt(logged, 0);
    ck_assert_int_ge(h_query_int(url, items), logged);
    ck_assert(h_rowcopy_consistent(url, "rd"));
}
END_TEST

/* ------------------------------------------------------------ 3. SIGTERM, SIGINT */

/* Signal pid (once or twice), return its exit code; it must exit in 2 s. */
static int cli_stop(pid_t pid, int sig, bool twice) {
    int64_t t0 = h_now_ms();
    cli_kill(pid, sig);
    if (twice) {
        cli_sleep_ms(20);
        kill(pid, sig);
    }
    int code = h_wait(pid, 10000);
    int64_t dt = h_now_ms() - t0;
    ck_assert_msg(code != -1, "no exit 10 s after signal %d", sig);
    ck_assert_msg(dt < 2000, "exit %d only %lld ms after signal %d", code, (long long)dt, sig);
    return code;
}

START_TEST(test_sigterm_random) {
    const char *url = h_db_new(_i);
    /* Schema first, so the signal handlers are installed within a few ms. */
    h_migrate(url);
    int code;
    pid_t pid;

    /* ~2 s of copying: a SIGTERM 50-500 ms in arrives while it works. */
    pid = h_spawn(h_bin(), url,
                  ARGS("run", "rowcopy", "--key", "t", "--param", "rows=20000",
                       "--param", "item_us=100"),
                  NULL);
    cli_sleep_ms(cli_rand(50, 500));
    code = cli_stop(pid, SIGTERM, false);
    ck_assert_msg(code == 75 || code == 0, "exit %d after SIGTERM; stderr:\n%s", code,
                  h_stderr(pid));
    if (code == 75) {
        cli_assert_contains(h_stderr(pid), "\"event\":\"interrupted\"");
        cli_assert_contains(h_stderr(pid), "SIGTERM");
        cli_assert_status(url, "rowcopy", "t", "interrupted");
        h_rowcopy_consistent(url, "t");

        /* Params are fixed when the run starts. */
        code = cli_run(h_bin(), url,
                       ARGS("run", "rowcopy", "--key", "t", "--param", "rows=20001"), NULL,
                       30000, &pid);
        EXPECT_EXIT(pid, code, 2);
        cli_assert_one_line(pid);
        cli_assert_contains(h_stderr(pid), "rows=20001");
        cli_assert_status(url, "rowcopy", "t", "interrupted");

        code = cli_run(h_bin(), url,
                       ARGS("run", "rowcopy", "--key", "t", "--param", "rows=20000",
                            "--param", "item_us=100"),
                       NULL, 60000, &pid);
        EXPECT_EXIT(pid, code, 0);
        cli_assert_contains(h_stderr(pid), "\"event\":\"resume\"");
    }
    h_assert_rowcopy_exact(url);
    h_assert_rowcopy_report(url, "t", 20000);
    cli_assert_status(url, "rowcopy", "t", "done");
}
END_TEST

/* Start a ~1 s rowcopy, await a commit, stop it with sig (twice?), resume. */
static void cli_stop_variant(const char *url, const char *key, int sig, bool twice) {
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT coalesce(max(items), 0) FROM rt_run WHERE run_key = '%s'", key);
    h_migrate(url);
    pid_t pid = h_spawn(h_bin(), url,
                        ARGS("run", "rowcopy", "--key", key, "--param", "rows=5000",
                             "--param", "item_us=200", "--chunk-items", "200"),
                        NULL);
    bool progressed = h_await_int(url, sql, 1, 20000);
    ck_assert_msg(progressed, "no commit within 20 s; stderr:\n%s", h_stderr(pid));
    int code = cli_stop(pid, sig, twice);
    EXPECT_EXIT(pid, code, 75);
    const char *err = h_stderr(pid);
    cli_assert_contains(err, "\"event\":\"interrupted\"");
    cli_assert_contains(err, sig == SIGINT ? "SIGINT" : "SIGTERM");
    cli_assert_lacks(err, "\"event\":\"deadline\"");
    cli_assert_status(url, "rowcopy", key, "interrupted");
    h_rowcopy_consistent(url, key);
    ck_assert_int_lt(h_query_int(url, sql), 5000);
    code = cli_run(h_bin(), url, ARGS("run", "rowcopy", "--key", key), NULL, 60000, &pid);
    EXPECT_EXIT(pid, code, 0);
    h_assert_rowcopy_exact(url);
    h_assert_rowcopy_report(url, key, 5000);
    cli_assert_status(url, "rowcopy", key, "done");
}

/*
 * A SIGTERM right after a commit of a resumed run — the lease's, the
 * claim's, a chunk's (failpoint commit.after:term:N) — ends it 'interrupted'
 * with exit 75. (It used to leave the run 'running': memory kept the status
 * the run was loaded with, so the final write was skipped; and a chunk's
 * commit read the stop flag twice. Found by the torture driver.)
 */
START_TEST(test_sigterm_after_commit) {
    const char *url = h_db_new(_i);
    const char *const argv[] = {"run", "rowcopy", "--key", "r", "--param", "rows=3000",
                                "--param", "item_us=100", "--chunk-items", "100", NULL};
    h_migrate(url);
    pid_t pid = h_spawn(h_bin(), url, argv, NULL);
    ck_assert_msg(h_await_int(url, "SELECT items FROM rt_run WHERE run_key = 'r'", 1, 20000),
                  "no commit; stderr:\n%s", h_stderr(pid));
    cli_kill(pid, SIGTERM);
    EXPECT_EXIT(pid, h_wait(pid, 10000), 75);
    cli_assert_status(url, "rowcopy", "r", "interrupted");
    for (int n = 1; n <= 4; n++) {
        char fp[64];
        snprintf(fp, sizeof fp, "RATCHET_FAILPOINT=commit.after:term:%d", n);
        pid = h_spawn(h_hooks_bin(), url, argv, ARGS(fp));
        EXPECT_EXIT(pid, h_wait(pid, 10000), 75);
        cli_assert_status(url, "rowcopy", "r", "interrupted");
        h_rowcopy_consistent(url, "r");
    }
    int code = cli_run(h_bin(), url, argv, NULL, 60000, &pid);
    EXPECT_EXIT(pid, code, 0);
    h_assert_rowcopy_exact(url);
    h_assert_rowcopy_report(url, "r", 3000);
}
END_TEST

/* SIGTERM while the schema is created (failpoint begin.after:term:1, the
 * migration's transaction): exit 75, as anywhere else. (It used to die of
 * the signal: the handlers came after the database was opened.) */
START_TEST(test_sigterm_while_migrating) {
    const char *url = h_db_new(_i);
    const char *const argv[] = {"run", "rowcopy", "--key", "m", "--param", "rows=100", NULL};
    pid_t pid = h_spawn(h_hooks_bin(), url, argv, ARGS("RATCHET_FAILPOINT=begin.after:term:1"));
    EXPECT_EXIT(pid, h_wait(pid, 20000), 75);
    int code = cli_run(h_bin(), url, argv, NULL, 60000, &pid);
    EXPECT_EXIT(pid, code, 0);
    h_assert_rowcopy_exact(url);
    h_assert_rowcopy_report(url, "m", 100);
}
END_TEST

START_TEST(test_sigterm_twice) {
    cli_stop_variant(h_db_new(_i), "twice", SIGTERM, true);
}
END_TEST

START_TEST(test_sigint) {
    cli_stop_variant(h_db_new(_i), "int", SIGINT, false);
}
END_TEST

/* Without --key: resume the job's latest unfinished run, else start anew. */
START_TEST(test_no_key) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t pid = h_spawn(h_bin(), url,
                        ARGS("run", "rowcopy", "--param", "rows=5000", "--param", "item_us=200",
                             "--chunk-items", "200"),
                        NULL);
    bool progressed = h_await_int(url, "SELECT coalesce(max(items), 0) FROM rt_run", 1, 20000);
    ck_assert_msg(progressed, "no commit within 20 s; stderr:\n%s", h_stderr(pid));
    int code = cli_stop(pid, SIGTERM, false);
    EXPECT_EXIT(pid, code, 75);
    char *key = cli_text(url, "SELECT run_key FROM rt_run");
    ck_assert_int_gt(strlen(key), 0);
    cli_assert_status(url, "rowcopy", key, "interrupted");

    code = cli_run(h_bin(), url, ARGS("run", "rowcopy"), NULL, 60000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stderr(pid), "\"event\":\"resume\"");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);
    cli_assert_status(url, "rowcopy", key, "done");
    h_assert_rowcopy_exact(url);
    h_assert_rowcopy_report(url, key, 5000);

    /* Nothing unfinished: a new run with a new (time-based) key. */
    code = cli_run(h_bin(), url, ARGS("run", "rowcopy", "--param", "rows=300"), NULL, 60000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stderr(pid), "\"event\":\"start\"");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 2);
    ck_assert_int_eq(h_query_int(url, "SELECT count(DISTINCT run_key) FROM rt_run"), 2);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'"), 2);
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 300);
    free(key);
}
END_TEST

/*
 * --start-at: the process connects and gets ready, then takes the run at
 * that wall-clock time, not before; a stop during the wait exits 75 with
 * nothing done (no run stored).
 */
static int64_t cli_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(test_start_at) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    char at[32];
    int64_t t = cli_wall_ms() + 1500;
    snprintf(at, sizeof at, "%lld", (long long)t);
    pid_t pid;
    int code = cli_run(h_bin(), url, ARGS("run", "tick", "--key", "a", "--start-at", at),
                       NULL, 60000, &pid);
    EXPECT_EXIT(pid, code, 0);
    int64_t started = h_query_int(url, "SELECT min(start_ms) FROM tick_log WHERE run_key = 'a'");
    ck_assert_msg(started >= t, "the step started %lld ms before --start-at",
                  (long long)(t - started));
    ck_assert_msg(started - t < 1000, "the step started %lld ms after --start-at",
                  (long long)(started - t));

    snprintf(at, sizeof at, "%lld", (long long)(cli_wall_ms() + 60000));
    pid = h_spawn(h_bin(), url, ARGS("run", "tick", "--key", "b", "--start-at", at),
                  ARGS("RATCHET_LOG_LEVEL=debug"));
    ck_assert_msg(h_await_stderr(pid, "\"event\":\"start_wait\"", 30000), "%s", h_stderr(pid));
    code = cli_stop(pid, SIGTERM, false);
    EXPECT_EXIT(pid, code, 75);
    cli_assert_contains(h_stderr(pid), "nothing was done");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE run_key = 'b'"), 0);

    code = cli_run(h_bin(), url, ARGS("run", "tick", "--key", "c", "--start-at", "soon"), NULL,
                   60000, &pid);
    EXPECT_EXIT(pid, code, 2);
    cli_assert_contains(h_stderr(pid), "--start-at takes epoch milliseconds");
}
END_TEST

/* A job without declared params: its typed getters refuse bad values at run time. */
START_TEST(test_loose_params) {
    const char *url = h_db_new(_i);
    pid_t pid;
    int code = cli_run(h_test_bin(), url, ARGS("run", "looseparams", "--key", "good", "--param", "n=5"),
                       NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM loose"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT n FROM loose"), 5);
    code = cli_run(h_test_bin(), url, ARGS("run", "looseparams", "--key", "dflt"), NULL, 30000,
                   &pid);
    EXPECT_EXIT(pid, code, 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM loose WHERE n = 7"), 1);

    for (int attempt = 0; attempt < 2; attempt++) {
        code = cli_run(h_test_bin(), url,
                       ARGS("run", "looseparams", "--key", "bad", "--param", "n=abc"), NULL, 30000,
                       &pid);
        EXPECT_EXIT(pid, code, 2);
        cli_assert_contains(h_stderr(pid), "param n: 'abc' is not an integer");
        ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM loose"), 2);
        /* Not kept: the run it created had done nothing (check_runner_errors.c). */
        ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE run_key = 'bad'"),
                         0);
    }
    /* A declared int param out of the job's range: the step refuses it. */
    code = cli_run(h_bin(), url, ARGS("run", "rowcopy", "--key", "neg", "--param", "rows=-1"), NULL,
                   30000, &pid);
    EXPECT_EXIT(pid, code, 2);
    cli_assert_contains(h_stderr(pid), "negative");
}
END_TEST

/* --------------------------------------------- 4. a hung step and the deadline */

START_TEST(test_deadline) {
    const char *url = h_db_new(_i);
    pid_t pid = h_spawn(h_test_bin(), url, ARGS("run", "hang", "--key", "h", "--grace", "1"),
                        ARGS("RATCHET_TEST_HANG=1"));
    /* "stalling" is logged inside the stall step's open transaction. */
    bool stalling = h_await_stderr(pid, "stalling", 20000);
    ck_assert_msg(stalling, "the hang job never logged 'stalling':\n%s", h_stderr(pid));
    int64_t t0 = h_now_ms();
    cli_kill(pid, SIGTERM);
    int code = h_wait(pid, 10000);
    int64_t dt = h_now_ms() - t0;
    EXPECT_EXIT(pid, code, 75);
    ck_assert_msg(dt >= 900 && dt <= 3000,
                  "exit %lld ms after SIGTERM with --grace 1 (want 900..3000)", (long long)dt);
    cli_assert_contains(h_stderr(pid), "\"event\":\"deadline\"");
    /* The work step committed all 500 rows; the stall step rolled back. */
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM hang_rows"), 500);
    ck_assert_int_eq(h_query_int(url, "SELECT step_index FROM rt_run WHERE run_key = 'h'"), 1);

    code = cli_run(h_test_bin(), url, ARGS("run", "hang", "--key", "h"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM hang_rows"), 500);
    ck_assert_int_eq(h_query_int(url, "SELECT count(DISTINCT n) FROM hang_rows"), 500);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM hang_mark"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM hang_done"), 1);
    cli_assert_status(url, "hang", "h", "done");
}
END_TEST

/* ------------------------------------------------------------- 5. bad input */

/* The job's own table that a refused command must not touch. */
static const char *cli_work_table = "rowcopy_dst";

/* Everything a refused command must leave as it was. */
static char *cli_snapshot(const char *url, const char *work_table) {
    char sql[1024];
    snprintf(sql, sizeof sql,
                    "SELECT count(*) || ',' || sum(epoch) || ',' || sum(items) || ',' "
                    "|| sum(attempt) || ',' || max(updated_ms) || ',' "
                    "|| min(status) || ',' || max(status) || ',' "
                    "|| (SELECT count(*) FROM rt_param) || ',' "
                    "|| (SELECT count(*) FROM %s) || ',' "
                    "|| (SELECT count(*) FROM rt_schema_version) || ',' "
                    "|| (SELECT max(version) FROM rt_schema_version) FROM rt_run",
             work_table);
    return cli_text(url, sql);
}

/* Run argv; expect exit 2, one line on stderr (containing needle), no change. */
static void cli_refused(const char *bin, const char *url, const char *db_arg,
                        const char *const *argv, const char *const *env,
                        const char *needle) {
    const char *work = cli_work_table;
    char *before = cli_snapshot(url, work);
    pid_t pid;
    int code = cli_run(bin, db_arg, argv, env, 30000, &pid);
    EXPECT_EXIT(pid, code, 2);
    cli_assert_one_line(pid);
    if (needle) cli_assert_contains(h_stderr(pid), needle);
    char *after = cli_snapshot(url, work);
    ck_assert_msg(!strcmp(before, after), "database changed: '%s' -> '%s' (stderr: %s)",
                  before, after, h_stderr(pid));
    free(before);
    free(after);
}

START_TEST(test_bad_input) {
    const char *url = h_db_new(_i);
    pid_t pid;
    int code = cli_run(h_bin(), url, ARGS("run", "rowcopy", "--key", "k", "--param", "rows=100"),
                       NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);

    cli_refused(h_bin(), url, url, ARGS("run", "nosuchjob", "--key", "k"), NULL, "nosuchjob");
    cli_refused(h_bin(), url, url, ARGS("frobnicate"), NULL, "frobnicate");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k", "--bogus"), NULL,
                "--bogus");
    cli_refused(h_bin(), url, url, ARGS("status", "--bogus"), NULL, "--bogus");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k", "--param", "rows"),
                NULL, "NAME=VALUE");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k", "--param", "=5"), NULL,
                "NAME=VALUE");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k2", "--param", "rows=abc"),
                NULL, "rows=abc");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k2", "--param", "nope=1"),
                NULL, "nope");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k2", "--grace", "-1"), NULL,
                "--grace");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k2", "--grace", "abc"), NULL,
                "--grace");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k2", "--grace"), NULL,
                "--grace");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k2", "--chunk-items", "x"),
                NULL, "--chunk-items");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", ""), NULL, "--key");
    cli_refused(h_bin(), url, url, ARGS("run"), NULL, "job");
    cli_refused(h_bin(), url, url, ARGS("reset", "rowcopy"), NULL, "--key");
    cli_refused(h_bin(), url, url, ARGS("reset", "rowcopy", "--key", "nokey"), NULL, "nokey");
    /* A finished run's params cannot change either. */
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k", "--param", "rows=200"),
                NULL, "rows=200");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k", "--param", "item_us=1"),
                NULL, "item_us");
    if (_i == H_SQLITE) {
        cli_refused(h_bin(), url, "sqlite:/nonexistent-dir/x.db", ARGS("run", "rowcopy", "--key", "k"),
                    NULL, "nonexistent-dir");
        struct stat st;
        ck_assert_int_ne(stat("/nonexistent-dir", &st), 0);
        char bad[600];
        snprintf(bad, sizeof bad, "%s?synchronous=sometimes", url);
        cli_refused(h_bin(), url, bad, ARGS("run", "rowcopy", "--key", "k"), NULL, "synchronous");
    }
    cli_refused(h_bin(), url, "mysql://x", ARGS("run", "rowcopy", "--key", "k"), NULL, "mysql");
    cli_refused(h_bin(), url, url, ARGS("--db", "mysql://user:secret@x/db", "status"), NULL,
                "mysql");
    /* ...and the password of an unrecognised URL is not echoed. */
    code = cli_run(h_bin(), NULL, ARGS("--db", "mysql://user:secret@x/db", "status"), NULL, 30000,
                   &pid);
    EXPECT_EXIT(pid, code, 2);
    cli_assert_lacks(h_stderr(pid), "secret");

    /* A schema newer than the binary: refused, untouched. */
    h_exec(url, "INSERT INTO rt_schema_version (version, name, applied_ms) "
                "VALUES (999, 'from-the-future', 0)");
    cli_refused(h_bin(), url, url, ARGS("run", "rowcopy", "--key", "k3", "--param", "rows=10"),
                NULL, "999");
    cli_refused(h_bin(), url, url, ARGS("status"), NULL, "999");
    cli_refused(h_bin(), url, url, ARGS("migrate"), NULL, "999");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE run_key = 'k3'"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT max(version) FROM rt_schema_version"), 999);
}
END_TEST

/* The job definition changes under an unfinished run. */
START_TEST(test_shape_changes) {
    const char *url = h_db_new(_i);
    cli_work_table = "shape_log";
    pid_t pid;
    int code = cli_run(h_test_bin(), url, ARGS("run", "shape", "--key", "s"),
                       ARGS("RATCHET_TEST_SHAPE_STOP=1"), 30000, &pid);
    EXPECT_EXIT(pid, code, 75);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log WHERE step = 'a'"), 200);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log WHERE step = 'b'"), 100);
    ck_assert_int_eq(h_query_int(url, "SELECT step_index FROM rt_run WHERE run_key = 's'"), 1);
    cli_assert_status(url, "shape", "s", "interrupted");

    cli_refused(h_test_bin(), url, url, ARGS("run", "shape", "--key", "s"),
                ARGS("RATCHET_TEST_SHAPE=renamed"), "[a,x,c]");
    pid = 0;
    code = cli_run(h_test_bin(), url, ARGS("run", "shape", "--key", "s"),
                   ARGS("RATCHET_TEST_SHAPE=renamed"), 30000, &pid);
    EXPECT_EXIT(pid, code, 2);
    cli_assert_contains(h_stderr(pid), "[a,b,c]");
    cli_refused(h_test_bin(), url, url, ARGS("run", "shape", "--key", "s"),
                ARGS("RATCHET_TEST_SHAPE=removed"), "[a,c]");
    /* Params on a job that declares none are the run's; changing them is refused. */
    cli_refused(h_test_bin(), url, url, ARGS("run", "shape", "--key", "s", "--param", "x=1"),
                NULL, "x=1");

    /* Appending a step is compatible: the run resumes in b and runs d too. */
    code = cli_run(h_test_bin(), url, ARGS("run", "shape", "--key", "s"),
                   ARGS("RATCHET_TEST_SHAPE=appended"), 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_status(url, "shape", "s", "done");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log"), 800);
    static const char *const steps[] = {"a", "b", "c", "d"};
    for (int k = 0; k < 4; k++) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(DISTINCT n) FROM shape_log WHERE step = '%s'",
                 steps[k]);
        ck_assert_int_eq(h_query_int(url, sql), 200);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM shape_log WHERE step = '%s'", steps[k]);
        ck_assert_int_eq(h_query_int(url, sql), 200);
    }
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 's'"), 800);
}
END_TEST

/* The run's rt_run row, every column as stored: PostgreSQL's row literal,
 * or each SQLite column's type and bytes in hex. */
static char *cli_run_row(int backend, const char *url, const char *key) {
    char sql[200];
    if (backend == H_PG) {
        snprintf(sql, sizeof sql, "SELECT CAST(r AS TEXT) FROM rt_run r WHERE run_key = '%s'", key);
        return cli_text(url, sql);
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(url + 7, &db, SQLITE_OPEN_READWRITE, NULL);
    ck_assert_msg(rc == SQLITE_OK, "open %s: %s", url, sqlite3_errstr(rc));
    snprintf(sql, sizeof sql, "SELECT * FROM rt_run WHERE run_key = '%s'", key);
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
    ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "no rt_run row for key '%s'", key);
    size_t cap = 1024, len = 0;
    char *out = malloc(cap);
    ck_assert(out != NULL);
    for (int c = 0; c < sqlite3_column_count(st); c++) {
        int type = sqlite3_column_type(st, c);
        const unsigned char *p = sqlite3_column_blob(st, c);
        size_t n = (size_t)sqlite3_column_bytes(st, c);
        while (len + 2 * n + 64 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            ck_assert(out != NULL);
        }
        len += (size_t)snprintf(out + len, cap - len, "%s=%d:", sqlite3_column_name(st, c), type);
        for (size_t k = 0; k < n; k++) len += (size_t)snprintf(out + len, cap - len, "%02x", p[k]);
        out[len++] = ';';
        out[len] = '\0';
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

/* Refused with exit 2, one line containing want; the run's row unchanged. */
static void cli_refused_row(int backend, const char *url, const char *key,
                            const char *const *argv, const char *const *env, const char *want) {
    char *before = cli_run_row(backend, url, key);
    cli_refused(h_test_bin(), url, url, argv, env, want);
    char *after = cli_run_row(backend, url, key);
    ck_assert_msg(!strcmp(before, after), "rt_run row of '%s' changed:\n%s\n%s", key, before,
                  after);
    free(before);
    free(after);
}

/* shape_log has `count` rows for step, with n = 1..200 each at least once. */
static void cli_assert_shape_rows(const char *url, const char *step, int64_t count) {
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM shape_log WHERE step = '%s'", step);
    ck_assert_int_eq(h_query_int(url, sql), count);
    if (!count) return;
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT n) FROM shape_log WHERE step = '%s' AND n BETWEEN 1 AND 200",
             step);
    ck_assert_int_eq(h_query_int(url, sql), 200);
}

/* Run key under the first definition [a,b,c], stopped after b's first 100 items. */
static void cli_shape_stopped_in_b(const char *url, const char *key) {
    pid_t pid;
    h_exec(url, "DELETE FROM shape_log");
    int code = cli_run(h_test_bin(), url, ARGS("run", "shape", "--key", key),
                       ARGS("RATCHET_TEST_SHAPE_STOP=1"), 30000, &pid);
    EXPECT_EXIT(pid, code, 75);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log WHERE step = 'a'"), 200);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log WHERE step = 'b'"), 100);
    cli_assert_status(url, "shape", key, "interrupted");
}

#define CLI_WAYS_OUT(key)                                                                  \
    "run it again with --restart-step NAME to continue at step NAME of the new "          \
    "definition, or discard its progress with 'ratchet reset shape --key " key "'"

/*
 * Steps renamed, removed, reordered under an unfinished run: refused with
 * the difference named and the row untouched; --restart-step takes the new
 * definition and goes on at that step from scratch, keeping the run's items.
 */
START_TEST(test_shape_restart_step) {
    const char *url = h_db_new(_i);
    cli_work_table = "shape_log";
    h_migrate(url);
    h_exec(url, "CREATE TABLE shape_log (step TEXT, n BIGINT)");
    pid_t pid;
    int code;

    /* Renamed: b -> x. */
    cli_shape_stopped_in_b(url, "r");
    cli_refused_row(_i, url, "r", ARGS("run", "shape", "--key", "r"),
                    ARGS("RATCHET_TEST_SHAPE=renamed"),
                    "job shape changed since run 'r' began: step 'b' was renamed or replaced "
                    "by 'x' (old steps [a,b,c], new [a,x,c]; the run is at step 'b'); "
                    CLI_WAYS_OUT("r") "\"");
    /* An unknown step, before anything is touched. */
    cli_refused_row(_i, url, "r", ARGS("run", "shape", "--key", "r", "--restart-step", "b"),
                    ARGS("RATCHET_TEST_SHAPE=renamed"),
                    "job shape has no step 'b' (its steps are [a,x,c])");
    cli_refused_row(_i, url, "r", ARGS("run", "shape", "--key", "r", "--restart-step="),
                    ARGS("RATCHET_TEST_SHAPE=renamed"), "--restart-step");
    code = cli_run(h_test_bin(), url, ARGS("run", "shape", "--key", "r", "--restart-step", "x"),
                   ARGS("RATCHET_TEST_SHAPE=renamed"), 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stderr(pid), "\"event\":\"restart_step\"");
    cli_assert_contains(h_stderr(pid), "\"step\":\"x\"");
    cli_assert_lacks(h_stderr(pid), "\"event\":\"resume\"");
    cli_assert_status(url, "shape", "r", "done");
    cli_assert_shape_rows(url, "a", 200);
    cli_assert_shape_rows(url, "x", 200);
    cli_assert_shape_rows(url, "c", 200);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log WHERE step = 'b'"), 100);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log"), 700);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'r'"), 700);
    cli_assert_text(url, "SELECT steps FROM rt_run WHERE run_key = 'r'", "a\nx\nc");
    ck_assert_int_eq(h_query_int(url, "SELECT step_index FROM rt_run WHERE run_key = 'r'"), 3);
    /* Done: no restart, and the new definition is its own now. */
    cli_refused_row(_i, url, "r", ARGS("run", "shape", "--key", "r", "--restart-step", "c"),
                    ARGS("RATCHET_TEST_SHAPE=renamed"),
                    "run 'r' of shape is done; --restart-step continues only an unfinished run");
    code = cli_run(h_test_bin(), url, ARGS("run", "shape", "--key", "r"),
                   ARGS("RATCHET_TEST_SHAPE=renamed"), 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stderr(pid), "\"event\":\"already_done\"");

    /* Removed: b is gone; go on at c. */
    cli_shape_stopped_in_b(url, "m");
    cli_refused_row(_i, url, "m", ARGS("run", "shape", "--key", "m"),
                    ARGS("RATCHET_TEST_SHAPE=removed"),
                    "job shape changed since run 'm' began: step 'b' was removed (old steps "
                    "[a,b,c], new [a,c]; the run is at step 'b'); " CLI_WAYS_OUT("m") "\"");
    code = cli_run(h_test_bin(), url, ARGS("run", "shape", "--key", "m", "--restart-step", "c"),
                   ARGS("RATCHET_TEST_SHAPE=removed"), 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stderr(pid), "\"event\":\"restart_step\"");
    cli_assert_status(url, "shape", "m", "done");
    cli_assert_shape_rows(url, "a", 200);
    cli_assert_shape_rows(url, "c", 200);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log WHERE step = 'b'"), 100);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log"), 500);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'm'"), 500);
    cli_assert_text(url, "SELECT steps FROM rt_run WHERE run_key = 'm'", "a\nc");

    /* Reordered to [a,c,b]: restart b (now last) from scratch; it stops
     * after 100 items again, and a plain run resumes it by name. */
    cli_shape_stopped_in_b(url, "o");
    cli_refused_row(_i, url, "o", ARGS("run", "shape", "--key", "o"),
                    ARGS("RATCHET_TEST_SHAPE=reordered"),
                    "job shape changed since run 'o' began: steps were reordered (old steps "
                    "[a,b,c], new [a,c,b]; the run is at step 'b'); " CLI_WAYS_OUT("o") "\"");
    code = cli_run(h_test_bin(), url, ARGS("run", "shape", "--key", "o", "--restart-step", "b"),
                   ARGS("RATCHET_TEST_SHAPE=reordered", "RATCHET_TEST_SHAPE_STOP=1"), 30000,
                   &pid);
    EXPECT_EXIT(pid, code, 75);
    cli_assert_contains(h_stderr(pid), "\"event\":\"restart_step\"");
    cli_assert_status(url, "shape", "o", "interrupted");
    ck_assert_int_eq(h_query_int(url, "SELECT step_index FROM rt_run WHERE run_key = 'o'"), 2);
    cli_assert_text(url, "SELECT step_name FROM rt_run WHERE run_key = 'o'", "b");
    ck_assert_int_eq(h_query_int(url, "SELECT step_items FROM rt_run WHERE run_key = 'o'"), 100);
    ck_assert_int_eq(h_query_int(url, "SELECT cursor_int FROM rt_run WHERE run_key = 'o'"), 100);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'o'"), 400);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log WHERE step = 'b'"), 200);
    code = cli_run(h_test_bin(), url, ARGS("run", "shape", "--key", "o"),
                   ARGS("RATCHET_TEST_SHAPE=reordered"), 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stderr(pid), "\"event\":\"resume\"");
    cli_assert_status(url, "shape", "o", "done");
    cli_assert_shape_rows(url, "a", 200);
    cli_assert_shape_rows(url, "b", 300); /* 1..100 twice, 101..200 once */
    ck_assert_int_eq(h_query_int(url, "SELECT count(DISTINCT n) FROM shape_log WHERE step = 'b' "
                                      "AND n > 100"),
                     100);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM shape_log WHERE step = 'c'"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'o'"), 500);
    cli_assert_text(url, "SELECT steps FROM rt_run WHERE run_key = 'o'", "a\nc\nb");

    /* The same definition: restart a step from scratch. */
    cli_shape_stopped_in_b(url, "u");
    code = cli_run(h_test_bin(), url, ARGS("run", "shape", "--key", "u", "--restart-step=b"),
                   NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stderr(pid), "\"event\":\"restart_step\"");
    cli_assert_lacks(h_stderr(pid), "current steps");
    cli_assert_shape_rows(url, "a", 200);
    cli_assert_shape_rows(url, "b", 300);
    cli_assert_shape_rows(url, "c", 200);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'u'"), 700);

    /* No such run: refused, and none is created. */
    cli_refused(h_test_bin(), url, url,
                ARGS("run", "shape", "--key", "nosuch", "--restart-step", "a"), NULL,
                "run 'nosuch' of shape does not exist");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE run_key = 'nosuch'"), 0);
    cli_refused(h_test_bin(), url, url, ARGS("run", "shape", "--restart-step", "a"), NULL,
                "shape has no unfinished run");

    /* A failed run: refused too. */
    code = cli_run(h_test_bin(), url, ARGS("run", "fail", "--key", "f"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 1);
    cli_refused_row(_i, url, "f", ARGS("run", "fail", "--key", "f", "--restart-step", "boom"),
                    NULL, "run 'f' of fail is failed; --restart-step continues only");
}
END_TEST

/* ------------------------------------------- 6. fenced takeover between processes */

/*
 * Stop pid (SIGSTOP) at an instant where it holds no lock that would block
 * another process's run: between two transactions of its own.
 *
 * SQLite: a stopped process inside a step transaction holds the database's
 * write lock, and another process could never start. So the test takes the
 * write lock itself (BEGIN IMMEDIATE, retried without waiting until it gets
 * it between two of A's transactions), stops A while A can only be waiting
 * for that lock, then releases it. Deterministic: A is never stopped inside a
 * transaction.
 *
 * PostgreSQL: a stopped client inside a transaction holds the row lock on
 * rt_run only between its progress UPDATE and COMMIT. Stop A, wait until its
 * backend is idle, and check that the rt_run row is lockable (NOWAIT); if not,
 * let A run a moment and stop it again.
 */
static void cli_stop_between_transactions(int backend, const char *url, pid_t pid) {
    int status;
    if (backend == H_SQLITE) {
        sqlite3 *db = NULL;
        int rc = sqlite3_open_v2(url + 7, &db, SQLITE_OPEN_READWRITE, NULL);
        ck_assert_msg(rc == SQLITE_OK, "open %s: %s", url, sqlite3_errstr(rc));
        int64_t deadline = h_now_ms() + 20000;
        int64_t t0 = h_now_ms();
        long tries = 0;
        while ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK) {
            tries++;
            ck_assert_msg(rc == SQLITE_BUSY, "BEGIN IMMEDIATE: %s", sqlite3_errmsg(db));
            ck_assert_msg(h_now_ms() < deadline,
                          "could not take the write lock between two commits in 20 s");
        }
        cli_kill(pid, SIGSTOP);
        ck_assert_int_eq(waitpid(pid, &status, WUNTRACED), pid);
        ck_assert(WIFSTOPPED(status));
        if (getenv("CLI_DEBUG"))
            fprintf(stderr, "write lock after %ld tries, %lld ms\n", tries,
                    (long long)(h_now_ms() - t0));
        ck_assert_int_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        return;
    }
    for (int attempt = 0; attempt < 200; attempt++) {
        cli_kill(pid, SIGSTOP);
        ck_assert_int_eq(waitpid(pid, &status, WUNTRACED), pid);
        ck_assert(WIFSTOPPED(status));
        bool idle = h_await_int(url,
                                "SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END "
                                "FROM pg_stat_activity WHERE datname = current_database() "
                                "AND pid <> pg_backend_pid() AND state = 'active'",
                                1, 5000);
        if (idle && h_await_int(url,
                                "SELECT count(*) FROM (SELECT id FROM rt_run "
                                "FOR UPDATE NOWAIT) AS locked",
                                1, 0))
            return;
        cli_kill(pid, SIGCONT);
        cli_sleep_ms(cli_rand(1, 5));
    }
    ck_abort_msg("could not stop the process outside a transaction");
}

START_TEST(test_fenced_takeover) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    /* A short lease: a stopped holder is stalled, not dead (it still holds its
     * liveness lock), so B may take over only once its heartbeat is 1 s old. */
    const char *const argv[] = {"run", "rowcopy", "--key", "f", "--param", "rows=50000",
                                "--param", "item_us=40", "--chunk-items", "100",
                                "--lease-ttl", "1", "--if-running", "wait", NULL};
    pid_t a = h_spawn(h_bin(), url, argv, NULL);
    bool progressed = h_await_int(url, "SELECT coalesce(max(items), 0) FROM rt_run", 1, 20000);
    ck_assert_msg(progressed, "A made no committed progress; stderr:\n%s", h_stderr(a));
    cli_stop_between_transactions(_i, url, a);
    int64_t a_items = h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'f'");
    ck_assert_int_lt(a_items, 50000); /* A is stopped mid-copy */
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'f'"), 1);

    /* B takes the run over (epoch 2) and finishes it while A is stopped. */
    pid_t b;
    int code = cli_run(h_bin(), url, argv, NULL, 60000, &b);
    if (code != 0) kill(a, SIGKILL);
    EXPECT_EXIT(b, code, 0);
    cli_assert_contains(h_stderr(b), "\"event\":\"takeover\"");
    cli_assert_contains(h_stderr(b), "\"event\":\"resume\"");
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'f'"), 2);
    cli_assert_status(url, "rowcopy", "f", "done");
    h_assert_rowcopy_exact(url);

    /* A wakes up, works on, and finds at its next commit that it was fenced. */
    cli_kill(a, SIGCONT);
    code = h_wait(a, 30000);
    EXPECT_EXIT(a, code, 3);
    cli_assert_contains(h_stderr(a), "\"event\":\"lease_lost\"");
    cli_assert_lacks(h_stderr(a), "\"event\":\"done\"");
    /* Nothing of A's after the takeover was committed. */
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 50000);
    h_assert_rowcopy_report(url, "f", 50000);
    cli_assert_status(url, "rowcopy", "f", "done");
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'f'"), 2);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'f'"), 50000);
}
END_TEST

/* ----------------------------------------------------------- 7. a failing step */

START_TEST(test_fail_and_reset) {
    const char *url = h_db_new(_i);
    pid_t pid;
    int code = cli_run(h_test_bin(), url, ARGS("run", "fail", "--key", "x"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 1);
    cli_assert_contains(h_stderr(pid), "\"event\":\"failed\"");
    cli_assert_contains(h_stderr(pid), "boom: the disk of the imaginary upstream is on fire");
    /* Step ok committed; step boom's insert rolled back. */
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM fail_rows"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM fail_rows WHERE n = 1"), 1);
    cli_assert_status(url, "fail", "x", "failed");
    char *error = cli_text(url, "SELECT error FROM rt_run WHERE run_key = 'x'");
    cli_assert_contains(error, "boom");
    cli_assert_contains(error, "step boom");
    free(error);
    ck_assert_int_eq(h_query_int(url, "SELECT step_index FROM rt_run WHERE run_key = 'x'"), 1);

    /* status shows the failure and its message. */
    code = cli_run(h_test_bin(), url, ARGS("status", "--json"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stdout(pid), "\"status\":\"failed\"");
    cli_assert_contains(h_stdout(pid), "imaginary upstream");

    /* A failed key reports its error until reset; nothing runs. */
    code = cli_run(h_test_bin(), url, ARGS("run", "fail", "--key", "x"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 1);
    cli_assert_contains(h_stderr(pid), "\"event\":\"already_failed\"");
    cli_assert_contains(h_stderr(pid), "boom");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM fail_rows"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'x'"), 1);

    /* reset discards the run (not the work it committed). */
    code = cli_run(h_test_bin(), url, ARGS("reset", "fail", "--key", "x"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stdout(pid), "discarded");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE job = 'fail'"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM fail_rows"), 1);

    /* The key starts again from the first step (and fails again). */
    code = cli_run(h_test_bin(), url, ARGS("run", "fail", "--key", "x"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 1);
    cli_assert_contains(h_stderr(pid), "\"event\":\"start\"");
    cli_assert_lacks(h_stderr(pid), "already_failed");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM fail_rows WHERE n = 1"), 2);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM fail_rows WHERE n = 2"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT attempt FROM rt_run WHERE run_key = 'x'"), 1);
    cli_assert_status(url, "fail", "x", "failed");
}
END_TEST

/* -------------------------------------- 8. SIGKILL loops over other jobs */

/* Run argv under random SIGKILLs until it exits 0. Returns the kill count. */
static int cli_kill_until_done(const char *bin, const char *url, const char *const *argv) {
    int kills = 0;
    for (int iteration = 0; iteration < 200; iteration++) {
        pid_t pid = h_spawn(bin, url, argv, NULL);
        /* The window grows (to 1 s by the 100th kill, 4 s by the 200th)
         * so that even a slow start on a loaded machine cannot starve it. */
        cli_sleep_ms(cli_rand(0, 20 + iteration * iteration / 10));
        kill(pid, SIGKILL);
        int code = h_wait(pid, 30000);
        if (code == 0) {
            if (getenv("CLI_DEBUG")) fprintf(stderr, "%d kills\n", kills);
            return kills;
        }
        EXPECT_EXIT(pid, code, EXIT_SIGKILL);
        kills++;
    }
    ck_abort_msg("no run finished in 200 attempts (%d kills)", kills);
    return kills;
}

START_TEST(test_cursorbytes_sigkill) {
    const char *url = h_db_new(_i);
    int kills = cli_kill_until_done(
        h_test_bin(), url, ARGS("run", "cursorbytes", "--key", "cb", "--chunk-items", "1"));
    ck_assert_int_ge(kills, 1);
    cli_assert_status(url, "cursorbytes", "cb", "done");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM cb_rows"), 130);
    ck_assert_int_eq(h_query_int(url, "SELECT count(DISTINCT word) FROM cb_rows"), 130);
    cli_assert_text(url, "SELECT min(word) FROM cb_rows", "aaa");
    cli_assert_text(url, "SELECT max(word) FROM cb_rows", "aez");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM cb_rows WHERE length(word) <> 3 "
                                      "OR word < 'aaa' OR word > 'aez'"),
                     0);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'cb'"), 130);
}
END_TEST

START_TEST(test_aggregate_sigkill) {
    const char *url = h_db_new(_i);
    int kills = cli_kill_until_done(
        h_bin(), url, ARGS("run", "aggregate", "--key", "g", "--chunk-items", "1"));
    ck_assert_int_ge(kills, 1);
    cli_assert_status(url, "aggregate", "g", "done");
    h_assert_aggregate_exact(url, "g", 30, 1000);
}
END_TEST

/* ---------------------------------------------------------- 9. help, version */

START_TEST(test_help_version) {
    const char *url = h_db_new(H_SQLITE);
    pid_t pid;
    int code = cli_run(h_bin(), url, ARGS("--help"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stdout(pid), "usage: ratchet");
    cli_assert_contains(h_stdout(pid), "commands:");
    ck_assert_str_eq(h_stderr(pid), "");

    code = cli_run(h_bin(), url, ARGS("--version"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    const char *out = h_stdout(pid);
    ck_assert_msg(!strncmp(out, "ratchet " RT_VERSION, strlen("ratchet " RT_VERSION)),
                  "--version printed '%s'", out);
    ck_assert_int_eq(h_count_lines(out), 1);

    code = cli_run(h_bin(), url, ARGS("help", "run"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stdout(pid), "usage: ratchet [--db URL] run JOB");
    cli_assert_contains(h_stdout(pid), "--grace");
    cli_assert_contains(h_stdout(pid), "--restart-step NAME");

    code = cli_run(h_bin(), url, ARGS("run", "--help"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stdout(pid), "usage: ratchet [--db URL] run JOB");

    code = cli_run(h_bin(), url, ARGS("help"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stdout(pid), "usage: ratchet");

    code = cli_run(h_bin(), url, ARGS("help", "nosuchcommand"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 2);
    cli_assert_one_line(pid);
    cli_assert_contains(h_stderr(pid), "nosuchcommand");

    /* No command at all: usage on stderr, exit 2. */
    code = cli_run(h_bin(), url, NULL, NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 2);
    cli_assert_contains(h_stderr(pid), "usage: ratchet");

    code = cli_run(h_test_bin(), url, ARGS("jobs"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    cli_assert_contains(h_stdout(pid), "rowcopy");
    cli_assert_contains(h_stdout(pid), "cursorbytes");
    cli_assert_contains(h_stdout(pid), "param rows (int");

    /* None of these touched the database. */
    struct stat st;
    ck_assert_int_ne(stat(url + 7, &st), 0);
}
END_TEST

/* ------------------------------------------------ 10. --help, completion */

#define CLI_MAX_CMDS 32

/* The commands `ratchet --help` lists in its "commands:" section, but help. */
static int cli_help_commands(const char *url, char names[][32]) {
    pid_t pid;
    int code = cli_run(h_bin(), url, ARGS("--help"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    const char *p = strstr(h_stdout(pid), "\ncommands:\n");
    ck_assert_msg(p != NULL, "no 'commands:' in --help:\n%s", h_stdout(pid));
    int n = 0;
    for (p += strlen("\ncommands:\n"); !strncmp(p, "  ", 2);) {
        size_t k = strcspn(p + 2, " \n");
        if (p[2] != ' ' && !(k == 4 && !strncmp(p + 2, "help", 4))) {
            ck_assert(k > 0 && k < 32 && n < CLI_MAX_CMDS);
            memcpy(names[n], p + 2, k);
            names[n++][k] = '\0';
        }
        p = strchr(p, '\n');
        if (!p) break;
        p++;
    }
    static const char *const known[] = {
        "run",   "daemon", "enqueue", "worker", "status", "jobs",    "reset",
        "retry", "cancel", "history", "prune",  "wait",   "migrate", "completion"};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        int i = 0;
        while (i < n && strcmp(names[i], known[k])) i++;
        ck_assert_msg(i < n, "--help does not list '%s':\n%s", known[k], h_stdout(pid));
    }
    return n;
}

/*
 * Every command's help: `CMD --help`, `help CMD`, `--help CMD` and --help
 * after arguments that are wrong print the same usage on stdout and exit 0
 * without touching the database; and every flag that usage shows is one the
 * command takes (given alone it may lack its value, but it is never an
 * unknown option).
 */
START_TEST(test_help_every_command) {
    const char *url = h_db_new(H_SQLITE);
    char names[CLI_MAX_CMDS][32];
    int n = cli_help_commands(url, names);
    char bad_url[600];
    snprintf(bad_url, sizeof bad_url, "%.*s/missing/x.db", (int)(strlen(url) - 8), url);
    /* help itself: the program's usage, as --help prints it. */
    pid_t pid;
    int code = cli_run(h_bin(), url, ARGS("--help"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    char *top = strdup(h_stdout(pid));
    const char *const *helps[] = {ARGS("help"), ARGS("help", "help"), ARGS("help", "--help"),
                                  ARGS("-h")};
    for (size_t v = 0; v < sizeof helps / sizeof helps[0]; v++) {
        code = cli_run(h_bin(), url, helps[v], NULL, 30000, &pid);
        EXPECT_EXIT(pid, code, 0);
        ck_assert_msg(!strcmp(h_stdout(pid), top), "help variant %zu printed:\n%s", v,
                      h_stdout(pid));
    }
    free(top);
    for (int c = 0; c < n; c++) {
        const char *cmd = names[c];
        code = cli_run(h_bin(), url, ARGS(cmd, "--help"), NULL, 30000, &pid);
        EXPECT_EXIT(pid, code, 0);
        ck_assert_msg(!strcmp(h_stderr(pid), ""), "%s --help wrote on stderr:\n%s",
                      cmd, h_stderr(pid));
        char *usage = strdup(h_stdout(pid));
        ck_assert_msg(!strncmp(usage, "usage: ratchet ", 15), "%s --help:\n%s", cmd, usage);
        size_t first = strcspn(usage, "\n");
        char *at = strstr(usage, cmd);
        ck_assert_msg(at && (size_t)(at - usage) < first && at[-1] == ' ' &&
                          (at[strlen(cmd)] == ' ' || at[strlen(cmd)] == '\n'),
                      "%s --help does not name it in its first line:\n%s", cmd, usage);
        const char *const *variants[] = {
            ARGS("help", cmd),
            ARGS("--help", cmd),
            ARGS(cmd, "--no-such-flag", "extra", "--help"),
        };
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
            code = cli_run(h_bin(), url, variants[v], NULL, 30000, &pid);
            EXPECT_EXIT(pid, code, 0);
            ck_assert_msg(!strcmp(h_stdout(pid), usage),
                          "variant %zu of %s --help printed:\n%s", v, cmd, h_stdout(pid));
        }
        /* The flags the usage shows: in its synopsis (up to the first
         * empty line) and its option lines ("  --flag ..."). */
        bool synopsis = true;
        for (const char *line = usage; *line;) {
            size_t len = strcspn(line, "\n");
            if (len == 0) synopsis = false;
            for (size_t col = 0; (synopsis || !strncmp(line, "  --", 4)) && col + 2 < len;
                 col++) {
                const char *p = line + col;
                if (p[0] != '-' || p[1] != '-' || p[2] < 'a' || p[2] > 'z' ||
                    (col > 0 && p[-1] != ' ' && p[-1] != '[' && p[-1] != '('))
                    continue;
                char flag[40];
                size_t k = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz0123456789-") + 2;
                ck_assert(k < sizeof flag);
                memcpy(flag, p, k);
                flag[k] = '\0';
                col += k - 1;
                if (!strcmp(flag, "--help") || !strcmp(flag, "--version")) continue;
                code = cli_run(h_bin(), bad_url, ARGS(cmd, flag), NULL, 30000, &pid);
                ck_assert_msg(code == 1 || code == 2, "%s %s: exit %d\n%s", cmd, flag,
                              code, h_stderr(pid));
                ck_assert_msg(!strstr(h_stderr(pid), "unknown option"),
                              "%s --help shows %s but %s refuses it:\n%s", cmd, flag, cmd,
                              h_stderr(pid));
            }
            line += len + (line[len] == '\n');
        }
        free(usage);
    }
    struct stat st;
    ck_assert_int_ne(stat(url + 7, &st), 0); /* no command touched it */
}
END_TEST

/* Complete words (COMP_WORDS, the last one being completed) with function
 * fn of the script in file: " reply reply ... ", each word space-wrapped. */
static char *cli_complete(const char *file, const char *fn, const char *const *words) {
    const char *args[32];
    int n = 0;
    args[n++] = "bash";
    args[n++] = "-c";
    args[n++] = "source \"$1\" || exit 3; fn=$2; shift 2; COMP_WORDS=(\"$@\"); "
                "COMP_CWORD=$(($# - 1)); COMPREPLY=(); \"$fn\" || exit 4; "
                "for w in \"${COMPREPLY[@]}\"; do printf '%s\\n' \"$w\"; done";
    args[n++] = "bash";
    args[n++] = file;
    args[n++] = fn;
    for (int i = 0; words[i]; i++) {
        ck_assert(n < 31);
        args[n++] = words[i];
    }
    args[n] = NULL;
    pid_t pid;
    int code = cli_run("/usr/bin/env", NULL, args, NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    ck_assert_msg(!strcmp(h_stderr(pid), ""), "bash said:\n%s", h_stderr(pid));
    const char *out = h_stdout(pid);
    char *r = malloc(strlen(out) + 2);
    ck_assert(r != NULL);
    size_t k = 0;
    r[k++] = ' ';
    for (const char *p = out; *p; p++) {
        if (*p == '\n' && r[k - 1] == ' ') continue;
        r[k++] = *p == '\n' ? ' ' : *p;
    }
    if (r[k - 1] != ' ') r[k++] = ' ';
    r[k] = '\0';
    return r;
}

static void cli_assert_completes(const char *file, const char *fn,
                                 const char *const *words, const char *want) {
    char *got = cli_complete(file, fn, words);
    ck_assert_msg(!strcmp(got, want), "completing '%s ... %s': got '%s', want '%s'",
                  words[0], words[1] ? words[1] : "", got, want);
    free(got);
}

/* `BIN completion bash` into dir/name: valid bash, exit 0, nothing on stderr. */
static void cli_completion_script(const char *bin, const char *dir, const char *name,
                                  char *file, size_t len) {
    pid_t pid;
    int code = cli_run(bin, NULL, ARGS("completion", "bash"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 0);
    ck_assert_str_eq(h_stderr(pid), "");
    snprintf(file, len, "%s/%s", dir, name);
    FILE *f = fopen(file, "w");
    ck_assert_msg(f != NULL, "%s: %s", file, strerror(errno));
    ck_assert(fputs(h_stdout(pid), f) >= 0 && fclose(f) == 0);
    code = cli_run("/usr/bin/env", NULL, ARGS("bash", "-n", file), NULL, 30000, &pid);
    ck_assert_msg(code == 0, "bash -n %s: exit %d\n%s", file, code, h_stderr(pid));
}

START_TEST(test_completion_bash) {
    const char *url = h_db_new(H_SQLITE);
    char dir[512], file[600], test_file[600];
    snprintf(dir, sizeof dir, "%.*s", (int)(strlen(url) - 15), url + 7);
    cli_completion_script(h_bin(), dir, "ratchet.bash", file, sizeof file);

    cli_assert_completes(file, "_ratchet", ARGS("ratchet", "wo"), " worker ");
    cli_assert_completes(file, "_ratchet", ARGS("ratchet", "--db", "x.db", "sta"), " status ");
    cli_assert_completes(file, "_ratchet", ARGS("ratchet", "help", "wa"), " wait ");
    cli_assert_completes(file, "_ratchet", ARGS("ratchet", "run", "ro"), " rowcopy ");
    cli_assert_completes(file, "_ratchet", ARGS("ratchet", "run", "rowcopy", "ro"), " ");
    cli_assert_completes(file, "_ratchet", ARGS("ratchet", "run", "--if-running", ""),
                         " fail skip wait ");
    cli_assert_completes(file, "_ratchet", ARGS("ratchet", "status", "--limit", ""), " ");
    cli_assert_completes(file, "_ratchet", ARGS("ratchet", "completion", ""), " bash ");
    cli_assert_completes(file, "_ratchet", ARGS("ratchet", "worker", "--only", "fla"),
                         " flaky ");

    /* Every command --help lists, and help. */
    char names[CLI_MAX_CMDS][32];
    int n = cli_help_commands(url, names);
    char *all = cli_complete(file, "_ratchet", ARGS("ratchet", ""));
    for (int i = 0; i < n; i++) {
        char w[40] = " ";
        strcat(strcat(w, names[i]), " ");
        cli_assert_contains(all, w);
    }
    cli_assert_contains(all, " help ");
    free(all);

    /* run's flags, and only run's. */
    char *flags = cli_complete(file, "_ratchet", ARGS("ratchet", "run", "--"));
    static const char *const run_flags[] = {
        " --db ",       " --key ",        " --param ",     " --grace ",
        " --chunk-items ", " --chunk-ms ", " --if-running ", " --lease-ttl ",
        " --restart-step ", " --start-at ", " --help "};
    for (size_t i = 0; i < sizeof run_flags / sizeof run_flags[0]; i++)
        cli_assert_contains(flags, run_flags[i]);
    cli_assert_lacks(flags, " --concurrency ");
    cli_assert_lacks(flags, " --json ");
    cli_assert_lacks(flags, " --record-skip "); /* the daemon's, hidden */
    free(flags);
    flags = cli_complete(file, "_ratchet", ARGS("ratchet", "worker", "--"));
    cli_assert_contains(flags, " --concurrency ");
    cli_assert_contains(flags, " --workers ");
    cli_assert_contains(flags, " --only ");
    cli_assert_lacks(flags, " --key ");
    free(flags);

    /* Another binary over rt_main completes its own name and jobs. */
    cli_completion_script(h_test_bin(), dir, "ratchet-test.bash", test_file,
                          sizeof test_file);
    cli_assert_completes(test_file, "_ratchet_test", ARGS("ratchet-test", "run", "cursorb"),
                         " cursorbytes ");

    /* An unknown shell, or none: one line, exit 2. */
    pid_t pid;
    int code = cli_run(h_bin(), url, ARGS("completion", "zsh"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 2);
    cli_assert_one_line(pid);
    cli_assert_contains(h_stderr(pid), "unknown shell 'zsh'");
    ck_assert_str_eq(h_stdout(pid), "");
    code = cli_run(h_bin(), url, ARGS("completion"), NULL, 30000, &pid);
    EXPECT_EXIT(pid, code, 2);
    cli_assert_one_line(pid);
    cli_assert_contains(h_stderr(pid), "completion bash");
    struct stat st;
    ck_assert_int_ne(stat(url + 7, &st), 0);
}
END_TEST

/* ---------------------------------------------------------------- suite */

static void cli_add(Suite *s, const char *name, const TTest *fn, double timeout, bool loop) {
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout);
    if (loop) tcase_add_loop_test(tc, fn, 0, h_backends());
    else tcase_add_test(tc, fn);
    suite_add_tcase(s, tc);
}

Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    cli_add(s, "basic", test_basic_run, 60, true);
    cli_add(s, "sigkill", test_sigkill_loop, 120, true);
    cli_add(s, "reader", test_reader_sees_commits, 60, true);
    cli_add(s, "sigterm", test_sigterm_random, 60, true);
    cli_add(s, "sigterm_after_commit", test_sigterm_after_commit, 60, true);
    cli_add(s, "sigterm_migrating", test_sigterm_while_migrating, 60, true);
    cli_add(s, "sigterm_twice", test_sigterm_twice, 60, true);
    cli_add(s, "sigint", test_sigint, 60, true);
    cli_add(s, "no_key", test_no_key, 60, true);
    cli_add(s, "start_at", test_start_at, 60, true);
    cli_add(s, "loose_params", test_loose_params, 60, true);
    cli_add(s, "deadline", test_deadline, 60, true);
    cli_add(s, "bad_input", test_bad_input, 120, true);
    cli_add(s, "shape", test_shape_changes, 60, true);
    cli_add(s, "shape_restart", test_shape_restart_step, 60, true);
    cli_add(s, "fenced", test_fenced_takeover, 120, true);
    cli_add(s, "fail", test_fail_and_reset, 60, true);
    cli_add(s, "cursorbytes_sigkill", test_cursorbytes_sigkill, 120, true);
    cli_add(s, "aggregate_sigkill", test_aggregate_sigkill, 120, true);
    cli_add(s, "help", test_help_version, 30, false);
    cli_add(s, "help_all", test_help_every_command, 120, false);
    cli_add(s, "completion", test_completion_bash, 60, false);
    return s;
}
