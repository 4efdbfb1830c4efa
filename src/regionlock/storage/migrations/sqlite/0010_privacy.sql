-- The owner's data (issue 14, docs/privacy.md): redactable audit entries, erasure tombstones and
-- the daily retention job. Times are UTC epoch milliseconds.

-- Audit format v2 (storage/audit.py, docs/audit.md "Redaction"): the chain commits to a salted
-- digest of actor, subject, reason and details. Entries written before this migration keep
-- both NULL (format v1) and verify as before. An erasure removes the personal part and the
-- salt and names itself in redacted; the digest and the hash stay.
ALTER TABLE audit ADD COLUMN content_digest TEXT;
ALTER TABLE audit ADD COLUMN salt TEXT;
ALTER TABLE audit ADD COLUMN redacted TEXT;

-- One row per erased device: no identifier of it, only the SHA-256 of its (already opaque) id,
-- so that an export or erase request for that id can be answered "erased, receipt R".
CREATE TABLE device_erasures (
    id            TEXT PRIMARY KEY,             -- the receipt id
    device_digest TEXT NOT NULL,
    erased_at     INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    counts        TEXT NOT NULL,                -- JSON: what was removed, by kind
    receipt       TEXT NOT NULL                 -- the signed receipt (compact JWS)
);

CREATE INDEX device_erasures_device ON device_erasures (device_digest);

-- Daily jobs that any service process may run: claimed by moving next_at (compare-and-set),
-- so one process runs each; a run killed half-way is taken up again after lease_until.
CREATE TABLE maintenance_jobs (
    name        TEXT PRIMARY KEY,
    next_at     INTEGER NOT NULL,
    owner       TEXT,
    lease_until INTEGER,
    last_done_at INTEGER,
    last_result TEXT
);
INSERT INTO maintenance_jobs (name, next_at) VALUES ('retention', 0);
