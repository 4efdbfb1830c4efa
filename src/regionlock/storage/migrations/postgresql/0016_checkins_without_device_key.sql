-- The check-in history no longer has a foreign key to `devices` (docs/operating.md,
-- "Partitions"). Dropping a month's partition had to drop that key's triggers on `devices`,
-- which takes an exclusive lock on `devices` while the drop already holds the history's
-- lock; a device write under way (an operator's lock: the device row, then its history)
-- deadlocked with it, and PostgreSQL ended one of the two. Nothing relied on the key:
-- a check-in is recorded only under its device's row lock (`FOR UPDATE`, and a device
-- deleted meanwhile is refused), and erasure takes the same lock and deletes the history
-- before the device.
--
-- The parent's constraint first: dropping it drops its clones on every partition. Then any
-- of the partitions' own (the legacy table's, if attaching did not merge it).
DO $$
DECLARE
    c RECORD;
BEGIN
    FOR c IN
        SELECT con.conrelid::regclass AS tbl, con.conname
        FROM pg_constraint con
        WHERE con.contype = 'f'
          AND con.confrelid = 'devices'::regclass
          AND con.conparentid = 0
          AND (con.conrelid = 'checkins'::regclass
               OR con.conrelid IN (
                   SELECT inhrelid FROM pg_inherits WHERE inhparent = 'checkins'::regclass))
        ORDER BY con.conrelid = 'checkins'::regclass DESC
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', c.tbl, c.conname);
    END LOOP;
END $$;
