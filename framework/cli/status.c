/*
 * status.c — `ratchet status`: what each run is doing, as rt_list_runs
 * reads it from rt_run and, for runs that someone holds, rt_lease (holder,
 * heartbeat age). A table for people, one JSON document for programs. Ages
 * are on the database's clock. The list itself (a header line or
 * {"runs":[...]}, one row per run) and the column and JSON helpers serve
 * `history` too (history.c).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

void rt__cli_json_time(FILE *out, const char *name, int64_t ms) {
    fprintf(out, ",\"%s\":", name);
    if (ms < 0) {
        fputs("null", out);
        return;
    }
    char iso[40];
    rt__cli_iso8601(ms, iso, sizeof iso);
    rt__cli_json(out, iso);
}

void rt__cli_json_text(FILE *out, const char *s) {
    if (s) rt__cli_json(out, s);
    else fputs("null", out);
}

void rt__cli_json_run(FILE *out, const rt_run_row *r) {
    fprintf(out, "\"id\":%lld,\"job\":", (long long)r->id);
    rt__cli_json(out, r->job);
    fputs(",\"key\":", out);
    rt__cli_json(out, r->key);
    fputs(",\"status\":", out);
    rt__cli_json(out, r->status);
}

/* items/s over the run's life so far; 0 unknown */
static double status_rate(const rt_run_row *r) {
    int64_t end = r->finished_ms >= 0 ? r->finished_ms : r->updated_ms;
    return r->started_ms >= 0 && end > r->started_ms
               ? (double)r->items * 1000.0 / (double)(end - r->started_ms)
               : 0;
}

static void status_json(FILE *out, const rt_run_row *r) {
    rt__cli_json_run(out, r);
    fputs(",\"step\":", out);
    rt__cli_json_text(out, r->step);
    fprintf(out,
            ",\"step_index\":%d,\"steps\":%d,\"items\":%lld,"
            "\"step_items\":%lld,\"step_total\":",
            r->step_index + 1, r->steps, (long long)r->items,
            (long long)r->step_items);
    if (r->step_total >= 0) fprintf(out, "%lld", (long long)r->step_total);
    else fputs("null", out);
    fprintf(out, ",\"rate\":%.1f,\"epoch\":%lld,\"attempt\":%lld",
            status_rate(r), (long long)r->epoch, (long long)r->attempt);
    fputs(",\"holder\":", out);
    rt__cli_json_text(out, r->holder);
    fputs(",\"heartbeat_age_ms\":", out);
    if (r->heartbeat_age_ms >= 0)
        fprintf(out, "%lld", (long long)r->heartbeat_age_ms);
    else fputs("null", out);
    fprintf(out, ",\"since_progress_ms\":%lld", (long long)r->since_progress_ms);
    fputs(",\"error\":", out);
    rt__cli_json_text(out, r->error);
    rt__cli_json_time(out, "created", r->created_ms);
    rt__cli_json_time(out, "started", r->started_ms);
    rt__cli_json_time(out, "updated", r->updated_ms);
    rt__cli_json_time(out, "finished", r->finished_ms);
}

/* "850ms", "12.3s", "5m", "3h", "2d" */
void rt__cli_age(char *out, size_t n, int64_t ms) {
    if (ms < 0) snprintf(out, n, "-");
    else if (ms < 1000) snprintf(out, n, "%lldms", (long long)ms);
    else if (ms < 60000) snprintf(out, n, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000) snprintf(out, n, "%lldm", (long long)(ms / 60000));
    else if (ms < 86400000) snprintf(out, n, "%lldh", (long long)(ms / 3600000));
    else snprintf(out, n, "%lldd", (long long)(ms / 86400000));
}

/* A line of the table: every text from the database escaped for the
 * terminal (rt__cli_text_safe), so a key or an error stays on its line. */
static void status_text(FILE *out, const rt_run_row *r) {
    char step[96];
    char *sstep = rt__cli_text_safe(r->step ? r->step : "-");
    if (!strcmp(r->status, "done"))
        snprintf(step, sizeof step, "%d/%d -", r->steps, r->steps);
    else
        snprintf(step, sizeof step, "%d/%d %s", r->step_index + 1, r->steps,
                 sstep);
    free(sstep);
    char progress[24], holder[200] = "-";
    rt__cli_age(progress, sizeof progress, r->since_progress_ms);
    if (r->holder) {
        char hb[24];
        char *sholder = rt__cli_text_safe(r->holder);
        rt__cli_age(hb, sizeof hb, r->heartbeat_age_ms);
        snprintf(holder, sizeof holder, "%s (beat %s ago)", sholder, hb);
        free(sholder);
    }
    char *sjob = rt__cli_text_safe(r->job), *skey = rt__cli_text_safe(r->key);
    char *sstatus = rt__cli_text_safe(r->status);
    char *serror = rt__cli_text_safe(r->error);
    fprintf(out, "%-12s %-26s %-11s %-18s %10lld %9.0f %5lld %9s  %-40s %s\n",
            sjob, skey, sstatus, step, (long long)r->items, status_rate(r),
            (long long)r->epoch, progress, holder, serror);
    free(sjob);
    free(skey);
    free(sstatus);
    free(serror);
}

static void status_row(FILE *out, const rt_run_row *r, bool json) {
    if (json) status_json(out, r);
    else status_text(out, r);
}

int rt__cli_list(const char *url, const char *job, int64_t limit, bool json,
                 bool finished, const char *header, rt__cli_row_fn row) {
    rt_db *db = NULL;
    int rc = rt_db_open(url, &db, NULL, 0);
    if (rc != RT_OK) {
        int code = rt_exit_code(db, rc); /* logged by rt_db_open */
        rt_db_close(db);
        return code;
    }
    rt_run_row *rows = NULL;
    size_t n = 0;
    rc = rt_list_runs(db, job, limit, finished, &rows, &n);
    int code = RT_EXIT_OK;
    if (rc == RT_OK) {
        fputs(json ? "{\"runs\":[" : header, stdout);
        for (size_t i = 0; i < n; i++) {
            if (json) fputs(i ? ",\n  {" : "\n  {", stdout);
            row(stdout, &rows[i], json);
            if (json) fputs("}", stdout);
        }
        if (json) fputs(n ? "\n]}\n" : "]}\n", stdout);
    } else {
        /* 1 as it always was (the table says 75 for a lost connection or
         * a lock not had in time) */
        rt__cli_log(RT_LOG_ERROR, "db_error", NULL, NULL, "%s",
                    rt_db_errmsg(db));
        code = rt_exit_code(db, rc);
        if (code == RT_EXIT_INTERRUPTED) code = RT_EXIT_FAILED;
    }
    rt_free_runs(rows, n);
    rt_db_close(db);
    return code;
}

int rt__cli_status(const char *url, const char *job, int64_t limit, bool json) {
    char header[256];
    snprintf(header, sizeof header,
             "%-12s %-26s %-11s %-18s %10s %9s %5s %9s  %-40s %s\n", "JOB",
             "KEY", "STATUS", "STEP", "ITEMS", "ITEMS/S", "EPOCH", "PROGRESS",
             "HOLDER", "ERROR");
    return rt__cli_list(url, job, limit, json, false, header, status_row);
}
