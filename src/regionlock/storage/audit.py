"""The audit trail: append-only, tamper-evident (each entry commits to the previous one).

hash_n = SHA-256 of the canonical JSON of entry n's fields together with hash_{n-1}; the first
entry commits to "". Editing, deleting or reordering any entry breaks every hash after it, and
`verify` names the first entry that does not match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from regionlock.storage.db import Database, Transaction


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded decision or operator action."""

    seq: int
    at: int  # UTC epoch milliseconds
    actor: str  # "device:<id>", "apikey:<id> (<name>)", "cli:<user>", "system"
    action: str  # e.g. "checkin.verdict", "device.lock", "policy.activate"
    subject: str  # what it is about: a device id, a policy id@version, a key id
    reason: str
    details: Mapping[str, Any]  # evidence summary, policy version, ... (never raw signals)
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "reason": self.reason,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to append: what `append_many` numbers and chains."""

    at: int
    actor: str
    action: str
    subject: str
    reason: str
    details: Mapping[str, Any]


def entry_hash(
    seq: int,
    at: int,
    actor: str,
    action: str,
    subject: str,
    reason: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    body = json.dumps(
        [seq, at, actor, action, subject, reason, details, prev_hash],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    first_broken: int | None = None
    problem: str = ""


class AuditStore(Protocol):
    """Append-only audit trail.

    `append` runs inside the caller's write transaction, so an entry is recorded if and only
    if the change it describes is. Entries are numbered 1, 2, ... without gaps, in commit order.
    """

    def append(
        self,
        tx: Transaction,
        *,
        at: int,
        actor: str,
        action: str,
        subject: str,
        reason: str,
        details: Mapping[str, Any],
    ) -> AuditEntry: ...

    def append_many(self, tx: Transaction, entries: Sequence[NewEntry]) -> list[AuditEntry]:
        """Append several entries in order (one read and one write of the head)."""
        ...

    def entries(
        self, *, after: int = 0, subject: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """Entries after sequence number `after`, oldest first, about `subject` if given."""
        ...

    def iter_all(self, batch: int = 5000) -> Iterator[AuditEntry]:
        """Every entry, oldest first, read in batches."""
        ...

    def verify(self) -> VerifyResult:
        """Check the whole chain; the first entry that does not match is named."""
        ...


class SqlAuditStore:
    """The audit trail on SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def append(
        self,
        tx: Transaction,
        *,
        at: int,
        actor: str,
        action: str,
        subject: str,
        reason: str,
        details: Mapping[str, Any],
    ) -> AuditEntry:
        return self.append_many(tx, [NewEntry(at, actor, action, subject, reason, details)])[0]

    def append_many(self, tx: Transaction, entries: Sequence[NewEntry]) -> list[AuditEntry]:
        if not entries:
            return []
        # The head row is the chain's one point of order: locked (PostgreSQL) or covered by
        # the single writer (SQLite) from here to the caller's commit.
        lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
        head = tx.one(f"SELECT seq, hash FROM audit_head WHERE one = 1{lock}")
        assert head is not None, "audit_head row missing: run migrations"
        seq, prev = int(head[0]), str(head[1])
        out: list[AuditEntry] = []
        for e in entries:
            seq += 1
            fields = (e.at, e.actor, e.action, e.subject, e.reason, e.details, prev)
            digest = entry_hash(seq, *fields)
            out.append(AuditEntry(seq, *fields, digest))
            prev = digest
        tx.executemany(
            "INSERT INTO audit (seq, at, actor, action, subject, reason, details, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    a.seq,
                    a.at,
                    a.actor,
                    a.action,
                    a.subject,
                    a.reason,
                    json.dumps(a.details, sort_keys=True, ensure_ascii=False),
                    a.prev_hash,
                    a.hash,
                )
                for a in out
            ],
        )
        tx.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE one = 1", (seq, prev))
        return out

    def _rows(self, after: int, subject: str | None, limit: int) -> list[AuditEntry]:
        sql = (
            "SELECT seq, at, actor, action, subject, reason, details, prev_hash, hash"
            " FROM audit WHERE seq > ?"
        )
        params: list[Any] = [after]
        if subject is not None:
            sql += " AND subject = ?"
            params.append(subject)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        with self.db.read() as tx:
            rows = tx.all(sql, params)
        return [
            AuditEntry(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8])
            for r in rows
        ]

    def entries(
        self, *, after: int = 0, subject: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        return self._rows(after, subject, limit)

    def iter_all(self, batch: int = 5000) -> Iterator[AuditEntry]:
        after = 0
        while True:
            chunk = self._rows(after, None, batch)
            if not chunk:
                return
            yield from chunk
            after = chunk[-1].seq

    def verify(self) -> VerifyResult:
        """Walk the chain from the start; name the first entry that does not match."""
        prev, expected_seq, checked = "", 1, 0
        for e in self.iter_all():
            if e.seq != expected_seq:
                return VerifyResult(
                    False,
                    checked,
                    expected_seq,
                    f"entry {expected_seq} is missing (next is {e.seq})",
                )
            if e.prev_hash != prev:
                return VerifyResult(
                    False, checked, e.seq, f"entry {e.seq} does not follow entry {e.seq - 1}"
                )
            if (
                entry_hash(
                    e.seq, e.at, e.actor, e.action, e.subject, e.reason, e.details, e.prev_hash
                )
                != e.hash
            ):
                return VerifyResult(
                    False, checked, e.seq, f"entry {e.seq} was altered (its hash does not match)"
                )
            prev, expected_seq, checked = e.hash, e.seq + 1, checked + 1
        with self.db.read() as tx:
            head = tx.one("SELECT seq, hash FROM audit_head WHERE one = 1")
        if head is not None and (int(head[0]), str(head[1])) != (checked, prev):
            return VerifyResult(
                False,
                checked,
                checked + 1 if int(head[0]) > checked else checked,
                f"the chain ends at entry {checked} but its head says "
                f"{int(head[0])}: entries were removed from the end",
            )
        return VerifyResult(True, checked)
