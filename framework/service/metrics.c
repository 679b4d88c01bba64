/*
 * metrics.c — the runs in the database as Prometheus text exposition
 * (format 0.0.4): what `ratchet metrics` prints and `--metrics-listen`
 * serves. Every figure is read from the database on each call, on its
 * clock (rt_now_ms, read once so the ages agree), so any replica, or a
 * cron job writing a textfile for the node exporter, reports the same.
 *
 * Cost. The counts by job and status are one aggregate over rt_run, which
 * also yields items and last finish times: one pass whatever else is
 * asked, linear in rt_run's rows (1M rows: PostgreSQL ~0.25 s, a parallel
 * seq scan, the same as a bare count(*); SQLite ~0.9 s of CPU) — which is
 * what `ratchet prune` bounds. Everything else is an index seek or a small
 * table:
 *   running runs      rt_run_job_status (job, status), per job that has any
 *   leases            rt_lease: one row per held scope
 *   schedule          rt_run_job_slot (job, slot_ms), newest slot per job
 *   queue             rt_run_claim, the partial index of claimable runs
 * None of it writes or takes a write lock, and nothing was added to the
 * commit path: a scheduled run's start is the started_ms its first claim
 * records already.
 */
#include <stdlib.h>
#include <string.h>

#include "service/metrics.h"

#define MET_NSTATUS 7

static const char *const met_statuses[MET_NSTATUS] = {
    "pending", "running", "interrupted", "done", "failed", "skipped", "cancelled",
};

typedef struct met_job {
    char *name;
    int64_t runs[MET_NSTATUS];
    int64_t items;
    int64_t last_done_ms, last_failed_ms; /* -1: none */
    bool has_slot, has_lateness;
    int64_t slot_ms, lateness_ms;
    int64_t queue_due, queue_delayed;
    int64_t queue_oldest_ms; /* the oldest due run's due time; -1: none */
} met_job;

/* A running run (a: ms since progress, b: items) or a lease (a: age since
 * acquired, b: heartbeat age). */
typedef struct met_run {
    char *job, *key;
    int64_t a, b;
} met_run;

typedef struct met {
    rt_store *s;
    int64_t now;
    met_job *jobs;
    int njobs;
    met_run *running, *leases;
    int nrunning, nleases;
} met;

static met_job *met_job_get(met *m, const char *name) {
    for (int i = 0; i < m->njobs; i++)
        if (!strcmp(m->jobs[i].name, name)) return &m->jobs[i];
    m->jobs = rt__xrealloc(m->jobs, sizeof *m->jobs * (size_t)(m->njobs + 1));
    met_job *j = &m->jobs[m->njobs++];
    memset(j, 0, sizeof *j);
    j->name = rt__xstrdup(name);
    j->last_done_ms = j->last_failed_ms = j->queue_oldest_ms = -1;
    return j;
}

static void met_run_add(met_run **v, int *n, const char *job, const char *key,
                        int64_t a, int64_t b) {
    *v = rt__xrealloc(*v, sizeof **v * (size_t)(*n + 1));
    met_run *r = &(*v)[(*n)++];
    r->job = rt__xstrdup(job);
    r->key = rt__xstrdup(key ? key : "");
    r->a = a;
    r->b = b;
}

static const char *met_text(rt_stmt *st, int col) {
    const char *t = rt__store_column_text(st, col);
    return t ? t : "";
}

static bool met_null(rt_stmt *st, int col) {
    return rt__store_column_type(st, col) == RT_TNULL;
}

static int64_t met_int(rt_stmt *st, int col) {
    return rt__store_column_int64(st, col);
}

/* Run sql and hand each row to fn. */
typedef void (*met_row_fn)(met *m, rt_stmt *st, void *arg);

static int met_rows(met *m, const char *sql, int nargs, const rt_value *args,
                    met_row_fn fn, void *arg) {
    rt_stmt *st;
    int rc = rt__store_query(m->s, sql, nargs, args, &st);
    while (rc == RT_ROW) {
        fn(m, st, arg);
        rc = rt__store_step(st);
    }
    return rc == RT_DONE ? RT_OK : rc;
}

/* ------------------------------------------------------------ reading */

static void met_now_row(met *m, rt_stmt *st, void *arg) {
    (void)arg;
    m->now = met_int(st, 0);
}

/* job, status, count, items, last finish */
static void met_count_row(met *m, rt_stmt *st, void *arg) {
    (void)arg;
    met_job *j = met_job_get(m, met_text(st, 0));
    const char *status = met_text(st, 1);
    j->items += met_int(st, 3);
    for (int k = 0; k < MET_NSTATUS; k++) {
        if (strcmp(status, met_statuses[k])) continue;
        j->runs[k] += met_int(st, 2);
        if (!met_null(st, 4) && !strcmp(status, "done"))
            j->last_done_ms = met_int(st, 4);
        if (!met_null(st, 4) && !strcmp(status, "failed"))
            j->last_failed_ms = met_int(st, 4);
    }
}

/* run_key, ms since progress, items (of one job: arg) */
static void met_running_row(met *m, rt_stmt *st, void *arg) {
    met_run_add(&m->running, &m->nrunning, arg, met_text(st, 0), met_int(st, 1),
                met_int(st, 2));
}

/* job, run_key, age, heartbeat age */
static void met_lease_row(met *m, rt_stmt *st, void *arg) {
    (void)arg;
    met_run_add(&m->leases, &m->nleases, met_text(st, 0), met_text(st, 1),
                met_int(st, 2), met_int(st, 3));
}

/* newest due slot, its lateness (of one job: arg) */
static void met_slot_row(met *m, rt_stmt *st, void *arg) {
    (void)m;
    met_job *j = arg;
    if ((j->has_slot = !met_null(st, 0))) j->slot_ms = met_int(st, 0);
    if ((j->has_lateness = !met_null(st, 1))) j->lateness_ms = met_int(st, 1);
}

/* job, due, delayed, oldest due time */
static void met_queue_row(met *m, rt_stmt *st, void *arg) {
    (void)arg;
    met_job *j = met_job_get(m, met_text(st, 0));
    j->queue_due = met_int(st, 1);
    j->queue_delayed = met_int(st, 2);
    j->queue_oldest_ms = met_null(st, 3) ? -1 : met_int(st, 3);
}

static int met_read(met *m) {
    int rc = met_rows(m, "SELECT rt_now_ms()", 0, NULL, met_now_row, NULL);
    /* One pass over rt_run (see the top of the file). A finished run that
     * predates finished_ms has updated_ms for its end, as in history. */
    if (rc == RT_OK)
        rc = met_rows(m,
                      "SELECT job, status, count(*), CAST(coalesce(sum(items), "
                      "0) AS BIGINT), max(coalesce(finished_ms, updated_ms)) "
                      "FROM rt_run GROUP BY job, status",
                      0, NULL, met_count_row, NULL);
    int njobs = m->njobs;
    for (int i = 0; rc == RT_OK && i < njobs; i++) {
        met_job *j = &m->jobs[i];
        rt_value args[] = {rt_text(j->name), rt_int(m->now)};
        if (j->runs[1] > 0) /* "running" */
            rc = met_rows(m,
                          "SELECT run_key, $2 - updated_ms, items FROM rt_run "
                          "WHERE job = $1 AND status = 'running'",
                          2, args, met_running_row, j->name);
        /* The newest due slot, and of the newest that started or still
         * waits to start (skipped and unstarted cancelled slots never
         * will): its start, or now, minus the slot. */
        if (rc == RT_OK)
            rc = met_rows(m,
                          "SELECT (SELECT max(slot_ms) FROM rt_run WHERE job = "
                          "$1 AND slot_ms <= $2), (SELECT coalesce(started_ms, "
                          "$2) - slot_ms FROM rt_run WHERE job = $1 AND "
                          "slot_ms <= $2 AND (started_ms IS NOT NULL OR status "
                          "= 'pending') ORDER BY slot_ms DESC LIMIT 1)",
                          2, args, met_slot_row, j);
    }
    rt_value now = rt_int(m->now);
    if (rc == RT_OK)
        rc = met_rows(m,
                      "SELECT job, run_key, $1 - acquired_ms, $1 - heartbeat_ms "
                      "FROM rt_lease",
                      1, &now, met_lease_row, NULL);
    /* The inner WHERE is rt_run_claim's own and its ORDER BY the index's
     * order, so both backends read that index; a bare GROUP BY job would
     * walk rt_run_job_slot, the whole table, on SQLite. */
    if (rc == RT_OK)
        rc = met_rows(
            m,
            "SELECT job, sum(CASE WHEN due <= $1 THEN 1 ELSE 0 END), "
            "sum(CASE WHEN due > $1 THEN 1 ELSE 0 END), min(CASE WHEN due <= "
            "$1 THEN due END) FROM (SELECT job, coalesce(run_at_ms, "
            "created_ms) AS due FROM rt_run WHERE queued = 1 AND status IN "
            "('pending', 'interrupted') ORDER BY priority DESC, "
            "coalesce(run_at_ms, created_ms), id) q GROUP BY job",
            1, &now, met_queue_row, NULL);
    return rc;
}

/* ---------------------------------------------------------- rendering */

/* A label value: backslash, double quote and line feed escaped; a byte
 * that is not UTF-8 (a key stored before keys were checked) becomes U+FFFD,
 * since the text format is UTF-8. */
static void met_label(rt__buf *b, const char *name, const char *value,
                      bool first) {
    rt__buf_printf(b, "%s%s=\"", first ? "" : ",", name);
    for (const char *p = value; *p;) {
        /* 4: a sequence's longest; it stops at the NUL before that */
        size_t n = rt__utf8_seq(p, 4, NULL);
        if (*p == '\\') rt__buf_puts(b, "\\\\");
        else if (*p == '"') rt__buf_puts(b, "\\\"");
        else if (*p == '\n') rt__buf_puts(b, "\\n");
        else if (!n) rt__buf_puts(b, "\xef\xbf\xbd");
        else rt__buf_add(b, p, n);
        p += n ? n : 1;
    }
    rt__buf_puts(b, "\"");
}

static void met_family(rt__buf *b, const char *name, const char *help) {
    rt__buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* name{job="..."[,label2="..."]} */
static void met_sample(rt__buf *b, const char *name, const char *job,
                       const char *label2, const char *value2) {
    rt__buf_printf(b, "%s{", name);
    met_label(b, "job", job, true);
    if (label2) met_label(b, label2, value2, false);
    rt__buf_puts(b, "} ");
}

/* Milliseconds as seconds, exactly: 1234 -> 1.234, -5 -> -0.005. */
static void met_seconds(rt__buf *b, int64_t ms) {
    uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    rt__buf_printf(b, "%s%llu.%03llu\n", ms < 0 ? "-" : "",
                   (unsigned long long)(a / 1000), (unsigned long long)(a % 1000));
}

static void met_runs_family(rt__buf *b, const char *name, const char *help,
                            const met_run *v, int n, bool seconds_a, bool a) {
    met_family(b, name, help);
    for (int i = 0; i < n; i++) {
        met_sample(b, name, v[i].job, "key", v[i].key);
        int64_t x = a ? v[i].a : v[i].b;
        if (seconds_a) met_seconds(b, x);
        else rt__buf_printf(b, "%lld\n", (long long)x);
    }
}

static void met_write(const met *m, rt__buf *b, int64_t took_ns) {
    const char *name = "ratchet_runs";
    met_family(b, name, "Runs in the database by job and status.");
    for (int i = 0; i < m->njobs; i++)
        for (int k = 0; k < MET_NSTATUS; k++) {
            met_sample(b, name, m->jobs[i].name, "status", met_statuses[k]);
            rt__buf_printf(b, "%lld\n", (long long)m->jobs[i].runs[k]);
        }
    name = "ratchet_items_done";
    met_family(b, name, "Items committed by the job's runs in the database "
                        "(pruning or resetting runs lowers it).");
    for (int i = 0; i < m->njobs; i++) {
        met_sample(b, name, m->jobs[i].name, NULL, NULL);
        rt__buf_printf(b, "%lld\n", (long long)m->jobs[i].items);
    }
    name = "ratchet_last_success_timestamp_seconds";
    met_family(b, name, "When the job's latest done run finished (Unix time).");
    for (int i = 0; i < m->njobs; i++)
        if (m->jobs[i].last_done_ms >= 0) {
            met_sample(b, name, m->jobs[i].name, NULL, NULL);
            met_seconds(b, m->jobs[i].last_done_ms);
        }
    name = "ratchet_last_failure_timestamp_seconds";
    met_family(b, name, "When the job's latest failed run failed (Unix time).");
    for (int i = 0; i < m->njobs; i++)
        if (m->jobs[i].last_failed_ms >= 0) {
            met_sample(b, name, m->jobs[i].name, NULL, NULL);
            met_seconds(b, m->jobs[i].last_failed_ms);
        }
    met_runs_family(b, "ratchet_run_seconds_since_progress",
                    "Seconds since a running run last committed.", m->running,
                    m->nrunning, true, true);
    met_runs_family(b, "ratchet_run_items", "Items a running run committed so far.",
                    m->running, m->nrunning, false, false);
    met_runs_family(b, "ratchet_lease_age_seconds",
                    "Seconds since the lease's holder acquired it.", m->leases,
                    m->nleases, true, true);
    met_runs_family(b, "ratchet_lease_heartbeat_age_seconds",
                    "Seconds since the lease's holder last renewed it.",
                    m->leases, m->nleases, true, false);
    name = "ratchet_schedule_last_slot_timestamp_seconds";
    met_family(b, name, "The newest cron slot due that has a run (Unix time).");
    for (int i = 0; i < m->njobs; i++)
        if (m->jobs[i].has_slot) {
            met_sample(b, name, m->jobs[i].name, NULL, NULL);
            met_seconds(b, m->jobs[i].slot_ms);
        }
    name = "ratchet_schedule_lateness_seconds";
    met_family(b, name, "The newest scheduled run's start (or now, until it "
                        "starts) minus its slot time.");
    for (int i = 0; i < m->njobs; i++)
        if (m->jobs[i].has_lateness) {
            met_sample(b, name, m->jobs[i].name, NULL, NULL);
            met_seconds(b, m->jobs[i].lateness_ms);
        }
    name = "ratchet_queue_depth";
    met_family(b, name, "Queued runs due now, waiting for a worker.");
    for (int i = 0; i < m->njobs; i++) {
        met_sample(b, name, m->jobs[i].name, NULL, NULL);
        rt__buf_printf(b, "%lld\n", (long long)m->jobs[i].queue_due);
    }
    name = "ratchet_queue_delayed";
    met_family(b, name, "Queued runs not due yet (--run-at, retry backoff).");
    for (int i = 0; i < m->njobs; i++) {
        met_sample(b, name, m->jobs[i].name, NULL, NULL);
        rt__buf_printf(b, "%lld\n", (long long)m->jobs[i].queue_delayed);
    }
    name = "ratchet_queue_oldest_age_seconds";
    met_family(b, name, "Seconds the oldest due queued run has waited (0: none).");
    for (int i = 0; i < m->njobs; i++) {
        met_sample(b, name, m->jobs[i].name, NULL, NULL);
        int64_t t = m->jobs[i].queue_oldest_ms;
        met_seconds(b, t >= 0 && m->now > t ? m->now - t : 0);
    }
    met_family(b, "ratchet_metrics_query_seconds",
               "How long reading these figures from the database took.");
    rt__buf_puts(b, "ratchet_metrics_query_seconds ");
    met_seconds(b, took_ns / 1000000);
}

/* ------------------------------------------------------------ the API */

static int met_job_cmp(const void *a, const void *b) {
    return strcmp(((const met_job *)a)->name, ((const met_job *)b)->name);
}

static int met_run_cmp(const void *a, const void *b) {
    const met_run *x = a, *y = b;
    int c = strcmp(x->job, y->job);
    return c ? c : strcmp(x->key, y->key);
}

static void met_runs_free(met_run *v, int n) {
    for (int i = 0; i < n; i++) {
        free(v[i].job);
        free(v[i].key);
    }
    free(v);
}

int rt__metrics_render(rt_store *s, rt__buf *out) {
    met m;
    memset(&m, 0, sizeof m);
    m.s = s;
    int64_t t0 = rt__mono_ns();
    int rc = met_read(&m);
    if (rc == RT_OK) {
        /* The backends' collations differ: sort here, bytewise. */
        if (m.njobs) qsort(m.jobs, (size_t)m.njobs, sizeof *m.jobs, met_job_cmp);
        if (m.nrunning)
            qsort(m.running, (size_t)m.nrunning, sizeof *m.running, met_run_cmp);
        if (m.nleases)
            qsort(m.leases, (size_t)m.nleases, sizeof *m.leases, met_run_cmp);
        met_write(&m, out, rt__mono_ns() - t0);
    }
    for (int i = 0; i < m.njobs; i++) free(m.jobs[i].name);
    free(m.jobs);
    met_runs_free(m.running, m.nrunning);
    met_runs_free(m.leases, m.nleases);
    return rc;
}
