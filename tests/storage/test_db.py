"""The SQLite writer discipline across processes: an OS file lock, held for exactly the write."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
from pathlib import Path

import pytest

from regionlock.storage import Database
from regionlock.storage.migrate import migrate


def _lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing the descriptor releases a lock it got
    return True


def test_a_sqlite_write_holds_the_writer_file_lock_and_only_then(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(db)
    lock = tmp_path / "w.db-writer"
    assert _lock_is_free(lock)
    with db.write() as tx:
        tx.execute("UPDATE audit_shards SET seq = seq WHERE shard = 0")
        assert not _lock_is_free(lock)  # another process would wait here, woken at COMMIT
    assert _lock_is_free(lock)
    with pytest.raises(RuntimeError), db.write():
        assert not _lock_is_free(lock)
        raise RuntimeError("rolled back")
    assert _lock_is_free(lock)
    db.close()


def _bump(url: str, n: int) -> None:
    db = Database(url)
    for _ in range(n):
        with db.write() as tx:
            row = tx.one("SELECT seq FROM audit_shards WHERE shard = 0")
            assert row is not None
            tx.execute("UPDATE audit_shards SET seq = ? WHERE shard = 0", (int(row[0]) + 1,))
    db.close()


def test_writers_in_several_processes_lose_no_update(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    db = Database(url)
    migrate(db)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_bump, args=(url, 150)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    with db.read() as tx:
        assert tx.one("SELECT seq FROM audit_shards WHERE shard = 0") == (450,)
    db.close()


def _bump_many(db: Database, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        with db.write() as tx:
            tx.execute("UPDATE audit_shards SET seq = ? WHERE shard = 0", (i,))


def test_no_commit_checkpoints_and_a_thread_of_its_own_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import time

    from regionlock.storage import db as db_module

    main = tmp_path / "c.db"

    def digest() -> str:
        return hashlib.sha256(main.read_bytes()).hexdigest()

    # With the checkpointer asleep, 1,500 commits (past SQLite's default 1,000-page automatic
    # checkpoint) leave the database file as it was: everything is still in the WAL.
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 3600.0)
    db = Database(f"sqlite:///{main}")
    migrate(db)
    before = digest()
    _bump_many(db, 1500)
    assert digest() == before
    db.close()
    assert db._checkpointer is None  # stopped with the database
    # Awake, it copies the log back into the file by itself, within a few rounds.
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 0.05)
    db = Database(f"sqlite:///{main}")
    before = digest()
    _bump_many(db, 1500, start=10_000)
    deadline = time.monotonic() + 10
    while digest() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert digest() != before
    with db.read() as tx:
        assert tx.one("SELECT seq FROM audit_shards WHERE shard = 0") == (11_499,)
    db.close()


def test_the_log_stays_bounded_under_writes_and_reads_and_writers_wait_on_their_own_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the size limit the checkpointer restarts the log while holding the writers' own
    locks: the log is cut back to the limit, and no write meets SQLite's busy handler (whose
    growing sleeps made the p99 of check-ins under load, bench/README.md)."""
    import threading
    import time

    from regionlock.storage import db as db_module

    limit = 256 * 1024
    monkeypatch.setattr(db_module, "WAL_SIZE_LIMIT", limit)
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 0.01)
    main = tmp_path / "w.db"
    db = Database(f"sqlite:///{main}")
    migrate(db)
    stop = threading.Event()
    busy: list[str] = []

    def read() -> None:  # short read transactions without pause, as a server's are
        while not stop.is_set():
            with db.read() as tx:
                tx.one("SELECT count(*) FROM audit_shards")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    largest = cut_back = 0
    deadline = time.monotonic() + 3
    i = 0
    try:
        while time.monotonic() < deadline:
            try:
                with db.write() as tx:
                    tx.execute("UPDATE audit_shards SET seq = ? WHERE shard = 0", (i,))
                    tx.execute("CREATE TABLE IF NOT EXISTS pad (b BLOB)")
                    tx.execute("INSERT INTO pad VALUES (zeroblob(8000))")
            except Exception as exc:  # a write that met a busy database
                busy.append(str(exc))
            i += 1
            wal = main.with_name(main.name + "-wal")
            size = wal.stat().st_size if wal.exists() else 0
            largest = max(largest, size)
            checkpointer = db._checkpointer
            if checkpointer is not None and checkpointer.restarts and size <= limit:
                cut_back += 1
    finally:
        stop.set()
        for t in readers:
            t.join()
        checkpointer = db._checkpointer
        db.close()
    assert busy == []
    assert checkpointer is not None and checkpointer.restarts > 0  # the limit was reached
    assert cut_back > 0  # ... and the log was cut back to it
    # Writes come faster here than in a service (8 KB each, thousands a second) and the
    # checkpointer's thread waits for the GIL: the log overshoots between two of its rounds
    # (2.3 MB at most in the runs seen), and never grows beyond.
    assert largest < 16 * limit, (largest, i)


def test_a_writer_stuck_in_another_process_makes_a_clear_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from regionlock.storage import db as db_module

    monkeypatch.setattr(db_module, "WRITER_LOCK_TIMEOUT_S", 0.3)
    (tmp_path / "s.db").touch(mode=0o640)
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    migrate(db)
    # The lock file takes the database's permissions, as SQLite's -wal and -shm do.
    assert (tmp_path / "s.db-writer").stat().st_mode & 0o777 == 0o640
    holder = os.open(tmp_path / "s.db-writer", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another process, stuck mid-write
    started = time.monotonic()
    # Answered 503 store-unavailable with Retry-After at the API edge.
    with pytest.raises(db_module.StoreUnavailable, match="database is locked"), db.write():
        pass
    assert 0.3 <= time.monotonic() - started < 5
    os.close(holder)  # gone: the next write goes through
    with db.write() as tx:
        tx.execute("UPDATE audit_shards SET seq = 7 WHERE shard = 0")
    db.close()
