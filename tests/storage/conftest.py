"""One conformance suite, every backend: each storage test runs on SQLite and on PostgreSQL.

PostgreSQL runs when REGIONLOCK_TEST_POSTGRES_URL is set (.ci/run sets it to the machine's local
server); each test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from regionlock.storage import Database
from regionlock.storage.migrate import migrate

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


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from open_store(request.param, tmp_path)
