"""Appeals (issue 14, migration 0009).

Contract (both backends, tests/storage/test_appeals.py):
- Writes run in the caller's transaction: an appeal and its audit entry, a decision and the
  device's exemption, are written together or not at all.
- `create` returns the appeal already stored for the same device and nonce instead of a second
  one (a device that lost the answer sends the same request again).
- `decide` changes only an open appeal: False (nothing written) otherwise.
- Reading an unknown id gives None or an empty list, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any, Protocol

from regionlock.domain.appeal import Appeal, AppealStatus
from regionlock.storage.db import Database, Transaction, epoch_ms, from_epoch_ms

_COLS = (
    "id, device_id, created_at, nonce, contact, message, language, status, evidence,"
    " decided_at, decided_by, decision_reason, exempt_until"
)


def _appeal(row: Sequence[Any]) -> Appeal:
    created = from_epoch_ms(row[2])
    assert created is not None
    return Appeal(
        id=row[0],
        device_id=row[1],
        created_at=created,
        nonce=row[3],
        contact=row[4],
        message=row[5],
        language=row[6],
        status=AppealStatus(row[7]),
        evidence=json.loads(row[8]),
        decided_at=from_epoch_ms(row[9]),
        decided_by=row[10],
        decision_reason=row[11],
        exempt_until=date.fromisoformat(row[12]) if row[12] else None,
    )


class AppealStore(Protocol):
    """Appeals (module docstring: the contract)."""

    def create(self, tx: Transaction, appeal: Appeal) -> tuple[Appeal, bool]:
        """Store `appeal`; (the stored one, True) or, for a device and nonce stored already,
        (that one, False)."""
        ...

    def get(self, appeal_id: str, tx: Transaction | None = None) -> Appeal | None: ...

    def open_for(self, tx: Transaction, device_id: str) -> Appeal | None:
        """The device's open appeal, if it has one."""
        ...

    def list(
        self, *, status: AppealStatus | None = None, device_id: str | None = None, limit: int = 100
    ) -> list[Appeal]:
        """Appeals, the oldest first (a queue), of one status or device if given."""
        ...

    def decide(self, tx: Transaction, appeal: Appeal) -> bool:
        """Store the decision of an open appeal; False if it is not open."""
        ...


class SqlAppealStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, tx: Transaction, appeal: Appeal) -> tuple[Appeal, bool]:
        a = appeal
        inserted = tx.execute(
            f"INSERT INTO appeals ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL,"
            " NULL) ON CONFLICT (device_id, nonce) DO NOTHING",
            (
                a.id,
                a.device_id,
                epoch_ms(a.created_at),
                a.nonce,
                a.contact,
                a.message,
                a.language,
                a.status.value,
                json.dumps(dict(a.evidence), sort_keys=True, ensure_ascii=False),
            ),
        )
        if inserted:
            return a, True
        row = tx.one(
            f"SELECT {_COLS} FROM appeals WHERE device_id = ? AND nonce = ?",
            (a.device_id, a.nonce),
        )
        assert row is not None
        return _appeal(row), False

    def get(self, appeal_id: str, tx: Transaction | None = None) -> Appeal | None:
        sql = f"SELECT {_COLS} FROM appeals WHERE id = ?"
        if tx is not None:
            row = tx.one(sql, (appeal_id,))
        else:
            with self.db.read() as read:
                row = read.one(sql, (appeal_id,))
        return _appeal(row) if row else None

    def open_for(self, tx: Transaction, device_id: str) -> Appeal | None:
        row = tx.one(
            f"SELECT {_COLS} FROM appeals WHERE device_id = ? AND status = 'open'"
            " ORDER BY created_at LIMIT 1",
            (device_id,),
        )
        return _appeal(row) if row else None

    def list(
        self, *, status: AppealStatus | None = None, device_id: str | None = None, limit: int = 100
    ) -> list[Appeal]:
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if device_id is not None:
            where.append("device_id = ?")
            params.append(device_id)
        sql = f"SELECT {_COLS} FROM appeals"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self.db.read() as tx:
            rows = tx.all(sql + " ORDER BY created_at, id LIMIT ?", [*params, limit])
        return [_appeal(r) for r in rows]

    def decide(self, tx: Transaction, appeal: Appeal) -> bool:
        a = appeal
        changed = tx.execute(
            "UPDATE appeals SET status = ?, decided_at = ?, decided_by = ?, decision_reason = ?,"
            " exempt_until = ? WHERE id = ? AND status = 'open'",
            (
                a.status.value,
                epoch_ms(a.decided_at) if a.decided_at else None,
                a.decided_by,
                a.decision_reason,
                a.exempt_until.isoformat() if a.exempt_until else None,
                a.id,
            ),
        )
        return changed == 1
