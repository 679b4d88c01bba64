/*
 * check_migrate.c — the schema migrations (framework/core/migrate.c), in process on
 * both backends: from every older version to the latest, idempotent; a
 * newer schema refused; and on PostgreSQL a migration that gives way to a
 * running step's transaction instead of stalling the statements behind it.
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
        rt_store *s = h_store_open(h_db_new(_i));
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
    rt_store *step = h_store_open(url);
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
    rt__store_close(h_store_migrated(url));
    int latest = rt__schema_latest(h_backend_name(_i));
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO rt_schema_version VALUES (%d, 'future', 0)", latest + 1);
    h_exec(url, sql);
    rt_store *s = h_store_open(url);
    ck_assert_int_eq(rt__migrate(s, NULL, NULL), RT_SCHEMA);
    ck_assert_ptr_nonnull(strstr(s->errmsg, "newer"));
    rt__store_close(s);
    ck_assert_int_eq(h_query_int(url, "SELECT max(version) FROM rt_schema_version"), latest + 1);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_schema_version"), latest + 1);
}
END_TEST

Suite *migrate_suite(void) {
    Suite *su = suite_create("migrate");
    TCase *db = tcase_create("migrate");
    tcase_set_timeout(db, 30);
    tcase_add_loop_test(db, test_migrate_from_every_version, 0, h_backends());
    tcase_add_loop_test(db, test_migrate_refuses_newer_schema, 0, h_backends());
    tcase_add_loop_test(db, test_migrate_gives_way_to_running_steps, H_PG, h_backends());
    suite_add_tcase(su, db);
    return su;
}
