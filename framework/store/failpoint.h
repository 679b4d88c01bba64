/*
 * failpoint.h — named failpoints at the seams where a crash or an error
 * matters, for test builds only (docs/RELIABILITY.md, "Failpoints and fault
 * injection").
 *
 * Compiled with -DRT_TEST_HOOKS (build/libratchet-hooks.a and
 * build/ratchet-hooks), RT_FAILPOINT(s, "commit.before") asks failpoint.c
 * whether RATCHET_FAILPOINT names this seam for this hit. It returns RT_OK
 * to go on (nothing named it, or the action was kill, stop, term or sleep),
 * or, for ioerr, busy and connerr, RT_DBERR, RT_BUSY or RT_CONN with a
 * message naming the failpoint in s->errmsg: the call site then takes the
 * path a real backend error takes. After connerr the store is broken
 * (rt__store_broken) until rt__store_reconnect mends it.
 * RT_UNFENCE is the control that proves the fencing tests can fail: with
 * RATCHET_TEST_UNFENCED=1 a commit's epoch check matches whatever epoch is
 * current.
 *
 * Without RT_TEST_HOOKS every macro is a constant: the production library
 * and build/ratchet contain no failpoint or fence-switch code.
 */
#ifndef RT_FAILPOINT_H
#define RT_FAILPOINT_H

#include "store/store.h"

#ifdef RT_TEST_HOOKS
/* Parse RATCHET_FAILPOINT (once): RT_EXIT_OK, or exit code 2 after one
 * logged line naming what is wrong. Later calls return the same answer. */
int rt__failpoint_init(void);
/* One hit of seam name (thread-safe; s gets the message for ioerr). */
int rt__failpoint(rt_store *s, const char *name);
/* An ioerr fired at seam "step": the step's next SQL call on s fails with
 * it (RT_DBERR, message in s->errmsg), once. RT_OK when none is pending. */
int rt__failpoint_armed(rt_store *s);
/* RATCHET_TEST_UNFENCED=1: *epoch becomes the run's current epoch, read in
 * s's open transaction, so the fenced UPDATE matches whoever took over. */
void rt__failpoint_unfence(rt_store *s, int64_t run_id, int64_t *epoch);
/* Whether a connerr broke s (and it has not reconnected since). */
bool rt__failpoint_broken(const rt_store *s);
/* s reconnects: a connerr's break ends, its open transaction rolled back. */
void rt__failpoint_mend(rt_store *s);
/*
 * For in-process tests (tests/check_runner_faults.c), with no other thread
 * at a failpoint: read RATCHET_FAILPOINT, RATCHET_FAILPOINT_LOG and
 * RATCHET_TEST_UNFENCED again, every hit count and the fired count from
 * zero; only non-NULL: hits on other stores are not counted and never
 * fire. Returns NULL, or the one-line error of a malformed spec (then no
 * failpoint is set).
 */
const char *rt__failpoint_reset(const rt_store *only);
/* How many failpoints fired since the start or the last reset. */
int64_t rt__failpoint_fired(void);

#define RT_FAILPOINT_INIT() rt__failpoint_init()
#define RT_FAILPOINT(s, name) rt__failpoint((s), (name))
#define RT_FAILPOINT_ARMED(s) rt__failpoint_armed(s)
#define RT_UNFENCE(s, run_id, epoch) rt__failpoint_unfence((s), (run_id), (epoch))
#define RT_FAILPOINT_BROKEN(s) rt__failpoint_broken(s)
/* The backends' statement calls (step, send, exec_script): seam exec. */
#define RT_FAILPOINT_EXEC(s)                          \
    do {                                              \
        int rt__fp_rc = rt__failpoint((s), "exec");   \
        if (rt__fp_rc != RT_OK) return rt__fp_rc;     \
    } while (0)
#define RT_FAILPOINT_MEND(s) rt__failpoint_mend(s)
#else
#define RT_FAILPOINT_INIT() 0
#define RT_FAILPOINT(s, name) 0
#define RT_FAILPOINT_ARMED(s) 0
#define RT_UNFENCE(s, run_id, epoch) ((void)0)
#define RT_FAILPOINT_BROKEN(s) 0
#define RT_FAILPOINT_EXEC(s) ((void)0)
#define RT_FAILPOINT_MEND(s) ((void)0)
#endif

#endif
