/*
 * check_store.c — in-process tests of the backend seam (framework/store): the
 * placeholder scan, every value type through both backends, the statement
 * cache, and what only the SQLite store does (placeholders in any order, a
 * new file's mode, lax and durable transactions). The store_diskfull part
 * (check_store_diskfull.c) fills a real disk under it.
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

/* Every value type goes in and comes back out unchanged on both backends. */
START_TEST(test_store_values_roundtrip) {
    rt_store *s = h_store_open(h_db_new(_i));
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
    rt_store *s = h_store_open(h_db_new(H_SQLITE));
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
    rt_store *s = h_store_open(h_db_new(_i));
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
    rt__store_close(h_store_migrated(url));
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
    rt_store *s = h_store_migrated(h_db_new(H_SQLITE));
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

Suite *store_suite(void) {
    Suite *su = suite_create("store");
    TCase *tc = tcase_create("parts");
    tcase_add_test(tc, test_placeholder_scan);
    tcase_add_test(tc, test_sqlite_placeholders_any_order);
    tcase_add_test(tc, test_sqlite_file_mode_0600);
    tcase_add_test(tc, test_sqlite_lax_transaction_then_durable);
    suite_add_tcase(su, tc);
    TCase *db = tcase_create("database");
    tcase_set_timeout(db, 30);
    tcase_add_loop_test(db, test_store_values_roundtrip, 0, h_backends());
    tcase_add_loop_test(db, test_store_cache_text_and_bindings, 0, h_backends());
    suite_add_tcase(su, db);
    return su;
}
