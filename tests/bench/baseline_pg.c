/*
 * baseline_pg.c — the hand-written PostgreSQL baseline for `make bench`:
 * rowcopy's copy step written directly against libpq, with no framework,
 * plainly (copy) and in pipeline mode (pcopy). The libpq twin of
 * baseline_sqlite.c, with the same command lines (pcopy is its own).
 *
 *   baseline_pg copy CONNINFO ROWS CHUNK
 *       Seeds rowcopy_src with ids 1..ROWS exactly as jobs/rowcopy.c does
 *       (untimed), then copies it into rowcopy_dst doing what ratchet does on
 *       PostgreSQL (framework/store/postgres.c, jobs/rowcopy.c): statements
 *       prepared once (PQprepare, parameter types inferred by the server),
 *       parameters sent as text, results fetched whole. Per transaction:
 *       "BEGIN" (PQexec); in the first one "SELECT count(*) FROM
 *       rowcopy_src"; one "SELECT id, payload FROM rowcopy_src WHERE id > $1
 *       ORDER BY id LIMIT $2" (LIMIT = min(CHUNK, 10000)); one "INSERT INTO
 *       rowcopy_dst" per row; then the fenced progress update "UPDATE
 *       bench_progress SET ... WHERE id = $1 AND epoch = $2" (one row must
 *       change, as ratchet checks) and "COMMIT" (PQexec). Prints one line:
 *           items=N ms=F cpu_ms=G
 *       where ms covers the copy only (first BEGIN to last COMMIT), the same
 *       span as ratchet's step_done "ms" for the copy step, and cpu_ms is
 *       this process's CPU time (user + system) in that span.
 *
 *   baseline_pg pcopy CONNINFO ROWS CHUNK
 *       The same copy in libpq pipeline mode (PQenterPipelineMode, once): the
 *       hand-written twin of `ratchet run rowcopy --param pipeline=true`.
 *       Same seed, statements (prepared once), LIMIT, commit cadence and
 *       output line. Per transaction, two round trips: BEGIN (and in the
 *       first one the count) and the SELECT go out together and are read at
 *       one sync; then every INSERT (PQsendQueryPrepared with the row's
 *       values, straight from the SELECT's result), the fenced progress
 *       update and COMMIT go out without waiting and their results are read
 *       at the chunk's end, after one PQpipelineSync. As COMMIT does not wait
 *       for the update's row count, the fence is enforced in the server: the
 *       update is "WITH u AS (UPDATE ... WHERE id = $1 AND epoch = $2
 *       RETURNING 1) SELECT 1 / (SELECT count(*)::int FROM u)", which fails
 *       (division by zero) when no row changed, so the transaction aborts
 *       and COMMIT rolls back. That is the fewest round trips a correct
 *       hand-written loop can do (ratchet reads the update's result before
 *       it sends COMMIT: one round trip more per chunk).
 *
 *   baseline_pg fsync CONNINFO N
 *       The commit floor: N tiny transactions (BEGIN; UPDATE one row;
 *       COMMIT), each one a WAL flush when the server has fsync and
 *       synchronous_commit on. Prints "commits=N ms=F".
 *
 *   baseline_pg resume CONNINFO JOB KEY
 *       The floor under ratchet's resume latency: connect, read the run's
 *       cursor (one row of rt_run), print "resumed cursor=N" on stderr, then
 *       copy one item the way a chunk of 1 does (BEGIN; SELECT the next row;
 *       INSERT it; UPDATE the run's cursor; COMMIT), print "committed" on
 *       stderr, and exit.
 *
 * The connection sets the session options ratchet sets (store/postgres.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static PGconn *conn;

static void die(const char *what, const PGresult *res) {
    fprintf(stderr, "baseline_pg: %s: %s\n", what,
            res ? PQresultErrorMessage(res)
                : conn ? PQerrorMessage(conn) : "no connection");
    exit(1);
}

static double clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
static double cpu_ms(void) { return clock_ms(CLOCK_PROCESS_CPUTIME_ID); }

/* A command without parameters (PQexec, as ratchet's BEGIN and COMMIT). */
static void exec(const char *sql) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) die(sql, res);
    PQclear(res);
}

static void prepare(const char *name, const char *sql, int nparams) {
    PGresult *res = PQprepare(conn, name, sql, nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) die(sql, res);
    PQclear(res);
}

/* Execute a prepared statement with text parameters; the caller clears. */
static PGresult *run(const char *name, int n, const char *const *vals) {
    PGresult *res = PQexecPrepared(conn, name, n, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) die(name, res);
    return res;
}

static void run_clear(const char *name, int n, const char *const *vals) {
    PQclear(run(name, n, vals));
}

static void open_db(const char *conninfo) {
    /* ratchet's session defaults (store/postgres.c); the conninfo wins. */
    const char *keys[] = {"application_name", "options", "dbname", NULL};
    const char *vals[] = {"ratchet-bench-baseline",
                          "-c idle_in_transaction_session_timeout=60s "
                          "-c lock_timeout=30s -c statement_timeout=0",
                          conninfo, NULL};
    conn = PQconnectdbParams(keys, vals, 1);
    if (!conn || PQstatus(conn) != CONNECTION_OK) die("connect", NULL);
    exec("SET client_min_messages = warning");
}

static void progress_table(void) {
    exec("CREATE TABLE IF NOT EXISTS bench_progress ("
         " id BIGINT PRIMARY KEY, epoch BIGINT NOT NULL, cursor_int BIGINT,"
         " items BIGINT NOT NULL, updated_ms BIGINT)");
    exec("INSERT INTO bench_progress VALUES (1, 1, NULL, 0, NULL) "
         "ON CONFLICT (id) DO NOTHING");
}

static int64_t parse_count(const char *s, const char *what) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0) {
        fprintf(stderr, "baseline_pg: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static int64_t scalar(const char *sql) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        die(sql, res);
    int64_t v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* rowcopy's seed step, same statements, one transaction (untimed). */
static void seed(int64_t rows) {
    exec("BEGIN");
    exec("CREATE TABLE IF NOT EXISTS rowcopy_src ("
         " id INTEGER PRIMARY KEY, payload TEXT NOT NULL);"
         "DROP TABLE IF EXISTS rowcopy_dst;"
         "CREATE TABLE rowcopy_dst (id INTEGER, payload TEXT);"
         "CREATE TABLE IF NOT EXISTS rowcopy_report ("
         " run_key TEXT PRIMARY KEY, rows BIGINT, id_sum BIGINT)");
    if (scalar("SELECT count(*) FROM rowcopy_src") != rows ||
        scalar("SELECT coalesce(max(id), 0) FROM rowcopy_src") != rows) {
        exec("DELETE FROM rowcopy_src");
        char n[32];
        snprintf(n, sizeof n, "%lld", (long long)rows);
        const char *v[] = {n};
        prepare("seed",
                "INSERT INTO rowcopy_src (id, payload) "
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                " SELECT i + 1 FROM n WHERE i < $1) "
                "SELECT i, 'row-' || i FROM n WHERE i <= $1",
                0);
        run_clear("seed", 1, v);
    }
    exec("UPDATE bench_progress SET cursor_int = NULL, items = 0 WHERE id = 1");
    exec("COMMIT");
}

/* A fenced progress update: exactly one row must change. */
static void progress(int64_t cursor, int64_t items) {
    char c[32], i[32];
    snprintf(c, sizeof c, "%lld", (long long)cursor);
    snprintf(i, sizeof i, "%lld", (long long)items);
    const char *v[] = {"1", "1", c, i};
    PGresult *res = run("prog", 4, v);
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        fprintf(stderr, "baseline_pg: progress update fenced out\n");
        exit(1);
    }
    PQclear(res);
}

/*
 * The timed part: rowcopy's copy step, chunk by chunk. Returns the items
 * copied; *total is the count rowcopy reads for its progress total.
 */
static __attribute__((noinline)) int64_t copy(int64_t chunk, int64_t *total) {
    int64_t cursor = 0, items = 0;
    *total = -1;
    for (;;) {
        exec("BEGIN");
        if (*total < 0) {
            PGresult *res = run("count", 0, NULL);
            *total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            PQclear(res);
        }
        int64_t limit = chunk > 10000 ? 10000 : chunk;
        char cur[32], lim[32];
        snprintf(cur, sizeof cur, "%lld", (long long)cursor);
        snprintf(lim, sizeof lim, "%lld", (long long)limit);
        const char *sv[] = {cur, lim};
        PGresult *sel = run("sel", 2, sv);
        int64_t fetched = PQntuples(sel);
        int64_t n = fetched < chunk ? fetched : chunk;
        for (int64_t r = 0; r < n; r++) {
            const char *iv[] = {PQgetvalue(sel, (int)r, 0),
                                PQgetvalue(sel, (int)r, 1)};
            PGresult *ins = run("ins", 2, iv);
            PQclear(ins);
            cursor = strtoll(iv[0], NULL, 10);
            items++;
        }
        PQclear(sel);
        progress(cursor, items);
        exec("COMMIT");
        /* rowcopy: a chunk that got fewer rows than it asked for is the
         * last; one that got exactly its limit goes round once more. */
        if (fetched < limit) return items;
    }
}

/* Pipeline mode: queue a prepared statement's execution (text values). */
static void psend(const char *name, int n, const char *const *vals) {
    if (!PQsendQueryPrepared(conn, name, n, vals, NULL, NULL, 0)) die(name, NULL);
}

/* Pipeline mode: queue a command without parameters (BEGIN, COMMIT). */
static void psend_sql(const char *sql) {
    if (!PQsendQueryParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0))
        die(sql, NULL);
}

/*
 * Pipeline mode: sync, then read the results of the n commands queued since
 * the last sync, in order. Results from index from on go to keep[i - from]
 * (the caller clears them); the others are cleared as they come. Dies on the
 * first failed command, and says so when it was the fenced progress update.
 */
static void psync(int64_t n, int64_t from, PGresult **keep) {
    if (!PQpipelineSync(conn)) die("PQpipelineSync", NULL);
    for (int64_t i = 0; i < n; i++) {
        PGresult *res = PQgetResult(conn);
        if (!res) die("pipeline: a result is missing", NULL);
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (state && !strcmp(state, "22012")) {
                fprintf(stderr, "baseline_pg: progress update fenced out\n");
                exit(1);
            }
            die("pipelined command", res);
        }
        if (i >= from) keep[i - from] = res;
        else PQclear(res);
        if (PQgetResult(conn) != NULL) die("pipeline: an extra result", NULL);
    }
    PGresult *res = PQgetResult(conn);
    if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) die("pipeline: no sync", res);
    PQclear(res);
}

/*
 * The timed part, pipelined (pcopy): the same chunks as copy(), two round
 * trips per transaction. Returns the items copied; *total as in copy().
 */
static __attribute__((noinline)) int64_t copy_pipelined(int64_t chunk,
                                                        int64_t *total) {
    int64_t cursor = 0, items = 0;
    *total = -1;
    if (!PQenterPipelineMode(conn)) die("PQenterPipelineMode", NULL);
    for (;;) {
        int64_t limit = chunk > 10000 ? 10000 : chunk;
        char cur[32], lim[32];
        snprintf(cur, sizeof cur, "%lld", (long long)cursor);
        snprintf(lim, sizeof lim, "%lld", (long long)limit);
        const char *sv[] = {cur, lim};
        /* Round trip 1: BEGIN, (the count,) the SELECT. */
        PGresult *got[3];
        int n = 0;
        psend_sql("BEGIN");
        n++;
        if (*total < 0) {
            psend("count", 0, NULL);
            n++;
        }
        psend("sel", 2, sv);
        n++;
        psync(n, 0, got);
        if (*total < 0) *total = strtoll(PQgetvalue(got[1], 0, 0), NULL, 10);
        for (int i = 0; i < n - 1; i++) PQclear(got[i]);
        PGresult *sel = got[n - 1];
        /* Round trip 2: the INSERTs, the fenced update, COMMIT. */
        int64_t fetched = PQntuples(sel);
        int64_t rows = fetched < chunk ? fetched : chunk;
        for (int64_t r = 0; r < rows; r++) {
            const char *iv[] = {PQgetvalue(sel, (int)r, 0),
                                PQgetvalue(sel, (int)r, 1)};
            psend("ins", 2, iv);
            cursor = strtoll(iv[0], NULL, 10);
            items++;
        }
        char c[32], it[32];
        snprintf(c, sizeof c, "%lld", (long long)cursor);
        snprintf(it, sizeof it, "%lld", (long long)items);
        const char *pv[] = {"1", "1", c, it};
        psend("fprog", 4, pv);
        psend_sql("COMMIT");
        PGresult *commit;
        psync(rows + 2, rows + 1, &commit);
        if (strcmp(PQcmdStatus(commit), "COMMIT") != 0)
            die("COMMIT rolled back", NULL);
        PQclear(commit);
        PQclear(sel);
        if (fetched < limit) {
            if (!PQexitPipelineMode(conn)) die("PQexitPipelineMode", NULL);
            return items;
        }
    }
}

static void prepare_copy(void) {
    prepare("count", "SELECT count(*) FROM rowcopy_src", 0);
    prepare("sel",
            "SELECT id, payload FROM rowcopy_src WHERE id > $1 "
            "ORDER BY id LIMIT $2",
            0);
    prepare("ins", "INSERT INTO rowcopy_dst (id, payload) VALUES ($1, $2)", 0);
    prepare("prog",
            "UPDATE bench_progress SET cursor_int = $3, items = $4, "
            "updated_ms = (extract(epoch from clock_timestamp()) * 1000)::bigint "
            "WHERE id = $1 AND epoch = $2",
            0);
    /* pcopy: the same update, failing in the server when no row changed. */
    prepare("fprog",
            "WITH u AS (UPDATE bench_progress SET cursor_int = $3, items = $4, "
            "updated_ms = (extract(epoch from clock_timestamp()) * 1000)::bigint "
            "WHERE id = $1 AND epoch = $2 RETURNING 1) "
            "SELECT 1 / (SELECT count(*)::int FROM u)",
            0);
}

static int cmd_copy(const char *conninfo, int64_t rows, int64_t chunk,
                    bool pipelined) {
    if (chunk < 1) {
        fprintf(stderr, "baseline_pg: CHUNK must be >= 1\n");
        return 2;
    }
    open_db(conninfo);
    progress_table();
    seed(rows);
    prepare_copy();

    int64_t total;
    double c0 = cpu_ms(), t0 = now_ms();
    int64_t items = pipelined ? copy_pipelined(chunk, &total) : copy(chunk, &total);
    double ms = now_ms() - t0, cpu = cpu_ms() - c0;

    int64_t copied = scalar("SELECT count(*) FROM rowcopy_dst");
    if (copied != rows || items != rows || total != rows) {
        fprintf(stderr,
                "baseline_pg: copied %lld rows (items %lld, total %lld), "
                "expected %lld\n",
                (long long)copied, (long long)items, (long long)total,
                (long long)rows);
        return 1;
    }
    PQfinish(conn);
    printf("items=%lld ms=%.3f cpu_ms=%.3f\n", (long long)items, ms, cpu);
    return 0;
}

static int cmd_fsync(const char *conninfo, int64_t n) {
    open_db(conninfo);
    progress_table();
    prepare("upd",
            "UPDATE bench_progress SET cursor_int = $1, items = items + 1 "
            "WHERE id = 1",
            0);
    double t0 = now_ms();
    for (int64_t i = 1; i <= n; i++) {
        char c[32];
        snprintf(c, sizeof c, "%lld", (long long)i);
        const char *v[] = {c};
        exec("BEGIN");
        run_clear("upd", 1, v);
        exec("COMMIT");
    }
    double ms = now_ms() - t0;
    PQfinish(conn);
    printf("commits=%lld ms=%.3f\n", (long long)n, ms);
    return 0;
}

static int cmd_resume(const char *conninfo, const char *job, const char *key) {
    open_db(conninfo);
    const char *rv[] = {job, key};
    prepare("run", "SELECT id, cursor_int FROM rt_run WHERE job = $1 AND "
                   "run_key = $2", 0);
    PGresult *res = run("run", 2, rv);
    if (PQntuples(res) != 1) die("run not found", NULL);
    char id[32], cur[32];
    snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
    snprintf(cur, sizeof cur, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    fprintf(stderr, "resumed cursor=%s\n", cur);
    prepare("sel", "SELECT id, payload FROM rowcopy_src WHERE id > $1 "
                   "ORDER BY id LIMIT $2", 0);
    prepare("ins", "INSERT INTO rowcopy_dst (id, payload) VALUES ($1, $2)", 0);
    prepare("upd", "UPDATE rt_run SET cursor_int = $2 WHERE id = $1", 0);
    exec("BEGIN");
    const char *sv[] = {cur, "1"};
    PGresult *sel = run("sel", 2, sv);
    if (PQntuples(sel) == 1) {
        const char *iv[] = {PQgetvalue(sel, 0, 0), PQgetvalue(sel, 0, 1)};
        run_clear("ins", 2, iv);
        const char *uv[] = {id, PQgetvalue(sel, 0, 0)};
        run_clear("upd", 2, uv);
    }
    PQclear(sel);
    exec("COMMIT");
    fprintf(stderr, "committed\n");
    PQfinish(conn);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && (!strcmp(argv[1], "copy") || !strcmp(argv[1], "pcopy")))
        return cmd_copy(argv[2], parse_count(argv[3], "ROWS"),
                        parse_count(argv[4], "CHUNK"), argv[1][0] == 'p');
    if (argc == 4 && !strcmp(argv[1], "fsync"))
        return cmd_fsync(argv[2], parse_count(argv[3], "N"));
    if (argc == 5 && !strcmp(argv[1], "resume"))
        return cmd_resume(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: baseline_pg copy|pcopy CONNINFO ROWS CHUNK\n"
                    "       baseline_pg fsync CONNINFO N\n"
                    "       baseline_pg resume CONNINFO JOB KEY\n");
    return 2;
}
