-- The liveness lock belongs to the lease's owner, not to its scope: a
-- process takes one session advisory lock (key live_key, derived from its
-- owner string) when it takes its first lease and keeps it until it exits,
-- so a worker claims run after run without taking and dropping a lock for
-- each. A waiting process that can take the live_key lock of a lease with
-- fast = 1 knows its owner is dead. NULL (rows written before this
-- migration): the lock is the scope's, as before.
ALTER TABLE rt_lease ADD COLUMN live_key bigint;
-- A busy queue inserts and deletes a lease row per run: vacuum the table
-- after every 1,000 dead rows rather than after a fifth of it, so a claim's
-- look at the held leases does not wade through dead ones.
ALTER TABLE rt_lease SET (autovacuum_vacuum_scale_factor = 0,
                          autovacuum_vacuum_threshold = 1000,
                          autovacuum_analyze_scale_factor = 0,
                          autovacuum_analyze_threshold = 1000);
