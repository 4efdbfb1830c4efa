"""API tests run in process against both stores (SQLite file, PostgreSQL schema)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from regionlock.api.app import create_app
from regionlock.geo import Locator
from regionlock.settings import Settings
from regionlock.storage import Database
from regionlock.storage.migrate import migrate

PG_URL = os.environ.get("REGIONLOCK_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'api.db'}"
        return
    if not PG_URL:
        pytest.skip("REGIONLOCK_TEST_POSTGRES_URL is not set")
    # A database per test keeps the app's own connections isolated (no search_path games).
    name = f"rl_{uuid.uuid4().hex[:12]}"
    admin = Database(PG_URL)
    with admin._conn().cursor() as cur:  # CREATE DATABASE cannot run in a transaction
        cur.execute(f'CREATE DATABASE "{name}"')
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    migrate(db)
    db.close()
    yield url
    with admin._conn().cursor() as cur:
        cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def client(db_url: str, locator: Locator) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url), locator=locator)
    with TestClient(app) as c:
        yield c
