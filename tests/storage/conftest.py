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


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'test.db'}")
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
