/*
 * check_ops.c — the operator's commands (issue 6) through the real binaries:
 * `cancel` of a running run (it stops at its next item, keeping exactly
 * the committed items) and of pending, interrupted and orphaned runs;
 * `retry` resuming a cancelled run to an exact copy; refusals (bad RUN, a
 * run in the wrong state) that exit 2 with one line and leave the database
 * as it was; `history` as a table and as JSON; `prune` of old finished runs
 * only, with their params; the same through ratchet.h's calls (rt_db,
 * rt_retry_run, rt_list_runs, ...). Loop tests over both backends (_i).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "harness.h"
#include "ratchet.h"
#include "suites.h"

#define EVENT(name) "\"event\":\"" name "\""

/* Run ratchet (or the test binary) to its end; *pid for its output. */
static int ops_cmd(const char *bin, const char *url, const char *const *argv,
                   pid_t *pid) {
    *pid = h_spawn(bin, url, argv, NULL);
    return h_wait(*pid, 120000);
}

/* Exit 0 and one line on stdout that contains want. */
static void ops_ok(const char *url, const char *const *argv, const char *want) {
    pid_t p;
    EXPECT_EXIT(p, ops_cmd(h_bin(), url, argv, &p), 0);
    ck_assert_msg(h_count_lines(h_stdout(p)) == 1 && strstr(h_stdout(p), want),
                  "want one line with '%s' on stdout, got:\n%s", want,
                  h_stdout(p));
}

/* Exit 2, exactly one line on stderr (naming want), nothing on stdout. */
static void ops_refused(const char *url, const char *const *argv,
                        const char *want) {
    pid_t p;
    EXPECT_EXIT(p, ops_cmd(h_bin(), url, argv, &p), 2);
    const char *err = h_stderr(p);
    ck_assert_msg(h_count_lines(err) == 1 && strstr(err, want),
                  "want one line with '%s' on stderr, got:\n%s", want, err);
    ck_assert_str_eq(h_stdout(p), "");
}

static int64_t ops_int(const char *url, const char *what, const char *key) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM rt_run WHERE run_key = '%s'", what,
             key);
    return h_query_int(url, sql);
}

static void ops_assert_status(const char *url, const char *key, const char *want) {
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT status FROM rt_run WHERE run_key = '%s'", key);
    char *got = h_query_text(url, sql);
    ck_assert_msg(got && !strcmp(got, want), "run '%s' is %s, want %s", key,
                  got ? got : "NULL", want);
    free(got);
}

/* Everything a command could change in rt_run and rt_param, as one number. */
static int64_t ops_digest(const char *url) {
    return h_query_int(url,
                       "SELECT count(*) * 1000003 + sum(epoch) * 101 + "
                       "sum(attempt) * 103 + sum(cancel_requested) * 107 + "
                       "sum(length(status)) * 109 + "
                       "sum(length(coalesce(error, ''))) * 113 + "
                       "sum(updated_ms) + sum(coalesce(finished_ms, 7)) + "
                       "sum(coalesce(run_at_ms, 11)) + "
                       "(SELECT count(*) FROM rt_param) * 127 FROM rt_run");
}

/* A rowcopy run under way on a fresh run key; its pid. */
static pid_t ops_start_rowcopy(const char *url, const char *key) {
    pid_t p = h_spawn(h_bin(), url,
                      ARGS("run", "rowcopy", "--key", key, "--param", "rows=200000",
                           "--param", "item_us=50"),
                      NULL);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT items FROM rt_run WHERE run_key = '%s'", key);
    ck_assert_msg(h_await_int(url, sql, 1, 30000), "no commit; stderr:\n%s",
                  h_stderr(p));
    return p;
}

/* ------------------- cancel a running run, then retry it to the end */

START_TEST(test_cancel_running_then_retry) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t run = ops_start_rowcopy(url, "c");
    ops_ok(url, ARGS("cancel", "rowcopy/c"), "cancel requested: run 1 (rowcopy/c)");
    EXPECT_EXIT(run, h_wait(run, 60000), 0);
    ck_assert_msg(strstr(h_stderr(run), EVENT("cancelled")), "%s", h_stderr(run));
    ck_assert(!strstr(h_stderr(run), "\"level\":\"error\""));
    ops_assert_status(url, "c", "cancelled");
    char *error = h_query_text(url, "SELECT error FROM rt_run");
    ck_assert_str_eq(error, "cancelled by operator");
    free(error);
    ck_assert_int_gt(ops_int(url, "finished_ms", "c"), 0);

    /* Exactly the committed items are in the table, each once. */
    int64_t items = ops_int(url, "items", "c");
    ck_assert_int_gt(items, 0);
    ck_assert_int_lt(items, 200000);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), items);
    ck_assert_int_eq(h_query_int(url, "SELECT count(DISTINCT id) FROM rowcopy_dst"),
                     items);

    /* `run` does not resume a cancelled run; a second cancel is refused. */
    pid_t p;
    EXPECT_EXIT(p, ops_cmd(h_bin(), url, ARGS("run", "rowcopy", "--key", "c"), &p), 0);
    ck_assert_msg(strstr(h_stderr(p), EVENT("already_cancelled")), "%s", h_stderr(p));
    ck_assert_int_eq(ops_int(url, "items", "c"), items);
    ops_refused(url, ARGS("cancel", "1"), "run 1 (rowcopy/c) is cancelled");

    /* retry: pending again, its progress kept. */
    ops_ok(url, ARGS("retry", "1"), "run 1 (rowcopy/c) is pending again at step 2/3");
    ops_assert_status(url, "c", "pending");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE error IS "
                                      "NULL AND finished_ms IS NULL AND attempt = 0 "
                                      "AND cancel_requested = 0 AND step_index = 1"),
                     1);
    ck_assert_int_eq(ops_int(url, "items", "c"), items);

    /* `run` resumes where the cancel stopped it and finishes exactly. */
    EXPECT_EXIT(p, ops_cmd(h_bin(), url, ARGS("run", "rowcopy", "--key", "c"), &p), 0);
    ck_assert_msg(strstr(h_stderr(p), EVENT("resume")), "%s", h_stderr(p));
    ops_assert_status(url, "c", "done");
    ck_assert_int_eq(ops_int(url, "items", "c"), 200000);
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 200000);
}
END_TEST

/*
 * Cancel inside a long chunk: the run stops at its next item, within about
 * a second (its heartbeat thread watches the flag), not at the chunk's end;
 * the items done so far commit, each once. PostgreSQL only: on SQLite the
 * chunk's transaction holds the single write lock, so `cancel` itself waits
 * for the chunk's commit (chunks last 1 s by default).
 */
START_TEST(test_cancel_mid_chunk) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    /* One chunk of 10,000 items of 1 ms: 10 s unless cut short. */
    pid_t run = h_spawn(h_bin(), url,
                        ARGS("run", "rowcopy", "--key", "m", "--param",
                             "rows=10000", "--param", "item_us=1000",
                             "--chunk-items", "0", "--chunk-ms", "0"),
                        NULL);
    ck_assert_msg(h_await_int(url, "SELECT step_index FROM rt_run WHERE "
                                   "run_key = 'm'", 1, 30000),
                  "the copy step did not start:\n%s", h_stderr(run));
    int64_t asked = h_now_ms();
    ops_ok(url, ARGS("cancel", "rowcopy/m"), "cancel requested: run 1 (rowcopy/m)");
    EXPECT_EXIT(run, h_wait(run, 30000), 0);
    int64_t took = h_now_ms() - asked;
    ck_assert_msg(took < 4000, "the cancel took %lld ms:\n%s", (long long)took,
                  h_stderr(run));
    ck_assert_msg(strstr(h_stderr(run), EVENT("cancelled")), "%s", h_stderr(run));
    ops_assert_status(url, "m", "cancelled");
    int64_t items = ops_int(url, "items", "m");
    ck_assert_int_gt(items, 0);
    ck_assert_int_lt(items, 10000);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), items);
    ck_assert_int_eq(h_query_int(url, "SELECT count(DISTINCT id) FROM rowcopy_dst"),
                     items);
}
END_TEST

/*
 * A cancel asked of a run whose atomic step is in one long statement, then
 * a stop: the step rolls back with nothing to commit, and the stop ends
 * the run 'cancelled' — the request answered — not 'interrupted' with the
 * request left standing, where no worker would ever claim it again (a
 * queued run) and it read as resumable. PostgreSQL only: on SQLite the
 * step's transaction holds the write lock the cancel's write waits for.
 */
START_TEST(test_cancel_then_stop) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t run = h_spawn(h_test_bin(), url, ARGS("run", "longsql", "--key", "s", "--grace", "10"),
                        NULL);
    ck_assert_msg(h_await_stderr(run, "long statement starts", 30000), "%s", h_stderr(run));
    ops_ok(url, ARGS("cancel", "longsql/s"), "cancel requested: run 1 (longsql/s)");
    kill(run, SIGTERM);
    EXPECT_EXIT(run, h_wait(run, 30000), 0);
    ck_assert_msg(strstr(h_stderr(run), EVENT("cancelled")), "%s", h_stderr(run));
    ops_assert_status(url, "s", "cancelled");
    char *error = h_query_text(url, "SELECT error FROM rt_run");
    ck_assert_str_eq(error, "cancelled by operator");
    free(error);
    ck_assert_int_gt(ops_int(url, "finished_ms", "s"), 0);
    /* The long step rolled back: only the setup step's work is there. */
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM longsql_rows"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_lease"), 0);
}
END_TEST

/* ------------------------- cancel pending, interrupted, orphaned runs */

START_TEST(test_cancel_not_running) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t p;

    /* Pending (queued): cancelled at once; retry hands it back to workers. */
    EXPECT_EXIT(p, ops_cmd(h_bin(), url, ARGS("enqueue", "rowcopy", "--key", "p",
                                              "--param", "rows=100"), &p), 0);
    int64_t epoch = ops_int(url, "epoch", "p");
    ops_ok(url, ARGS("cancel", "rowcopy/p"), "cancelled run 1 (rowcopy/p): it was pending");
    /* Waiting on it ends at once: it was cancelled. */
    pid_t w = h_spawn(h_bin(), url, ARGS("wait", "rowcopy", "--key", "p", "--timeout", "5"),
                      NULL);
    EXPECT_EXIT(w, h_wait(w, 10000), 1);
    ck_assert_msg(strstr(h_stderr(w), "was cancelled"), "%s", h_stderr(w));
    ops_assert_status(url, "p", "cancelled");
    ck_assert_int_eq(ops_int(url, "epoch", "p"), epoch + 1);
    ck_assert_int_gt(ops_int(url, "finished_ms", "p"), 0);
    ops_ok(url, ARGS("retry", "rowcopy/p"), "a worker picks it up");
    ops_assert_status(url, "p", "pending");
    ck_assert_int_eq(ops_int(url, "queued", "p"), 1);

    /* Interrupted by SIGTERM: cancelled at once. */
    pid_t run = ops_start_rowcopy(url, "i");
    ck_assert_int_eq(kill(run, SIGTERM), 0);
    EXPECT_EXIT(run, h_wait(run, 30000), 75);
    int64_t items = ops_int(url, "items", "i");
    ops_ok(url, ARGS("cancel", "rowcopy/i"), "it was interrupted at step 2/3");
    ops_assert_status(url, "i", "cancelled");
    ck_assert_int_eq(ops_int(url, "items", "i"), items);

    /* SIGKILLed: still marked running, but nobody holds it. */
    run = ops_start_rowcopy(url, "k");
    ck_assert_int_eq(kill(run, SIGKILL), 0);
    EXPECT_EXIT(run, h_wait(run, 30000), EXIT_SIGKILL);
    ops_assert_status(url, "k", "running");
    /* PostgreSQL frees the dead session's lock a moment later; until then
     * the cancel is only requested. */
    for (int tries = 0; tries < 100; tries++) {
        EXPECT_EXIT(p, ops_cmd(h_bin(), url, ARGS("cancel", "rowcopy/k"), &p), 0);
        if (strstr(h_stdout(p), "its process is gone")) break;
        ck_assert_msg(strstr(h_stdout(p), "cancel requested"), "%s", h_stdout(p));
    }
    ck_assert_msg(strstr(h_stdout(p), "its process is gone"), "%s", h_stdout(p));
    ops_assert_status(url, "k", "cancelled");

    /* Asked while its holder was away: the next `run` ends it unworked. */
    run = ops_start_rowcopy(url, "a");
    ck_assert_int_eq(kill(run, SIGTERM), 0);
    EXPECT_EXIT(run, h_wait(run, 30000), 75);
    h_exec(url, "UPDATE rt_run SET cancel_requested = 1 WHERE run_key = 'a'");
    items = ops_int(url, "items", "a");
    EXPECT_EXIT(p, ops_cmd(h_bin(), url, ARGS("run", "rowcopy", "--key", "a"), &p), 0);
    ck_assert_msg(strstr(h_stderr(p), EVENT("cancelled")), "%s", h_stderr(p));
    ops_assert_status(url, "a", "cancelled");
    ck_assert_int_eq(ops_int(url, "items", "a"), items);
}
END_TEST

/* ------------------------------------- refusals leave the database alone */

START_TEST(test_refusals) {
    const char *url = h_db_new(_i);
    pid_t p;
    EXPECT_EXIT(p, ops_cmd(h_bin(), url, ARGS("run", "rowcopy", "--key", "d",
                                              "--param", "rows=100"), &p), 0);
    int64_t before = ops_digest(url);
    ops_refused(url, ARGS("retry", "rowcopy/d"),
                "run 1 (rowcopy/d) is done; only failed, cancelled or skipped");
    ops_refused(url, ARGS("retry", "1"), "is done");
    ops_refused(url, ARGS("cancel", "1"), "run 1 (rowcopy/d) is done");
    ops_refused(url, ARGS("cancel", "abc"), "RUN 'abc'");
    ops_refused(url, ARGS("retry", "/d"), "RUN '/d'");
    ops_refused(url, ARGS("cancel", "rowcopy/"), "RUN 'rowcopy/'");
    ops_refused(url, ARGS("retry", "0"), "RUN '0'");
    ops_refused(url, ARGS("cancel", "99"), "no run with id 99");
    ops_refused(url, ARGS("retry", "rowcopy/nokey"), "no run of job 'rowcopy' with key 'nokey'");
    ops_refused(url, ARGS("cancel", "nojob/d"), "no run of job 'nojob'");
    ops_refused(url, ARGS("retry"), "which run?");
    ops_refused(url, ARGS("cancel", "1", "2"), "unexpected argument '2'");
    ops_refused(url, ARGS("retry", "--bogus"), "unknown option '--bogus'");
    ck_assert_int_eq(ops_digest(url), before);
    ops_assert_status(url, "d", "done");
}
END_TEST

/* --------------------------------------------------------------- history */

/* A JSON document, parsed by SQLite's JSON functions: sql_fmt has one %s
 * where the document goes as a string literal. */
static int64_t ops_json_int(const char *json, const char *sql_fmt) {
    static const char *scratch;
    if (!scratch) {
        scratch = h_db_new(H_SQLITE);
        h_migrate(scratch); /* creates the file */
    }
    size_t n = strlen(json);
    char *lit = malloc(2 * n + 3), *q = lit;
    *q++ = '\'';
    for (const char *s = json; *s; s++) {
        if (*s == '\'') *q++ = '\'';
        *q++ = *s;
    }
    *q++ = '\'';
    *q = '\0';
    char *sql = malloc(strlen(sql_fmt) + strlen(lit) + 1);
    sprintf(sql, sql_fmt, lit);
    int64_t v = h_query_int(scratch, sql);
    free(sql);
    free(lit);
    return v;
}

/* Four runs: done, failed, cancelled (finished in that order), pending. */
static void ops_four_runs(const char *url, const char *prefix) {
    char key[64];
    pid_t p;
    snprintf(key, sizeof key, "%s-done", prefix);
    EXPECT_EXIT(p, ops_cmd(h_test_bin(), url, ARGS("run", "rowcopy", "--key", key,
                                                   "--param", "rows=100"), &p), 0);
    snprintf(key, sizeof key, "%s-failed", prefix);
    EXPECT_EXIT(p, ops_cmd(h_test_bin(), url, ARGS("run", "fail", "--key", key), &p), 1);
    snprintf(key, sizeof key, "%s-cancelled", prefix);
    EXPECT_EXIT(p, ops_cmd(h_test_bin(), url, ARGS("enqueue", "rowcopy", "--key", key,
                                                   "--param", "rows=100"), &p), 0);
    char run[80];
    snprintf(run, sizeof run, "rowcopy/%s", key);
    ops_ok(url, ARGS("cancel", run), "cancelled run");
    snprintf(key, sizeof key, "%s-pending", prefix);
    EXPECT_EXIT(p, ops_cmd(h_test_bin(), url, ARGS("enqueue", "rowcopy", "--key", key,
                                                   "--param", "rows=100"), &p), 0);
}

START_TEST(test_history) {
    const char *url = h_db_new(_i);
    ops_four_runs(url, "h");
    /* Finish times one second apart, whatever the clock's resolution. */
    h_exec(url, "UPDATE rt_run SET finished_ms = finished_ms + 1000 WHERE run_key = 'h-failed'");
    h_exec(url, "UPDATE rt_run SET finished_ms = finished_ms + 2000 WHERE run_key = 'h-cancelled'");

    pid_t p;
    EXPECT_EXIT(p, ops_cmd(h_bin(), url, ARGS("history"), &p), 0);
    const char *out = h_stdout(p);
    ck_assert_int_eq(h_count_lines(out), 4); /* header and three runs */
    ck_assert(!strstr(out, "h-pending"));
    const char *c = strstr(out, "h-cancelled"), *f = strstr(out, "h-failed"),
               *d = strstr(out, "h-done");
    ck_assert_msg(c && f && d && c < f && f < d, "not newest first:\n%s", out);
    ck_assert(strstr(out, "boom: the disk"));  /* the failed run's error */
    ck_assert(strstr(out, "cancelled by operator"));

    EXPECT_EXIT(p, ops_cmd(h_bin(), url, ARGS("history", "--json"), &p), 0);
    const char *json = h_stdout(p);
    ck_assert_int_eq(ops_json_int(json, "SELECT json_valid(%s)"), 1);
    ck_assert_int_eq(ops_json_int(json, "SELECT json_array_length(%s, '$.runs')"), 3);
    /* Every run has every member, with its type. */
    ck_assert_int_eq(
        ops_json_int(json,
                     "SELECT count(*) FROM json_each(%s, '$.runs') WHERE "
                     "json_type(value, '$.id') = 'integer' AND "
                     "json_type(value, '$.job') = 'text' AND "
                     "json_type(value, '$.key') = 'text' AND "
                     "json_type(value, '$.status') IN ('text') AND "
                     "json_type(value, '$.attempts') = 'integer' AND "
                     "json_type(value, '$.items') = 'integer' AND "
                     "json_type(value, '$.started') IN ('text', 'null') AND "
                     "json_type(value, '$.finished') = 'text' AND "
                     "json_type(value, '$.duration_ms') IN ('integer', 'null') AND "
                     "json_type(value, '$.error') IN ('text', 'null')"),
        3);
    ck_assert_int_eq(ops_json_int(json, "SELECT json_extract(%s, '$.runs[0].key') = "
                                        "'h-cancelled'"), 1);
    ck_assert_int_eq(ops_json_int(json, "SELECT json_extract(%s, '$.runs[2].items')"), 100);

    /* JOB and --limit narrow it; a bad --limit is refused. */
    EXPECT_EXIT(p, ops_cmd(h_bin(), url, ARGS("history", "fail", "--json"), &p), 0);
    ck_assert_int_eq(ops_json_int(h_stdout(p), "SELECT json_array_length(%s, '$.runs')"), 1);
    EXPECT_EXIT(p, ops_cmd(h_bin(), url, ARGS("history", "--limit", "1"), &p), 0);
    ck_assert_int_eq(h_count_lines(h_stdout(p)), 2);
    ck_assert(strstr(h_stdout(p), "h-cancelled"));
    ops_refused(url, ARGS("history", "--limit", "0"), "--limit takes a count");
}
END_TEST

/* ----------------------------------------------------------------- prune */

START_TEST(test_prune) {
    const char *url = h_db_new(_i);
    ops_four_runs(url, "old");
    ops_four_runs(url, "new");
    /* Forty days ago, unfinished runs included (they must stay anyway). */
    h_exec(url, "UPDATE rt_run SET created_ms = created_ms - 3456000000, "
                "updated_ms = updated_ms - 3456000000, finished_ms = "
                "finished_ms - 3456000000 WHERE run_key LIKE 'old-%'");
    h_exec(url, "UPDATE rt_run SET status = 'interrupted' WHERE run_key = 'old-pending'");
    int64_t before = ops_digest(url);
    ops_refused(url, ARGS("prune"), "--older-than DURATION is required");
    ops_refused(url, ARGS("prune", "--older-than", "30"), "got '30'");
    ops_refused(url, ARGS("prune", "--older-than", "1x"), "got '1x'");
    ops_refused(url, ARGS("prune", "--older-than", "-1d"), "got '-1d'");
    ops_refused(url, ARGS("prune", "--older-than", "d"), "got 'd'");
    ops_refused(url, ARGS("prune", "--older-than"), "needs a DURATION");
    ops_refused(url, ARGS("prune", "--older-than", "30d", "extra"), "unexpected argument");
    ck_assert_int_eq(ops_digest(url), before);

    ops_ok(url, ARGS("prune", "--older-than", "30d"), "pruned 3 finished runs");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 5);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE run_key "
                                      "LIKE 'old-%'"), 1);
    ops_assert_status(url, "old-pending", "interrupted");
    /* The deleted runs' params went with them; the others' stayed. */
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_param WHERE run_id "
                                      "NOT IN (SELECT id FROM rt_run)"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_param p JOIN rt_run r "
                                      "ON r.id = p.run_id WHERE r.run_key IN "
                                      "('old-pending', 'new-done', 'new-pending')"), 3);
    ops_ok(url, ARGS("prune", "--older-than", "12h"), "pruned 0 finished runs");
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 5);
}
END_TEST

/* The operator's calls of ratchet.h on a handle (rt_db), as an embedder
 * or an HTTP API would use them: the same outcomes as the commands, the
 * exit codes of the one table, and a failed open's handle. */
static int api_step(rt_ctx *ctx) {
    (void)ctx;
    return RT_DONE;
}
static const rt_step api_steps[] = {{"only", api_step}, {NULL, NULL}};
static const rt_job api_job = {.name = "apijob", .steps = api_steps};
static const rt_job *const api_jobs[] = {&api_job, NULL};

START_TEST(test_api) {
    const char *url = h_db_new(_i);
    char err[1024], msg[1024], *text = NULL;
    rt_db *db = NULL;
    ck_assert_int_eq(rt_db_open(url, &db, err, sizeof err), RT_OK);
    int from = -1, to = -1, latest = -1;
    rt_db_schema(db, &from, &to, &latest);
    ck_assert_int_eq(to, latest);
    ck_assert_int_gt(latest, 0);
    ck_assert_int_eq(rt_exit_code(db, RT_OK), RT_EXIT_OK);
    ck_assert_int_eq(rt_exit_code(db, RT_HELD), RT_EXIT_HELD);
    ck_assert_int_eq(rt_exit_code(db, RT_TIMEOUT), RT_EXIT_TIMEOUT);

    ck_assert_int_eq(rt_run_name_check("apijob/k1", err, sizeof err), RT_OK);
    ck_assert_int_eq(rt_run_name_check("zz", err, sizeof err), RT_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "JOB/KEY"));
    ck_assert_int_eq(rt_retry_run(db, api_jobs, "zz", msg, sizeof msg), RT_INVALID);
    ck_assert_int_eq(rt_retry_run(db, api_jobs, "999", msg, sizeof msg), RT_NOTFOUND);
    ck_assert_int_eq(rt_exit_code(db, RT_NOTFOUND), RT_EXIT_USAGE);

    rt_enqueue_opts eo = {.key = "k1"};
    ck_assert_int_eq(rt_enqueue(url, &api_job, &eo, NULL, 0, NULL, err, sizeof err), RT_OK);
    /* pending: retry refuses, cancel cancels, then retry makes it pending */
    ck_assert_int_eq(rt_retry_run(db, api_jobs, "apijob/k1", msg, sizeof msg),
                     RT_INVALID);
    ck_assert_ptr_nonnull(strstr(rt_db_errmsg(db), "pending"));
    ck_assert_int_eq(rt_cancel_run(db, api_jobs, "apijob/k1", msg, sizeof msg), RT_OK);
    ck_assert_ptr_nonnull(strstr(msg, "cancelled"));
    ops_assert_status(url, "k1", "cancelled");
    rt_run_row *rows = NULL;
    size_t n = 0;
    ck_assert_int_eq(rt_list_runs(db, "apijob", 0, true, &rows, &n), RT_OK);
    ck_assert_int_eq((int)n, 1);
    ck_assert_str_eq(rows[0].key, "k1");
    ck_assert_str_eq(rows[0].status, "cancelled");
    ck_assert_int_eq(rows[0].steps, 1);
    ck_assert_int_ge(rows[0].finished_ms, rows[0].created_ms);
    rt_free_runs(rows, n);
    ck_assert_int_eq(rt_list_runs(db, "otherjob", 10, false, &rows, &n), RT_OK);
    ck_assert_int_eq((int)n, 0);
    rt_free_runs(rows, n);
    ck_assert_int_eq(rt_retry_run(db, api_jobs, "apijob/k1", msg, sizeof msg), RT_OK);
    ck_assert_int_eq(rt_list_runs(db, NULL, 1, false, &rows, &n), RT_OK);
    ck_assert_int_eq((int)n, 1);
    ck_assert_str_eq(rows[0].status, "pending");
    ck_assert_ptr_null(rows[0].holder);
    rt_free_runs(rows, n);
    ops_assert_status(url, "k1", "pending");

    ck_assert_int_eq(rt_metrics_text(db, &text), RT_OK);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE ratchet_runs gauge"));
    rt_free(text);

    rt_reset_info was;
    ck_assert_int_eq(rt_reset_run(db, "apijob", "k1", false, &was), RT_OK);
    ck_assert_str_eq(was.status, "pending");
    ck_assert_int_eq(was.step, 1);
    ck_assert_int_eq(rt_reset_run(db, "apijob", "k1", false, &was), RT_NOTFOUND);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 0);
    int64_t deleted = -1;
    ck_assert_int_eq(rt_prune_runs(db, 1000, &deleted), RT_OK);
    ck_assert_int_eq(deleted, 0);
    rt_db_close(db);

    /* A failed open: a handle that says why and what exit it means. */
    int rc = rt_db_open("nosuchscheme:x", &db, err, sizeof err);
    ck_assert_int_ne(rc, RT_OK);
    ck_assert_ptr_nonnull(db);
    ck_assert_str_eq(rt_db_errmsg(db), err);
    ck_assert_int_eq(rt_exit_code(db, rc), RT_EXIT_USAGE);
    ck_assert_int_eq(rt_prune_runs(db, 1000, &deleted), RT_MISUSE);
    rt_db_close(db);
    rt_db_close(NULL);
}
END_TEST

Suite *ops_suite(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 240);
    int n = h_backends();
    tcase_add_loop_test(tc, test_cancel_running_then_retry, 0, n);
    tcase_add_loop_test(tc, test_cancel_mid_chunk, H_PG, n);
    tcase_add_loop_test(tc, test_cancel_then_stop, H_PG, n);
    tcase_add_loop_test(tc, test_cancel_not_running, 0, n);
    tcase_add_loop_test(tc, test_refusals, 0, n);
    tcase_add_loop_test(tc, test_history, 0, n);
    tcase_add_loop_test(tc, test_prune, 0, n);
    tcase_add_loop_test(tc, test_api, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
