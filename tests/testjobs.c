/*
 * testjobs.c — build/ratchet-test: the example jobs plus jobs that only tests
 * need (a step that hangs, a job whose definition changes, a failing step, a
 * byte cursor, a pipelined statement that fails, a step that logs when its
 * body begins and ends, a step that breaks a UNIQUE key). It is a real
 * rt_main() program, like a user's.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs.h"

static bool testjobs_env(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && !strcmp(v, value);
}

/* Insert 1..rows into table, one row per item, cursor = last n. */
static int testjobs_fill(rt_ctx *ctx, const char *insert_sql, int64_t rows) {
    for (int64_t n = rt_cursor_int64(ctx) + 1; n <= rows; n++) {
        if (!rt_continue(ctx)) return RT_MORE;
        int rc = rt_exec(ctx, insert_sql, 1, (rt_value[]){rt_int(n)});
        if (rc != RT_OK) return rc;
        rt_set_cursor_int64(ctx, n);
        rt_add_items(ctx, 1);
    }
    return RT_DONE;
}

/* ---- hang: work (chunked), stall (spins ignoring stops when asked), finish */

static int hang_work(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS hang_rows (n BIGINT)", 0, NULL);
    return rc == RT_OK ? testjobs_fill(ctx, "INSERT INTO hang_rows (n) VALUES ($1)", 500)
                       : rc;
}

static int hang_stall(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS hang_mark (n BIGINT)", 0, NULL);
    if (rc == RT_OK) rc = rt_exec(ctx, "INSERT INTO hang_mark (n) VALUES (1)", 0, NULL);
    if (rc != RT_OK) return rc;
    if (testjobs_env("RATCHET_TEST_HANG", "1")) {
        rt_log(ctx, RT_LOG_INFO, "stalling");
        for (volatile unsigned long spin = 0;; spin++) {
        } /* ignores the stop flag: only the deadline ends this */
    }
    return RT_DONE;
}

static int hang_finish(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS hang_done (n BIGINT)", 0, NULL);
    if (rc == RT_OK) rc = rt_exec(ctx, "INSERT INTO hang_done (n) VALUES (1)", 0, NULL);
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step hang_steps[] = {
    {"work", hang_work}, {"stall", hang_stall}, {"finish", hang_finish}, {NULL, NULL}};

static const rt_job hang_job = {.name = "hang", .steps = hang_steps};

/* ---- shape: the step list depends on RATCHET_TEST_SHAPE */

static int shape_step(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS shape_log (step TEXT, n BIGINT)", 0, NULL);
    if (rc != RT_OK) return rc;
    for (int64_t n = rt_cursor_int64(ctx) + 1; n <= 200; n++) {
        if (!rt_continue(ctx)) return RT_MORE;
        rc = RT_EXEC(ctx, "INSERT INTO shape_log (step, n) VALUES ($1, $2)",
                     rt_text(rt_step_name(ctx)), rt_int(n));
        if (rc != RT_OK) return rc;
        rt_set_cursor_int64(ctx, n);
        rt_add_items(ctx, 1);
        /* Stop after step b's first chunk when asked, like a SIGTERM would. */
        if (testjobs_env("RATCHET_TEST_SHAPE_STOP", "1") &&
            !strcmp(rt_step_name(ctx), "b") && n == 100)
            raise(SIGTERM);
    }
    return RT_DONE;
}

static const rt_step shape_v1[] = {{"a", shape_step}, {"b", shape_step}, {"c", shape_step}, {NULL, NULL}};
static const rt_step shape_renamed[] = {{"a", shape_step}, {"x", shape_step}, {"c", shape_step}, {NULL, NULL}};
static const rt_step shape_appended[] = {{"a", shape_step}, {"b", shape_step}, {"c", shape_step}, {"d", shape_step}, {NULL, NULL}};
static const rt_step shape_removed[] = {{"a", shape_step}, {"c", shape_step}, {NULL, NULL}};
static const rt_step shape_reordered[] = {{"a", shape_step}, {"c", shape_step}, {"b", shape_step}, {NULL, NULL}};

static rt_job shape_job = {.name = "shape", .steps = shape_v1};

/* ---- fail: the second step always fails with a message */

static int fail_ok(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS fail_rows (n BIGINT);"
                          "INSERT INTO fail_rows (n) VALUES (1)", 0, NULL);
    return rc == RT_OK ? RT_DONE : rc;
}

static int fail_boom(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "INSERT INTO fail_rows (n) VALUES (2)", 0, NULL);
    if (rc != RT_OK) return rc;
    return rt_fail(ctx, "boom: the disk of the imaginary upstream is on fire");
}

static const rt_step fail_steps[] = {{"ok", fail_ok}, {"boom", fail_boom}, {NULL, NULL}};
static const rt_job fail_job = {.name = "fail", .steps = fail_steps};

/* ---- cursorbytes: a chunked step whose cursor is text */

static int cursorbytes_step(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS cb_rows (word TEXT)", 0, NULL);
    if (rc != RT_OK) return rc;
    size_t len;
    const char *at = rt_cursor_bytes(ctx, &len);
    char word[8] = "aaa"; /* the next word to write */
    if (at) {
        memcpy(word, at, len < 7 ? len : 7);
        word[len < 7 ? len : 7] = '\0';
        for (int i = 2; i >= 0; i--) { /* increment base-26 */
            if (word[i] < 'z') { word[i]++; break; }
            word[i] = 'a';
            if (i == 0) return RT_DONE;
        }
    }
    while (strcmp(word, "aez") <= 0) {
        if (!rt_continue(ctx)) return RT_MORE;
        rc = RT_EXEC(ctx, "INSERT INTO cb_rows (word) VALUES ($1)", rt_text(word));
        if (rc != RT_OK) return rc;
        rc = rt_set_cursor_bytes(ctx, word, strlen(word));
        if (rc != RT_OK) return rc;
        rt_add_items(ctx, 1);
        for (int i = 2; i >= 0; i--) {
            if (word[i] < 'z') { word[i]++; break; }
            word[i] = 'a';
        }
    }
    return RT_DONE;
}

static const rt_step cursorbytes_steps[] = {{"words", cursorbytes_step}, {NULL, NULL}};
static const rt_job cursorbytes_job = {.name = "cursorbytes", .steps = cursorbytes_steps};

/* ---- looseparams: no declared params; typed getters validate at run time */

static int looseparams_step(rt_ctx *ctx) {
    int64_t n;
    int rc = rt_param_int64(ctx, "n", 7, &n);
    if (rc != RT_OK) return rc;
    rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS loose (n BIGINT)", 0, NULL);
    if (rc == RT_OK) rc = RT_EXEC(ctx, "INSERT INTO loose (n) VALUES ($1)", rt_int(n));
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step looseparams_steps[] = {{"one", looseparams_step}, {NULL, NULL}};
static const rt_job looseparams_job = {.name = "looseparams", .steps = looseparams_steps};

/* ---- longsql: an atomic step whose one SQL statement runs for a minute
 * (pg_sleep on PostgreSQL; a huge recursive count on SQLite), so a stop must
 * cancel the statement in flight to meet the grace deadline. */

static int longsql_setup(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS longsql_rows (n BIGINT)", 0, NULL);
    return rc == RT_OK ? RT_DONE : rc;
}

static int longsql_step(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "INSERT INTO longsql_rows (n) VALUES (1)", 0, NULL);
    if (rc != RT_OK) return rc;
    rt_log(ctx, RT_LOG_INFO, "long statement starts");
    int64_t n = 0;
    if (!strcmp(rt_backend(ctx), "postgres"))
        rc = rt_exec(ctx, "SELECT pg_sleep(60)", 0, NULL);
    else
        rc = rt_query_int64(ctx,
                            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                            "FROM c WHERE x < 4000000000) SELECT count(*) FROM c",
                            0, NULL, &n);
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step longsql_steps[] = {{"setup", longsql_setup}, {"long", longsql_step}, {NULL, NULL}};
static const rt_job longsql_job = {.name = "longsql", .steps = longsql_steps};

/* ---- pgsettings: records the session settings ratchet gave its
 * PostgreSQL connection (application_name, timeouts). */

static int pgsettings_step(rt_ctx *ctx) {
    static const char *const names[] = {"application_name",
                                        "idle_in_transaction_session_timeout",
                                        "lock_timeout", "statement_timeout", NULL};
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS pgset (name TEXT, value TEXT)", 0, NULL);
    for (int i = 0; rc == RT_OK && names[i]; i++)
        rc = RT_EXEC(ctx, "INSERT INTO pgset (name, value) VALUES ($1, current_setting($1))",
                     rt_text(names[i]));
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step pgsettings_steps[] = {{"record", pgsettings_step}, {NULL, NULL}};
static const rt_job pgsettings_job = {.name = "pgsettings", .steps = pgsettings_steps};

/* ---- slowstep: one atomic step that inserts a row, then works for ms (param) */

static void testjobs_sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int slowstep_step(rt_ctx *ctx) {
    int64_t ms;
    int rc = rt_param_int64(ctx, "ms", 3000, &ms);
    if (rc == RT_OK)
        rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS slow_rows (run_key TEXT, pid BIGINT)", 0,
                     NULL);
    if (rc == RT_OK)
        rc = rt_exec(ctx, "INSERT INTO slow_rows (run_key, pid) VALUES ($1, $2)", 2,
                     (rt_value[]){rt_text(rt_key(ctx)), rt_int(getpid())});
    if (rc != RT_OK) return rc;
    /* Works on inside its transaction, ignoring stops: one long step. */
    for (int64_t left = ms; left > 0; left -= 50) testjobs_sleep_ms(left < 50 ? left : 50);
    return RT_DONE;
}

static const rt_step slowstep_steps[] = {{"slow", slowstep_step}, {NULL, NULL}};
static const rt_job slowstep_job = {.name = "slowstep", .steps = slowstep_steps};

/* ---- keyed: exclusive per key; fills keyed_rows with 1..rows, item_ms apart */

static int keyed_step(rt_ctx *ctx) {
    int64_t rows, item_ms;
    int rc = rt_param_int64(ctx, "rows", 20, &rows);
    if (rc == RT_OK) rc = rt_param_int64(ctx, "item_ms", 50, &item_ms);
    if (rc == RT_OK)
        rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS keyed_rows (run_key TEXT, n BIGINT)", 0,
                     NULL);
    for (int64_t n = rt_cursor_int64(ctx) + 1; rc == RT_OK && n <= rows; n++) {
        if (!rt_continue(ctx)) return RT_MORE;
        testjobs_sleep_ms(item_ms);
        rc = rt_exec(ctx, "INSERT INTO keyed_rows (run_key, n) VALUES ($1, $2)", 2,
                     (rt_value[]){rt_text(rt_key(ctx)), rt_int(n)});
        rt_set_cursor_int64(ctx, n);
        rt_add_items(ctx, 1);
    }
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step keyed_steps[] = {{"fill", keyed_step}, {NULL, NULL}};
static const rt_job keyed_job = {.name = "keyed", .steps = keyed_steps,
                                 .exclusive = RT_EXCLUSIVE_KEY};

/* ---- pipefail: pipelined INSERTs, the one of item dup_at breaks a key */

static int pipefail_make(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS pipe_rows (n BIGINT PRIMARY KEY)",
                     0, NULL);
    return rc == RT_OK ? RT_DONE : rc;
}

static int pipefail_fill(rt_ctx *ctx) {
    int64_t rows, dup_at;
    int rc = rt_param_int64(ctx, "rows", 300, &rows);
    if (rc == RT_OK) rc = rt_param_int64(ctx, "dup_at", 150, &dup_at);
    for (int64_t n = rt_cursor_int64(ctx) + 1; rc == RT_OK && n <= rows; n++) {
        if (!rt_continue(ctx)) return RT_MORE;
        rc = RT_EXEC_LATER(ctx, "INSERT INTO pipe_rows (n) VALUES ($1)",
                           rt_int(n == dup_at ? 1 : n));
        rt_set_cursor_int64(ctx, n);
        rt_add_items(ctx, 1);
    }
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step pipefail_steps[] = {
    {"make", pipefail_make}, {"fill", pipefail_fill}, {NULL, NULL}};
static const rt_param_def pipefail_params[] = {
    {"rows", RT_PARAM_INT, "300", "rows to insert"},
    {"dup_at", RT_PARAM_INT, "150", "the item whose row repeats row 1"},
    {NULL, 0, NULL, NULL}};
static const rt_job pipefail_job = {.name = "pipefail", .steps = pipefail_steps,
                                    .params = pipefail_params};

/* ---- span: one atomic step whose body's begin and end are appended to a
 * file outside any transaction, so a test sees whether two executions of a
 * run's step (or of the job's runs: span is job-scoped) overlapped in time.
 * Each line is "B|E PID KEY NS", NS on CLOCK_MONOTONIC (one clock for every
 * process of the machine), written with one write() to a file opened
 * O_APPEND. Params: file (the log), ms (how long the body works, default
 * 1000), until (a path: the body ends early once it exists), fail (true: the
 * step fails after its end line). A stop request ends the body early; the
 * step then returns RT_STOPPED and rolls back. It inserts (run key, pid) into
 * span_rows in its transaction after the wait. */

static int64_t testjobs_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void span_mark(const char *file, char what, const char *key) {
    char line[400];
    int n = snprintf(line, sizeof line, "%c %ld %s %lld\n", what, (long)getpid(), key,
                     (long long)testjobs_mono_ns());
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd < 0) return;
    if (n > 0 && write(fd, line, (size_t)n) != n) {
        /* nothing to do: the test reads what is there */
    }
    close(fd);
}

static int span_step(rt_ctx *ctx) {
    const char *file = rt_param(ctx, "file", NULL);
    const char *until = rt_param(ctx, "until", "");
    int64_t ms;
    bool fail;
    int rc = rt_param_int64(ctx, "ms", 1000, &ms);
    if (rc == RT_OK) rc = rt_param_bool(ctx, "fail", false, &fail);
    if (rc != RT_OK) return rc;
    if (!file || !*file) return rt_fail(ctx, "span: param file is required");
    span_mark(file, 'B', rt_key(ctx));
    int64_t end = testjobs_mono_ns() + ms * 1000000;
    while (testjobs_mono_ns() < end && !rt_stop_requested(ctx) &&
           !(until && *until && access(until, F_OK) == 0))
        testjobs_sleep_ms(5);
    if (rt_stop_requested(ctx)) {
        span_mark(file, 'E', rt_key(ctx));
        return RT_STOPPED;
    }
    rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS span_rows (run_key TEXT, pid BIGINT)", 0,
                 NULL);
    if (rc == RT_OK)
        rc = RT_EXEC(ctx, "INSERT INTO span_rows (run_key, pid) VALUES ($1, $2)",
                     rt_text(rt_key(ctx)), rt_int(getpid()));
    span_mark(file, 'E', rt_key(ctx));
    if (rc != RT_OK) return rc;
    return fail ? rt_fail(ctx, "span: failing on purpose") : RT_DONE;
}

static const rt_step span_steps[] = {{"span", span_step}, {NULL, NULL}};
static const rt_param_def span_params[] = {
    {"file", RT_PARAM_TEXT, NULL, "where begin and end lines are appended"},
    {"ms", RT_PARAM_INT, "1000", "how long the step's body works"},
    {"until", RT_PARAM_TEXT, "", "a path: the body ends once it exists"},
    {"fail", RT_PARAM_BOOL, "false", "fail the step after its end line"},
    {NULL, 0, NULL, NULL}};
static const rt_job span_job = {.name = "span", .steps = span_steps, .params = span_params};
/* ---- uniq: the second step breaks a UNIQUE key; param mode says how it
 * returns the error: rc (the SQL call's code, as it is), fail (`return
 * rt_fail(ctx, "%s", rt_errmsg(ctx))`) or later (a pipelined INSERT, the
 * error surfacing at the chunk's COMMIT on PostgreSQL). */

static int uniq_check(rt_ctx *ctx) {
    const char *mode = rt_param(ctx, "mode", "rc");
    if (strcmp(mode, "rc") && strcmp(mode, "fail") && strcmp(mode, "later"))
        return rt_fail(ctx, "param mode: '%s' is not rc, fail or later", mode);
    return RT_OK;
}

static int uniq_insert(rt_ctx *ctx) {
    return RT_EXEC(ctx, "INSERT INTO uniq_rows (run_key, k) VALUES ($1, 1)",
                   rt_text(rt_key(ctx)));
}

static int uniq_make(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS uniq_rows (run_key TEXT NOT NULL, "
                          "k BIGINT NOT NULL, PRIMARY KEY (run_key, k))", 0, NULL);
    if (rc == RT_OK) rc = uniq_insert(ctx);
    return rc == RT_OK ? RT_DONE : rc;
}

static int uniq_dup(rt_ctx *ctx) {
    const char *mode = rt_param(ctx, "mode", "rc");
    if (!strcmp(mode, "later")) {
        int rc = RT_EXEC_LATER(ctx, "INSERT INTO uniq_rows (run_key, k) VALUES ($1, 1)",
                               rt_text(rt_key(ctx)));
        return rc == RT_OK ? RT_DONE : rc;
    }
    int rc = uniq_insert(ctx);
    if (rc != RT_OK && !strcmp(mode, "fail")) return rt_fail(ctx, "%s", rt_errmsg(ctx));
    if (rc != RT_OK) return rc;
    return RT_DONE;
}

static const rt_step uniq_steps[] = {{"make", uniq_make}, {"dup", uniq_dup}, {NULL, NULL}};
static const rt_param_def uniq_params[] = {
    {"mode", RT_PARAM_TEXT, "rc", "how the error returns: rc, fail or later"},
    {NULL, 0, NULL, NULL}};
static const rt_job uniq_job = {.name = "uniq", .steps = uniq_steps, .params = uniq_params,
                                .exclusive = RT_EXCLUSIVE_KEY, .check = uniq_check};

/* ---- tick_keyed: the tick job with a declared schedule, exclusive per key */

static rt_job tick_keyed_job;

int main(int argc, char **argv) {
    tick_keyed_job = tick_job;
    tick_keyed_job.name = "tick_keyed";
    tick_keyed_job.exclusive = RT_EXCLUSIVE_KEY;
    tick_keyed_job.schedule = "TZ=Europe/Paris * * * * * *";
    const char *shape = getenv("RATCHET_TEST_SHAPE");
    if (shape && !strcmp(shape, "renamed")) shape_job.steps = shape_renamed;
    if (shape && !strcmp(shape, "appended")) shape_job.steps = shape_appended;
    if (shape && !strcmp(shape, "removed")) shape_job.steps = shape_removed;
    if (shape && !strcmp(shape, "reordered")) shape_job.steps = shape_reordered;
    const rt_job *const jobs[] = {&rowcopy_job, &aggregate_job, &hang_job, &shape_job,
                                  &fail_job, &cursorbytes_job, &looseparams_job, &longsql_job,
                                  &pgsettings_job, &slowstep_job, &keyed_job, &tick_keyed_job,
                                  &tick_job, &noop_job, &flaky_job, &pipefail_job, &span_job,
                                  &uniq_job, NULL};
    return rt_main(argc, argv, jobs);
}
