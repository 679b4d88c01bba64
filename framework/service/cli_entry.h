/*
 * service/cli_entry.h — the command line's entry points into the layers
 * below it: what `ratchet` (framework/cli/) needs that is wrong for the
 * public API of ratchet.h, because it owns the process - the log's set-up
 * and lines, usage errors, the signal set-up of rt_main and its stop
 * handlers, the failpoints of test builds - or because it is the CLI's
 * way of running (a foreground run under those handlers, the worker pool
 * and the daemon, which fork and exec).
 *
 * Only cli/cli.h includes this header (tools/includes.sh --check holds
 * that), and it names nothing internal: its types are ratchet.h's and its
 * own. service/cli_entry.c implements it (and includes it, so every
 * definition has its prototype: -Wmissing-prototypes stays clean without
 * a lower layer including cli/).
 */
#ifndef RT_CLI_ENTRY_H
#define RT_CLI_ENTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ratchet.h"

/* --------------------------------------------------------- numbers */

/* A whole decimal integer, or a finite number, without leading space
 * (base/util.c's strict parsers, the same for every input of ratchet). */
bool rt__cli_int(const char *s, int64_t *out);
bool rt__cli_real(const char *s, double *out);

/* ------------------------------------------------------ log, usage */

/* Read RATCHET_LOG and RATCHET_LOG_LEVEL; before any line is logged. */
void rt__cli_log_init(void);
/* One log line: level RT_LOG_*, event, the run's job and key (may be
 * NULL), and the message. */
void rt__cli_log(int level, const char *event, const char *job,
                 const char *key, const char *fmt, ...) RT_PRINTF(5, 6);
/* One usage line (event usage) on stderr; returns RT_EXIT_USAGE. */
int rt__cli_usage(const char *fmt, ...) RT_PRINTF(1, 2);

/* The escaping of what status and history print, shared with the log:
 * s (NULL: "") as a JSON string literal on out; a malloc'd copy of s
 * (NULL: "") that stays on its terminal line (control characters and
 * bytes that are not UTF-8 escaped); ms since the epoch as
 * 2026-11-22T15:08:00.123Z (n >= 32). */
void rt__cli_json(FILE *out, const char *s);
char *rt__cli_text_safe(const char *s);
void rt__cli_iso8601(int64_t ms, char *out, size_t n);

/* -------------------------------------------------------- signals */

/* From rt_main's first instruction: SIGTERM and SIGINT wait, blocked, for
 * the command's handlers (then rt__cli_signals_install or _release). */
void rt__cli_signals_hold(void);
/* The mask rt__cli_signals_hold found, and the default actions, again. */
void rt__cli_signals_release(void);
/* The stop handlers of run, worker and daemon, with grace_ms until the
 * command sets its own; stop_exit: the exit code when the stop deadline
 * passes. A warning is logged when the deadline timer cannot be armed. */
void rt__cli_signals_install(int stop_exit, int64_t grace_ms);
/* The command's --grace, also for a stop that came already. */
void rt__cli_signals_grace(int64_t grace_ms);
/* Has a stop been asked for (a stop signal, or rt_request_stop)? */
bool rt__cli_stopping(void);

/* ----------------------------------------------------- test builds */

/* A malformed RATCHET_FAILPOINT: its usage error's exit code; else 0. */
int rt__cli_failpoint_init(void);
/* Failpoint run.exit (test builds; a no-op otherwise). */
void rt__cli_failpoint_run_exit(void);

/* ----------------------------------------------- checks of values */

/* --key's value: RT_OK, or RT_INVALID with one line in err. */
int rt__cli_key_check(const char *key, char *err, size_t errlen);
/* A time for --run-at: ISO-8601 (ms since the epoch), or +DURATION (its
 * ms, to add to the database's clock). */
bool rt__cli_parse_time(const char *text, int64_t *ms);
/* --metrics-listen of command cmd (value NULL: missing): RT_EXIT_OK, or
 * the exit code after one usage line. */
int rt__cli_listen_check(const char *cmd, const char *value);

/* ------------------------------------------ run, enqueue, worker, daemon */

/* Is value right for param name of job (declared type, known name)?
 * RT_OK, or RT_INVALID with one line in err. */
int rt__cli_param_check(const rt_job *job, const char *name, const char *value,
                        char *err, size_t errlen);

/* `ratchet run`'s options, checked by the CLI already. */
typedef struct rt__cli_run_opts {
    const char *url;
    const char *key;             /* NULL: resume the latest, or start anew */
    const char *const *params;   /* "NAME=VALUE", nparams of them */
    int nparams;
    int if_running;              /* RT_IF_RUNNING_* */
    const char *restart_step;    /* NULL: none */
    int64_t lease_ttl_ms, chunk_items, chunk_ms;
    int64_t start_at_ms;         /* --start-at: wall-clock ms; 0: at once */
    bool record_skip;            /* the daemon's hidden --record-skip */
} rt__cli_run_opts;

/* Run or resume job in the foreground, the stop handlers in (the way
 * rt_run goes too, with the CLI's signals): its exit code. */
int rt__cli_run(const rt_job *job, const rt__cli_run_opts *o);

/* enqueue's params checked against job before the database is touched:
 * RT_OK, or RT_INVALID with one line in err. */
int rt__cli_enqueue_check(const rt_job *job, const rt_enqueue_opts *o,
                          char *err, size_t errlen);
/*
 * Enqueue on db (rt_enqueue's rules; run_at_relative: o->run_at_ms is a
 * delay from the database's clock). RT_OK with the key in key, *created,
 * and when the run existed already its status in status; else an RT_*
 * code with one line in err.
 */
int rt__cli_enqueue(rt_db *db, const rt_job *job, const rt_enqueue_opts *o,
                    bool run_at_relative, char *key, size_t keylen,
                    bool *created, char *status, size_t statuslen, char *err,
                    size_t errlen);

/* `ratchet worker`'s options (see service.h, rt__worker_opts). */
typedef struct rt__cli_worker_opts {
    const char *url;
    const char *only;           /* comma-separated job names, or NULL */
    int concurrency;
    const char *metrics_listen; /* or NULL */
    int64_t grace_ms, lease_ttl_ms, chunk_items, chunk_ms;
} rt__cli_worker_opts;

/* `ratchet daemon`'s options (see service.h, rt__daemon_opts). */
typedef struct rt__cli_daemon_opts {
    const char *url;
    const char *exe;            /* this program, to start `run` children */
    const char *only;
    const char *const *schedules; /* "JOB=EXPR" */
    int nschedules;
    const char *const *params;    /* "JOB.NAME=VALUE" */
    int nparams;
    const char *const *overlaps;  /* "JOB=skip|queue" */
    int noverlaps;
    const char *const *misfires;  /* "JOB=catch-up|skip" */
    int nmisfires;
    const char *const *lateness;  /* "JOB=SECONDS" */
    int nlateness;
    int workers;
    const char *metrics_listen;
    int64_t grace_ms, lease_ttl_ms, chunk_items, chunk_ms;
} rt__cli_daemon_opts;

/* The worker pool and the daemon until a stop: their exit codes (0
 * stopped on request, also while they opened the database; 2 usage). */
int rt__cli_worker(const rt_job *const *jobs, const rt__cli_worker_opts *o);
int rt__cli_daemon(const rt_job *const *jobs, const rt__cli_daemon_opts *o);

#endif
