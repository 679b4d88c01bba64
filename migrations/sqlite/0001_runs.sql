-- Runs: one row per (job, run_key), carrying the run's progress. The runner
-- updates this row in the same transaction as each step's work.
CREATE TABLE rt_run (
    id           INTEGER PRIMARY KEY,
    job          TEXT    NOT NULL,
    run_key      TEXT    NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('pending', 'running', 'interrupted', 'done', 'failed')),
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
    UNIQUE (job, run_key)
);
CREATE INDEX rt_run_job_status ON rt_run (job, status, id);

-- A run's parameters (name=value strings), fixed when the run is created.
CREATE TABLE rt_param (
    run_id INTEGER NOT NULL REFERENCES rt_run (id) ON DELETE CASCADE,
    name   TEXT    NOT NULL,
    value  TEXT    NOT NULL,
    PRIMARY KEY (run_id, name)
);
