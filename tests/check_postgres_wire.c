/*
 * check_postgres_wire.c — the postgres suite's wire part: PostgreSQL faults
 * on the wire (docs/RELIABILITY.md, "Faults on the wire"): the real
 * build/ratchet talks to the test server through the loopback proxy of
 * pgproxy.h, which
 *
 *   - drops a connection between a COMMIT and its answer (the in-doubt
 *     commit), after forwarding it (the server committed) or instead of
 *     forwarding it (the server rolls back): the run must end exact either
 *     way — the process re-reads its cursor on a new connection, or exits
 *     75 and the next start does;
 *   - black-holes every connection (no byte either way, no FIN): a replica
 *     must take the run over within the lease TTL plus the server's
 *     idle_in_transaction_session_timeout, and the black-holed holder must
 *     be fenced when the network comes back, and exit 75 within its grace
 *     when it is asked to stop while still cut off;
 *   - carries a URL's own TCP and server settings, which must win over
 *     ratchet's defaults.
 *
 * A tcase of the postgres suite: CK_RUN_SUITE=postgres CK_RUN_CASE=pgproxy.
 * Needs the server of tests/run-tests.sh (RATCHET_TEST_PG); with
 * RATCHET_TEST_SKIP_PG=1 the tcase is empty. RATCHET_TEST_PGPROXY_LONG=1
 * adds two slower cases: the run's last COMMIT (it takes a first run to
 * count the COMMITs) and a server unreachable for the process's whole
 * minute of reconnecting. PX_DEBUG=1 prints one line of figures per test.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <libpq-fe.h>

#include "harness.h"
#include "service/service.h"
#include "pgproxy.h"
#include "suites.h"

#define EVENT(name) "\"event\":\"" name "\""

/* A proxy to the server of RATCHET_TEST_PG ("host=DIR port=N ..."). */
static pgp *px_start(void) {
    const char *admin = getenv("RATCHET_TEST_PG");
    ck_assert_msg(admin != NULL, "RATCHET_TEST_PG is not set");
    char host[200] = "", port[16] = "";
    for (const char *t = admin; *t;) {
        size_t n = strcspn(t, " ");
        if (!strncmp(t, "host=", 5) && n - 5 < sizeof host)
            snprintf(host, sizeof host, "%.*s", (int)(n - 5), t + 5);
        if (!strncmp(t, "port=", 5) && n - 5 < sizeof port)
            snprintf(port, sizeof port, "%.*s", (int)(n - 5), t + 5);
        t += n;
        while (*t == ' ') t++;
    }
    ck_assert_msg(host[0] == '/' && port[0],
                  "RATCHET_TEST_PG names no unix socket: %s", admin);
    char path[300];
    snprintf(path, sizeof path, "%s/.s.PGSQL.%s", host, port);
    return pgp_start(path);
}

static int px_count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* Does the first line of text holding event also hold what? */
static bool px_line_has(const char *text, const char *event, const char *what) {
    const char *line = strstr(text, event);
    if (!line) return false;
    while (line > text && line[-1] != '\n') line--;
    size_t n = strcspn(line, "\n");
    const char *hit = strstr(line, what);
    return hit && hit < line + n;
}

static void px_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The run k of rowcopy is done, exact, never taken over (epoch), no lease. */
static void px_assert_done(const char *url, int64_t rows, int64_t epoch) {
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), rows);
    h_assert_rowcopy_report(url, "k", rows);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_report"), 1);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM rt_run WHERE status = 'done' AND "
                              "items = %lld", (long long)rows);
    ck_assert_int_eq(h_query_int(url, sql), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run"), epoch);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_lease"), 0);
}

/* ------------------------------------------------------ the in-doubt commit */

#define PX_ROWS 1000
static const char *const px_rowcopy[] = {
    "run",         "rowcopy", "--key",      "k", "--param", "rows=1000",
    "--chunk-items", "25",    "--chunk-ms", "0", "--grace", "2",
    NULL};

typedef struct px_case {
    const char *name;
    pgp_drop how;
    bool last;   /* the run's last COMMIT (pipelined), not one mid-copy */
    bool refuse; /* the server stays unreachable after the drop */
    bool long_;  /* only with RATCHET_TEST_PGPROXY_LONG=1 */
} px_case;

static const px_case px_cases[] = {
    {"mid-copy COMMIT forwarded, its answer dropped", PGP_DROP_AFTER_COMMIT, false, false},
    {"mid-copy COMMIT dropped unforwarded", PGP_DROP_BEFORE_COMMIT, false, false},
    {"last COMMIT (pipelined) forwarded, its answer dropped", PGP_DROP_AFTER_COMMIT, true,
     false, true},
    {"mid-copy COMMIT forwarded, answer dropped, server unreachable after",
     PGP_DROP_AFTER_COMMIT, false, true},
    /* Waits out the process's minute of reconnecting. */
    {"mid-copy COMMIT forwarded, answer dropped, server unreachable for a minute",
     PGP_DROP_AFTER_COMMIT, false, true, true},
};
#define PX_NCASES ((int)(sizeof px_cases / sizeof *px_cases))

START_TEST(test_pgproxy_commit_in_doubt) {
    const px_case *k = &px_cases[_i];
    const char *long_ = getenv("RATCHET_TEST_PGPROXY_LONG");
    if (k->long_ && !(long_ && !strcmp(long_, "1"))) return;
    int64_t started = h_now_ms();
    pgp *p = px_start();
    const char *url = h_db_new(H_PG);
    char *purl = pgp_url(p, url, NULL);
    pid_t pid;
    if (k->last) {
        /* How many COMMITs a whole run makes, start-up included: the same
         * run on a database of its own, through the proxy. */
        const char *cal = h_db_new(H_PG);
        char *curl = pgp_url(p, cal, NULL);
        int64_t before = pgp_commits(p);
        pid = h_spawn(h_bin(), curl, px_rowcopy, NULL);
        EXPECT_EXIT(pid, h_wait(pid, 60000), 0);
        int64_t total = pgp_commits(p) - before;
        ck_assert_int_gt(total, PX_ROWS / 25);
        free(curl);
        pgp_drop_at_commit(p, (int)total, k->how, k->refuse);
    } else {
        /* A dozen COMMITs come before the copy (migrations, the lease, the
         * claim, seed) and 40 with it: the 25th is one of the copy's. */
        pgp_drop_at_commit(p, 25, k->how, k->refuse);
    }
    pid = h_spawn(h_bin(), purl, px_rowcopy, NULL);
    int64_t deadline = h_now_ms() + 30000;
    while (pgp_outcome_of(p) == PGP_NONE && h_now_ms() < deadline) px_sleep_ms(5);
    pgp_outcome o = pgp_outcome_of(p);
    ck_assert_msg(o == (k->how == PGP_DROP_AFTER_COMMIT ? PGP_COMMITTED : PGP_ROLLED_BACK),
                  "%s: outcome %d:\n%s", k->name, (int)o, h_stderr(pid));
    char where[80];
    snprintf(where, sizeof where, "\"step\":\"%s\"", k->last ? "report" : "copy");
    ck_assert_msg(h_await_stderr(pid, EVENT("db_connection_lost"), 10000) &&
                      px_line_has(h_stderr(pid), EVENT("db_connection_lost"), where),
                  "%s: not lost in %s:\n%s", k->name, where, h_stderr(pid));
    if (k->last)
        ck_assert_msg(pgp_dropped_type(p) == 'B' || pgp_dropped_type(p) == 'P',
                      "%s: the last COMMIT went as a simple query, not pipelined "
                      "(store/postgres.c changed?): this case no longer covers the "
                      "extended protocol", k->name);
    int code;
    if (k->long_ && k->refuse) {
        /* Nobody stops it: after its minute of reconnecting it gives up,
         * exit 75, with one error line saying why. */
        code = h_wait(pid, 100000);
        EXPECT_EXIT(pid, code, 75);
        int64_t took = h_now_ms() - started;
        ck_assert_msg(px_line_has(h_stderr(pid), EVENT("db_error"),
                                  "database connection lost") &&
                          px_count(h_stderr(pid), "\"level\":\"error\"") == 1,
                      "%s:\n%s", k->name, h_stderr(pid));
        if (getenv("PX_DEBUG"))
            fprintf(stderr, "%s: exit 75 after %lld ms\n", k->name, (long long)took);
        pid = h_spawn(h_bin(), url, px_rowcopy, NULL);
        EXPECT_EXIT(pid, h_wait(pid, 60000), 0);
    } else if (k->refuse) {
        /* The process keeps trying to reconnect (for a minute); a stop
         * request ends that with exit 75 and progress saved. */
        int64_t refused = pgp_connections(p);
        deadline = h_now_ms() + 10000;
        while (pgp_connections(p) < refused + 2 && h_now_ms() < deadline) px_sleep_ms(5);
        ck_assert_msg(pgp_connections(p) >= refused + 2, "%s: no reconnect attempt:\n%s",
                      k->name, h_stderr(pid));
        kill(pid, SIGTERM);
        code = h_wait(pid, 5000);
        EXPECT_EXIT(pid, code, 75);
        ck_assert_msg(strstr(h_stderr(pid), EVENT("interrupted")), "%s:\n%s", k->name,
                      h_stderr(pid));
        if (getenv("PX_DEBUG")) fprintf(stderr, "%s", h_stderr(pid));
        /* The next start, straight to the server. */
        pid = h_spawn(h_bin(), url, px_rowcopy, NULL);
        EXPECT_EXIT(pid, h_wait(pid, 60000), 0);
        ck_assert_msg(strstr(h_stderr(pid), EVENT("resume")), "%s:\n%s", k->name,
                      h_stderr(pid));
    } else {
        /* Reconnected through the proxy (pass-through again), the process
         * re-reads the run: the cursor says whether the chunk committed. */
        code = h_wait(pid, 60000);
        EXPECT_EXIT(pid, code, 0);
        const char *err = h_stderr(pid);
        ck_assert_msg(px_count(err, EVENT("db_connection_lost")) == 1 &&
                          px_count(err, EVENT("db_reconnected")) == 1,
                      "%s:\n%s", k->name, err);
    }
    px_assert_done(url, PX_ROWS, k->refuse ? 2 : 1); /* a new start bumps it */
    if (getenv("PX_DEBUG"))
        fprintf(stderr, "in-doubt (%s): COMMIT sent as '%c', %s; %lld ms in all\n", k->name,
                pgp_dropped_type(p), o == PGP_COMMITTED ? "committed" : "rolled back",
                (long long)(h_now_ms() - started));
    free(purl);
    pgp_stop(p);
}
END_TEST

/* ------------------------------------------------------------- black hole */

/* The holder's URL: the server kills a session idle in a transaction after
 * 1 s (lock_timeout and statement_timeout repeated: a URL's options=
 * replaces all of ratchet's). */
#define PX_HOLDER_OPTS                                                         \
    "options='-c idle_in_transaction_session_timeout=1s -c lock_timeout=30s "  \
    "-c statement_timeout=0'"

#define PX_SLOW_ROWS 1500
static const char *const px_slow[] = {
    "run",     "rowcopy",     "--key",         "k",   "--param",     "rows=1500",
    "--param", "item_us=200", "--chunk-items", "50",  "--lease-ttl", "1",
    "--grace", "1",           "--if-running",  "wait", NULL};

/*
 * Cut off mid-chunk (the 20th COMMIT passed: a dozen come before the copy,
 * 30 with it), then either the network returns or, still cut off, the
 * holder is asked to stop.
 */
START_TEST(test_pgproxy_blackhole) {
    bool stop_while_cut_off = _i == 1;
    const char *name = stop_while_cut_off ? "mid-chunk, then SIGTERM while cut off"
                                          : "mid-chunk, then the network returns";
    int64_t started = h_now_ms();
    pgp *p = px_start();
    const char *url = h_db_new(H_PG);
    /* The control: without the short timeout the server keeps A's
     * transaction, and the check below must fail. */
    const char *control = getenv("PX_CONTROL");
    bool no_timeout = control && !strcmp(control, "no-idle-timeout");
    char *purl = pgp_url(p, url, no_timeout ? NULL : PX_HOLDER_OPTS);
    pid_t a = h_spawn(h_bin(), purl, px_slow, NULL);
    int64_t deadline = h_now_ms() + 30000;
    while (h_now_ms() < deadline && pgp_commits(p) < 20) px_sleep_ms(1);
    pgp_blackhole(p, true); /* in the chunk after the 20th COMMIT */
    ck_assert_msg(pgp_commits(p) >= 20, "%s: no progress:\n%s", name, h_stderr(a));
    int64_t t0 = h_now_ms();
    int64_t cut_at = h_query_int(url, "SELECT items FROM rt_run");
    /* The server ends A's transaction (idle_in_transaction_session_timeout,
     * 1 s in A's URL): its uncommitted rows and locks go. A's lease session,
     * idle outside a transaction, stays, with its liveness lock. */
    ck_assert_msg(h_await_int(url,
                              "SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END FROM "
                              "pg_stat_activity WHERE datname = current_database() AND "
                              "application_name LIKE 'ratchet:%' AND state LIKE "
                              "'idle in transaction%'",
                              1, 5000),
                  "%s: the server kept the cut-off holder's transaction", name);
    int64_t freed_ms = h_now_ms() - t0;
    /* A replica, straight to the server, waits for the lease and takes the
     * run over: A's heartbeat is stuck, its liveness lock still held. */
    pid_t b = h_spawn(h_bin(), url, px_slow, NULL);
    ck_assert_msg(h_await_stderr(b, EVENT("takeover"), 15000), "no takeover:\n%s",
                  h_stderr(b));
    int64_t takeover_ms = h_now_ms() - t0;
    EXPECT_EXIT(b, h_wait(b, 60000), 0);
    int64_t finished_ms = h_now_ms() - t0;
    px_assert_done(url, PX_SLOW_ROWS, 2);
    /* Still cut off, A has not exited: nothing reached it, no FIN either. */
    int status;
    ck_assert_msg(waitpid(a, &status, WNOHANG) == 0, "the cut-off holder exited:\n%s",
                  h_stderr(a));
    int64_t t1 = h_now_ms();
    int code;
    if (stop_while_cut_off) {
        /* Its grace (1 s) must bound the exit even though the cancel request
         * that interrupts its call in flight is black-holed as well. */
        kill(a, SIGTERM);
        code = h_wait(a, 15000);
        EXPECT_EXIT(a, code, 75);
        ck_assert_msg(px_line_has(h_stderr(a), EVENT("deadline"),
                                  "did not answer the interrupt within 1000 ms"),
                      "%s", h_stderr(a));
    } else {
        /* The network comes back: whatever A says next is fenced. */
        pgp_blackhole(p, false);
        code = h_wait(a, 15000);
        EXPECT_EXIT(a, code, 3);
        ck_assert_msg(strstr(h_stderr(a), EVENT("lease_lost")), "%s", h_stderr(a));
    }
    int64_t exit_ms = h_now_ms() - t1;
    if (getenv("PX_DEBUG"))
        fprintf(stderr,
                "blackhole (%s): cut at %lld items; its transaction ended by the server "
                "within %lld ms; takeover after %lld ms, replica "
                "done after %lld ms; holder exit %d %lld ms after %s; %lld ms in all\n",
                name, (long long)cut_at, (long long)freed_ms,
                (long long)takeover_ms, (long long)finished_ms, code, (long long)exit_ms,
                stop_while_cut_off ? "SIGTERM" : "the black hole ended",
                (long long)(h_now_ms() - started));
    /* Lease TTL 1 s + A's transaction killed after 1 s idle + polling. */
    ck_assert_msg(takeover_ms < 6000, "takeover after %lld ms", (long long)takeover_ms);
    if (stop_while_cut_off)
        ck_assert_msg(exit_ms < 4000, "exit 75 after %lld ms (grace 1 s)",
                      (long long)exit_ms);
    /* Nothing of A's after the cut survived: the copy is still exact. */
    px_assert_done(url, PX_SLOW_ROWS, 2);
    free(purl);
    pgp_stop(p);
}
END_TEST

/*
 * Cut off in the middle of a pipelined batch: the chunk's statements and
 * its fenced progress UPDATE reached the server, its COMMIT and Sync did
 * not. PostgreSQL arms idle_in_transaction_session_timeout only when it
 * has answered a Sync (ReadyForQuery), so this session is never timed out:
 * it keeps the run's row locked until the server's own TCP keepalives drop
 * it (on a real network; behind this proxy it reaches the server over a
 * unix socket and never is). A replica takes the lease over after the TTL
 * but its claim waits for the row lock (lock_timeout, 1 s in its URL here)
 * and gives up without writing anything (exit 75). When the network returns, the
 * holder's COMMIT goes through — its epoch is still current — and its lost
 * lease stops it (exit 3) unless it finished first; a third start finishes
 * the run. What must hold throughout: no row twice, none lost.
 */
START_TEST(test_pgproxy_blackhole_mid_pipeline) {
    int64_t started = h_now_ms();
    pgp *p = px_start();
    const char *url = h_db_new(H_PG);
    char *purl = pgp_url(p, url, PX_HOLDER_OPTS);
    pgp_drop_at_commit(p, 20, PGP_BLACKHOLE_AT_COMMIT, false);
    pid_t a = h_spawn(h_bin(), purl, px_slow, NULL);
    int64_t deadline = h_now_ms() + 30000;
    while (h_now_ms() < deadline && pgp_outcome_of(p) == PGP_NONE) px_sleep_ms(1);
    ck_assert_msg(pgp_outcome_of(p) == PGP_UNKNOWN, "no black hole:\n%s", h_stderr(a));
    ck_assert_msg(pgp_dropped_type(p) == 'B' || pgp_dropped_type(p) == 'P',
                  "the COMMIT went as '%c', not pipelined", pgp_dropped_type(p));
    int64_t t0 = h_now_ms();
    char burl[1024];
    snprintf(burl, sizeof burl, "%s options='-c lock_timeout=1s'", url);
    pid_t b = h_spawn(h_bin(), burl, px_slow, NULL);
    ck_assert_msg(h_await_stderr(b, EVENT("takeover"), 15000), "no takeover:\n%s",
                  h_stderr(b));
    int code = h_wait(b, 30000);
    int64_t b_ms = h_now_ms() - t0;
    /* Its lock wait timed out: temporary, exit 75 (start again later). */
    ck_assert_msg(code == 75 && strstr(h_stderr(b), "55P03"), "replica: exit %d:\n%s", code,
                  h_stderr(b));
    /* The replica wrote nothing: the run is still the holder's. */
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run"), 1);
    pgp_blackhole(p, false);
    int a_code = h_wait(a, 15000);
    ck_assert_msg(a_code == 0 || a_code == 3, "holder: exit %d:\n%s", a_code, h_stderr(a));
    if (a_code == 3) {
        pid_t c = h_spawn(h_bin(), url, px_slow, NULL);
        EXPECT_EXIT(c, h_wait(c, 60000), 0);
    }
    h_assert_rowcopy_exact(url);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), PX_SLOW_ROWS);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'"), 1);
    if (getenv("PX_DEBUG"))
        fprintf(stderr,
                "blackhole (mid-pipeline): replica exit %d after %lld ms (lock_timeout "
                "1 s); holder exit %d when the network returned; %lld ms in all\n",
                code, (long long)b_ms, a_code, (long long)(h_now_ms() - started));
    free(purl);
    pgp_stop(p);
}
END_TEST

/* ------------------------------------------- the URL's settings win over ours */

static int px_sockopt(PGconn *c, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    ck_assert_int_eq(getsockopt(PQsocket(c), level, name, &v, &len), 0);
    return v;
}

static char *px_show(rt_store *s, const char *setting) {
    rt_value arg = rt_text(setting);
    rt_stmt *st;
    ck_assert_int_eq(rt__store_query(s, "SELECT current_setting($1)", 1, &arg, &st), RT_ROW);
    char *v = strdup(s->ops->column_text(st, 0));
    s->ops->reset(st);
    return v;
}

START_TEST(test_pgproxy_url_settings_win) {
    pgp *p = px_start();
    const char *url = h_db_new(H_PG);
    static const struct {
        const char *extra;
        int user_timeout, idle, interval, count;
        const char *idle_tx, *lock;
    } cases[] = {
        {NULL, 30000, 10, 5, 3, "1min", "30s"},
        {"tcp_user_timeout=2500 keepalives_idle=2 keepalives_interval=1 "
         "keepalives_count=4 options='-c idle_in_transaction_session_timeout=3s'",
         2500, 2, 1, 4, "3s", "0"},
    };
    for (int i = 0; i < 2; i++) {
        char *purl = pgp_url(p, url, cases[i].extra);
        rt_store *s = NULL;
        char err[RT_ERRMSG_MAX];
        ck_assert_msg(rt__store_open(purl, &s, err, sizeof err) == RT_OK, "%s", err);
        PGconn *c = s->ops->handle(s);
        ck_assert_int_eq(px_sockopt(c, IPPROTO_TCP, TCP_USER_TIMEOUT), cases[i].user_timeout);
        ck_assert_int_eq(px_sockopt(c, SOL_SOCKET, SO_KEEPALIVE), 1);
        ck_assert_int_eq(px_sockopt(c, IPPROTO_TCP, TCP_KEEPIDLE), cases[i].idle);
        ck_assert_int_eq(px_sockopt(c, IPPROTO_TCP, TCP_KEEPINTVL), cases[i].interval);
        ck_assert_int_eq(px_sockopt(c, IPPROTO_TCP, TCP_KEEPCNT), cases[i].count);
        char *v = px_show(s, "idle_in_transaction_session_timeout");
        ck_assert_str_eq(v, cases[i].idle_tx);
        free(v);
        /* A URL's options= replaces all of ours: lock_timeout is back to
         * the server's default unless the URL repeats it. */
        v = px_show(s, "lock_timeout");
        ck_assert_str_eq(v, cases[i].lock);
        free(v);
        rt__store_close(s);
        free(purl);
    }
    pgp_stop(p);
}
END_TEST

void postgres_wire_add(Suite *s) {
    TCase *tc = tcase_create("pgproxy");
    tcase_set_timeout(tc, 180);
    if (h_backends() > 1) {
        tcase_add_loop_test(tc, test_pgproxy_commit_in_doubt, 0, PX_NCASES);
        tcase_add_loop_test(tc, test_pgproxy_blackhole, 0, 2);
        tcase_add_test(tc, test_pgproxy_blackhole_mid_pipeline);
        tcase_add_test(tc, test_pgproxy_url_settings_win);
    }
    suite_add_tcase(s, tc);
}
