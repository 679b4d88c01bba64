/*
 * check_runner_faults.c — the runner suite's faults part: the runner under
 * the failpoints of the test build (framework/store/failpoint.h; this
 * program links libratchet-hooks.a), in process, on both backends. For
 * each kind of fault (begin, exec, commit, a commit whose reply is lost;
 * RT_DBERR, RT_CONN, RT_BUSY; once or from the Nth call on), set with
 * RATCHET_FAILPOINT and scoped to the run's store by rt__failpoint_reset,
 * and every N until a run goes through without one: the saved progress
 * must agree with the data committed with it, no transaction may be left
 * open, and a new run without faults must resume from there and finish
 * with every row exactly once. FK_DEBUG=1 prints how many runs met a
 * fault, per kind.
 */
#define _POSIX_C_SOURCE 200809L
/* failpoint.h's in-process controls (rt__failpoint_reset): this program
 * links libratchet-hooks.a, which has them. */
#define RT_TEST_HOOKS 1
#include <check.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "service/service.h"
#include "suites.h"
#include "store/failpoint.h"

/* What rt__runner_run came to: its exit code. */
static int runner_exit(rt_store *s, const rt_job *job, const rt__run_opts *o) {
    rt__run_out out;
    rt__runner_run(s, job, o, &out);
    return out.exit_code;
}

/* ---- the job: a table, FK_ROWS items two per chunk, a closing marker */

#define FK_ROWS 5

static int fk_setup(rt_ctx *ctx) {
    int rc = rt_exec(ctx, "CREATE TABLE IF NOT EXISTS fk_rows (run_key TEXT NOT NULL, "
                          "k BIGINT NOT NULL)", 0, NULL);
    return rc == RT_OK ? RT_DONE : rc;
}

static int fk_fill(rt_ctx *ctx) {
    for (int64_t k = rt_cursor_int64(ctx) + 1; k <= FK_ROWS; k++) {
        if (!rt_continue(ctx)) return RT_MORE;
        int rc = RT_EXEC(ctx, "INSERT INTO fk_rows (run_key, k) VALUES ($1, $2)",
                         rt_text(rt_key(ctx)), rt_int(k));
        if (rc != RT_OK) return rc;
        rt_set_cursor_int64(ctx, k);
        rt_add_items(ctx, 1);
    }
    return RT_DONE;
}

static int fk_finish(rt_ctx *ctx) {
    int rc = RT_EXEC(ctx, "INSERT INTO fk_rows (run_key, k) VALUES ($1, 0)",
                     rt_text(rt_key(ctx)));
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step fk_steps[] = {
    {"setup", fk_setup}, {"fill", fk_fill}, {"finish", fk_finish}, {NULL, NULL}};
static const rt_job fk_job = {.name = "faultjob", .steps = fk_steps};

/* ---- the kinds of fault */

/* A failpoint SEAM:ACTION at hit N (persistent: N+, every hit from the Nth
 * on). begin.before fails a BEGIN without beginning, exec a statement
 * without running it, commit.before a COMMIT without committing;
 * commit.after reports an error after the COMMIT went through (its reply
 * lost: the in-doubt case). ioerr is RT_DBERR, busy RT_BUSY, connerr
 * RT_CONN (the store is then broken until the runner reconnects). */
typedef struct fk_kind {
    const char *name;
    const char *seam;
    const char *action;
    bool persistent;
} fk_kind;

/* A persistent RT_BUSY at begin is a database locked for good: the runner
 * waits for it by design (until a stop). A persistent RT_CONN is a server
 * gone for good: the runner reconnects for a minute. Neither is here. */
static const fk_kind fk_kinds[] = {
    {"begin RT_DBERR once", "begin.before", "ioerr", false},
    {"begin RT_CONN once", "begin.before", "connerr", false},
    {"begin RT_BUSY once", "begin.before", "busy", false},
    {"exec RT_DBERR once", "exec", "ioerr", false},
    {"exec RT_CONN once", "exec", "connerr", false},
    {"exec RT_BUSY once", "exec", "busy", false},
    {"commit RT_DBERR once", "commit.before", "ioerr", false},
    {"commit RT_CONN once", "commit.before", "connerr", false},
    {"commit RT_BUSY once", "commit.before", "busy", false},
    {"lost commit reply RT_DBERR", "commit.after", "ioerr", false},
    {"lost commit reply RT_CONN", "commit.after", "connerr", false},
    {"begin RT_DBERR from N on", "begin.before", "ioerr", true},
    {"exec RT_DBERR from N on", "exec", "ioerr", true},
    {"commit RT_DBERR from N on", "commit.before", "ioerr", true},
};
#define FK_NKINDS ((int)(sizeof fk_kinds / sizeof *fk_kinds))

/* ---- reading back, on the real store (no transaction is open then) */

/* The first row of sql ($1 = key) as up to 8 integers; NULL reads as -1
 * with null[i] set. False without a row. */
static bool fk_row(rt_store *s, const char *sql, const char *key, int n, int64_t *v,
                   bool *null) {
    rt_value arg = rt_text(key);
    rt_stmt *st;
    int rc = rt__store_query(s, sql, 1, &arg, &st);
    ck_assert_msg(rc == RT_ROW || rc == RT_DONE, "%s: %s", sql, s->errmsg);
    if (rc == RT_DONE) return false;
    for (int i = 0; i < n; i++) {
        bool isnull = s->ops->column_type(st, i) == RT_TNULL;
        if (null) null[i] = isnull;
        v[i] = isnull ? -1 : s->ops->column_int64(st, i);
    }
    s->ops->reset(st);
    return true;
}

static void fk_assert_no_transaction(rt_store *s, int backend, const char *what) {
    void *h = s->ops->handle(s);
    bool open = backend == H_SQLITE ? !sqlite3_get_autocommit(h)
                                    : PQtransactionStatus(h) != PQTRANS_IDLE;
    ck_assert_msg(!open, "%s: the runner returned with a transaction open", what);
}

/* Status as a number: 0 pending, 1 running, 2 interrupted, 3 done, 9 other. */
#define FK_STATUS                                                              \
    "CASE status WHEN 'pending' THEN 0 WHEN 'running' THEN 1 WHEN "            \
    "'interrupted' THEN 2 WHEN 'done' THEN 3 ELSE 9 END"

/* A run's progress: step, cursor (if any), items in all and in the step. */
typedef struct fk_progress {
    int64_t step_index;
    bool has_cursor;
    int64_t cursor_int;
    int64_t items, step_items;
} fk_progress;

/*
 * What the database holds for key is a state some commit left: want's
 * progress when want is not NULL, and in any case the rows agree with the
 * saved progress, as the commit protocol writes them together: the first
 * `items` keys exactly once, the closing marker only once the run is done.
 */
static void fk_assert_saved(rt_store *s, const char *key, const fk_progress *want,
                            const char *what) {
    int64_t run[6];
    bool null[6];
    int64_t rows[4];
    ck_assert(fk_row(s, "SELECT count(*), count(DISTINCT k), coalesce(max(k), 0), "
                        "count(*) - count(NULLIF(k, 0)) FROM fk_rows WHERE run_key = $1",
                     key, 4, rows, NULL));
    int64_t marker = rows[3], count = rows[0] - marker;
    if (!fk_row(s, "SELECT step_index, cursor_int, items, step_items, " FK_STATUS
                   ", epoch FROM rt_run WHERE job = 'faultjob' AND run_key = $1",
                key, 6, run, null)) {
        ck_assert_msg(!want, "%s: no run row after the run went through", what);
        ck_assert_msg(rows[0] == 0, "%s: rows without a run", what);
        return;
    }
    if (want)
        ck_assert_msg(run[0] == want->step_index && !null[1] == want->has_cursor &&
                          (!want->has_cursor || run[1] == want->cursor_int) &&
                          run[2] == want->items && run[3] == want->step_items,
                      "%s: saved progress (step %lld, cursor %lld%s, items %lld, step "
                      "items %lld) is not (step %lld, cursor %lld%s, items %lld, step "
                      "items %lld)",
                      what, (long long)run[0], (long long)run[1], null[1] ? " null" : "",
                      (long long)run[2], (long long)run[3], (long long)want->step_index,
                      (long long)want->cursor_int, want->has_cursor ? "" : " null",
                      (long long)want->items, (long long)want->step_items);
    /* Items and the step's items move together within step fill. */
    if (run[0] == 1)
        ck_assert_msg(run[3] == run[2], "%s: %lld step items of %lld items in step fill",
                      what, (long long)run[3], (long long)run[2]);
    ck_assert_msg(run[4] != 9, "%s: status is not pending/running/interrupted/done", what);
    ck_assert_msg((run[4] == 3) == (run[0] == 3), "%s: status %lld at step %lld", what,
                  (long long)run[4], (long long)run[0]);
    /* The data is what the progress says: keys 1..items, each once. */
    ck_assert_msg(count == run[2] && rows[1] - (marker > 0) == run[2] && rows[2] == run[2],
                  "%s: %lld rows (%lld distinct, max %lld) for %lld committed items", what,
                  (long long)count, (long long)rows[1], (long long)rows[2], (long long)run[2]);
    if (run[0] == 1) ck_assert_int_eq(null[1] ? 0 : run[1], run[2]);
    ck_assert_msg(marker == (run[0] == 3), "%s: %lld markers at step %lld", what,
                  (long long)marker, (long long)run[0]);
}

/* ---- the loop */

static const char *fk_url(int backend) {
    const char *url = h_db_new(backend);
    if (backend == H_PG) return url;
    /* Durability is not under test here; speed is welcome. */
    static char fast[600];
    snprintf(fast, sizeof fast, "%s?synchronous=off", url);
    return fast;
}

static rt_store *fk_open(const char *url) {
    char err[RT_ERRMSG_MAX];
    rt_store *s = NULL;
    int rc = rt__store_open(url, &s, err, sizeof err);
    ck_assert_msg(rc == RT_OK, "open %s: %s", url, err);
    rc = rt__migrate(s, NULL, NULL);
    ck_assert_msg(rc == RT_OK, "migrate: %s", s->errmsg);
    return s;
}

/* The runner logs every injected failure; keep stderr for Check. */
static FILE *fk_debug; /* FK_DEBUG=1: a summary per kind on the real stderr */

static void fk_quiet(char *path, size_t n) {
    if (getenv("FK_DEBUG")) fk_debug = fdopen(dup(2), "w");
    snprintf(path, n, "/tmp/ratchet-fault-log.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(dup2(fd, 2), 0);
    close(fd);
}

START_TEST(test_fault_nth) {
    int backend = _i / FK_NKINDS;
    const fk_kind *k = &fk_kinds[_i % FK_NKINDS];
    char log[64];
    fk_quiet(log, sizeof log);
    rt_store *real = fk_open(fk_url(backend));
    ck_assert_int_eq(rt__store_exec_script(real, "CREATE TABLE fk_rows (run_key TEXT NOT NULL, "
                                                 "k BIGINT NOT NULL)"),
                     RT_OK);
    int injected_runs = 0;
    for (int n = 1;; n++) {
        ck_assert_msg(n < 500, "%s: still injecting at N = %d", k->name, n);
        char key[32], what[160];
        snprintf(key, sizeof key, "n%d", n);
        snprintf(what, sizeof what, "%s, %s, N = %d (runner log: %s)", h_backend_name(backend),
                 k->name, n, log);
        char spec[96];
        snprintf(spec, sizeof spec, "%s:%s:%d%s", k->seam, k->action, n,
                 k->persistent ? "+" : "");
        ck_assert_int_eq(setenv("RATCHET_FAILPOINT", spec, 1), 0);
        const char *bad = rt__failpoint_reset(real); /* this run's store only */
        ck_assert_msg(bad == NULL, "%s", bad);
        rt__run_opts o = {.key = key, .chunk_items = 2};
        int code = runner_exit(real, &fk_job, &o);
        int64_t injected = rt__failpoint_fired();
        ck_assert_int_eq(unsetenv("RATCHET_FAILPOINT"), 0);
        ck_assert_ptr_null(rt__failpoint_reset(NULL));
        fk_assert_no_transaction(real, backend, what);
        if (injected == 0) {
            /* N is past every call: the run went through untouched. */
            ck_assert_msg(code == RT_EXIT_OK, "%s: exit %d without a fault", what, code);
            fk_progress done = {3, false, 0, FK_ROWS, 0};
            fk_assert_saved(real, key, &done, what);
            break;
        }
        fk_assert_saved(real, key, NULL, what);
        injected_runs++;
        ck_assert_msg(code == RT_EXIT_OK || code == RT_EXIT_FAILED ||
                          code == RT_EXIT_INTERRUPTED,
                      "%s: exit %d", what, code);
        /* A new start without faults resumes from the last commit. */
        rt__run_opts again = {.key = key, .chunk_items = 2};
        code = runner_exit(real, &fk_job, &again);
        ck_assert_msg(code == RT_EXIT_OK, "%s: the resumed run exits %d", what, code);
        fk_assert_no_transaction(real, backend, what);
        fk_progress done = {3, false, 0, FK_ROWS, 0};
        fk_assert_saved(real, key, &done, what);
    }
    ck_assert_msg(injected_runs >= 3, "%s: only %d runs met a fault", k->name, injected_runs);
    if (fk_debug) fprintf(fk_debug, "%s %s: %d runs met a fault\n", h_backend_name(backend),
                          k->name, injected_runs);
    rt__store_close(real);
    unlink(log);
}
END_TEST

void runner_faults_add(Suite *s) {
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_fault_nth, 0, FK_NKINDS * h_backends());
    suite_add_tcase(s, tc);
}
