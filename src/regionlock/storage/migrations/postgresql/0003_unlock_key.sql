-- The service's X25519 key for offline unlock codes (signing/unlock.py), created on first use.
-- Its public half is provisioned on devices, so it is long-lived: replacing it needs new
-- firmware (or a provisioning update) on every device before codes work again.
CREATE TABLE unlock_key (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    private    BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
