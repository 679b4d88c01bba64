/*
 * run.c — the rt_run row: loading, inserting and deleting runs with their
 * parameters, and what identifies a job's definition (its step list and
 * fingerprint). The runner decides what to do with a run; this file only
 * moves it between the database and memory.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/lifecycle.h"

void rt__params_set(rt__params *p, const char *name, const char *value) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->v[i].name, name)) {
            free(p->v[i].value);
            p->v[i].value = rt__xstrdup(value);
            return;
        }
    p->v = rt__xrealloc(p->v, sizeof *p->v * (size_t)(p->n + 1));
    p->v[p->n].name = rt__xstrdup(name);
    p->v[p->n].value = rt__xstrdup(value);
    p->n++;
}

const char *rt__params_get(const rt__params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->v[i].name, name)) return p->v[i].value;
    return NULL;
}

void rt__params_free(rt__params *p) {
    for (int i = 0; i < p->n; i++) {
        free(p->v[i].name);
        free(p->v[i].value);
    }
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

void rt__run_free(rt__run *r) {
    if (!r) return;
    free(r->job);
    free(r->key);
    free(r->fingerprint);
    free(r->steps);
    free(r->step_name);
    free(r->cursor_bytes);
    free(r->error);
    rt__params_free(&r->params);
    memset(r, 0, sizeof *r);
}

int rt__job_step_count(const rt_job *job) {
    int n = 0;
    while (job->steps[n].name) n++;
    return n;
}

char *rt__job_steps_text(const rt_job *job) {
    rt__buf b = {0};
    for (int i = 0; job->steps[i].name; i++) {
        if (i) rt__buf_add(&b, "\n", 1);
        rt__buf_puts(&b, job->steps[i].name);
    }
    if (!b.p) rt__buf_puts(&b, "");
    return b.p;
}

/* FNV-1a 64 over "name\n" for each step, in order. */
void rt__job_fingerprint(const rt_job *job, char out[17]) {
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; job->steps[i].name; i++) {
        for (const unsigned char *p = (const unsigned char *)job->steps[i].name;
             *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        h = (h ^ '\n') * 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

int rt__job_check_param(const rt_job *job, const char *name,
                        const char *value, char *err, size_t errlen) {
    if (!job->params) return RT_OK;
    for (const rt_param_def *p = job->params; p->name; p++) {
        if (strcmp(p->name, name)) continue;
        int64_t i;
        double d;
        bool b;
        const char *want = NULL;
        if (p->type == RT_PARAM_INT && !rt__parse_int64(value, &i))
            want = "an integer";
        if (p->type == RT_PARAM_REAL && !rt__parse_double(value, &d))
            want = "a number";
        if (p->type == RT_PARAM_BOOL && !rt__parse_bool(value, &b))
            want = "a boolean (true/false)";
        if (!want) return RT_OK;
        snprintf(err, errlen, "--param %s=%s: the value is not %s", name,
                 value, want);
        return RT_INVALID;
    }
    rt__buf known = {0};
    for (const rt_param_def *p = job->params; p->name; p++) {
        if (known.len) rt__buf_puts(&known, ", ");
        rt__buf_puts(&known, p->name);
    }
    snprintf(err, errlen, "job %s has no param '%s' (known: %s)", job->name,
             name, known.p ? known.p : "none");
    rt__buf_free(&known);
    return RT_INVALID;
}

int rt__run_max_attempts(const rt__run *r, const rt_job *job) {
    if (r->max_attempts > 0) return r->max_attempts;
    return job->max_attempts > 0 ? job->max_attempts : 3;
}

int64_t rt__retry_backoff_ms(const rt_job *job, int failures) {
    int64_t cap = (job->max_backoff_s > 0 ? job->max_backoff_s : 300) * 1000;
    int64_t d = 1000;
    for (int i = 1; i < failures && d < cap; i++) d *= 2;
    if (d > cap) d = cap;
    /* Jitter: somewhere in [d/2, d], so failed runs do not return in step. */
    static _Thread_local unsigned seed;
    if (!seed) seed = (unsigned)(rt__mono_ns() ^ (int64_t)getpid() << 16);
    return d / 2 + (int64_t)(rand_r(&seed) % (unsigned)(d / 2 + 1));
}

bool rt__job_listed(const char *list, const char *name) {
    if (!list) return true;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return true;
        if (!end) break;
        p = end + 1;
    }
    return false;
}

int rt__job_list_check(const rt_job *const *jobs, const char *list,
                       const char *cmd) {
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        if (!rt__job_find(jobs, name))
            return rt__usage_error("%s: --only: unknown job '%s' (see 'ratchet "
                                   "jobs')", cmd, name);
        if (!end) break;
        p = end + 1;
    }
    return RT_EXIT_OK;
}

const rt_job *rt__job_find(const rt_job *const *jobs, const char *name) {
    for (int i = 0; jobs[i]; i++)
        if (!strcmp(jobs[i]->name, name)) return jobs[i];
    return NULL;
}

#define RUN_COLUMNS RT__RUN_COLUMNS

static char *run_text(rt_stmt *st, int col) {
    return rt__xstrdup(rt__store_column_text(st, col));
}

static int64_t run_int(rt_stmt *st, int col, int64_t null_value) {
    return rt__store_column_type(st, col) == RT_TNULL
               ? null_value
               : rt__store_column_int64(st, col);
}

/* What the value of column col is, for a message: "text 'abc'". */
static void run_describe(rt_stmt *st, int col, char *out, size_t n) {
    switch (rt__store_column_type(st, col)) {
    case RT_TINT:
        snprintf(out, n, "an integer %lld",
                 (long long)rt__store_column_int64(st, col));
        break;
    case RT_TREAL:
        snprintf(out, n, "a real %g", rt__store_column_double(st, col));
        break;
    case RT_TTEXT: {
        const char *t = rt__store_column_text(st, col);
        char cut[48];
        snprintf(cut, sizeof cut, "%s", t ? t : "");
        char *safe = rt__text_safe(cut);
        snprintf(out, n, "text '%s%s'", safe, strlen(t ? t : "") >= sizeof cut ? "..." : "");
        free(safe);
        break;
    }
    case RT_TBLOB: {
        size_t len = 0;
        rt__store_column_blob(st, col, &len);
        snprintf(out, n, "%zu bytes", len);
        break;
    }
    default: snprintf(out, n, "NULL");
    }
}

int rt__run_cursor_check(rt_stmt *st, int col_int, int col_bytes,
                         const char *job, const char *key, char *err,
                         size_t errlen) {
    rt_type ti = rt__store_column_type(st, col_int);
    rt_type tb = rt__store_column_type(st, col_bytes);
    bool int_ok = ti == RT_TNULL || ti == RT_TINT;
    if (int_ok && (tb == RT_TNULL || tb == RT_TBLOB)) return RT_OK;
    char what[96];
    run_describe(st, int_ok ? col_bytes : col_int, what, sizeof what);
    char *sjob = rt__text_safe(job), *skey = rt__text_safe(key);
    snprintf(err, errlen,
             "run %s/%s: %s holds %s, not %s; fix the row or 'ratchet reset'",
             sjob, skey, int_ok ? "cursor_bytes" : "cursor_int", what,
             int_ok ? "bytes" : "an integer");
    free(sjob);
    free(skey);
    return RT_INVALID;
}

void rt__run_from_row(rt_stmt *st, rt__run *r) {
    r->id = rt__store_column_int64(st, 0);
    r->job = run_text(st, 1);
    r->key = run_text(st, 2);
    r->status = rt__status_parse(rt__store_column_text(st, 3));
    r->fingerprint = run_text(st, 4);
    r->steps = run_text(st, 5);
    r->step_index = rt__count_clamp(rt__store_column_int64(st, 6));
    r->step_name = run_text(st, 7);
    /* A cursor of the wrong type (text in cursor_int: SQLite keeps 'abc'
     * as TEXT in an INTEGER column) is not read as 0: r->invalid says so
     * and the run is not resumed from it. */
    rt__run_cursor_check(st, 8, 9, r->job, r->key, r->invalid,
                         sizeof r->invalid);
    r->has_cursor_bytes = rt__store_column_type(st, 9) == RT_TBLOB;
    r->has_cursor =
        rt__store_column_type(st, 8) != RT_TNULL || r->has_cursor_bytes;
    r->cursor_int = rt__store_column_type(st, 8) == RT_TINT
                        ? rt__store_column_int64(st, 8)
                        : 0;
    if (r->has_cursor_bytes) {
        size_t n = 0;
        const void *p = rt__store_column_blob(st, 9, &n);
        r->cursor_bytes = rt__xmalloc(n + 1);
        if (n) memcpy(r->cursor_bytes, p, n);
        r->cursor_len = n;
    }
    r->items = run_int(st, 10, 0);
    r->step_items = run_int(st, 11, 0);
    r->step_total = run_int(st, 12, -1);
    r->epoch = run_int(st, 13, 0);
    r->attempt = rt__count_clamp(run_int(st, 14, 0));
    r->error = run_text(st, 15);
    r->created_ms = run_int(st, 16, 0);
    r->started_ms = run_int(st, 17, -1);
    r->updated_ms = run_int(st, 18, 0);
    r->finished_ms = run_int(st, 19, -1);
    r->slot_ms = run_int(st, 20, -1);
    r->queued = run_int(st, 21, 0) != 0;
    r->priority = run_int(st, 22, 0);
    r->run_at_ms = run_int(st, 23, -1);
    r->max_attempts = rt__int_clamp(run_int(st, 24, 0));
    r->cancel_requested = run_int(st, 25, 0) != 0;
    r->failures = rt__count_clamp(run_int(st, 26, 0));
}

int rt__run_load_params(rt_store *s, rt__run *r) {
    rt_stmt *st;
    rt_value arg = rt_int(r->id);
    int rc = rt__store_query(
        s, "SELECT name, value FROM rt_param WHERE run_id = $1 ORDER BY name",
        1, &arg, &st);
    while (rc == RT_ROW) {
        rt__params_set(&r->params, rt__store_column_text(st, 0),
                       rt__store_column_text(st, 1));
        rc = rt__store_step(st);
    }
    return rc == RT_DONE ? RT_OK : rc;
}

static int run_load_where(rt_store *s, const char *sql, int nargs,
                          const rt_value *args, rt__run *out) {
    memset(out, 0, sizeof *out);
    rt_stmt *st;
    int rc = rt__store_query(s, sql, nargs, args, &st);
    if (rc == RT_DONE) return RT_NOTFOUND;
    if (rc != RT_ROW) return rc;
    rt__run_from_row(st, out);
    rt__store_reset(st);
    if ((rc = rt__run_load_params(s, out)) != RT_OK) rt__run_free(out);
    return rc;
}

int rt__run_load(rt_store *s, const char *job, const char *key, rt__run *out) {
    rt_value args[] = {rt_text(job), rt_text(key)};
    return run_load_where(
        s, "SELECT " RUN_COLUMNS "FROM rt_run WHERE job = $1 AND run_key = $2",
        2, args, out);
}

int rt__run_load_unfinished(rt_store *s, const char *job, rt__run *out) {
    rt_value arg = rt_text(job);
    return run_load_where(s,
                          "SELECT " RUN_COLUMNS "FROM rt_run WHERE job = $1 "
                          "AND status IN ('pending', 'running', 'interrupted') "
                          "ORDER BY id DESC LIMIT 1",
                          1, &arg, out);
}

int rt__run_create(rt_store *s, const rt_job *job, const rt__run_new *n,
                   int64_t *id) {
    char fp[17];
    rt__job_fingerprint(job, fp);
    char *steps = rt__job_steps_text(job);
    rt_value args[] = {
        rt_text(job->name), rt_text(n->key), rt_text(fp), rt_text(steps),
        rt_text(job->steps[0].name),
        n->slot_ms >= 0 ? rt_int(n->slot_ms) : rt_null(),
        n->skip_reason ? rt_text(n->skip_reason) : rt_null(),
        rt_int(n->queued), rt_int(n->priority),
        n->run_at_ms > 0 ? rt_int(n->run_at_ms) : rt_null(),
        n->max_attempts > 0 ? rt_int(n->max_attempts) : rt_null()};
    rt_stmt *st;
    *id = 0;
    int rc = rt__store_query(
        s,
        RT__LC_INSERT_SQL,
        11, args, &st);
    free(steps);
    if (rc == RT_ROW) {
        *id = rt__store_column_int64(st, 0);
        rc = rt__store_step(st);
    }
    if (rc != RT_DONE) return rc;
    for (int i = 0; *id && n->params && i < n->params->n; i++) {
        rt_value pargs[] = {rt_int(*id), rt_text(n->params->v[i].name),
                            rt_text(n->params->v[i].value)};
        rc = rt__store_exec(s,
                            "INSERT INTO rt_param (run_id, name, value) "
                            "VALUES ($1, $2, $3)",
                            3, pargs, NULL);
        if (rc != RT_OK) return rc;
    }
    return RT_OK;
}

int rt__run_insert(rt_store *s, const rt_job *job, const char *key,
                   const rt__params *params, rt__run *out) {
    int rc = rt__store_begin(s);
    if (rc != RT_OK) return rc;
    int64_t id = 0;
    rt__run_new n = {.key = key, .params = params, .slot_ms = -1};
    rc = rt__run_create(s, job, &n, &id);
    if (rc == RT_OK && !id) rc = RT_HELD;
    rt__run fresh;
    memset(&fresh, 0, sizeof fresh);
    if (rc == RT_OK) {
        rt_value arg = rt_int(id);
        rc = run_load_where(s, "SELECT " RUN_COLUMNS "FROM rt_run WHERE id = $1",
                            1, &arg, &fresh);
    }
    if (rc == RT_OK) rc = rt__store_commit(s);
    if (rc != RT_OK) {
        rt__run_free(&fresh);
        return rt__store_abort(s, rc);
    }
    *out = fresh;
    return RT_OK;
}

int rt__run_insert_slot(rt_store *s, const rt_job *job, const char *key,
                        int64_t slot_ms, const rt__params *params,
                        const char *skip_reason, bool *created) {
    int rc = rt__store_begin(s);
    if (rc != RT_OK) return rc;
    int64_t id = 0;
    rt__run_new n = {.key = key, .params = params, .slot_ms = slot_ms,
                     .skip_reason = skip_reason};
    rc = rt__run_create(s, job, &n, &id);
    if (rc == RT_OK) rc = rt__store_commit(s);
    if (rc != RT_OK) return rt__store_abort(s, rc);
    *created = id != 0;
    return RT_OK;
}

int rt__run_skip(rt_store *s, const char *job, const char *key,
                 const char *reason, bool *skipped) {
    rt__run run;
    *skipped = false;
    int rc = rt__run_load(s, job, key, &run);
    if (rc == RT_NOTFOUND || (rc == RT_OK && run.status != RT__ST_PENDING)) {
        rt__run_free(&run);
        return RT_OK;
    }
    if (rc != RT_OK) return rc;
    rt__verdict v = {.event = RT__EV_SKIP, .id = run.id, .job = job,
                     .key = key, .from = run.status, .epoch = run.epoch,
                     .who = "the scheduler", .why = reason};
    rc = rt__transition(s, &v, skipped);
    rt__run_free(&run);
    return rc;
}

int rt__run_delete(rt_store *s, const rt__run *run) {
    /* Its lease goes with it, but for a run still 'running' (--force):
     * its holder may be inside a step until its next commit, which finds
     * the run gone (it stops, exit 3, and gives the lease up); the lease
     * keeps its scope's other runs out meanwhile. */
    rt__verdict v = {.event = RT__EV_RESET, .id = run->id, .job = run->job,
                     .key = run->key, .from = run->status,
                     .epoch = run->epoch, .who = "an operator",
                     .why = "reset",
                     .scope = run->status == RT__ST_RUNNING ? NULL : run->job};
    bool moved = false;
    int rc = rt__transition(s, &v, &moved);
    /* Fenced: a run started, taken over or finished since it was read
     * (the caller looked at its status) is left alone. */
    return rc == RT_OK && !moved ? RT_NOTFOUND : rc;
}
