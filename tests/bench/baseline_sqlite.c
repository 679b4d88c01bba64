/*
 * baseline_sqlite.c — the hand-written baseline for `make bench`: rowcopy's
 * copy step written directly against sqlite3, with no framework.
 *
 *   baseline_sqlite copy PATH ROWS CHUNK
 *       Seeds rowcopy_src with ids 1..ROWS exactly as jobs/rowcopy.c does
 *       (untimed), then copies it into rowcopy_dst with the statements of
 *       rowcopy's copy step: per transaction (BEGIN IMMEDIATE) one
 *       "SELECT id, payload FROM rowcopy_src WHERE id > ? ORDER BY id LIMIT ?"
 *       (LIMIT = min(CHUNK, 10000)), one "INSERT INTO rowcopy_dst" per row,
 *       then the fenced progress update "UPDATE bench_progress SET ...
 *       WHERE id = ? AND epoch = ?" (one row must change, as ratchet checks)
 *       and COMMIT.
 *       The first transaction also runs "SELECT count(*) FROM rowcopy_src",
 *       as rowcopy does to set its total. Prints one line:
 *           items=N ms=F cpu_ms=G
 *       where ms covers the copy only (first BEGIN to last COMMIT), the same
 *       span as ratchet's step_done "ms" for the copy step, and cpu_ms is
 *       the CPU time (user + system) this process spent in that span.
 *
 *   baseline_sqlite fsync PATH N
 *       The disk's floor: N tiny transactions (BEGIN IMMEDIATE; UPDATE one
 *       row; COMMIT), each one fsync-bound. Prints "commits=N ms=F".
 *
 *   baseline_sqlite resume PATH JOB KEY
 *       The floor under ratchet's resume latency: open the database, read
 *       the run's cursor (one row of rt_run), print "resumed cursor=N" on
 *       stderr, then copy one item the way a chunk of 1 does (BEGIN
 *       IMMEDIATE; SELECT the next row; INSERT it; UPDATE the run's cursor;
 *       COMMIT), print "committed" on stderr, and exit.
 *
 * The connection is set up like framework/store/sqlite.c: journal_mode=WAL,
 * synchronous=FULL, foreign_keys=ON, extended result codes, statements
 * prepared once with SQLITE_PREPARE_PERSISTENT.
 */
#define _POSIX_C_SOURCE 200809L
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sqlite3 *db;

static void die(const char *what) {
    fprintf(stderr, "baseline_sqlite: %s: %s\n", what,
            db ? sqlite3_errmsg(db) : "no database");
    exit(1);
}

static double clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
static double cpu_ms(void) { return clock_ms(CLOCK_PROCESS_CPUTIME_ID); }

static void exec(const char *sql) {
    char *emsg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &emsg) != SQLITE_OK) {
        fprintf(stderr, "baseline_sqlite: %s: %s\n", sql,
                emsg ? emsg : sqlite3_errmsg(db));
        exit(1);
    }
}

static sqlite3_stmt *prepare(const char *sql) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                           NULL) != SQLITE_OK)
        die(sql);
    return st;
}

/* Run a statement with no result rows to completion. */
static void run(sqlite3_stmt *st, const char *what) {
    if (sqlite3_step(st) != SQLITE_DONE) die(what);
    sqlite3_reset(st);
}

static void open_db(const char *path) {
    if (sqlite3_open_v2(path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        die("open");
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec("PRAGMA foreign_keys=ON");
}

static void progress_table(void) {
    exec("CREATE TABLE IF NOT EXISTS bench_progress ("
         " id INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, cursor INTEGER,"
         " items INTEGER NOT NULL, updated_ms INTEGER);"
         "INSERT OR IGNORE INTO bench_progress VALUES (1, 1, NULL, 0, NULL)");
}

static int64_t parse_count(const char *s, const char *what) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0) {
        fprintf(stderr, "baseline_sqlite: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

/* rowcopy's seed step, same statements, one transaction (untimed). */
static void seed(int64_t rows) {
    exec("BEGIN IMMEDIATE");
    exec("CREATE TABLE IF NOT EXISTS rowcopy_src ("
         " id INTEGER PRIMARY KEY, payload TEXT NOT NULL);"
         "DROP TABLE IF EXISTS rowcopy_dst;"
         "CREATE TABLE rowcopy_dst (id INTEGER, payload TEXT);"
         "CREATE TABLE IF NOT EXISTS rowcopy_report ("
         " run_key TEXT PRIMARY KEY, rows BIGINT, id_sum BIGINT);"
         "DELETE FROM rowcopy_src");
    sqlite3_stmt *st = prepare("INSERT INTO rowcopy_src (id, payload) "
                               "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                               " SELECT i + 1 FROM n WHERE i < ?1) "
                               "SELECT i, 'row-' || i FROM n WHERE i <= ?1");
    sqlite3_bind_int64(st, 1, rows);
    run(st, "seed insert");
    sqlite3_finalize(st);
    exec("UPDATE bench_progress SET cursor = NULL, items = 0 WHERE id = 1");
    exec("COMMIT");
}

/* The statements of the copy, prepared once. */
static sqlite3_stmt *s_begin, *s_commit, *s_count, *s_sel, *s_ins, *s_prog;

/*
 * The timed part: rowcopy's copy step, chunk by chunk. Returns the items
 * copied; *total is the count rowcopy reads for its progress total. Kept out
 * of line so profilers can single it out (valgrind --toggle-collect=copy).
 */
static __attribute__((noinline)) int64_t copy(int64_t chunk, int64_t *total) {
    int64_t cursor = 0, items = 0;
    *total = -1;
    for (;;) {
        run(s_begin, "BEGIN");
        if (*total < 0) {
            if (sqlite3_step(s_count) != SQLITE_ROW) die("count");
            *total = sqlite3_column_int64(s_count, 0);
            sqlite3_reset(s_count);
        }
        int64_t limit = chunk > 10000 ? 10000 : chunk;
        int64_t fetched = 0, in_chunk = 0;
        int done = 0;
        sqlite3_bind_int64(s_sel, 1, cursor);
        sqlite3_bind_int64(s_sel, 2, limit);
        while (in_chunk < chunk) {
            int rc = sqlite3_step(s_sel);
            if (rc == SQLITE_DONE) {
                done = fetched < limit;
                break;
            }
            if (rc != SQLITE_ROW) die("select");
            fetched++;
            int64_t id = sqlite3_column_int64(s_sel, 0);
            sqlite3_bind_int64(s_ins, 1, id);
            sqlite3_bind_text(s_ins, 2,
                              (const char *)sqlite3_column_text(s_sel, 1),
                              sqlite3_column_bytes(s_sel, 1), SQLITE_STATIC);
            run(s_ins, "insert");
            cursor = id;
            items++;
            in_chunk++;
        }
        sqlite3_reset(s_sel);
        sqlite3_bind_int64(s_prog, 1, 1);
        sqlite3_bind_int64(s_prog, 2, 1);
        sqlite3_bind_int64(s_prog, 3, cursor);
        sqlite3_bind_int64(s_prog, 4, items);
        run(s_prog, "progress update");
        if (sqlite3_changes(db) != 1) die("progress update fenced out");
        run(s_commit, "COMMIT");
        if (done) return items;
    }
}

static int cmd_copy(const char *path, int64_t rows, int64_t chunk) {
    if (chunk < 1) {
        fprintf(stderr, "baseline_sqlite: CHUNK must be >= 1\n");
        return 2;
    }
    open_db(path);
    progress_table();
    seed(rows);

    s_begin = prepare("BEGIN IMMEDIATE");
    s_commit = prepare("COMMIT");
    s_count = prepare("SELECT count(*) FROM rowcopy_src");
    s_sel = prepare("SELECT id, payload FROM rowcopy_src "
                    "WHERE id > ?1 ORDER BY id LIMIT ?2");
    s_ins = prepare("INSERT INTO rowcopy_dst (id, payload) VALUES (?1, ?2)");
    s_prog = prepare("UPDATE bench_progress SET cursor = ?3, items = ?4, "
                     "updated_ms = CAST((julianday('now') - 2440587.5) * "
                     "86400000 AS INTEGER) WHERE id = ?1 AND epoch = ?2");

    int64_t total;
    double c0 = cpu_ms(), t0 = now_ms();
    int64_t items = copy(chunk, &total);
    double ms = now_ms() - t0, cpu = cpu_ms() - c0;

    sqlite3_stmt *check = prepare("SELECT count(*) FROM rowcopy_dst");
    if (sqlite3_step(check) != SQLITE_ROW) die("check");
    int64_t copied = sqlite3_column_int64(check, 0);
    sqlite3_finalize(check);
    if (copied != rows || items != rows || total != rows) {
        fprintf(stderr,
                "baseline_sqlite: copied %lld rows (items %lld, total %lld), "
                "expected %lld\n",
                (long long)copied, (long long)items, (long long)total,
                (long long)rows);
        return 1;
    }
    sqlite3_stmt *all[] = {s_begin, s_commit, s_count, s_sel, s_ins, s_prog};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(db);
    printf("items=%lld ms=%.3f cpu_ms=%.3f\n", (long long)items, ms, cpu);
    return 0;
}

static int cmd_fsync(const char *path, int64_t n) {
    open_db(path);
    progress_table();
    sqlite3_stmt *begin = prepare("BEGIN IMMEDIATE");
    sqlite3_stmt *commit = prepare("COMMIT");
    sqlite3_stmt *upd = prepare(
        "UPDATE bench_progress SET cursor = ?1, items = items + 1 WHERE id = 1");
    double t0 = now_ms();
    for (int64_t i = 1; i <= n; i++) {
        run(begin, "BEGIN");
        sqlite3_bind_int64(upd, 1, i);
        run(upd, "update");
        run(commit, "COMMIT");
    }
    double ms = now_ms() - t0;
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_finalize(upd);
    sqlite3_close(db);
    printf("commits=%lld ms=%.3f\n", (long long)n, ms);
    return 0;
}

static int cmd_resume(const char *path, const char *job, const char *key) {
    open_db(path);
    sqlite3_stmt *st = prepare("SELECT id, cursor_int FROM rt_run "
                               "WHERE job = ?1 AND run_key = ?2");
    sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) die("run not found");
    int64_t id = sqlite3_column_int64(st, 0);
    int64_t cursor = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    fprintf(stderr, "resumed cursor=%lld\n", (long long)cursor);
    sqlite3_stmt *sel = prepare("SELECT id, payload FROM rowcopy_src "
                                "WHERE id > ?1 ORDER BY id LIMIT ?2");
    sqlite3_stmt *ins =
        prepare("INSERT INTO rowcopy_dst (id, payload) VALUES (?1, ?2)");
    sqlite3_stmt *upd = prepare("UPDATE rt_run SET cursor_int = ?2 WHERE id = ?1");
    exec("BEGIN IMMEDIATE");
    sqlite3_bind_int64(sel, 1, cursor);
    sqlite3_bind_int64(sel, 2, 1);
    if (sqlite3_step(sel) == SQLITE_ROW) {
        int64_t next = sqlite3_column_int64(sel, 0);
        sqlite3_bind_int64(ins, 1, next);
        sqlite3_bind_text(ins, 2, (const char *)sqlite3_column_text(sel, 1),
                          sqlite3_column_bytes(sel, 1), SQLITE_STATIC);
        run(ins, "insert");
        sqlite3_bind_int64(upd, 1, id);
        sqlite3_bind_int64(upd, 2, next);
        run(upd, "update");
    }
    sqlite3_reset(sel);
    exec("COMMIT");
    fprintf(stderr, "committed\n");
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    sqlite3_finalize(upd);
    sqlite3_close(db);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "copy"))
        return cmd_copy(argv[2], parse_count(argv[3], "ROWS"),
                        parse_count(argv[4], "CHUNK"));
    if (argc == 4 && !strcmp(argv[1], "fsync"))
        return cmd_fsync(argv[2], parse_count(argv[3], "N"));
    if (argc == 5 && !strcmp(argv[1], "resume"))
        return cmd_resume(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: baseline_sqlite copy PATH ROWS CHUNK\n"
                    "       baseline_sqlite fsync PATH N\n"
                    "       baseline_sqlite resume PATH JOB KEY\n");
    return 2;
}
