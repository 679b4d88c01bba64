-- Leases: one row per exclusion scope ('JOB', or 'JOB/KEY' for jobs that
-- exclude per key) naming the process that holds it. Times are the
-- database's clock (rt_now_ms()). fast = 1 when the holder also holds the
-- scope's liveness lock (a lock the OS drops the instant the holder dies), so
-- a waiting process may take over as soon as it can take that lock.
CREATE TABLE rt_lease (
    scope        TEXT    PRIMARY KEY,
    job          TEXT    NOT NULL,
    run_key      TEXT,
    owner        TEXT    NOT NULL,
    fast         INTEGER NOT NULL DEFAULT 0,
    acquired_ms  INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL
);
CREATE INDEX rt_lease_run ON rt_lease (job, run_key);
