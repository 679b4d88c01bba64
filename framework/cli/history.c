/*
 * history.c — `ratchet history`: finished runs, newest finish first (as
 * rt_list_runs lists them), as a table for people or one JSON document
 * (the list and its column helpers are status.c's).
 */
#include <stdlib.h>

#include "cli/cli.h"

static void history_row(FILE *out, const rt_run_row *r, bool json) {
    int64_t started = r->started_ms, finished = r->finished_ms;
    int64_t took = started >= 0 && finished >= started ? finished - started : -1;
    if (json) {
        rt__cli_json_run(out, r);
        fprintf(out, ",\"attempts\":%lld,\"items\":%lld",
                (long long)r->attempt, (long long)r->items);
        rt__cli_json_time(out, "started", started);
        rt__cli_json_time(out, "finished", finished);
        if (took >= 0) fprintf(out, ",\"duration_ms\":%lld", (long long)took);
        else fputs(",\"duration_ms\":null", out);
        fputs(",\"error\":", out);
        rt__cli_json_text(out, r->error);
        return;
    }
    char from[40] = "-", to[40] = "-", dur[24];
    if (started >= 0) rt__cli_iso8601(started, from, sizeof from);
    if (finished >= 0) rt__cli_iso8601(finished, to, sizeof to);
    rt__cli_age(dur, sizeof dur, took);
    /* For a terminal: one line whatever a key or an error holds. */
    char *sjob = rt__cli_text_safe(r->job), *skey = rt__cli_text_safe(r->key);
    char *sstatus = rt__cli_text_safe(r->status);
    char *serror = rt__cli_text_safe(r->error);
    fprintf(out, "%8lld %-12s %-26s %-9s %8lld %10lld %-24s %-24s %8s  %s\n",
            (long long)r->id, sjob, skey, sstatus, (long long)r->attempt,
            (long long)r->items, from, to, dur, serror);
    free(sjob);
    free(skey);
    free(sstatus);
    free(serror);
}

int rt__cli_history(const char *url, const char *job, int64_t limit,
                    bool json) {
    char header[256];
    snprintf(header, sizeof header,
             "%8s %-12s %-26s %-9s %8s %10s %-24s %-24s %8s  %s\n", "ID", "JOB",
             "KEY", "STATUS", "ATTEMPTS", "ITEMS", "STARTED", "FINISHED",
             "DURATION", "ERROR");
    return rt__cli_list(url, job, limit, json, true, header, history_row);
}
