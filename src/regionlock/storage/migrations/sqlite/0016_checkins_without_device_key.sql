-- PostgreSQL's check-in history loses its foreign key to `devices` in the migration of the same
-- number, because dropping a month's partition locked `devices`. SQLite has no partitions and
-- its retention deletes rows, so its key stays (and removing one means rebuilding the table).
-- Nothing changes here; the number keeps both stores' schemas in step.
SELECT 1;
