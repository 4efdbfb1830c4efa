-- Appeals (issue 14, storage/appeals.py): a locked owner contests the lock from the device; the
-- support desk grants (an exemption for some days) or denies (with a reason and a contact).
-- Times are UTC epoch milliseconds. contact and message are the owner's words: personal data,
-- exported and erased with the device (docs/privacy.md).
CREATE TABLE appeals (
    id              TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    -- The device's nonce from its signed request: the same request twice is one appeal.
    nonce           TEXT NOT NULL,
    contact         TEXT NOT NULL,
    message         TEXT NOT NULL,
    language        TEXT,
    status          TEXT NOT NULL CHECK (status IN ('open', 'granted', 'denied')),
    -- What the service held when the appeal came (JSON): the verdicts that locked the device,
    -- its presence days, the policy version. Only places and reasons, never raw signals.
    evidence        TEXT NOT NULL,
    decided_at      INTEGER,
    decided_by      TEXT,
    decision_reason TEXT,
    -- A grant's exemption: until this UTC day (exclusive), as YYYY-MM-DD.
    exempt_until    TEXT,
    UNIQUE (device_id, nonce)
);
CREATE INDEX appeals_status ON appeals (status, created_at);
CREATE INDEX appeals_device ON appeals (device_id, created_at);
