/*
 * check_unit.c — in-process tests of the library's parts: parsers, the
 * placeholder scan, the SQLite store, migrations, and the commit protocol
 * driven through rt__runner_run with jobs defined here.
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
#include "cli/cli.h"
#include "suites.h"

static rt_store *unit_open(const char *url) {
    char err[RT_ERRMSG_MAX];
    rt_store *s = NULL;
    int rc = rt__store_open(url, &s, err, sizeof err);
    ck_assert_msg(rc == RT_OK, "open %s: %s", url, err);
    return s;
}

static rt_store *unit_migrated(const char *url) {
    rt_store *s = unit_open(url);
    int rc = rt__migrate(s, NULL, NULL);
    ck_assert_msg(rc == RT_OK, "migrate: %s", s->errmsg);
    return s;
}

START_TEST(test_parsers) {
    int64_t i;
    double d;
    bool b;
    ck_assert(rt__parse_int64("42", &i) && i == 42);
    ck_assert(rt__parse_int64("-9223372036854775808", &i) && i == INT64_MIN);
    ck_assert(!rt__parse_int64("9223372036854775808", &i));
    ck_assert(!rt__parse_int64("12x", &i));
    ck_assert(!rt__parse_int64("", &i));
    ck_assert(!rt__parse_int64(" 1", &i));
    ck_assert(rt__parse_double("2.5", &d) && d == 2.5);
    ck_assert(!rt__parse_double("nan", &d));
    ck_assert(!rt__parse_double("1e999", &d));
    ck_assert(rt__parse_bool("Yes", &b) && b);
    ck_assert(rt__parse_bool("off", &b) && !b);
    ck_assert(!rt__parse_bool("maybe", &b));
}
END_TEST

START_TEST(test_placeholder_scan) {
    ck_assert_int_eq(rt__sql_max_placeholder("SELECT 1"), 0);
    ck_assert_int_eq(rt__sql_max_placeholder("SELECT $1, $3, $2"), 3);
    ck_assert_int_eq(rt__sql_max_placeholder("SELECT '$9', $1"), 1);
    ck_assert_int_eq(rt__sql_max_placeholder("SELECT 'it''s $7', $2"), 2);
    ck_assert_int_eq(rt__sql_max_placeholder("SELECT \"$5\" -- $6\n, $1"), 1);
    ck_assert_int_eq(rt__sql_max_placeholder("SELECT /* $8 */ $12"), 12);
    ck_assert_int_eq(rt__sql_max_placeholder("SELECT $$ $4 $$, $tag$ $5 $tag$, $2"), 2);
}
END_TEST

START_TEST(test_json_escape) {
    rt__buf b = {0};
    rt__buf_json(&b, "a\"b\\c\nd\x01");
    ck_assert_str_eq(b.p, "\"a\\\"b\\\\c\\nd\\u0001\"");
    rt__buf_free(&b);
}
END_TEST

START_TEST(test_mask_secrets) {
    static const char *const cases[][2] = {
        {"postgresql://bob:pw@h:5432/db", "postgresql://bob:***@h:5432/db"},
        {"postgres://bob@h/db", "postgres://bob@h/db"},
        {"postgresql://h/db?user=u&password=pw&sslmode=require",
         "postgresql://h/db?user=u&password=***&sslmode=require"},
        {"host=h password=pw user=u", "host=h password=*** user=u"},
        {"host=h password = 'p w\\' x' user=u", "host=h password = *** user=u"},
        {"PASSWORD=pw", "PASSWORD=***"},
        {"host=h mypassword=x", "host=h mypassword=x"},
        {"a \"postgresql://u:pw@[::1/db\" b", "a \"postgresql://u:***@[::1/db\" b"},
        {"sqlite:/tmp/x.db", "sqlite:/tmp/x.db"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = rt__mask_secrets(cases[i][0]);
        ck_assert_str_eq(got, cases[i][1]);
        free(got);
    }
}
END_TEST

/* Every value type goes in and comes back out unchanged on both backends. */
START_TEST(test_store_values_roundtrip) {
    rt_store *s = unit_open(h_db_new(_i));
    ck_assert_int_eq(rt__store_exec_script(s, "CREATE TABLE v (i BIGINT, d DOUBLE PRECISION, "
                                              "t TEXT, b BYTEA, n TEXT)"),
                     RT_OK);
    rt_value args[] = {rt_int(-9007199254740993LL), rt_real(0.1), rt_text("h\xc3\xa9 'x'"),
                       rt_blob("\0\xff\\x", 4), rt_null()};
    int64_t changes = 0;
    ck_assert_int_eq(rt__store_exec(s, "INSERT INTO v VALUES ($1, $2, $3, $4, $5)", 5, args,
                                    &changes),
                     RT_OK);
    ck_assert_int_eq(changes, 1);
    rt_stmt *st;
    ck_assert_int_eq(rt__store_query(s, "SELECT i, d, t, b, n FROM v", 0, NULL, &st), RT_ROW);
    ck_assert_int_eq(s->ops->column_type(st, 0), RT_TINT);
    ck_assert_int_eq(s->ops->column_int64(st, 0), -9007199254740993LL);
    ck_assert_int_eq(s->ops->column_type(st, 1), RT_TREAL);
    ck_assert(s->ops->column_double(st, 1) == 0.1);
    ck_assert_str_eq(s->ops->column_text(st, 2), "h\xc3\xa9 'x'");
    ck_assert_int_eq(s->ops->column_type(st, 3), RT_TBLOB);
    size_t n = 0;
    const void *p = s->ops->column_blob(st, 3, &n);
    ck_assert_uint_eq(n, 4);
    ck_assert(memcmp(p, "\0\xff\\x", 4) == 0);
    ck_assert_int_eq(s->ops->column_type(st, 4), RT_TNULL);
    ck_assert_ptr_null(s->ops->column_text(st, 4));
    ck_assert_int_eq(s->ops->step(st), RT_DONE);
    /* A SQL error is an error with a message, and the store stays usable. */
    ck_assert_int_eq(rt__store_exec(s, "SELECT * FROM no_such_table", 0, NULL, NULL), RT_DBERR);
    ck_assert(strstr(s->errmsg, "no_such_table"));
    ck_assert_int_eq(rt__store_query(s, "SELECT count(*) FROM v", 0, NULL, &st), RT_ROW);
    ck_assert_int_eq(s->ops->column_int64(st, 0), 1);
    s->ops->reset(st);
    rt__store_close(s);
}
END_TEST

START_TEST(test_sqlite_placeholders_any_order) {
    rt_store *s = unit_open(h_db_new(H_SQLITE));
    rt_stmt *st;
    rt_value args[] = {rt_text("a"), rt_text("b")};
    int rc = rt__store_query(s, "SELECT $2 || '-' || $1 || '-' || $2", 2, args, &st);
    ck_assert_int_eq(rc, RT_ROW);
    ck_assert_str_eq(s->ops->column_text(st, 0), "b-a-b");
    s->ops->reset(st);
    /* Same text again: the cached statement, reset, bindings cleared. */
    rt_stmt *again;
    ck_assert_int_eq(rt__store_prepare(s, "SELECT $2 || '-' || $1 || '-' || $2", &again), RT_OK);
    ck_assert_ptr_eq(again, st);
    /* Blobs round-trip with embedded NULs. */
    rt_value blob = rt_blob("x\0y", 3);
    ck_assert_int_eq(rt__store_query(s, "SELECT $1", 1, &blob, &st), RT_ROW);
    size_t n = 0;
    const void *p = s->ops->column_blob(st, 0, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert(memcmp(p, "x\0y", 3) == 0);
    s->ops->reset(st);
    rt__store_close(s);
}
END_TEST

/*
 * The statement cache keys on the SQL text, not on where it lies: a buffer
 * holding another text gets that text's statement. And a statement prepared
 * again starts with no bindings: a parameter not bound anew is NULL, however
 * it was bound before (rt_reset clears them too).
 */
START_TEST(test_store_cache_text_and_bindings) {
    rt_store *s = unit_open(h_db_new(_i));
    char sql[64];
    rt_stmt *st;
    for (int round = 0; round < 2; round++)
        for (int v = 1; v <= 3; v++) {
            snprintf(sql, sizeof sql, "SELECT %d", v);
            ck_assert_int_eq(rt__store_query(s, sql, 0, NULL, &st), RT_ROW);
            ck_assert_int_eq(s->ops->column_int64(st, 0), v);
            ck_assert_int_eq(s->ops->step(st), RT_DONE);
        }
    const char *two = "SELECT CAST($1 AS BIGINT) IS NULL, "
                      "CAST($2 AS TEXT) IS NULL, CAST($2 AS TEXT)";
    rt_value args[] = {rt_int(1), rt_text("kept?")};
    ck_assert_int_eq(rt__store_query(s, two, 2, args, &st), RT_ROW);
    ck_assert_int_eq(s->ops->column_int64(st, 0), 0);
    ck_assert_int_eq(s->ops->column_int64(st, 1), 0);
    ck_assert_str_eq(s->ops->column_text(st, 2), "kept?");
    ck_assert_int_eq(s->ops->step(st), RT_DONE);
    /* Prepared again, only $1 bound: $2 is NULL. */
    ck_assert_int_eq(rt__store_query(s, two, 1, args, &st), RT_ROW);
    ck_assert_int_eq(s->ops->column_int64(st, 0), 0);
    ck_assert_int_eq(s->ops->column_int64(st, 1), 1);
    ck_assert_int_eq(s->ops->step(st), RT_DONE);
    /* Prepared again with nothing bound: both NULL; also while it was
     * still reading rows when prepared again. */
    ck_assert_int_eq(rt__store_query(s, two, 2, args, &st), RT_ROW);
    ck_assert_int_eq(rt__store_query(s, two, 0, NULL, &st), RT_ROW);
    ck_assert_int_eq(s->ops->column_int64(st, 0), 1);
    ck_assert_int_eq(s->ops->column_int64(st, 1), 1);
    ck_assert_int_eq(s->ops->step(st), RT_DONE);
    /* Stepped again without preparing: the bindings stay. */
    ck_assert_int_eq(rt__store_query(s, two, 2, args, &st), RT_ROW);
    ck_assert_int_eq(s->ops->step(st), RT_DONE);
    ck_assert_int_eq(s->ops->step(st), RT_ROW);
    ck_assert_str_eq(s->ops->column_text(st, 2), "kept?");
    /* rt_reset clears them. */
    ck_assert_int_eq(s->ops->reset(st), RT_OK);
    ck_assert_int_eq(s->ops->step(st), RT_ROW);
    ck_assert_int_eq(s->ops->column_int64(st, 0), 1);
    ck_assert_int_eq(s->ops->column_int64(st, 1), 1);
    ck_assert_int_eq(s->ops->step(st), RT_DONE);
    rt__store_close(s);
}
END_TEST

START_TEST(test_sqlite_file_mode_0600) {
    const char *url = h_db_new(H_SQLITE);
    rt__store_close(unit_migrated(url));
    struct stat stt;
    ck_assert_int_eq(stat(url + 7, &stt), 0);
    ck_assert_int_eq(stt.st_mode & 0777, 0600);
}
END_TEST

/* PRAGMA synchronous of a SQLite store's connection (2 = FULL). */
static int unit_sync_level(rt_store *s) {
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(s->ops->handle(s), "PRAGMA synchronous",
                                        -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int level = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return level;
}

/* A lax transaction (a claim, a stop's 'interrupted') commits at NORMAL and
 * leaves the connection at FULL, whether it commits or rolls back: the
 * chunks after it stay durable. */
START_TEST(test_sqlite_lax_transaction_then_durable) {
    rt_store *s = unit_migrated(h_db_new(H_SQLITE));
    ck_assert_int_eq(unit_sync_level(s), 2);
    for (int commit = 1; commit >= 0; commit--) {
        s->ops->lax_transaction(s);
        ck_assert_int_eq(rt__store_begin(s), RT_OK);
        ck_assert_int_eq(unit_sync_level(s), 1);
        ck_assert_int_eq(rt__store_exec(s, "DELETE FROM rt_param", 0, NULL, NULL),
                         RT_OK);
        ck_assert_int_eq(commit ? rt__store_commit(s) : rt__store_rollback(s), RT_OK);
        ck_assert_int_eq(unit_sync_level(s), 2);
    }
    rt__store_close(s);
}
END_TEST

/* Apply the embedded migrations 1..upto by hand, as an older binary would. */
static void unit_migrate_by_hand(rt_store *s, int upto) {
    ck_assert_int_eq(rt__store_exec_script(s,
        "CREATE TABLE rt_schema_version (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"), RT_OK);
    for (int v = 1; v <= upto; v++)
        for (int i = 0; i < rt__migrations_count; i++) {
            const rt__migration *m = &rt__migrations[i];
            if (strcmp(m->backend, s->ops->name) || m->version != v) continue;
            ck_assert_msg(rt__store_exec_script(s, m->sql) == RT_OK, "%s", s->errmsg);
            rt_value args[] = {rt_int(v), rt_text(m->name)};
            ck_assert_int_eq(rt__store_exec(s,
                "INSERT INTO rt_schema_version VALUES ($1, $2, 0)", 2, args, NULL), RT_OK);
        }
}

START_TEST(test_migrate_from_every_version) {
    int latest = rt__schema_latest(h_backend_name(_i));
    ck_assert_int_ge(latest, 1);
    for (int v = 0; v < latest; v++) {
        rt_store *s = unit_open(h_db_new(_i));
        if (v > 0) unit_migrate_by_hand(s, v);
        int from = -1, to = -1;
        ck_assert_msg(rt__migrate(s, &from, &to) == RT_OK, "%s", s->errmsg);
        ck_assert_int_eq(from, v);
        ck_assert_int_eq(to, latest);
        /* Idempotent: a second pass changes nothing. */
        ck_assert_int_eq(rt__migrate(s, &from, &to), RT_OK);
        ck_assert_int_eq(from, latest);
        rt__store_close(s);
    }
}
END_TEST

/*
 * PostgreSQL: a migration whose ALTER waits for a running step's
 * transaction gives way every 500 ms, so the statements queued behind it
 * go on (without that they would wait with it, here until their 10 s
 * statement_timeout); one that runs out of patience exits 75, and the
 * other lands once the step commits.
 */
START_TEST(test_migrate_gives_way_to_running_steps) {
    const char *url = h_db_new(_i);
    rt_store *step = unit_open(url);
    int latest = rt__schema_latest("postgres");
    unit_migrate_by_hand(step, latest - 1);
    ck_assert_int_eq(rt__store_begin(step), RT_OK);
    ck_assert_int_eq(rt__store_exec_script(step,
                         "LOCK TABLE rt_run IN ROW EXCLUSIVE MODE"), RT_OK);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        rt_store *m = NULL;
        char err[RT_ERRMSG_MAX];
        if (rt__store_open(url, &m, err, sizeof err) != RT_OK) _exit(3);
        _exit(rt__migrate(m, NULL, NULL) == RT_OK ? 0 : 4);
    }
    /* The migration waits for its lock on rt_run... */
    ck_assert(h_await_int(url,
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = "
        "l.relation WHERE c.relname = 'rt_run' AND l.mode = "
        "'AccessExclusiveLock' AND NOT l.granted", 1, 20000));
    /* ...and a write of rt_run is not held up behind it. */
    h_exec(url, "SET statement_timeout = 10000; "
                "UPDATE rt_run SET updated_ms = updated_ms");
    ck_assert_int_eq(h_query_int(url, "SELECT max(version) FROM rt_schema_version"),
                     latest - 1);
    /* One that runs out of patience gives up: exit 75, try again later. */
    const char *const migrate[] = {"migrate", NULL};
    const char *const patience[] = {"RATCHET_TEST_MIGRATE_PATIENCE_MS=1500", NULL};
    pid_t hurried = h_spawn(h_hooks_bin(), url, migrate, patience);
    ck_assert_int_eq(h_wait(hurried, 30000), 75);
    ck_assert_ptr_nonnull(strstr(h_stderr(hurried), "gave up after"));
    ck_assert_int_eq(h_query_int(url, "SELECT max(version) FROM rt_schema_version"),
                     latest - 1);
    ck_assert_int_eq(rt__store_commit(step), RT_OK);
    int status = -1;
    for (int i = 0; i < 2000 && waitpid(pid, &status, WNOHANG) == 0; i++)
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the migration did not land (status %d)", status);
    ck_assert_int_eq(h_query_int(url, "SELECT max(version) FROM rt_schema_version"),
                     latest);
    rt__store_close(step);
}
END_TEST

START_TEST(test_migrate_refuses_newer_schema) {
    const char *url = h_db_new(_i);
    rt__store_close(unit_migrated(url));
    int latest = rt__schema_latest(h_backend_name(_i));
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO rt_schema_version VALUES (%d, 'future', 0)", latest + 1);
    h_exec(url, sql);
    rt_store *s = unit_open(url);
    ck_assert_int_eq(rt__migrate(s, NULL, NULL), RT_SCHEMA);
    ck_assert_ptr_nonnull(strstr(s->errmsg, "newer"));
    rt__store_close(s);
    ck_assert_int_eq(h_query_int(url, "SELECT max(version) FROM rt_schema_version"), latest + 1);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_schema_version"), latest + 1);
}
END_TEST

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
    rt_store *s = unit_migrated(url);
    rt__run_opts o = {.key = "k1"};
    unit_calls = 0;
    int code = rt__runner_run(s, &unit_chunk_job, &o);
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
    rt_store *s = unit_migrated(url);
    rt__run_opts o = {.key = "k1"};
    int code = rt__runner_run(s, &unit_stolen_job, &o);
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
    rt_store *s = unit_migrated(url);
    rt__run_opts o = {.key = "k1"};
    int code = rt__runner_run(s, &unit_raw_job, &o);
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
    rt_store *s = unit_migrated(url);
    rt__run_opts o = {.key = "k1"};
    rt__params_set(&o.params, "n", "41");
    rt__params_set(&o.params, "s", "hello");
    ck_assert_int_eq(rt__runner_run(s, &unit_params_job, &o), RT_EXIT_OK);
    /* The same key with other params is refused, and nothing changes. */
    int64_t updated = h_query_int(url, "SELECT updated_ms FROM rt_run");
    rt__params_set(&o.params, "n", "42");
    ck_assert_int_eq(rt__runner_run(s, &unit_params_job, &o), RT_EXIT_USAGE);
    ck_assert_int_eq(h_query_int(url, "SELECT updated_ms FROM rt_run"), updated);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_param"), 2);
    rt__params_free(&o.params);
    rt__store_close(s);
}
END_TEST

Suite *unit_suite(void) {
    Suite *su = suite_create("unit");
    TCase *tc = tcase_create("parts");
    tcase_add_test(tc, test_parsers);
    tcase_add_test(tc, test_placeholder_scan);
    tcase_add_test(tc, test_json_escape);
    tcase_add_test(tc, test_sqlite_placeholders_any_order);
    tcase_add_test(tc, test_sqlite_file_mode_0600);
    tcase_add_test(tc, test_sqlite_lax_transaction_then_durable);
    tcase_add_test(tc, test_fingerprint);
    tcase_add_test(tc, test_mask_secrets);
    suite_add_tcase(su, tc);
    TCase *db = tcase_create("database");
    tcase_set_timeout(db, 30);
    tcase_add_loop_test(db, test_store_values_roundtrip, 0, h_backends());
    tcase_add_loop_test(db, test_store_cache_text_and_bindings, 0, h_backends());
    tcase_add_loop_test(db, test_migrate_from_every_version, 0, h_backends());
    tcase_add_loop_test(db, test_migrate_refuses_newer_schema, 0, h_backends());
    tcase_add_loop_test(db, test_migrate_gives_way_to_running_steps, H_PG, h_backends());
    tcase_add_loop_test(db, test_commit_protocol_work_and_progress_together, 0, h_backends());
    tcase_add_loop_test(db, test_fenced_commit_writes_nothing, 0, h_backends());
    tcase_add_loop_test(db, test_raw_connection_in_step_transaction, 0, h_backends());
    tcase_add_loop_test(db, test_params_and_resume_mismatch, 0, h_backends());
    suite_add_tcase(su, db);
    return su;
}
