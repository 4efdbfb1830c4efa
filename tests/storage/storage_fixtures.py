"""Helpers of the storage suite: stores (SQLite and, when configured, PostgreSQL), and
registered test devices with keys and their signed check-ins."""

from __future__ import annotations

import os
import secrets
import select
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from regionlock.domain.device import DeviceRecord, luhn_check_digit, parse_imei
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.services.registry import Registry
from regionlock.signing import CheckinRequest, SigningKey, sign_checkin
from regionlock.storage import Database, Stores
from regionlock.storage.migrate import migrate
from regionlock.storage.webhooks import SqlWebhookStore

PG_URL = os.environ.get("REGIONLOCK_TEST_POSTGRES_URL")


def open_store(dialect: str, where: Path) -> Iterator[Database]:
    """A migrated, empty store: a SQLite file under `where`, or a PostgreSQL schema of its own
    (dropped afterwards)."""
    if dialect == "sqlite":
        where.mkdir(parents=True, exist_ok=True)
        database = Database(f"sqlite:///{where / 'test.db'}")
    else:
        if not PG_URL:
            pytest.skip("REGIONLOCK_TEST_POSTGRES_URL is not set")
        database = Database(PG_URL, schema=f"t_{uuid.uuid4().hex[:12]}")
    migrate(database)
    yield database
    if database.dialect == "postgresql":
        with database.write() as tx:
            tx.execute(f'DROP SCHEMA "{database.schema}" CASCADE')
    database.close()


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)


def end_backend(db: Database, conn: Any) -> None:
    """End the PostgreSQL backend of `conn` (a driver connection of `db`), as a restart or an
    administrator would, and wait until the server's last words are on its socket."""
    import psycopg

    with psycopg.connect(db.url.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
    waiting = select.poll()
    waiting.register(conn.fileno(), select.POLLIN)
    assert waiting.poll(10_000), "the server did not end the connection within 10 s"


def imei(n: int) -> str:
    body = f"35693803{n:06d}"
    return body + str(luhn_check_digit(body))


def checkin(
    key: SigningKey,
    kid: str,
    counter: int,
    at: datetime,
    signals: Mapping[str, Any],
    nonce: str | None = None,
) -> str:
    req = CheckinRequest(nonce or secrets.token_urlsafe(16), counter, int(at.timestamp()), signals)
    return sign_checkin(req, key, kid)


class Fleet:
    """`n` devices sold in the UAE, each with its own key, in no store yet."""

    def __init__(self, n: int) -> None:
        id_key = secrets.token_bytes(32)
        self.keys = [SigningKey.generate(T0) for _ in range(n)]
        self.records = [
            DeviceRecord.create(
                imeis=(parse_imei(imei(i + 1)),),
                id_key=id_key,
                serial=f"SN{i + 1}",
                model="X1",
                sales_region="AE",
                distributor="D7",
                batch="B1",
                public_key=k.private_key.public_key().public_bytes_raw(),
            )
            for i, k in enumerate(self.keys)
        ]

    def register(self, db: Database) -> None:
        """Import the devices into `db` and activate the 2021 gray-market policy there."""
        with db.write() as tx:
            Registry.of(Stores.on(db)).devices.import_batch(tx, self.records, at=0)
        PolicyAdmin.of(Stores.on(db)).activate(
            (EXAMPLES / "gray-market-2021.toml").read_text(),
            source="t",
            actor="test",
            reason="test",
            now=T0,
        )

    def token(
        self, i: int, counter: int, at: datetime, signals: Mapping[str, Any], nonce: str = ""
    ) -> str:
        return checkin(self.keys[i], self.records[i].id, counter, at, signals, nonce or None)


@contextmanager
def cursor_held_elsewhere(db: Database) -> Iterator[None]:
    """Inside the block, another thread's write transaction holds the webhook outbox's
    cursor (`cursor_for_update`), as another node fanning out would (PostgreSQL)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write() as tx:
            SqlWebhookStore(db).cursor_for_update(tx)
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        yield
    finally:
        release.set()
        t.join()
