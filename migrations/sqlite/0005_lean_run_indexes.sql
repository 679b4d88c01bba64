-- Every write of a run's row that changes its status inserts an entry into
-- each index whose predicate the new row satisfies. A queued run is written
-- twice (claimed, finished), so the indexes keep only what their readers
-- ask for:
-- * rt_run_job_slot holds scheduled runs only (its readers all look for a
--   slot), not the one ('job', NULL) entry per write of every queued run;
-- * rt_run_claim holds claimable runs only, no longer the running ones: a
--   claim stops stepping over the runs in progress, and a claim's write
--   adds no entry. Runs found 'running' with their holder gone are read by
--   job through rt_run_job_status (a worker's heal) and made claimable
--   again as 'interrupted'.
-- * rt_lease loses rt_lease_run: its one reader (`ratchet status`) joins a
--   page of runs to the few leases there are, and every lease a worker
--   takes paid an entry in it.
DROP INDEX rt_run_job_slot;
CREATE INDEX rt_run_job_slot ON rt_run (job, slot_ms) WHERE slot_ms IS NOT NULL;
DROP INDEX rt_run_claim;
CREATE INDEX rt_run_claim ON rt_run (priority DESC, coalesce(run_at_ms, created_ms), id)
    WHERE queued = 1 AND status IN ('pending', 'interrupted');
DROP INDEX rt_lease_run;
