/*
 * core/core.h — the run and what happens to it: stop signals, migrations,
 * the state machine's types (lifecycle.h has its SQL), runs as stored, the
 * lease, the runner, enqueue, a step's context and the operator's actions.
 * Includes the store layer; nothing here knows which backend it talks to.
 */
#ifndef RT_CORE_H
#define RT_CORE_H

#include "base/base.h"
#include "store/store.h"
#include "store/failpoint.h"

/* ---------------------------------------------------------- signals.c */

/* Set by SIGTERM/SIGINT; never cleared. */
extern volatile sig_atomic_t rt__stop_flag;
/* The signal that asked to stop (0 if none). */
extern volatile sig_atomic_t rt__stop_signal;
/*
 * Block SIGTERM and SIGINT, remembering the mask before: rt_main's first
 * instruction. Then either rt__signals_install (run, worker, daemon) or
 * rt__signals_release (every other command).
 */
void rt__signals_hold(void);
/* Put back the mask rt__signals_hold found: the default actions again. */
void rt__signals_release(void);
/*
 * Install the stop handlers and unblock SIGTERM and SIGINT (one pending
 * lands in the handler now). After the first signal, the process ends with
 * the deadline code (default 75) grace_ms later whatever it is doing (the
 * database call in flight is interrupted first). Called again, it only
 * sets the grace (rt__signals_grace). RT_DBERR when the deadline timer
 * could not be made (the handlers are in all the same).
 */
int rt__signals_install(int64_t grace_ms);
/* The grace from now on; a stop that came already ends grace_ms after it
 * came (at once if that has passed). */
void rt__signals_grace(int64_t grace_ms);
/* In a child of rt__fork_tied that does not exec: its own deadline timer,
 * the grace, and the stop signals unblocked. As rt__signals_install. */
int rt__signals_child(int64_t grace_ms);
/* The exit code when the deadline passes (default 75). */
void rt__signals_deadline_code(int code);
/* The store whose calls the handler may interrupt (async-safe pointer swap). */
void rt__signals_store(rt_store *s);
/* Whether the running step is atomic: then a stop interrupts it at once. */
void rt__signals_atomic(bool atomic);
/*
 * fork() a child that gets SIGTERM when this process dies (Linux:
 * PR_SET_PDEATHSIG) and starts with SIGTERM and SIGINT blocked, no other
 * signal blocked: it calls rt__signals_child, or execs this program (whose
 * rt_main unblocks them once its handlers are in). Returns as fork().
 */
pid_t rt__fork_tied(void);
/* A stop was requested while an atomic step runs: its SQL must fail. */
bool rt__signals_atomic_stopped(void);

/* ----------------------------------------------------------- migrate.c */

typedef struct rt__migration {
    const char *backend;
    int version;
    const char *name;
    const char *sql;
} rt__migration;

/* Generated at build time from migrations/<backend>/NNNN_name.sql. */
extern const rt__migration rt__migrations[];
extern const int rt__migrations_count;

/* Bring the schema up to date. RT_SCHEMA when the database is newer. */
int rt__migrate(rt_store *s, int *from, int *to);
int rt__schema_latest(const char *backend);

/* -------------------------------------------------------- lifecycle.c */

/* A run's states; the names are the rt_run.status values. */
#define RT__STATUS_MAP(X)                                                      \
    X(PENDING, "pending")                                                      \
    X(RUNNING, "running")                                                      \
    X(INTERRUPTED, "interrupted")                                              \
    X(DONE, "done")                                                            \
    X(FAILED, "failed")                                                        \
    X(SKIPPED, "skipped")                                                      \
    X(CANCELLED, "cancelled")

typedef enum rt__status {
#define RT__STATUS_ENUM(name, text) RT__ST_##name,
    RT__STATUS_MAP(RT__STATUS_ENUM)
#undef RT__STATUS_ENUM
    RT__ST_COUNT,
    /* As a move's target: the run is deleted. As a run's: a status this
     * build does not know (a row written by hand or by a newer version). */
    RT__ST_GONE = RT__ST_COUNT
} rt__status;

/* "pending", ...; "deleted" for RT__ST_GONE. */
const char *rt__status_name(rt__status st);
/* The status named text; RT__ST_GONE when it is none. */
rt__status rt__status_parse(const char *text);
/* done, failed, skipped, cancelled: only an operator moves it on. */
bool rt__status_terminal(rt__status st);

/* What can happen to a run (lifecycle.c says who makes each one). */
#define RT__EVENT_MAP(X)                                                       \
    X(START, "start")                                                          \
    X(CLAIM, "claim")                                                          \
    X(TAKEOVER, "takeover")                                                    \
    X(COMMIT, "commit")                                                        \
    X(FINISH, "finish")                                                        \
    X(STOP, "stop")                                                            \
    X(CANCEL_SEEN, "cancel_seen")                                              \
    X(REFUSE, "refuse")                                                        \
    X(FORGET, "forget")                                                        \
    X(STEP_ERROR, "step_error")                                                \
    X(FAIL, "fail")                                                            \
    X(HOLDER_DEAD, "holder_dead")                                              \
    X(HOLDER_DEAD_LAST, "holder_dead_last")                                    \
    X(SKIP, "skip")                                                            \
    X(RETRY, "retry")                                                          \
    X(CANCEL, "cancel")                                                        \
    X(RESET, "reset")                                                          \
    X(PRUNE, "prune")

typedef enum rt__event {
#define RT__EVENT_ENUM(name, text) RT__EV_##name,
    RT__EVENT_MAP(RT__EVENT_ENUM)
#undef RT__EVENT_ENUM
    RT__EV_COUNT
} rt__event;

const char *rt__event_name(rt__event ev);

/* Who may make an event. */
typedef enum rt__maker {
    RT__BY_HOLDER, /* the run's holder, fenced by its epoch */
    RT__BY_OTHER   /* anyone else: the move bumps the epoch */
} rt__maker;

/* One cell of the table: where the event takes a run in state from. */
typedef struct rt__move {
    bool allowed;
    rt__status to;   /* RT__ST_GONE: deleted */
    rt__maker by;
} rt__move;

/* The table's cell for (from, ev): .allowed false when refused. */
rt__move rt__lifecycle_move(rt__status from, rt__event ev);

/* A verdict to carry out (rt__transition). */
typedef struct rt__verdict {
    rt__event event;
    int64_t id;             /* the run */
    const char *job, *key;  /* its name, for the log */
    rt__status from;        /* as read: the write is fenced on it */
    int64_t epoch;          /* as read: the write is fenced on it */
    const char *who;        /* who makes it ("worker HOST:PID:NONCE",
                               "operator", the holder's owner) */
    const char *why;        /* logged; the run's error where it keeps one */
    int failures;           /* STEP_ERROR, FAIL, HOLDER_DEAD*: the count */
    int64_t delay_ms;       /* STEP_ERROR, HOLDER_DEAD: the backoff */
    const char *scope;      /* the lease settled in the same transaction
                               (deleted): scope and its owner; owner NULL:
                               the row of this run's key in either of its
                               job's scopes, whoever holds it; scope NULL:
                               none */
    const char *owner;
    bool unrenewed;         /* HOLDER_DEAD*: only while that lease's
                               heartbeat is still `heartbeat`, the one
                               seen when its holder was judged dead (it did
                               not renew since) */
    int64_t heartbeat;
} rt__verdict;

/*
 * The one way a run's status changes outside the statements of
 * lifecycle.h: the table's cell for (v->from, v->event) decides, one
 * fenced statement carries it out (the epoch moves with every verdict made
 * by another than the holder), the lease goes in the same transaction, and
 * one log line names who moved the run and why. In a transaction of its
 * own unless s has one open. RT_OK with *moved (may be NULL) false: the
 * fence did not hold — the run changed meanwhile, nothing was written.
 * RT_INVALID: the table refuses the event in that state (a message in
 * s->errmsg).
 */
int rt__transition(rt_store *s, const rt__verdict *v, bool *moved);

/* -------------------------------------------------------------- run.c */

typedef struct rt__param {
    char *name, *value;
} rt__param;

typedef struct rt__params {
    rt__param *v;
    int n;
} rt__params;

void rt__params_set(rt__params *p, const char *name, const char *value);
const char *rt__params_get(const rt__params *p, const char *name);
void rt__params_free(rt__params *p);

/* One row of rt_run, as loaded. */
typedef struct rt__run {
    int64_t id;
    char *job, *key;
    rt__status status;
    char *fingerprint, *steps; /* steps: names joined by '\n' */
    int step_index;
    char *step_name;
    bool has_cursor, has_cursor_bytes;
    int64_t cursor_int;
    unsigned char *cursor_bytes;
    size_t cursor_len;
    int64_t items, step_items, step_total;
    int64_t epoch;
    int attempt;
    char *error;
    int64_t created_ms, started_ms, updated_ms, finished_ms;
    int64_t slot_ms;       /* the cron slot; -1 when not scheduled */
    bool queued;           /* enqueued: workers claim it */
    int64_t priority;
    int64_t run_at_ms;     /* not before; -1 = any time */
    int max_attempts;      /* 0 = the default */
    bool cancel_requested;
    int failures;          /* failed attempts so far (queued runs) */
    rt__params params;
    char invalid[320];     /* why its row cannot be resumed as it is (a
                              cursor of the wrong type); "" when it can */
} rt__run;

void rt__run_free(rt__run *r);
/* rt_run's columns in the order rt__run_from_row reads them (27). */
#define RT__RUN_COLUMNS                                                        \
    "id, job, run_key, status, fingerprint, steps, step_index, step_name, "    \
    "cursor_int, cursor_bytes, items, step_items, step_total, epoch, "         \
    "attempt, error, created_ms, started_ms, updated_ms, finished_ms, "       \
    "slot_ms, queued, priority, run_at_ms, max_attempts, cancel_requested, "  \
    "failures "
#define RT__RUN_NCOLUMNS 27
/* The current row of a SELECT of RT__RUN_COLUMNS into *r (zeroed first by
 * the caller); rt__run_load_params adds the run's params. */
void rt__run_from_row(rt_stmt *st, rt__run *r);
/* Are the cursor columns col_int and col_bytes of st's row of the right
 * type (NULL or an integer; NULL or bytes)? RT_OK, or RT_INVALID with one
 * line in err naming the run (job/key) and the column. attempt and
 * failures are read clamped into int's range, never truncated. */
int rt__run_cursor_check(rt_stmt *st, int col_int, int col_bytes,
                         const char *job, const char *key, char *err,
                         size_t errlen);
int rt__run_load_params(rt_store *s, rt__run *r);
/* Load by (job, key); RT_NOTFOUND if absent. */
int rt__run_load(rt_store *s, const char *job, const char *key, rt__run *out);
/* The latest unfinished run of job; RT_NOTFOUND if none. */
int rt__run_load_unfinished(rt_store *s, const char *job, rt__run *out);
/*
 * Insert a new run (status 'pending') with its params; RT_HELD if the key
 * exists already (another process won the race).
 */
int rt__run_insert(rt_store *s, const rt_job *job, const char *key,
                   const rt__params *params, rt__run *out);
/* A run to create. */
typedef struct rt__run_new {
    const char *key;
    const rt__params *params;  /* may be NULL */
    int64_t slot_ms;           /* -1: not a cron slot */
    const char *skip_reason;   /* non-NULL: created 'skipped' */
    bool queued;
    int64_t priority;
    int64_t run_at_ms;         /* <= 0: any time */
    int max_attempts;          /* 0: the job's */
} rt__run_new;
/* In the caller's transaction: insert the run unless its key exists;
 * *id is the new run's id, 0 when the key existed. */
int rt__run_create(rt_store *s, const rt_job *job, const rt__run_new *n,
                   int64_t *id);
/*
 * The run of a cron slot, inserted if its key is absent: 'pending', or
 * 'skipped' with skip_reason as its error. *created: this call inserted it.
 */
int rt__run_insert_slot(rt_store *s, const rt_job *job, const char *key,
                        int64_t slot_ms, const rt__params *params,
                        const char *skip_reason, bool *created);
/* A pending run becomes 'skipped' with reason; *skipped: it was pending. */
int rt__run_skip(rt_store *s, const char *job, const char *key,
                 const char *reason, bool *skipped);
/* Delete the run as read (fenced on its id, epoch and status), its params
 * and its lease: the lifecycle's reset, whatever its state (the CLI asks
 * for --force first for a running one). RT_NOTFOUND, nothing deleted, when
 * it is gone or moved on. */
int rt__run_delete(rt_store *s, const rt__run *run);

/* The step list of a job as stored: names joined by '\n'. */
char *rt__job_steps_text(const rt_job *job);
/* 16 hex digits over the step names in order. */
void rt__job_fingerprint(const rt_job *job, char out[17]);
int rt__job_step_count(const rt_job *job);
const rt_job *rt__job_find(const rt_job *const *jobs, const char *name);
/* Is name in the comma-separated list (--only)? A NULL list has them all. */
bool rt__job_listed(const char *list, const char *name);
/* Every name in list is a job; else a usage error (exit code 2) for cmd. */
int rt__job_list_check(const rt_job *const *jobs, const char *list,
                       const char *cmd);
/* Failed attempts a queued run may have: the run's, the job's, or 3. */
int rt__run_max_attempts(const rt__run *r, const rt_job *job);
/* The wait before attempt failures+1: 1 s doubling to the job's cap
 * (default 300 s), with jitter. */
int64_t rt__retry_backoff_ms(const rt_job *job, int failures);
/* Is value right for the job's declared param name? err: one line. */
int rt__job_check_param(const rt_job *job, const char *name,
                        const char *value, char *err, size_t errlen);

/* ------------------------------------------------------------ lease.c */

typedef struct rt__lease {
    rt_store *s;              /* the lease's own connection */
    bool borrowed;            /* s was given: rt__lease_close keeps it */
    char job[128], scope[512], owner[128];
    uint64_t key;             /* the scope's liveness lock */
    int64_t ttl_ms;
    bool fast;                /* use the liveness lock */
    bool have_lock;
    int64_t lock_session;     /* l->s->sessions when the lock was taken */
    bool suspect;             /* the last take found a holder whose lock
                                 was free (lease.c, lease_judge) */
    int64_t session;          /* session_id when the lock was taken */
    volatile sig_atomic_t lost; /* a heartbeat found another owner */
    bool released;            /* the run's last commit deleted the row */
    bool keep;                /* the run's last status could not be
                                 written: the row stays with the run (it
                                 expires, and the run is taken over) */
    int64_t run_id;           /* the held run: the heartbeat thread also
                                 watches for `ratchet cancel` (0: none) */
    volatile sig_atomic_t cancel; /* it was asked to cancel */
    char holder[160];         /* when held: who; after a takeover: whom */
    char holder_key[256];     /* the run key the holder works on */
    int64_t holder_age_ms;    /* its heartbeat's age */
    int64_t refreshed_ns;     /* last rt__lease_refresh_sql (monotonic) */
    pthread_t thread;         /* the heartbeat: */
    bool running;             /* created */
    bool stopping;            /* to end (rt__lease_close) */
    bool active;              /* keeping a hold alive (start to stop) */
    bool busy;                /* in a beat or cancel check */
    uint64_t hold;            /* which hold: rt__lease_start counts them */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} rt__lease;

/*
 * Where a live process can lose its liveness lock with its session
 * (store.h, liveness_drops), a holder whose lock is found free has this
 * long to renew before its lease expires and it counts as dead.
 */
#define RT__LEASE_SUSPECT_MS 2000

/* Open the lease's own connection to url for scope ("JOB" or "JOB/KEY");
 * when l->s is set on entry, use that connection (a worker's, kept open
 * across runs) instead. */
int rt__lease_open(rt__lease *l, const char *url, const char *job,
                   const char *scope, int64_t ttl_ms, char *err, size_t errlen);
/*
 * Take the lease: RT_OK (free, ours already, or taken over from a dead or
 * expired holder: *took_over, l->holder says whom), RT_HELD (l->holder,
 * l->holder_key and l->holder_age_ms describe the live holder), or an error.
 */
int rt__lease_acquire(rt__lease *l, const char *run_key, bool *took_over);
/*
 * A worker's lease, opened once, pointed at the scope of its next run: the
 * connection, owner and session stay; the per-run state starts afresh.
 */
void rt__lease_target(rt__lease *l, const char *job, const char *scope);
/*
 * Inside the caller's transaction on s (l->s or the work connection): insert
 * the lease row of scope for l's owner (taking the owner's liveness lock on
 * l->s first, once). RT_OK when it is ours, RT_HELD when the scope has a
 * lease already (nothing taken), or an error.
 */
int rt__lease_insert(rt__lease *l, rt_store *s, const char *job,
                     const char *scope, const char *run_key);
int rt__lease_set_key(rt__lease *l, const char *run_key);
/* Take the owner's liveness lock now (it is taken with the first lease
 * otherwise), on l->s: a worker does, before its first claim. */
int rt__lease_lock(rt__lease *l);
/* Read the lease once without deciding anything: its statement is then
 * ready (and planned by the server) when the start must be quick. */
void rt__lease_warm(rt__lease *l);
/*
 * Without taking it: could scope be taken now? *free when nobody holds it,
 * its lease expired, or its holder is dead (lease.c, lease_judge: a free
 * liveness lock where only death frees one; elsewhere it makes the holder
 * a suspect, whose lease this call cuts short). holder_key receives the
 * holder's run key ("" when free or unknown), owner (may be NULL) the
 * lease row's owner ("" when there is none), why (may be NULL) how a
 * holder was found dead, in words for a log line, heartbeat (may be NULL)
 * the row's heartbeat_ms (the verdict is fenced on it: rt__verdict).
 */
int rt__lease_peek(rt_store *s, const char *scope, bool *free,
                   char *holder_key, size_t n, char *owner, size_t owner_len,
                   const char **why, int64_t *heartbeat);
/* Heartbeat every TTL/3 on the lease's connection, in a thread. */
int rt__lease_start(rt__lease *l);
/* Stop heartbeating; give the lease up unless it was lost. */
void rt__lease_release(rt__lease *l);
/* Giving a lease up: $1 its scope, $2 its owner (no row when another took
 * it over since). In the holder's last transaction, or a dead holder's. */
#define RT__LEASE_DELETE_SQL \
    "DELETE FROM rt_lease WHERE scope = $1 AND owner = $2"
/* The same for a holder judged dead: only while it has not renewed since
 * ($3, the heartbeat_ms seen then; NULL: whatever it is). */
#define RT__LEASE_DELETE_UNRENEWED_SQL \
    RT__LEASE_DELETE_SQL " AND heartbeat_ms = coalesce($3, heartbeat_ms)"
void rt__lease_close(rt__lease *l);
/* In a work transaction (single-writer backends): refresh the heartbeat. */
int rt__lease_refresh_sql(rt__lease *l, rt_store *work);

/* ----------------------------------------------------------- runner.c */

/*
 * How to run or resume a run: the same for every caller (`ratchet run` and
 * rt_run through rt__run_job, the worker through rt__runner_run or
 * rt__runner_run_claimed).
 */
typedef struct rt__run_opts {
    const char *url;      /* the database URL: a lease of the runner's own
                             opens its connection there */
    const char *key;      /* the run; NULL: resume the job's latest
                             unfinished run, or start a new one */
    rt__params params;    /* a new run's params; a run found must have
                             these (params are fixed when a run starts) */
    int64_t chunk_items;  /* a chunk's budget in items (0: unbounded) */
    int64_t chunk_ms;     /* and in milliseconds (0: unbounded) */
    int if_running;       /* RT_IF_RUNNING_*: what a start does when a live
                             process holds the run's lease */
    int64_t lease_ttl_ms; /* the lease's time to live */
    int64_t start_at_ms;  /* wall-clock ms: ready by then, the run taken
                             then (rt_run_opts.start_at_ms); 0: at once */
    bool record_skip;     /* the daemon's slot run (--record-skip): held
                             by another run under if_running skip, it is
                             recorded 'skipped' there and then */
    /* --restart-step: an existing unfinished run takes the current
     * definition and continues at this step, its cursor cleared; NULL: no */
    const char *restart_step;
    /* Work done already, as inputs (each may be NULL): */
    rt__lease *lease;     /* a lease readied by the caller (its connection
                             open, its owner set: a worker's): pointed at
                             the run's scope, taken, and given up at the
                             end; the caller keeps it (not closed) */
    /* A lease being readied on a thread of its own (PostgreSQL, lease_bg.c;
     * rt__run_job's): the runner orders the take there while it reads the
     * run, or uses the readied lease; the caller ends it after the run. */
    struct rt__lease_bg *lease_bg;
    /* A worker's: the run's last commit (the one that finishes it) also
     * claims the next queued run this claimer takes (claim.c,
     * rt__claim_with), in the same transaction; rt__claim_chained then
     * says which run it took. */
    struct rt__claim *claim_next;
    /* Where rt__run_job (entry.c) puts its answer (each may be NULL):
     * what happened, and one line saying why when not RT_OK. The runner
     * itself answers in an rt__run_out. */
    rt_run_result *result;
    char *err;
    size_t errlen;
} rt__run_opts;

/* What a run or resume came to (rt__runner_run). */
typedef struct rt__run_out {
    int exit_code;           /* the CLI's (RT_EXIT_*) */
    rt_run_result result;    /* the run, as far as it is known */
    char err[RT_ERRMSG_MAX]; /* one line saying why, when not RT_OK */
    /* result.skipped (held, --if-running skip): the scope, who held it
     * and for which run; logging it is the caller's. */
    char held_scope[512], holder[160], holder_key[256];
} rt__run_out;

/*
 * Run or resume: find or create the run, take its lease (o->lease, or
 * o->lease_bg's, or one of its own), claim it and drive its steps; logs
 * what happened. Returns the RT_* code (RT_OK: done, skipped, or nothing
 * to do); out (may be NULL) says what the run came to.
 */
int rt__runner_run(rt_store *s, const rt_job *job, const rt__run_opts *o,
                   rt__run_out *out);
/*
 * Drive a run a worker claimed already: its epoch was bumped and its lease
 * taken (lease, kept by the caller) in the claim's transaction, and its step
 * list is the job's. Takes *run over; gives the lease up at the end. As
 * rt__runner_run.
 */
int rt__runner_run_claimed(rt_store *s, const rt_job *job,
                           const rt__run_opts *o, rt__run *run, bool fresh,
                           rt__lease *lease, rt__run_out *out);
/*
 * What changed from a stored step list (names joined by '\n', as read from
 * the database) to the job's, in words appended to out: "step 'b' was
 * removed", "step 'x' was inserted before 'c'", ...
 */
void rt__runner_describe_change(const char *was_text, const char *now_text,
                                rt__buf *out);

/* ------------------------------------------------------------- claim.c */

/* A run named by job and key (and id once known). */
typedef struct rt__claim_pick {
    char job[128], key[256];
    int64_t priority;
    int64_t id;
} rt__claim_pick;

/*
 * A claimer of queued runs (a worker process): which runs it takes, the
 * lease it takes them with, and the run its last commit claimed.
 */
typedef struct rt__claim {
    const rt_job *const *jobs; /* the jobs it runs ... */
    const char *only;          /* ... of these (comma list; NULL: all) */
    rt__lease *lease;          /* its lease, on its own connection (l->s) */
    rt__claim_pick *refused;   /* runs it will not claim again */
    int nrefused;
    rt__buf wanted;            /* list parameters of the batched claim: */
    rt__buf job_scoped;        /* the jobs, the job-scoped ones, and */
    rt__buf fingerprints;      /* each one's fingerprint */
    /* The claim made inside a run's last commit (rt__claim_with): */
    rt_store *on;              /* the connection it was made on */
    bool claimed;              /* a run was taken, if the commit holds */
    bool committed;            /* set by the runner: the commit held */
    rt_stmt *next_st;          /* batched, pipelined: its answer, unread */
    rt__run next;              /* else: the run taken */
    const rt_job *next_job;
    int64_t trouble_logged_ns;
} rt__claim;

/* Claim runs of jobs (those in only) with lease (opened by the caller). */
void rt__claim_init(rt__claim *c, const rt_job *const *jobs, const char *only,
                    rt__lease *lease);
void rt__claim_free(rt__claim *c);
/* Does c run job? Has it set JOB/KEY aside? */
bool rt__claim_wants(const rt__claim *c, const char *job);
bool rt__claim_refused(const rt__claim *c, const char *job, const char *key);
/* Claim run no more. */
void rt__claim_set_aside(rt__claim *c, const rt__run *run);
/* Up to max - *n rows (job, run_key, priority) of st (rc: its first step)
 * that c wants and has not set aside, into out. */
int rt__claim_rows(const rt__claim *c, rt_stmt *st, int rc,
                   rt__claim_pick *out, int max, int *n);
/* The lease scope of a run: "JOB" for a job-scoped job, else "JOB/KEY". */
void rt__claim_scope(const rt_job *job, const char *key, char *out, size_t n);
/*
 * The claim, a transaction of its own on the lease's connection. RT_OK:
 * *run is claimed (its epoch bumped, its lease c->lease's), *fresh when it
 * never ran; RT_NOTFOUND: nothing due; RT_HELD: a race lost; RT_CHANGED:
 * the run's steps differ from its job's (*run and *job say which: the
 * ordinary start decides); else an error. With a batched claim
 * (PostgreSQL) one statement claims a run whose steps are its job's; only
 * when it finds none does the pick look at the others.
 */
int rt__claim_run(rt__claim *c, rt__run *run, bool *fresh,
                  const rt_job **job);
/*
 * The same inside the caller's open transaction on s (the runner's last
 * commit: rt__run_opts.claim_next), before its COMMIT. RT_OK whether or not
 * it found a run, or an error, after which nothing of the transaction may
 * commit. The caller sets c->committed once the COMMIT held.
 */
int rt__claim_with(rt__claim *c, rt_store *s);
/* The run rt__claim_with took, now the commit held: RT_OK (*run, *job;
 * rt__claim_taken next), or RT_NOTFOUND when it took none or the commit
 * failed. */
int rt__claim_chained(rt__claim *c, rt__run *run, const rt_job **job);
/* A claimed run: c->lease points at it; memory follows the database. */
void rt__claim_taken(rt__claim *c, const rt_job *job, rt__run *run,
                     bool *fresh);

/* ---------------------------------------------------------- lease_bg.c */

/* A run's lease on its own connection, readied and taken on a thread. */
typedef struct rt__lease_bg {
    pthread_t thread;
    bool started, joined;
    const char *url;     /* the caller's; must outlive rt__lease_bg_end */
    int64_t ttl_ms;
    rt__lease lease;     /* readied on the thread; lease.s NULL: it is not */
    rt_store *s;         /* the lease's connection (closed by _end) */
    pthread_mutex_t mu;  /* guards order */
    pthread_cond_t cv;
    int order;           /* what the thread does once ready */
    const char *job, *scope, *key; /* the take's (the caller's strings) */
    int rc;              /* the take's rt__lease_acquire */
    bool took_over;
} rt__lease_bg;

/* Start opening url's lease connection and readying the lease (a no-op for
 * other than PostgreSQL URLs); every start needs its rt__lease_bg_end. */
void rt__lease_bg_start(rt__lease_bg *b, const char *url, int64_t ttl_ms);
/* Order the take of scope's lease for run key, done there once the lease is
 * ready: true, and rt__lease_bg_taken says how it went; false when there is
 * no thread. job, scope and key must live until rt__lease_bg_taken. */
bool rt__lease_bg_take(rt__lease_bg *b, const char *job, const char *scope,
                       const char *key);
/* Wait for the take: rt__lease_acquire's answer, the lease being b->lease;
 * or RT_CONN, b->lease.s NULL, when its connection did not open (the
 * caller then opens one the usual way, which says why). */
int rt__lease_bg_taken(rt__lease_bg *b, bool *took_over);
/* Stop the thread: the readied lease, for the caller's thread to target
 * and take (rt__lease_target), or NULL when there is none. */
rt__lease *rt__lease_bg_stop(rt__lease_bg *b);
/* Stop the thread, close the lease if its user did not, and its
 * connection. */
void rt__lease_bg_end(rt__lease_bg *b);

/* ---------------------------------------------------------- enqueue.c */

/*
 * Enqueue on store s: in a transaction of its own (own_tx) or in the
 * caller's. See rt_enqueue; err gets a one-line message.
 */
/* o->params ("NAME=VALUE") checked against the job (declared types, then
 * rt_job.check), into out. */
int rt__enqueue_params(const rt_job *job, const rt_enqueue_opts *o,
                       rt__params *out, char *err, size_t errlen);
int rt__enqueue(rt_store *s, bool own_tx, const rt_job *job,
                const rt_enqueue_opts *o, char *key_out, size_t key_len,
                bool *created, char *err, size_t errlen);

/* -------------------------------------------------------------- ctx.c */

struct rt_ctx {
    rt_store *store;
    const rt_job *job;
    rt__run *run;
    const rt_step *step;
    int step_index;
    int attempt;
    /* cursor as the step sees it (uncommitted) */
    bool has_cursor, has_cursor_bytes;
    int64_t cursor_int;
    unsigned char *cursor_bytes;
    size_t cursor_len, cursor_cap;
    /* items */
    int64_t step_items;  /* committed + this chunk */
    int64_t chunk_items; /* this chunk */
    int64_t total;       /* -1 unknown */
    /* chunk budget */
    int64_t budget_items, budget_ms;
    int64_t chunk_start_ns;
    bool asked;   /* the step asked rt_continue during this call */
    bool stopped; /* rt_continue answered no because of a stop */
    bool sql_stopped; /* an SQL call of this step failed with RT_STOPPED */
    bool sql_refused; /* its last SQL error was the database refusing the
                         statement (rt_store.refused): permanent */
    volatile sig_atomic_t *cancel; /* set when `ratchet cancel` asked (the
                                      lease's heartbeat thread sees it) */
    char errmsg[RT_ERRMSG_MAX];
};

/* Fill the log fields of ctx. */
void rt__ctx_fields(const rt_ctx *ctx, rt__log_fields *f);
/*
 * The job's own check of a new run's params (rt_job.check), run before the
 * run is stored; key may be NULL (not chosen yet). RT_OK when the job has
 * none or it passes; else RT_INVALID with one line in err naming the job.
 */
int rt__job_check(const rt_job *job, const char *key, const rt__params *params,
                  char *err, size_t errlen);
/* RT_STOPPED when a stop was requested and the step is atomic. */
int rt__ctx_check_stop(rt_ctx *ctx);

/* -------------------------------------------------------------- ops.c */

/* A run that has finished, as an SQL condition on rt_run. */
#define RT__FINISHED_SQL "status IN ('done', 'failed', 'skipped', 'cancelled')"

/* The error a run cancelled by `ratchet cancel` keeps. */
#define RT_CANCELLED_ERROR "cancelled by operator"

/* A run as an operator names it: its id, or JOB/KEY. */
typedef struct rt__run_ref {
    int64_t id;        /* > 0: the run with this id; 0: by job and key */
    char *job, *key;   /* malloc'd; NULL when by id */
} rt__run_ref;

/*
 * Parse RUN: digits are an id, anything else is JOB/KEY split at the first
 * '/' (the key may hold more slashes). RT_INVALID with one line in err
 * when it is neither (no '/', an empty job or key, id 0).
 */
int rt__run_ref_parse(const char *text, rt__run_ref *out, char *err,
                      size_t errlen);
void rt__run_ref_free(rt__run_ref *ref);

/*
 * The operator's commands. Each returns RT_OK with one line for people in
 * out; RT_NOTFOUND (no such run) or RT_INVALID (the run is in the wrong
 * state for it) with one line in s->errmsg; or a database error.
 *
 * retry: a failed, cancelled or skipped run becomes pending, its progress
 * (step, cursor, items) kept; error, attempts, failures, run-at and
 * finish time cleared. cancel: a pending or interrupted run (or a running
 * one whose process is gone) is cancelled at once; a running one gets
 * cancel_requested and ends 'cancelled' at its next commit (runner.c).
 * jobs tell whose lease to look at; a job not among them is only asked.
 */
int rt__ops_retry(rt_store *s, const rt_job *const *jobs,
                  const rt__run_ref *ref, rt__buf *out);
int rt__ops_cancel(rt_store *s, const rt_job *const *jobs,
                   const rt__run_ref *ref, rt__buf *out);
/* Delete the finished runs (and their params) that finished more than
 * older_than_ms ago on the database's clock; *deleted: how many. */
int rt__ops_prune(rt_store *s, int64_t older_than_ms, int64_t *deleted);

/* ------------------------------------------------------------ admin.c */

/* The connection of an open rt_db (NULL when its open failed). */
rt_store *rt__db_store(rt_db *db);

/* ------------------------------------------------------------ entry.c */

/*
 * The one table from a return code to the CLI's exit code (RT_EXIT_*,
 * DESIGN.md). s is the connection the code came from, NULL when none
 * opened: a server not reached at all is a failure (1) and any other
 * refusal to open is the URL's (2), while a connection lost after it
 * opened, a full disk and a lock not had in time are temporary (75: run
 * again, nothing is lost).
 */
int rt__exit_code(int rc, rt_store *s);
/*
 * Open url and bring its schema up to date: the one way every command and
 * rt_run get their work connection. RT_OK with *s open and *from / *to
 * (may be NULL) the schema's version before and after. Else *s is NULL,
 * one line is logged (event db_open, schema or migrate) and copied to err
 * (may be NULL), and *code (may be NULL) is the exit code it means
 * (rt__exit_code).
 */
int rt__db_open(const char *url, rt_store **s, int *from, int *to, int *code,
                char *err, size_t errlen);
/*
 * Run or resume job on o->url: open and migrate (rt__db_open) while the
 * lease's connection opens beside it (PostgreSQL: lease_bg.c), then
 * rt__runner_run. `ratchet run` and rt_run both come this way. signals:
 * the stop handlers (signals.c) may interrupt the work connection's
 * statement in flight, and their deadline ends the process (the CLI's);
 * else grace_ms (< 0: none) after a stop request a thread interrupts it
 * (rt_run's). A run skipped (held, --if-running skip) is logged here.
 * Returns the RT_* code; o->result (may be NULL) gets what happened and the
 * exit code, o->err one line when not RT_OK.
 */
int rt__run_job(const rt_job *job, rt__run_opts *o, bool signals,
                int64_t grace_ms);

#endif
