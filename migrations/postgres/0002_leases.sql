-- Leases: one row per exclusion scope ('JOB', or 'JOB/KEY' for jobs that
-- exclude per key) naming the process that holds it. Times are the
-- database's clock (rt_now_ms(), from clock_timestamp()). fast = 1 when the
-- holder also holds the scope's session advisory lock, which the server
-- drops the instant the holder's session dies, so a waiting process may take
-- over as soon as it can take that lock.
CREATE TABLE rt_lease (
    scope        text    PRIMARY KEY,
    job          text    NOT NULL,
    run_key      text,
    owner        text    NOT NULL,
    fast         integer NOT NULL DEFAULT 0,
    acquired_ms  bigint  NOT NULL,
    heartbeat_ms bigint  NOT NULL,
    expires_ms   bigint  NOT NULL
);
CREATE INDEX rt_lease_run ON rt_lease (job, run_key);
