/*
 * check_runner.c — the runner (framework/core/runner.c) in process, with jobs
 * defined here: work and progress committed together, a fenced commit that
 * writes nothing, the raw connection inside the step's transaction, the
 * job's fingerprint, params and a resume whose params differ. Its parts:
 * runner_faults (check_runner_faults.c: failpoints at every begin, exec and
 * commit) and runner_errors (check_runner_errors.c: what a step's error
 * means, input checked before anything is stored).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <string.h>

#include "harness.h"
#include "service/service.h"
#include "suites.h"

/* What rt__runner_run came to: its exit code. */
static int runner_exit(rt_store *s, const rt_job *job, const rt__run_opts *o) {
    rt__run_out out;
    rt__runner_run(s, job, o, &out);
    return out.exit_code;
}

/* ---- the commit protocol, in process */

static int unit_calls;

/* Chunk k writes row k with cursor k; the 4th call fails. */
static int unit_chunks(rt_ctx *ctx) {
    unit_calls++;
    int64_t k = rt_cursor_int64(ctx) + 1;
    int rc = RT_EXEC(ctx, "INSERT INTO unit_rows (k) VALUES ($1)", rt_int(k));
    if (rc != RT_OK) return rc;
    rt_set_cursor_int64(ctx, k);
    rt_add_items(ctx, 1);
    if (k == 4) return rt_fail(ctx, "chunk 4 fails");
    return RT_MORE;
}

static int unit_setup(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE unit_rows (k BIGINT)", 0, NULL);
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step unit_chunk_steps[] = {{"setup", unit_setup}, {"chunks", unit_chunks}, {NULL, NULL}};
static const rt_job unit_chunk_job = {.name = "unitchunks", .steps = unit_chunk_steps};

START_TEST(test_commit_protocol_work_and_progress_together) {
    const char *url = h_db_new(_i);
    rt_store *s = h_store_migrated(url);
    rt__run_opts o = {.key = "k1"};
    unit_calls = 0;
    int code = runner_exit(s, &unit_chunk_job, &o);
    rt__store_close(s);
    ck_assert_int_eq(code, RT_EXIT_FAILED);
    ck_assert_int_eq(unit_calls, 4);
    /* Chunks 1-3 committed with their cursor; chunk 4 rolled back whole. */
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM unit_rows"), 3);
    ck_assert_int_eq(h_query_int(url, "SELECT max(k) FROM unit_rows"), 3);
    ck_assert_int_eq(h_query_int(url, "SELECT cursor_int FROM rt_run"), 3);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run"), 3);
    char *st = h_query_text(url, "SELECT status FROM rt_run");
    ck_assert_str_eq(st, "failed");
    free(st);
    char *err = h_query_text(url, "SELECT error FROM rt_run");
    ck_assert_ptr_nonnull(strstr(err, "chunk 4 fails"));
    free(err);
}
END_TEST

/* Moves the run's epoch on inside the step, as a takeover would. */
static int unit_stolen(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE stolen_rows (k BIGINT);"
                          "INSERT INTO stolen_rows (k) VALUES (1)", 0, NULL);
    if (rc == RT_OK)
        rc = RT_EXEC(ctx, "UPDATE rt_run SET epoch = epoch + 1 WHERE id = $1",
                     rt_int(rt_run_id(ctx)));
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step unit_stolen_steps[] = {{"stolen", unit_stolen}, {NULL, NULL}};
static const rt_job unit_stolen_job = {.name = "unitstolen", .steps = unit_stolen_steps};

START_TEST(test_fenced_commit_writes_nothing) {
    const char *url = h_db_new(_i);
    rt_store *s = h_store_migrated(url);
    rt__run_opts o = {.key = "k1"};
    int code = runner_exit(s, &unit_stolen_job, &o);
    rt__store_close(s);
    ck_assert_int_eq(code, RT_EXIT_HELD);
    /* The fenced transaction rolled back: no table, no rows, epoch as claimed. */
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT step_index FROM rt_run"), 0);
    bool exists = h_await_int(url, "SELECT count(*) + 1 FROM stolen_rows", 1, 0);
    ck_assert_msg(!exists, "stolen_rows must not exist after a fenced commit");
}
END_TEST

/* Writes through the raw connection, then fails: the write must be part of
 * the step's transaction and roll back with it (the step's first SQL, so
 * on PostgreSQL BEGIN and the commit's statements parsed ahead are still
 * queued when the step asks for the connection). */
static int unit_raw(rt_ctx *ctx) {
    const char *sql = "INSERT INTO unit_rows (k) VALUES (7)";
    bool ok = false;
    if (rt_pgconn(ctx)) {
        PGresult *res = PQexec(rt_pgconn(ctx), sql);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    } else {
        ok = sqlite3_exec(rt_sqlite3(ctx), sql, NULL, NULL, NULL) == SQLITE_OK;
    }
    return ok ? rt_fail(ctx, "raw write done, step fails") : rt_fail(ctx, "raw write failed");
}

static const rt_step unit_raw_steps[] = {{"setup", unit_setup}, {"raw", unit_raw}, {NULL, NULL}};
static const rt_job unit_raw_job = {.name = "unitraw", .steps = unit_raw_steps};

START_TEST(test_raw_connection_in_step_transaction) {
    const char *url = h_db_new(_i);
    rt_store *s = h_store_migrated(url);
    rt__run_opts o = {.key = "k1"};
    int code = runner_exit(s, &unit_raw_job, &o);
    rt__store_close(s);
    ck_assert_int_eq(code, RT_EXIT_FAILED);
    char *err = h_query_text(url, "SELECT error FROM rt_run");
    ck_assert_msg(strstr(err, "raw write done"), "error: %s", err);
    free(err);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM unit_rows"), 0);
}
END_TEST

static const rt_step unit_shape_a[] = {{"a", unit_setup}, {"b", unit_setup}, {NULL, NULL}};
static const rt_step unit_shape_b[] = {{"a", unit_setup}, {"z", unit_setup}, {NULL, NULL}};

START_TEST(test_fingerprint) {
    rt_job a = {.name = "j", .steps = unit_shape_a}, b = {.name = "j", .steps = unit_shape_b};
    char fa[17], fb[17], fa2[17];
    rt__job_fingerprint(&a, fa);
    rt__job_fingerprint(&b, fb);
    rt__job_fingerprint(&a, fa2);
    ck_assert_str_eq(fa, fa2);
    ck_assert_str_ne(fa, fb);
    char *t = rt__job_steps_text(&a);
    ck_assert_str_eq(t, "a\nb");
    free(t);
}
END_TEST

static int unit_params_step(rt_ctx *ctx) {
    int64_t n;
    double d;
    bool b;
    ck_assert_int_eq(rt_param_int64(ctx, "n", 1, &n), RT_OK);
    ck_assert_int_eq(n, 41);
    ck_assert_int_eq(rt_param_double(ctx, "d", 0, &d), RT_OK);
    ck_assert(d == 0.5); /* declared default */
    ck_assert_int_eq(rt_param_bool(ctx, "missing", true, &b), RT_OK);
    ck_assert(b);
    ck_assert_str_eq(rt_param(ctx, "s", "x"), "hello");
    ck_assert_int_eq(rt_param_int64(ctx, "s", 0, &n), RT_INVALID);
    ck_assert_ptr_nonnull(strstr(rt_errmsg(ctx), "param s"));
    return RT_DONE;
}

static const rt_step unit_params_steps[] = {{"p", unit_params_step}, {NULL, NULL}};
static const rt_param_def unit_params_defs[] = {
    {"n", RT_PARAM_INT, "5", NULL}, {"d", RT_PARAM_REAL, "0.5", NULL},
    {"s", RT_PARAM_TEXT, NULL, NULL}, {NULL, 0, NULL, NULL}};
static const rt_job unit_params_job = {.name = "unitparams", .steps = unit_params_steps,
                                       .params = unit_params_defs};

START_TEST(test_params_and_resume_mismatch) {
    const char *url = h_db_new(_i);
    rt_store *s = h_store_migrated(url);
    rt__run_opts o = {.key = "k1"};
    rt__params_set(&o.params, "n", "41");
    rt__params_set(&o.params, "s", "hello");
    ck_assert_int_eq(runner_exit(s, &unit_params_job, &o), RT_EXIT_OK);
    /* The same key with other params is refused, and nothing changes. */
    int64_t updated = h_query_int(url, "SELECT updated_ms FROM rt_run");
    rt__params_set(&o.params, "n", "42");
    ck_assert_int_eq(runner_exit(s, &unit_params_job, &o), RT_EXIT_USAGE);
    ck_assert_int_eq(h_query_int(url, "SELECT updated_ms FROM rt_run"), updated);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_param"), 2);
    rt__params_free(&o.params);
    rt__store_close(s);
}
END_TEST

Suite *runner_suite(void) {
    Suite *su = suite_create("runner");
    TCase *tc = tcase_create("parts");
    tcase_add_test(tc, test_fingerprint);
    suite_add_tcase(su, tc);
    TCase *db = tcase_create("database");
    tcase_set_timeout(db, 30);
    tcase_add_loop_test(db, test_commit_protocol_work_and_progress_together, 0, h_backends());
    tcase_add_loop_test(db, test_fenced_commit_writes_nothing, 0, h_backends());
    tcase_add_loop_test(db, test_raw_connection_in_step_transaction, 0, h_backends());
    tcase_add_loop_test(db, test_params_and_resume_mismatch, 0, h_backends());
    suite_add_tcase(su, db);
    return su;
}
