-- The fleet as it stood at the end of each UTC day (issue 15: the console's time slider, and
-- check-ins per day): counts only, no device. Written once a day by the service from the
-- check-ins of that day and before (services/overview.py), so they outlive check-in
-- retention. Place codes are '' when unknown (a primary key column cannot be NULL).
CREATE TABLE fleet_days (
    day          TEXT NOT NULL,
    country      TEXT NOT NULL,
    subdivision  TEXT NOT NULL,
    verdict      TEXT NOT NULL,
    devices      INTEGER NOT NULL,
    PRIMARY KEY (day, country, subdivision, verdict)
);

-- One row per day snapshotted, written last in the same transaction: the day is complete.
CREATE TABLE fleet_day_totals (
    day          TEXT PRIMARY KEY,
    checkins     INTEGER NOT NULL,
    devices      INTEGER NOT NULL,
    computed_at  INTEGER NOT NULL
);
