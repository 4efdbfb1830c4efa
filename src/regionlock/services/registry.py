"""Registry use cases: bulk import, operators' lock / unlock / exempt and offline unlock codes,
each audited.

Manual actions change the device's stored state; they take effect at its next check-in, when
the verdict is computed and signed (the device cannot be reached before that).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from regionlock.domain.device import (
    DeviceRecord,
    ManualExemption,
    ManualLock,
    encode_public_key,
)
from regionlock.domain.errors import InvalidInput, NotFound
from regionlock.geo.countries import country_names
from regionlock.services.device_import import ImportProblem, ImportStats, parse_device_rows
from regionlock.signing.unlock import (
    format_challenge,
    normalize_challenge,
    service_secret,
    unlock_code,
)
from regionlock.storage import AuditStore, DeviceStore, KeyStore, Stores, Transactions
from regionlock.storage.db import StoreConflict, epoch_ms
from regionlock.storage.devices import ImportResult, StoredDevice

BATCH = 1000


class UnknownDevice(NotFound):
    """No registered device has this id or IMEI."""


@dataclass
class ImportReport:
    imported: int = 0
    unchanged: int = 0
    duplicates_in_file: int = 0
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Registry:
    """The registry's use cases on the stores they need."""

    db: Transactions
    devices: DeviceStore
    audit: AuditStore
    keys: KeyStore

    @classmethod
    def of(cls, stores: Stores) -> Registry:
        return cls(stores.db, stores.devices, stores.audit, stores.keys)

    def import_csv(
        self,
        lines: Iterable[str],
        *,
        actor: str,
        source: str,
        now: datetime,
        writers: int = 1,
    ) -> ImportReport:
        """Stream an import file into the registry in batches of 1000 (one transaction each).

        With `writers` above 1, that many threads (each its own connection) write batches
        while this one parses the next: batches of one file never touch the same device or
        IMEI (the in-file duplicate check runs first), so they cannot conflict. PostgreSQL
        gains from it; SQLite has one writer and should keep 1 (bench/README.md, "Device
        import").

        A crash loses at most the batches in flight (`writers` + 1), and re-running the same
        file afterwards completes them: imports are idempotent.
        """
        if writers < 1:
            raise InvalidInput(f"{writers} writers: expected at least 1")
        report = ImportReport()
        stats = ImportStats()
        key = self.devices.device_id_key()
        at = epoch_ms(now)

        def write(batch: _Batch) -> list[ImportResult]:
            with self.db.write() as tx:
                return self.devices.import_batch(tx, [r for _, r in batch], at)

        def tally(batch: _Batch, results: list[ImportResult]) -> None:
            for (line, _), result in zip(batch, results, strict=True):
                if result.outcome == "imported":
                    report.imported += 1
                elif result.outcome == "unchanged":
                    report.unchanged += 1
                else:
                    report.problems.append(ImportProblem(line, result.message))

        rows = parse_device_rows(
            lines, known_countries=set(country_names()), id_key=key, stats=stats
        )
        with _Writers(write, tally, writers) as out:
            pending: _Batch = []
            for line, item in rows:
                if isinstance(item, ImportProblem):
                    report.problems.append(item)
                    continue
                pending.append((line, item))
                if len(pending) >= BATCH:
                    out.put(pending)
                    pending = []
            if pending:
                out.put(pending)
        report.duplicates_in_file = stats.duplicates
        report.problems.sort(key=lambda p: p.line)
        with self.db.write() as tx:
            self.audit.append(
                tx,
                at=at,
                actor=actor,
                action="devices.import",
                subject=source,
                reason="bulk import",
                details={
                    "imported": report.imported,
                    "unchanged": report.unchanged,
                    "duplicates_in_file": report.duplicates_in_file,
                    "problems": len(report.problems),
                },
            )
        return report

    def _change(
        self,
        device_key: str,
        action: str,
        reason: str,
        actor: str,
        now: datetime,
        change: Callable[[StoredDevice], StoredDevice | None],
    ) -> StoredDevice:
        if not reason.strip():
            raise InvalidInput("a reason is required (it goes into the audit trail)")

        def once() -> StoredDevice:
            with self.db.write() as tx:
                device = self.devices.lock_for_update(tx, device_key)
                if device is None:
                    raise UnknownDevice(f"no device with id or IMEI {device_key!r}")
                updated = change(device)
                if updated is not None:
                    self.devices.save_state(tx, device, updated.state)
                self.audit.append(
                    tx,
                    at=epoch_ms(now),
                    actor=actor,
                    action=action,
                    subject=device.record.id,
                    reason=reason,
                    details={},
                )
            return device

        # A transaction that loses a conflict kept nothing: it is run once more at once, as
        # check-ins are (a device write can meet retention's partition drop: docs/operating.md,
        # "Partitions").
        try:
            device = once()
        except StoreConflict:
            device = once()
        result = self.devices.get(device.record.id)
        assert result is not None
        return result

    def lock(
        self,
        device_key: str,
        *,
        reason: str,
        actor: str,
        now: datetime,
        message: str | None = None,
        contact: str | None = None,
    ) -> StoredDevice:
        """Lock at the next check-in, whatever the policy says (an exemption still wins).
        `reason` goes to the audit trail; `message` and `contact` to the device's owner."""
        lock = ManualLock(reason, actor, now.astimezone(UTC), message or None, contact or None)
        return self._change(
            device_key,
            "device.lock",
            reason,
            actor,
            now,
            lambda d: replace(d, state=replace(d.state, manual_lock=lock)),
        )

    def unlock(self, device_key: str, *, reason: str, actor: str, now: datetime) -> StoredDevice:
        """Lift a manual lock (the policy decides again at the next check-in)."""
        return self._change(
            device_key,
            "device.unlock",
            reason,
            actor,
            now,
            lambda d: replace(d, state=replace(d.state, manual_lock=None)),
        )

    def exempt(
        self, device_key: str, *, reason: str, actor: str, now: datetime, until: date | None
    ) -> StoredDevice:
        """Exempt from every lock until `until` (exclusive), e.g. after an appeal."""
        if until is not None and until <= now.astimezone(UTC).date():
            raise InvalidInput(f"exemption until {until} is not in the future")
        return self._change(
            device_key,
            "device.exempt",
            reason,
            actor,
            now,
            lambda d: replace(
                d, state=replace(d.state, exemption=ManualExemption(reason, actor, until))
            ),
        )

    def unlock_code(
        self, device_key: str, challenge: str, *, reason: str, actor: str, now: datetime
    ) -> tuple[str, str]:
        """The offline unlock code answering the challenge a locked device shows; returns
        (device id, code). The code lifts the lock on the device only: the next verdict
        decides again, so pair it with an exemption or unlock when the device should stay
        unlocked. Every code issued is audited (the challenge, never the code)."""
        digits = normalize_challenge(challenge)
        if not reason.strip():
            raise InvalidInput("a reason is required (it goes into the audit trail)")
        found = self.devices.get(device_key)
        if found is None:
            raise UnknownDevice(f"no device with id or IMEI {device_key!r}")
        try:
            secret = service_secret(self.keys.unlock_key(now), found.record.public_key)
        except ValueError:
            # Import refuses small-order keys; anything else that gives no shared secret is
            # reported, never a 500.
            raise InvalidInput(
                "this device's registered key cannot derive unlock codes; re-register it"
            ) from None
        code = unlock_code(secret, digits)  # before the audit: an entry means a code was given
        with self.db.write() as tx:
            self.audit.append(
                tx,
                at=epoch_ms(now),
                actor=actor,
                action="device.unlock_code",
                subject=found.record.id,
                reason=reason,
                details={"challenge": format_challenge(digits)},
            )
        return found.record.id, code


def device_json(d: StoredDevice) -> dict[str, Any]:
    r, s = d.record, d.state
    return {
        "id": r.id,
        "imeis": [i.digits for i in r.imeis],
        "tac": r.tac,
        "serial": r.serial,
        "model": r.model,
        "sku": r.sku,
        "sales_region": r.sales_region,
        "distributor": r.distributor,
        "batch": r.batch,
        "manufactured": r.manufactured.isoformat() if r.manufactured else None,
        "shipped": r.shipped.isoformat() if r.shipped else None,
        "public_key": encode_public_key(r.public_key),
        "state": {
            "last_verdict": s.last_verdict.value if s.last_verdict else None,
            "last_country": s.last_country,
            "last_subdivision": s.last_subdivision,
            "last_subdivision_candidates": list(s.last_subdivisions),
            "last_confidence": s.last_confidence,
            "last_checkin_at": s.last_checkin_at.isoformat() if s.last_checkin_at else None,
            "first_country": s.first_country,
            "first_seen_at": s.first_seen_at.isoformat() if s.first_seen_at else None,
            "presence_days": {d.isoformat(): sorted(c) for d, c in s.presence.items()},
            "manual_lock": None
            if s.manual_lock is None
            else {
                "reason": s.manual_lock.reason,
                "by": s.manual_lock.actor,
                "at": s.manual_lock.at.isoformat(),
                "message": s.manual_lock.message,
                "contact": s.manual_lock.contact,
            },
            "exemption": None
            if s.exemption is None
            else {
                "reason": s.exemption.reason,
                "by": s.exemption.actor,
                "until": s.exemption.until.isoformat() if s.exemption.until else None,
            },
        },
    }


_Batch = list[tuple[int, DeviceRecord]]


class _Writers:
    """Batches written by `write` in `count` threads, their results handed to `tally` in the
    order they were put, on the putting thread. With one writer, `write` runs inline: a
    thread there only adds hand-offs of the GIL (a read-ahead thread made imports slower,
    bench/README.md). At most `count` batches are being written and one more waits, so
    memory stays bounded. Leaving the block waits for every batch in flight; the first
    failure is raised there (or at the `put` that found it), and nothing more is put."""

    def __init__(
        self,
        write: Callable[[_Batch], list[ImportResult]],
        tally: Callable[[_Batch, list[ImportResult]], None],
        count: int,
    ) -> None:
        self._write, self._tally, self._count = write, tally, count
        self._pool = (
            ThreadPoolExecutor(count, thread_name_prefix="import-writer") if count > 1 else None
        )
        self._flight: deque[tuple[_Batch, Future[list[ImportResult]]]] = deque()

    def put(self, batch: _Batch) -> None:
        if self._pool is None:
            self._tally(batch, self._write(batch))
            return
        self._flight.append((batch, self._pool.submit(self._write, batch)))
        while len(self._flight) > self._count:
            self._collect()

    def _collect(self) -> None:
        batch, done = self._flight.popleft()
        self._tally(batch, done.result())

    def __enter__(self) -> _Writers:
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if self._pool is None:
            return
        failed = kind is not None
        try:
            while self._flight and not failed:
                self._collect()
        except BaseException:
            failed = True
            raise
        finally:
            # After a failure, batches not started are dropped and those being written are
            # waited for, not tallied: each commits or not on its own, and a re-run
            # completes the file.
            self._pool.shutdown(wait=True, cancel_futures=failed)
