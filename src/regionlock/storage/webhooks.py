"""Webhook endpoints, the cursor over the audit trail, and deliveries (issue 14).

Contract (both backends, one conformance suite, tests/storage/test_webhooks.py):
- Writes run in the caller's transaction: an endpoint and its audit entry, the deliveries queued
  and the cursor moved past their entries, are written together or not at all.
- `cursor_for_update` locks the cursor row until the transaction ends (PostgreSQL; SQLite's
  single writer serialises anyway), and `move_cursor` moves it only forward from where it was
  read: two processes never queue the same entry twice. `cursor_unless_busy` does the same
  but gives None at once where another transaction holds the row (PostgreSQL).
- `queue` ignores a delivery already queued (same endpoint and event).
- `claim` hands each due delivery to one claimer at a time: a lease that only the claimer's
  `record`, or its expiry, ends. At most one delivery per endpoint is out at once, so one slow
  receiver holds back only itself.
- `record` changes a delivery only while its claimer still holds the lease (else it returns
  False: another took it after the lease ran out).
- Reading an unknown id gives None or an empty list, never an error: the service decides.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from regionlock.domain.webhooks import Delivery, Endpoint
from regionlock.storage.db import Database, Transaction, epoch_ms, from_epoch_ms


def _ms(t: datetime | None) -> int | None:
    return None if t is None else epoch_ms(t)


_ENDPOINT_COLS = (
    "id, name, url, events, secret, previous_secret, previous_until, enabled, disabled_reason,"
    " created_at, created_by, start_seq, last_digest, failing_since"
)


def _endpoint(row: Sequence[Any]) -> Endpoint:
    created = from_epoch_ms(row[9])
    assert created is not None
    return Endpoint(
        id=row[0],
        name=row[1],
        url=row[2],
        events=tuple(json.loads(row[3])),
        secret=row[4],
        previous_secret=row[5],
        previous_until=from_epoch_ms(row[6]),
        enabled=bool(row[7]),
        disabled_reason=row[8],
        created_at=created,
        created_by=row[10],
        start_seq=int(row[11]),
        last_digest=row[12],
        failing_since=from_epoch_ms(row[13]),
    )


_DELIVERY_COLS = (
    "id, endpoint_id, event_id, event_type, audit_seq, body, created_at, status, attempts,"
    " next_at, last_attempt_at, last_status, last_error"
)


def _delivery(row: Sequence[Any]) -> Delivery:
    created = from_epoch_ms(row[6])
    assert created is not None
    return Delivery(
        id=row[0],
        endpoint_id=row[1],
        event_id=row[2],
        event_type=row[3],
        audit_seq=int(row[4]),
        body=str(row[5]).encode(),
        created_at=created,
        status=row[7],
        attempts=int(row[8]),
        next_at=from_epoch_ms(row[9]),
        last_attempt_at=from_epoch_ms(row[10]),
        last_status=None if row[11] is None else int(row[11]),
        last_error=row[12],
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt changes on its delivery (the service decides it)."""

    status: str  # pending (to be tried again at next_at) | delivered | failed
    attempted_at: datetime
    http_status: int | None
    error: str | None
    next_at: datetime | None


class WebhookStore(Protocol):
    """Endpoints, the audit cursor and deliveries (module docstring: the contract)."""

    def create_endpoint(self, tx: Transaction, endpoint: Endpoint) -> None: ...

    def endpoint(self, endpoint_id: str, tx: Transaction | None = None) -> Endpoint | None:
        """An endpoint that is not removed (read in `tx` when given); None otherwise."""
        ...

    def endpoints(self, tx: Transaction | None = None) -> list[Endpoint]:
        """Every endpoint not removed, oldest first."""
        ...

    def save_endpoint(self, tx: Transaction, endpoint: Endpoint) -> None:
        """Store an endpoint's changed fields (secrets, enabled, digest, failing_since)."""
        ...

    def remove_endpoint(self, tx: Transaction, endpoint_id: str) -> bool:
        """Remove it (kept for the deliveries' history) and drop what was still pending for
        it; False when there is no such endpoint."""
        ...

    def cursor_for_update(self, tx: Transaction) -> int:
        """The last audit entry read for events, locked until `tx` ends."""
        ...

    def cursor_unless_busy(self, tx: Transaction) -> int | None:
        """`cursor_for_update`, or None at once if another transaction holds the cursor."""
        ...

    def move_cursor(self, tx: Transaction, to: int) -> None: ...

    def queue(self, tx: Transaction, deliveries: Sequence[Delivery]) -> int:
        """Queue deliveries (pending, due at their `next_at`); those queued already are left."""
        ...

    def any_due(self, now: datetime) -> bool:
        """Whether a pending delivery is due (a read: callers claim only then)."""
        ...

    def backlog(self) -> int:
        """How many deliveries are pending, due or waiting for their next attempt."""
        ...

    def claim(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[Delivery]:
        """Due pending deliveries for `owner` until `lease_until`: at most `limit`, and at
        most one per endpoint, none of an endpoint with one out already."""
        ...

    def record(self, tx: Transaction, delivery_id: str, owner: str, outcome: Outcome) -> bool:
        """An attempt's outcome; the lease ends. False (nothing written) if `owner` no longer
        holds it."""
        ...

    def delivery(self, delivery_id: str) -> Delivery | None: ...

    def deliveries(
        self, endpoint_id: str, *, status: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """An endpoint's deliveries, the newest first."""
        ...

    def redeliver(self, tx: Transaction, delivery_id: str, now: datetime) -> bool:
        """Queue a delivery again, due now (an operator's redelivery); False if there is none
        or it is pending already."""
        ...

    def drop_pending(self, tx: Transaction, endpoint_id: str) -> int:
        """Give up what is pending for an endpoint (it was disabled)."""
        ...


class SqlWebhookStore:
    """Webhooks on SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- endpoints ---------------------------------------------------------------------------

    def create_endpoint(self, tx: Transaction, endpoint: Endpoint) -> None:
        e = endpoint
        tx.execute(
            f"INSERT INTO webhook_endpoints ({_ENDPOINT_COLS}) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.id,
                e.name,
                e.url,
                json.dumps(list(e.events)),
                e.secret,
                e.previous_secret,
                _ms(e.previous_until),
                1 if e.enabled else 0,
                e.disabled_reason,
                epoch_ms(e.created_at),
                e.created_by,
                e.start_seq,
                e.last_digest,
                _ms(e.failing_since),
            ),
        )

    def endpoint(self, endpoint_id: str, tx: Transaction | None = None) -> Endpoint | None:
        sql = f"SELECT {_ENDPOINT_COLS} FROM webhook_endpoints WHERE id = ? AND removed = 0"
        if tx is not None:
            row = tx.one(sql, (endpoint_id,))
        else:
            with self.db.read() as read:
                row = read.one(sql, (endpoint_id,))
        return _endpoint(row) if row else None

    def endpoints(self, tx: Transaction | None = None) -> list[Endpoint]:
        sql = f"SELECT {_ENDPOINT_COLS} FROM webhook_endpoints WHERE removed = 0"
        sql += " ORDER BY created_at, id"
        if tx is not None:
            return [_endpoint(r) for r in tx.all(sql)]
        with self.db.read() as read:
            return [_endpoint(r) for r in read.all(sql)]

    def save_endpoint(self, tx: Transaction, endpoint: Endpoint) -> None:
        e = endpoint
        tx.execute(
            "UPDATE webhook_endpoints SET name = ?, url = ?, events = ?, secret = ?,"
            " previous_secret = ?, previous_until = ?, enabled = ?, disabled_reason = ?,"
            " last_digest = ?, failing_since = ? WHERE id = ?",
            (
                e.name,
                e.url,
                json.dumps(list(e.events)),
                e.secret,
                e.previous_secret,
                _ms(e.previous_until),
                1 if e.enabled else 0,
                e.disabled_reason,
                e.last_digest,
                _ms(e.failing_since),
                e.id,
            ),
        )

    def remove_endpoint(self, tx: Transaction, endpoint_id: str) -> bool:
        changed = tx.execute(
            "UPDATE webhook_endpoints SET removed = 1, enabled = 0 WHERE id = ? AND removed = 0",
            (endpoint_id,),
        )
        if changed:
            self.drop_pending(tx, endpoint_id)
        return changed == 1

    # -- the cursor ----------------------------------------------------------------------------

    def cursor_for_update(self, tx: Transaction) -> int:
        lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
        row = tx.one(f"SELECT seq FROM webhook_cursor WHERE id = 1{lock}")
        assert row is not None, "migration 0008 inserts the cursor row"
        return int(row[0])

    def cursor_unless_busy(self, tx: Transaction) -> int | None:
        if tx.dialect != "postgresql":  # the one writer: nobody else holds it
            return self.cursor_for_update(tx)
        row = tx.one("SELECT seq FROM webhook_cursor WHERE id = 1 FOR UPDATE SKIP LOCKED")
        return None if row is None else int(row[0])

    def move_cursor(self, tx: Transaction, to: int) -> None:
        tx.execute("UPDATE webhook_cursor SET seq = ? WHERE id = 1 AND seq <= ?", (to, to))

    # -- deliveries ------------------------------------------------------------------------------

    def queue(self, tx: Transaction, deliveries: Sequence[Delivery]) -> int:
        return tx.executemany(
            f"INSERT INTO webhook_deliveries ({_DELIVERY_COLS}) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            [
                (
                    d.id,
                    d.endpoint_id,
                    d.event_id,
                    d.event_type,
                    d.audit_seq,
                    d.body.decode(),
                    epoch_ms(d.created_at),
                    d.status,
                    d.attempts,
                    _ms(d.next_at),
                    _ms(d.last_attempt_at),
                    d.last_status,
                    d.last_error,
                )
                for d in deliveries
            ],
        )

    def any_due(self, now: datetime) -> bool:
        with self.db.read() as tx:
            row = tx.one(
                "SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_at <= ?"
                " LIMIT 1",
                (epoch_ms(now),),
            )
        return row is not None

    def backlog(self) -> int:
        with self.db.read() as tx:
            row = tx.one("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
        return int(row[0]) if row else 0

    def claim(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[Delivery]:
        t = epoch_ms(now)
        with self.db.write() as tx:
            rows = tx.all(
                "SELECT id, endpoint_id FROM webhook_deliveries"
                " WHERE status = 'pending' AND next_at <= ?"
                " AND (lease_until IS NULL OR lease_until < ?)"
                " AND endpoint_id NOT IN (SELECT endpoint_id FROM webhook_deliveries"
                "   WHERE status = 'pending' AND lease_until >= ?)"
                " ORDER BY next_at, audit_seq LIMIT ?",
                (t, t, t, max(limit * 8, 32)),
            )
            taken: list[str] = []
            endpoints: set[str] = set()
            for delivery_id, endpoint_id in rows:
                if len(taken) >= limit or endpoint_id in endpoints:
                    continue
                claimed = tx.execute(
                    "UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ?"
                    " WHERE id = ? AND status = 'pending'"
                    " AND (lease_until IS NULL OR lease_until < ?)",
                    (owner, epoch_ms(lease_until), delivery_id, t),
                )
                if claimed == 1:
                    taken.append(delivery_id)
                    endpoints.add(endpoint_id)
            if not taken:
                return []
            marks = ", ".join("?" for _ in taken)
            found = tx.all(
                f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE id IN ({marks})", taken
            )
        by_id = {r[0]: _delivery(r) for r in found}
        return [by_id[i] for i in taken]

    def record(self, tx: Transaction, delivery_id: str, owner: str, outcome: Outcome) -> bool:
        o = outcome
        changed = tx.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_at = ?,"
            " last_attempt_at = ?, last_status = ?, last_error = ?, lease_owner = NULL,"
            " lease_until = NULL WHERE id = ? AND lease_owner = ? AND status = 'pending'",
            (
                o.status,
                _ms(o.next_at),
                epoch_ms(o.attempted_at),
                o.http_status,
                o.error,
                delivery_id,
                owner,
            ),
        )
        return changed == 1

    def delivery(self, delivery_id: str) -> Delivery | None:
        with self.db.read() as tx:
            row = tx.one(
                f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE id = ?", (delivery_id,)
            )
        return _delivery(row) if row else None

    def deliveries(
        self, endpoint_id: str, *, status: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        where, params = "endpoint_id = ?", [endpoint_id]
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        with self.db.read() as tx:
            rows = tx.all(
                f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE {where}"
                " ORDER BY audit_seq DESC, id DESC LIMIT ?",
                [*params, limit],
            )
        return [_delivery(r) for r in rows]

    def redeliver(self, tx: Transaction, delivery_id: str, now: datetime) -> bool:
        changed = tx.execute(
            "UPDATE webhook_deliveries SET status = 'pending', next_at = ?, lease_owner = NULL,"
            " lease_until = NULL WHERE id = ? AND status <> 'pending'",
            (epoch_ms(now), delivery_id),
        )
        return changed == 1

    def drop_pending(self, tx: Transaction, endpoint_id: str) -> int:
        return tx.execute(
            "UPDATE webhook_deliveries SET status = 'dropped', next_at = NULL, lease_owner = NULL,"
            " lease_until = NULL WHERE endpoint_id = ? AND status = 'pending'",
            (endpoint_id,),
        )
