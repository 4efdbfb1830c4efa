-- The check-in history partitioned by time (issue 16, docs/operating.md "Partitions"): one
-- partition per UTC month, so that retention drops a month whole instead of deleting its rows
-- one by one, and look-ups of recent check-ins read recent partitions.
--
-- The table as it was becomes the first partition, `checkins_legacy`, bounded by its newest
-- row: no row is copied and no index rebuilt (attaching it reads it once, to check the bound).
-- Each partition has its own primary key (id) and its own UNIQUE (device_id, nonce): a
-- partitioned table's unique constraints must include the partition key, which would make
-- them useless here. Ids come from one sequence, so they stay unique across partitions;
-- replays are refused by the device's counter under its row lock, the nonce look-up and this
-- per-month constraint (docs/protocol.md). Rows outside every month partition (a clock far
-- ahead, a month not prepared yet) go to `checkins_default`; the service prepares the
-- current month and the next two (storage/checkins.py, `prepare_partitions`).
ALTER TABLE checkins RENAME TO checkins_legacy;
ALTER TABLE checkins_legacy ALTER COLUMN id DROP IDENTITY;
ALTER INDEX checkins_device_at RENAME TO checkins_legacy_device_at;

CREATE SEQUENCE checkins_id_seq;
SELECT setval('checkins_id_seq', COALESCE((SELECT MAX(id) FROM checkins_legacy), 0) + 1, false);

CREATE TABLE checkins (
    id             BIGINT NOT NULL DEFAULT nextval('checkins_id_seq'),
    device_id      TEXT NOT NULL REFERENCES devices (id),
    at             BIGINT NOT NULL,
    counter        BIGINT NOT NULL,
    nonce          TEXT NOT NULL,
    country        TEXT,
    subdivision    TEXT,
    confidence     DOUBLE PRECISION NOT NULL,
    flags          TEXT NOT NULL,
    signal_kinds   TEXT NOT NULL,
    verdict        TEXT NOT NULL,
    reasons        TEXT NOT NULL,
    policy_id      TEXT,
    policy_version TEXT,
    subdivision_candidates TEXT
) PARTITION BY RANGE (at);
ALTER SEQUENCE checkins_id_seq OWNED BY checkins.id;
CREATE INDEX checkins_device_at ON checkins (device_id, at);

DO $$
DECLARE
    bound BIGINT;
BEGIN
    SELECT COALESCE(MAX(at) + 1, 0) INTO bound FROM checkins_legacy;
    EXECUTE format(
        'ALTER TABLE checkins ATTACH PARTITION checkins_legacy FOR VALUES FROM (MINVALUE) TO (%s)',
        bound
    );
END $$;

CREATE TABLE checkins_default (LIKE checkins INCLUDING DEFAULTS);
ALTER TABLE checkins_default ADD PRIMARY KEY (id);
ALTER TABLE checkins_default ADD UNIQUE (device_id, nonce);
ALTER TABLE checkins ATTACH PARTITION checkins_default DEFAULT;
