/*
 * aggregate.c — the classic nightly job: events in, a per-day summary and a
 * report out.
 *
 *   seed       creates agg_events with days x per_day sample events unless it
 *              already holds exactly that many (atomic; param seed=false skips);
 *   summarize  recomputes agg_daily for this run from agg_events in one
 *              transaction (atomic: on a stop it rolls back as a whole);
 *   report     writes one agg_report line per day, day by day, cursor = last
 *              day written (chunked).
 *
 * Everything it writes is keyed by the run key, so runs do not interfere.
 */
#include <stdio.h>

#include "jobs.h"

static int aggregate_seed(rt_ctx *ctx) {
    int64_t days, per_day, have = 0;
    bool seed;
    int rc = rt_param_bool(ctx, "seed", true, &seed);
    if (rc == RT_OK) rc = rt_param_int64(ctx, "days", 30, &days);
    if (rc == RT_OK) rc = rt_param_int64(ctx, "per_day", 1000, &per_day);
    if (rc != RT_OK) return rc;
    if (days < 1 || per_day < 1) {
        rt_fail(ctx, "params days and per_day must be >= 1");
        return RT_INVALID;
    }
    rc = rt_exec(ctx,
                 "CREATE TABLE IF NOT EXISTS agg_events ("
                 " id BIGINT PRIMARY KEY, day INTEGER NOT NULL,"
                 " customer INTEGER NOT NULL, amount BIGINT NOT NULL);"
                 "CREATE TABLE IF NOT EXISTS agg_daily ("
                 " run_key TEXT NOT NULL, day INTEGER NOT NULL,"
                 " events BIGINT NOT NULL, total BIGINT NOT NULL,"
                 " customers BIGINT NOT NULL, PRIMARY KEY (run_key, day));"
                 "CREATE TABLE IF NOT EXISTS agg_report ("
                 " run_key TEXT NOT NULL, day INTEGER NOT NULL,"
                 " line TEXT NOT NULL)",
                 0, NULL);
    if (rc != RT_OK || !seed) return rc == RT_OK ? RT_DONE : rc;
    rc = rt_query_int64(ctx, "SELECT count(*) FROM agg_events", 0, NULL, &have);
    if (rc != RT_OK || have == days * per_day) return rc ? rc : RT_DONE;
    rc = rt_exec(ctx, "DELETE FROM agg_events", 0, NULL);
    if (rc == RT_OK)
        rc = RT_EXEC(ctx,
                     "INSERT INTO agg_events (id, day, customer, amount) "
                     "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL "
                     " SELECT i + 1 FROM n WHERE i + 1 < CAST($1 AS BIGINT) * CAST($2 AS BIGINT)) "
                     "SELECT i, i % $1 + 1, (i * 31) % 97, (i * 7919) % 1000 "
                     "FROM n",
                     rt_int(days), rt_int(per_day));
    return rc == RT_OK ? RT_DONE : rc;
}

static int aggregate_summarize(rt_ctx *ctx) {
    int rc = RT_EXEC(ctx, "DELETE FROM agg_daily WHERE run_key = $1",
                     rt_text(rt_key(ctx)));
    if (rc == RT_OK)
        rc = RT_EXEC(ctx,
                     "INSERT INTO agg_daily (run_key, day, events, total, "
                     "customers) SELECT $1, day, count(*), sum(amount), "
                     "count(DISTINCT customer) FROM agg_events GROUP BY day",
                     rt_text(rt_key(ctx)));
    if (rc == RT_OK) rc = RT_EXEC(ctx, "DELETE FROM agg_report WHERE run_key = $1",
                                  rt_text(rt_key(ctx)));
    return rc == RT_OK ? RT_DONE : rc;
}

static int aggregate_report(rt_ctx *ctx) {
    rt_stmt *sel, *ins;
    int64_t limit = rt_chunk_left(ctx);
    if (limit > 1000) limit = 1000;
    int rc = rt_prepare(ctx,
                        "SELECT day, events, total, customers FROM agg_daily "
                        "WHERE run_key = $1 AND day > $2 ORDER BY day LIMIT $3",
                        &sel);
    if (rc == RT_OK) rc = rt_bind_text(sel, 1, rt_key(ctx));
    if (rc == RT_OK) rc = rt_bind_int64(sel, 2, rt_cursor_int64(ctx));
    if (rc == RT_OK) rc = rt_bind_int64(sel, 3, limit);
    if (rc != RT_OK) return rc;
    int64_t fetched = 0;
    while (rt_continue(ctx)) {
        rc = rt_next(sel);
        if (rc == RT_DONE) return fetched < limit ? RT_DONE : RT_MORE;
        if (rc != RT_ROW) return rc;
        fetched++;
        int64_t day = rt_column_int64(sel, 0), events = rt_column_int64(sel, 1);
        int64_t total = rt_column_int64(sel, 2);
        int64_t customers = rt_column_int64(sel, 3);
        char line[200];
        snprintf(line, sizeof line,
                 "day %lld: %lld events, total %lld, average %.2f, %lld "
                 "customers",
                 (long long)day, (long long)events, (long long)total,
                 events ? (double)total / (double)events : 0.0,
                 (long long)customers);
        rc = rt_prepare(ctx, "INSERT INTO agg_report (run_key, day, line) "
                             "VALUES ($1, $2, $3)", &ins);
        if (rc == RT_OK) rc = rt_bind_text(ins, 1, rt_key(ctx));
        if (rc == RT_OK) rc = rt_bind_int64(ins, 2, day);
        if (rc == RT_OK) rc = rt_bind_text(ins, 3, line);
        if (rc == RT_OK) rc = rt_next(ins);
        if (rc != RT_DONE) {
            rt_reset(sel);
            return rc;
        }
        rt_set_cursor_int64(ctx, day);
        rt_add_items(ctx, 1);
    }
    rt_reset(sel);
    return RT_MORE;
}

static const rt_step aggregate_steps[] = {
    {"seed", aggregate_seed},
    {"summarize", aggregate_summarize},
    {"report", aggregate_report},
    {NULL, NULL},
};

static const rt_param_def aggregate_params[] = {
    {"seed", RT_PARAM_BOOL, "true", "create sample events if missing"},
    {"days", RT_PARAM_INT, "30", "days of sample events"},
    {"per_day", RT_PARAM_INT, "1000", "sample events per day"},
    {NULL, 0, NULL, NULL},
};

const rt_job aggregate_job = {
    .name = "aggregate",
    .description = "summarize events per day, then write a report per day",
    .steps = aggregate_steps,
    .params = aggregate_params,
};
