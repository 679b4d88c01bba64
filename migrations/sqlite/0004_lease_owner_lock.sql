-- The liveness lock belongs to the lease's owner, not to its scope: a
-- process takes one lock (key live_key, derived from its owner string; an
-- open-file-description lock on one byte of the database's -ratchet.lock
-- file) when it takes its first lease and keeps it until it exits, so a
-- worker claims run after run without taking and dropping a lock for each.
-- A waiting process that can take the live_key lock of a lease with
-- fast = 1 knows its owner is dead. NULL (rows written before this
-- migration): the lock is the scope's, as before.
ALTER TABLE rt_lease ADD COLUMN live_key INTEGER;
