/*
 * lifecycle.h — the statements of the run's lifecycle that ride inside
 * bigger transactions (a start's claim, a worker's claim, a chunk's commit)
 * and so are written into other files' SQL. They are here, beside
 * lifecycle.c's table, so that every write of rt_run.status stands in these
 * two files (tests/lifecycle-writers.sh checks it). Each names its cell of
 * the table (lifecycle.c).
 */
#ifndef RT_LIFECYCLE_H
#define RT_LIFECYCLE_H

#include "core/core.h"

/* An epoch that can still move: at INT64_MAX a run can take no new holder
 * (SQLite would turn epoch + 1 into a REAL), and nothing may claim it. */
#define RT__LC_EPOCH_LEFT "epoch < 9223372036854775807"
/* attempt + 1, saturating at INT32_MAX (it is read into an int). */
#define RT__LC_ATTEMPT_NEXT                                                    \
    "attempt = CASE WHEN attempt < 2147483647 THEN attempt + 1 ELSE "         \
    "attempt END"

/*
 * START / TAKEOVER (runner.c, runner_claim): pending, interrupted, or
 * running under a holder found dead -> running; the epoch moves, and the
 * progress comes back from the UPDATE itself.
 */
#define RT__LC_START_SQL                                                       \
    "UPDATE rt_run SET epoch = epoch + 1, status = 'running', "               \
    RT__LC_ATTEMPT_NEXT ", started_ms = coalesce(started_ms, "                \
    "rt_now_ms()), updated_ms = rt_now_ms(), "                                \
    "fingerprint = CASE WHEN $4 = 1 THEN $2 ELSE fingerprint END, "           \
    "steps = CASE WHEN $4 = 1 THEN $3 ELSE steps END, "                       \
    "step_index = CASE WHEN $6 = 1 THEN $7 ELSE step_index END, "             \
    "step_name = CASE WHEN $6 = 1 THEN $8 ELSE step_name END, "               \
    "cursor_int = CASE WHEN $6 = 1 THEN NULL ELSE cursor_int END, "           \
    "cursor_bytes = CASE WHEN $6 = 1 THEN NULL ELSE cursor_bytes END, "       \
    "step_items = CASE WHEN $6 = 1 THEN 0 ELSE step_items END, "              \
    "step_total = CASE WHEN $6 = 1 THEN NULL ELSE step_total END "            \
    "WHERE id = $1 AND epoch = $5 AND " RT__LC_EPOCH_LEFT " "                  \
    "AND status IN ('pending', 'running', 'interrupted') "                     \
    "RETURNING epoch, attempt, step_index, step_name, cursor_int, "           \
    "cursor_bytes, items, step_items, step_total"

/* CLAIM (worker.c): a queued run a worker may claim. */
#define RT__LC_CLAIMABLE                                                       \
    "queued = 1 AND status IN ('pending', 'interrupted') AND "                \
    "cancel_requested = 0 AND " RT__LC_EPOCH_LEFT

/*
 * CLAIM's pick where the store has no batched claim (claim.c; SQLite): the
 * next due runs, best first. The inner query walks rt_run_claim in claim
 * order and skips jobs whose job-wide lease is held; the outer one skips
 * keys held. Either way a claim reads a few rows. Answers job, run_key,
 * priority.
 */
#define RT__LC_CLAIM_PICK_SQL                                                  \
    "SELECT r.job, r.run_key, r.priority FROM (SELECT job, run_key, "        \
    "priority, run_at_ms, created_ms, id FROM rt_run WHERE "                  \
    RT__LC_CLAIMABLE " AND (run_at_ms IS NULL OR run_at_ms <= rt_now_ms()) "  \
    "AND job NOT IN (SELECT scope FROM rt_lease) ORDER BY priority DESC, "    \
    "coalesce(run_at_ms, created_ms), id LIMIT 64) r WHERE NOT EXISTS "       \
    "(SELECT 1 FROM rt_lease l WHERE l.scope = r.job || '/' || "             \
    "r.run_key) ORDER BY r.priority DESC, coalesce(r.run_at_ms, "            \
    "r.created_ms), r.id LIMIT 8"

/* CLAIM: pending or interrupted -> running, fenced on the epoch read ($1
 * id, $2 epoch). */
#define RT__LC_CLAIM_SQL                                                       \
    "UPDATE rt_run SET epoch = epoch + 1, status = 'running', "               \
    RT__LC_ATTEMPT_NEXT ", started_ms = coalesce(started_ms, rt_now_ms()), "  \
    "updated_ms = rt_now_ms() WHERE id = $1 AND epoch = $2"

/* CLAIM, as a data-modifying CTE's body over the picked row c. */
#define RT__LC_CLAIM_CTE                                                       \
    "UPDATE rt_run SET epoch = epoch + 1, status = 'running', "               \
    RT__LC_ATTEMPT_NEXT ", started_ms = coalesce(started_ms, rt_now_ms()), "  \
    "updated_ms = rt_now_ms() WHERE id = (SELECT id FROM c)"

/*
 * COMMIT / FINISH / STOP / CANCEL_SEEN (runner.c, runner_commit): the
 * fenced progress UPDATE of every commit ($1 id, $2 epoch; $10 the status
 * the holder moves to: running, done or interrupted). A cancel requested
 * by `ratchet cancel` turns the status into 'cancelled' here, in the
 * transaction that commits the chunk's work.
 */
#define RT__LC_COMMIT_SQL                                                      \
    "UPDATE rt_run SET step_index = $3, step_name = $4, cursor_int = $5, "    \
    "cursor_bytes = $6, items = $7, step_items = $8, step_total = $9, "       \
    "status = CASE WHEN $10 <> 'done' AND cancel_requested = 1 THEN "         \
    "'cancelled' ELSE $10 END, "                                               \
    "error = CASE WHEN $10 <> 'done' AND cancel_requested = 1 THEN '"         \
    RT_CANCELLED_ERROR "' END, updated_ms = rt_now_ms(), "                    \
    "finished_ms = CASE WHEN $10 = 'done' OR cancel_requested = 1 THEN "      \
    "rt_now_ms() END WHERE id = $1 AND epoch = $2"

/*
 * COMMIT that leaves the status as it is: no cancel asked, and the run has
 * status $10 already. It does not SET status, so SQLite need not rewrite
 * the run's rt_run_job_status index entry: one page less in the WAL per
 * commit. Otherwise no row matches, and RT__LC_COMMIT_SQL runs.
 */
#define RT__LC_COMMIT_SAME_SQL                                                 \
    "UPDATE rt_run SET step_index = $3, step_name = $4, cursor_int = $5, "    \
    "cursor_bytes = $6, items = $7, step_items = $8, step_total = $9, "       \
    "error = NULL, updated_ms = rt_now_ms(), finished_ms = NULL "              \
    "WHERE id = $1 AND epoch = $2 AND status = $10 AND cancel_requested = 0"

/*
 * HOLDER_DEAD, inside a take of a job's lease over a dead or stalled holder
 * (lease.c) that worked on another run of the job: that run ($1 job, $2
 * key), if still 'running', is interrupted and its epoch moves — only if
 * the take went through (the lease of scope $3 is now owner $4's).
 */
#define RT__LC_ORPHAN_SQL                                                      \
    "UPDATE rt_run SET status = 'interrupted', epoch = epoch + 1, error = "  \
    "'its holder died; its job''s lease was taken for another run', "        \
    "updated_ms = rt_now_ms() WHERE job = $1 AND run_key = $2 AND status = "  \
    "'running' AND " RT__LC_EPOCH_LEFT " AND EXISTS (SELECT 1 FROM rt_lease " \
    "WHERE scope = $3 AND owner = $4)"

/* A new run: pending, or skipped with $7 as its reason (run.c). */
#define RT__LC_INSERT_SQL                                                      \
    "INSERT INTO rt_run (job, run_key, status, fingerprint, steps, "          \
    "step_index, step_name, slot_ms, error, queued, priority, run_at_ms, "    \
    "max_attempts, created_ms, updated_ms, finished_ms) VALUES ($1, $2, "     \
    "CASE WHEN CAST($7 AS TEXT) IS NULL THEN 'pending' ELSE 'skipped' "       \
    "END, $3, $4, 0, $5, $6, $7, $8, $9, $10, $11, rt_now_ms(), "             \
    "rt_now_ms(), CASE WHEN CAST($7 AS TEXT) IS NULL THEN NULL ELSE "         \
    "rt_now_ms() END) ON CONFLICT (job, run_key) DO NOTHING RETURNING id"

#endif
