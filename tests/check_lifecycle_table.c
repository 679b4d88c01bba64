/*
 * check_lifecycle_table.c — the lifecycle suite's table part: the run's
 * lifecycle table (framework/core/lifecycle.c), cell by cell: which events
 * each state takes and where they lead, checked against a spec written here
 * independently; every cell carried out on a real database on both backends
 * (the status it leaves, the epoch it moves, the lease it settles, the fence
 * that stops a stale verdict); and that no other file of the library writes
 * rt_run.status.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "service/service.h"
#include "suites.h"

/* The spec: for each state, its events and where each leads ('-' the run
 * is deleted), and whether the move is by another than the holder ('*':
 * the epoch moves). Every event not listed is refused. */
static const char *const spec[RT__ST_COUNT] = {
    [RT__ST_PENDING] = "start>running* claim>running* skip>skipped* "
                       "cancel>cancelled* reset>-*",
    [RT__ST_RUNNING] = "takeover>running* commit>running finish>done "
                       "stop>interrupted cancel_seen>cancelled "
                       "refuse>interrupted forget>- step_error>pending "
                       "fail>failed "
                       "holder_dead>interrupted* holder_dead_last>failed* "
                       "cancel>cancelled* reset>-*",
    [RT__ST_INTERRUPTED] = "start>running* claim>running* cancel>cancelled* "
                           "reset>-*",
    [RT__ST_DONE] = "reset>-* prune>-*",
    [RT__ST_FAILED] = "retry>pending* reset>-* prune>-*",
    [RT__ST_SKIPPED] = "retry>pending* reset>-* prune>-*",
    [RT__ST_CANCELLED] = "retry>pending* reset>-* prune>-*",
};

/* The spec's cell for (st, ev): true with *to and *other when listed. */
static bool spec_cell(rt__status st, rt__event ev, rt__status *to, bool *other) {
    char want[64];
    snprintf(want, sizeof want, "%s>", rt__event_name(ev));
    const char *p = spec[st];
    size_t n = strlen(want);
    while (p && *p) {
        if (!strncmp(p, want, n)) {
            const char *t = p + n;
            size_t len = strcspn(t, " ");
            *other = len && t[len - 1] == '*';
            char name[32];
            snprintf(name, sizeof name, "%.*s", (int)(len - (*other ? 1 : 0)), t);
            *to = strcmp(name, "-") ? rt__status_parse(name) : RT__ST_GONE;
            ck_assert_msg(strcmp(name, "-") == 0 || *to != RT__ST_GONE,
                          "spec names an unknown state '%s'", name);
            return true;
        }
        p = strchr(p, ' ');
        if (p) p++;
    }
    return false;
}

START_TEST(test_names) {
    for (int st = 0; st < RT__ST_COUNT; st++) {
        ck_assert_int_eq(rt__status_parse(rt__status_name((rt__status)st)), st);
        ck_assert(spec[st] != NULL);
    }
    ck_assert_int_eq(rt__status_parse("nonsense"), RT__ST_GONE);
    ck_assert_int_eq(rt__status_parse(NULL), RT__ST_GONE);
    ck_assert(!rt__status_terminal(RT__ST_PENDING));
    ck_assert(!rt__status_terminal(RT__ST_RUNNING));
    ck_assert(!rt__status_terminal(RT__ST_INTERRUPTED));
    ck_assert(rt__status_terminal(RT__ST_DONE) && rt__status_terminal(RT__ST_FAILED) &&
              rt__status_terminal(RT__ST_SKIPPED) && rt__status_terminal(RT__ST_CANCELLED));
    for (int ev = 0; ev < RT__EV_COUNT; ev++)
        ck_assert_str_ne(rt__event_name((rt__event)ev), "?");
}
END_TEST

/* The table is the spec, cell by cell; and its two rules hold. */
START_TEST(test_table_is_the_spec) {
    int allowed = 0;
    for (int st = 0; st < RT__ST_COUNT; st++)
        for (int ev = 0; ev < RT__EV_COUNT; ev++) {
            rt__move m = rt__lifecycle_move((rt__status)st, (rt__event)ev);
            rt__status to = RT__ST_GONE;
            bool other = false;
            bool listed = spec_cell((rt__status)st, (rt__event)ev, &to, &other);
            ck_assert_msg(m.allowed == listed, "%s x %s: table %s, spec %s",
                          rt__status_name((rt__status)st), rt__event_name((rt__event)ev),
                          m.allowed ? "allows" : "refuses", listed ? "allows" : "refuses");
            if (!listed) continue;
            allowed++;
            ck_assert_msg(m.to == to, "%s x %s: to %s, spec %s",
                          rt__status_name((rt__status)st), rt__event_name((rt__event)ev),
                          rt__status_name(m.to), rt__status_name(to));
            ck_assert_msg((m.by == RT__BY_OTHER) == other, "%s x %s: who",
                          rt__status_name((rt__status)st), rt__event_name((rt__event)ev));
            /* A terminal state moves only by an operator. */
            if (rt__status_terminal((rt__status)st))
                ck_assert(ev == RT__EV_RETRY || ev == RT__EV_RESET || ev == RT__EV_PRUNE);
            /* Only the holder's own moves leave the epoch as it is. */
            if (m.by == RT__BY_HOLDER) ck_assert_int_eq(st, RT__ST_RUNNING);
        }
    ck_assert_int_eq(allowed, 33);
    /* Out of range: refused, not read past the table. */
    ck_assert(!rt__lifecycle_move(RT__ST_GONE, RT__EV_RETRY).allowed);
    ck_assert(!rt__lifecycle_move(RT__ST_PENDING, RT__EV_COUNT).allowed);
}
END_TEST

/* ------------------------------------------- every cell on a database */

static rt_store *states_open(const char *url) {
    char err[RT_ERRMSG_MAX];
    rt_store *s = NULL;
    ck_assert_msg(rt__store_open(url, &s, err, sizeof err) == RT_OK, "%s", err);
    ck_assert_msg(rt__migrate(s, NULL, NULL) == RT_OK, "%s", s->errmsg);
    return s;
}

/* SQL on the test's own store (one connection: a harness connection per
 * check would cost a PostgreSQL backend start each). */
static void st_exec(rt_store *s, const char *sql) {
    ck_assert_msg(rt__store_exec(s, sql, 0, NULL, NULL) == RT_OK, "%s: %s", sql,
                  s->errmsg);
}

static int64_t st_int(rt_store *s, const char *sql) {
    rt_stmt *st;
    int rc = rt__store_query(s, sql, 0, NULL, &st);
    ck_assert_msg(rc == RT_ROW, "%s: %s", sql, s->errmsg);
    int64_t v = s->ops->column_int64(st, 0);
    s->ops->reset(st);
    return v;
}

static char *st_text(rt_store *s, const char *sql) {
    rt_stmt *st;
    int rc = rt__store_query(s, sql, 0, NULL, &st);
    ck_assert_msg(rc == RT_ROW, "%s: %s", sql, s->errmsg);
    char *v = rt__xstrdup(s->ops->column_text(st, 0));
    s->ops->reset(st);
    return v;
}

/* A run of job "j" with key in state st at epoch 5, with a param, and its
 * lease held by "owner-1" (a job-wide scope). Returns its id. */
static int64_t states_seed(rt_store *s, const char *key, rt__status st) {
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO rt_run (job, run_key, status, fingerprint, steps, "
             "step_index, step_name, epoch, created_ms, updated_ms, queued) "
             "VALUES ('j', '%s', '%s', 'f', 'a', 0, 'a', 5, 1, 1, 1)",
             key, rt__status_name(st));
    st_exec(s, sql);
    snprintf(sql, sizeof sql, "SELECT id FROM rt_run WHERE run_key = '%s'", key);
    int64_t id = st_int(s, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO rt_param (run_id, name, value) VALUES (%lld, 'p', 'v')",
             (long long)id);
    st_exec(s, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO rt_lease (scope, job, run_key, owner, fast, "
             "acquired_ms, heartbeat_ms, expires_ms) VALUES ('j/%s', 'j', "
             "'%s', 'owner-1', 0, 1, 1, 1)",
             key, key);
    st_exec(s, sql);
    return id;
}

static int64_t states_int(rt_store *s, const char *fmt, const char *key) {
    char sql[512];
    snprintf(sql, sizeof sql, fmt, key);
    return st_int(s, sql);
}

START_TEST(test_every_cell_on_a_database) {
    const char *url = h_db_new(_i);
    rt_store *s = states_open(url);
    int n = 0;
    for (int st = 0; st < RT__ST_COUNT; st++)
        for (int ev = 0; ev < RT__EV_COUNT; ev++) {
            char key[64];
            snprintf(key, sizeof key, "k%d-%d", st, ev);
            int64_t id = states_seed(s, key, (rt__status)st);
            rt__move m = rt__lifecycle_move((rt__status)st, (rt__event)ev);
            char scope[80];
            snprintf(scope, sizeof scope, "j/%s", key);
            rt__verdict v = {.event = (rt__event)ev, .id = id, .job = "j",
                             .key = key, .from = (rt__status)st, .epoch = 5,
                             .who = "the test", .why = "because",
                             .failures = 2, .delay_ms = 0, .scope = scope,
                             .owner = "owner-1"};
            bool moved = true;
            int rc = rt__transition(s, &v, &moved);
            const char *name = rt__status_name((rt__status)st);
            if (!m.allowed) {
                ck_assert_msg(rc == RT_INVALID, "%s x %s: rc %d", name,
                              rt__event_name((rt__event)ev), rc);
                ck_assert(strstr(s->errmsg, "cannot") != NULL);
                ck_assert(!moved);
                /* Nothing changed: status, epoch, lease. */
                char *now = st_text(s, "SELECT status FROM rt_run WHERE id = "
                                              "(SELECT max(id) FROM rt_run)");
                ck_assert_str_eq(now, name);
                free(now);
                ck_assert_int_eq(states_int(s, "SELECT epoch FROM rt_run WHERE "
                                                 "run_key = '%s'", key), 5);
                ck_assert_int_eq(states_int(s, "SELECT count(*) FROM rt_lease "
                                                 "WHERE run_key = '%s'", key), 1);
                continue;
            }
            n++;
            ck_assert_msg(rc == RT_OK && moved, "%s x %s: rc %d (%s)", name,
                          rt__event_name((rt__event)ev), rc, s->errmsg);
            /* The verdict's lease went with it, in the same transaction. */
            ck_assert_int_eq(states_int(s, "SELECT count(*) FROM rt_lease WHERE "
                                             "run_key = '%s'", key), 0);
            if (m.to == RT__ST_GONE) {
                ck_assert_int_eq(states_int(s, "SELECT count(*) FROM rt_run WHERE "
                                                 "run_key = '%s'", key), 0);
                ck_assert_int_eq(st_int(s, "SELECT count(*) FROM rt_param "
                                                  "WHERE run_id NOT IN (SELECT id "
                                                  "FROM rt_run)"), 0);
                continue;
            }
            char sql[256];
            snprintf(sql, sizeof sql, "SELECT status FROM rt_run WHERE run_key = '%s'", key);
            char *now = st_text(s, sql);
            ck_assert_msg(!strcmp(now, rt__status_name(m.to)), "%s x %s: %s, not %s", name,
                          rt__event_name((rt__event)ev), now, rt__status_name(m.to));
            free(now);
            int64_t epoch = states_int(s, "SELECT epoch FROM rt_run WHERE run_key = '%s'", key);
            ck_assert_int_eq(epoch, m.by == RT__BY_OTHER ? 6 : 5);
            /* A terminal state records its end; others do not. */
            ck_assert_int_eq(states_int(s, "SELECT count(*) FROM rt_run WHERE "
                                             "run_key = '%s' AND finished_ms IS NOT NULL",
                                        key),
                             rt__status_terminal(m.to) ? 1 : 0);
            /* The same verdict again, as a process that read the run before
             * it moved would make it: the fence stops it. */
            if (m.by == RT__BY_OTHER) {
                moved = true;
                rc = rt__transition(s, &v, &moved);
                ck_assert_msg(rc == RT_OK && !moved, "%s x %s: a stale verdict moved it",
                              name, rt__event_name((rt__event)ev));
            }
        }
    ck_assert_int_eq(n, 33);
    rt__store_close(s);
}
END_TEST

/* A dead holder's verdict is not carried out once its lease was renewed
 * after it was judged: it is alive. */
START_TEST(test_dead_holder_only_unrenewed) {
    const char *url = h_db_new(_i);
    rt_store *s = states_open(url);
    int64_t id = states_seed(s, "r", RT__ST_RUNNING);
    /* Renewed since it was judged dead (its heartbeat was 1). */
    st_exec(s, "UPDATE rt_lease SET heartbeat_ms = 2, expires_ms = rt_now_ms() + 3600000");
    rt__verdict v = {.event = RT__EV_HOLDER_DEAD, .id = id, .job = "j", .key = "r",
                     .from = RT__ST_RUNNING, .epoch = 5, .who = "the test",
                     .why = "lock free", .failures = 1, .delay_ms = 0,
                     .scope = "j/r", .owner = "owner-1", .unrenewed = true,
                     .heartbeat = 1};
    bool moved = true;
    ck_assert_int_eq(rt__transition(s, &v, &moved), RT_OK);
    ck_assert(!moved);
    ck_assert_int_eq(st_int(s, "SELECT count(*) FROM rt_lease"), 1);
    char *st = st_text(s, "SELECT status FROM rt_run");
    ck_assert_str_eq(st, "running");
    free(st);
    ck_assert_int_eq(st_int(s, "SELECT epoch FROM rt_run"), 5);
    /* Not renewed since: dead; the epoch moves and the lease goes with
     * the verdict. */
    v.heartbeat = 2;
    ck_assert_int_eq(rt__transition(s, &v, &moved), RT_OK);
    ck_assert(moved);
    ck_assert_int_eq(st_int(s, "SELECT count(*) FROM rt_lease"), 0);
    ck_assert_int_eq(st_int(s, "SELECT epoch FROM rt_run"), 6);
    ck_assert_int_eq(st_int(s, "SELECT failures FROM rt_run"), 1);
    rt__store_close(s);
}
END_TEST

/* An epoch at its end takes no verdict (SQLite would make epoch + 1 a
 * REAL and the run unreachable). */
START_TEST(test_epoch_at_its_end) {
    const char *url = h_db_new(_i);
    rt_store *s = states_open(url);
    int64_t id = states_seed(s, "e", RT__ST_FAILED);
    st_exec(s, "UPDATE rt_run SET epoch = 9223372036854775807");
    rt__verdict v = {.event = RT__EV_RETRY, .id = id, .job = "j", .key = "e",
                     .from = RT__ST_FAILED, .epoch = INT64_MAX, .who = "the test"};
    bool moved = true;
    ck_assert_int_eq(rt__transition(s, &v, &moved), RT_OK);
    ck_assert(!moved);
    ck_assert_int_eq(st_int(s, "SELECT epoch FROM rt_run"), INT64_MAX);
    char *st = st_text(s, "SELECT status FROM rt_run");
    ck_assert_str_eq(st, "failed");
    free(st);
    if (_i == H_SQLITE)
        ck_assert_int_eq(st_int(s, "SELECT typeof(epoch) = 'integer' FROM rt_run"), 1);
    rt__store_close(s);
}
END_TEST

/* ------------------------------------- one file writes rt_run.status */

/* The string literals of a C file, joined, lower-cased. */
static char *states_literals(const char *path) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s", path);
    rt__buf b = {0};
    int c, in = 0, esc = 0;
    while ((c = fgetc(f)) != EOF) {
        if (!in) {
            if (c == '"') in = 1;
            continue;
        }
        if (esc) {
            esc = 0;
        } else if (c == '\\') {
            esc = 1;
            continue;
        } else if (c == '"') {
            in = 0;
            continue;
        } else if (c == '\n') { /* a quote in a comment or a char: reset */
            in = 0;
            continue;
        }
        char ch = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        rt__buf_add(&b, &ch, 1);
    }
    fclose(f);
    if (!b.p) rt__buf_puts(&b, "");
    return b.p;
}

START_TEST(test_only_lifecycle_writes_status) {
    static const char *const layers[] = {"base", "store", "core", "service", "cli"};
    int files = 0;
    for (size_t l = 0; l < sizeof layers / sizeof *layers; l++) {
        char dir[64];
        snprintf(dir, sizeof dir, "framework/%s", layers[l]);
        DIR *d = opendir(dir);
        ck_assert_msg(d != NULL, "%s: run from the source tree's root", dir);
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n < 3 || (strcmp(e->d_name + n - 2, ".c") && strcmp(e->d_name + n - 2, ".h")))
                continue;
            if (!strcmp(layers[l], "core") && !strncmp(e->d_name, "lifecycle.", 10)) continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            char *sql = states_literals(path);
            files++;
            ck_assert_msg(!strstr(sql, "insert into rt_run "), "%s inserts runs", path);
            for (const char *p = sql; (p = strstr(p, "update rt_run set")); p++) {
                const char *where = strstr(p, " where ");
                size_t len = where ? (size_t)(where - p) : strlen(p);
                char set[2048];
                snprintf(set, sizeof set, "%.*s", (int)(len < 2000 ? len : 2000), p);
                ck_assert_msg(!strstr(set, "status"), "%s writes rt_run.status: %s", path, set);
            }
            free(sql);
        }
        closedir(d);
    }
    ck_assert_int_gt(files, 30);
}
END_TEST

void lifecycle_table_add(Suite *s) {
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_table_is_the_spec);
    tcase_add_test(tc, test_only_lifecycle_writes_status);
    suite_add_tcase(s, tc);
    tc = tcase_create("cells");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_every_cell_on_a_database, 0, h_backends());
    tcase_add_loop_test(tc, test_epoch_at_its_end, 0, h_backends());
    tcase_add_loop_test(tc, test_dead_holder_only_unrenewed, 0, h_backends());
    suite_add_tcase(s, tc);
}
