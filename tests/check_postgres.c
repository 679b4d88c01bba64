/*
 * check_postgres.c — the postgres suite (framework/store/postgres.c): what
 * only PostgreSQL can do to a run: its session killed by the server, the
 * server restarted mid-run, a statement in flight cancelled on stop,
 * connection URLs that are malformed, unreachable or carry a password, the
 * session settings ratchet asks for, and pipelined statements (their errors,
 * what a failed one leaves, and a pipelined run under SIGKILL and resume).
 *
 * These tests need the server tests/run-tests.sh starts (RATCHET_TEST_PG);
 * with RATCHET_TEST_SKIP_PG=1 only the SQLite half of the loops runs: the
 * stop-cancels and the pipelined-run tests are loops over both backends.
 * The suite's parts: pooler (check_postgres_pooler.c: behind pgbouncer)
 * and wire (check_postgres_wire.c: faults on the wire, tcase pgproxy).
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "store/store.h"
#include "suites.h"

#define SECRET "s3cret-Pw-4711"

static const char *const rowcopy_slow[] = {
    "run", "rowcopy", "--key", "k", "--param", "rows=20000",
    "--param", "item_us=100", "--chunk-items", "200", NULL};

/* Kill ratchet's own sessions on url's database, as an operator would. */
static int64_t pg_terminate_ratchet(const char *url) {
    return h_query_int(url,
                       "SELECT count(pg_terminate_backend(pid)) FROM "
                       "pg_stat_activity WHERE datname = current_database() "
                       "AND application_name LIKE 'ratchet:%'");
}

static int count_of(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

START_TEST(test_pg_backend_terminated_mid_run) {
    const char *url = h_db_new(H_PG);
    pid_t pid = h_spawn(h_bin(), url, rowcopy_slow, NULL);
    /* Three times, each after more progress has been committed. */
    for (int k = 1; k <= 3; k++) {
        char sql[128];
        snprintf(sql, sizeof sql,
                 "SELECT items FROM rt_run WHERE job = 'rowcopy' AND items >= %d",
                 k * 3000);
        ck_assert_msg(h_await_int(url, sql, k * 3000, 30000),
                      "no progress before kill %d:\n%s", k, h_stderr(pid));
        ck_assert_int_ge(pg_terminate_ratchet(url), 1);
        int64_t deadline = h_now_ms() + 10000;
        while (count_of(h_stderr(pid), "\"db_reconnected\"") < k &&
               h_now_ms() < deadline)
            h_await_stderr(pid, "\"db_reconnected\"", 10);
        ck_assert_msg(count_of(h_stderr(pid), "\"db_reconnected\"") == k,
                      "no reconnect after kill %d:\n%s", k, h_stderr(pid));
    }
    int code = h_wait(pid, 60000);
    const char *err = h_stderr(pid);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, err);
    ck_assert_int_eq(count_of(err, "\"db_connection_lost\""), 3);
    ck_assert_int_eq(count_of(err, "\"db_reconnected\""), 3);
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run"), 1);
}
END_TEST

/* Its sessions killed while the run starts (failpoint: a pause inside the
 * transaction that takes the lease): a temporary failure, exit 75, and the
 * next start runs it. (It used to exit 1, as if the run had failed.) */
START_TEST(test_pg_terminated_at_start) {
    const char *url = h_db_new(H_PG);
    h_migrate(url);
    pid_t pid = h_spawn(h_hooks_bin(), url, rowcopy_slow,
                        ARGS("RATCHET_FAILPOINT=lease.acquire:sleep:3000"));
    ck_assert_msg(h_await_int(url,
                              "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                              "current_database() AND application_name LIKE 'ratchet:%' "
                              "AND state = 'idle in transaction'",
                              1, 20000),
                  "no lease transaction:\n%s", h_stderr(pid));
    ck_assert_int_ge(pg_terminate_ratchet(url), 1);
    int code = h_wait(pid, 30000);
    ck_assert_msg(code == 75, "exit %d:\n%s", code, h_stderr(pid));
    pid = h_spawn(h_bin(), url, rowcopy_slow, NULL);
    code = h_wait(pid, 60000);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, h_stderr(pid));
    h_assert_rowcopy_exact(url);
}
END_TEST

START_TEST(test_pg_server_restart_mid_run) {
    const char *url = h_db_new(H_PG);
    const char *server = getenv("RATCHET_TEST_PG_SERVER");
    const char *dir = getenv("RATCHET_TEST_PG_DIR");
    ck_assert(server && dir);
    pid_t pid = h_spawn(h_bin(), url, rowcopy_slow, NULL);
    ck_assert_msg(h_await_int(url, "SELECT items FROM rt_run", 3000, 30000),
                  "no progress:\n%s", h_stderr(pid));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' restart '%s'", server, dir);
    ck_assert_int_eq(system(cmd), 0);
    int code = h_wait(pid, 90000);
    const char *err = h_stderr(pid);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, err);
    ck_assert_msg(strstr(err, "\"db_connection_lost\"") &&
                      strstr(err, "\"db_reconnected\""),
                  "restart not noticed:\n%s", err);
    h_assert_rowcopy_exact(url);
}
END_TEST

/* SIGTERM while one SQL statement runs for a minute: the statement is
 * cancelled (PQcancel / sqlite3_interrupt) and the step rolls back. */
START_TEST(test_stop_cancels_statement_in_flight) {
    const char *url = h_db_new(_i);
    const char *argv[] = {"run", "longsql", "--key", "k", "--grace", "5", NULL};
    pid_t pid = h_spawn(h_test_bin(), url, argv, NULL);
    ck_assert_msg(h_await_stderr(pid, "long statement starts", 20000), "%s",
                  h_stderr(pid));
    if (_i == H_PG)
        ck_assert(h_await_int(url,
                              "SELECT count(*) FROM pg_stat_activity WHERE "
                              "datname = current_database() AND state = "
                              "'active' AND query LIKE 'SELECT pg_sleep%'",
                              1, 10000));
    int64_t t0 = h_now_ms();
    kill(pid, SIGTERM);
    int code = h_wait(pid, 20000);
    int64_t ms = h_now_ms() - t0;
    ck_assert_msg(code == 75, "exit %d:\n%s", code, h_stderr(pid));
    /* PostgreSQL: we saw the statement running, so the cancel must work
     * well inside the grace; SQLite: the interrupt may race the statement's
     * start, and then the 5 s deadline is the bound. */
    ck_assert_msg(ms < (_i == H_PG ? 2000 : 6500), "took %lld ms", (long long)ms);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE "
                                      "status = 'done'"),
                     0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM longsql_rows"), 0);
}
END_TEST

static void assert_one_line_no_secret(pid_t pid, int code, int want) {
    const char *err = h_stderr(pid);
    ck_assert_msg(code == want, "exit %d, want %d:\n%s", code, want, err);
    ck_assert_msg(h_count_lines(err) == 1, "want one line:\n%s", err);
    ck_assert_msg(!strstr(err, SECRET), "password shown:\n%s", err);
    ck_assert_msg(!strstr(h_stdout(pid), SECRET), "password shown:\n%s",
                  h_stdout(pid));
}

/*
 * Pipelining: statements sent without waiting go out with the next one
 * that waits, or with COMMIT. One that fails fails the transaction, whose
 * other statements are then not committed either, and the error names it.
 */
START_TEST(test_pg_pipelined_statements) {
    const char *url = h_db_new(H_PG);
    rt_store *s = NULL;
    char err[RT_ERRMSG_MAX];
    ck_assert_int_eq(rt__store_open(url, &s, err, sizeof err), RT_OK);
    ck_assert_int_eq(rt__store_exec(s, "CREATE TABLE t (id int PRIMARY KEY)",
                                    0, NULL, NULL), RT_OK);
    const char *ins = "INSERT INTO t (id) VALUES ($1)";
    /* A duplicate among three: nothing of the three is committed. */
    rt_value one = rt_int(1), two = rt_int(2);
    ck_assert_int_eq(rt__store_begin(s), RT_OK);
    ck_assert_int_eq(rt__store_exec_later(s, ins, 1, &one), RT_OK);
    ck_assert_int_eq(rt__store_exec_later(s, ins, 1, &one), RT_OK);
    ck_assert_int_eq(rt__store_exec_later(s, ins, 1, &two), RT_OK);
    int rc = rt__store_commit(s);
    ck_assert_int_eq(rc, RT_DBERR);
    ck_assert_msg(strstr(s->errmsg, "23505") &&
                      strstr(s->errmsg, "pipelined statement: INSERT INTO t"),
                  "%s", s->errmsg);
    rt__store_abort(s, rc);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM t"), 0);
    /* A statement that waits sees the ones sent before it. */
    ck_assert_int_eq(rt__store_begin(s), RT_OK);
    ck_assert_int_eq(rt__store_exec_later(s, ins, 1, &one), RT_OK);
    ck_assert_int_eq(rt__store_exec_later(s, ins, 1, &two), RT_OK);
    rt_stmt *st;
    ck_assert_int_eq(rt__store_query(s, "SELECT count(*) FROM t", 0, NULL, &st),
                     RT_ROW);
    ck_assert_int_eq(s->ops->column_int64(st, 0), 2);
    s->ops->reset(st);
    ck_assert_int_eq(rt__store_commit(s), RT_OK);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM t"), 2);
    /* Rolled back with statements still unread: none of them stays. */
    rt_value three = rt_int(3);
    ck_assert_int_eq(rt__store_begin(s), RT_OK);
    ck_assert_int_eq(rt__store_exec_later(s, ins, 1, &three), RT_OK);
    ck_assert_int_eq(rt__store_rollback(s), RT_OK);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM t"), 2);
    /* And the connection is fine afterwards. */
    ck_assert_int_eq(rt__store_begin(s), RT_OK);
    ck_assert_int_eq(rt__store_exec_later(s, ins, 1, &three), RT_OK);
    ck_assert_int_eq(rt__store_commit(s), RT_OK);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM t"), 3);
    rt__store_close(s);
}
END_TEST

/*
 * A statement's first use on a session sends its Parse with its execution,
 * in one round trip (a process's start runs a dozen statements once each).
 * A Parse that fails is the statement's own error — not reported as some
 * other "pipelined statement" — and leaves it unprepared, so it is parsed
 * again on its next use; in a transaction as outside one.
 */
START_TEST(test_pg_first_use_parse) {
    const char *url = h_db_new(H_PG);
    rt_store *s = NULL;
    char err[RT_ERRMSG_MAX];
    ck_assert_int_eq(rt__store_open(url, &s, err, sizeof err), RT_OK);
    const char *sel = "SELECT count(*) FROM later_t WHERE id > $1";
    rt_value zero = rt_int(0);
    rt_stmt *st;
    for (int in_tx = 0; in_tx < 2; in_tx++) {
        if (in_tx) ck_assert_int_eq(rt__store_begin(s), RT_OK);
        int rc = rt__store_query(s, sel, 1, &zero, &st);
        ck_assert_int_eq(rc, RT_DBERR);
        ck_assert_msg(strstr(s->errmsg, "42P01") && strstr(s->errmsg, "later_t") &&
                          !strstr(s->errmsg, "pipelined"),
                      "%s", s->errmsg);
        if (in_tx) rt__store_abort(s, rc);
    }
    ck_assert_int_eq(rt__store_exec(s, "CREATE TABLE later_t (id int)", 0, NULL, NULL),
                     RT_OK);
    for (int in_tx = 0; in_tx < 2; in_tx++) {
        if (in_tx) ck_assert_int_eq(rt__store_begin(s), RT_OK);
        ck_assert_msg(rt__store_query(s, sel, 1, &zero, &st) == RT_ROW, "%s",
                      s->errmsg);
        ck_assert_int_eq(s->ops->column_int64(st, 0), 0);
        s->ops->reset(st);
        if (in_tx) ck_assert_int_eq(rt__store_commit(s), RT_OK);
    }
    rt__store_close(s);
}
END_TEST

/*
 * A step's pipelined INSERT that breaks a key: the error surfaces at the
 * chunk's commit, names the item and the statement, the chunk rolls back
 * while the chunk before it stays, and the run fails (exit 1: a broken key
 * stays broken). On SQLite (a loop over both) the same statement fails at
 * once, with the same outcome.
 */
START_TEST(test_pipelined_error_names_item) {
    const char *url = h_db_new(_i);
    const char *argv[] = {"run", "pipefail", "--key", "k", "--chunk-items",
                          "100", NULL};
    pid_t pid = h_spawn(h_test_bin(), url, argv, NULL);
    int code = h_wait(pid, 30000);
    const char *err = h_stderr(pid);
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_msg(strstr(err, "pipe_rows"), "%s", err);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE job = 'pipefail' "
                                      "AND status = 'failed'"), 1);
    if (_i == H_PG)
        ck_assert_msg(strstr(err, "item 150, in pipelined statement: INSERT "
                                  "INTO pipe_rows"),
                      "%s", err);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM pipe_rows"), 100);
    ck_assert_int_eq(h_query_int(url, "SELECT max(n) FROM pipe_rows"), 100);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE job = "
                                      "'pipefail'"),
                     100);
}
END_TEST

/*
 * rowcopy with pipeline=true killed by SIGKILL three times mid-copy (a
 * chunk's INSERTs sent and unread, or its COMMIT in flight), and resumed
 * each time: what each kill left is the committed cursor's prefix, and the
 * finished copy equals its source exactly (no row lost, none twice). On
 * SQLite (a loop over both) rt_exec_later is rt_exec: the same must hold.
 */
START_TEST(test_pipelined_sigkill_resume) {
    const char *url = h_db_new(_i);
    const char *argv[] = {"run", "rowcopy", "--key", "pk", "--param",
                          "rows=20000", "--param", "pipeline=true", "--param",
                          "item_us=20", "--chunk-items", "500", NULL};
    int mid_copy = 0;
    for (int k = 1; k <= 3; k++) {
        pid_t pid = h_spawn(h_bin(), url, argv, NULL);
        /* The run row (and on SQLite the file) exists from here on. */
        ck_assert_msg(h_await_stderr(pid,
                                     k == 1 ? "\"event\":\"start\""
                                            : "\"event\":\"resume\"",
                                     30000),
                      "%s", h_stderr(pid));
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT items FROM rt_run WHERE job = 'rowcopy' AND "
                 "run_key = 'pk' AND items >= %d",
                 k * 4000);
        ck_assert_msg(h_await_int(url, sql, k * 4000, 30000),
                      "no progress before kill %d:\n%s", k, h_stderr(pid));
        /* Somewhere inside the next chunk (~10 ms of item_us alone). */
        struct timespec ts = {0, (long)(k * 3) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int code = h_wait(pid, 30000);
        EXPECT_EXIT(pid, code, EXIT_SIGKILL);
        mid_copy += h_rowcopy_consistent(url, "pk");
    }
    ck_assert_int_eq(mid_copy, 3);
    pid_t pid = h_spawn(h_bin(), url, argv, NULL);
    EXPECT_EXIT(pid, h_wait(pid, 60000), 0);
    ck_assert_msg(strstr(h_stderr(pid), "\"event\":\"resume\""), "%s",
                  h_stderr(pid));
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 20000);
    h_assert_rowcopy_report(url, "pk", 20000);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE "
                                      "run_key = 'pk'"),
                     20000);
}
END_TEST

START_TEST(test_pg_bad_urls) {
    static const struct {
        const char *url, *says;
        int code;
    } cases[] = {
        {"postgresql://bob:" SECRET "@[::1/db", "malformed", 2},
        {"host=/tmp passwrd=" SECRET, "passwrd", 2},
        {"postgres://bob:" SECRET "@127.0.0.1:1/db?sslmode=bogus", "sslmode", 2},
        {"postgresql://bob:" SECRET "@127.0.0.1:1/db", "port 1", 1},
        {"host=127.0.0.1 port=1 user=bob password='" SECRET "'", "127.0.0.1", 1},
    };
    const char *argv[] = {"run", "rowcopy", "--key", "k", NULL};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pid_t pid = h_spawn(h_bin(), cases[i].url, argv, NULL);
        int code = h_wait(pid, 30000);
        assert_one_line_no_secret(pid, code, cases[i].code);
        ck_assert_msg(strstr(h_stderr(pid), cases[i].says), "%s: %s",
                      cases[i].url, h_stderr(pid));
    }
}
END_TEST

/* A password in a working URL shows nowhere: logs, status, a reconnect. */
START_TEST(test_pg_password_never_shown) {
    const char *base = h_db_new(H_PG);
    char url[1024];
    snprintf(url, sizeof url, "%s password=%s", base, SECRET);
    pid_t pid = h_spawn(h_bin(), url, rowcopy_slow, NULL);
    ck_assert(h_await_int(base, "SELECT items FROM rt_run", 1000, 30000));
    pg_terminate_ratchet(base);
    int code = h_wait(pid, 60000);
    const char *err = h_stderr(pid);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, err);
    ck_assert(strstr(err, "db_reconnected"));
    ck_assert_msg(!strstr(err, SECRET), "%s", err);
    const char *status_argv[][4] = {{"status", NULL}, {"status", "--json", NULL},
                                    {"status", "rowcopy", NULL}};
    for (int i = 0; i < 3; i++) {
        pid = h_spawn(h_bin(), url, status_argv[i], NULL);
        ck_assert_int_eq(h_wait(pid, 30000), 0);
        ck_assert(strstr(h_stdout(pid), "rowcopy"));
        ck_assert(!strstr(h_stdout(pid), SECRET) && !strstr(h_stderr(pid), SECRET));
    }
    /* The server gone after start: the error names where, not the secret. */
    snprintf(url, sizeof url, "postgresql://postgres:%s@127.0.0.1:1/x", SECRET);
    pid = h_spawn(h_bin(), url, status_argv[0], NULL);
    assert_one_line_no_secret(pid, h_wait(pid, 30000), 1);
}
END_TEST

START_TEST(test_pg_session_settings) {
    const char *url = h_db_new(H_PG);
    const char *argv[] = {"run", "pgsettings", "--key", "k", NULL};
    pid_t pid = h_spawn(h_test_bin(), url, argv, NULL);
    ck_assert_msg(h_wait(pid, 30000) == 0, "%s", h_stderr(pid));
    static const char *const want[][2] = {
        {"application_name", "ratchet:pgsettings"},
        {"idle_in_transaction_session_timeout", "1min"},
        {"lock_timeout", "30s"},
        {"statement_timeout", "0"},
    };
    for (int i = 0; i < 4; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT value FROM pgset WHERE name = '%s'",
                 want[i][0]);
        char *got = h_query_text(url, sql);
        ck_assert_msg(got && !strcmp(got, want[i][1]), "%s = %s, want %s",
                      want[i][0], got ? got : "NULL", want[i][1]);
        free(got);
    }
    /* The URL's own settings win over ours. */
    const char *url2 = h_db_new(H_PG);
    char custom[1024];
    snprintf(custom, sizeof custom, "%s application_name=mine", url2);
    pid = h_spawn(h_test_bin(), custom, argv, NULL);
    ck_assert_msg(h_wait(pid, 30000) == 0, "%s", h_stderr(pid));
    char *got = h_query_text(url2, "SELECT value FROM pgset WHERE name = "
                                   "'application_name'");
    ck_assert_str_eq(got, "mine");
    free(got);
}
END_TEST

Suite *postgres_suite(void) {
    Suite *s = suite_create("postgres");
    TCase *tc = tcase_create("postgres");
    tcase_set_timeout(tc, 180);
    int n = h_backends();
    tcase_add_loop_test(tc, test_pg_backend_terminated_mid_run, H_PG, n);
    tcase_add_loop_test(tc, test_pg_terminated_at_start, H_PG, n);
    if (getenv("RATCHET_TEST_PG_DIR"))
        tcase_add_loop_test(tc, test_pg_server_restart_mid_run, H_PG, n);
    tcase_add_loop_test(tc, test_stop_cancels_statement_in_flight, 0, n);
    tcase_add_loop_test(tc, test_pg_pipelined_statements, H_PG, n);
    tcase_add_loop_test(tc, test_pg_first_use_parse, H_PG, n);
    tcase_add_loop_test(tc, test_pipelined_error_names_item, 0, n);
    tcase_add_loop_test(tc, test_pipelined_sigkill_resume, 0, n);
    tcase_add_loop_test(tc, test_pg_bad_urls, H_PG, n);
    tcase_add_loop_test(tc, test_pg_password_never_shown, H_PG, n);
    tcase_add_loop_test(tc, test_pg_session_settings, H_PG, n);
    suite_add_tcase(s, tc);
    return s;
}
