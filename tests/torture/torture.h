/*
 * torture.h — what the torture driver's files share: the seeded random
 * stream, the real binary as child processes with real signals, the test
 * databases of each backend, the failure that ends the run, and the
 * scenarios (each in its own file).
 *
 * The driver (make check runs it at TORTURE_SCALE=1, make torture at 10)
 * prints one line per scenario and a final PASS or FAIL. A violated
 * invariant ends it at once with one line naming the seed and the invariant;
 * TORTURE_SEED=N reproduces the random instants (timing permitting). The
 * model and drops scenarios count their violations, print each, and fail
 * at their end. Started with TORTURE_RATCHET=1 the driver is ratchet itself
 * over the jobs of mjob.c (for those two scenarios).
 */
#ifndef RATCHET_TORTURE_H
#define RATCHET_TORTURE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "invariants.h"

#if defined(__GNUC__) || defined(__clang__)
#define T_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define T_NORETURN __attribute__((noreturn))
#else
#define T_PRINTF(a, b)
#define T_NORETURN
#endif

enum { T_SQLITE = 0, T_PG = 1 };

/* --------------------------------------------------------- torture.c */

/* What every scenario gets. */
typedef struct t_env {
    const char *bin;        /* the real ratchet binary */
    char dir[256];          /* scratch directory, removed after a PASS */
    const char *pg_admin;   /* admin conninfo; NULL: PostgreSQL skipped */
    const char *pg_dir;     /* the server's directory, when it is ours */
    const char *pg_server;  /* tests/pg-server.sh, to restart it */
    double scale;           /* 1 in make check, 10 in make torture */
    uint64_t seed;
} t_env;

/* base x TORTURE_SCALE, at least 1: every count and duration goes through
 * it. */
int t_count(const t_env *env, int base);

/* A seeded stream (splitmix64); each scenario derives its own. */
typedef struct t_rng {
    uint64_t s;
} t_rng;
uint64_t t_rand(t_rng *r);
/* Uniform in [lo, hi]. */
int64_t t_between(t_rng *r, int64_t lo, int64_t hi);

/* Monotonic milliseconds / microseconds; sleeping (random delays before a
 * signal, and poll intervals while awaiting a condition). */
int64_t t_now_ms(void);
int64_t t_now_us(void);
void t_sleep_us(int64_t us);

/*
 * An invariant broke (or the driver cannot go on): print one line with the
 * seed, the scenario and what broke, leave the scratch directory for a look,
 * stop every child and exit 1.
 */
void t_fail(const char *fmt, ...) T_PRINTF(1, 2) T_NORETURN;
/* fmt and ap as one line (newlines made spaces) into out. */
void t_vline(char *out, size_t n, const char *fmt, va_list ap) T_PRINTF(3, 0);
/* env with bin = this program, run as ratchet over its own jobs (mjob.c). */
void t_env_self(const t_env *env, t_env *out);
/* A scenario's one line: "torture: NAME BACKEND: ..., S s". */
void t_report(const char *fmt, ...) T_PRINTF(1, 2);
const char *t_backend_name(int backend);

/* ------------------------------------------------------------ proc.c */

/*
 * Start bin with RATCHET_DB=url, RATCHET_LOG=json and argv (NULL-ended,
 * without argv[0]); stderr goes to errpath (truncated), stdout to
 * errpath.out. extra_env: NULL or NULL-ended "NAME=VALUE" strings.
 */
pid_t t_spawn(const t_env *env, const char *url, const char *errpath,
              const char *const *argv, const char *const *extra_env);
/*
 * Wait up to timeout_ms for pid to end: its exit code (0..255), 128+N if a
 * signal N killed it, -1 on timeout (pid still runs). Sleeps on SIGCHLD.
 */
int t_wait(pid_t pid, int64_t timeout_ms);
/* SIGCONT + SIGKILL pid and reap it; for clean-up. */
void t_kill_reap(pid_t pid);
/* Kill and reap every child still running (t_fail does it). */
void t_proc_cleanup(void);
/* pid has not ended yet (a child not reaped is a zombie: not alive). */
bool t_alive(pid_t pid);
/* Wait until pid (any process, ours or not) is dead or a zombie: a SIGKILL
 * lands when the victim is next scheduled, not when kill() returns. */
bool t_await_death(pid_t pid, int64_t timeout_ms);
/* pid catches sig right now (/proc/PID/status SigCgt). */
bool t_catches(pid_t pid, int sig);
/* pid's children (from /proc); returns how many, up to max. */
int t_children(pid_t pid, pid_t *out, int max);
/* SIGSTOP pid and wait until it is stopped; false if it ended first. */
bool t_stop(pid_t pid);
/* The file's text (malloc'd, "" when missing) and whether it has needle;
 * how often needle occurs. */
char *t_slurp(const char *path);
bool t_file_has(const char *path, const char *needle);
int t_file_count(const char *path, const char *needle);
/* The last line of a file that contains "level":"error" or, failing that,
 * its last line: for failure messages (static buffer). */
const char *t_file_gist(const char *path);

/* --------------------------------------------------------- backend.c */

/* One test database of one backend. */
typedef struct t_db {
    int backend;
    char url[1024];
    char path[512];   /* SQLite: the file */
    char name[64];    /* PostgreSQL: the database */
    inv_db *pg;       /* PostgreSQL: the checker's connection, kept open */
} t_db;

/* A new empty database, named after tag. */
void t_db_create(const t_env *env, int backend, const char *tag, t_db *db);
/* Make it empty again (no process may be using it): a fresh database, so
 * the next start creates the schema (and a kill can land in migration). */
void t_db_wipe(t_db *db);
/* Drop it (PostgreSQL) / leave it to the scratch directory (SQLite). */
void t_db_drop(t_db *db);
/* Close the kept connections (t_fail does it; the databases stay). */
void t_db_cleanup(void);
/* A checker connection: SQLite opens one (NULL when the file does not exist
 * yet), PostgreSQL returns the kept one (reconnecting if it broke). Give it
 * back with t_db_release. */
inv_db *t_db_check(t_db *db);
void t_db_release(t_db *db, inv_db *c);
/* SQLite: PRAGMA integrity_check on the checker connection c is "ok". */
void t_db_integrity(t_db *db, inv_db *c);
/* Terminate the backends of ratchet's connections to db (application_name
 * ratchet:*); returns how many. */
int t_pg_terminate(t_db *db);
/* Restart the whole PostgreSQL server (fast); false when it is not ours. */
bool t_pg_restart(const t_env *env);
/*
 * t_db_wipe and t_db_drop check a PostgreSQL database with amcheck first
 * (bt_index_check with heapallindexed, verify_heapam: PRAGMA
 * integrity_check's counterpart); a finding fails the run. This prints one
 * line with how many checks passed (none: nothing).
 */
void t_pg_amcheck_report(void);

/* --------------------------------------------------------- scenarios */

/* A scenario runs on one backend and prints its own line. */
typedef void t_scenario_fn(const t_env *env, int backend, t_rng *rng);

void t_sigkill(const t_env *env, int backend, t_rng *rng);  /* kill.c */
void t_sigterm(const t_env *env, int backend, t_rng *rng);  /* kill.c */
void t_fencing(const t_env *env, int backend, t_rng *rng);  /* fence.c */
void t_pg_kill(const t_env *env, int backend, t_rng *rng);  /* faults.c */
void t_pg_restarts(const t_env *env, int backend, t_rng *rng); /* faults.c */
void t_sqlite_lock(const t_env *env, int backend, t_rng *rng); /* faults.c */
void t_daemon(const t_env *env, int backend, t_rng *rng);   /* sched.c */
void t_queue(const t_env *env, int backend, t_rng *rng);    /* sched.c */
void t_model(const t_env *env, int backend, t_rng *rng);    /* model.c */
void t_drops(const t_env *env, int backend, t_rng *rng);    /* drops.c */

/* ------------------------------------------------------------ mjob.c */

/* The driver as ratchet (TORTURE_RATCHET=1): rt_main() over mjob and mkey. */
int t_ratchet_main(int argc, char **argv);
/* Create m_items, the table the model jobs write (before any run). */
void t_mjob_prepare(t_db *db);
/* OVERLAP lines in the model jobs' log (TORTURE_MJOB_LOG): two processes
 * inside a step of one lease scope at once. first gets the first one. */
int t_mjob_overlaps(const char *log, char *first, size_t n);
/* Every done run of the model jobs has exactly its rows in m_items. */
bool t_mjob_data(inv_db *c, char *msg, size_t n);

/* ------------------------------------------------------------ jobs.c */

/* A job the scenarios run, with sizes that make one run short. */
typedef struct t_job {
    const char *name;
    const char *const *params; /* "--param", "NAME=VALUE", ... NULL */
    const char *chunk;         /* --chunk-items */
    const char *steps[3];
} t_job;

extern const t_job t_rowcopy, t_aggregate;

/*
 * The argv of `run JOB --key KEY` with the job's params and chunk size,
 * --if-running wait, and extra options (NULL-ended, may be NULL); into out
 * (at least 40 slots).
 */
void t_run_argv(const t_job *job, const char *key, const char *const *extra,
                const char **out);
/*
 * Check what the run (job, key) left behind at any instant: the progress
 * row agrees with the data. *step (may be NULL) gets the phase the run was
 * in: -2 no schema yet, -1 no run row, 0..2 its step, 3 done.
 */
void t_check_progress(t_db *db, const t_job *job, const char *key, int *step);
/*
 * A round ended with exit 0: the run is done, its data exact, its progress
 * complete; no run is left running and no lease is held.
 */
void t_check_done(t_db *db, const t_job *job, const char *key);

#endif
