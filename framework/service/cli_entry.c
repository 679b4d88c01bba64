/*
 * cli_entry.c — the command line's entry points (service/cli_entry.h):
 * thin wrappers that give framework/cli/ what it needs of the log, the
 * signal handling, the failpoints and the value checks without its
 * including a header of another layer.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "service/cli_entry.h"
#include "service/metrics.h"
#include "store/failpoint.h"

bool rt__cli_int(const char *s, int64_t *out) { return rt__parse_int64(s, out); }

bool rt__cli_real(const char *s, double *out) { return rt__parse_double(s, out); }

void rt__cli_log_init(void) { rt__log_init(); }

void rt__cli_log(int level, const char *event, const char *job,
                 const char *key, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rt__log_fields f = RT_LOG_FIELDS_NONE;
    f.job = job;
    f.key = key;
    rt__log(level, event, &f, "%s", msg);
}

int rt__cli_usage(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rt__usage_error("%s", msg);
}

void rt__cli_json(FILE *out, const char *s) {
    rt__buf b = {0};
    rt__buf_json(&b, s);
    fwrite(b.p, 1, b.len, out);
    rt__buf_free(&b);
}

char *rt__cli_text_safe(const char *s) { return rt__text_safe(s); }

void rt__cli_iso8601(int64_t ms, char *out, size_t n) {
    rt__iso8601_ms(ms, out, n);
}

void rt__cli_signals_hold(void) { rt__signals_hold(); }
void rt__cli_signals_release(void) { rt__signals_release(); }

void rt__cli_signals_install(int stop_exit, int64_t grace_ms) {
    rt__signals_deadline_code(stop_exit);
    if (rt__signals_install(grace_ms) != RT_OK)
        rt__log(RT_LOG_WARN, "signals", NULL,
                "could not arm the stop deadline timer");
}

void rt__cli_signals_grace(int64_t grace_ms) { rt__signals_grace(grace_ms); }
bool rt__cli_stopping(void) { return rt__stop_flag != 0; }

int rt__cli_failpoint_init(void) { return RT_FAILPOINT_INIT(); }
void rt__cli_failpoint_run_exit(void) { (void)RT_FAILPOINT(NULL, "run.exit"); }

int rt__cli_key_check(const char *key, char *err, size_t errlen) {
    return rt__key_check(key, err, errlen);
}

bool rt__cli_parse_time(const char *text, int64_t *ms) {
    return rt__parse_time_ms(text, 0, ms);
}

int rt__cli_listen_check(const char *cmd, const char *value) {
    return rt__metrics_listen_check(cmd, value);
}

int rt__cli_param_check(const rt_job *job, const char *name, const char *value,
                        char *err, size_t errlen) {
    return rt__job_check_param(job, name, value, err, errlen);
}

int rt__cli_run(const rt_job *job, const rt__cli_run_opts *c) {
    rt__run_opts o;
    memset(&o, 0, sizeof o);
    o.url = c->url;
    o.key = c->key;
    for (int i = 0; i < c->nparams; i++) {
        const char *v = c->params[i], *eq = strchr(v, '=');
        char *name = rt__xstrndup(v, (size_t)(eq - v));
        rt__params_set(&o.params, name, eq + 1);
        free(name);
    }
    o.if_running = c->if_running;
    o.restart_step = c->restart_step;
    o.lease_ttl_ms = c->lease_ttl_ms;
    o.chunk_items = c->chunk_items;
    o.chunk_ms = c->chunk_ms;
    o.start_at_ms = c->start_at_ms;
    o.record_skip = c->record_skip;
    rt__store_set_label(job->name);
    /* The way rt_run goes too (core/entry.c): open, migrate, run; the
     * stop handlers may interrupt its SQL, and their deadline is --grace. */
    rt_run_result res;
    o.result = &res;
    rt__run_job(job, &o, true, -1);
    rt__params_free(&o.params);
    return res.exit_code;
}

int rt__cli_enqueue_check(const rt_job *job, const rt_enqueue_opts *o,
                          char *err, size_t errlen) {
    rt__params checked = {0};
    int rc = rt__enqueue_params(job, o, &checked, err, errlen);
    rt__params_free(&checked);
    return rc;
}

int rt__cli_enqueue(rt_db *db, const rt_job *job, const rt_enqueue_opts *o,
                    bool run_at_relative, char *key, size_t keylen,
                    bool *created, char *status, size_t statuslen, char *err,
                    size_t errlen) {
    rt_store *s = rt__db_store(db);
    rt_enqueue_opts eo = *o;
    if (status && statuslen) status[0] = '\0';
    int rc = run_at_relative ? rt__store_now_ms(s, o->run_at_ms, &eo.run_at_ms)
                             : RT_OK;
    if (rc != RT_OK) {
        snprintf(err, errlen, "%s", s->errmsg);
        return rc;
    }
    rc = rt__enqueue(s, true, job, &eo, key, keylen, created, err, errlen);
    if (rc == RT_OK && !*created) {
        rt__run run;
        if (rt__run_load(s, job->name, key, &run) == RT_OK) {
            snprintf(status, statuslen, "%s", rt__status_name(run.status));
            rt__run_free(&run);
        }
    }
    return rc;
}

int rt__cli_worker(const rt_job *const *jobs, const rt__cli_worker_opts *c) {
    rt__worker_opts o;
    memset(&o, 0, sizeof o);
    o.url = c->url;
    o.only = c->only;
    o.concurrency = c->concurrency;
    o.metrics_listen = c->metrics_listen;
    o.grace_ms = c->grace_ms;
    o.lease_ttl_ms = c->lease_ttl_ms;
    o.chunk_items = c->chunk_items;
    o.chunk_ms = c->chunk_ms;
    return rt__worker(jobs, &o);
}

int rt__cli_daemon(const rt_job *const *jobs, const rt__cli_daemon_opts *c) {
    rt__daemon_opts o;
    memset(&o, 0, sizeof o);
    o.url = c->url;
    o.exe = c->exe;
    o.only = c->only;
    o.schedules = (const char **)c->schedules;
    o.nschedules = c->nschedules;
    o.params = (const char **)c->params;
    o.nparams = c->nparams;
    o.overlaps = (const char **)c->overlaps;
    o.noverlaps = c->noverlaps;
    o.misfires = (const char **)c->misfires;
    o.nmisfires = c->nmisfires;
    o.lateness = (const char **)c->lateness;
    o.nlateness = c->nlateness;
    o.workers = c->workers;
    o.metrics_listen = c->metrics_listen;
    o.grace_ms = c->grace_ms;
    o.lease_ttl_ms = c->lease_ttl_ms;
    o.chunk_items = c->chunk_items;
    o.chunk_ms = c->chunk_ms;
    return rt__daemon(jobs, &o);
}
