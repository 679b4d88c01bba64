-- Scheduled runs: slot_ms is the cron slot a run was created for (NULL for
-- runs started by hand), and a slot can be recorded as 'skipped' (the job was
-- still running, or the slot was missed while no daemon ran).
ALTER TABLE rt_run DROP CONSTRAINT rt_run_status_check;
ALTER TABLE rt_run ADD CONSTRAINT rt_run_status_check
    CHECK (status IN ('pending', 'running', 'interrupted', 'done', 'failed',
                      'skipped'));
ALTER TABLE rt_run ADD COLUMN slot_ms bigint;
CREATE INDEX rt_run_job_slot ON rt_run (job, slot_ms);
