-- Reverting a campaign (issue 12): what each applied target held before, and which campaign a
-- revert undoes.

-- The campaign a revert undoes (NULL for every other campaign).
ALTER TABLE campaigns ADD COLUMN reverts TEXT;
-- 1 when the targets were given (a device list, a revert) rather than selected from the fleet:
-- such a campaign cannot gain devices by the fleet changing, only lose them.
ALTER TABLE campaigns ADD COLUMN explicit INTEGER NOT NULL DEFAULT 0;
-- The slots an applied target's action replaced (a device state's JSON holding only them),
-- NULL when they were empty: what a revert puts back.
ALTER TABLE campaign_targets ADD COLUMN before TEXT;
CREATE INDEX campaigns_runnable ON campaigns (state, lease_until);
-- The runner's work index without the status: marking a target then changes no indexed column
-- (PostgreSQL can update it in place, and no dead "pending" entries pile up in the index); the
-- runner walks a stage from the last target it handled (storage/campaigns.py, pending_chunk).
DROP INDEX campaign_targets_work;
CREATE INDEX campaign_targets_work ON campaign_targets (campaign_id, stage, device_id);
