/*
 * status.c — `ratchet status`: what each run is doing, read straight from
 * rt_run and, for runs that someone holds, rt_lease (holder, heartbeat
 * age). A table for people, one JSON document for programs. Ages are on the
 * database's clock. The list itself (a header line or {"runs":[...]}, one
 * row per result) and the column and JSON helpers serve `history` too
 * (history.c). Also the printing of `status` and `history`: open the
 * database, render, write stdout.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/below.h"

typedef struct status_row {
    int64_t id;
    const char *job, *key, *status, *step, *error;
    int step_index, nsteps;
    int64_t items, step_items, step_total, epoch, attempt;
    int64_t created, started, updated, finished; /* ms; -1 = NULL */
    double rate;                                 /* items/s; 0 unknown */
    const char *holder;                          /* NULL: nobody */
    int64_t heartbeat_age, since_progress;       /* ms; -1 = NULL */
} status_row;

int64_t rt__status_int(rt_stmt *st, int col) {
    return rt__store_column_type(st, col) == RT_TNULL
               ? -1
               : rt__store_column_int64(st, col);
}

static void status_read(rt_stmt *st, status_row *r) {
    r->id = rt__store_column_int64(st, 0);
    r->job = rt__store_column_text(st, 1);
    r->key = rt__store_column_text(st, 2);
    r->status = rt__store_column_text(st, 3);
    r->step_index = rt__count_clamp(rt__store_column_int64(st, 4));
    r->step = rt__store_column_text(st, 5);
    r->items = rt__store_column_int64(st, 6);
    r->step_items = rt__store_column_int64(st, 7);
    r->step_total = rt__status_int(st, 8);
    r->epoch = rt__store_column_int64(st, 9);
    r->attempt = rt__store_column_int64(st, 10);
    r->error = rt__store_column_text(st, 11);
    r->created = rt__status_int(st, 12);
    r->started = rt__status_int(st, 13);
    r->updated = rt__status_int(st, 14);
    r->finished = rt__status_int(st, 15);
    const char *steps = rt__store_column_text(st, 16);
    r->nsteps = 1;
    for (const char *p = steps ? steps : ""; *p; p++) r->nsteps += *p == '\n';
    r->holder = rt__store_column_text(st, 17);
    r->heartbeat_age = rt__status_int(st, 18);
    r->since_progress = rt__status_int(st, 19);
    int64_t end = r->finished >= 0 ? r->finished : r->updated;
    r->rate = r->started >= 0 && end > r->started
                  ? (double)r->items * 1000.0 / (double)(end - r->started)
                  : 0;
}

void rt__status_json_time(rt__buf *b, const char *name, int64_t ms) {
    rt__buf_printf(b, ",\"%s\":", name);
    if (ms < 0) {
        rt__buf_puts(b, "null");
        return;
    }
    char iso[40];
    rt__iso8601_ms(ms, iso, sizeof iso);
    rt__buf_json(b, iso);
}

void rt__status_json_text(rt__buf *b, const char *s) {
    if (s) rt__buf_json(b, s);
    else rt__buf_puts(b, "null");
}

void rt__status_json_run(rt__buf *b, int64_t id, const char *job,
                         const char *key, const char *status) {
    rt__buf_printf(b, "\"id\":%lld,\"job\":", (long long)id);
    rt__buf_json(b, job);
    rt__buf_puts(b, ",\"key\":");
    rt__buf_json(b, key);
    rt__buf_puts(b, ",\"status\":");
    rt__buf_json(b, status);
}

static void status_json(rt__buf *b, const status_row *r) {
    rt__status_json_run(b, r->id, r->job, r->key, r->status);
    rt__buf_puts(b, ",\"step\":");
    rt__status_json_text(b, r->step);
    rt__buf_printf(b,
                   ",\"step_index\":%d,\"steps\":%d,\"items\":%lld,"
                   "\"step_items\":%lld,\"step_total\":",
                   r->step_index + 1, r->nsteps, (long long)r->items,
                   (long long)r->step_items);
    if (r->step_total >= 0) rt__buf_printf(b, "%lld", (long long)r->step_total);
    else rt__buf_puts(b, "null");
    rt__buf_printf(b, ",\"rate\":%.1f,\"epoch\":%lld,\"attempt\":%lld", r->rate,
                   (long long)r->epoch, (long long)r->attempt);
    rt__buf_puts(b, ",\"holder\":");
    rt__status_json_text(b, r->holder);
    rt__buf_puts(b, ",\"heartbeat_age_ms\":");
    if (r->heartbeat_age >= 0) rt__buf_printf(b, "%lld", (long long)r->heartbeat_age);
    else rt__buf_puts(b, "null");
    rt__buf_printf(b, ",\"since_progress_ms\":%lld", (long long)r->since_progress);
    rt__buf_puts(b, ",\"error\":");
    rt__status_json_text(b, r->error);
    rt__status_json_time(b, "created", r->created);
    rt__status_json_time(b, "started", r->started);
    rt__status_json_time(b, "updated", r->updated);
    rt__status_json_time(b, "finished", r->finished);
}

/* "850ms", "12.3s", "5m", "3h", "2d" */
void rt__status_age(char *out, size_t n, int64_t ms) {
    if (ms < 0) snprintf(out, n, "-");
    else if (ms < 1000) snprintf(out, n, "%lldms", (long long)ms);
    else if (ms < 60000) snprintf(out, n, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000) snprintf(out, n, "%lldm", (long long)(ms / 60000));
    else if (ms < 86400000) snprintf(out, n, "%lldh", (long long)(ms / 3600000));
    else snprintf(out, n, "%lldd", (long long)(ms / 86400000));
}

/* A line of the table: every text from the database escaped for the
 * terminal (rt__buf_text), so a key or an error stays on its line. */
static void status_text(rt__buf *b, const status_row *r) {
    char step[96];
    char *sstep = rt__text_safe(r->step ? r->step : "-");
    if (!strcmp(r->status, "done"))
        snprintf(step, sizeof step, "%d/%d -", r->nsteps, r->nsteps);
    else
        snprintf(step, sizeof step, "%d/%d %s", r->step_index + 1, r->nsteps,
                 sstep);
    free(sstep);
    char progress[24], holder[200] = "-";
    rt__status_age(progress, sizeof progress, r->since_progress);
    if (r->holder) {
        char hb[24];
        char *sholder = rt__text_safe(r->holder);
        rt__status_age(hb, sizeof hb, r->heartbeat_age);
        snprintf(holder, sizeof holder, "%s (beat %s ago)", sholder, hb);
        free(sholder);
    }
    char *sjob = rt__text_safe(r->job), *skey = rt__text_safe(r->key);
    char *sstatus = rt__text_safe(r->status), *serror = rt__text_safe(r->error);
    rt__buf_printf(b, "%-12s %-26s %-11s %-18s %10lld %9.0f %5lld %9s  %-40s %s\n",
                   sjob, skey, sstatus, step, (long long)r->items, r->rate,
                   (long long)r->epoch, progress, holder, serror);
    free(sjob);
    free(skey);
    free(sstatus);
    free(serror);
}

int rt__status_rows(rt_store *s, const char *sql, int nargs,
                    const rt_value *args, bool json, const char *header,
                    rt__status_row_fn row, rt__buf *out) {
    rt_stmt *st;
    int rc = rt__store_query(s, sql, nargs, args, &st);
    rt__buf_puts(out, json ? "{\"runs\":[" : header);
    bool first = true;
    while (rc == RT_ROW) {
        if (json) rt__buf_puts(out, first ? "\n  {" : ",\n  {");
        row(out, st, json);
        if (json) rt__buf_puts(out, "}");
        first = false;
        rc = rt__store_step(st);
    }
    if (json) rt__buf_puts(out, first ? "]}\n" : "\n]}\n");
    return rc == RT_DONE ? RT_OK : rc;
}

static void status_row_out(rt__buf *out, rt_stmt *st, bool json) {
    status_row r;
    status_read(st, &r);
    if (json) status_json(out, &r);
    else status_text(out, &r);
}

int rt__status_render(rt_store *s, const char *job, int64_t limit, bool json,
                      rt__buf *out) {
    rt_value args[] = {job ? rt_text(job) : rt_null(), rt_int(limit)};
    char header[256];
    snprintf(header, sizeof header,
             "%-12s %-26s %-11s %-18s %10s %9s %5s %9s  %-40s %s\n", "JOB",
             "KEY", "STATUS", "STEP", "ITEMS", "ITEMS/S", "EPOCH", "PROGRESS",
             "HOLDER", "ERROR");
    return rt__status_rows(
        s,
        "SELECT r.id, r.job, r.run_key, status, step_index, step_name, "
        "items, step_items, step_total, epoch, attempt, error, created_ms, "
        "started_ms, updated_ms, finished_ms, steps, l.owner, "
        "rt_now_ms() - l.heartbeat_ms, rt_now_ms() - updated_ms "
        "FROM rt_run r LEFT JOIN rt_lease l ON l.job = r.job AND "
        "l.run_key = r.run_key "
        "WHERE CAST($1 AS TEXT) IS NULL OR r.job = $1 "
        "ORDER BY r.id DESC LIMIT $2",
        2, args, json, header, status_row_out, out);
}

/* ---------------------------------------------- status, history, metrics */

/* rt__status_render, rt__ops_history */
typedef int (*status_render_fn)(rt_store *s, const char *job, int64_t limit,
                                bool json, rt__buf *out);

/* Open url, render, print: the exit code. A database error while reading
 * is 1 as it always was (the table, rt__exit_code, says 75 for a lost
 * connection or a lock not had in time). */
static int status_print(const char *url, status_render_fn render,
                        const char *job, int64_t limit, bool json) {
    rt_store *s = NULL;
    int code;
    rt__db_open(url, &s, NULL, NULL, &code, NULL, 0);
    if (code != RT_EXIT_OK) return code;
    rt__buf out = {0};
    int rc = render(s, job, limit, json, &out);
    if (rc == RT_OK) {
        fwrite(out.p ? out.p : "", 1, out.len, stdout);
    } else {
        rt__log(RT_LOG_ERROR, "db_error", NULL, "%s", s->errmsg);
        code = rt__exit_code(rc, s);
        if (code == RT_EXIT_INTERRUPTED) code = RT_EXIT_FAILED;
    }
    rt__buf_free(&out);
    rt__store_close(s);
    return code;
}

int rt__cli_status(const char *url, const char *job, int64_t limit, bool json) {
    return status_print(url, rt__status_render, job, limit, json);
}

int rt__cli_history(const char *url, const char *job, int64_t limit,
                    bool json) {
    return status_print(url, rt__ops_history, job, limit, json);
}

