-- What the console looks up (issue 15, docs/console.md): a device by its serial number, and
-- the audit trail's latest entries of one action.
CREATE INDEX devices_serial ON devices (serial);
CREATE INDEX audit_action ON audit (action, seq);
