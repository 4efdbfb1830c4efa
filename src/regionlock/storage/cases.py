"""Investigation cases and their append-only histories (issue 13).

Contract (both backends, one conformance suite, tests/storage/test_cases.py):
- Writes run in the caller's transaction, so the service records a step and its audit entry
  together or not at all.
- `create` refuses (Conflict) an id that exists, without spoiling the transaction: the caller
  may try another id in it.
- A case's events are numbered 1, 2, ... without gaps in the order they were appended;
  `append` locks the case's row first (PostgreSQL), so two writers never take one number.
  Nothing updates or deletes an event.
- `close` changes only an open case: False (nothing written) for a closed or missing one.
- Reading an unknown id gives None or an empty list, never an error: the service decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from regionlock.domain.case import Case, CaseEvent, CaseStatus, EventKind
from regionlock.domain.errors import Conflict
from regionlock.storage.db import Database, Transaction, epoch_ms, from_epoch_ms, new_id


def new_case_id() -> str:
    """A fresh case id: "case_" and 8 base32 characters (40 bits: short enough to type, and
    a clash among thousands of cases is one in a million; `create` refuses it anyway)."""
    return new_id("case_", 8)


_CASE_COLS = "id, title, status, opened_at, opened_by, closed_at, closed_by, outcome, findings"


def _case(row: Sequence[Any]) -> Case:
    opened = from_epoch_ms(row[3])
    assert opened is not None
    return Case(
        id=row[0],
        title=row[1],
        status=CaseStatus(row[2]),
        opened_at=opened,
        opened_by=row[4],
        closed_at=from_epoch_ms(row[5]),
        closed_by=row[6],
        outcome=row[7],
        findings=None if row[8] is None else json.loads(row[8]),
    )


_EVENT_COLS = "case_id, seq, at, actor, kind, text, campaign_id, data"


def _event(row: Sequence[Any]) -> CaseEvent:
    at = from_epoch_ms(row[2])
    assert at is not None
    return CaseEvent(
        case_id=row[0],
        seq=int(row[1]),
        at=at,
        actor=row[3],
        kind=EventKind(row[4]),
        text=row[5],
        campaign_id=row[6],
        data=None if row[7] is None else json.loads(row[7]),
    )


class CaseStore(Protocol):
    """Cases and their histories (module docstring: the contract)."""

    def create(self, tx: Transaction, case: Case, findings_json: str | None) -> None:
        """Store a new case, open, with its findings as given (canonical JSON text, or None).
        Conflict if the id exists; the transaction stays usable."""
        ...

    def get(self, case_id: str) -> Case | None:
        """A case by id; None when there is none."""
        ...

    def get_for_update(self, tx: Transaction, case_id: str) -> Case | None:
        """A case to change in `tx`, its row locked until `tx` ends (PostgreSQL; SQLite's
        single writer serialises anyway); None when there is none."""
        ...

    def recent(self, *, status: CaseStatus | None = None, limit: int = 100) -> list[Case]:
        """Cases, the most recently opened first (ties by id), of one status if given."""
        ...

    def close(
        self, tx: Transaction, case_id: str, *, at: datetime, actor: str, outcome: str
    ) -> bool:
        """Close an open case; False when it is closed already or does not exist."""
        ...

    def append(
        self,
        tx: Transaction,
        case_id: str,
        kind: EventKind,
        *,
        at: datetime,
        actor: str,
        text: str | None = None,
        campaign_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> CaseEvent:
        """Add the next event of an existing case (its number: one more than the last)."""
        ...

    def events(self, case_id: str) -> list[CaseEvent]:
        """A case's history, oldest first (in number order); [] for an unknown case."""
        ...

    def is_linked(self, tx: Transaction, case_id: str, campaign_id: str) -> bool:
        """Whether `campaign_id` is linked to the case already."""
        ...


class SqlCaseStore:
    """Cases on SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, tx: Transaction, case: Case, findings_json: str | None) -> None:
        # ON CONFLICT DO NOTHING rather than catching the unique violation: PostgreSQL aborts
        # a transaction on an error, and the caller wants to try another id in it.
        inserted = tx.execute(
            f"INSERT INTO cases ({_CASE_COLS}) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (
                case.id,
                case.title,
                CaseStatus.OPEN.value,
                epoch_ms(case.opened_at),
                case.opened_by,
                findings_json,
            ),
        )
        if inserted == 0:
            raise Conflict(f"case {case.id} exists already")

    def get(self, case_id: str) -> Case | None:
        with self.db.read() as tx:
            row = tx.one(f"SELECT {_CASE_COLS} FROM cases WHERE id = ?", (case_id,))
        return _case(row) if row else None

    def get_for_update(self, tx: Transaction, case_id: str) -> Case | None:
        lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
        row = tx.one(f"SELECT {_CASE_COLS} FROM cases WHERE id = ?{lock}", (case_id,))
        return _case(row) if row else None

    def recent(self, *, status: CaseStatus | None = None, limit: int = 100) -> list[Case]:
        where, params = ("WHERE status = ?", [status.value]) if status else ("", [])
        with self.db.read() as tx:
            rows = tx.all(
                f"SELECT {_CASE_COLS} FROM cases {where} ORDER BY opened_at DESC, id DESC LIMIT ?",
                [*params, limit],
            )
        return [_case(r) for r in rows]

    def close(
        self, tx: Transaction, case_id: str, *, at: datetime, actor: str, outcome: str
    ) -> bool:
        changed = tx.execute(
            "UPDATE cases SET status = ?, closed_at = ?, closed_by = ?, outcome = ?"
            " WHERE id = ? AND status = ?",
            (CaseStatus.CLOSED.value, epoch_ms(at), actor, outcome, case_id, "open"),
        )
        return changed == 1

    def append(
        self,
        tx: Transaction,
        case_id: str,
        kind: EventKind,
        *,
        at: datetime,
        actor: str,
        text: str | None = None,
        campaign_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> CaseEvent:
        if self.get_for_update(tx, case_id) is None:
            raise ValueError(f"no case {case_id!r} to add an event to")
        row = tx.one("SELECT MAX(seq) FROM case_events WHERE case_id = ?", (case_id,))
        seq = int(row[0]) + 1 if row and row[0] is not None else 1
        stored = None if data is None else json.dumps(data, sort_keys=True, ensure_ascii=False)
        tx.execute(
            f"INSERT INTO case_events ({_EVENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (case_id, seq, epoch_ms(at), actor, kind.value, text, campaign_id, stored),
        )
        return CaseEvent(
            case_id=case_id,
            seq=seq,
            at=at,
            actor=actor,
            kind=kind,
            text=text,
            campaign_id=campaign_id,
            data=None if data is None else dict(data),
        )

    def events(self, case_id: str) -> list[CaseEvent]:
        with self.db.read() as tx:
            rows = tx.all(
                f"SELECT {_EVENT_COLS} FROM case_events WHERE case_id = ? ORDER BY seq",
                (case_id,),
            )
        return [_event(r) for r in rows]

    def is_linked(self, tx: Transaction, case_id: str, campaign_id: str) -> bool:
        row = tx.one(
            "SELECT 1 FROM case_events WHERE case_id = ? AND kind = ? AND campaign_id = ?",
            (case_id, EventKind.LINK.value, campaign_id),
        )
        return row is not None
