-- Bulk campaigns (storage/campaigns.py). Times are UTC epoch milliseconds; JSON is TEXT.

-- What campaigns select devices by and the state keeps in its JSON: the last subdivision,
-- the first activation's country and the countries seen (",AE,IR,"), as columns that every
-- save of a state keeps in step (storage/devices.py), filled here from the stored states.
ALTER TABLE devices ADD COLUMN last_subdivision TEXT;
ALTER TABLE devices ADD COLUMN first_country TEXT;
ALTER TABLE devices ADD COLUMN seen_in TEXT;
UPDATE devices SET
    last_subdivision = state::jsonb ->> 'last_subdivision',
    first_country = state::jsonb ->> 'first_country',
    seen_in = (
        SELECT ',' || string_agg(code, ',' ORDER BY code) || ','
        FROM (
            SELECT c AS code
            FROM jsonb_each(COALESCE(devices.state::jsonb -> 'presence', '{}'::jsonb)) AS p,
                 jsonb_array_elements_text(p.value) AS c
            WHERE length(c) = 2
            UNION
            SELECT devices.state::jsonb ->> 'first_country' AS code
            WHERE devices.state::jsonb ->> 'first_country' IS NOT NULL
        ) AS codes
    )
WHERE state <> '{}';
CREATE INDEX devices_last_subdivision ON devices (last_subdivision);
CREATE INDEX devices_first_country ON devices (first_country);

CREATE TABLE campaigns (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    action       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    message      TEXT,
    contact      TEXT,
    until        TEXT,
    selection    TEXT NOT NULL,
    stages       TEXT NOT NULL,
    state        TEXT NOT NULL,
    state_reason TEXT,
    stage        INTEGER NOT NULL DEFAULT 0,
    -- The frozen target set: how many, per stage (JSON list), and SHA-256 of the sorted ids.
    targets      BIGINT NOT NULL DEFAULT 0,
    stage_sizes  TEXT NOT NULL DEFAULT '[]',
    digest       TEXT NOT NULL DEFAULT '',
    applied      BIGINT NOT NULL DEFAULT 0,
    skipped      BIGINT NOT NULL DEFAULT 0,
    errors       BIGINT NOT NULL DEFAULT 0,
    stage_errors BIGINT NOT NULL DEFAULT 0,
    -- The runner holding the campaign, until when (a dead runner's lease expires).
    lease_owner  TEXT,
    lease_until  BIGINT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    approved_by  TEXT,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX campaigns_created ON campaigns (created_at);

-- One row per targeted device; no foreign key to devices: a device deleted since creation
-- stays listed (and is skipped).
CREATE TABLE campaign_targets (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    device_id   TEXT NOT NULL,
    stage       INTEGER NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    detail      TEXT,
    applied_at  BIGINT,
    PRIMARY KEY (campaign_id, device_id)
);
CREATE INDEX campaign_targets_work ON campaign_targets (campaign_id, status, stage, device_id);
