"""A database of its own for a test: a SQLite file, or a PostgreSQL database created for it and
dropped afterwards (a database, not a schema, when a server's or a subprocess's own
connections must land in it). One place for what five test modules each did their own way."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from regionlock.storage import Database
from regionlock.storage.migrate import migrate

PG_URL = os.environ.get("REGIONLOCK_TEST_POSTGRES_URL")


@contextmanager
def postgres_database(*, migrated: bool = True) -> Iterator[str]:
    """The URL of a fresh PostgreSQL database (skips the test when none is configured)."""
    if not PG_URL:
        pytest.skip("REGIONLOCK_TEST_POSTGRES_URL is not set")
    name = f"rl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:  # not inside a transaction
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        if migrated:
            db = Database(url)
            migrate(db)
            db.close()
        yield url
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextmanager
def database_url(dialect: str, folder: Path, *, migrated: bool = True) -> Iterator[str]:
    """A fresh store's URL: `sqlite:///<folder>/test.db` or `postgres_database`; `migrated`:
    brought to the current schema before the test (else left empty, for a test that migrates
    it itself or checks that it must be)."""
    if dialect == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'test.db'}"
        if migrated:
            db = Database(url)
            migrate(db)
            db.close()
        yield url
        return
    with postgres_database(migrated=migrated) as url:
        yield url
