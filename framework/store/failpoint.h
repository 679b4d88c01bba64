/*
 * failpoint.h — named failpoints at the seams where a crash or an error
 * matters, for test builds only (docs/RELIABILITY.md, "Failpoints and fault
 * injection").
 *
 * Compiled with -DRT_TEST_HOOKS (build/libratchet-hooks.a and
 * build/ratchet-hooks), RT_FAILPOINT(s, "commit.before") asks failpoint.c
 * whether RATCHET_FAILPOINT names this seam for this hit. It returns RT_OK
 * to go on (nothing named it, or the action was kill, stop, term or sleep),
 * or, for ioerr, RT_DBERR with a message naming the failpoint in s->errmsg:
 * the call site then takes the path a real backend error takes.
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

#define RT_FAILPOINT_INIT() rt__failpoint_init()
#define RT_FAILPOINT(s, name) rt__failpoint((s), (name))
#define RT_FAILPOINT_ARMED(s) rt__failpoint_armed(s)
#define RT_UNFENCE(s, run_id, epoch) rt__failpoint_unfence((s), (run_id), (epoch))
#else
#define RT_FAILPOINT_INIT() 0
#define RT_FAILPOINT(s, name) 0
#define RT_FAILPOINT_ARMED(s) 0
#define RT_UNFENCE(s, run_id, epoch) ((void)0)
#endif

#endif
