-- regionlock schema v1 (PostgreSQL). Times are UTC epoch milliseconds; JSON is TEXT.
-- Raw signals (IP addresses, coordinates) are never stored: see docs/privacy.md.

CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    serial          TEXT NOT NULL,
    model           TEXT NOT NULL,
    sku             TEXT,
    sales_region    TEXT NOT NULL,
    distributor     TEXT NOT NULL,
    batch           TEXT NOT NULL,
    tac             TEXT NOT NULL,
    manufactured    TEXT,
    shipped         TEXT,
    public_key      BYTEA NOT NULL,
    record_digest   TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    state           TEXT NOT NULL DEFAULT '{}',
    state_version   BIGINT NOT NULL DEFAULT 0,
    last_verdict    TEXT,
    last_country    TEXT,
    last_checkin_at BIGINT
);
CREATE INDEX devices_model ON devices (model);
CREATE INDEX devices_batch ON devices (batch);
CREATE INDEX devices_distributor ON devices (distributor);
CREATE INDEX devices_last_country ON devices (last_country);
CREATE INDEX devices_last_verdict ON devices (last_verdict);

CREATE TABLE device_imeis (
    imei      TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (id),
    slot      BIGINT NOT NULL
);
CREATE INDEX device_imeis_device ON device_imeis (device_id);

CREATE TABLE checkins (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id     TEXT NOT NULL REFERENCES devices (id),
    at            BIGINT NOT NULL,
    counter       BIGINT NOT NULL,
    nonce         TEXT NOT NULL,
    country       TEXT,
    subdivision   TEXT,
    confidence    DOUBLE PRECISION NOT NULL,
    flags         TEXT NOT NULL,
    signal_kinds  TEXT NOT NULL,
    verdict       TEXT NOT NULL,
    reasons       TEXT NOT NULL,
    policy_id     TEXT,
    policy_version TEXT,
    UNIQUE (device_id, nonce)
);
CREATE INDEX checkins_device_at ON checkins (device_id, at);

CREATE TABLE policies (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    policy_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    document    TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    uploaded_by TEXT NOT NULL,
    UNIQUE (policy_id, version)
);

CREATE TABLE policy_activations (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    policy_row   BIGINT NOT NULL REFERENCES policies (id),
    activated_at BIGINT NOT NULL,
    activated_by TEXT NOT NULL,
    reason       TEXT NOT NULL
);

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    private    BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_subject ON audit (subject, seq);

-- The chain's head: one row, updated in the same transaction as every append, so appends
-- serialise on it and the chain can never fork.
CREATE TABLE audit_head (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (one, seq, hash) VALUES (1, 0, '');
