"""Policy versions and which one is active.

Versions are immutable: uploading the same (id, version) again with the same text changes
nothing; with different text it is refused. Activation is a history: the active policy is the
latest activation, and a rollback re-activates the one before it (itself recorded), so the
record of what was in force when is never rewritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from regionlock.domain.errors import Conflict
from regionlock.storage.db import Database, Pending, Transaction


class PolicyConflict(Conflict):
    """A version that exists with other content, or nothing to roll back to."""


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    row: int
    policy_id: str
    version: str
    sha256: str
    document: str
    uploaded_at: int
    uploaded_by: str


@dataclass(frozen=True, slots=True)
class Activation:
    row: int
    policy: StoredPolicy
    activated_at: int
    activated_by: str
    reason: str


class PolicyStore(Protocol):
    """Stored policy documents and their activation history."""

    def upload(
        self, tx: Transaction, *, policy_id: str, version: str, document: str, at: int, actor: str
    ) -> tuple[StoredPolicy, bool]:
        """Store a version; returns it and whether it was new. Same id+version, other text:
        PolicyConflict."""
        ...

    def activate(
        self, tx: Transaction, row: int, *, at: int, actor: str, reason: str
    ) -> Activation: ...

    def active(self, tx: Transaction | None = None) -> Activation | None: ...

    def latest_activation(self, tx: Transaction) -> int:
        """The number of the latest activation (0 before the first): it changes whenever the
        active policy may have, so a cached policy is checked with one small query."""
        ...

    def latest_activation_later(self, tx: Transaction) -> Pending[int]:
        """`latest_activation`, sent without waiting in a pipelined transaction."""
        ...

    def previous(self, tx: Transaction) -> StoredPolicy | None:
        """The policy that was active before the current one (None if there was none)."""
        ...

    def versions(self) -> list[StoredPolicy]: ...

    def activations(self, limit: int = 100) -> list[Activation]: ...


_COLUMNS = "id, policy_id, version, sha256, document, uploaded_at, uploaded_by"


def _stored(r: tuple[Any, ...]) -> StoredPolicy:
    return StoredPolicy(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), int(r[5]), str(r[6]))


class SqlPolicyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upload(
        self, tx: Transaction, *, policy_id: str, version: str, document: str, at: int, actor: str
    ) -> tuple[StoredPolicy, bool]:
        digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
        row = tx.one(
            f"SELECT {_COLUMNS} FROM policies WHERE policy_id = ? AND version = ?",
            (policy_id, version),
        )
        if row is not None:
            existing = _stored(row)
            if existing.sha256 != digest:
                raise PolicyConflict(
                    f"policy {policy_id} version {version} already exists with other content; "
                    "versions are immutable: give the new document a new version"
                )
            return existing, False
        tx.execute(
            "INSERT INTO policies (policy_id, version, sha256, document, uploaded_at,"
            " uploaded_by) VALUES (?, ?, ?, ?, ?, ?)",
            (policy_id, version, digest, document, at, actor),
        )
        new = tx.one(
            f"SELECT {_COLUMNS} FROM policies WHERE policy_id = ? AND version = ?",
            (policy_id, version),
        )
        assert new is not None
        return _stored(new), True

    def activate(
        self, tx: Transaction, row: int, *, at: int, actor: str, reason: str
    ) -> Activation:
        found = tx.one(f"SELECT {_COLUMNS} FROM policies WHERE id = ?", (row,))
        if found is None:
            raise PolicyConflict(f"no stored policy with row {row}")
        tx.execute(
            "INSERT INTO policy_activations (policy_row, activated_at, activated_by, reason)"
            " VALUES (?, ?, ?, ?)",
            (row, at, actor, reason),
        )
        last = self._activation_rows(tx, 1)[0]
        return last

    def _activation_rows(self, tx: Transaction, limit: int) -> list[Activation]:
        rows = tx.all(
            "SELECT a.id, a.activated_at, a.activated_by, a.reason, p.id, p.policy_id,"
            " p.version, p.sha256, p.document, p.uploaded_at, p.uploaded_by"
            " FROM policy_activations a JOIN policies p ON p.id = a.policy_row"
            " ORDER BY a.id DESC LIMIT ?",
            (limit,),
        )
        return [
            Activation(int(r[0]), _stored(r[4:]), int(r[1]), str(r[2]), str(r[3])) for r in rows
        ]

    def active(self, tx: Transaction | None = None) -> Activation | None:
        if tx is not None:
            rows = self._activation_rows(tx, 1)
        else:
            with self.db.read() as rtx:
                rows = self._activation_rows(rtx, 1)
        return rows[0] if rows else None

    def previous(self, tx: Transaction) -> StoredPolicy | None:
        history = self._activation_rows(tx, 1000)
        if not history:
            return None
        current = history[0].policy.row
        for a in history[1:]:
            if a.policy.row != current:
                return a.policy
        return None

    def latest_activation(self, tx: Transaction) -> int:
        return self.latest_activation_later(tx).get()

    def latest_activation_later(self, tx: Transaction) -> Pending[int]:
        sent = tx.send("SELECT MAX(id) FROM policy_activations")

        def get() -> int:
            row = sent.one()
            return int(row[0]) if row and row[0] is not None else 0

        return Pending(get)

    def versions(self) -> list[StoredPolicy]:
        with self.db.read() as tx:
            return [_stored(r) for r in tx.all(f"SELECT {_COLUMNS} FROM policies ORDER BY id")]

    def activations(self, limit: int = 100) -> list[Activation]:
        with self.db.read() as tx:
            return self._activation_rows(tx, limit)
