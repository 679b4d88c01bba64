/*
 * rowcopy.c — the demo job: copy a table row by row, resumably.
 *
 *   seed    creates rowcopy_src holding ids 1..rows ('row-<id>') unless it is
 *           already exactly that, and starts rowcopy_dst empty (atomic);
 *   copy    copies rowcopy_src into rowcopy_dst one INSERT per item, cursor =
 *           last id copied (chunked). rowcopy_dst has no unique constraint on
 *           purpose: a row written twice would show. With pipeline=true the
 *           INSERTs are rt_exec_later (pipelined on PostgreSQL);
 *   report  records (run key, count, sum of ids) in rowcopy_report (atomic).
 *
 * However often the run is killed, a finished run leaves rowcopy_dst equal to
 * rowcopy_src. Its params check (rt_job.check) refuses a negative rows before
 * a run is stored.
 */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "jobs.h"

/* rt_job.check: before a run is stored, its rows must not be negative. */
static int rowcopy_check(rt_ctx *ctx) {
    int64_t rows;
    int rc = rt_param_int64(ctx, "rows", 100000, &rows);
    if (rc != RT_OK) return rc;
    if (rows < 0)
        return rt_fail(ctx, "param rows: %lld is negative; give 0 or more",
                       (long long)rows);
    return RT_OK;
}

static int rowcopy_seed(rt_ctx *ctx) {
    int64_t rows, count = 0, max = 0;
    int rc = rt_param_int64(ctx, "rows", 100000, &rows);
    if (rc != RT_OK) return rc;
    rc = rt_exec(ctx,
                 "CREATE TABLE IF NOT EXISTS rowcopy_src ("
                 " id INTEGER PRIMARY KEY, payload TEXT NOT NULL);"
                 "DROP TABLE IF EXISTS rowcopy_dst;"
                 "CREATE TABLE rowcopy_dst (id INTEGER, payload TEXT);"
                 "CREATE TABLE IF NOT EXISTS rowcopy_report ("
                 " run_key TEXT PRIMARY KEY, rows BIGINT, id_sum BIGINT)",
                 0, NULL);
    if (rc == RT_OK)
        rc = rt_query_int64(ctx, "SELECT count(*) FROM rowcopy_src", 0, NULL,
                            &count);
    if (rc == RT_OK)
        rc = rt_query_int64(ctx, "SELECT coalesce(max(id), 0) FROM rowcopy_src",
                            0, NULL, &max);
    if (rc != RT_OK || (count == rows && max == rows)) return rc ? rc : RT_DONE;
    rc = rt_exec(ctx, "DELETE FROM rowcopy_src", 0, NULL);
    if (rc == RT_OK)
        rc = RT_EXEC(ctx,
                     "INSERT INTO rowcopy_src (id, payload) "
                     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                     " SELECT i + 1 FROM n WHERE i < $1) "
                     "SELECT i, 'row-' || i FROM n WHERE i <= $1",
                     rt_int(rows));
    return rc == RT_OK ? RT_DONE : rc;
}

/* Burn item_us microseconds of CPU: a stand-in for per-item work. */
static void rowcopy_work(int64_t us) {
    if (us <= 0) return;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000 <
             us);
}

#define ROWCOPY_INSERT "INSERT INTO rowcopy_dst (id, payload) VALUES ($1, $2)"

static int rowcopy_copy(rt_ctx *ctx) {
    int64_t item_us;
    bool pipeline = false;
    int rc = rt_param_int64(ctx, "item_us", 0, &item_us);
    if (rc == RT_OK) rc = rt_param_bool(ctx, "pipeline", false, &pipeline);
    if (rc != RT_OK) return rc;
    if (!rt_has_cursor(ctx)) {
        int64_t total;
        rc = rt_query_int64(ctx, "SELECT count(*) FROM rowcopy_src", 0, NULL,
                            &total);
        if (rc != RT_OK) return rc;
        rt_set_total(ctx, total);
    }
    int64_t limit = rt_chunk_left(ctx);
    if (limit > 10000) limit = 10000;
    rt_stmt *sel, *ins;
    rc = rt_prepare(ctx,
                    "SELECT id, payload FROM rowcopy_src WHERE id > $1 "
                    "ORDER BY id LIMIT $2",
                    &sel);
    if (rc == RT_OK) rc = rt_bind_int64(sel, 1, rt_cursor_int64(ctx));
    if (rc == RT_OK) rc = rt_bind_int64(sel, 2, limit);
    if (rc != RT_OK) return rc;
    int64_t fetched = 0;
    while (rt_continue(ctx)) {
        rc = rt_next(sel);
        if (rc == RT_DONE) return fetched < limit ? RT_DONE : RT_MORE;
        if (rc != RT_ROW) return rc;
        fetched++;
        int64_t id = rt_column_int64(sel, 0);
        rowcopy_work(item_us);
        if (pipeline) {
            rc = RT_EXEC_LATER(ctx, ROWCOPY_INSERT, rt_int(id),
                               rt_text(rt_column_text(sel, 1)));
            if (rc == RT_OK) rc = RT_DONE;
        } else {
            rc = rt_prepare(ctx, ROWCOPY_INSERT, &ins);
            if (rc == RT_OK) rc = rt_bind_int64(ins, 1, id);
            if (rc == RT_OK) rc = rt_bind_text(ins, 2, rt_column_text(sel, 1));
            if (rc == RT_OK) rc = rt_next(ins);
        }
        if (rc != RT_DONE) {
            rt_reset(sel);
            return rc;
        }
        rt_set_cursor_int64(ctx, id);
        rt_add_items(ctx, 1);
    }
    rt_reset(sel);
    return RT_MORE;
}

static int rowcopy_report(rt_ctx *ctx) {
    int rc = RT_EXEC(ctx, "DELETE FROM rowcopy_report WHERE run_key = $1",
                     rt_text(rt_key(ctx)));
    if (rc == RT_OK)
        rc = RT_EXEC(ctx,
                     "INSERT INTO rowcopy_report (run_key, rows, id_sum) "
                     "SELECT $1, count(*), coalesce(sum(id), 0) "
                     "FROM rowcopy_dst",
                     rt_text(rt_key(ctx)));
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step rowcopy_steps[] = {
    {"seed", rowcopy_seed},
    {"copy", rowcopy_copy},
    {"report", rowcopy_report},
    {NULL, NULL},
};

static const rt_param_def rowcopy_params[] = {
    {"rows", RT_PARAM_INT, "100000", "rows to seed and copy"},
    {"item_us", RT_PARAM_INT, "0", "busy-wait microseconds per item"},
    {"pipeline", RT_PARAM_BOOL, "false",
     "send the INSERTs with rt_exec_later (pipelined on PostgreSQL)"},
    {NULL, 0, NULL, NULL},
};

const rt_job rowcopy_job = {
    .name = "rowcopy",
    .description = "copy rowcopy_src into rowcopy_dst, one row per item",
    .steps = rowcopy_steps,
    .params = rowcopy_params,
    .check = rowcopy_check,
};
