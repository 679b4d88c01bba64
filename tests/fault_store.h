/*
 * fault_store.h — a test store that wraps a real one (a SQLite file or a
 * PostgreSQL connection) behind rt_store_ops and fails the Nth begin, exec
 * or commit — once, or every one from the Nth on — with RT_DBERR, RT_CONN
 * or RT_BUSY: SQLite's test_vfs.c idea at ratchet's backend seam
 * (STYLE.md, "Tests"). Hand the wrapper to rt__runner_run() in place of the
 * real store.
 *
 * It also knows what the runner really committed: the values bound to the
 * fenced progress UPDATE (runner.c) of every transaction whose COMMIT went
 * through, so a test can compare the saved progress with the last commit.
 */
#ifndef RATCHET_FAULT_STORE_H
#define RATCHET_FAULT_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

typedef enum fs_op {
    FS_BEGIN,      /* rt_store_ops.begin: fails without beginning */
    FS_EXEC,       /* .step and .exec_script: fail without running */
    FS_COMMIT,     /* .commit: fails without committing */
    FS_COMMIT_LOST /* .commit: commits, then reports the error (a lost
                      reply: the in-doubt case); counts as FS_COMMIT */
} fs_op;

typedef struct fs_plan {
    fs_op op;
    int64_t nth;     /* fail the Nth call of op (1-based); 0: never */
    bool persistent; /* and every later one */
    int rc;          /* RT_DBERR, RT_CONN (the connection is then broken
                        until reconnected) or RT_BUSY */
} fs_plan;

/* The progress of the last transaction that committed a progress UPDATE. */
typedef struct fs_progress {
    bool known; /* false: none committed yet */
    int64_t step_index;
    bool has_cursor;
    int64_t cursor_int;
    int64_t items, step_items;
} fs_progress;

/*
 * A store that forwards to inner and injects plan's faults. inner stays the
 * caller's: fs_close() frees only the wrapper (close inner afterwards).
 */
rt_store *fs_wrap(rt_store *inner, const fs_plan *plan);
void fs_close(rt_store *s);
/* How many faults were injected so far. */
int64_t fs_injected(const rt_store *s);
/* The progress of the last commit through this wrapper. */
const fs_progress *fs_committed(const rt_store *s);

#endif
