/*
 * ratchet.h — the one public header of ratchet, a framework for long-running
 * batch jobs that survive restarts.
 *
 * A job is a name and a table of steps. Each step is a callback that runs
 * inside one database transaction; the same transaction also records the
 * run's progress (step, cursor, item count), so the work and the progress
 * that describes it are committed together or not at all. Kill the process
 * at any instant and the next start continues from the last commit.
 *
 *     static int hello(rt_ctx *ctx) {
 *         return RT_EXEC(ctx, "INSERT INTO greeting VALUES ($1)",
 *                        rt_text(rt_key(ctx))) == RT_OK ? RT_DONE : RT_ERROR;
 *     }
 *     static const rt_step hello_steps[] = { {"hello", hello}, {NULL, NULL} };
 *     static const rt_job hello_job = { .name = "hello", .steps = hello_steps };
 *     static const rt_job *const jobs[] = { &hello_job, NULL };
 *     int main(int argc, char **argv) { return rt_main(argc, argv, jobs); }
 *
 * A program of your own runs the same job with rt_run() instead (see
 * "embedding" below): no argv, no signal handlers, no exit.
 *
 * Threads: an rt_ctx belongs to the thread running the step; nothing here is
 * async-signal-safe but rt_request_stop(). Memory returned as `const char *` belongs to ratchet and
 * stays valid as documented on each call (at least until the step returns).
 */
#ifndef RATCHET_H
#define RATCHET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RT_VERSION_MAJOR 0
#define RT_VERSION_MINOR 1
#define RT_VERSION_PATCH 0
#define RT_VERSION "0.1.0"

#if defined(__GNUC__) || defined(__clang__)
#define RT_API __attribute__((visibility("default")))
#define RT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RT_API
#define RT_PRINTF(f, a)
#endif

/*
 * Return codes. Every fallible call returns one of these; the human-readable
 * message for the last error is read with rt_errmsg(). Steps return RT_DONE,
 * RT_MORE, or an error code (usually via rt_fail()).
 */
#define RT_CODE_MAP(XX)                                                        \
    XX(OK, 0, "ok")                                                            \
    XX(ERROR, 1, "step failed")                                                \
    XX(BUSY, 2, "database busy")                                               \
    XX(STOPPED, 3, "stopped on request")                                       \
    XX(FENCED, 4, "run was taken over by another process (fenced)")            \
    XX(MISUSE, 5, "API misuse")                                                \
    XX(INVALID, 6, "invalid input")                                            \
    XX(NOTFOUND, 7, "not found")                                               \
    XX(DBERR, 8, "database error")                                             \
    XX(NOMEM, 9, "out of memory")                                              \
    XX(SCHEMA, 10, "database schema is newer than this ratchet")               \
    XX(CHANGED, 11, "job definition changed since the run began")              \
    XX(HELD, 12, "run is held by another process")                             \
    XX(CONN, 13, "database connection lost")                                   \
    XX(TIMEOUT, 14, "timed out")                                               \
    XX(ROW, 100, "row available")                                              \
    XX(DONE, 101, "done")                                                      \
    XX(MORE, 102, "more to do")

enum rt_code {
#define RT_XX(name, value, text) RT_##name = value,
    RT_CODE_MAP(RT_XX)
#undef RT_XX
};

/* "RT_BUSY" for RT_BUSY; "RT_UNKNOWN" for a value not in the table. */
RT_API const char *rt_code_name(int rc);
/* A short static description of a code ("database busy"). */
RT_API const char *rt_strerror(int rc);

/* ------------------------------------------------------------------ jobs */

/* The handle a step receives. Owned by ratchet; valid during the call. */
typedef struct rt_ctx rt_ctx;

/*
 * A step. Called inside an open transaction. Returns:
 *   RT_DONE  the step is finished: commit, then go to the next step;
 *   RT_MORE  commit this chunk (work + cursor + items), then call again;
 *   other    an error: the transaction is rolled back, and the code says
 *            what happens next (one meaning each):
 *     RT_BUSY     transient (busy, serialization failure, deadlock, lock
 *                 timeout): the chunk is redone, 10 times at most
 *                 (then the run fails, as below);
 *     RT_CONN     the connection was lost: reconnect and redo the chunk,
 *                 or exit 75 after a minute without the database;
 *     RT_STOPPED  after a stop request: exit 75, progress kept;
 *     RT_INVALID  bad input (a parameter): exit 2; a run this start
 *                 created and never committed is deleted (its key is free
 *                 again), any other keeps its progress, with the message
 *                 as its error; a queued run fails;
 *     RT_DBERR    returned from a failed SQL call: when the database
 *                 refused the statement (a UNIQUE violation, a syntax
 *                 error, a constraint) the run fails, as below; when it
 *                 failed to carry it out (an I/O error, a full disk) exit
 *                 75 and run again;
 *     other      (RT_ERROR from rt_fail, ...) the run fails: `ratchet run`
 *                 exits 1, the run is 'failed' with rt_errmsg(ctx) as its
 *                 error (the database's own message when the step returns
 *                 an SQL call's code as it is); a queued run counts a
 *                 failed attempt and is retried after a backoff.
 *   An error that surfaces at the chunk's COMMIT (a deferred constraint, a
 *   pipelined rt_exec_later) is treated the same way.
 */
typedef int (*rt_step_fn)(rt_ctx *ctx);

typedef struct rt_step {
    const char *name; /* durable key in the database: renaming = a new step */
    rt_step_fn run;
} rt_step;

typedef enum rt_param_type {
    RT_PARAM_TEXT = 0,
    RT_PARAM_INT,  /* a signed 64-bit decimal integer */
    RT_PARAM_REAL, /* a finite decimal number */
    RT_PARAM_BOOL  /* true/false, yes/no, on/off, 1/0 */
} rt_param_type;

/* A declared parameter: the CLI validates --param against these. */
typedef struct rt_param_def {
    const char *name;
    rt_param_type type;
    const char *def; /* default as text; NULL = no default */
    const char *help;
} rt_param_def;

/*
 * A job. Define it `static const` with designated initializers so new fields
 * (added only at the end) default to zero.
 *   steps:  array ending in {NULL, NULL}; at least one step.
 *   params: optional array ending in {NULL}; when given, --param names not in
 *           it are refused. When NULL, any name is accepted.
 */
/*
 * What one lease excludes (rt_job.exclusive): by default one run of the job
 * at a time, like a batch that must never overlap itself; RT_EXCLUSIVE_KEY
 * lets runs with different keys go in parallel (one holder per key).
 */
typedef enum { RT_EXCLUSIVE_JOB = 0, RT_EXCLUSIVE_KEY = 1 } rt_exclusive;

/*
 * Scheduling (`ratchet daemon`). A slot that comes due while the job's
 * previous run still holds the lease is skipped (recorded as a 'skipped'
 * run) or queued (run once the holder finishes, oldest slot first).
 */
typedef enum { RT_OVERLAP_SKIP = 0, RT_OVERLAP_QUEUE = 1 } rt_overlap;
/*
 * Slots missed while no daemon ran: catch up (one run, keyed by the newest
 * missed slot) or skip (that slot is recorded as skipped).
 */
typedef enum { RT_MISFIRE_CATCH_UP = 0, RT_MISFIRE_SKIP = 1 } rt_misfire;

typedef struct rt_job {
    const char *name;
    const char *description;
    const rt_step *steps;
    const rt_param_def *params;
    rt_exclusive exclusive;
    /*
     * A cron expression ("0 3 * * *", "TZ=Europe/Paris 0 3 * * *",
     * "@hourly", six fields with seconds first); NULL = not scheduled.
     * `ratchet daemon --schedule JOB=EXPR` overrides it.
     */
    const char *schedule;
    rt_overlap overlap;
    rt_misfire misfire;
    /* Catch up only a missed slot at most this late; 0 = no limit. */
    int64_t max_lateness_s;
    /*
     * Queued runs (`ratchet enqueue`, rt_enqueue): how many starts a run
     * gets before it is failed (0 = 3), and the cap of the exponential
     * backoff between them (base 1 s, with jitter; 0 = 300 s).
     */
    int max_attempts;
    int64_t max_backoff_s;
    /*
     * Optional: the job's own rules for its params, beyond their declared
     * types (a count that must not be negative, two params that go
     * together). Called before a run is created — by `ratchet run` and
     * rt_run, `ratchet enqueue` and rt_enqueue*, and by `ratchet daemon`
     * at its start for its --param values — with the new run's params;
     * read them with rt_param* as a step does. Return RT_OK to accept
     * them; anything else refuses them with rt_errmsg(ctx) as the reason
     * (`return rt_fail(ctx, "rows must be 0 or more")`): `run` and
     * `enqueue` exit 2, rt_run and rt_enqueue* return RT_INVALID, the
     * daemon does not start, and no run is stored. Only rt_param*,
     * rt_job_name, rt_key ("" when the key is not chosen yet), rt_log,
     * rt_fail and rt_errmsg may be used: there is no run, step or
     * transaction yet (SQL calls return RT_MISUSE).
     */
    int (*check)(rt_ctx *ctx);
} rt_job;

/*
 * The whole command-line interface over jobs: every command of `ratchet
 * help` (run, daemon, enqueue, worker, status, ...; ratchet(1)).
 * jobs is a NULL-terminated array. Returns the process exit code (0, 1, 2,
 * 3, 75, or 124 from wait; see README). May install SIGTERM/SIGINT handlers
 * and exit the process itself when the stop deadline passes. The handlers
 * stay after it returns (a SIGTERM then must not kill a process whose run
 * is committed): call it last, as main's return value.
 */
RT_API int rt_main(int argc, char **argv, const rt_job *const *jobs);

/* ------------------------------------------------------------ embedding */

/*
 * What a start does when another live process holds the run's lease (the
 * job's, or the key's with RT_EXCLUSIVE_KEY): fail (RT_HELD, `ratchet run`
 * exits 3), skip it (RT_OK, nothing done), or wait for the holder and then
 * resume what it left.
 */
typedef enum rt_if_running {
    RT_IF_RUNNING_FAIL = 0,
    RT_IF_RUNNING_SKIP = 1,
    RT_IF_RUNNING_WAIT = 2
} rt_if_running;

/*
 * How rt_run runs a job: the options of `ratchet run`. Zero-initialise it:
 * every zero field is that option's default. size is sizeof(rt_run_opts)
 * as the caller was compiled (RT_RUN_OPTS_INIT sets it; 0 reads as this
 * version's size): a library with more fields takes the ones the caller
 * does not have as zero. Fields are only ever added at the end.
 */
typedef struct rt_run_opts {
    size_t size;
    const char *const *params;  /* NULL-ended "NAME=VALUE" strings (as
                                   --param), or NULL; checked against the
                                   job's declared params, then rt_job.check */
    int64_t chunk_items;        /* items per commit; 0: 1000; < 0: no limit */
    int64_t chunk_ms;           /* ms per commit; 0: 1000; < 0: no limit */
    double lease_ttl_s;         /* 0: 30; else 0.1 to 86400 */
    rt_if_running if_running;   /* 0: RT_IF_RUNNING_FAIL */
    /*
     * After a stop request (rt_request_stop), how long the run may take to
     * reach its next commit before the database call in flight is
     * interrupted: its transaction rolls back and rt_run returns
     * RT_STOPPED with the progress of the last commit. 0: 8 s (as
     * --grace); < 0: no limit. A step that hangs outside the database is
     * waited for: rt_run never exits or kills anything.
     */
    double grace_s;
    /*
     * Wall-clock milliseconds since the epoch before which the run does
     * not start: rt_run connects and gets ready now (the schema, the
     * lease's connection, the statements a start needs), then waits until
     * then to take the run — for a scheduler that starts a process ahead
     * of its slot, so the run begins within milliseconds of the slot time.
     * A stop request during the wait returns RT_STOPPED, nothing done.
     * 0, or a time already past: at once.
     */
    int64_t start_at_ms;
} rt_run_opts;

#define RT_RUN_OPTS_INIT {sizeof(rt_run_opts)}

/* What rt_run did: filled whatever it returns (zeroed first). */
typedef struct rt_run_result {
    int64_t run_id;   /* the run's id; 0 when no run was read */
    char key[256];    /* its key ("" when no run was read) */
    char status[16];  /* its status as rt_run leaves it: "done",
                         "interrupted", "failed", "cancelled", "skipped",
                         "pending" or "running"; "" when no run was read
                         (refused before, held by another process) */
    int64_t items;    /* its items, as committed */
    bool skipped;     /* held by another process, and if_running said skip */
    int exit_code;    /* what `ratchet run` exits with for the same
                         outcome: 0, 1, 2, 3 or 75 (README) */
} rt_run_result;

/*
 * Run or resume job on db_url (a URL as for --db) from a program of your
 * own — a service running a batch from a request handler, say — without
 * argv, rt_main or the CLI: the same path `ratchet run JOB` takes. key as
 * --key: NULL resumes the job's latest unfinished run, or starts a new
 * one. Opens its own connections (closed before it returns) and brings
 * the schema up to date. Returns:
 *   RT_OK       the run is done (now, or before); or it was skipped
 *               (out->skipped); or it is cancelled (out->status);
 *   RT_STOPPED  a stop was requested (rt_request_stop): the run committed
 *               at its next boundary and is 'interrupted'; call rt_run
 *               again (after rt_clear_stop) to resume it from there;
 *   RT_ERROR    the run failed (err holds its error);
 *   RT_HELD     another process holds it and if_running is FAIL;
 *   RT_FENCED   another process took it over while this call ran it;
 *   RT_INVALID, RT_CHANGED, RT_SCHEMA, RT_MISUSE  the input, the job's
 *               steps or the database's schema are wrong: nothing ran;
 *   RT_CONN, RT_BUSY, RT_DBERR  database trouble; out->exit_code 75 means
 *               it is temporary (progress is kept: call again), 1 not.
 * out (may be NULL) receives what happened; err (may be NULL) one line
 * when the return is not RT_OK. Log lines go to stderr as for the CLI
 * (RATCHET_LOG, RATCHET_LOG_LEVEL); nothing is written to stdout, no
 * signal handler is installed, and the process is never exited.
 * Threads: runs the steps on the calling thread. Calls on other threads
 * may run other jobs (or keys) at the same time; a stop request applies to
 * all of them.
 */
RT_API int rt_run(const char *db_url, const rt_job *job, const char *key,
                  const rt_run_opts *opts, rt_run_result *out, char *err,
                  size_t errlen);

/*
 * Ask every rt_run of this process to stop at its next safe point: a
 * chunked step commits the items it finished, an atomic one rolls back
 * (rt_continue answers false, rt_stop_requested true). Async-signal-safe
 * and thread-safe: call it from a SIGTERM handler of your own or from any
 * thread. The request stays until rt_clear_stop(): meanwhile a new rt_run
 * returns RT_STOPPED at once, touching nothing. In a program run by
 * rt_main, the stop signals make the same request.
 */
RT_API void rt_request_stop(void);
/* Withdraw the stop request (rt_run can run again). Thread-safe; call it
 * when no rt_run is going, or those going may or may not stop. */
RT_API void rt_clear_stop(void);

/*
 * Block until the run (job, key) is finished — or, with key NULL, job's
 * latest run. For programs that must not start a duplicate of a run that
 * is going (a web request that needs a batch's result). Opens its own
 * connection to db_url (a URL as for --db). timeout_s < 0 waits for ever.
 * Returns RT_OK (done), RT_ERROR (failed: err holds the run's error),
 * RT_TIMEOUT, RT_NOTFOUND (no such run), RT_INVALID (key is not a valid
 * run key: see rt_enqueue_opts), or the error of opening db_url.
 * err (may be NULL) receives a one-line message.
 */
RT_API int rt_wait(const char *db_url, const char *job, const char *key,
                   double timeout_s, char *err, size_t errlen);

/* ---------------------------------------------------------------- queue */

/* What rt_enqueue* inserts besides the job. Zero-initialise it. */
typedef struct rt_enqueue_opts {
    const char *key;            /* NULL: a unique key (time + random); at
                                   most 255 bytes of UTF-8, no control
                                   character (else RT_INVALID) */
    const char *const *params;  /* NULL-ended "NAME=VALUE" strings, or NULL */
    int64_t run_at_ms;          /* not before (ms since the epoch); 0 = now */
    int priority;               /* higher is claimed first */
    int max_attempts;           /* 0: the job's (default 3) */
} rt_enqueue_opts;

/*
 * Insert a pending run for workers (`ratchet worker`, `ratchet daemon`) to
 * claim. Idempotent: a key that exists is left as it is and *created is
 * false. key_out (may be NULL) receives the run's key. Params are checked
 * against the job's declared ones (RT_INVALID, err says which). err (may
 * be NULL) receives a one-line message.
 *   rt_enqueue         opens its own connection to db_url and commits.
 *   rt_enqueue_sqlite  runs on the caller's connection, inside the
 *   rt_enqueue_pg      caller's open transaction (begun by the caller): the
 *                      run exists exactly when that transaction commits.
 *                      The schema must exist (`ratchet migrate`).
 */
RT_API int rt_enqueue(const char *db_url, const rt_job *job,
                      const rt_enqueue_opts *opts, char *key_out,
                      size_t key_len, bool *created, char *err,
                      size_t errlen);
struct sqlite3;
struct pg_conn;
RT_API int rt_enqueue_sqlite(struct sqlite3 *db, const rt_job *job,
                             const rt_enqueue_opts *opts, char *key_out,
                             size_t key_len, bool *created, char *err,
                             size_t errlen);
RT_API int rt_enqueue_pg(struct pg_conn *conn, const rt_job *job,
                         const rt_enqueue_opts *opts, char *key_out,
                         size_t key_len, bool *created, char *err,
                         size_t errlen);

/* A run as rt_run_status sees it. Strings live until the next call. */
typedef struct rt_run_info {
    int64_t id;
    const char *status; /* pending running interrupted done failed skipped cancelled */
    const char *step;   /* the current step's name; NULL when done */
    int64_t items;
    int attempt;
    const char *error;  /* NULL when none */
} rt_run_info;

/* The state of run (job, key): RT_OK, RT_NOTFOUND, RT_INVALID (not a valid
 * run key), or an error. */
RT_API int rt_run_status(const char *db_url, const char *job, const char *key,
                         rt_run_info *info, char *err, size_t errlen);

/* ------------------------------------------------------------ operating */

/*
 * What `ratchet migrate`, `retry`, `cancel`, `reset` and `prune` do, for a
 * program of your own (an admin page, an HTTP API). An rt_db is one open
 * connection whose schema is up to date; it belongs to one thread at a
 * time. Each call returns an RT_* code and leaves a one-line message,
 * read with rt_db_errmsg, when it is not RT_OK. Nothing is written to
 * stdout.
 */
typedef struct rt_db rt_db;

/*
 * Open db_url and create or upgrade its schema, as every command does.
 * As sqlite3_open, *db is a handle whatever the outcome (NULL only when db
 * is NULL); close it with rt_db_close. RT_OK: it is open. Else err (may be
 * NULL) and rt_db_errmsg(*db) get one line, which is also logged to stderr
 * (event db_open, schema or migrate), the code says why (RT_INVALID for a
 * bad URL, RT_SCHEMA for a schema newer than this ratchet, RT_CONN when
 * the server was not reached or was lost, RT_BUSY for a lock not had in
 * time), rt_exit_code(*db, rc) the exit code it means, and the calls
 * below return RT_MISUSE on it.
 */
RT_API int rt_db_open(const char *db_url, rt_db **db, char *err,
                      size_t errlen);
/* Close db; NULL is a no-op. */
RT_API void rt_db_close(rt_db *db);
/* The last error's message on db ("" when none); valid until the next call
 * on db. */
RT_API const char *rt_db_errmsg(const rt_db *db);
/* db's URL for messages, any password masked; lives as long as db. */
RT_API const char *rt_db_url(const rt_db *db);
/* The schema's version before rt_db_open (from) and after it (to), and
 * the newest this ratchet knows (latest); each pointer may be NULL. */
RT_API void rt_db_schema(const rt_db *db, int *from, int *to, int *latest);
/* The database libraries this ratchet uses, as `ratchet --version` shows
 * them ("SQLite 3.45.1, libpq 16.2" or so); a static string. */
RT_API const char *rt_versions(void);
/* The exit codes of `ratchet` (and rt_run_result.exit_code). */
enum {
    RT_EXIT_OK = 0,
    RT_EXIT_FAILED = 1,
    RT_EXIT_USAGE = 2,         /* usage or configuration */
    RT_EXIT_HELD = 3,          /* held by another process, or fenced */
    RT_EXIT_INTERRUPTED = 75,  /* EX_TEMPFAIL: run again, nothing is lost */
    RT_EXIT_TIMEOUT = 124      /* `ratchet wait --timeout`, as timeout(1) */
};

/*
 * The exit code `ratchet` gives for return code rc: 0 done, 1 failed, 2
 * usage or configuration, 3 held or fenced, 75 interrupted or temporary
 * (run again), 124 timed out. db is the handle rc came from, or NULL
 * when none was opened. For a handle whose rt_db_open failed it is that
 * failure's code: a server not reached at all is 1 and any other refusal
 * to open is the URL's (2), while a connection lost while it migrated, a
 * full disk and a lock not had in time are 75. The one table the CLI
 * maps its outcomes through.
 */
RT_API int rt_exit_code(const rt_db *db, int rc);

/*
 * retry: make a failed, cancelled or skipped run pending again, its error
 * and attempt count cleared and its progress kept (a queued run goes back
 * to the workers). cancel: cancel a run - at once when it is pending,
 * interrupted, or running in a process that is gone; a running run stops
 * at its next commit and ends cancelled. run names the run: its id
 * ("42") or "JOB/KEY". jobs (NULL-ended, may be NULL) are the jobs of
 * this program: a running run of one of them is judged by its lease.
 * RT_OK with one line for people in msg (may be NULL); RT_INVALID when
 * run names no run in that form or the run is in a state the call
 * refuses; RT_NOTFOUND when there is no such run; or a database error.
 */
/* Is run a run's name in the form rt_retry_run takes (an id, or JOB/KEY
 * with a valid key)? RT_OK, or RT_INVALID with one line in err (may be
 * NULL). Needs no database. */
RT_API int rt_run_name_check(const char *run, char *err, size_t errlen);
RT_API int rt_retry_run(rt_db *db, const rt_job *const *jobs,
                        const char *run, char *msg, size_t msglen);
RT_API int rt_cancel_run(rt_db *db, const rt_job *const *jobs,
                         const char *run, char *msg, size_t msglen);

/* What rt_reset_run discarded. status is a static string. */
typedef struct rt_reset_info {
    int64_t id;
    const char *status;
    int step;      /* 1-based index of the step it was at */
    int64_t items;
} rt_reset_info;

/*
 * Discard the run (job, key) and all its progress; the work it committed
 * is not undone. A running run is refused (RT_HELD) unless force: its
 * process then rolls back its chunk at its next commit and exits 3.
 * RT_OK with *was (may be NULL) describing the run; RT_NOTFOUND; RT_BUSY
 * when the run kept changing under every try; or a database error.
 */
RT_API int rt_reset_run(rt_db *db, const char *job, const char *key,
                        bool force, rt_reset_info *was);
/* The runs' metrics in Prometheus text format (0.0.4), as `ratchet
 * metrics` prints them: RT_OK with *text malloc'd (free it with rt_free),
 * or an error (*text NULL) with the message in rt_db_errmsg. Reads only. */
RT_API int rt_metrics_text(rt_db *db, char **text);
/* Free what a call of this header returned malloc'd; NULL is a no-op. */
RT_API void rt_free(void *p);
/* A run as rt_list_runs lists it. Times are ms since the epoch; -1 means
 * not yet (or, for the ages, not known). */
typedef struct rt_run_row {
    int64_t id;
    const char *job, *key;
    const char *status;   /* pending running interrupted done failed ... */
    const char *step;     /* the current step's name; NULL when none */
    int step_index;       /* 0-based index of that step */
    int steps;            /* how many steps the run has */
    int64_t items, step_items;
    int64_t step_total;   /* the step's rt_set_total, -1 when unknown */
    int64_t epoch, attempt;
    const char *error;    /* NULL when none */
    int64_t created_ms, started_ms, updated_ms, finished_ms;
    const char *holder;   /* the live lease's owner, NULL when none */
    int64_t heartbeat_age_ms;  /* since the holder's last heartbeat */
    int64_t since_progress_ms; /* since the run last changed */
} rt_run_row;

/*
 * The runs of job (all jobs when NULL), at most limit of them (<= 0: no
 * limit): with finished false every run, newest first, with its holder
 * and ages on the database's clock (as `ratchet status`); with finished
 * true only finished runs (done, failed, skipped, cancelled), newest
 * finish first, holder and ages unset (as `ratchet history`). RT_OK with
 * *rows malloc'd (*n of them; free them with rt_free_runs), or an error
 * with *rows NULL and the message in rt_db_errmsg.
 */
RT_API int rt_list_runs(rt_db *db, const char *job, int64_t limit,
                        bool finished, rt_run_row **rows, size_t *n);
/* Free what rt_list_runs returned; NULL is a no-op. */
RT_API void rt_free_runs(rt_run_row *rows, size_t n);
/* Delete the finished runs (and their params) that finished more than
 * older_than_ms ago by the database's clock; *deleted (may be NULL) says
 * how many. Unfinished runs are never deleted. */
RT_API int rt_prune_runs(rt_db *db, int64_t older_than_ms, int64_t *deleted);

/* --------------------------------------------------------- run & params */

RT_API const char *rt_job_name(const rt_ctx *ctx);
RT_API const char *rt_key(const rt_ctx *ctx);
RT_API int64_t rt_run_id(const rt_ctx *ctx);
RT_API const char *rt_step_name(const rt_ctx *ctx);
/* How many times this run has been started or resumed: 1 the first time. */
RT_API int rt_attempt(const rt_ctx *ctx);

/* The parameter's text: the run's value, else the declared default, else def. */
RT_API const char *rt_param(const rt_ctx *ctx, const char *name,
                            const char *def);
/*
 * Typed parameters. On success *out is the value (or def when the parameter is
 * absent) and RT_OK is returned. A value that does not parse returns
 * RT_INVALID with a message naming the parameter; return it from the step and
 * the run stops with exit 2 (see rt_step_fn for what is kept). A declared
 * param's type is checked before the run is created; rt_job.check can do
 * the same for a job's own rules.
 */
RT_API int rt_param_int64(rt_ctx *ctx, const char *name, int64_t def,
                          int64_t *out);
RT_API int rt_param_double(rt_ctx *ctx, const char *name, double def,
                           double *out);
RT_API int rt_param_bool(rt_ctx *ctx, const char *name, bool def, bool *out);

/* ------------------------------------------------------------- cursor */

/*
 * A step's saved position, committed with each chunk and cleared when the
 * step returns RT_DONE. A cursor holds an integer and/or up to
 * RT_CURSOR_MAX bytes.
 */
#define RT_CURSOR_MAX 4096
RT_API bool rt_has_cursor(const rt_ctx *ctx);
RT_API int64_t rt_cursor_int64(const rt_ctx *ctx); /* 0 when unset */
/* Bytes of the cursor (NULL, *len = 0 when unset); valid until next set. */
RT_API const void *rt_cursor_bytes(const rt_ctx *ctx, size_t *len);
RT_API void rt_set_cursor_int64(rt_ctx *ctx, int64_t value);
/* RT_INVALID when len > RT_CURSOR_MAX; the bytes are copied. */
RT_API int rt_set_cursor_bytes(rt_ctx *ctx, const void *bytes, size_t len);

/* ---------------------------------------------------- items and stopping */

/*
 * Ask between items whether to go on. False when a stop was requested
 * (SIGTERM/SIGINT, rt_request_stop) or this chunk's budget (--chunk-items,
 * --chunk-ms) is spent (a --chunk-ms of 100 or more may overrun by a clock
 * tick, 1-4 ms); the step should then return RT_MORE, or RT_DONE if it
 * has finished.
 * A step that asks is "chunked": on stop, the items it completed commit.
 * A step that never asks is "atomic": on stop, its SQL calls fail with
 * RT_STOPPED and the transaction rolls back.
 */
RT_API bool rt_continue(rt_ctx *ctx);
/* True once a stop was requested (a stop signal under rt_main, or
 * rt_request_stop); it changes back only with rt_clear_stop. */
RT_API bool rt_stop_requested(const rt_ctx *ctx);
/* Items this chunk may still take (INT64_MAX when unbounded); for LIMITs. */
RT_API int64_t rt_chunk_left(const rt_ctx *ctx);
/* Count n finished items; committed with the chunk. Counts saturate at
 * INT64_MAX (and INT64_MIN) rather than overflow. */
RT_API void rt_add_items(rt_ctx *ctx, int64_t n);
/* Items the step has done so far, committed or not. */
RT_API int64_t rt_items(const rt_ctx *ctx);
/* Optional total for the current step, for progress and ETA. */
RT_API void rt_set_total(rt_ctx *ctx, int64_t total);

/* ---------------------------------------------------- errors and logging */

enum rt_log_level { RT_LOG_DEBUG = 0, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR };

/* Log a line tagged with the job, key and step. */
RT_API void rt_log(rt_ctx *ctx, int level, const char *fmt, ...)
    RT_PRINTF(3, 4);
/*
 * Set the step's error message and return RT_ERROR: `return rt_fail(...)`.
 * Its arguments may include rt_errmsg(ctx) (`rt_fail(ctx, "loading %s: %s",
 * name, rt_errmsg(ctx))`): the message is formatted before it is replaced.
 */
RT_API int rt_fail(rt_ctx *ctx, const char *fmt, ...) RT_PRINTF(2, 3);
/* The message of the last error on ctx ("" if none): after a failed SQL
 * call, the database's own message ("sqlite: UNIQUE constraint failed:
 * ...", "postgres: 23505: duplicate key value violates unique constraint
 * ..."). Valid until the next call on ctx. */
RT_API const char *rt_errmsg(const rt_ctx *ctx);

/* ------------------------------------------------------------------ SQL */

/*
 * SQL runs on the connection that holds the step's transaction, so it commits
 * or rolls back with the progress update. Placeholders are $1, $2, ... on both
 * backends; values are always bound, never spliced into the text.
 */
typedef enum rt_type {
    RT_TNULL = 0,
    RT_TINT,
    RT_TREAL,
    RT_TTEXT,
    RT_TBLOB
} rt_type;

typedef struct rt_value {
    rt_type type;
    union {
        int64_t i;
        double d;
        struct {
            const void *p;
            size_t n; /* for text: SIZE_MAX means NUL-terminated */
        } b;
    } u;
} rt_value;

static inline rt_value rt_null(void) {
    rt_value v = {RT_TNULL, {0}};
    return v;
}
static inline rt_value rt_int(int64_t i) {
    rt_value v = {RT_TINT, {0}};
    v.u.i = i;
    return v;
}
static inline rt_value rt_real(double d) {
    rt_value v = {RT_TREAL, {0}};
    v.u.d = d;
    return v;
}
static inline rt_value rt_text(const char *s) {
    rt_value v = {RT_TTEXT, {0}};
    v.u.b.p = s;
    v.u.b.n = (size_t)-1;
    return v;
}
static inline rt_value rt_blob(const void *p, size_t n) {
    rt_value v = {RT_TBLOB, {0}};
    v.u.b.p = p;
    v.u.b.n = n;
    return v;
}

/*
 * A prepared statement, cached per connection by its SQL text: preparing the
 * same text again returns the same statement, reset and with bindings
 * cleared. Owned by the connection; never finalize it. Do not interleave two
 * uses of the same SQL text.
 */
typedef struct rt_stmt rt_stmt;

RT_API int rt_prepare(rt_ctx *ctx, const char *sql, rt_stmt **stmt);
/* idx is 1-based ($1 is 1). Text and blobs are copied. */
RT_API int rt_bind(rt_stmt *stmt, int idx, rt_value value);
RT_API int rt_bind_int64(rt_stmt *stmt, int idx, int64_t value);
RT_API int rt_bind_text(rt_stmt *stmt, int idx, const char *text);
/* Advance: RT_ROW when a row is ready, RT_DONE when finished, else an error. */
RT_API int rt_next(rt_stmt *stmt);
/* Abandon a statement's remaining rows (before returning RT_MORE, say). */
RT_API int rt_reset(rt_stmt *stmt);
/* Columns are 0-based. Text/blob pointers are valid until the next step. */
RT_API int rt_column_count(rt_stmt *stmt);
RT_API rt_type rt_column_type(rt_stmt *stmt, int col);
RT_API int64_t rt_column_int64(rt_stmt *stmt, int col);
RT_API double rt_column_double(rt_stmt *stmt, int col);
RT_API const char *rt_column_text(rt_stmt *stmt, int col); /* NULL if NULL */
RT_API const void *rt_column_blob(rt_stmt *stmt, int col, size_t *len);

/*
 * Run one statement with nargs bound values to completion. With nargs == 0
 * the text may hold several statements separated by ';'.
 */
RT_API int rt_exec(rt_ctx *ctx, const char *sql, int nargs,
                   const rt_value *args);
/* The first column of the first row as an integer; RT_NOTFOUND if no row. */
RT_API int rt_query_int64(rt_ctx *ctx, const char *sql, int nargs,
                          const rt_value *args, int64_t *out);
/*
 * rt_exec for a statement whose outcome the step does not read (an INSERT,
 * an UPDATE whose row count does not matter). On PostgreSQL it is
 * pipelined: it goes out with the next statement that waits for a result,
 * or with the chunk's commit, instead of costing a round trip of its own.
 * Its error, if any, surfaces there, naming this statement and the item it
 * was sent for, and the chunk rolls back as for any error. On SQLite, where
 * a statement is a call, it is rt_exec.
 */
RT_API int rt_exec_later(rt_ctx *ctx, const char *sql, int nargs,
                         const rt_value *args);
/* Rows changed by the last completed INSERT/UPDATE/DELETE on ctx. */
RT_API int64_t rt_changes(rt_ctx *ctx);

/* rt_exec with the arguments written inline: RT_EXEC(ctx, sql, rt_int(1)). */
#define RT_EXEC(ctx, sql, ...)                                                 \
    rt_exec((ctx), (sql),                                                      \
            (int)(sizeof((rt_value[]){__VA_ARGS__}) / sizeof(rt_value)),       \
            (rt_value[]){__VA_ARGS__})
/* rt_exec_later with the arguments written inline. */
#define RT_EXEC_LATER(ctx, sql, ...)                                           \
    rt_exec_later((ctx), (sql),                                                \
                  (int)(sizeof((rt_value[]){__VA_ARGS__}) / sizeof(rt_value)), \
                  (rt_value[]){__VA_ARGS__})

/* "sqlite" or "postgres". */
RT_API const char *rt_backend(const rt_ctx *ctx);
/* The raw connection for power users; NULL on the other backend. Do not
 * begin, commit or roll back on it: ratchet owns the transaction. */
RT_API struct sqlite3 *rt_sqlite3(rt_ctx *ctx);
RT_API struct pg_conn *rt_pgconn(rt_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif /* RATCHET_H */
