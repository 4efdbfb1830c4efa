-- Per-installation secrets, created once on first use and never changed (device ids derive
-- from the device-id key: changing it would change every id).
CREATE TABLE installation (
    one           INTEGER PRIMARY KEY CHECK (one = 1),
    device_id_key BLOB NOT NULL,
    created_at    INTEGER NOT NULL
);
