/*
 * service/service.h — the resident processes: the worker pool, the daemon's
 * schedule, and systemd's notify protocol. cron.h, metrics.h and http.h
 * are this layer's own headers for the schedule, the metrics and the HTTP
 * listener.
 */
#ifndef RT_SERVICE_H
#define RT_SERVICE_H

#include "core/core.h"

/* ----------------------------------------------------------- notify.c */

/* Send one sd_notify message ("READY=1") to $NOTIFY_SOCKET, if set. */
int rt__notify(const char *message);
/* systemd's watchdog period in ms ($WATCHDOG_USEC for this pid), 0 if off. */
int64_t rt__notify_watchdog_ms(void);

/* ----------------------------------------------------------- worker.c */

typedef struct rt__worker_opts {
    const char *url;
    const char *only;         /* comma-separated job names, or NULL */
    int concurrency;          /* worker processes */
    const char *metrics_listen; /* --metrics-listen, or NULL */
    int64_t grace_ms, lease_ttl_ms, chunk_items, chunk_ms;
} rt__worker_opts;

/* `ratchet worker`: returns an exit code (0 stopped on request, 2 usage). */
int rt__worker(const rt_job *const *jobs, const rt__worker_opts *o);

/* ----------------------------------------------------------- daemon.c */

typedef struct rt__daemon_opts {
    const char *url;
    const char *exe;          /* this program, to start `run` children */
    const char *only;         /* comma-separated job names, or NULL */
    const char **schedules;   /* "JOB=EXPR" overrides */
    int nschedules;
    const char **params;      /* "JOB.NAME=VALUE" */
    int nparams;
    const char **overlaps;    /* "JOB=skip|queue" */
    int noverlaps;
    const char **misfires;    /* "JOB=catch-up|skip" */
    int nmisfires;
    const char **lateness;    /* "JOB=SECONDS" */
    int nlateness;
    int workers;              /* worker pool size; 0 = no worker */
    const char *metrics_listen; /* --metrics-listen, or NULL */
    int64_t grace_ms, lease_ttl_ms, chunk_items, chunk_ms;
} rt__daemon_opts;

/* `ratchet daemon`: returns an exit code (0 stopped on request, 2 usage). */
int rt__daemon(const rt_job *const *jobs, const rt__daemon_opts *o);

#endif
