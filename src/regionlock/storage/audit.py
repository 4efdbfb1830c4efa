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

- v3 (since migration 0014): as v2, and the hash commits to the entry's shard as well
  (`entry_hash_v3`).

Shards (docs/audit.md, "Shards and the tree"): an entry joins one of `SHARDS` chains. Each
chain has a head row (`audit_shards`: its last entry's number and hash, moved in the same
transaction as every append to it), locked only by appends to that shard, so appends on
PostgreSQL do not queue on one row. SQLite has one writer: every append goes to shard 0. The
head rows anchor each chain's end: `verify` refuses a shard whose head is missing, reset,
behind or ahead of its last entry.

The tree: `seal` puts the settled entries, in number order, into one Merkle tree (RFC 9162,
`regionlock.domain.merkle`) whose leaves are the entries' hashes; the service signs its head
(size and root). `verify` recomputes the tree from the entries and checks it against the stored
tree, the stored heads and a head kept outside (`against`); `inclusion_proof` and
`consistency_proof` let an outsider check one entry, or that a later head extends an earlier
one, without reading the trail. Someone who can write the database can still rewrite it from
any entry on and recompute every hash, head and tree: only a head kept outside the database
shows that. docs/audit.md says what is and is not detected.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from typing import Any, Protocol

import orjson

from regionlock.domain import merkle
from regionlock.domain.merkle import Frontier
from regionlock.storage.db import Database, Transaction

# The chains appends spread over (migration 0014 makes their head rows). More shards than
# writers that can be busy at once buys nothing; 16 covers a few nodes of 2-4 workers each.
SHARDS = 16
# The tree's perfect subtrees of 2**NODE_LEVEL leaves and more are kept (`audit_nodes`), so a
# proof reads a few stored roots and at most 2**NODE_LEVEL leaves.
NODE_LEVEL = 8


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
    shard: int = 0  # the chain it belongs to (module docstring)
    fmt: int = 2  # its hash format: 3 commits to the shard; 1 or 2 (content_digest None: 1)

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
        if self.fmt >= 3:
            doc["fmt"] = self.fmt
            doc["shard"] = self.shard
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
        if self.fmt >= 3:
            return entry_hash_v3(
                self.seq, self.shard, self.at, self.action, self.content_digest, self.prev_hash
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


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """A `NewEntry` with what does not depend on its place in the log worked out: its salt,
    content digest and stored details. `prepare_entries` makes them outside any transaction,
    so a writer holding the log's lock only numbers and chains them."""

    entry: NewEntry
    salt: str
    content: str  # content_digest(salt, actor, subject, reason, details)
    details_text: str  # the details as stored


def prepare_entries(entries: Sequence[NewEntry | PreparedEntry]) -> list[PreparedEntry]:
    """Each entry's salt (16 random bytes, hex, from one read of the OS's generator for the
    lot), content digest and stored details; entries already prepared are kept as they are."""
    todo = [e for e in entries if isinstance(e, NewEntry)]
    salts = os.urandom(16 * len(todo)).hex() if todo else ""
    out: list[PreparedEntry] = []
    i = 0
    for e in entries:
        if isinstance(e, PreparedEntry):
            out.append(e)
            continue
        salt = salts[32 * i : 32 * i + 32]
        i += 1
        content, text = _content_and_text(salt, e)
        out.append(PreparedEntry(e, salt, content, text))
    return out


# Entries appended row by row (SQLite, or one entry on PostgreSQL).
_INSERT_ENTRIES = (
    "INSERT INTO audit (seq, at, actor, action, subject, reason, details, prev_hash, hash,"
    " content_digest, salt, shard, fmt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


# The hashed form is what the standard library writes with these options (members sorted, no
# spaces, UTF-8, floats as `repr` writes them): every stored hash was computed on it, so it can
# never change. One encoder for every call (`json.dumps` builds one each time, about 2 us).
_HASHED_FORM = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# Details as they were stored before 2026-12-07 (with spaces), and still are when orjson is not
# sure to write them alike (`_orjson_alike`); the column is read back with `json.loads` only.
_STORED_DETAILS = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
_SCALARS = frozenset({str, int, bool, type(None)})
_CONTENT_V2 = "regionlock/audit-content/v2"


def _orjson_alike(value: Any) -> bool:
    """Whether orjson writes `value` byte for byte as `_HASHED_FORM` does (sorted keys), or
    refuses it: dicts, lists, tuples, `str`, `int`, `bool`, None, and floats that are 0 or at
    least 1e-4 in size and finite. Not alike: floats from 1e-9 to 1e-4 (orjson writes
    "0.00001" and "2.5e-7" where `repr` writes "1e-05" and "2.5e-07"), NaN and infinities
    (orjson writes null), and subclasses and other types (which orjson writes its own way, or
    the standard library refuses). What orjson refuses (`_hashed_form` then asks the standard
    library) is not looked for here: keys other than `str`, ints past 64 bits, unpaired
    surrogates, nesting past 254 levels. tests/storage/test_audit_encoding.py holds both to
    this: the fast form equals the standard library's on any JSON value.

    About 1 us for a check-in's details: loops, not `all()` over generators (4 us)."""
    kind = type(value)
    if kind is dict:
        members: Any = value.values()
    elif kind is list or kind is tuple:
        members = value
    elif kind is float:  # NaN fails both comparisons
        return bool(value == 0.0 or 1e-4 <= abs(value) < math.inf)
    else:
        return kind in _SCALARS
    for member in members:
        if type(member) not in _SCALARS and not _orjson_alike(member):
            return False
    return True


# Floats whose text orjson has written differently from `repr` in some release (before 3.11.7,
# "1e16" for "1e+16"; pyproject.toml asks for 3.11.7 or later): the installed orjson is used
# only if it writes every one of them as the standard library does.
_FLOAT_PROBES = (1e16, -1.5e16, 1.7976931348623157e308, 1e-4, 0.1, -0.0, 123.456, 2.5e22)
_ORJSON_FLOATS_ALIKE = all(
    orjson.dumps(x) == _HASHED_FORM.encode(x).encode("utf-8") for x in _FLOAT_PROBES
)


def _writes_alike(value: Any) -> bool:
    """`_orjson_alike`, where this orjson writes floats as `repr` does (`_ORJSON_FLOATS_ALIKE`);
    False for a value nested past Python's recursion limit, or holding itself, which the
    standard library then refuses as it always did (RecursionError, ValueError)."""
    try:
        return _ORJSON_FLOATS_ALIKE and _orjson_alike(value)
    except RecursionError:
        return False


def _hashed_form(value: Any) -> bytes:
    """`_HASHED_FORM`'s UTF-8 bytes of `value`, by orjson where it writes the same (with the
    look, 2-3 times as fast), else by the standard library (which raises as it always did:
    TypeError, ValueError, UnicodeEncodeError, RecursionError)."""
    if _writes_alike(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a key not a str, an int past 64 bits, ...
            pass
    return _HASHED_FORM.encode(value).encode("utf-8")


def _content_and_text(salt: str, e: NewEntry) -> tuple[str, str]:
    """A new entry's content digest and its details' text as stored, the details looked at
    once: by orjson where it writes them alike (the text compact, read back by `json.loads` to
    the same values), else as before by the standard library."""
    parts = (salt, e.actor, e.subject, e.reason)
    strings = type(e.actor) is str and type(e.subject) is str and type(e.reason) is str
    if strings and type(salt) is str and _writes_alike(e.details):
        try:
            text = orjson.dumps(e.details, option=orjson.OPT_SORT_KEYS)
            body = orjson.dumps([_CONTENT_V2, *parts, e.details], option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a key not a str, an int past 64 bits, ...
            pass
        else:
            return hashlib.sha256(body).hexdigest(), text.decode()
    return content_digest(*parts, e.details), _STORED_DETAILS.encode(e.details)


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
    body = _hashed_form([seq, at, actor, action, subject, reason, details, prev_hash])
    return hashlib.sha256(body).hexdigest()


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(_hashed_form(value)).hexdigest()


def content_digest(
    salt: str, actor: str, subject: str, reason: str, details: Mapping[str, Any]
) -> str:
    """A v2 entry's commitment to its redactable part (module docstring)."""
    return _sha256_json([_CONTENT_V2, salt, actor, subject, reason, details])


def entry_hash_v2(seq: int, at: int, action: str, content: str, prev_hash: str) -> str:
    """A v2 entry's hash: its number, time, action, content digest and the previous hash."""
    return _sha256_json(["regionlock/audit-entry/v2", seq, at, action, content, prev_hash])


def entry_hash_v3(seq: int, shard: int, at: int, action: str, content: str, prev_hash: str) -> str:
    """A v3 entry's hash: as v2, and its shard; `prev_hash` is the previous entry's of the same
    shard."""
    return _sha256_json(["regionlock/audit-entry/v3", seq, shard, at, action, content, prev_hash])


def leaf_of(entry_hash_hex: str) -> bytes:
    """The tree's leaf hash of an entry: RFC 9162's leaf hash of the 32 bytes of its hash."""
    return merkle.leaf_hash(bytes.fromhex(entry_hash_hex))


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
class TreeState:
    """The Merkle tree over the sealed entries: its size (leaves), the last entry number sealed
    (entries up to it are leaves, or never committed), its root and its compact range."""

    size: int
    sealed_seq: int
    frontier: Frontier

    @property
    def root(self) -> bytes:
        return self.frontier.root()


@dataclass(frozen=True, slots=True)
class SealPlan:
    """A seal worked out from a snapshot, outside any write transaction (`plan_seal`): the
    tree it grows and the tree it makes, with the rows that makes. `seal` stores it only if
    the tree is still `before` under its lock."""

    before: TreeState
    after: TreeState
    upto: int
    limit: int
    leaves: list[tuple[int, int]]  # (leaf, seq)
    nodes: list[tuple[int, int, str]]  # (level, idx, hash) kept in `audit_nodes`


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A tree head: `size` leaves whose RFC 9162 root is `root` (hex). Stored ones carry the
    service's signature (`token`, signing/audit_head.py) and when it was made."""

    size: int
    root: str
    signed_at: int | None = None  # UTC epoch ms
    token: str | None = None


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """That entry `seq`, with hash `entry_hash`, is leaf `leaf` of the tree of `size` leaves:
    RFC 9162's audit path, siblings from the leaf up (hex)."""

    seq: int
    leaf: int
    size: int
    entry_hash: str
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What `verify` found: `ok`, how many entries checked out, and otherwise the first entry
    it cannot vouch for (None when no single entry is to blame) and what is wrong."""

    ok: bool
    checked: int
    first_broken: int | None = None
    problem: str = ""
    head: AuditHead | None = None  # the last entry of the verified trail, when ok
    tree: TreeState | None = None  # the verified tree, when ok


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

    def append_many(
        self, tx: Transaction, entries: Sequence[NewEntry | PreparedEntry]
    ) -> list[AuditEntry]:
        """Append several entries in order (one read and one write of the head); entries
        prepared ahead (`prepare_entries`) are only numbered and chained."""
        ...

    def entries(
        self,
        *,
        after: int = 0,
        subject: str | None = None,
        limit: int = 1000,
        upto: int | None = None,
    ) -> list[AuditEntry]:
        """Entries after sequence number `after`, oldest first, about `subject` if given, up to
        entry `upto` if given (as for `page`)."""
        ...

    def page(
        self, tx: Transaction, *, after: int, limit: int, upto: int | None = None
    ) -> list[AuditEntry]:
        """As `entries`, read in the caller's transaction (a writer that acts on them), up to
        entry `upto` if given (the tree's `sealed_seq`: on PostgreSQL, an entry may commit
        after one with a higher number until it is sealed)."""
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

    def settled(self) -> int:
        """An entry number up to which every entry is committed or will never be: what `seal`
        may take. On PostgreSQL it waits for the appends that hold a number up to it."""
        ...

    def plan_seal(self, *, upto: int, limit: int = 50_000) -> SealPlan:
        """`seal`'s reading and hashing, from a snapshot and outside any write transaction,
        for `seal` to store: a writer then holds the store only to write its rows."""
        ...

    def seal(
        self,
        tx: Transaction,
        *,
        upto: int,
        limit: int = 50_000,
        plan: SealPlan | None = None,
    ) -> tuple[TreeState, TreeState]:
        """Add to the tree, in number order, up to `limit` entries numbered up to `upto` (from
        `settled`) that it does not hold yet; the tree before and after. Locks the tree until
        the caller's commit, so one sealer at a time grows it. With `plan` (the same `upto`
        and `limit`), stores what it holds if the tree is still the one it grew; else (another
        sealer came first) reads and hashes again here."""
        ...

    def tree(self) -> TreeState:
        """The tree as last sealed."""
        ...

    def unsealed(self) -> int:
        """How many entries are not in the tree yet (the sealer's lag)."""
        ...

    def add_tree_head(self, tx: Transaction, head: TreeHead) -> None:
        """Keep a signed head of the tree; none if one of that size is kept (another node
        signed the same tree: same size, same root)."""
        ...

    def tree_heads(self, *, limit: int = 100) -> list[TreeHead]:
        """The latest signed heads, newest first."""
        ...

    def tree_head(self, size: int) -> TreeHead | None:
        """The signed head of that size, if one was kept."""
        ...

    def inclusion_proof(self, seq: int, size: int) -> InclusionProof | None:
        """That entry `seq` is in the tree of `size` leaves; None if it is not (yet) a leaf of
        it. ValueError if the tree is smaller than `size`."""
        ...

    def consistency_proof(self, old_size: int, new_size: int) -> list[str]:
        """RFC 9162's proof that the tree of `new_size` leaves extends the one of `old_size`
        (hex hashes). ValueError unless 0 < old_size <= new_size <= the tree's size."""
        ...

    def verify(self, *, against: AuditHead | TreeHead | None = None) -> VerifyResult:
        """Check every chain, its head row, and the tree; the first entry that does not match is
        named. Reads one snapshot, so appends and seals while it runs are fine.

        Broken: an entry altered, or not following the one before it in its shard (one removed
        or the order changed); a redacted entry that no later entry claims (module docstring);
        a shard's head row missing while it has entries, or not naming its last entry and hash
        (entries cut off the end, the head reset or rolled back, entries after the head); a
        leaf of the tree that is not the entry it names, an entry the tree should hold and does
        not, a stored subtree root, tree or signed head that the entries do not give. With
        `against`, a head kept outside the database: the trail must still hold that entry with
        that hash (AuditHead, as `audit head` printed before the tree), or the tree of that size
        must still have that root (TreeHead): that shows a rewrite or a cut made together with
        every head and the tree.
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

    def append_many(
        self, tx: Transaction, entries: Sequence[NewEntry | PreparedEntry]
    ) -> list[AuditEntry]:
        if not entries:
            return []
        prepared = prepare_entries(entries)
        shard, prev, seqs = self._take_shard(tx, len(prepared))
        out: list[AuditEntry] = []
        texts: list[str] = []
        for seq, p in zip(seqs, prepared, strict=True):
            e, salt, content = p.entry, p.salt, p.content
            digest = entry_hash_v3(seq, shard, e.at, e.action, content, prev)
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
                    shard=shard,
                    fmt=3,
                )
            )
            texts.append(p.details_text)
            prev = digest
        rows = [
            (
                a.seq,
                a.at,
                a.actor,
                a.action,
                a.subject,
                a.reason,
                text,
                a.prev_hash,
                a.hash,
                a.content_digest,
                a.salt,
                a.shard,
                a.fmt,
            )
            for a, text in zip(out, texts, strict=True)
        ]
        # Neither statement is waited for in a pipelined transaction: their answers come with
        # the commit's.
        if tx.dialect == "postgresql" and len(rows) > 1:
            # Many entries (a campaign's chunk, a group of check-ins) in one statement, the
            # columns as arrays: 14 instead of 22 us an entry for a chunk of 1,000.
            tx.send(
                "INSERT INTO audit (seq, at, actor, action, subject, reason, details, prev_hash,"
                " hash, content_digest, salt, shard, fmt) SELECT * FROM unnest(?::bigint[],"
                " ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],"
                " ?::text[], ?::text[], ?::text[], ?::int[], ?::smallint[])",
                [list(column) for column in zip(*rows, strict=True)],
                arrays=True,
            )
        else:
            tx.send_many(_INSERT_ENTRIES, rows)
        tx.send(
            "UPDATE audit_shards SET seq = ?, hash = ? WHERE shard = ?", (out[-1].seq, prev, shard)
        )
        return out

    def _take_shard(self, tx: Transaction, n: int) -> tuple[int, str, list[int]]:
        """A shard's number and last hash, its head row locked until the caller's commit, and
        `n` new entry numbers taken under that lock. PostgreSQL: this thread's own shard if it
        is free, else the next free one, else wait for this thread's own. SQLite: shard 0 (one
        writer; a shard more would only wait)."""
        if tx.dialect == "sqlite":
            row = tx.one("SELECT shard, hash FROM audit_shards WHERE shard = 0")
            assert row is not None, "audit_shards rows missing: run migrations"
            return int(row[0]), str(row[1]), self._numbers(tx, n)
        own = _own_shard()
        # Both sent at once (one round trip when pipelined): the server takes the numbers
        # after the row lock, in order.
        free = tx.send(
            "SELECT shard, hash FROM audit_shards ORDER BY mod(shard + ?, ?) LIMIT 1"
            " FOR UPDATE SKIP LOCKED",
            (SHARDS - own, SHARDS),
        )
        numbers = tx.send(_NEXT_NUMBERS, (n,))
        row = free.one()
        if row is not None:
            return int(row[0]), str(row[1]), sorted(int(r[0]) for r in numbers.rows())
        # Every shard busy: those numbers were taken under no lock (`settled` counts on none
        # such being used), so they are left unused, a gap as a rollback leaves. Wait for this
        # thread's own shard, then take new ones.
        numbers.rows()
        row = tx.one("SELECT shard, hash FROM audit_shards WHERE shard = ? FOR UPDATE", (own,))
        assert row is not None, "audit_shards rows missing: run migrations"
        return int(row[0]), str(row[1]), self._numbers(tx, n)

    @staticmethod
    def _numbers(tx: Transaction, n: int) -> list[int]:
        """`n` new entry numbers, increasing, taken while the shard is locked."""
        if tx.dialect == "sqlite":
            row = tx.one("SELECT COALESCE(MAX(seq), 0) FROM audit")
            top = int(row[0]) if row is not None else 0
            return list(range(top + 1, top + 1 + n))
        rows = tx.all(_NEXT_NUMBERS, (n,))
        return sorted(int(r[0]) for r in rows)

    # -- the tree ------------------------------------------------------------------------------

    def settled(self) -> int:
        if self.db.dialect == "sqlite":
            # One writer: every number taken is committed, or rolled back with its change.
            with self.db.read() as tx:
                row = tx.one("SELECT COALESCE(MAX(seq), 0) FROM audit")
                return int(row[0]) if row is not None else 0
        # A number is taken only while its shard's row is locked, until the commit. Whoever holds
        # a number up to `taken` has locked a row by now; waiting for a share of every row waits
        # for them all to commit or roll back.
        with self.db.write() as tx:
            row = tx.one("SELECT last_value, is_called FROM audit_seq")
            assert row is not None
            taken = int(row[0]) if row[1] else int(row[0]) - 1
            tx.all("SELECT shard FROM audit_shards ORDER BY shard FOR SHARE")
        return taken

    def plan_seal(self, *, upto: int, limit: int = 50_000) -> SealPlan:
        with self.db.read() as tx:
            before = _tree(tx, "")
            rows = _unsealed_rows(tx, before, upto, limit)
        return _seal_plan(before, rows, upto, limit)

    def seal(
        self,
        tx: Transaction,
        *,
        upto: int,
        limit: int = 50_000,
        plan: SealPlan | None = None,
    ) -> tuple[TreeState, TreeState]:
        lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
        before = _tree(tx, lock)
        # Sealing only ever grows the tree under this lock, and always with the next entries
        # in number order: the same size and last sealed number are the same tree.
        if (
            plan is None
            or (plan.upto, plan.limit) != (upto, limit)
            or (plan.before.size, plan.before.sealed_seq) != (before.size, before.sealed_seq)
        ):
            plan = _seal_plan(before, _unsealed_rows(tx, before, upto, limit), upto, limit)
        after = plan.after
        if not plan.leaves:
            if after.sealed_seq != before.sealed_seq:  # numbers rolled back: none to wait for
                tx.execute(
                    "UPDATE audit_tree SET sealed_seq = ? WHERE one = 1", (after.sealed_seq,)
                )
            return before, after
        tx.insert_many("audit_leaves", ("leaf", "seq"), plan.leaves)
        tx.insert_many("audit_nodes", ("level", "idx", "hash"), plan.nodes)
        tx.execute(
            "UPDATE audit_tree SET size = ?, sealed_seq = ?, root = ?, frontier = ? WHERE one = 1",
            (
                after.size,
                after.sealed_seq,
                after.root.hex(),
                json.dumps(after.frontier.to_json()),
            ),
        )
        return before, after

    def tree(self) -> TreeState:
        with self.db.read() as tx:
            return _tree(tx, "")

    def unsealed(self) -> int:
        with self.db.read() as tx:
            row = tx.one(
                "SELECT COUNT(*) FROM audit WHERE seq > (SELECT sealed_seq FROM audit_tree)"
            )
        return int(row[0]) if row is not None else 0

    def add_tree_head(self, tx: Transaction, head: TreeHead) -> None:
        if head.token is None or head.signed_at is None:
            raise ValueError("a kept tree head is signed")
        tx.execute(
            "INSERT INTO audit_tree_heads (size, root, signed_at, token) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (size) DO NOTHING",
            (head.size, head.root, head.signed_at, head.token),
        )

    def tree_heads(self, *, limit: int = 100) -> list[TreeHead]:
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT size, root, signed_at, token FROM audit_tree_heads ORDER BY size DESC"
                " LIMIT ?",
                (limit,),
            )
        return [TreeHead(int(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in rows]

    def tree_head(self, size: int) -> TreeHead | None:
        with self.db.read() as tx:
            r = tx.one(
                "SELECT size, root, signed_at, token FROM audit_tree_heads WHERE size = ?", (size,)
            )
        return None if r is None else TreeHead(int(r[0]), str(r[1]), int(r[2]), str(r[3]))

    def inclusion_proof(self, seq: int, size: int) -> InclusionProof | None:
        with self._snapshot() as tx:
            _check_size(tx, size)
            row = tx.one(
                "SELECT l.leaf, a.hash FROM audit_leaves l JOIN audit a ON a.seq = l.seq"
                " WHERE l.seq = ?",
                (seq,),
            )
            if row is None or int(row[0]) >= size:
                return None
            leaf = int(row[0])
            path = merkle.inclusion_proof(leaf, size, _Subtrees(tx).perfect)
        return InclusionProof(seq, leaf, size, str(row[1]), tuple(h.hex() for h in path))

    def consistency_proof(self, old_size: int, new_size: int) -> list[str]:
        if not 0 < old_size <= new_size:
            raise ValueError(f"no consistency proof from {old_size} to {new_size} leaves")
        with self._snapshot() as tx:
            _check_size(tx, new_size)
            path = merkle.consistency_proof(old_size, new_size, _Subtrees(tx).perfect)
        return [h.hex() for h in path]

    def _rows(
        self, after: int, subject: str | None, limit: int, upto: int | None = None
    ) -> list[AuditEntry]:
        with self.db.read() as tx:
            return _page(tx, after, subject, limit, upto)

    def entries(
        self,
        *,
        after: int = 0,
        subject: str | None = None,
        limit: int = 1000,
        upto: int | None = None,
    ) -> list[AuditEntry]:
        return self._rows(after, subject, limit, upto)

    def page(
        self, tx: Transaction, *, after: int, limit: int, upto: int | None = None
    ) -> list[AuditEntry]:
        return _page(tx, after, None, limit, upto)

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

    def verify(self, *, against: AuditHead | TreeHead | None = None) -> VerifyResult:
        """Walk every chain from the start, then the tree; name the first entry that does not
        match. One snapshot: appends and seals made meanwhile are not half seen."""
        kept_tree = against if isinstance(against, TreeHead) else None
        with self._snapshot() as tx:
            tree = _tree(tx, "")
            walk = _Walk(against if isinstance(against, AuditHead) else None, tree.sealed_seq)
            after = 0
            while page := _page(tx, after, None, 5000):
                for e in page:
                    if (broken := walk.step(e)) is not None:
                        return broken
                after = page[-1].seq
            heads = {
                int(r[0]): (int(r[1]), str(r[2]))
                for r in tx.all("SELECT shard, seq, hash FROM audit_shards")
            }
            if (broken := walk.finish(heads)) is not None:
                return broken
            if (
                broken := _TreeCheck(tx, tree, walk.checked).run(walk.sealed, kept_tree)
            ) is not None:
                return broken
        return VerifyResult(True, walk.checked, head=walk.last, tree=tree)


_NEXT_NUMBERS = "SELECT nextval('audit_seq') FROM generate_series(1, ?)"


def _own_shard() -> int:
    """This thread's shard on PostgreSQL: threads take shards in turn, so that a process's
    threads, and the processes of a node, spread over them."""
    own: int | None = getattr(_threads, "shard", None)
    if own is None:
        own = _threads.shard = next(_shard_turns) % SHARDS
    return own


_threads = threading.local()
_shard_turns = count(secrets.randbelow(SHARDS))


def _tree(tx: Transaction, lock: str) -> TreeState:
    row = tx.one(f"SELECT size, sealed_seq, frontier FROM audit_tree WHERE one = 1{lock}")
    assert row is not None, "audit_tree row missing: run migrations"
    frontier = Frontier.from_json(int(row[0]), json.loads(row[2]))
    return TreeState(int(row[0]), int(row[1]), frontier)


def _unsealed_rows(
    tx: Transaction, before: TreeState, upto: int, limit: int
) -> list[tuple[Any, ...]]:
    """(seq, hash) of the entries the tree does not hold yet, up to `upto`, `limit` at most."""
    return tx.all(
        "SELECT seq, hash FROM audit WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        (before.sealed_seq, upto, limit),
    )


def _seal_plan(
    before: TreeState, rows: Sequence[tuple[Any, ...]], upto: int, limit: int
) -> SealPlan:
    """The tree `before` grown by `rows` (`_unsealed_rows`), and the rows that stores."""
    if not rows:
        # Numbers up to `upto` not in the trail were rolled back: nothing to wait for there.
        sealed = max(upto, before.sealed_seq)
        after = TreeState(before.size, sealed, before.frontier)
        return SealPlan(before, after, upto, limit, [], [])
    nodes: list[tuple[int, int, str]] = []

    def keep(level: int, index: int, digest: bytes) -> None:
        if level >= NODE_LEVEL:
            nodes.append((level, index, digest.hex()))

    frontier = before.frontier.extend((leaf_of(str(r[1])) for r in rows), on_node=keep)
    sealed = upto if len(rows) < limit else int(rows[-1][0])
    leaves = [(before.size + i, int(r[0])) for i, r in enumerate(rows)]
    return SealPlan(before, TreeState(frontier.size, sealed, frontier), upto, limit, leaves, nodes)


def _check_size(tx: Transaction, size: int) -> None:
    held = _tree(tx, "").size
    if not 0 < size <= held:
        raise ValueError(f"the tree holds {held} leaves; no tree of {size} to prove against")


class _Subtrees:
    """The roots of the tree's perfect subtrees, read in one transaction: kept ones from
    `audit_nodes`, the rest hashed from their leaves (at most 2**NODE_LEVEL of them)."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    def perfect(self, level: int, index: int) -> bytes:
        if level >= NODE_LEVEL:
            row = self.tx.one(
                "SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?", (level, index)
            )
            if row is not None:
                return bytes.fromhex(str(row[0]))
        start, end = index << level, (index + 1) << level
        rows = self.tx.all(
            "SELECT a.hash FROM audit_leaves l JOIN audit a ON a.seq = l.seq"
            " WHERE l.leaf >= ? AND l.leaf < ? ORDER BY l.leaf",
            (start, end),
        )
        if len(rows) != end - start:
            raise ValueError(f"leaves {start} to {end - 1} of the tree are not all there")
        return merkle.root([leaf_of(str(r[0])) for r in rows])


_SELECT = (
    "SELECT seq, at, actor, action, subject, reason, details, prev_hash, hash, content_digest,"
    " salt, redacted, shard, fmt FROM audit"
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
            int(r[12]),
            int(r[13]),
        )
        for r in tx.all(_SELECT + where, params)
    ]


def _page(
    tx: Transaction, after: int, subject: str | None, limit: int, upto: int | None = None
) -> list[AuditEntry]:
    where = " WHERE seq > ?"
    params: list[Any] = [after]
    if upto is not None:
        where += " AND seq <= ?"
        params.append(upto)
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
    """`verify`'s state: every shard's chain checked so far, one entry at a time, then their
    ends against the head rows."""

    def __init__(self, against: AuditHead | None, sealed_seq: int) -> None:
        if against is not None and (against.seq < 0 or (against.seq == 0) != (not against.hash)):
            raise ValueError(f"not a head: {against}")
        self.against = against
        self.sealed_seq = sealed_seq
        self.ends: dict[int, AuditHead] = {}  # each shard's last entry so far
        self.last = AuditHead(0, "")  # the highest-numbered entry so far
        self.checked = 0
        self.sealed = 0  # entries numbered up to sealed_seq: the tree must hold them all
        self.kept_seen = against is None or against.seq == 0
        self.redacted: set[int] = set()  # redacted entries not yet claimed by a later one

    def _broken(self, at: int | None, problem: str) -> VerifyResult:
        return VerifyResult(False, self.checked, at, problem)

    def step(self, e: AuditEntry) -> VerifyResult | None:
        """None if `e` continues its shard's chain (which then ends at `e`), else what is wrong."""
        end = self.ends.get(e.shard, AuditHead(0, ""))
        if e.prev_hash != end.hash or e.seq <= end.seq or (e.fmt < 3 and e.shard != 0):
            if not end.seq:
                return self._broken(
                    e.seq, f"entry {e.seq} does not start shard {e.shard}'s chain (it was moved?)"
                )
            gap = e.seq - end.seq - 1
            missing = (
                f"entry {end.seq + 1} is missing (next is {e.seq})"
                if gap == 1 and e.shard == 0
                else f"entry {e.seq} does not follow entry {end.seq}, the one before it in shard"
                f" {e.shard}: entries between them were removed, or the order changed"
            )
            return self._broken(end.seq + 1 if gap == 1 and e.shard == 0 else e.seq, missing)
        if e.computed_hash() != e.hash or not e.content_matches():
            return self._broken(e.seq, f"entry {e.seq} was altered (its hash does not match)")
        if e.redacted is not None:
            self.redacted.add(e.seq)
        self.redacted.difference_update(redaction_claims(e))
        kept = self.against
        if kept is not None and e.seq == kept.seq:
            if e.hash != kept.hash:
                # Entries up to it agree with each other, so some of them were rewritten whole.
                return self._broken(
                    e.seq,
                    f"entry {e.seq} is not the one in the kept head (hash {kept.hash[:12]}...,"
                    f" now {e.hash[:12]}...): the trail was rewritten at or before entry {e.seq}",
                )
            self.kept_seen = True
        self.ends[e.shard] = self.last = AuditHead(e.seq, e.hash, e.at)
        self.checked += 1
        if e.seq <= self.sealed_seq:
            self.sealed += 1
        return None

    def finish(self, heads: Mapping[int, tuple[int, str]]) -> VerifyResult | None:
        """What is wrong with the chains' ends, given the head rows (shard: seq, hash); None if
        nothing."""
        for shard in sorted(set(heads) | set(self.ends)):
            if (broken := self._end(shard, heads.get(shard))) is not None:
                return broken
        if self.redacted:
            first = min(self.redacted)
            return self._broken(
                first,
                f"entry {first} is redacted but no later entry records the redaction (an"
                " erasure lists what it redacted)",
            )
        kept = self.against
        if kept is not None and not self.kept_seen:
            n = self.last.seq
            if kept.seq > n:
                return self._broken(
                    n + 1,
                    f"the trail ends at entry {n}, before the kept head's entry {kept.seq}:"
                    " entries were removed from the end and the head rolled back with them",
                )
            return self._broken(kept.seq, f"the kept head's entry {kept.seq} is not in the trail")
        return None

    def _end(self, shard: int, head: tuple[int, str] | None) -> VerifyResult | None:
        end = self.ends.get(shard, AuditHead(0, ""))
        n, last = end.seq, end.hash
        where = "the head row" if shard == 0 else f"shard {shard}'s head row"
        if head is None:
            if n:
                return self._broken(
                    None, f"{where} is missing (deleted?) but its chain has entries up to {n}"
                )
            return None
        if head[0] > n:
            return self._broken(
                n + 1,
                f"the chain ends at entry {n} but {where} says {head[0]}: entries were removed"
                " from the end",
            )
        if head[0] == 0 and n:
            return self._broken(1, f"{where} was reset but its chain has entries up to {n}")
        if head[0] < n:
            return self._broken(
                head[0] + 1,
                f"entries up to {n} come after {where} (entry {head[0]}): the head was rolled"
                " back, or they were added behind its back",
            )
        if head[1] != last:
            if not n:
                return self._broken(None, f"the chain is empty but {where} names an entry hash")
            return self._broken(
                n, f"entry {n} does not match {where}'s hash: it (or the head) was rewritten"
            )
        return None


class _TreeCheck:
    """`verify`'s second half: the tree recomputed from the entries, leaf by leaf, against the
    stored leaves, subtree roots, tree row and signed heads, and a kept tree head."""

    def __init__(self, tx: Transaction, tree: TreeState, checked: int) -> None:
        self.tx = tx
        self.tree = tree
        self.checked = checked

    def _broken(self, at: int | None, problem: str) -> VerifyResult:
        return VerifyResult(False, self.checked, at, problem)

    def run(self, sealed: int, kept: TreeHead | None) -> VerifyResult | None:
        tx, tree = self.tx, self.tree
        if sealed != tree.size:
            row = tx.one(
                "SELECT a.seq FROM audit a LEFT JOIN audit_leaves l ON l.seq = a.seq"
                " WHERE a.seq <= ? AND l.seq IS NULL ORDER BY a.seq LIMIT 1",
                (tree.sealed_seq,),
            )
            if row is not None:
                return self._broken(
                    int(row[0]),
                    f"entry {row[0]} was sealed (the tree holds up to entry {tree.sealed_seq})"
                    " but is not in the tree: its leaf was removed, or the entry put in later",
                )
        nodes = {
            (int(r[0]), int(r[1])): str(r[2])
            for r in tx.all("SELECT level, idx, hash FROM audit_nodes")
        }
        checkpoints: dict[int, list[tuple[str, str]]] = {}
        for r in tx.all("SELECT size, root FROM audit_tree_heads"):
            checkpoints.setdefault(int(r[0]), []).append(
                (f"the signed tree head of {r[0]} leaves", str(r[1]))
            )
        if kept is not None:
            checkpoints.setdefault(kept.size, []).append(
                (f"the kept tree head of {kept.size} leaves", kept.root)
            )
        beyond = [s for s in checkpoints if s > tree.size]
        if beyond:
            what = checkpoints[max(beyond)][0][0]
            return self._broken(
                None,
                f"the tree holds {tree.size} leaves, fewer than {what}: entries were removed"
                " and the tree cut back with them",
            )
        bad_nodes: list[tuple[int, int]] = []

        def compare(level: int, index: int, digest: bytes) -> None:
            # A stored root only saves a proof work (one missing is hashed from its leaves);
            # one that is wrong would make the proofs built with it fail.
            stored = nodes.pop((level, index), None) if level >= NODE_LEVEL else None
            if stored is not None and stored != digest.hex():
                bad_nodes.append((level, index))

        frontier = Frontier.empty()
        if (broken := self._at(0, frontier, checkpoints)) is not None:
            return broken
        last_seq = 0
        while True:
            rows = tx.all(
                "SELECT l.leaf, l.seq, a.hash FROM audit_leaves l LEFT JOIN audit a"
                " ON a.seq = l.seq WHERE l.leaf >= ? ORDER BY l.leaf LIMIT 5000",
                (frontier.size,),
            )
            if not rows:
                break
            chunk: list[bytes] = []
            for leaf, seq, digest in rows:
                expected = frontier.size + len(chunk)
                if int(leaf) != expected:
                    return self._broken(None, f"leaf {expected} of the tree is missing")
                if int(seq) <= last_seq or int(seq) > tree.sealed_seq:
                    return self._broken(
                        int(seq), f"leaf {leaf} (entry {seq}) is out of order or was added"
                    )
                if digest is None:
                    return self._broken(
                        int(seq), f"leaf {leaf} is entry {seq}, which is not in the trail"
                    )
                last_seq = int(seq)
                chunk.append(leaf_of(str(digest)))
                if expected + 1 in checkpoints or expected + 1 == tree.size:
                    frontier = frontier.extend(chunk, on_node=compare)
                    chunk = []
                    if (broken := self._at(frontier.size, frontier, checkpoints)) is not None:
                        return broken
            frontier = frontier.extend(chunk, on_node=compare)
            if bad_nodes:
                level, index = bad_nodes[0]
                return self._broken(
                    None,
                    f"the stored root of leaves {index << level} to {((index + 1) << level) - 1}"
                    " is not the one their entries give: proofs built with it would fail",
                )
        if frontier.size != tree.size:
            return self._broken(
                None,
                f"the tree row says {tree.size} leaves but {frontier.size} are stored: leaves"
                " were removed or added",
            )
        if frontier.hashes != tree.frontier.hashes:
            return self._broken(None, "the tree row's root is not the one its leaves give")
        if nodes:
            level, index = min(nodes)
            return self._broken(None, f"a stored subtree root ({level}, {index}) has no leaves")
        return None

    def _at(
        self, size: int, frontier: Frontier, checkpoints: Mapping[int, list[tuple[str, str]]]
    ) -> VerifyResult | None:
        root = frontier.root().hex()
        for what, expected in checkpoints.get(size, ()):
            if expected != root:
                return self._broken(
                    None,
                    f"{what} has root {expected[:12]}..., but the entries give {root[:12]}...:"
                    f" the trail was rewritten within the tree's first {size} leaves",
                )
        return None
