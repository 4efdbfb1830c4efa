"""The owner's data (docs/privacy.md): what is held about one device, its erasure, the
retention of check-in rows, and the daily jobs that run it.

Contract (both backends, one conformance suite):
- `export` reads every row that names a device in one snapshot; a missing device gives empty
  lists (the caller looks the registry row up itself).
- `erase` runs in the caller's write transaction and removes or rewrites every row naming the
  device outside the audit trail (which `AuditStore.redact` handles): check-ins, IMEIs, the
  registry row, appeals; webhook deliveries whose body names it get their body replaced (a
  pending one is dropped, never sent redacted); campaign targets keep their place under a
  pseudonym unrelated to the device. It records a tombstone holding only the SHA-256 of the
  device id. Erasing twice: the second finds nothing (`erased` answers for the id).
- `scrub` (outside any transaction) makes removed rows unrecoverable from the database files
  where the backend allows it: SQLite rewrites the file (VACUUM) and empties its write-ahead
  log; PostgreSQL vacuums the tables (docs/privacy.md says what it cannot guarantee).
- `old_checkins` / `delete_checkins`: retention works in chunks, oldest id first; deleting is
  idempotent, so a run killed anywhere and run again deletes each row once.
- `claim_job` is a compare-and-set on the job's `next_at`: of several processes, one gets it;
  a claim lapses after its lease, so a killed run is taken up again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from regionlock.domain.decision import split_candidates
from regionlock.storage.checkins import PARTITION_NAME, Partition, partitions
from regionlock.storage.db import Database, Transaction

# What a queued webhook body naming an erased device becomes.
REDACTED_BODY = '{"redacted":true}'


def device_digest(device_id: str) -> str:
    """The tombstone's key: SHA-256 of the device id (hex)."""
    return hashlib.sha256(device_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class OldCheckin:
    """A check-in row retention is about to delete: what its day of presence needs."""

    id: int
    device_id: str
    at: int  # UTC epoch ms
    country: str | None
    subdivision: str | None
    candidates: tuple[str, ...]
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What remains of an erased device: when, by whom, why, what was removed, the receipt."""

    id: str
    erased_at: int
    actor: str
    reason: str
    counts: dict[str, int]
    receipt: str


class PrivacyStore(Protocol):
    """Export, erasure and retention of what is held about devices (module docstring)."""

    def export(self, device_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every check-in, appeal, webhook delivery naming it and campaign target of a device."""
        ...

    def erase(self, tx: Transaction, device_id: str, receipt_id: str) -> dict[str, int]:
        """Remove or rewrite every row naming the device (not the audit trail); counts by kind."""
        ...

    def record_erasure(self, tx: Transaction, device_id: str, tombstone: Tombstone) -> None:
        """Keep the tombstone (the device id itself is not stored, only its digest)."""
        ...

    def erased(self, device_id: str) -> Tombstone | None:
        """The tombstone of the device with this id, if it was erased."""
        ...

    def scrub(self, tables: Sequence[str]) -> None:
        """Make deleted rows unrecoverable from the database files as far as the backend can."""
        ...

    def old_checkins(
        self,
        tx: Transaction,
        before: int,
        limit: int,
        *,
        partition: str | None = None,
        after: int = 0,
    ) -> list[OldCheckin]:
        """Check-ins older than `before` (UTC epoch ms) with an id above `after`, lowest id
        first; only those of one partition of the history if given (PostgreSQL)."""
        ...

    def expired_partitions(self, before: int) -> list[Partition]:
        """The partitions of the check-in history (PostgreSQL: one a month) whose every row
        is older than `before`; none on SQLite."""
        ...

    def drop_partition(self, tx: Transaction, name: str) -> None:
        """Detach and drop one partition of the check-in history, with its rows."""
        ...

    def count_old_checkins(self, before: int) -> int:
        """How many check-ins are older than `before`."""
        ...

    def delete_checkins(self, tx: Transaction, ids: Sequence[int]) -> int:
        """Delete these check-in rows; how many were there."""
        ...

    def claim_job(self, name: str, now: int, lease_ms: int, owner: str) -> bool:
        """Take the job if it is due (`next_at` <= now): it is then not due for `lease_ms`."""
        ...

    def finish_job(self, name: str, owner: str, now: int, next_at: int, result: str) -> None:
        """Record a run's end and when the job is next due (only by the owner of the claim)."""
        ...


class SqlPrivacyStore:
    """The owner's data on SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def export(self, device_id: str) -> dict[str, list[dict[str, Any]]]:
        with self.db.read() as tx:
            if tx.dialect == "postgresql":
                tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            checkins = [
                {
                    "at": _iso(r[0]),
                    "counter": r[1],
                    "nonce": r[2],
                    "country": r[3],
                    "subdivision": r[4],
                    "subdivision_candidates": split_candidates(r[12]) if r[12] else [],
                    "confidence": r[5],
                    "flags": json.loads(r[6]),
                    "signals": json.loads(r[7]),
                    "verdict": r[8],
                    "reasons": json.loads(r[9]),
                    "policy": f"{r[10]}@{r[11]}",
                }
                for r in tx.all(
                    "SELECT at, counter, nonce, country, subdivision, confidence, flags,"
                    " signal_kinds, verdict, reasons, policy_id, policy_version,"
                    " subdivision_candidates FROM checkins WHERE device_id = ? ORDER BY at, id",
                    (device_id,),
                )
            ]
            appeals = [
                {
                    "id": r[0],
                    "created_at": _iso(r[1]),
                    "contact": r[2],
                    "message": r[3],
                    "language": r[4],
                    "status": r[5],
                    "evidence": json.loads(r[6]),
                    "decided_at": _iso(r[7]) if r[7] is not None else None,
                    "decided_by": r[8],
                    "decision_reason": r[9],
                    "exempt_until": r[10],
                }
                for r in tx.all(
                    "SELECT id, created_at, contact, message, language, status, evidence,"
                    " decided_at, decided_by, decision_reason, exempt_until FROM appeals"
                    " WHERE device_id = ? ORDER BY created_at, id",
                    (device_id,),
                )
            ]
            deliveries = [
                {
                    "id": r[0],
                    "endpoint_id": r[1],
                    "event_type": r[2],
                    "created_at": _iso(r[3]),
                    "status": r[4],
                    "body": json.loads(r[5]),
                }
                for r in tx.all(
                    "SELECT id, endpoint_id, event_type, created_at, status, body"
                    " FROM webhook_deliveries WHERE body LIKE ? ORDER BY created_at, id",
                    (f"%{device_id}%",),
                )
            ]
            targets = [
                {
                    "campaign_id": r[0],
                    "stage": r[1],
                    "status": r[2],
                    "applied_at": _iso(r[3]) if r[3] is not None else None,
                }
                for r in tx.all(
                    "SELECT campaign_id, stage, status, applied_at FROM campaign_targets"
                    " WHERE device_id = ? ORDER BY campaign_id",
                    (device_id,),
                )
            ]
        return {
            "checkins": checkins,
            "appeals": appeals,
            "webhook_deliveries": deliveries,
            "campaign_targets": targets,
        }

    def erase(self, tx: Transaction, device_id: str, receipt_id: str) -> dict[str, int]:
        counts = {
            "checkins": tx.execute("DELETE FROM checkins WHERE device_id = ?", (device_id,)),
            "appeals": tx.execute("DELETE FROM appeals WHERE device_id = ?", (device_id,)),
            # Dropped, not sent: a receiver must not get an event with its data cut out.
            "webhook_deliveries": tx.execute(
                "UPDATE webhook_deliveries SET body = ?, status = CASE WHEN status = 'pending'"
                " THEN 'dropped' ELSE status END, last_error = CASE WHEN status = 'pending'"
                " THEN 'device erased' ELSE last_error END, lease_owner = NULL,"
                " lease_until = NULL WHERE body LIKE ?",
                (REDACTED_BODY, f"%{device_id}%"),
            ),
            # The campaign's counts stay right; the row no longer leads to the device.
            "campaign_targets": tx.execute(
                "UPDATE campaign_targets SET device_id = ?, detail = NULL, before = NULL"
                " WHERE device_id = ?",
                (f"erased:{receipt_id}", device_id),
            ),
            "imeis": tx.execute("DELETE FROM device_imeis WHERE device_id = ?", (device_id,)),
            "devices": tx.execute("DELETE FROM devices WHERE id = ?", (device_id,)),
        }
        return counts

    def record_erasure(self, tx: Transaction, device_id: str, tombstone: Tombstone) -> None:
        tx.execute(
            "INSERT INTO device_erasures (id, device_digest, erased_at, actor, reason, counts,"
            " receipt) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                tombstone.id,
                device_digest(device_id),
                tombstone.erased_at,
                tombstone.actor,
                tombstone.reason,
                json.dumps(tombstone.counts, sort_keys=True),
                tombstone.receipt,
            ),
        )

    def erased(self, device_id: str) -> Tombstone | None:
        with self.db.read() as tx:
            r = tx.one(
                "SELECT id, erased_at, actor, reason, counts, receipt FROM device_erasures"
                " WHERE device_digest = ? ORDER BY erased_at DESC, id LIMIT 1",
                (device_digest(device_id),),
            )
        if r is None:
            return None
        return Tombstone(r[0], int(r[1]), r[2], r[3], json.loads(r[4]), r[5])

    def scrub(self, tables: Sequence[str]) -> None:
        self.db.scrub(tables)

    def old_checkins(
        self,
        tx: Transaction,
        before: int,
        limit: int,
        *,
        partition: str | None = None,
        after: int = 0,
    ) -> list[OldCheckin]:
        table = "checkins" if partition is None else _partition_name(partition)
        rows = tx.all(
            "SELECT id, device_id, at, country, subdivision, subdivision_candidates, flags"
            f" FROM {table} WHERE at < ? AND id > ? ORDER BY id LIMIT ?",
            (before, after, limit),
        )
        return [
            OldCheckin(
                int(r[0]),
                r[1],
                int(r[2]),
                r[3],
                r[4],
                tuple(split_candidates(r[5])) if r[5] else (),
                tuple(json.loads(r[6])),
            )
            for r in rows
        ]

    def expired_partitions(self, before: int) -> list[Partition]:
        with self.db.read() as tx:
            found = partitions(tx)
        return [p for p in found if not p.default and p.end is not None and p.end <= before]

    def drop_partition(self, tx: Transaction, name: str) -> None:
        # DETACH locks the parent for a moment (no scan): check-ins wait that long, monthly.
        # Nothing else is locked: the history has no foreign key to `devices` (migration 0016).
        tx.execute(f"ALTER TABLE checkins DETACH PARTITION {_partition_name(name)}")
        tx.execute(f"DROP TABLE {_partition_name(name)}")

    def count_old_checkins(self, before: int) -> int:
        with self.db.read() as tx:
            row = tx.one("SELECT COUNT(*) FROM checkins WHERE at < ?", (before,))
        return int(row[0]) if row else 0

    def delete_checkins(self, tx: Transaction, ids: Sequence[int]) -> int:
        deleted = 0
        for i in range(0, len(ids), 500):
            part = list(ids[i : i + 500])
            marks = ", ".join("?" * len(part))
            deleted += tx.execute(f"DELETE FROM checkins WHERE id IN ({marks})", part)
        return deleted

    def claim_job(self, name: str, now: int, lease_ms: int, owner: str) -> bool:
        with self.db.write() as tx:
            n = tx.execute(
                "UPDATE maintenance_jobs SET next_at = ?, owner = ?, lease_until = ?"
                " WHERE name = ? AND next_at <= ?",
                (now + lease_ms, owner, now + lease_ms, name, now),
            )
        return n == 1

    def finish_job(self, name: str, owner: str, now: int, next_at: int, result: str) -> None:
        with self.db.write() as tx:
            tx.execute(
                "UPDATE maintenance_jobs SET next_at = ?, owner = NULL, lease_until = NULL,"
                " last_done_at = ?, last_result = ? WHERE name = ? AND owner = ?",
                (next_at, now, result, name, owner),
            )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _partition_name(name: str) -> str:
    """`name` if it can only be a partition of the check-in history (it goes into SQL text)."""
    if not PARTITION_NAME.fullmatch(name):
        raise ValueError(f"not a check-in partition: {name!r}")
    return name
