"""The owner's data (docs/privacy.md): export everything held about a device, erase it with a
signed receipt, and delete old check-in rows (retention), daily in the service.

Erasure in one transaction: the rows naming the device are deleted or rewritten
(`PrivacyStore.erase`), the audit entries naming it redacted (`AuditStore.redact`, which keeps
the chain verifiable), an audit entry records the erasure and claims the redactions, and a
tombstone keeps the signed receipt. Then the store is scrubbed (`PrivacyStore.scrub`) so that
free pages and logs do not keep what was removed.

Retention in chunks, each one transaction: the oldest check-in rows past the setting are read,
the days of presence they carry that the policy may still read are folded into their devices'
states (normally already there: every check-in records its day), and the rows are deleted.
Nothing else is kept as a checkpoint: the rows left are the work left, so a run killed anywhere
and run again deletes each row once, and several processes may run it at once.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from regionlock.domain.device import (
    PRESENCE_RETENTION_DAYS,
    DeviceState,
    checkin_presence,
    device_id,
    parse_imei,
)
from regionlock.domain.errors import InvalidInput, NotFound, Unavailable
from regionlock.policies import parse_policy
from regionlock.services.registry import UnknownDevice, device_json
from regionlock.signing.erasure import erasure_receipt_claims, sign_erasure_receipt
from regionlock.storage import AuditStore, DeviceStore, KeyStore, PolicyStore, Stores, Transactions
from regionlock.storage.analytics import AnalyticsSource
from regionlock.storage.audit import ERASE_ACTION
from regionlock.storage.db import Transaction, epoch_ms
from regionlock.storage.privacy import OldCheckin, PrivacyStore, Tombstone, device_digest

log = logging.getLogger(__name__)

EXPORT_FORMAT = "regionlock-device-export/1"
RETENTION_DAYS = 180
RETENTION_CHUNK = 5000
RETENTION_JOB = "retention"
# The tables an erasure changes: what PostgreSQL vacuums afterwards.
ERASED_TABLES = (
    "checkins",
    "appeals",
    "webhook_deliveries",
    "campaign_targets",
    "device_imeis",
    "devices",
    "audit",
)


class DeviceErased(NotFound):
    """The device was erased: nothing is held about it any more (the receipt id says when)."""


@dataclass(frozen=True, slots=True)
class Erasure:
    """An erasure done: its receipt (claims and signed token) and the key that signed it."""

    receipt_id: str
    claims: Mapping[str, Any]
    token: str
    kid: str


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What a retention run did."""

    cutoff: datetime
    deleted: int
    devices_folded: int  # states that gained days of presence from deleted rows


def _receipt_id() -> str:
    # 130 random bits, as 26 lower-case base32 characters.
    return "era_" + base64.b32encode(secrets.token_bytes(17)).decode("ascii")[:26].lower()


@dataclass(frozen=True)
class Privacy:
    """Export, erasure and retention on the stores they need."""

    db: Transactions
    devices: DeviceStore
    audit: AuditStore
    keys: KeyStore
    policies: PolicyStore
    privacy: PrivacyStore
    # The investigations' copy of the store (storage/analytics.py): dropped at an erasure.
    analytics: AnalyticsSource | None = None

    @classmethod
    def of(cls, stores: Stores) -> Privacy:
        return cls(
            stores.db,
            stores.devices,
            stores.audit,
            stores.keys,
            stores.policies,
            stores.privacy,
            stores.analytics,
        )

    # -- export ------------------------------------------------------------------------------

    def _missing(self, device_key: str) -> NotFound:
        """The error for a key that names no registered device: erased, or unknown."""
        ids = [device_key]
        if device_key.isdigit():  # an IMEI: its id, as the registry derives it
            with suppress(InvalidInput):
                ids.append(device_id(parse_imei(device_key), self.devices.device_id_key()))
        for key in ids:
            tomb = self.privacy.erased(key)
            if tomb is not None:
                at = datetime.fromtimestamp(tomb.erased_at / 1000, UTC).isoformat()
                return DeviceErased(f"that device was erased at {at} (receipt {tomb.id})")
        return UnknownDevice(f"no device with id or IMEI {device_key!r}")

    def export(self, device_key: str, *, now: datetime) -> dict[str, Any]:
        """Everything held about a device (GDPR articles 15 and 20), as one JSON document."""
        found = self.devices.get(device_key)
        if found is None:
            raise self._missing(device_key)
        dev = found.record.id
        rows = self.privacy.export(dev)
        with self.db.read() as tx:
            named = self.audit.naming(tx, dev)
        return {
            "format": EXPORT_FORMAT,
            "exported_at": now.astimezone(UTC).isoformat(),
            "device": device_json(found),
            "checkins": rows["checkins"],
            "verdicts": [e.to_json() for e in named if e.action == "checkin.verdict"],
            "appeals": rows["appeals"],
            "webhook_deliveries": rows["webhook_deliveries"],
            "campaign_targets": rows["campaign_targets"],
            "audit": [e.to_json() for e in named if e.action != "checkin.verdict"],
        }

    # -- erasure -----------------------------------------------------------------------------

    def erase(self, device_key: str, *, reason: str, actor: str, now: datetime) -> Erasure:
        """Erase a device (docs/privacy.md): its identifiers and history removed, audit entries
        naming it redacted, a signed receipt returned. The reason goes to the audit trail and
        must not name the device (it is not redacted)."""
        if not reason.strip():
            raise InvalidInput("a reason is required (it goes into the audit trail)")
        keyring = self.keys.keyring(now)  # before the transaction: it may create a first key
        rid = _receipt_id()
        at = epoch_ms(now)
        if self.devices.get(device_key) is None:
            missing = self._missing(device_key)
            if isinstance(missing, DeviceErased):
                # Erased already, but maybe not scrubbed (a crash, readers holding the log):
                # asking again finishes that.
                self.privacy.scrub(ERASED_TABLES)
            raise missing
        with self.db.write() as tx:
            found = self.devices.lock_for_update(tx, device_key)
            if found is None:  # erased meanwhile by someone else
                raise UnknownDevice(f"no device with id or IMEI {device_key!r}")
            dev = found.record.id
            removed = dict(self.privacy.erase(tx, dev, rid))
            named = self.audit.naming(tx, dev)
            redacted = self.audit.redact(tx, [e.seq for e in named], rid)
            removed["audit_redacted"] = len(redacted)
            # Entries written before audit format v2 cannot be redacted in place (docs/audit.md).
            removed["audit_unredactable"] = len(named) - len(redacted)
            entry = self.audit.append(
                tx,
                at=at,
                actor=actor,
                action=ERASE_ACTION,
                subject=f"erasure:{rid}",
                reason=reason,
                details={"receipt": rid, "removed": removed, "redacted": redacted},
            )
            claims = erasure_receipt_claims(
                rid, device_digest(dev), removed, entry.seq, entry.hash, now
            )
            token = sign_erasure_receipt(claims, keyring)
            self.privacy.record_erasure(tx, dev, Tombstone(rid, at, actor, reason, removed, token))
        self.privacy.scrub(ERASED_TABLES)
        if self.analytics is not None:
            self.analytics.discard()  # it copied the device's IMEIs and check-ins
        return Erasure(rid, claims, token, keyring.active.kid)

    # -- retention ---------------------------------------------------------------------------

    def _presence_kept_from(self, today: date) -> date:
        """The oldest day of presence a state keeps: the longer of the presence retention and
        the active policy's longest presence window (as `DeviceState.after_checkin`)."""
        keep = PRESENCE_RETENTION_DAYS
        activation = self.policies.active()
        if activation is not None:
            policy = parse_policy(activation.policy.document, activation.policy.policy_id)
            keep = max([keep, *(r.presence.window_days for r in policy.restrictions)])
        return today - timedelta(days=keep - 1)

    def pending_retention(self, *, days: int, now: datetime) -> int:
        """How many check-in rows a retention run with `days` would delete now."""
        return self.privacy.count_old_checkins(epoch_ms(now - timedelta(days=days)))

    def run_retention(
        self,
        *,
        days: int,
        now: datetime,
        chunk: int = RETENTION_CHUNK,
        progress: Callable[[int], None] | None = None,
    ) -> RetentionReport:
        """Delete check-in rows older than `days`, their days of presence folded into the
        device states first; `progress` gets the rows deleted by each chunk."""
        if days < 1:
            raise InvalidInput(f"retention of {days} days: expected at least 1")
        cutoff = now - timedelta(days=days)
        oldest = self._presence_kept_from(now.astimezone(UTC).date())
        deleted = folded = 0
        # PostgreSQL: months wholly past the cutoff are folded and then dropped whole.
        for part in self.privacy.expired_partitions(epoch_ms(cutoff)):
            after = n = 0
            while True:
                with self.db.write() as tx:
                    rows = self.privacy.old_checkins(
                        tx, epoch_ms(cutoff), chunk, partition=part.name, after=after
                    )
                    if not rows:
                        self.privacy.drop_partition(tx, part.name)
                        break
                    folded += self._fold(tx, rows, oldest)
                after, n = rows[-1].id, n + len(rows)
                if progress is not None:
                    progress(len(rows))
            deleted += n
        # The rest, and SQLite: row by row.
        while True:
            with self.db.write() as tx:
                rows = self.privacy.old_checkins(tx, epoch_ms(cutoff), chunk)
                if not rows:
                    break
                folded += self._fold(tx, rows, oldest)
                n = self.privacy.delete_checkins(tx, [r.id for r in rows])
            deleted += n
            if progress is not None:
                progress(n)
        return RetentionReport(cutoff, deleted, folded)

    def _fold(self, tx: Transaction, rows: Sequence[OldCheckin], oldest: date) -> int:
        """Fold the days of presence of old check-ins into their devices' states (before the
        rows go); how many states changed. Folding the same rows twice changes nothing, so a
        run killed between a fold and its delete or drop is safe to run again."""
        days_of: dict[str, dict[date, frozenset[str]]] = {}
        for r in rows:
            day = datetime.fromtimestamp(r.at / 1000, UTC).date()
            codes = checkin_presence(r.country, r.subdivision, r.candidates, r.flags)
            if codes and day >= oldest:
                seen = days_of.setdefault(r.device_id, {})
                seen[day] = seen.get(day, frozenset()) | codes
        if not days_of:
            return 0
        updates: list[tuple[str, int, DeviceState]] = []
        for dev, (state, version) in self.devices.lock_states(tx, list(days_of)).items():
            new = state.fold_presence(days_of[dev], oldest)
            if new is not state:
                updates.append((dev, version, new))
        self.devices.save_states(tx, updates)
        return len(updates)

    def run_retention_if_due(
        self,
        *,
        days: int,
        now: datetime,
        owner: str,
        every: timedelta = timedelta(days=1),
        progress: Callable[[int], None] | None = None,
    ) -> RetentionReport | None:
        """Run retention if no process has in the last `every` (the daily job); None if not
        due or another process holds it. A run killed half-way is taken up after an hour."""
        at = epoch_ms(now)
        if not self.privacy.claim_job(RETENTION_JOB, at, 3_600_000, owner):
            return None
        report = self.run_retention(days=days, now=now, progress=progress)
        self.privacy.finish_job(
            RETENTION_JOB,
            owner,
            epoch_ms(datetime.now(UTC)),
            at + int(every.total_seconds() * 1000),
            f"deleted {report.deleted} check-ins older than {report.cutoff.isoformat()}",
        )
        return report


class _Stopping(Exception):
    """Raised between chunks to leave a run at shutdown (its claim lapses; it resumes)."""


class RetentionRunner:
    """One daemon thread per service process that runs the daily retention job when it is due
    (the store's claim makes one process run it a day). Errors are logged and retried.

    `before`, if given, runs first at every wake-up, with the time and a "stopping?" test:
    work that must see the check-ins before retention deletes them (the overview's daily
    snapshots, services/overview.py)."""

    def __init__(
        self,
        privacy: Privacy,
        *,
        days: int,
        owner: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_s: float = 600.0,
        before: Callable[[datetime, Callable[[], bool]], object] | None = None,
    ) -> None:
        self.privacy = privacy
        self.before = before
        self.days = days
        self.owner = owner
        self.clock = clock
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    def start(self) -> RetentionRunner:
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the chunk in flight."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _between(self, _: int) -> None:
        if self._stop.is_set():
            raise _Stopping

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.before is not None:
                try:
                    self.before(self.clock(), self._stop.is_set)
                except Unavailable as exc:
                    log.warning("daily work before retention not run: %s", exc)
                except Exception:
                    log.exception("daily work before retention failed")
            try:
                report = self.privacy.run_retention_if_due(
                    days=self.days, now=self.clock(), owner=self.owner, progress=self._between
                )
                if report is not None:
                    log.info("retention: deleted %d check-ins", report.deleted)
            except _Stopping:
                return
            except Unavailable as exc:
                log.warning("retention not run: %s", exc)
            except Exception:
                log.exception("retention run failed")
            self._stop.wait(self.poll_s)
