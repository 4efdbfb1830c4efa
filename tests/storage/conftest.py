"""One conformance suite, every backend: each storage test runs on SQLite and on PostgreSQL.

PostgreSQL runs when REGIONLOCK_TEST_POSTGRES_URL is set (.ci/run sets it to the machine's local
server); each test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import database_url
from storage_fixtures import open_store

from regionlock.storage import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from open_store(request.param, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty store with no schema: for a test that migrates it in steps itself."""
    with database_url(request.param, tmp_path, migrated=False) as url:
        db = Database(url)
        yield db
        db.close()
