-- Webhooks (issue 14, storage/webhooks.py). Times are UTC epoch milliseconds.
-- An endpoint: where events go, which ones, and the secret that signs them. The secret is kept
-- as given (an HMAC needs it); during a rotation the previous one signs too until
-- previous_until.
CREATE TABLE webhook_endpoints (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    url              TEXT NOT NULL,
    events           TEXT NOT NULL,             -- JSON array of event types
    secret           TEXT NOT NULL,
    previous_secret  TEXT,
    previous_until   INTEGER,
    enabled          INTEGER NOT NULL,          -- 1 or 0
    disabled_reason  TEXT,
    created_at       INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    -- Events of audit entries after this one go to it (what happened before it existed does not).
    start_seq        INTEGER NOT NULL,
    -- The SHA-256 of the last body queued to it: the next event names it as "previous".
    last_digest      TEXT,
    -- Since when every attempt to it has failed (NULL when the last one succeeded).
    failing_since    INTEGER,
    removed          INTEGER NOT NULL DEFAULT 0
);

-- How far the audit trail has been read for events: one row. Whoever moves it (one node at a
-- time, compare-and-set) queues the deliveries of the entries it passed, in the same transaction.
CREATE TABLE webhook_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO webhook_cursor (id, seq) VALUES (1, 0);

-- One event to one endpoint: its body fixed when queued (retries send the same bytes), its
-- attempts, and a lease so that one sender, of any process, sends it at a time.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    audit_seq       INTEGER NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER,
    last_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     INTEGER,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, audit_seq);
