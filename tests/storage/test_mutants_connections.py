"""Found by mutation testing of `Database._connect`, `open_connections`, `_discard` and the
SQLite checkpointer's loop (docs/test-quality.md, "The import's writers, day partitions and
ended threads' connections"): each test below failed on a mutant that the connection, disk
and outage tests let live. Both stores, unless a test says SQLite."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from regionlock.storage import Database
from regionlock.storage import db as db_module
from regionlock.storage.db import StoreUnavailable
from regionlock.storage.migrate import migrate


def test_a_failing_checkpoint_is_logged_once_until_one_succeeds_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Rounds 1-3 fail (from the very first: a disk full at start), 4 succeeds, 5-6 fail,
    and the rest succeed: two warnings, one for each run of failures (a disk that stays full
    would otherwise log ten lines a second)."""
    real, rounds = db_module._Checkpointer.round, [0]

    def round_(self: db_module._Checkpointer, conn: sqlite3.Connection) -> None:
        rounds[0] += 1
        if rounds[0] in {1, 2, 3, 5, 6}:
            raise sqlite3.OperationalError(f"disk I/O error ({rounds[0]})")
        real(self, conn)

    monkeypatch.setattr(db_module._Checkpointer, "round", round_)
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 0.005)
    main = tmp_path / "c.db"
    db = Database(f"sqlite:///{main}")
    try:
        with caplog.at_level(logging.WARNING, logger="regionlock.storage.db"):
            migrate(db)
            deadline = time.monotonic() + 30
            while rounds[0] < 10:
                assert time.monotonic() < deadline, "the checkpointer stopped"
                time.sleep(0.01)
            db.close()
    finally:
        db.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "regionlock.storage.db"]
    assert warnings == [
        f"SQLite checkpoint of {main} failed: disk I/O error (1)",
        f"SQLite checkpoint of {main} failed: disk I/O error (5)",
    ]


def test_a_connection_replaced_after_an_outage_is_no_longer_listed(db: Database) -> None:
    """A connection found closed (a restarted server), or whose backend was killed during a
    read, is replaced, and only its successor is listed open: a thread that lived through
    many outages would otherwise keep every dead connection it had."""
    if db.dialect != "postgresql":
        pytest.skip("only PostgreSQL connections are replaced")
    with db.read() as tx:
        tx.one("SELECT 1")
    first = db._conn()
    first.close()
    with db.read() as tx:
        assert tx.one("SELECT 1") == (1,)
    second = db._conn()
    assert second is not first
    assert db.open_connections() == [second]

    pid = second.info.backend_pid
    with pytest.raises(StoreUnavailable), db.read() as tx:
        tx.one("SELECT 1")
        other = Database(db.url.url)
        try:
            with other.read() as killer:
                killer.one("SELECT pg_terminate_backend(?)", (pid,))
        finally:
            other.close()
        tx.one("SELECT 1")
    assert db.open_connections() == []
    with db.read() as tx:
        assert tx.one("SELECT 1") == (1,)
    (third,) = db.open_connections()
    assert third is db._conn() and third not in (first, second)


def test_a_round_that_finds_no_log_is_a_passive_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No log file (none yet, or just truncated away) is an empty log: a passive round, never
    a restart, even with no room allowed at all. Rounds are run here by hand."""
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 3600.0)
    monkeypatch.setattr(db_module, "WAL_SIZE_LIMIT", 0)
    main = tmp_path / "c.db"
    db = Database(f"sqlite:///{main}")
    conn = None
    try:
        migrate(db)
        checkpointer = db._checkpointer
        assert checkpointer is not None
        checkpointer._wal = tmp_path / "gone-wal"
        conn = sqlite3.connect(main, isolation_level=None)
        checkpointer.round(conn)
        assert checkpointer.restarts == 0
    finally:
        if conn is not None:
            conn.close()
        db.close()


def test_a_sqlite_store_in_directories_not_made_yet_makes_them(tmp_path: Path) -> None:
    main = tmp_path / "a" / "b" / "store.db"
    db = Database(f"sqlite:///{main}")
    try:
        with db.read() as tx:
            assert tx.one("SELECT 1") == (1,)
    finally:
        db.close()
    assert main.is_file()
