/*
 * check_postgres_pooler.c — the postgres suite's pooler part: ratchet behind
 * pgbouncer in transaction-pooling mode (issue 7): each transaction may run
 * on another server session, so no session state (named prepared statements,
 * session advisory locks, startup options) may be relied on. With
 * pool_mode=transaction in the URL, ratchet sends unnamed statements and
 * takes no liveness lock: the lease rows and epoch fencing alone keep runs
 * exclusive and exact.
 *
 * Each test starts its own pgbouncer (Debian package; CI installs it) in
 * front of the test server (RATCHET_TEST_PG, a unix socket), on a unix
 * socket in a temp dir, pool_mode=transaction with a pool of 3 server
 * sessions per database (fewer than the clients, so sessions are shared),
 * and always stops it: at exit, and through PR_SET_PDEATHSIG when Check
 * kills a test that timed out. A missing pgbouncer fails the test loudly.
 * ratchet connects through pgbouncer; the test's own queries go straight
 * to the server. RATCHET_TEST_LONG=1 (make torture) queues ten times the
 * runs.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

#define EVENT(name) "\"event\":\"" name "\""
#define POOLER_PORT 6432 /* its own socket directory: no clash possible */

static pid_t pooler_pid;
static char pooler_dir[64];

static const char *pooler_bin(void) {
    const char *b = getenv("PGBOUNCER");
    if (b) return b;
    return access("/usr/sbin/pgbouncer", X_OK) == 0 ? "/usr/sbin/pgbouncer" : "pgbouncer";
}

static void pooler_stop(void) {
    if (pooler_pid <= 0 || getpid() == pooler_pid) return;
    kill(pooler_pid, SIGTERM);
    for (int i = 0; i < 200 && waitpid(pooler_pid, NULL, WNOHANG) == 0; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        if (i == 150) kill(pooler_pid, SIGKILL);
    }
    pooler_pid = 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pooler_dir);
    if (system(cmd) != 0) fprintf(stderr, "pooler: could not remove %s\n", pooler_dir);
}

/*
 * Start pgbouncer in front of RATCHET_TEST_PG; returns the base conninfo
 * for ratchet ("host=DIR port=6432 user=postgres"), without dbname.
 */
static const char *pooler_start(void) {
    static char base[256];
    const char *admin = getenv("RATCHET_TEST_PG");
    ck_assert_msg(admin != NULL, "RATCHET_TEST_PG is not set: run the tests with "
                                 "'make check' (it starts PostgreSQL)");
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(admin, &perr);
    ck_assert_msg(opts != NULL, "RATCHET_TEST_PG: %s", perr ? perr : "?");
    const char *host = NULL, *port = NULL, *user = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!strcmp(o->keyword, "host")) host = o->val;
        if (!strcmp(o->keyword, "port")) port = o->val;
        if (!strcmp(o->keyword, "user")) user = o->val;
    }
    ck_assert_msg(host && port, "RATCHET_TEST_PG names no host and port: %s", admin);
    snprintf(pooler_dir, sizeof pooler_dir, "/tmp/ratchet-pgb.XXXXXX");
    ck_assert_msg(mkdtemp(pooler_dir) != NULL, "mkdtemp: %s", strerror(errno));
    atexit(pooler_stop);

    char path[128];
    snprintf(path, sizeof path, "%s/pgbouncer.ini", pooler_dir);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    /* Every database of the test server, under its own name. Only the
     * parameters pgbouncer tracks are accepted at startup: a client that
     * sends options= is refused, as by a stock pgbouncer. */
    fprintf(f,
            "[databases]\n"
            "* = host=%s port=%s\n"
            "[pgbouncer]\n"
            "listen_addr =\n"
            "listen_port = %d\n"
            "unix_socket_dir = %s\n"
            "auth_type = trust\n"
            "auth_file = %s/users.txt\n"
            "pool_mode = transaction\n"
            "default_pool_size = 3\n"
            "max_client_conn = 200\n"
            "max_db_connections = 3\n"
            "idle_transaction_timeout = 1\n"
            "server_lifetime = 3600\n"
            "logfile = %s/pgbouncer.log\n"
            "ignore_startup_parameters = extra_float_digits\n",
            host, port, POOLER_PORT, pooler_dir, pooler_dir, pooler_dir);
    fclose(f);
    snprintf(path, sizeof path, "%s/users.txt", pooler_dir);
    f = fopen(path, "w");
    ck_assert(f != NULL);
    fprintf(f, "\"%s\" \"\"\n", user ? user : "postgres");
    fclose(f);

    /* pgbouncer refuses to run as root: as root, it runs as the server's
     * user 'postgres' (set here, before PR_SET_PDEATHSIG, which a change
     * of user would clear). */
    struct passwd *pw = getuid() == 0 ? getpwnam("postgres") : NULL;
    if (getuid() == 0) {
        ck_assert_msg(pw != NULL, "running as root, and there is no user 'postgres'");
        char cmd[160];
        snprintf(cmd, sizeof cmd, "chown -R postgres '%s'", pooler_dir);
        ck_assert_int_eq(system(cmd), 0);
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (pw && (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
                   setuid(pw->pw_uid) != 0))
            _exit(126);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(0);
        snprintf(path, sizeof path, "%s/pgbouncer.ini", pooler_dir);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        char out[128];
        snprintf(out, sizeof out, "%s/stderr", pooler_dir);
        int e = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (e >= 0) {
            dup2(e, 1);
            dup2(e, 2);
        }
        execlp(pooler_bin(), "pgbouncer", "-q", path, (char *)NULL);
        dprintf(2, "exec %s: %s\n", pooler_bin(), strerror(errno));
        _exit(127);
    }
    pooler_pid = pid;
    snprintf(base, sizeof base, "host=%s port=%d user=%s", pooler_dir, POOLER_PORT,
             user ? user : "postgres");
    PQconninfoFree(opts);
    /* Up when a query goes through it. */
    char probe[320];
    snprintf(probe, sizeof probe, "%s dbname=postgres", base);
    for (int i = 0; i < 500; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            pooler_pid = 0;
            snprintf(path, sizeof path, "%s/stderr", pooler_dir);
            char cmd[400]; /* its own words first, if any */
            snprintf(cmd, sizeof cmd, "cat '%s' '%s/pgbouncer.log' >&2 2>/dev/null", path,
                     pooler_dir);
            int shown = system(cmd);
            (void)shown;
            ck_abort_msg("pgbouncer exited at once (exit %d%s): is it installed? "
                         "apt-get install -y pgbouncer",
                         WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                         WIFEXITED(status) && WEXITSTATUS(status) == 127 ? ", not found" : "");
        }
        PGconn *c = PQconnectdb(probe);
        bool up = PQstatus(c) == CONNECTION_OK;
        PQfinish(c);
        if (up) return base;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("pgbouncer did not accept connections within 5 s");
    return NULL;
}

/* A new database on the server; *through: its URL through pgbouncer with
 * pool_mode=transaction (for ratchet); returns the direct one. */
static const char *pooler_db(const char *base, const char **through) {
    static char urls[4][512];
    static int n;
    const char *direct = h_db_new(H_PG);
    const char *db = strstr(direct, "dbname=rt_test_");
    ck_assert(db != NULL && n < 4);
    snprintf(urls[n], sizeof urls[n], "%s %s pool_mode=transaction", base, db);
    *through = urls[n++];
    return direct;
}

/* RATCHET_TEST_LONG=1 (make torture): ten times the queue. */
static int pooler_scale(void) {
    const char *v = getenv("RATCHET_TEST_LONG");
    return v && !strcmp(v, "1") ? 10 : 1;
}

static bool pooler_has(pid_t pid, const char *needle) {
    return strstr(h_stderr(pid), needle) != NULL;
}

/* Server sessions pgbouncer opened to db (>= 1 means traffic went through). */
static int64_t pooler_sessions(const char *direct) {
    return h_query_int(direct, "SELECT count(*) FROM pg_stat_activity WHERE "
                               "datname = current_database() AND "
                               "pid <> pg_backend_pid()");
}

/* keyed_rows holds 1..rows once each (one key). */
static void pooler_assert_keyed(const char *direct, int64_t rows) {
    ck_assert_int_eq(h_query_int(direct, "SELECT count(*) FROM keyed_rows"), rows);
    ck_assert_int_eq(h_query_int(direct, "SELECT count(DISTINCT n) FROM keyed_rows"), rows);
    ck_assert_int_eq(h_query_int(direct, "SELECT max(n) FROM keyed_rows"), rows);
}

/* ------------------------------- a run completes, and without the option */

START_TEST(test_pooler_run) {
    const char *base = pooler_start(), *url;
    const char *direct = pooler_db(base, &url);
    /* Without pool_mode=transaction: refused with a hint, not misbehaving
     * (pgbouncer refuses ratchet's startup options). */
    char plain[512];
    snprintf(plain, sizeof plain, "%.*s", (int)(strstr(url, " pool_mode") - url), url);
    pid_t p = h_spawn(h_bin(), plain, ARGS("run", "rowcopy", "--key", "r"), NULL);
    int code = h_wait(p, 30000);
    ck_assert_msg(code != 0, "ran without pool_mode=transaction:\n%s", h_stderr(p));
    ck_assert_msg(pooler_has(p, "pool_mode=transaction"), "no hint:\n%s", h_stderr(p));
    /* The option's own mistakes are configuration errors (exit 2). */
    char bad[600];
    snprintf(bad, sizeof bad, "%s pool_mode=bogus", plain);
    h_expect_usage(h_bin(), bad, ARGS("status"), "bad pool_mode value 'bogus'");
    snprintf(bad, sizeof bad, "%s fast_takeover=on", url);
    h_expect_usage(h_bin(), bad, ARGS("status"), "fast_takeover=on cannot work with");

    p = h_spawn(h_bin(), url,
                ARGS("run", "rowcopy", "--key", "r", "--param", "rows=3000", "--chunk-items",
                     "100"),
                NULL);
    EXPECT_EXIT(p, h_wait(p, 60000), 0);
    ck_assert(pooler_has(p, EVENT("done")));
    h_assert_rowcopy_exact(direct);
    h_assert_rowcopy_report(direct, "r", 3000);
    ck_assert_int_eq(h_query_int(direct, "SELECT count(*) FROM rowcopy_dst"), 3000);
    ck_assert_int_eq(h_query_int(direct, "SELECT count(*) FROM rt_lease"), 0);
    /* The run's lease was taken without a liveness lock. */
    ck_assert_int_eq(h_query_int(direct, "SELECT count(*) FROM pg_locks WHERE "
                                         "locktype = 'advisory'"), 0);
    ck_assert_int_ge(pooler_sessions(direct), 1);
    /* A second start: already done, through another pooled session. */
    p = h_spawn(h_bin(), url, ARGS("run", "rowcopy", "--key", "r"), NULL);
    EXPECT_EXIT(p, h_wait(p, 30000), 0);
    ck_assert(pooler_has(p, EVENT("already_done")));
}
END_TEST

/* ------------------- two replicas on one key: one holder, the others per flag */

START_TEST(test_pooler_one_holder) {
    const char *base = pooler_start(), *url;
    const char *direct = pooler_db(base, &url);
    h_migrate(url);
    h_exec(direct, "CREATE TABLE keyed_rows (run_key TEXT, n BIGINT)");
    /* keyed: 120 items 25 ms apart (asleep), committed 5 at a time. */
    pid_t a = h_spawn(h_test_bin(), url,
                      ARGS("run", "keyed", "--key", "k", "--param", "rows=120", "--param",
                           "item_ms=25", "--chunk-items", "5"),
                      NULL);
    ck_assert_msg(h_await_int(direct, "SELECT items FROM rt_run WHERE run_key = 'k'", 1, 20000),
                  "no commit; stderr:\n%s", h_stderr(a));
    /* Every flag, each more than once: each start lands on another pooled
     * session, some on the one the holder last used. */
    static const char *const modes[] = {"fail", "skip", "fail", "skip", "wait"};
    pid_t r[5];
    for (int k = 0; k < 5; k++)
        r[k] = h_spawn(h_test_bin(), url,
                       ARGS("run", "keyed", "--key", "k", "--if-running", modes[k]), NULL);
    for (int k = 0; k < 4; k++) {
        int code = h_wait(r[k], 30000);
        ck_assert_msg(!pooler_has(r[k], EVENT("takeover")), "%s took over a live holder:\n%s",
                      modes[k], h_stderr(r[k]));
        if (k % 2 == 0) {
            EXPECT_EXIT(r[k], code, 3);
            ck_assert(pooler_has(r[k], EVENT("held")));
        } else {
            EXPECT_EXIT(r[k], code, 0);
            ck_assert(pooler_has(r[k], EVENT("skipped")));
        }
    }
    EXPECT_EXIT(a, h_wait(a, 60000), 0);
    EXPECT_EXIT(r[4], h_wait(r[4], 60000), 0);
    ck_assert(pooler_has(r[4], EVENT("waiting")));
    ck_assert(pooler_has(r[4], EVENT("already_done")));
    ck_assert(!pooler_has(r[4], EVENT("takeover")));
    ck_assert_int_eq(h_query_int(direct, "SELECT epoch FROM rt_run WHERE run_key = 'k'"), 1);
    pooler_assert_keyed(direct, 120);
    ck_assert_int_eq(h_query_int(direct, "SELECT count(*) FROM rt_lease"), 0);
}
END_TEST

/* ------- SIGKILL: taken over after the lease TTL; SIGSTOP: fenced on SIGCONT */

START_TEST(test_pooler_takeover) {
    const char *base = pooler_start(), *url;
    const char *direct = pooler_db(base, &url);
    h_migrate(url);
    h_exec(direct, "CREATE TABLE keyed_rows (run_key TEXT, n BIGINT)");
    const char *const argv[] = {"run", "keyed", "--key", "t", "--param", "rows=80",
                                "--param", "item_ms=25", "--chunk-items", "5",
                                "--lease-ttl", "1", "--if-running", "wait", NULL};
    pid_t a = h_spawn(h_test_bin(), url, argv, NULL);
    ck_assert_msg(h_await_int(direct, "SELECT items FROM rt_run WHERE run_key = 't'", 1, 20000),
                  "no commit; stderr:\n%s", h_stderr(a));
    pid_t b = h_spawn(h_test_bin(), url, argv, NULL);
    ck_assert_msg(h_await_stderr(b, EVENT("waiting"), 20000), "B does not wait:\n%s",
                  h_stderr(b));
    ck_assert_int_eq(kill(a, SIGKILL), 0);
    int64_t killed = h_now_ms();
    EXPECT_EXIT(a, h_wait(a, 10000), EXIT_SIGKILL);
    /* No liveness lock to tell B at once: the lease expires first. */
    ck_assert_msg(h_await_stderr(b, EVENT("takeover"), 15000), "no takeover:\n%s",
                  h_stderr(b));
    int64_t took_ms = h_now_ms() - killed;
    ck_assert(pooler_has(b, "lease expired"));
    ck_assert(!pooler_has(b, "(died)"));
    ck_assert_int_ge(took_ms, 300); /* not at once: it waited for the TTL */

    /* Now B holds it; once it committed, stop it inside its work and let
     * C take over. */
    int64_t at = h_query_int(direct, "SELECT items FROM rt_run WHERE run_key = 't'");
    ck_assert_msg(h_await_int(direct, "SELECT items FROM rt_run WHERE run_key = 't'", at + 1,
                              10000), "B does not commit:\n%s", h_stderr(b));
    int status;
    ck_assert_int_eq(kill(b, SIGSTOP), 0);
    ck_assert_int_eq(waitpid(b, &status, WUNTRACED), b);
    pid_t c = h_spawn(h_test_bin(), url, argv, NULL);
    int code = h_wait(c, 90000);
    if (code != 0) kill(b, SIGKILL);
    EXPECT_EXIT(c, code, 0);
    ck_assert(pooler_has(c, "lease expired"));
    ck_assert_int_eq(kill(b, SIGCONT), 0);
    code = h_wait(b, 60000);
    /* Fenced: its next commit matched nothing, or, when pgbouncer had
     * ended its idle transaction, its reconnect found the run taken over. */
    EXPECT_EXIT(b, code, 3);
    ck_assert(pooler_has(b, EVENT("lease_lost")));
    ck_assert(!pooler_has(b, EVENT("done")));
    pooler_assert_keyed(direct, 80);
    ck_assert_int_eq(h_query_int(direct, "SELECT items FROM rt_run WHERE run_key = 't'"), 80);
    ck_assert_int_eq(h_query_int(direct, "SELECT epoch FROM rt_run WHERE run_key = 't'"), 3);
    fprintf(stderr, "pooler/takeover: SIGKILLed holder taken over after %lld ms (lease TTL "
                    "1 s); stopped holder fenced (exit 3)\n", (long long)took_ms);
}
END_TEST

/* ---------------------------- the queue: every run done exactly once */

START_TEST(test_pooler_queue) {
    const char *base = pooler_start(), *url;
    const char *direct = pooler_db(base, &url);
    h_migrate(url);
    /* Two CREATE TABLE IF NOT EXISTS at once can collide on PostgreSQL. */
    h_exec(direct, "CREATE TABLE keyed_rows (run_key TEXT, n BIGINT)");
    const int RUNS = 16 * pooler_scale();
    for (int k = 0; k < RUNS; k++) {
        char key[16];
        snprintf(key, sizeof key, "q%02d", k);
        pid_t e = h_spawn(h_test_bin(), url,
                          ARGS("enqueue", "keyed", "--key", key, "--param", "rows=5", "--param",
                               "item_ms=5"),
                          NULL);
        EXPECT_EXIT(e, h_wait(e, 20000), 0);
    }
    ck_assert_int_eq(h_query_int(direct, "SELECT count(*) FROM rt_run WHERE queued = 1"), RUNS);
    pid_t w[3];
    for (int k = 0; k < 3; k++)
        w[k] = h_spawn(h_test_bin(), url, ARGS("worker", "--concurrency", "2"), NULL);
    ck_assert_msg(h_await_int(direct, "SELECT count(*) FROM rt_run WHERE status = 'done'", RUNS,
                              60000 * pooler_scale()),
                  "not all done; stderr:\n%s", h_stderr(w[0]));
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(kill(w[k], SIGTERM), 0);
        EXPECT_EXIT(w[k], h_wait(w[k], 9000), 0);
    }
    ck_assert_int_eq(h_query_int(direct, "SELECT count(*) FROM keyed_rows"), RUNS * 5);
    ck_assert_int_eq(h_query_int(direct, "SELECT count(DISTINCT run_key || ':' || n) FROM "
                                         "keyed_rows"), RUNS * 5);
    ck_assert_int_eq(h_query_int(direct, "SELECT count(*) FROM rt_run WHERE attempt <> 1"), 0);
    ck_assert_int_eq(h_query_int(direct, "SELECT count(*) FROM rt_lease"), 0);
    /* More than one worker process did the work. */
    int busy = 0;
    for (int k = 0; k < 3; k++) busy += pooler_has(w[k], EVENT("done"));
    ck_assert_int_ge(busy, 2);
}
END_TEST

void postgres_pooler_add(Suite *s) {
    TCase *tc = tcase_create("pooler");
    tcase_set_timeout(tc, 120 * pooler_scale());
    if (h_backends() > 1) {
        tcase_add_test(tc, test_pooler_run);
        tcase_add_test(tc, test_pooler_one_holder);
        tcase_add_test(tc, test_pooler_takeover);
        tcase_add_test(tc, test_pooler_queue);
    }
    suite_add_tcase(s, tc);
}
