/*
 * invariants.h — what runs must leave behind, checked over a connection of
 * the checker's own: rowcopy's copy is exact, aggregate's summary equals a
 * recomputation from its events, a run's progress row agrees with the data
 * it describes at any instant (also right after a SIGKILL), and no run is
 * left 'running' without a live holder.
 *
 * Check-free on purpose: each check returns false with a one-line message,
 * so the Check suites (through harness.h) and the torture driver
 * (tests/torture/) share one definition of each invariant.
 */
#ifndef RATCHET_INVARIANTS_H
#define RATCHET_INVARIANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct inv_db inv_db;

/*
 * A connection to url: sqlite:PATH (never created: NULL when the file does
 * not exist) or a libpq conninfo. NULL on failure, with a message in err.
 * inv_close(NULL) is a no-op.
 */
inv_db *inv_open(const char *url, char *err, size_t errlen);
void inv_close(inv_db *db);
/* The connection is gone (PostgreSQL: the server dropped it). */
bool inv_broken(const inv_db *db);

/* Run sql (one or more statements); false with the error in err. */
bool inv_exec(inv_db *db, const char *sql, char *err, size_t errlen);
/*
 * The first column of the first row of sql: INV_VALUE (in *out), INV_NONE
 * (no row, or NULL), INV_ERROR (message in err; a missing table is one).
 */
enum { INV_VALUE = 0, INV_NONE = 1, INV_ERROR = -1 };
int inv_int(inv_db *db, const char *sql, int64_t *out, char *err, size_t errlen);
int inv_text(inv_db *db, const char *sql, char *out, size_t outlen, char *err,
             size_t errlen);

/*
 * Each row of sql to fn (columns as text, NULL as NULL, at most 16); fn
 * returns false to stop early. INV_VALUE, or INV_ERROR (message in err).
 */
typedef bool inv_row_fn(void *arg, int ncols, const char *const *cols);
int inv_each(inv_db *db, const char *sql, inv_row_fn *fn, void *arg, char *err,
             size_t errlen);

/* A run's row as committed. schema: the schema exists; exists: so does
 * the run's row. */
typedef struct inv_run {
    bool schema, exists;
    char status[16];
    int64_t id, step_index, items, step_items, cursor, epoch, attempt;
    bool has_cursor;
} inv_run;
/* false only on a database error (message in err). */
bool inv_run_read(inv_db *db, const char *job, const char *key, inv_run *run,
                  char *err, size_t errlen);

/* rowcopy_dst equals rowcopy_src: count (> 0), distinct ids, sum of ids,
 * payloads. */
bool inv_rowcopy_exact(inv_db *db, char *msg, size_t msglen);
/*
 * rowcopy's run agrees with the data: in step copy, rowcopy_dst is exactly
 * the committed cursor's prefix of rowcopy_src (count = distinct = step
 * items = cursor = max id); past copy the copy is exact; once done the
 * report row holds (rows, sum of ids) and items = rows.
 */
bool inv_rowcopy_progress(inv_db *db, const inv_run *run, const char *key,
                          char *msg, size_t msglen);
/*
 * aggregate's summary for key equals a recomputation from agg_events (per
 * day: events, total, distinct customers), and there is one correct report
 * line per day of the summary, none twice.
 */
bool inv_aggregate_exact(inv_db *db, const char *key, char *msg, size_t msglen);
/*
 * aggregate's run agrees with the data: past summarize the summary is exact;
 * in step report the report holds exactly the days up to the cursor, one
 * correct line each; once done it is complete and items = days.
 */
bool inv_aggregate_progress(inv_db *db, const inv_run *run, const char *key,
                            char *msg, size_t msglen);
/*
 * No run is 'running' without a live holder: each one's lease (its job's,
 * or its job and key's) names a process of this host that is alive (a
 * stopped process counts; a zombie does not).
 */
bool inv_no_orphans(inv_db *db, char *msg, size_t msglen);

#endif
