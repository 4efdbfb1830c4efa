-- PostgreSQL's check-in history is partitioned by month from this migration on (its
-- migration of the same number says why). SQLite has no partitions: its retention deletes
-- rows, as before. Nothing changes here; the number keeps both stores' schemas in step.
SELECT 1;
