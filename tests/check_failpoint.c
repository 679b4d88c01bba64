/*
 * check_failpoint.c — the failpoints of build/ratchet-hooks (docs/
 * RELIABILITY.md), driven through the real binary with RATCHET_FAILPOINT:
 *
 *   - the N-th fault loop: for every seam, kill (and inject an I/O error
 *     at) its 1st, 2nd, ... hit until a run completes without meeting it;
 *     after each, resume with build/ratchet and check the jobs' invariants;
 *   - the fencing control: a holder frozen by a `stop` failpoint is taken
 *     over; woken, it must commit nothing (fenced, exit 3) — and with the
 *     fence switched off (RATCHET_TEST_UNFENCED=1) it must write duplicates,
 *     which proves the fenced run's check can fail;
 *   - the grammar: malformed specs are one-line usage errors, and
 *     build/ratchet has no failpoints at all.
 *
 * make check runs the loops for kill on rowcopy and aggregate and for
 * ioerr on rowcopy, over small jobs (a few chunks): some 60 failing starts,
 * each resumed, per loop over all seams.
 * RATCHET_TEST_FAILPOINT_LONG=1 (for make torture) adds ioerr on aggregate
 * and runs over bigger jobs, with more chunks and so more hits of each seam.
 * FP_DEBUG=1 prints how many starts met each seam, and each loop's time.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "invariants.h"
#include "suites.h"

#define EVENT(name) "\"event\":\"" name "\""

static const char *const fp_seams[] = {
    "begin.before",  "begin.after",   "step",
    "commit.before", "commit.after",  "lease.acquire",
    "lease.renew",   "lease.release", "resume.read_cursor",
    "stop.rollback", NULL};

static bool fp_long(void) {
    const char *v = getenv("RATCHET_TEST_FAILPOINT_LONG");
    return v && !strcmp(v, "1");
}

/* A per-test file for RATCHET_FAILPOINT_LOG, removed when the test ends
 * (a failed assertion too exits the test's process). */
static char fp_log[64];

static void fp_log_remove(void) { unlink(fp_log); }

static const char *fp_log_path(void) {
    if (!fp_log[0]) {
        snprintf(fp_log, sizeof fp_log, "/tmp/ratchet-failpoint.%d.log", (int)getpid());
        atexit(fp_log_remove);
    }
    return fp_log;
}

/* Lines the hooks wrote to the log since it was last removed. */
static int fp_fired(void) {
    FILE *f = fopen(fp_log_path(), "r");
    if (!f) return 0;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

/*
 * h_wait without its polling delay (a loop runs some 400 processes): wait
 * for SIGCHLD, which fp_block_sigchld() keeps pending for sigtimedwait.
 * Same results as h_wait: exit code, 128 + signal, or -1 after a timeout
 * (the child then SIGKILLed and reaped).
 */
static void fp_block_sigchld(void) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ck_assert_int_eq(sigprocmask(SIG_BLOCK, &chld, NULL), 0);
}

static int fp_wait(pid_t pid, int timeout_ms) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    int64_t deadline = h_now_ms() + timeout_ms;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        ck_assert_msg(r == 0 || r == pid, "waitpid(%d) failed", (int)pid);
        if (r == pid) break;
        int64_t left = deadline - h_now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        /* At most 50 ms: a SIGCHLD consumed for another child is no loss. */
        if (left > 50) left = 50;
        struct timespec ts = {0, (long)left * 1000000L};
        sigtimedwait(&chld, NULL, &ts);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * One integer query answering 1: the fast path of a check whose detailed
 * assertions (which say what is wrong) run only when it does not. db is a
 * connection held for the whole loop: a new PostgreSQL session for every
 * check would cost the server more than the check does.
 */
static bool fp_holds(inv_db *db, const char *sql) {
    char err[512];
    int64_t v = 0;
    return inv_int(db, sql, &v, err, sizeof err) == INV_VALUE && v == 1;
}

static inv_db *fp_checker(const char *url) {
    char err[512];
    inv_db *db = inv_open(url, err, sizeof err);
    ck_assert_msg(db != NULL, "%s", err);
    return db;
}

/* ------------------------------------------------------------- the jobs */

typedef struct fp_job {
    const char *name;
    const char *const *params; /* --param values, NULL-ended */
    const char *chunk;         /* --chunk-items */
    int64_t a, b;              /* rowcopy: rows; aggregate: days, per_day */
} fp_job;

static fp_job fp_jobs[2];

static void fp_jobs_init(void) {
    bool big = fp_long();
    static const char *const rc_small[] = {"rows=6", NULL};
    static const char *const rc_big[] = {"rows=60", NULL};
    static const char *const ag_small[] = {"days=3", "per_day=4", NULL};
    static const char *const ag_big[] = {"days=12", "per_day=20", NULL};
    fp_jobs[0] = (fp_job){"rowcopy", big ? rc_big : rc_small, big ? "7" : "3", big ? 60 : 6, 0};
    fp_jobs[1] = (fp_job){"aggregate", big ? ag_big : ag_small, "2", big ? 12 : 3,
                          big ? 20 : 4};
}

/* The run key's job is finished and exact, and no run is unfinished. */
static void fp_assert_done(const char *url, inv_db *db, const fp_job *j, const char *key) {
    char sql[2000];
    if (!strcmp(j->name, "rowcopy")) {
        long long r = (long long)j->a;
        snprintf(sql, sizeof sql,
                 "SELECT CASE WHEN (SELECT count(*) FROM rowcopy_dst) = %lld"
                 " AND (SELECT count(DISTINCT id) FROM rowcopy_dst) = %lld"
                 " AND (SELECT count(*) FROM rowcopy_src) = %lld"
                 " AND (SELECT count(*) FROM rowcopy_dst d JOIN rowcopy_src s"
                 "      ON s.id = d.id AND s.payload = d.payload) = %lld"
                 " AND (SELECT rows FROM rowcopy_report WHERE run_key = '%s') = %lld"
                 " AND (SELECT id_sum FROM rowcopy_report WHERE run_key = '%s') = %lld"
                 " AND (SELECT items FROM rt_run WHERE job = 'rowcopy' AND run_key = '%s') = %lld"
                 " AND (SELECT step_index FROM rt_run WHERE job = 'rowcopy' AND run_key = '%s') = 3"
                 " AND (SELECT count(*) FROM rt_run WHERE status <> 'done') = 0"
                 " THEN 1 ELSE 0 END",
                 r, r, r, r, key, r, key, r * (r + 1) / 2, key, r, key);
        if (fp_holds(db, sql)) return;
        h_assert_rowcopy_exact(url);
        h_assert_rowcopy_report(url, key, j->a);
    } else {
        long long days = (long long)j->a;
        snprintf(sql, sizeof sql,
                 "SELECT CASE WHEN (SELECT count(*) FROM agg_events) = %lld"
                 " AND (SELECT count(*) FROM agg_daily d JOIN ("
                 "  SELECT day, count(*) AS events, sum(amount) AS total,"
                 "  count(DISTINCT customer) AS customers FROM agg_events GROUP BY day) e"
                 "  ON e.day = d.day AND e.events = d.events AND e.total = d.total"
                 "  AND e.customers = d.customers WHERE d.run_key = '%s') = %lld"
                 " AND (SELECT count(*) FROM agg_daily WHERE run_key = '%s') = %lld"
                 " AND (SELECT count(*) FROM agg_report WHERE run_key = '%s') = %lld"
                 " AND (SELECT count(DISTINCT day) FROM agg_report WHERE run_key = '%s') = %lld"
                 " AND (SELECT items FROM rt_run WHERE job = 'aggregate' AND run_key = '%s') = %lld"
                 " AND (SELECT step_index FROM rt_run WHERE job = 'aggregate' AND run_key = '%s') = 3"
                 " AND (SELECT count(*) FROM rt_run WHERE status <> 'done') = 0"
                 " THEN 1 ELSE 0 END",
                 days * (long long)j->b, key, days, key, days, key, days, key, days, key,
                 days, key);
        if (fp_holds(db, sql)) return;
        h_assert_aggregate_exact(url, key, j->a, j->b);
    }
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM rt_run WHERE job = '%s' AND run_key = '%s' AND "
             "status = 'done' AND step_index = 3 AND items = %lld",
             j->name, key, (long long)j->a);
    ck_assert_msg(h_query_int(url, sql) == 1, "run %s/%s is not done with %lld items",
                  j->name, key, (long long)j->a);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status <> 'done'"),
                     0);
}

/*
 * Between the failed start and the resume: whatever the run's committed
 * progress says agrees with the data it describes.
 */
static void fp_assert_consistent(const char *url, inv_db *db, const fp_job *j,
                                 const char *key) {
    char sql[800];
    if (!strcmp(j->name, "rowcopy")) {
        /* One query when it holds; errors (no table yet) and a failure go
         * to the detailed check. No run row yet is consistent too. */
        snprintf(sql, sizeof sql,
                 "SELECT coalesce(max(CASE WHEN r.step_index <> 1 OR ("
                 " (SELECT count(*) FROM rowcopy_dst) = r.step_items"
                 " AND (SELECT count(DISTINCT id) FROM rowcopy_dst) = r.step_items"
                 " AND (SELECT coalesce(max(id), 0) FROM rowcopy_dst) = coalesce(r.cursor_int, 0)"
                 " AND r.step_items = coalesce(r.cursor_int, 0)) THEN 1 ELSE 0 END), 1)"
                 " FROM rt_run r WHERE r.job = 'rowcopy' AND r.run_key = '%s'",
                 key);
        if (!fp_holds(db, sql))
            h_rowcopy_consistent(url, key); /* asserts while in step copy */
        return;
    }
    snprintf(sql, sizeof sql,
             "SELECT step_index FROM rt_run WHERE job = 'aggregate' AND run_key = '%s'", key);
    char err[512];
    int64_t step = -1;
    if (inv_int(db, sql, &step, err, sizeof err) != INV_VALUE || step != 2)
        return; /* the atomic steps leave nothing half-done */
    snprintf(sql, sizeof sql,
             "SELECT CASE WHEN r.step_items = coalesce(r.cursor_int, 0)"
             " AND r.step_items = (SELECT count(*) FROM agg_report a WHERE a.run_key = '%s')"
             " AND r.step_items = (SELECT count(DISTINCT day) FROM agg_report a"
             "  WHERE a.run_key = '%s' AND a.day <= coalesce(r.cursor_int, 0))"
             " THEN 1 ELSE 0 END FROM rt_run r WHERE r.job = 'aggregate' AND r.run_key = '%s'",
             key, key, key);
    ck_assert_msg(fp_holds(db, sql), "aggregate run %s: its report lines and its "
                  "committed progress disagree", key);
}

/* argv for job j and run key into out; slow: rowcopy takes 30 ms an item
 * (so that the heartbeat beats during the run). */
static void fp_argv(const fp_job *j, const char *key, bool slow, const char **out, int cap) {
    int n = 0;
    out[n++] = "run";
    out[n++] = j->name;
    out[n++] = "--key";
    out[n++] = key;
    for (int i = 0; j->params[i]; i++) {
        out[n++] = "--param";
        out[n++] = j->params[i];
    }
    if (slow && !strcmp(j->name, "rowcopy")) {
        out[n++] = "--param";
        out[n++] = "item_us=30000";
    }
    out[n++] = "--chunk-items";
    out[n++] = j->chunk;
    /* Short: the heartbeat (failpoint lease.renew) beats within a run. */
    out[n++] = "--lease-ttl";
    out[n++] = "0.3";
    /* A killed holder's liveness lock may take a moment to go (PostgreSQL). */
    out[n++] = "--if-running";
    out[n++] = "wait";
    out[n] = NULL;
    ck_assert_int_lt(n, cap);
}

/* ------------------------------------------------- the N-th fault loop */

enum { FP_KILL, FP_IOERR };

/* For stop.rollback a stop must come first: SIGTERM at begin.after hit n. */
static void fp_spec(char *out, size_t n, const char *seam, int action, int nth) {
    const char *act = action == FP_KILL ? "kill" : "ioerr";
    if (!strcmp(seam, "stop.rollback"))
        snprintf(out, n, "RATCHET_FAILPOINT=begin.after:term:%d,stop.rollback:%s", nth, act);
    else
        snprintf(out, n, "RATCHET_FAILPOINT=%s:%s:%d", seam, act, nth);
}

/* Returns how many starts met the failpoint. The processes use run_url,
 * the checks url (the same database). */
static int fp_nth_loop(const char *url, const char *run_url, inv_db *db,
                       const fp_job *j, const char *seam, int action) {
    char log_env[128];
    snprintf(log_env, sizeof log_env, "RATCHET_FAILPOINT_LOG=%s", fp_log_path());
    int met = 0;
    for (int nth = 1;; nth++) {
        ck_assert_msg(nth < 1000, "%s: still firing at hit %d", seam, nth);
        char key[64], spec[160];
        snprintf(key, sizeof key, "%s-%d", seam, nth);
        fp_spec(spec, sizeof spec, seam, action, nth);
        bool slow = !strcmp(seam, "lease.renew");
        const char *argv[32];
        fp_argv(j, key, slow, argv, 32);
        unlink(fp_log_path());
        pid_t pid = h_spawn(h_hooks_bin(), run_url, argv, ARGS(spec, log_env));
        int code = fp_wait(pid, 60000);
        int fired = fp_fired();
        if (!fired) {
            /* Past the last hit: the start ran to its end untouched. */
            EXPECT_EXIT(pid, code, 0);
            fp_assert_done(url, db, j, key);
            return met;
        }
        met++;
        if (action == FP_KILL && strcmp(seam, "stop.rollback") != 0)
            EXPECT_EXIT(pid, code, EXIT_SIGKILL);
        else
            ck_assert_msg(code == 0 || code == 1 || code == 75 || code == EXIT_SIGKILL,
                          "%s: exit %d; stderr:\n%s", spec, code, h_stderr(pid));
        fp_assert_consistent(url, db, j, key);
        /* build/ratchet, without hooks, resumes from the last commit. */
        const char *resume[32];
        fp_argv(j, key, slow, resume, 32);
        pid_t again = h_spawn(h_bin(), run_url, resume, NULL);
        EXPECT_EXIT(again, fp_wait(again, 60000), 0);
        fp_assert_done(url, db, j, key);
    }
}

/* The loops make check runs (job, action); the long variant adds the rest. */
static const int fp_combos[][2] = {{0, FP_KILL}, {1, FP_KILL}, {0, FP_IOERR}, {1, FP_IOERR}};

static int fp_ncombos(void) { return fp_long() ? 4 : 3; }

/* _i: backend * fp_ncombos() + combination. */
START_TEST(test_nth_fault_loop) {
    int backend = _i / fp_ncombos();
    const fp_job *j = &fp_jobs[fp_combos[_i % fp_ncombos()][0]];
    int action = fp_combos[_i % fp_ncombos()][1];
    const char *url = h_db_new(backend);
    h_migrate(url);
    fp_block_sigchld();
    inv_db *db = fp_checker(url);
    /* A killed process loses nothing the OS has (only power loss would):
     * SQLite need not sync, which makes each start much cheaper. */
    char run_url[600];
    snprintf(run_url, sizeof run_url, "%s%s", url,
             backend == H_SQLITE ? "?synchronous=off" : "");
    int64_t t0 = h_now_ms();
    for (int s = 0; fp_seams[s]; s++) {
        int met = fp_nth_loop(url, run_url, db, j, fp_seams[s], action);
        /* Every seam is on the path of a plain run (lease.renew: the
         * heartbeat or, on SQLite, the refresh in a commit). */
        if (strcmp(fp_seams[s], "lease.renew") != 0)
            ck_assert_msg(met >= 1, "%s: failpoint %s never fired", j->name, fp_seams[s]);
        if (getenv("FP_DEBUG"))
            fprintf(stderr, "%s %s %s %s: %d starts met it\n", h_backend_name(backend),
                    j->name, action == FP_KILL ? "kill" : "ioerr", fp_seams[s], met);
    }
    if (getenv("FP_DEBUG"))
        fprintf(stderr, "%s %s %s: %lld ms\n", h_backend_name(backend), j->name,
                action == FP_KILL ? "kill" : "ioerr", (long long)(h_now_ms() - t0));
    inv_close(db);
    unlink(fp_log_path());
}
END_TEST

/* ------------------------------------------------- the fencing control */

/* Wait until pid stops itself (a `stop` failpoint); fails if it exits. */
static void fp_await_stopped(pid_t pid, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WUNTRACED | WNOHANG);
        ck_assert_msg(r == 0 || r == pid, "waitpid failed");
        if (r == pid) {
            ck_assert_msg(WIFSTOPPED(status), "the holder ended (status %d) before its "
                          "failpoint stopped it:\n%s", status, h_stderr(pid));
            return;
        }
        if (h_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            ck_abort_msg("the holder did not stop within %d ms:\n%s", timeout_ms,
                         h_stderr(pid));
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

/*
 * _i: backend * 2 + unfenced. Holder A (ratchet-hooks, rowcopy) freezes
 * itself mid-copy with a `stop` failpoint, outside any transaction on
 * SQLite (a writer stopped inside one stalls every writer: SQLite's
 * nature) and mid-chunk inside its transaction on PostgreSQL. Replica B
 * (build/ratchet) takes the run over once A's lease expires and finishes
 * it. Then A wakes and carries on to its next commit.
 */
START_TEST(test_fence_control) {
    int backend = _i / 2;
    bool unfenced = _i % 2;
    const char *url = h_db_new(backend);
    h_migrate(url);
    /* SQLite: before the 9th BEGIN (4 copy chunks committed); PostgreSQL:
     * at the 450th item boundary (mid-chunk 5, 4 chunks committed). */
    const char *spec = backend == H_SQLITE ? "RATCHET_FAILPOINT=begin.before:stop:9"
                                           : "RATCHET_FAILPOINT=step:stop:450";
    const char *const argv[] = {"run", "rowcopy", "--key", "f", "--param", "rows=2000",
                                "--chunk-items", "100", "--lease-ttl", "1",
                                "--if-running", "wait", NULL};
    pid_t a = h_spawn(h_hooks_bin(), url, argv,
                      ARGS(spec, unfenced ? "RATCHET_TEST_UNFENCED=1" : "RATCHET_TEST_UNFENCED=0"));
    fp_await_stopped(a, 30000);
    int64_t a_items = h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'f'");
    ck_assert_msg(a_items > 0 && a_items < 2000, "A stopped at %lld items, not mid-copy",
                  (long long)a_items);
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'f'"), 1);

    /* B waits for A's lease to expire (A is alive: its liveness lock holds),
     * takes over, and finishes the run. */
    pid_t b = h_spawn(h_bin(), url, argv, NULL);
    int code = h_wait(b, 60000);
    if (code != 0) kill(a, SIGKILL);
    EXPECT_EXIT(b, code, 0);
    ck_assert_msg(strstr(h_stderr(b), EVENT("takeover")) && strstr(h_stderr(b), "lease expired"),
                  "B did not take over an expired lease:\n%s", h_stderr(b));
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'f'"), 2);
    h_assert_rowcopy_exact(url);
    h_assert_rowcopy_report(url, "f", 2000);

    /* A wakes up and reaches its next commit. */
    ck_assert_int_eq(kill(a, SIGCONT), 0);
    code = h_wait(a, 60000);
    int64_t dups = h_query_int(url, "SELECT count(*) - count(DISTINCT id) FROM rowcopy_dst");
    if (unfenced) {
        /* The control: without the fence the stale holder's chunk commits
         * over B's work. If this fails, the fenced case proves nothing. */
        ck_assert_msg(dups > 0, "no duplicates without the fence (A exit %d):\n%s", code,
                      h_stderr(a));
        return;
    }
    EXPECT_EXIT(a, code, 3);
    ck_assert(strstr(h_stderr(a), EVENT("lease_lost")) != NULL);
    ck_assert(strstr(h_stderr(a), EVENT("done")) == NULL);
    ck_assert_msg(dups == 0, "%lld duplicate rows with the fence", (long long)dups);
    h_assert_rowcopy_exact(url);
    h_assert_rowcopy_report(url, "f", 2000);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'f'"), 2000);
    ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'f'"), 2);
    char *status = h_query_text(url, "SELECT status FROM rt_run WHERE run_key = 'f'");
    ck_assert_str_eq(status, "done");
    free(status);
}
END_TEST

/* ------------------------------------------------------------ the grammar */

START_TEST(test_failpoint_spec) {
    const char *url = h_db_new(H_SQLITE);
    static const char *const bad[][2] = {
        {"RATCHET_FAILPOINT=nosuch:kill", "unknown failpoint 'nosuch'"},
        {"RATCHET_FAILPOINT=commit.before", "needs an action"},
        {"RATCHET_FAILPOINT=commit.before:explode", "needs an action"},
        {"RATCHET_FAILPOINT=commit.before:sleep", "needs milliseconds"},
        {"RATCHET_FAILPOINT=commit.before:sleep:x:2", "needs milliseconds"},
        {"RATCHET_FAILPOINT=commit.before:kill:0", "bad hit count"},
        {"RATCHET_FAILPOINT=commit.before:kill:2:3", "bad hit count"},
        {"RATCHET_FAILPOINT=step:kill,,step:ioerr", "empty failpoint"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pid_t p = h_spawn(h_hooks_bin(), url, ARGS("run", "rowcopy", "--param", "rows=5"),
                          ARGS(bad[i][0]));
        EXPECT_EXIT(p, h_wait(p, 10000), 2);
        ck_assert_msg(strstr(h_stderr(p), bad[i][1]), "%s: want '%s' in:\n%s", bad[i][0],
                      bad[i][1], h_stderr(p));
        ck_assert_int_eq(h_count_lines(h_stderr(p)), 1);
    }
    char log_env[128];
    snprintf(log_env, sizeof log_env, "RATCHET_FAILPOINT_LOG=%s", fp_log_path());
    /* sleep:MS at the Nth hit, and a list of two. */
    unlink(fp_log_path());
    int64_t t0 = h_now_ms();
    pid_t p = h_spawn(h_hooks_bin(), url,
                      ARGS("run", "rowcopy", "--key", "s", "--param", "rows=5"),
                      ARGS("RATCHET_FAILPOINT=commit.before:sleep:400:3,lease.release:sleep:1",
                           log_env));
    EXPECT_EXIT(p, h_wait(p, 30000), 0);
    ck_assert_int_ge(h_now_ms() - t0, 400);
    ck_assert_int_eq(fp_fired(), 2);
    /* N+: every hit from the Nth; the first failure ends the run (75),
     * the lease release after it fails too. */
    unlink(fp_log_path());
    p = h_spawn(h_hooks_bin(), url, ARGS("run", "rowcopy", "--key", "p", "--param", "rows=5"),
                ARGS("RATCHET_FAILPOINT=begin.before:ioerr:4+", log_env));
    int code = h_wait(p, 30000);
    ck_assert_msg(code == 75 || code == 1, "exit %d:\n%s", code, h_stderr(p));
    ck_assert_msg(strstr(h_stderr(p), "injected I/O error (failpoint begin.before, hit 4)"),
                  "%s", h_stderr(p));
    ck_assert_int_ge(fp_fired(), 2);
    /* A SIGTERM after the run's end (its connections closed, just before
     * exit) changes nothing: exit 0, the handlers still catch it (put
     * back before exit, the default action made it 143). */
    unlink(fp_log_path());
    p = h_spawn(h_hooks_bin(), url, ARGS("run", "rowcopy", "--key", "x", "--param", "rows=5"),
                ARGS("RATCHET_FAILPOINT=run.exit:term", log_env));
    EXPECT_EXIT(p, h_wait(p, 30000), 0);
    ck_assert_int_eq(fp_fired(), 1);
    /* build/ratchet has no failpoints: the same spec changes nothing. */
    unlink(fp_log_path());
    p = h_spawn(h_bin(), url, ARGS("run", "rowcopy", "--key", "p", "--param", "rows=5"),
                ARGS("RATCHET_FAILPOINT=begin.before:kill", "RATCHET_TEST_UNFENCED=1", log_env));
    EXPECT_EXIT(p, h_wait(p, 30000), 0);
    ck_assert_int_eq(fp_fired(), 0);
    h_assert_rowcopy_exact(url);
    unlink(fp_log_path());
}
END_TEST

Suite *failpoint_suite(void) {
    fp_jobs_init();
    Suite *s = suite_create("failpoint");
    int n = h_backends();
    TCase *spec = tcase_create("spec");
    tcase_set_timeout(spec, 60);
    tcase_add_test(spec, test_failpoint_spec);
    suite_add_tcase(s, spec);
    TCase *fence = tcase_create("fence");
    tcase_set_timeout(fence, 120);
    tcase_add_loop_test(fence, test_fence_control, 0, 2 * n);
    suite_add_tcase(s, fence);
    TCase *nth = tcase_create("nth");
    tcase_set_timeout(nth, fp_long() ? 3600 : 300);
    tcase_add_loop_test(nth, test_nth_fault_loop, 0, fp_ncombos() * n);
    suite_add_tcase(s, nth);
    return s;
}
