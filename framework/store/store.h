/*
 * store.h — the one interface every database backend implements.
 *
 * A backend is a `static const rt_store_ops` table (like SQLite's
 * sqlite3_io_methods) plus its own struct whose first member is `rt_store`.
 * Everything above this interface — the runner, migrations, the CLI — is
 * backend-free; it calls the rt__store_* wrappers below, never a pointer,
 * and never names a backend: what differs between backends is a store
 * operation or a capability flag (tools/seam.sh, run by make check).
 *
 * Errors: every call returns an RT_* code and leaves a one-line message in
 * store->errmsg. Backends map native codes at this edge: SQLITE_BUSY and
 * SQLSTATE 40001/40P01 -> RT_BUSY; an interrupt or cancel -> RT_STOPPED; a
 * connection the server dropped -> RT_CONN; anything else -> RT_DBERR with
 * the native detail kept in the message, and store->refused set when the
 * database refused the statement itself (permanent) rather than failed to
 * carry it out (an I/O error, a full disk: temporary).
 */
#ifndef RT_STORE_H
#define RT_STORE_H

#include <pthread.h>
#include <signal.h>

#include "base/base.h"

typedef struct rt_store rt_store;
typedef struct rt_store_ops rt_store_ops;
struct rt_store_claim_parts;

struct rt_store {
    const rt_store_ops *ops;
    char *url_display;    /* the URL with any password masked, for messages */
    int in_tx;            /* a transaction is open */
    struct rt_ctx *ctx;   /* the step context using this store, if any */
    bool single_writer;   /* one writer per database (SQLite) */
    bool in_process;      /* statements are calls, not round trips
                             (SQLite): one more costs next to nothing */
    bool fast_takeover;   /* liveness locks are trustworthy here */
    bool liveness_drops;  /* a liveness lock can be lost while its process
                             lives (PostgreSQL: a terminated session, a
                             server restart, a failover): a free lock then
                             only makes its holder a suspect (lease.c) */
    bool pooled;          /* behind a transaction-pooling proxy (PostgreSQL
                             pool_mode=transaction): no session state may
                             be relied on or left behind (SET, locks) */
    bool borrowed;        /* wraps the caller's connection: never closed */
    bool finishing;       /* a stop was requested, but this write must
                             still wait for the lock (the last status) */
    bool disk_full;       /* a write failed for want of space (SQLite:
                             SQLITE_FULL, or an I/O error with ENOSPC or
                             EDQUOT; PostgreSQL: SQLSTATE 53100, the
                             server's): temporary like a lost connection, so
                             the CLI exits 75. Sticky for the connection */
    int64_t sessions;     /* reconnects so far: a session lock taken
                             before the last one is gone */
    bool refused;         /* the last error was the database refusing
                             the statement itself (a constraint, a syntax
                             error, bad data: SQLite's SQLITE_CONSTRAINT,
                             SQLITE_ERROR ...; PostgreSQL's SQLSTATE outside
                             the classes of server trouble), which running
                             it again cannot mend: a step that meets it fails
                             its run. Set by the backends' error mapping,
                             cleared by rt__store_fail */
    int64_t item;         /* the step's item a pipelined statement is
                             sent for (its error names it); 0: none */
    char errmsg[RT_ERRMSG_MAX];
};

/* Base of every backend statement. */
struct rt_stmt {
    rt_store *store;
    const char *sql; /* the cached text (owned by the backend) */
    bool keep;       /* sent (ops->send): its result is kept for the caller
                        when the pipeline is flushed, to read after it */
    bool fence;      /* sent: its division by zero means RT_FENCED */
};

struct rt_store_ops {
    const char *name; /* "sqlite", "postgres": a key (migrations), never
                         compared above store/ to pick a behaviour */
    /* Does this backend handle the URL? */
    bool (*accepts)(const char *url);
    /*
     * Open a connection. On failure return RT_INVALID (malformed URL or
     * option: exit 2), RT_DBERR/RT_CONN (cannot open or reach), RT_BUSY
     * (there, but unusable for now: its disk is full; exit 75) and a
     * one-line message in err (never containing a password); *out is NULL
     * then.
     */
    int (*open)(const char *url, rt_store **out, char *err, size_t errlen);
    void (*close)(rt_store *s); /* NULL is a no-op */
    /*
     * Wrap a connection the caller owns (sqlite3 *, PGconn *), to run
     * ratchet's statements inside the caller's own transaction. close()
     * then frees ratchet's statements and leaves the connection open.
     */
    int (*wrap)(void *handle, rt_store **out);

    /* Run SQL text (one or more statements, no parameters) outside a cache. */
    int (*exec_script)(rt_store *s, const char *sql);
    /* A write transaction: SQLite BEGIN IMMEDIATE, PostgreSQL BEGIN. */
    int (*begin)(rt_store *s);
    int (*commit)(rt_store *s);
    /* Always leaves no transaction open, even when it reports an error. */
    int (*rollback)(rt_store *s);
    /* Serialize migrations; called inside a transaction. PostgreSQL also
     * bounds the transaction's lock waits (500 ms): RT_BUSY then, and
     * rt__migrate tries again. */
    int (*lock_schema)(rt_store *s);

    int (*prepare)(rt_store *s, const char *sql, rt_stmt **out);
    int (*bind)(rt_stmt *st, int idx, const rt_value *v);
    int (*step)(rt_stmt *st);
    /*
     * Optional: execute a bound statement inside a transaction without
     * waiting for its result (PostgreSQL pipelining). Its error, if any,
     * comes from the next call that waits, or from COMMIT. NULL: step it.
     */
    int (*send)(rt_stmt *st);
    /*
     * Optional: have the server parse a statement now, inside the
     * transaction, without waiting: its answer is read with the next round
     * trip, and its first execution skips the parse. NULL: nothing to gain
     * (SQLite compiles in process).
     */
    int (*prepare_ahead)(rt_stmt *st);
    int (*reset)(rt_stmt *st);
    int (*column_count)(rt_stmt *st);
    rt_type (*column_type)(rt_stmt *st, int col);
    int64_t (*column_int64)(rt_stmt *st, int col);
    double (*column_double)(rt_stmt *st, int col);
    const char *(*column_text)(rt_stmt *st, int col);
    const void *(*column_blob)(rt_stmt *st, int col, size_t *len);
    int64_t (*changes)(rt_store *s);

    /*
     * Async-signal-safe: make the statement in flight (if any) fail soon with
     * RT_STOPPED (sqlite3_interrupt, PQcancel with a local buffer).
     */
    void (*interrupt)(rt_store *s);
    /* sqlite3 * or PGconn *. */
    void *(*handle)(rt_store *s);

    /*
     * The liveness lock of an exclusion scope: held by a lease holder and
     * dropped by the OS or the server the instant the holder dies
     * (PostgreSQL: a session advisory lock on this connection; SQLite: an
     * open-file-description lock on one byte of PATH-ratchet.lock). Never
     * blocks: *got says whether this store now holds it.
     */
    int (*liveness_try)(rt_store *s, uint64_t key, bool *got);
    void (*liveness_release)(rt_store *s, uint64_t key);
    /* How long one attempt waits for a lock another writer holds. */
    void (*set_busy_timeout)(rt_store *s, int ms);
    /*
     * Optional: this connection's commits need not survive a power loss,
     * only a crash of the process (a lease's own connection: after a power
     * loss every holder on the host is dead anyway, and the run's epoch,
     * written durably elsewhere, fences them). SQLite in WAL mode: FULL
     * becomes NORMAL, no fsync per commit; the next FULL commit on any
     * connection syncs these frames with its own.
     */
    void (*lax_commits)(rt_store *s);
    /*
     * Optional: the same for the next transaction only (called before its
     * begin), on a connection whose other commits stay durable: a run's
     * claim, and the 'interrupted' of a stop. They reach the disk with the
     * next durable commit on any connection (a chunk's); a power loss
     * before that loses them, and kills every process on the host that
     * could hold the epoch the claim wrote (the run then reads 'running'
     * under a dead holder's lease, and is taken over where it stood).
     */
    void (*lax_transaction)(rt_store *s);
    /* The server session's identity (pg_backend_pid), -1 if none: a value
     * that changes without a reconnect means a transaction-pooling proxy. */
    int64_t (*session_id)(rt_store *s);

    /* Optional (NULL for SQLite, whose connection cannot drop). */
    bool (*broken)(rt_store *s);   /* the server dropped the connection */
    /* Without blocking, read what the server sent unasked on an idle
     * connection (a terminated session's FATAL, a shutdown's EOF): true
     * when the connection is now known to be gone. */
    bool (*watch)(rt_store *s);
    /* A new session on the same store; open statements are invalidated,
     * cached ones are prepared again on their next use. */
    int (*reconnect)(rt_store *s);

    /* Its URLs reach a server (a round trip or more for every open and
     * statement), not a local file. */
    bool remote;
    /*
     * Optional: the text of a queue claim (rt__store_claim_sql), built
     * around parts. NULL: the backend has no batched claim; the queue picks
     * a candidate, then takes it (SQLite: a transaction is a single
     * writer's, so a row lock would win nothing).
     */
    const char *(*claim_sql)(rt_store *s, int which,
                             const struct rt_store_claim_parts *parts);
    /* Optional: bound this connection's later statements to ms each, in
     * the server (PostgreSQL: SET statement_timeout; not behind a
     * transaction-pooling proxy, where the SET would stay on the pooled
     * server session and cut another client's statements short). NULL:
     * nothing to bound (SQLite runs in process; a stop interrupts it). */
    int (*statement_timeout)(rt_store *s, int ms);
    /* Optional: the versions of the libraries it is built on, for
     * `ratchet --version` ("sqlite 3.45.1"). */
    const char *(*versions)(void);
};

/* Backends linked into the library. */
extern const rt_store_ops rt__sqlite_ops;
extern const rt_store_ops rt__pg_ops;

/* Pick the backend for url and open it (see rt_store_ops.open). */
int rt__store_open(const char *url, rt_store **out, char *err, size_t errlen);
void rt__store_close(rt_store *s);
/* rt_store_ops.wrap of the backend whose raw connection handle is: a
 * sqlite3 * (rt__store_wrap_sqlite_db) or a PGconn * (rt__store_wrap_pg_conn).
 * RT_MISUSE when handle is NULL. */
int rt__store_wrap_sqlite_db(void *handle, rt_store **out);
int rt__store_wrap_pg_conn(void *handle, rt_store **out);

/* Does a backend take url, and is it one that reaches a server (the open
 * costs a round trip or more: worth a thread of its own)? */
bool rt__store_url_remote(const char *url);
/* The versions of the backends' libraries, one text for `ratchet
 * --version`: "sqlite 3.45.1, libpq loaded on demand". Static storage. */
const char *rt__store_versions(void);
/* The backend's name ("sqlite", "postgres"): the key migrations and
 * rt_backend() use; never to be compared to pick a behaviour (a capability
 * flag or a store operation does that). */
const char *rt__store_name(const rt_store *s);
/* The raw connection under s when s is the backend a public accessor names
 * (rt_sqlite3, rt_pgconn), else NULL. NULL s gives NULL. */
void *rt__store_sqlite_db(rt_store *s);
void *rt__store_pg_conn(rt_store *s);

/* Thin wrappers: the rest of the code never calls through ops directly. */
int rt__store_exec_script(rt_store *s, const char *sql);
int rt__store_begin(rt_store *s);
int rt__store_commit(rt_store *s);
int rt__store_rollback(rt_store *s);
/* Roll back, keeping the message of the error that caused it (and
 * s->refused); returns rc. */
int rt__store_abort(rt_store *s, int rc);
int rt__store_lock_schema(rt_store *s);
int rt__store_prepare(rt_store *s, const char *sql, rt_stmt **out);
int rt__store_bind(rt_stmt *st, int idx, const rt_value *v);
int rt__store_step(rt_stmt *st);
int rt__store_reset(rt_stmt *st);
int rt__store_column_count(rt_stmt *st);
rt_type rt__store_column_type(rt_stmt *st, int col);
int64_t rt__store_column_int64(rt_stmt *st, int col);
double rt__store_column_double(rt_stmt *st, int col);
const char *rt__store_column_text(rt_stmt *st, int col);
const void *rt__store_column_blob(rt_stmt *st, int col, size_t *len);
int64_t rt__store_changes(rt_store *s);
/*
 * Is s pipelined: its statements are round trips to a server, and a
 * statement can be sent without waiting for its answer (rt_store_ops.send),
 * so writes whose outcome can wait ride with the next statement or COMMIT
 * (rt__store_send_kept)? The one test of it: call sites never look at ops.
 */
bool rt__store_pipelined(const rt_store *s);
/* How long one attempt waits for a lock another writer holds; a no-op on
 * backends without such a wait. */
void rt__store_set_busy_timeout(rt_store *s, int ms);
/* rt_store_ops.statement_timeout: RT_OK, doing nothing, where it has none
 * or cannot keep it. */
int rt__store_statement_timeout(rt_store *s, int ms);
/* rt_store_ops.lax_commits and lax_transaction; no-ops where a backend has
 * none (its commits are as durable either way). */
void rt__store_lax_commits(rt_store *s);
void rt__store_lax_transaction(rt_store *s);
/* The server session's identity, -1 if none (rt_store_ops.session_id). */
int64_t rt__store_session_id(rt_store *s);
/* Are liveness locks to be used on s (s->fast_takeover and the backend has
 * them)? Only then may rt__store_liveness_try be called. */
bool rt__store_fast_takeover(const rt_store *s);
/* rt_store_ops.liveness_try and liveness_release. */
int rt__store_liveness_try(rt_store *s, uint64_t key, bool *got);
void rt__store_liveness_release(rt_store *s, uint64_t key);
/* Prepare sql, bind args, step once: RT_ROW (stmt left on the row), RT_DONE. */
int rt__store_query(rt_store *s, const char *sql, int nargs,
                    const rt_value *args, rt_stmt **out);
/* The database's clock (rt_now_ms(): the server's on PostgreSQL) plus
 * plus_ms, into *out: a time other processes compare with that clock. */
int rt__store_now_ms(rt_store *s, int64_t plus_ms, int64_t *out);
/*
 * Like rt__store_exec for a statement whose outcome nobody reads: on a
 * backend that pipelines, inside a transaction, it goes out with the next
 * statement or COMMIT instead of costing a round trip of its own; an error
 * then surfaces there (and fails the transaction), naming this statement.
 */
int rt__store_exec_later(rt_store *s, const char *sql, int nargs,
                         const rt_value *args);
/* Prepare, bind and run to completion; *changes may be NULL. */
int rt__store_exec(rt_store *s, const char *sql, int nargs,
                   const rt_value *args, int64_t *changes);
/*
 * A statement sent like rt__store_exec_later (backends with send, inside a
 * transaction), whose one result row the caller reads once the pipeline
 * was flushed, usually by COMMIT: rt__store_step(*out), then reset. With
 * fence, its SQL divides by zero when the fence does not hold, which fails
 * the transaction with RT_FENCED: COMMIT goes out with a fenced write, and
 * a transaction costs no round trip for its fence.
 */
int rt__store_send_kept(rt_store *s, const char *sql, int nargs,
                        const rt_value *args, bool fence, rt_stmt **out);
/*
 * Inside a transaction, on a backend with prepare_ahead: the server parses
 * sql meanwhile, so a later statement that must be quick (a stop's COMMIT)
 * does not wait for it. RT_OK, else the error of sending it.
 */
int rt__store_prepare_ahead(rt_store *s, const char *sql);
const char *rt__store_errmsg(const rt_store *s);
/* The connection is gone (RT_CONN): only rt__store_reconnect helps. */
bool rt__store_broken(rt_store *s);
/* An idle connection's news (ops->watch): true when it is gone. False on
 * backends whose connection cannot drop. */
bool rt__store_watch(rt_store *s);
int rt__store_reconnect(rt_store *s);
/* A resident loop's call failed: log it at most every 10 s (*logged_ns),
 * and reconnect if the connection is gone; the loop retries later. */
void rt__store_trouble(rt_store *s, int64_t *logged_ns, const char *what);
/* Where the backends learn that a stop was requested: the core points this
 * at its stop flag when it installs its signal handlers (core/signals.c);
 * until then no stop is ever requested. A requested stop ends a lock wait
 * (SQLite's busy loop) and makes a cancelled statement RT_STOPPED. */
void rt__store_on_stop(const volatile sig_atomic_t *flag);
bool rt__store_stop_requested(void);
/* Async-signal-safe: make the statement in flight on s fail soon with
 * RT_STOPPED (rt_store_ops.interrupt). NULL is a no-op. */
void rt__store_interrupt(rt_store *s);
/* Label new connections with the job (PostgreSQL application_name). */
void rt__store_set_label(const char *label);
/* printf into s->errmsg (s->refused cleared); returns rc. */
int rt__store_fail(rt_store *s, int rc, const char *fmt, ...) RT_PRINTF(3, 4);

/* ------------------------------------------------------ the queue's claim */

/* The parts of a queue claim only the core knows (core/lifecycle.h); the
 * backend's claim_sql builds its statements around them. */
typedef struct rt_store_claim_parts {
    const char *columns;   /* the run's columns, a SELECT list (rt_run) */
    const char *claimable; /* the test of a run a claim may take */
    const char *claim_cte; /* the claim: an UPDATE of rt_run whose WHERE
                              names the picked row c, to be extended with
                              " AND ..." */
} rt_store_claim_parts;

/*
 * The statements of a batched claim, on a backend that has one
 * (PostgreSQL): a due run picked FOR UPDATE SKIP LOCKED, so that concurrent
 * claims pass each other instead of queueing on one row. List parameters
 * are rt__store_list texts.
 *
 * RT_STORE_CLAIM_PICK: $1 the jobs claimed, $2 the ids of runs to skip, $3
 *   the job-scoped jobs (their scope is the job, not the run). Answers the
 *   columns, then whether the run has params (1/0).
 * RT_STORE_CLAIM_ONE: the whole claim in one statement, for runs whose
 *   steps are their job's: the pick ($1 jobs, $8 their fingerprints, $2,
 *   $3 as above), the lease row ($4 owner, $5 fast, $6 live_key, $7 TTL in
 *   ms) and, if that row went in, claim_cte. Answers the columns, whether
 *   it has params, its scope, and whether it was taken (no: its scope has
 *   a lease).
 */
enum { RT_STORE_CLAIM_PICK, RT_STORE_CLAIM_ONE };
/*
 * The text of claim `which` on s, built around parts once per connection
 * (parts must be the same on every call; the text is s's until it
 * closes), or NULL when the backend has no batched claim: the caller
 * picks a candidate with plain SQL, then takes it.
 */
const char *rt__store_claim_sql(rt_store *s, int which,
                                const rt_store_claim_parts *parts);
/* Element n (0 first) of a list passed as one text parameter to a claim
 * (PostgreSQL: an array literal), appended to b; rt__store_list_end closes
 * it (an empty list is begun by the end alone, as "{}"). */
void rt__store_list_text(rt__buf *b, int n, const char *text);
void rt__store_list_int(rt__buf *b, int n, int64_t v);
void rt__store_list_end(rt__buf *b, int n);

/* Parse "$N" placeholders: the highest N used in sql (0 if none). */
int rt__sql_max_placeholder(const char *sql);

/* ----------------------------------------------- sqlite.c, postgres.c: URLs */

/*
 * sqlite:PATH[?synchronous=full|normal|off&busy_timeout=MS]: *path
 * (malloc'd), *sync (0 off, 1 normal, 2 full), *busy_ms; RT_INVALID with
 * one line in err for a bad URL.
 */
int rt__sqlite_parse_url(const char *url, char **path, int *sync,
                         int *busy_ms, char *err, size_t errlen);
/*
 * A PostgreSQL URL or conninfo as given, checked by libpq without
 * connecting: *conninfo (malloc'd) is what libpq gets (our own option
 * fast_takeover taken out, its value in *fast). RT_INVALID with one line in
 * err, never holding a password, when it is malformed.
 */
int rt__pg_parse_url(const char *given, char **conninfo, bool *fast,
                     char *err, size_t errlen);

/* ----------------------------------------------------------- open_bg.c */

/* A connection opened on a thread of its own (PostgreSQL URLs only). */
typedef struct rt__store_bg {
    pthread_t thread;
    bool started;
    const char *url; /* the caller's; must outlive the join */
    rt_store *s;
} rt__store_bg;

/* Start opening url beside the caller's work (a no-op unless
 * rt__store_url_remote(url)); every start needs its join. */
void rt__store_bg_start(rt__store_bg *bg, const char *url);
/* Wait for it: the open store (the caller's to close), or NULL when it was
 * not started or failed — the caller then opens it the usual way, which
 * reports the error. */
rt_store *rt__store_bg_join(rt__store_bg *bg);

#endif
