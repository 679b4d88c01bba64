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
--
-- SQLite cannot change a CHECK constraint in place, so rt_run is rebuilt.
-- rt_param is rebuilt first, pointing at the new table: dropping the old
-- rt_run then cascades to nothing, and renaming the new one carries the
-- reference along.
CREATE TABLE rt_run_new (
    id           INTEGER PRIMARY KEY,
    job          TEXT    NOT NULL,
    run_key      TEXT    NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('pending', 'running', 'interrupted', 'done',
                                   'failed', 'skipped', 'cancelled')),
    fingerprint  TEXT    NOT NULL,
    steps        TEXT    NOT NULL,
    step_index   INTEGER NOT NULL DEFAULT 0,
    step_name    TEXT,
    cursor_int   INTEGER,
    cursor_bytes BLOB,
    items        INTEGER NOT NULL DEFAULT 0,
    step_items   INTEGER NOT NULL DEFAULT 0,
    step_total   INTEGER,
    epoch        INTEGER NOT NULL DEFAULT 0,
    attempt      INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    created_ms   INTEGER NOT NULL,
    started_ms   INTEGER,
    updated_ms   INTEGER NOT NULL,
    finished_ms  INTEGER,
    slot_ms      INTEGER,
    queued       INTEGER NOT NULL DEFAULT 0,
    priority     INTEGER NOT NULL DEFAULT 0,
    run_at_ms    INTEGER,
    max_attempts INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (job, run_key)
);
INSERT INTO rt_run_new (id, job, run_key, status, fingerprint, steps,
    step_index, step_name, cursor_int, cursor_bytes, items, step_items,
    step_total, epoch, attempt, error, created_ms, started_ms, updated_ms,
    finished_ms)
SELECT id, job, run_key, status, fingerprint, steps, step_index, step_name,
    cursor_int, cursor_bytes, items, step_items, step_total, epoch, attempt,
    error, created_ms, started_ms, updated_ms, finished_ms FROM rt_run;

CREATE TABLE rt_param_new (
    run_id INTEGER NOT NULL REFERENCES rt_run_new (id) ON DELETE CASCADE,
    name   TEXT    NOT NULL,
    value  TEXT    NOT NULL,
    PRIMARY KEY (run_id, name)
);
INSERT INTO rt_param_new (run_id, name, value)
SELECT run_id, name, value FROM rt_param;

DROP TABLE rt_param;
DROP TABLE rt_run;
ALTER TABLE rt_run_new RENAME TO rt_run;
ALTER TABLE rt_param_new RENAME TO rt_param;
CREATE INDEX rt_run_job_status ON rt_run (job, status, id);
CREATE INDEX rt_run_job_slot ON rt_run (job, slot_ms);
-- Workers claim in this order; the partial index holds only claimable runs,
-- so a claim reads a few rows however long the queue's history is.
CREATE INDEX rt_run_claim ON rt_run (priority DESC, coalesce(run_at_ms, created_ms), id)
    WHERE queued = 1 AND status IN ('pending', 'interrupted', 'running');
