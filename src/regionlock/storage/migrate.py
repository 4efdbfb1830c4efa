"""Versioned migrations shipped in the package: numbered SQL files per dialect.

`migrate(db)` applies, in order and each in its own transaction, every file of
`storage/migrations/<dialect>/` whose number is above the database's version, and records it in
`schema_migrations`. It is idempotent and safe to run from several processes at once
(PostgreSQL: an advisory lock; SQLite: the single-writer lock and BEGIN IMMEDIATE).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources

from regionlock.storage.db import Database

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x7265676C  # "regl": the advisory lock key for migrations


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available(dialect: str) -> list[Migration]:
    """The migrations shipped for a dialect, in order."""
    folder = resources.files("regionlock").joinpath("storage", "migrations", dialect)
    found = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda x: x.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations for {dialect} are not numbered 1..n: {found}")
    return found


def current_version(db: Database) -> int:
    with db.write() as tx:
        _ensure_table(tx)
        row = tx.one("SELECT MAX(version) FROM schema_migrations")
    return int(row[0]) if row and row[0] is not None else 0


def _ensure_table(tx: object) -> None:
    from regionlock.storage.db import Transaction

    assert isinstance(tx, Transaction)
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )


def migrate(db: Database, *, upto: int | None = None) -> list[Migration]:
    """Bring the schema up to date (or to version `upto`); returns the migrations applied now."""
    applied: list[Migration] = []
    for migration in available(db.dialect):
        if upto is not None and migration.version > upto:
            break
        with db.write() as tx:
            _ensure_table(tx)
            if db.dialect == "postgresql":
                tx.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_ID,))
            done = tx.one("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,))
            if done:
                continue
            tx.script(migration.sql)
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, int(time.time() * 1000)),
            )
            applied.append(migration)
    return applied
