/*
 * history.c — `ratchet history`: finished runs, newest finish first, as a
 * table for people or one JSON document (the list and its column helpers
 * are status.c's).
 */
#include <stdlib.h>

#include "cli/below.h"

static void history_row(rt__buf *out, rt_stmt *st, bool json) {
    int64_t id = rt__store_column_int64(st, 0);
    const char *job = rt__store_column_text(st, 1);
    const char *key = rt__store_column_text(st, 2);
    const char *status = rt__store_column_text(st, 3);
    const char *error = rt__store_column_text(st, 8);
    long long attempts = (long long)rt__store_column_int64(st, 4);
    long long items = (long long)rt__store_column_int64(st, 5);
    int64_t started = rt__status_int(st, 6), finished = rt__status_int(st, 7);
    int64_t took = started >= 0 && finished >= started ? finished - started : -1;
    if (json) {
        rt__status_json_run(out, id, job, key, status);
        rt__buf_printf(out, ",\"attempts\":%lld,\"items\":%lld", attempts,
                       items);
        rt__status_json_time(out, "started", started);
        rt__status_json_time(out, "finished", finished);
        if (took >= 0)
            rt__buf_printf(out, ",\"duration_ms\":%lld", (long long)took);
        else
            rt__buf_puts(out, ",\"duration_ms\":null");
        rt__buf_puts(out, ",\"error\":");
        rt__status_json_text(out, error);
        return;
    }
    char from[40] = "-", to[40] = "-", dur[24];
    if (started >= 0) rt__iso8601_ms(started, from, sizeof from);
    if (finished >= 0) rt__iso8601_ms(finished, to, sizeof to);
    rt__status_age(dur, sizeof dur, took);
    /* For a terminal: one line whatever a key or an error holds. */
    char *sjob = rt__text_safe(job), *skey = rt__text_safe(key);
    char *sstatus = rt__text_safe(status), *serror = rt__text_safe(error);
    rt__buf_printf(out, "%8lld %-12s %-26s %-9s %8lld %10lld %-24s %-24s %8s  %s\n",
                   (long long)id, sjob, skey, sstatus, attempts, items, from,
                   to, dur, serror);
    free(sjob);
    free(skey);
    free(sstatus);
    free(serror);
}

int rt__ops_history(rt_store *s, const char *job, int64_t limit, bool json,
                    rt__buf *out) {
    rt_value args[] = {job ? rt_text(job) : rt_null(), rt_int(limit)};
    char header[256];
    snprintf(header, sizeof header,
             "%8s %-12s %-26s %-9s %8s %10s %-24s %-24s %8s  %s\n", "ID", "JOB",
             "KEY", "STATUS", "ATTEMPTS", "ITEMS", "STARTED", "FINISHED",
             "DURATION", "ERROR");
    /* A finished run has finished_ms; updated_ms stands in for a row
     * written otherwise. */
    return rt__status_rows(
        s,
        "SELECT id, job, run_key, status, attempt, items, started_ms, "
        "coalesce(finished_ms, updated_ms), error FROM rt_run "
        "WHERE " RT__FINISHED_SQL " AND (CAST($1 AS TEXT) IS NULL OR job = $1) "
        "ORDER BY coalesce(finished_ms, updated_ms) DESC, id DESC LIMIT $2",
        2, args, json, header, history_row, out);
}

