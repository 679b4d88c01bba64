/*
 * lifecycle.c — the run's lifecycle: its states, the events that move it,
 * and the one table of which event moves a run in which state where (s6's
 * supervisor is the model: the table is the spec, each cell is testable).
 * Nothing else in the library writes rt_run.status: the statements that
 * ride inside bigger transactions (a claim, a chunk's commit) are in
 * lifecycle.h, the rest go through rt__transition here.
 *
 * Two rules keep the lifecycle honest:
 *
 *   - Every verdict fences. A move made by anyone but the run's holder
 *     (a worker finding the holder dead, an operator's retry, cancel or
 *     reset, the daemon's skip, a start or claim) bumps the epoch in the
 *     same statement, so the old holder's next commit matches nothing, and
 *     settles the run's lease in the same transaction: a run and its lease
 *     never disagree. A holder's own moves are fenced by its epoch.
 *   - Terminal states (done, failed, skipped, cancelled) move only by an
 *     operator: retry, reset, prune.
 *
 * Dead means dead (lease.c, lease_judge): a holder is judged dead when its
 * lease expired, or its liveness lock is free where only death frees it;
 * HOLDER_DEAD is carried out only while that still holds, in the verdict's
 * own transaction.
 */
#include <string.h>

#include "core/lifecycle.h"

static const char *const lc_status_names[RT__ST_COUNT + 1] = {
#define LC_STATUS_NAME(name, text) text,
    RT__STATUS_MAP(LC_STATUS_NAME)
#undef LC_STATUS_NAME
    "deleted"};

static const char *const lc_event_names[RT__EV_COUNT] = {
#define LC_EVENT_NAME(name, text) text,
    RT__EVENT_MAP(LC_EVENT_NAME)
#undef LC_EVENT_NAME
};

const char *rt__status_name(rt__status st) {
    return st >= 0 && st <= RT__ST_COUNT ? lc_status_names[st] : "deleted";
}

rt__status rt__status_parse(const char *text) {
    for (int i = 0; text && i < RT__ST_COUNT; i++)
        if (!strcmp(lc_status_names[i], text)) return (rt__status)i;
    return RT__ST_GONE;
}

bool rt__status_terminal(rt__status st) {
    return st == RT__ST_DONE || st == RT__ST_FAILED || st == RT__ST_SKIPPED ||
           st == RT__ST_CANCELLED;
}

const char *rt__event_name(rt__event ev) {
    return ev >= 0 && ev < RT__EV_COUNT ? lc_event_names[ev] : "?";
}

/* ------------------------------------------------------------ the table */

#define H(st) {true, RT__ST_##st, RT__BY_HOLDER}
#define O(st) {true, RT__ST_##st, RT__BY_OTHER}

/*
 * state x event -> where the run goes and who may move it; an empty cell
 * is refused. Who makes each event:
 *   start        `run` starts or resumes a run                   (other)
 *   claim        a worker claims a queued run                    (other)
 *   takeover     a start over a holder found dead                (other)
 *   commit       the holder commits a chunk or a step            (holder)
 *   finish       the holder commits the last step                (holder)
 *   stop         the holder stops on a signal, resumable         (holder)
 *   cancel_seen  the holder's commit finds a cancel asked        (holder)
 *   refuse       the holder's step refuses its input             (holder)
 *   forget       ... and the run, created by this very start, has
 *                done nothing: it is deleted, its key free again (holder)
 *   step_error   a queued run's attempt failed: queued again     (holder)
 *   fail         a permanent error, or the last attempt          (holder)
 *   holder_dead  a worker finds a queued run's holder dead:
 *                the attempt counts, the run is queued again     (other)
 *   holder_dead_last  ... and that was its last attempt          (other)
 *   skip         the daemon skips a slot's pending run           (other)
 *   retry        an operator retries a finished run              (other)
 *   cancel       an operator cancels a run nobody works on       (other)
 *   reset        an operator discards a run (a running one only
 *                with --force)                                   (other)
 *   prune        old finished runs are deleted                   (other)
 * A running run asked to cancel keeps working until its next commit
 * (cancel_seen): the request is a flag, not a move. A stop of such a run
 * is refused (its fence holds only while no cancel is asked): its holder
 * ends it cancel_seen instead, so no run rests resumable with a cancel
 * pending.
 */
static const rt__move lc_table[RT__ST_COUNT][RT__EV_COUNT] = {
    [RT__ST_PENDING] = {[RT__EV_START] = O(RUNNING),
                        [RT__EV_CLAIM] = O(RUNNING),
                        [RT__EV_SKIP] = O(SKIPPED),
                        [RT__EV_CANCEL] = O(CANCELLED),
                        [RT__EV_RESET] = O(GONE)},
    [RT__ST_RUNNING] = {[RT__EV_TAKEOVER] = O(RUNNING),
                        [RT__EV_COMMIT] = H(RUNNING),
                        [RT__EV_FINISH] = H(DONE),
                        [RT__EV_STOP] = H(INTERRUPTED),
                        [RT__EV_CANCEL_SEEN] = H(CANCELLED),
                        [RT__EV_REFUSE] = H(INTERRUPTED),
                        [RT__EV_FORGET] = H(GONE),
                        [RT__EV_STEP_ERROR] = H(PENDING),
                        [RT__EV_FAIL] = H(FAILED),
                        [RT__EV_HOLDER_DEAD] = O(INTERRUPTED),
                        [RT__EV_HOLDER_DEAD_LAST] = O(FAILED),
                        [RT__EV_CANCEL] = O(CANCELLED),
                        [RT__EV_RESET] = O(GONE)},
    [RT__ST_INTERRUPTED] = {[RT__EV_START] = O(RUNNING),
                            [RT__EV_CLAIM] = O(RUNNING),
                            [RT__EV_CANCEL] = O(CANCELLED),
                            [RT__EV_RESET] = O(GONE)},
    [RT__ST_DONE] = {[RT__EV_RESET] = O(GONE), [RT__EV_PRUNE] = O(GONE)},
    [RT__ST_FAILED] = {[RT__EV_RETRY] = O(PENDING),
                       [RT__EV_RESET] = O(GONE),
                       [RT__EV_PRUNE] = O(GONE)},
    [RT__ST_SKIPPED] = {[RT__EV_RETRY] = O(PENDING),
                        [RT__EV_RESET] = O(GONE),
                        [RT__EV_PRUNE] = O(GONE)},
    [RT__ST_CANCELLED] = {[RT__EV_RETRY] = O(PENDING),
                          [RT__EV_RESET] = O(GONE),
                          [RT__EV_PRUNE] = O(GONE)},
};

#undef H
#undef O

rt__move rt__lifecycle_move(rt__status from, rt__event ev) {
    rt__move none = {false, RT__ST_GONE, RT__BY_OTHER};
    if (from < 0 || from >= RT__ST_COUNT || ev < 0 || ev >= RT__EV_COUNT)
        return none;
    return lc_table[from][ev];
}

/* ---------------------------------------------------------- the actions */

/*
 * A move to another state ($3), fenced on the epoch ($2) and the status
 * ($9) read; the epoch moves by $4 (1 for a verdict by another than the
 * holder). $5 the error kept (NULL: none), $6 the failed attempts (< 0:
 * unchanged), $7 the backoff before the run may be claimed again (< 0:
 * unchanged), $8 1 when the run ends here. $3 and $9 are cast: PostgreSQL
 * would deduce the column's domain (rt_status) from the assignment.
 */
#define LC_MOVE_SQL                                                            \
    "UPDATE rt_run SET status = CAST($3 AS TEXT), epoch = epoch + $4, "       \
    "error = $5, failures = CASE WHEN $6 < 0 THEN failures ELSE $6 END, "     \
    "run_at_ms = CASE WHEN $7 < 0 THEN run_at_ms ELSE rt_now_ms() + $7 END, " \
    "finished_ms = CASE WHEN $8 = 1 THEN rt_now_ms() END, "                   \
    "updated_ms = rt_now_ms() WHERE id = $1 AND epoch = $2 AND status = "     \
    "CAST($9 AS TEXT) AND " RT__LC_EPOCH_LEFT

/* retry: back to the queue (or to `run`) where it stood, its attempts and
 * error forgotten. */
#define LC_RETRY_SQL                                                           \
    "UPDATE rt_run SET status = 'pending', epoch = epoch + 1, error = NULL, "  \
    "attempt = 0, failures = 0, cancel_requested = 0, run_at_ms = NULL, "     \
    "finished_ms = NULL, updated_ms = rt_now_ms() WHERE id = $1 AND epoch = " \
    "$2 AND status = CAST($3 AS TEXT) AND " RT__LC_EPOCH_LEFT

/* cancel: ended now, its request (if any) answered. */
#define LC_CANCEL_SQL                                                          \
    "UPDATE rt_run SET status = 'cancelled', error = $4, cancel_requested = " \
    "0, epoch = epoch + 1, updated_ms = rt_now_ms(), finished_ms = "          \
    "rt_now_ms() WHERE id = $1 AND epoch = $2 AND status = CAST($3 AS TEXT) " \
    "AND " RT__LC_EPOCH_LEFT

/* The lease of the run, settled with the verdict: its row deleted (for a
 * dead holder only while it has not renewed since it was judged: its
 * heartbeat is still the one seen). *gone: a row went. */
static int lc_settle_lease(rt_store *s, const rt__verdict *v, bool *gone) {
    *gone = false;
    if (!v->scope) return RT_OK;
    int64_t changes = 0;
    int rc;
    if (v->owner) {
        rt_value args[] = {rt_text(v->scope), rt_text(v->owner),
                           v->unrenewed ? rt_int(v->heartbeat) : rt_null()};
        rc = rt__store_exec(s, RT__LEASE_DELETE_UNRENEWED_SQL, 3, args,
                            &changes);
    } else { /* the run's own row, whichever scope its job uses */
        rt_value args[] = {rt_text(v->job), rt_text(v->key)};
        rc = rt__store_exec(s,
                            "DELETE FROM rt_lease WHERE (scope = $1 OR scope "
                            "= $1 || '/' || $2) AND run_key = $2",
                            2, args, &changes);
    }
    *gone = changes > 0;
    return rc;
}

/* The statement of v's cell; *changes: 1 when the fence held. */
static int lc_act(rt_store *s, const rt__verdict *v, rt__move m,
                  int64_t *changes) {
    const char *from = rt__status_name(v->from);
    if (m.to == RT__ST_GONE) { /* forget, reset, prune */
        /* Params first (they reference the run); if the fence does not
         * hold, the transaction is rolled back with them. */
        rt_value args[] = {rt_int(v->id), rt_text(from), rt_int(v->epoch)};
        int rc = rt__store_exec(s, "DELETE FROM rt_param WHERE run_id = $1",
                                1, args, NULL);
        if (rc != RT_OK) return rc;
        return rt__store_exec(s,
                              "DELETE FROM rt_run WHERE id = $1 AND status = "
                              "CAST($2 AS TEXT) AND epoch = $3",
                              3, args, changes);
    }
    if (v->event == RT__EV_RETRY) {
        rt_value args[] = {rt_int(v->id), rt_int(v->epoch), rt_text(from)};
        return rt__store_exec(s, LC_RETRY_SQL, 3, args, changes);
    }
    if (v->event == RT__EV_CANCEL) {
        rt_value args[] = {rt_int(v->id), rt_int(v->epoch), rt_text(from),
                           rt_text(v->why ? v->why : RT_CANCELLED_ERROR)};
        return rt__store_exec(s, LC_CANCEL_SQL, 4, args, changes);
    }
    bool counts = v->event == RT__EV_STEP_ERROR || v->event == RT__EV_FAIL ||
                  v->event == RT__EV_HOLDER_DEAD ||
                  v->event == RT__EV_HOLDER_DEAD_LAST;
    bool queued_again = m.to == RT__ST_PENDING || m.to == RT__ST_INTERRUPTED;
    bool keeps_error = m.to != RT__ST_INTERRUPTED || v->event != RT__EV_STOP;
    rt_value args[] = {
        rt_int(v->id),
        rt_int(v->epoch),
        rt_text(rt__status_name(m.to)),
        rt_int(m.by == RT__BY_OTHER ? 1 : 0),
        keeps_error && v->why ? rt_text(v->why) : rt_null(),
        rt_int(counts && v->failures >= 0 ? v->failures : -1),
        rt_int(counts && queued_again ? v->delay_ms : -1),
        rt_int(rt__status_terminal(m.to) ? 1 : 0),
        rt_text(from)};
    /* A stop does not leave a cancel asked standing: a stopped run is
     * resumable, and one with its cancel pending would be claimed by no
     * worker (RT__LC_CLAIMABLE). The fence fails; the holder ends the run
     * cancel_seen instead (runner.c). */
    return rt__store_exec(s,
                          v->event == RT__EV_STOP
                              ? LC_MOVE_SQL " AND cancel_requested = 0"
                              : LC_MOVE_SQL,
                          9, args, changes);
}

static void lc_log(const rt__verdict *v, rt__move m) {
    rt__log_fields f = RT_LOG_FIELDS_NONE;
    f.job = v->job;
    f.key = v->key;
    f.run = v->id;
    /* The holder says what it did in its own words (runner.c); a verdict
     * by another is news to whoever reads the log. */
    int level = m.by == RT__BY_HOLDER ? RT_LOG_DEBUG
                : v->event == RT__EV_HOLDER_DEAD ||
                        v->event == RT__EV_HOLDER_DEAD_LAST
                    ? RT_LOG_WARN
                    : RT_LOG_INFO;
    if (!rt__log_enabled(level)) return;
    rt__log(level, rt__event_name(v->event), &f, "%s -> %s by %s%s%s",
            rt__status_name(v->from), rt__status_name(m.to),
            v->who ? v->who : "this process", v->why ? ": " : "",
            v->why ? v->why : "");
}

int rt__transition(rt_store *s, const rt__verdict *v, bool *moved) {
    if (moved) *moved = false;
    rt__move m = rt__lifecycle_move(v->from, v->event);
    if (!m.allowed)
        return rt__store_fail(s, RT_INVALID, "a %s run cannot %s",
                              rt__status_name(v->from),
                              rt__event_name(v->event));
    bool own = !s->in_tx;
    int rc = own ? rt__store_begin(s) : RT_OK;
    bool gone = false;
    int64_t changes = 0;
    /* A dead holder's lease goes first: if it renewed meanwhile, it is
     * alive, and nothing is decided. */
    if (rc == RT_OK && v->unrenewed) {
        rc = lc_settle_lease(s, v, &gone);
        if (rc == RT_OK && !gone) return own ? rt__store_abort(s, RT_OK) : RT_OK;
    }
    if (rc == RT_OK) rc = lc_act(s, v, m, &changes);
    if (rc == RT_OK && changes == 1 && !v->unrenewed)
        rc = lc_settle_lease(s, v, &gone);
    if (rc == RT_OK && changes != 1 && own) return rt__store_abort(s, RT_OK);
    if (rc == RT_OK && own) rc = rt__store_commit(s);
    if (rc != RT_OK) return own ? rt__store_abort(s, rc) : rc;
    if (changes != 1) return RT_OK;
    if (moved) *moved = true;
    lc_log(v, m);
    return RT_OK;
}
