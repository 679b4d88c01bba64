/*
 * harness.h — what the tests share: a fresh database per test on each
 * backend, the real binaries run as child processes with real signals, and
 * SQL on a separate connection to check what they left behind.
 *
 * Backends: index 0 is SQLite (always); index 1 is PostgreSQL, present when
 * RATCHET_TEST_PG is set (tests/run-tests.sh sets it). Integration tests are
 * loop tests over h_backends(): tcase_add_loop_test(tc, fn, 0, h_backends()).
 * If RATCHET_TEST_PG is unset and RATCHET_TEST_SKIP_PG is not 1, h_backends()
 * still returns 2 and PostgreSQL tests fail loudly (CI must not skip them).
 */
#ifndef RATCHET_HARNESS_H
#define RATCHET_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum { H_SQLITE = 0, H_PG = 1 };

int h_backends(void);
const char *h_backend_name(int backend); /* "sqlite" / "postgres" */

/*
 * A fresh, empty database for the calling test: sqlite:<tmpdir>/test.db (a
 * new temp dir) or a newly created PostgreSQL database. The string lives
 * until the test process exits; the database is removed/dropped at exit.
 */
const char *h_db_new(int backend);
/* An in-process store open on url (the test fails when it does not open),
 * and the same with the schema brought up to date; rt__store_close it. */
struct rt_store *h_store_open(const char *url);
struct rt_store *h_store_migrated(const char *url);

/* build/ratchet and build/ratchet-test (from RATCHET_BIN/RATCHET_TEST_BIN). */
const char *h_bin(void);
const char *h_test_bin(void);
/* build/ratchet-hooks (RATCHET_HOOKS_BIN): ratchet-test's jobs over the
 * library built with failpoints (docs/RELIABILITY.md). */
const char *h_hooks_bin(void);

/*
 * Start bin with RATCHET_DB=url and RATCHET_LOG=json plus argv (NULL-ended;
 * argv[0] is not included). extra_env is NULL or a NULL-ended list of
 * "NAME=VALUE". stdout and stderr go to files readable with h_output().
 */
pid_t h_spawn(const char *bin, const char *url, const char *const *argv,
              const char *const *extra_env);
/*
 * Wait for pid up to timeout_ms. Returns its exit code (0..255), or 128+N
 * if killed by signal N, or -1 on timeout (the child is then SIGKILLed and
 * reaped).
 */
int h_wait(pid_t pid, int timeout_ms);
/* spawn + wait. */
int h_run(const char *bin, const char *url, const char *const *argv,
          const char *const *extra_env, int timeout_ms);
/* What pid wrote on stderr / stdout (after h_wait); owned by the harness. */
const char *h_stderr(pid_t pid);
const char *h_stdout(pid_t pid);

/* Poll pid's stderr until it contains needle, up to timeout_ms. */
bool h_await_stderr(pid_t pid, const char *needle, int timeout_ms);
/* Lines in text (a trailing line without newline counts). */
int h_count_lines(const char *text);

/* SQL on a fresh connection of the harness's own (sqlite3 or libpq). */
void h_exec(const char *url, const char *sql);         /* fails the test on error */
int64_t h_query_int(const char *url, const char *sql); /* first col of first row */
char *h_query_text(const char *url, const char *sql);  /* malloc'd; NULL for SQL NULL */
/* Poll until `sql` returns an integer >= want, up to timeout_ms. */
bool h_await_int(const char *url, const char *sql, int64_t want, int timeout_ms);

/* rowcopy_dst equals rowcopy_src: count, distinct ids, sum of ids, payloads.
 * (This and the two consistency checks below assert what tests/invariants.h
 * checks; the torture driver shares them.) */
void h_assert_rowcopy_exact(const char *url);
/* rowcopy_report for key holds (rows, 1 + ... + rows). */
void h_assert_rowcopy_report(const char *url, const char *key, int64_t rows);
/*
 * rowcopy's invariant at any instant: while run key is in step copy, the
 * committed rows of rowcopy_dst are exactly the committed cursor's prefix
 * (asserted). False when the run is not in step copy (or does not exist).
 */
bool h_rowcopy_consistent(const char *url, const char *key);
/*
 * aggregate's run key is finished and exact over days x per_day seeded
 * events: its per-day summary equals a recomputation from agg_events, one
 * report line per day and none twice, each matching its summary.
 */
void h_assert_aggregate_exact(const char *url, const char *key, int64_t days,
                              int64_t per_day);

/* `ratchet migrate` on url (creates the database), which must exit 0. */
void h_migrate(const char *url);

/*
 * Run bin with argv on url and assert a usage error: exit 2 and exactly one
 * line on stderr that contains says.
 */
void h_expect_usage(const char *bin, const char *url, const char *const *argv,
                    const char *says);

/* Monotonic milliseconds. */
int64_t h_now_ms(void);

/* A NULL-ended argv / env list as a compound literal. */
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Assert an exit code, showing the child's stderr when it is wrong. */
#define EXPECT_EXIT(pid, got, want)                                            \
    do {                                                                       \
        int expect_got_ = (got); /* once: it may be h_wait() */                \
        ck_assert_msg(expect_got_ == (want), "exit %d, want %d; stderr:\n%s",  \
                      expect_got_, (want), h_stderr(pid));                     \
    } while (0)

/* Killed by SIGKILL, as h_wait reports it. */
#define EXIT_SIGKILL (128 + SIGKILL)

#endif
