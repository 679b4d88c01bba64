/*
 * harness.c — the test harness behind harness.h: fresh databases per test on
 * each backend, the real binaries as child processes, and SQL on a separate
 * connection to check what they left behind.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "harness.h"
#include "invariants.h"

extern char **environ;

int64_t h_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void h_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

int h_backends(void) {
    const char *skip = getenv("RATCHET_TEST_SKIP_PG");
    if (skip && !strcmp(skip, "1") && !getenv("RATCHET_TEST_PG")) return 1;
    return 2;
}

const char *h_backend_name(int backend) {
    return backend == H_PG ? "postgres" : "sqlite";
}

const char *h_bin(void) {
    const char *b = getenv("RATCHET_BIN");
    return b ? b : "build/ratchet";
}

const char *h_test_bin(void) {
    const char *b = getenv("RATCHET_TEST_BIN");
    return b ? b : "build/ratchet-test";
}

const char *h_hooks_bin(void) {
    const char *b = getenv("RATCHET_HOOKS_BIN");
    return b ? b : "build/ratchet-hooks";
}

/* ------------------------------------------------------------ databases */

#define H_MAX_DBS 16
static char *h_dirs[H_MAX_DBS], *h_pgdbs[H_MAX_DBS];
static int h_ndirs, h_npgdbs;
static pid_t h_owner;

static void h_cleanup(void) {
    if (getpid() != h_owner) return; /* a forked child must not clean up */
    for (int i = 0; i < h_ndirs; i++) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", h_dirs[i]);
        if (system(cmd) != 0) fprintf(stderr, "harness: could not remove %s\n", h_dirs[i]);
    }
    const char *admin = getenv("RATCHET_TEST_PG");
    for (int i = 0; i < h_npgdbs && admin; i++) {
        PGconn *c = PQconnectdb(admin);
        if (PQstatus(c) == CONNECTION_OK) {
            char sql[200];
            snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", h_pgdbs[i]);
            PQclear(PQexec(c, sql));
        }
        PQfinish(c);
    }
}

static void h_register_cleanup(void) {
    if (h_owner != getpid()) {
        h_owner = getpid();
        h_ndirs = h_npgdbs = 0;
        atexit(h_cleanup);
    }
}

static char *h_mkdtemp(void) {
    h_register_cleanup();
    char tmpl[] = "/tmp/ratchet-test.XXXXXX";
    char *d = mkdtemp(tmpl);
    ck_assert_msg(d != NULL, "mkdtemp: %s", strerror(errno));
    ck_assert_int_lt(h_ndirs, H_MAX_DBS);
    h_dirs[h_ndirs++] = strdup(d);
    return h_dirs[h_ndirs - 1];
}

const char *h_db_new(int backend) {
    static char urls[H_MAX_DBS][512];
    static int nurls;
    h_register_cleanup();
    ck_assert_int_lt(nurls, H_MAX_DBS);
    char *url = urls[nurls++];
    if (backend == H_SQLITE) {
        snprintf(url, 512, "sqlite:%s/test.db", h_mkdtemp());
        return url;
    }
    const char *admin = getenv("RATCHET_TEST_PG");
    ck_assert_msg(admin != NULL,
                  "RATCHET_TEST_PG is not set: run the tests with 'make check' "
                  "(it starts PostgreSQL) or set RATCHET_TEST_SKIP_PG=1");
    static int counter;
    char name[64];
    snprintf(name, sizeof name, "rt_test_%d_%d", (int)getpid(), counter++);
    PGconn *c = PQconnectdb(admin);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "PostgreSQL: %s", PQerrorMessage(c));
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "CREATE DATABASE: %s",
                  PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    ck_assert_int_lt(h_npgdbs, H_MAX_DBS);
    h_pgdbs[h_npgdbs++] = strdup(name);
    snprintf(url, 512, "%s dbname=%s", admin, name);
    return url;
}

/* ------------------------------------------------------------ processes */

typedef struct h_child {
    pid_t pid;
    char out[300], err[300];
    char *out_text, *err_text;
} h_child;

#define H_MAX_CHILDREN 4096
static h_child h_children[H_MAX_CHILDREN];
static int h_nchildren;

static h_child *h_find(pid_t pid) {
    for (int i = h_nchildren - 1; i >= 0; i--)
        if (h_children[i].pid == pid) return &h_children[i];
    return NULL;
}

pid_t h_spawn(const char *bin, const char *url, const char *const *argv,
              const char *const *extra_env) {
    static char *logdir;
    if (!logdir || h_owner != getpid()) logdir = h_mkdtemp();
    ck_assert_int_lt(h_nchildren, H_MAX_CHILDREN);
    h_child *c = &h_children[h_nchildren++];
    memset(c, 0, sizeof *c);
    snprintf(c->out, sizeof c->out, "%s/out.%d", logdir, h_nchildren);
    snprintf(c->err, sizeof c->err, "%s/err.%d", logdir, h_nchildren);
    const char *args[64];
    int n = 0;
    args[n++] = bin;
    for (int i = 0; argv && argv[i] && n < 63; i++) args[n++] = argv[i];
    args[n] = NULL;
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int o = open(c->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(c->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0) _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        close(o);
        close(e);
        if (url) setenv("RATCHET_DB", url, 1);
        setenv("RATCHET_LOG", "json", 1);
        for (int i = 0; extra_env && extra_env[i]; i++) putenv((char *)extra_env[i]);
        /* Default dispositions: the test runner may have changed them. */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(bin, (char *const *)args);
        _exit(127);
    }
    c->pid = pid;
    return pid;
}

int h_wait(pid_t pid, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    int status = 0, delay = 1;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        ck_assert_msg(r == 0, "waitpid: %s", strerror(errno));
        if (h_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        h_sleep_ms(delay);
        if (delay < 20) delay *= 2;
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

int h_run(const char *bin, const char *url, const char *const *argv,
          const char *const *extra_env, int timeout_ms) {
    return h_wait(h_spawn(bin, url, argv, extra_env), timeout_ms);
}

static char *h_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

const char *h_stderr(pid_t pid) {
    h_child *c = h_find(pid);
    ck_assert_msg(c != NULL, "h_stderr: unknown pid %d", (int)pid);
    free(c->err_text);
    c->err_text = h_slurp(c->err);
    return c->err_text;
}

const char *h_stdout(pid_t pid) {
    h_child *c = h_find(pid);
    ck_assert_msg(c != NULL, "h_stdout: unknown pid %d", (int)pid);
    free(c->out_text);
    c->out_text = h_slurp(c->out);
    return c->out_text;
}

bool h_await_stderr(pid_t pid, const char *needle, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        if (strstr(h_stderr(pid), needle)) return true;
        if (h_now_ms() >= deadline) return false;
        h_sleep_ms(5);
    }
}

int h_count_lines(const char *text) {
    int n = 0;
    for (const char *p = text; *p; p++)
        if (*p == '\n' || p[1] == '\0') n++;
    return n;
}

/* ------------------------------------------------------------------ SQL */

static bool h_is_sqlite(const char *url) { return !strncmp(url, "sqlite:", 7); }

static sqlite3 *h_sqlite_open(const char *url) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(url + 7, &db, SQLITE_OPEN_READWRITE, NULL);
    ck_assert_msg(rc == SQLITE_OK, "open %s: %s", url, sqlite3_errstr(rc));
    sqlite3_busy_timeout(db, 10000);
    return db;
}

static PGconn *h_pg_open(const char *url) {
    PGconn *c = PQconnectdb(url);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

void h_exec(const char *url, const char *sql) {
    if (h_is_sqlite(url)) {
        sqlite3 *db = h_sqlite_open(url);
        char *err = NULL;
        int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
        ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
        sqlite3_close(db);
        return;
    }
    PGconn *c = h_pg_open(url);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* The first column of the first row as text; *found = false if no row. */
static char *h_query(const char *url, const char *sql, bool *found, bool must) {
    char *out = NULL;
    *found = false;
    if (h_is_sqlite(url)) {
        sqlite3 *db = h_sqlite_open(url);
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK && !must) {
            sqlite3_close(db);
            return NULL;
        }
        ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *found = true;
            const unsigned char *t = sqlite3_column_text(st, 0);
            out = t ? strdup((const char *)t) : NULL;
        } else {
            ck_assert_msg(rc == SQLITE_DONE || !must, "%s: %s", sql, sqlite3_errmsg(db));
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        return out;
    }
    PGconn *c = h_pg_open(url);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ck_assert_msg(!must, "%s: %s", sql, PQerrorMessage(c));
    } else if (PQntuples(r) > 0) {
        *found = true;
        out = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    PQfinish(c);
    return out;
}

int64_t h_query_int(const char *url, const char *sql) {
    bool found;
    char *t = h_query(url, sql, &found, true);
    ck_assert_msg(found, "%s: no row", sql);
    ck_assert_msg(t != NULL, "%s: NULL", sql);
    int64_t v = strtoll(t, NULL, 10);
    free(t);
    return v;
}

char *h_query_text(const char *url, const char *sql) {
    bool found;
    return h_query(url, sql, &found, true);
}

bool h_await_int(const char *url, const char *sql, int64_t want, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    do {
        bool found;
        /* The table may not exist yet: errors count as "not yet". */
        char *t = h_query(url, sql, &found, false);
        bool ok = t && strtoll(t, NULL, 10) >= want;
        free(t);
        if (ok) return true;
        h_sleep_ms(5);
    } while (h_now_ms() < deadline);
    return false;
}

void h_assert_rowcopy_exact(const char *url) {
    char msg[1024];
    inv_db *db = inv_open(url, msg, sizeof msg);
    ck_assert_msg(db != NULL, "%s", msg);
    bool ok = inv_rowcopy_exact(db, msg, sizeof msg);
    inv_close(db);
    ck_assert_msg(ok, "%s", msg);
}

void h_assert_rowcopy_report(const char *url, const char *key, int64_t rows) {
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT rows FROM rowcopy_report WHERE run_key = '%s'", key);
    ck_assert_int_eq(h_query_int(url, sql), rows);
    snprintf(sql, sizeof sql, "SELECT id_sum FROM rowcopy_report WHERE run_key = '%s'", key);
    ck_assert_int_eq(h_query_int(url, sql), rows * (rows + 1) / 2);
}

bool h_rowcopy_consistent(const char *url, const char *key) {
    char msg[1024];
    /* Killed before the database, the schema or the run row existed. */
    struct stat st;
    if (h_is_sqlite(url) && stat(url + 7, &st) != 0) return false;
    inv_db *db = inv_open(url, msg, sizeof msg);
    ck_assert_msg(db != NULL, "%s", msg);
    inv_run run;
    bool ok = inv_run_read(db, "rowcopy", key, &run, msg, sizeof msg) &&
              inv_rowcopy_progress(db, &run, key, msg, sizeof msg);
    inv_close(db);
    ck_assert_msg(ok, "%s", msg);
    return run.exists && run.step_index == 1 && strcmp(run.status, "done") != 0;
}

void h_assert_aggregate_exact(const char *url, const char *key, int64_t days,
                              int64_t per_day) {
    char sql[200], msg[1024];
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM agg_events"), days * per_day);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM agg_daily WHERE run_key = '%s'", key);
    ck_assert_int_eq(h_query_int(url, sql), days);
    snprintf(sql, sizeof sql, "SELECT sum(events) FROM agg_daily WHERE run_key = '%s'", key);
    ck_assert_int_eq(h_query_int(url, sql), days * per_day);
    /* The summary equals a recomputation from the events; one correct
     * report line per day, none twice. */
    inv_db *db = inv_open(url, msg, sizeof msg);
    ck_assert_msg(db != NULL, "%s", msg);
    bool ok = inv_aggregate_exact(db, key, msg, sizeof msg);
    inv_close(db);
    ck_assert_msg(ok, "%s", msg);
}

void h_migrate(const char *url) {
    pid_t pid = h_spawn(h_bin(), url, (const char *const[]){"migrate", NULL}, NULL);
    int code = h_wait(pid, 30000);
    ck_assert_msg(code == 0, "migrate: exit %d; stderr:\n%s", code, h_stderr(pid));
}

void h_expect_usage(const char *bin, const char *url, const char *const *argv,
                    const char *says) {
    pid_t p = h_spawn(bin, url, argv, NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 2);
    ck_assert_msg(strstr(h_stderr(p), says), "want '%s' in:\n%s", says, h_stderr(p));
    ck_assert_int_eq(h_count_lines(h_stderr(p)), 1);
}

rt_store *h_store_open(const char *url) {
    char err[RT_ERRMSG_MAX];
    rt_store *s = NULL;
    int rc = rt__store_open(url, &s, err, sizeof err);
    ck_assert_msg(rc == RT_OK, "open %s: %s", url, err);
    return s;
}

rt_store *h_store_migrated(const char *url) {
    rt_store *s = h_store_open(url);
    int rc = rt__migrate(s, NULL, NULL);
    ck_assert_msg(rc == RT_OK, "migrate: %s", s->errmsg);
    return s;
}
