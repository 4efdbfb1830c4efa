"""The audit trail: append-only, tamper-evident (each entry commits to the previous one).

hash_n commits to entry n's fields and to hash_{n-1}; the first entry commits to "". Editing,
deleting or reordering any entry breaks every hash after it, and `verify` names the first entry
that does not match. Two formats (docs/audit.md, "Redaction"):

- v1 (entries written before migration 0010): hash_n = SHA-256 of the canonical JSON of all the
  fields with hash_{n-1} (`entry_hash`). Cannot be redacted without breaking the chain.
- v2: the personal part (actor, subject, reason, details) is committed through a salted digest,
  content_n = SHA-256(["regionlock/audit-content/v2", salt, actor, subject, reason, details]),
  and hash_n = SHA-256(["regionlock/audit-entry/v2", seq, at, action, content_n, hash_{n-1}])
  (`content_digest`, `entry_hash_v2`). Erasure *redacts* such an entry: the personal part and
  the salt are removed, the stored content digest stays, and the chain still verifies. The
  random salt keeps the digest from confirming a guessed IMEI or device id. A redaction must be
  claimed by a later entry (`details["redacted"]`, written by the erasure): `verify` refuses a
  redacted entry that no later entry claims, so nobody can quietly "redact" an entry away.

The head row (`audit_head`: the last entry's number and hash, moved in the same transaction as
every append) anchors the end: `verify` refuses a trail whose head is missing, reset, behind or
ahead of the last entry, so cutting entries off the end shows unless the head is rolled back
with them. Someone who can write the database can still rewrite the trail from any entry on and
recompute every hash and the head: only a head kept outside the database (`verify(against=...)`,
`regionlock audit head`) shows that. docs/audit.md says what is and is not detected.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
    # v2 entries (docs/audit.md, "Redaction"): the salted digest of actor, subject, reason and
    # details, and its salt; both None for a v1 entry, the salt None once redacted.
    content_digest: str | None = None
    salt: str | None = None
    redacted: str | None = None  # the erasure that redacted it (its receipt id), if any

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
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
        # What recomputing a v2 hash needs (docs/audit.md): the digest, and while the entry is
        # not redacted, the salt (which adds nothing to the content it sits beside).
        if self.content_digest is not None:
            doc["content_digest"] = self.content_digest
            doc["salt"] = self.salt
        if self.redacted is not None:
            doc["redacted"] = self.redacted
        return doc

    def computed_hash(self) -> str:
        """The hash this entry's stored fields give (its format's); `hash` if untouched."""
        if self.content_digest is None:
            return entry_hash(
                self.seq,
                self.at,
                self.actor,
                self.action,
                self.subject,
                self.reason,
                self.details,
                self.prev_hash,
            )
        return entry_hash_v2(self.seq, self.at, self.action, self.content_digest, self.prev_hash)

    def content_matches(self) -> bool:
        """Whether a v2 entry's content still gives its digest; a redacted one must show
        nothing but the redaction (its digest then stands for the removed content); a v1
        entry's content is in its hash."""
        if self.content_digest is None:
            return True
        if self.salt is None:
            shown = (self.actor, self.subject, self.reason, dict(self.details))
            return self.redacted is not None and shown == _REDACTED_CONTENT
        digest = content_digest(self.salt, self.actor, self.subject, self.reason, self.details)
        return digest == self.content_digest


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


def _sha256_json(value: Any) -> str:
    body = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def content_digest(
    salt: str, actor: str, subject: str, reason: str, details: Mapping[str, Any]
) -> str:
    """A v2 entry's commitment to its redactable part (module docstring)."""
    return _sha256_json(["regionlock/audit-content/v2", salt, actor, subject, reason, details])


def entry_hash_v2(seq: int, at: int, action: str, content: str, prev_hash: str) -> str:
    """A v2 entry's hash: its number, time, action, content digest and the previous hash."""
    return _sha256_json(["regionlock/audit-entry/v2", seq, at, action, content, prev_hash])


# What a redacted entry shows instead of its personal part: nothing.
REDACTED_ACTOR = REDACTED_SUBJECT = REDACTED_REASON = ""
_REDACTED_CONTENT: tuple[str, str, str, dict[str, Any]] = ("", "", "", {})
# The action of the entry that claims redactions (`details["redacted"]`): an erasure.
ERASE_ACTION = "device.erase"


@dataclass(frozen=True, slots=True)
class AuditHead:
    """Where the chain ends: the last entry's number, hash and time (0, "" and None before the
    first entry). What an outsider keeps to check later that the trail still extends it."""

    seq: int
    hash: str
    at: int | None = None  # the last entry's time, UTC epoch ms; not compared by `verify`


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What `verify` found: `ok`, how many entries checked out, and otherwise the first entry
    it cannot vouch for (None when no single entry is to blame) and what is wrong."""

    ok: bool
    checked: int
    first_broken: int | None = None
    problem: str = ""
    head: AuditHead | None = None  # the end of the verified chain, when ok


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

    def page(self, tx: Transaction, *, after: int, limit: int) -> list[AuditEntry]:
        """As `entries`, read in the caller's transaction (a writer that acts on them)."""
        ...

    def recent(
        self,
        *,
        before: int | None = None,
        subject: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """The latest entries before sequence number `before` (None: the newest), newest
        first, about `subject` and of `action` if given (a console's page of the trail)."""
        ...

    def iter_all(self, batch: int = 5000) -> Iterator[AuditEntry]:
        """Every entry, oldest first, read in batches."""
        ...

    def naming(self, tx: Transaction, device_id: str) -> list[AuditEntry]:
        """Entries whose actor, subject or details name `device_id`, oldest first."""
        ...

    def redact(self, tx: Transaction, seqs: Sequence[int], marker: str) -> list[int]:
        """Remove the personal part (actor, subject, reason, details) and the salt of these v2
        entries, keeping their content digest and hash, marked with `marker` (the erasure's
        receipt id); returns the seqs redacted. v1 entries cannot be and are left as they are.
        The caller appends, in the same transaction, an entry whose `details["redacted"]` lists
        them: `verify` refuses a redaction no later entry claims."""
        ...

    def verify(self, *, against: AuditHead | None = None) -> VerifyResult:
        """Check the whole chain and the head row; the first entry that does not match is named.

        Broken: an entry missing, out of order, altered, or not committing to the one before;
        a redacted entry that no later entry claims (module docstring);
        the head row missing while there are entries, or not naming the last entry and its hash
        (entries cut off the end, the head reset or rolled back, entries after the head). An
        empty trail without a head row is intact. With `against` (a head kept outside the
        database), the trail must also still hold that head's entry with that hash, which
        shows a rewrite or a cut made together with the head. Appends while it runs are fine.
        """
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
            salt = secrets.token_hex(16)
            content = content_digest(salt, e.actor, e.subject, e.reason, e.details)
            digest = entry_hash_v2(seq, e.at, e.action, content, prev)
            out.append(
                AuditEntry(
                    seq,
                    e.at,
                    e.actor,
                    e.action,
                    e.subject,
                    e.reason,
                    e.details,
                    prev,
                    digest,
                    content,
                    salt,
                )
            )
            prev = digest
        rows = [
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
                a.content_digest,
                a.salt,
            )
            for a in out
        ]
        if tx.dialect == "postgresql" and len(rows) > 1:
            # Many entries (a campaign's chunk, a group of check-ins) in one statement, the
            # columns as arrays: 14 instead of 22 us an entry for a chunk of 1,000.
            tx.execute(
                "INSERT INTO audit (seq, at, actor, action, subject, reason, details, prev_hash,"
                " hash, content_digest, salt) SELECT * FROM unnest(?::bigint[], ?::bigint[],"
                " ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],"
                " ?::text[], ?::text[])",
                [list(column) for column in zip(*rows, strict=True)],
                arrays=True,
            )
        else:
            tx.executemany(
                "INSERT INTO audit (seq, at, actor, action, subject, reason, details, prev_hash,"
                " hash, content_digest, salt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        tx.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE one = 1", (seq, prev))
        return out

    def _rows(self, after: int, subject: str | None, limit: int) -> list[AuditEntry]:
        with self.db.read() as tx:
            return _page(tx, after, subject, limit)

    def entries(
        self, *, after: int = 0, subject: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        return self._rows(after, subject, limit)

    def page(self, tx: Transaction, *, after: int, limit: int) -> list[AuditEntry]:
        return _page(tx, after, None, limit)

    def recent(
        self,
        *,
        before: int | None = None,
        subject: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        where = " WHERE seq < ?"
        params: list[Any] = [before if before is not None else 2**63 - 1]
        for column, value in (("subject", subject), ("action", action)):
            if value is not None:
                where += f" AND {column} = ?"
                params.append(value)
        with self.db.read() as tx:
            return _select(tx, where + " ORDER BY seq DESC LIMIT ?", [*params, limit])

    def iter_all(self, batch: int = 5000) -> Iterator[AuditEntry]:
        after = 0
        while True:
            chunk = self._rows(after, None, batch)
            if not chunk:
                return
            yield from chunk
            after = chunk[-1].seq

    def naming(self, tx: Transaction, device_id: str) -> list[AuditEntry]:
        # Device ids are 28 characters of an HMAC: a substring match in the details' text finds
        # the entries that name one and nothing else.
        return _select(
            tx,
            " WHERE subject = ? OR actor = ? OR details LIKE ? ORDER BY seq",
            [device_id, f"device:{device_id}", f"%{device_id}%"],
        )

    def redact(self, tx: Transaction, seqs: Sequence[int], marker: str) -> list[int]:
        done: list[int] = []
        for i in range(0, len(seqs), 500):
            part = list(seqs[i : i + 500])
            marks = ", ".join("?" * len(part))
            rows = tx.all(
                f"SELECT seq FROM audit WHERE seq IN ({marks}) AND content_digest IS NOT NULL",
                part,
            )
            found = sorted(int(r[0]) for r in rows)
            if not found:
                continue
            marks = ", ".join("?" * len(found))
            tx.execute(
                "UPDATE audit SET actor = ?, subject = ?, reason = ?, details = '{}', salt = NULL,"
                f" redacted = ? WHERE seq IN ({marks})",
                [REDACTED_ACTOR, REDACTED_SUBJECT, REDACTED_REASON, marker, *found],
            )
            done.extend(found)
        return done

    @contextmanager
    def _snapshot(self) -> Iterator[Transaction]:
        """A read transaction in which every statement sees the same committed state (SQLite's
        read transactions do; PostgreSQL's default, READ COMMITTED, does not)."""
        with self.db.read() as tx:
            if tx.dialect == "postgresql":
                tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield tx

    def verify(self, *, against: AuditHead | None = None) -> VerifyResult:
        """Walk the chain from the start; name the first entry that does not match."""
        walk = _Walk(against)
        for e in self.iter_all():
            if (broken := walk.step(e)) is not None:
                return broken
        # The head and what was appended since the walk's last page, read together: an append
        # moves both in one transaction, so a busy service never looks cut short.
        with self._snapshot() as tx:
            row = tx.one("SELECT seq, hash FROM audit_head WHERE one = 1")
            while page := _page(tx, walk.end.seq, None, 5000):
                for e in page:
                    if (broken := walk.step(e)) is not None:
                        return broken
        return walk.finish(None if row is None else (int(row[0]), str(row[1])))


_SELECT = (
    "SELECT seq, at, actor, action, subject, reason, details, prev_hash, hash, content_digest,"
    " salt, redacted FROM audit"
)


def _select(tx: Transaction, where: str, params: Sequence[Any]) -> list[AuditEntry]:
    return [
        AuditEntry(
            int(r[0]),
            int(r[1]),
            r[2],
            r[3],
            r[4],
            r[5],
            json.loads(r[6]),
            r[7],
            r[8],
            r[9],
            r[10],
            r[11],
        )
        for r in tx.all(_SELECT + where, params)
    ]


def _page(tx: Transaction, after: int, subject: str | None, limit: int) -> list[AuditEntry]:
    where = " WHERE seq > ?"
    params: list[Any] = [after]
    if subject is not None:
        where += " AND subject = ?"
        params.append(subject)
    where += " ORDER BY seq LIMIT ?"
    params.append(limit)
    return _select(tx, where, params)


def redaction_claims(e: AuditEntry) -> list[int]:
    """The entries an erasure entry says it redacted (`details["redacted"]`), else []."""
    if e.action != ERASE_ACTION or e.redacted is not None:
        return []
    claimed = e.details.get("redacted")
    if not isinstance(claimed, list):
        return []
    return [n for n in claimed if isinstance(n, int) and not isinstance(n, bool) and n < e.seq]


class _Walk:
    """`verify`'s state: the chain checked so far, one entry at a time, then its end."""

    def __init__(self, against: AuditHead | None) -> None:
        if against is not None and (against.seq < 0 or (against.seq == 0) != (not against.hash)):
            raise ValueError(f"not a head: {against}")
        self.against = against
        self.end = AuditHead(0, "")
        self.redacted: set[int] = set()  # redacted entries not yet claimed by a later one

    def _broken(self, at: int | None, problem: str) -> VerifyResult:
        return VerifyResult(False, self.end.seq, at, problem)

    def step(self, e: AuditEntry) -> VerifyResult | None:
        """None if `e` continues the chain (which then ends at `e`), else what is wrong."""
        expected = self.end.seq + 1
        if e.seq != expected:
            return self._broken(expected, f"entry {expected} is missing (next is {e.seq})")
        if e.prev_hash != self.end.hash:
            return self._broken(e.seq, f"entry {e.seq} does not follow entry {e.seq - 1}")
        if e.computed_hash() != e.hash or not e.content_matches():
            return self._broken(e.seq, f"entry {e.seq} was altered (its hash does not match)")
        if e.redacted is not None:
            self.redacted.add(e.seq)
        self.redacted.difference_update(redaction_claims(e))
        kept = self.against
        if kept is not None and e.seq == kept.seq and e.hash != kept.hash:
            # Entries 1..seq agree with each other, so some of them were rewritten as a whole.
            return self._broken(
                e.seq,
                f"entry {e.seq} is not the one in the kept head (hash {kept.hash[:12]}..., now"
                f" {e.hash[:12]}...): the trail was rewritten at or before entry {e.seq}",
            )
        self.end = AuditHead(e.seq, e.hash, e.at)
        return None

    def finish(self, head: tuple[int, str] | None) -> VerifyResult:
        """The verdict on the whole chain, given the head row (seq, hash), or None if absent."""
        n, last = self.end.seq, self.end.hash
        if head is None:
            if n:
                return self._broken(
                    None, f"the head row is missing (deleted?) but the trail has {n} entries"
                )
        elif head[0] > n:
            return self._broken(
                n + 1,
                f"the chain ends at entry {n} but its head says {head[0]}: entries were removed"
                " from the end",
            )
        elif head[0] == 0 and n:
            return self._broken(1, f"the head row was reset but the trail has {n} entries")
        elif head[0] < n:
            after = f"entry {n} comes" if head[0] + 1 == n else f"entries {head[0] + 1} to {n} come"
            return self._broken(
                head[0] + 1,
                f"{after} after the head (entry {head[0]}): the head was rolled back, or they"
                " were added behind its back",
            )
        elif head[1] != last:
            if not n:
                return self._broken(None, "the trail is empty but its head names an entry hash")
            return self._broken(
                n, f"entry {n} does not match the head's hash: it (or the head) was rewritten"
            )
        if self.redacted:
            first = min(self.redacted)
            return self._broken(
                first,
                f"entry {first} is redacted but no later entry records the redaction (an"
                " erasure lists what it redacted)",
            )
        kept = self.against
        if kept is not None and kept.seq > n:
            return self._broken(
                n + 1,
                f"the trail ends at entry {n}, before the kept head's entry {kept.seq}: entries"
                " were removed from the end and the head rolled back with them",
            )
        return VerifyResult(True, n, head=self.end)
