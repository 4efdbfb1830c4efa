"""API tests run in process against both stores (SQLite file, PostgreSQL schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import database_url
from fastapi.testclient import TestClient

from regionlock.api.app import create_app
from regionlock.geo import Locator
from regionlock.settings import Settings


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    # A database per test keeps the app's own connections isolated (no search_path games).
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def client(db_url: str, locator: Locator) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url), locator=locator)
    with TestClient(app) as c:
        yield c
