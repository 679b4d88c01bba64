-- Scheduled and queued runs.
--   slot_ms           the cron slot a run was created for (NULL otherwise);
--                     a slot can be 'skipped' (the job was still running, or
--                     the slot was missed while no daemon ran)
--   queued            1: enqueued, workers claim it (priority, then run_at_ms,
--                     then age); 0: started by `run`
--   priority          higher first
--   run_at_ms         not before this time (enqueue --run-at, retry backoff)
--   max_attempts      failed attempts (a step's error, or a crash of the
--                     process running it) before the run fails; NULL: the
--                     job's default
--   failures          failed attempts so far
--   cancel_requested  1: stop at the next item boundary, end 'cancelled'
ALTER TABLE rt_run DROP CONSTRAINT rt_run_status_check;
ALTER TABLE rt_run ADD CONSTRAINT rt_run_status_check
    CHECK (status IN ('pending', 'running', 'interrupted', 'done', 'failed',
                      'skipped', 'cancelled'));
ALTER TABLE rt_run ADD COLUMN slot_ms bigint;
ALTER TABLE rt_run ADD COLUMN queued integer NOT NULL DEFAULT 0;
ALTER TABLE rt_run ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE rt_run ADD COLUMN run_at_ms bigint;
ALTER TABLE rt_run ADD COLUMN max_attempts integer;
ALTER TABLE rt_run ADD COLUMN cancel_requested integer NOT NULL DEFAULT 0;
ALTER TABLE rt_run ADD COLUMN failures integer NOT NULL DEFAULT 0;
CREATE INDEX rt_run_job_slot ON rt_run (job, slot_ms);
-- Workers claim in this order; the partial index holds only claimable runs,
-- so a claim reads a few rows however long the queue's history is.
CREATE INDEX rt_run_claim ON rt_run (priority DESC, coalesce(run_at_ms, created_ms), id)
    WHERE queued = 1 AND status IN ('pending', 'interrupted', 'running');
