"""The SQLite writer discipline across processes: an OS file lock, held for exactly the write."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def test_a_log_past_the_limit_is_restarted_under_the_writers_locks_and_cut_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the size limit a checkpoint round restarts the log while holding the writers'
    own locks (so no write meets SQLite's busy handler, whose growing sleeps made the p99 of
    check-ins under load: bench/README.md), and the next write cuts the file back to the
    limit. Rounds are run here by hand: the checkpointer's thread sleeps."""
    import sqlite3

    from regionlock.storage import db as db_module

    limit = 256 * 1024
    monkeypatch.setattr(db_module, "WAL_SIZE_LIMIT", limit)
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 3600.0)
    monkeypatch.setattr(db_module, "RESTART_WAIT_S", 10.0)  # the service's 50 ms, for a slow VM
    main = tmp_path / "w.db"
    wal = main.with_name(main.name + "-wal")
    db = Database(f"sqlite:///{main}")
    migrate(db)

    def pad(n: int) -> None:
        for _ in range(n):
            with db.write() as tx:
                tx.execute("CREATE TABLE IF NOT EXISTS pad (b BLOB)")
                tx.execute("INSERT INTO pad VALUES (zeroblob(8000))")

    pad(10)
    checkpointer = db._checkpointer
    assert checkpointer is not None
    held = note_holds(db, checkpointer, monkeypatch)
    synced: list[str] = []
    real_syncfs = db_module._syncfs

    def noting_syncfs(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        held.append(False)  # in order among the locks' entries
        real_syncfs(fd)

    monkeypatch.setattr(db_module, "_syncfs", noting_syncfs)
    assert checkpointer.leading()  # as its thread finds before each round
    conn = sqlite3.connect(main, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=0")  # as the checkpointer's own: `round` polls readers
    try:
        checkpointer.round(conn)  # the migration's log is past the limit already
        pad(1)
        assert wal.stat().st_size <= limit
        held.clear()
        synced.clear()
        restarts = checkpointer.restarts
        checkpointer.round(conn)  # below the limit: a passive one, no lock taken
        assert (held, checkpointer.restarts) == ([], restarts)
        pad(60)  # about 500 KB of log
        assert wal.stat().st_size > limit
        # A reader on the log's last snapshot, done 0.1 s later: the restart waits for it,
        # so the next write starts the log over (a passive checkpoint would not wait, and
        # that write would find the reader still there and append).
        reading, release = threading.Event(), threading.Event()
        reader = threading.Thread(target=read_until, args=(db, reading, release))
        reader.start()
        assert reading.wait(5)
        threading.Timer(0.1, release.set).start()
        checkpointer.round(conn)
        # The database's file system was synced first, outside the locks (so the restart's
        # pause has no backlog of copied pages to write out), through the lock file beside
        # it, never a descriptor of the database; then the restart held the locks.
        assert (held, checkpointer.restarts) == ([False, True], restarts + 1)
        assert synced == [f"{main}-checkpoint"]
        pad(1)
        reader.join(5)
        assert wal.stat().st_size <= limit
        with db.read() as tx:
            assert tx.one("SELECT count(*) FROM pad") == (72,)
    finally:
        conn.close()
        db.close()


def test_a_round_leaves_sqlites_own_locks_on_the_database_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's POSIX locks belong to the process, and closing any descriptor of the file
    drops them all: another process closing its last connection would then delete the live
    log, and commits made after were lost (found in review of c4a7a56, which synced through
    a descriptor of its own). A round past the limit keeps them; Linux's lock table says so."""
    import sqlite3

    from regionlock.storage import db as db_module

    monkeypatch.setattr(db_module, "WAL_SIZE_LIMIT", 0)
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 3600.0)
    main = tmp_path / "k.db"
    db = Database(f"sqlite:///{main}")
    migrate(db)
    inode = f":{main.stat().st_ino} "

    def locks() -> int:
        with open("/proc/locks") as table:
            return sum(inode in row and f" {os.getpid()} " in row for row in table)

    checkpointer = db._checkpointer
    assert checkpointer is not None and checkpointer.leading()
    conn = sqlite3.connect(main, isolation_level=None)
    try:
        before = locks()
        assert before > 0
        with db.write() as tx:
            tx.execute("CREATE TABLE pad (b BLOB)")
        checkpointer.round(conn)
        assert checkpointer.restarts == 1 and locks() == before
    finally:
        conn.close()
        db.close()


def test_a_restart_gives_up_on_a_reader_that_holds_on_and_frees_the_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader on an older snapshot past `RESTART_WAIT_S`: the round ends without a restart
    and the writers go on (the next round tries again)."""
    import sqlite3

    from regionlock.storage import db as db_module

    monkeypatch.setattr(db_module, "WAL_SIZE_LIMIT", 0)
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 3600.0)
    monkeypatch.setattr(db_module, "RESTART_WAIT_S", 0.2)
    # Whatever the reader holds back, the restart is tried (the test below: it is not).
    monkeypatch.setattr(db_module, "RESTART_BACKLOG", float("inf"))
    main = tmp_path / "r.db"
    db = Database(f"sqlite:///{main}")
    migrate(db)
    with db.write() as tx:
        tx.execute("CREATE TABLE pad (b BLOB)")
    reading, release = threading.Event(), threading.Event()
    reader = threading.Thread(target=read_until, args=(db, reading, release))
    reader.start()
    assert reading.wait(5)
    with db.write() as tx:  # a commit after the reader's snapshot: it now holds the log
        tx.execute("INSERT INTO pad VALUES (zeroblob(8000))")
    checkpointer = db._checkpointer
    assert checkpointer is not None and checkpointer.leading()
    held = note_holds(db, checkpointer, monkeypatch)
    conn = sqlite3.connect(main, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=0")
    try:
        started = time.monotonic()
        checkpointer.round(conn)
        waited = time.monotonic() - started
        assert checkpointer.restarts == 0 and 0.2 <= waited < 5 and held == [True]
        assert not db._write_lock.locked()
        # That reader is a long one: while it stays, rounds hold no writer for it again.
        for _ in range(3):
            with db.write() as tx:
                tx.execute("INSERT INTO pad VALUES (zeroblob(10))")
            checkpointer.round(conn)
        assert (held, checkpointer.restarts) == ([True], 0)
        release.set()
        reader.join(5)
        with db.write() as tx:
            tx.execute("INSERT INTO pad VALUES (zeroblob(10))")
        checkpointer.round(conn)  # the reader gone: the copy passes it, and restarts
        assert (held, checkpointer.restarts) == ([True, True], 1)
    finally:
        release.set()
        conn.close()
        db.close()


def test_a_reader_holding_the_log_back_is_left_alone_and_the_writers_are_never_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long reader on an older snapshot (a backup, an export) while the log is past the
    limit: rounds neither restart nor take the writers' locks, so writes go on (it used to
    wait a second for that reader in every round, with every writer held: check-ins all but
    stopped for as long as a backup ran); past the hard limit one restart is tried; once the
    reader is gone, the next round restarts."""
    import sqlite3

    from regionlock.storage import db as db_module

    monkeypatch.setattr(db_module, "WAL_SIZE_LIMIT", 0)
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 3600.0)
    main = tmp_path / "b.db"
    db = Database(f"sqlite:///{main}")
    migrate(db)
    with db.write() as tx:
        tx.execute("CREATE TABLE pad (b BLOB)")
    checkpointer = db._checkpointer
    assert checkpointer is not None
    held = note_holds(db, checkpointer, monkeypatch)
    assert checkpointer.leading()
    reading, release = threading.Event(), threading.Event()
    reader = threading.Thread(target=read_until, args=(db, reading, release))
    reader.start()
    assert reading.wait(5)
    conn = sqlite3.connect(main, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=0")
    try:
        for _ in range(5):
            with db.write() as tx:  # commits past the reader's snapshot
                tx.execute("INSERT INTO pad VALUES (zeroblob(8000))")
            checkpointer.round(conn)
        assert (held, checkpointer.restarts) == ([], 0)
        # Past the hard limit one restart is tried all the same (it gives up on this reader
        # after `RESTART_WAIT_S`), and none again while that reader stays.
        monkeypatch.setattr(db_module, "WAL_HARD_LIMIT", 0)
        for _ in range(3):
            checkpointer.round(conn)
        assert (held, checkpointer.restarts) == ([True], 0)
        release.set()
        reader.join(5)
        with db.write() as tx:
            tx.execute("INSERT INTO pad VALUES (zeroblob(10))")
        checkpointer.round(conn)
        assert (held, checkpointer.restarts) == ([True, True], 1)
    finally:
        release.set()
        conn.close()
        db.close()


def test_one_process_at_a_time_checkpoints_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores on one file (as two worker processes: the lock is the open file's), each
    with its checkpointer running: only the one holding `FILE-checkpoint` runs rounds, until
    it stops; then the other takes over."""
    from regionlock.storage import db as db_module

    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 0.002)
    rounds: list[int] = []
    real = db_module._Checkpointer.round

    def noting(self: db_module._Checkpointer, conn: Any) -> None:
        rounds.append(id(self))
        real(self, conn)

    monkeypatch.setattr(db_module._Checkpointer, "round", noting)
    main = tmp_path / "two.db"
    first, second = Database(f"sqlite:///{main}"), Database(f"sqlite:///{main}")
    try:
        migrate(first)
        with second.write() as tx:  # its checkpointer starts too
            tx.execute("CREATE TABLE pad (b BLOB)")
        a, b = first._checkpointer, second._checkpointer
        assert a is not None and b is not None
        wait_until(lambda: len(rounds) >= 50)
        time.sleep(0.05)  # both threads have had rounds' worth of turns
        leader, other = (a, second) if rounds[0] == id(a) else (b, first)
        assert set(rounds) == {id(leader)}
        (first if leader is a else second).close()
        before = len(rounds)
        wait_until(lambda: len(rounds) >= before + 20)
        assert set(rounds[before:]) == {id(other._checkpointer)}
    finally:
        first.close()
        second.close()


def wait_until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, "the checkpointers stopped"
        time.sleep(0.005)


def note_holds(db: Database, checkpointer: Any, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A list that gets, each time `checkpointer` takes the writers' locks, whether this
    process's writer lock is then held (it should be: True)."""
    held: list[bool] = []
    real = checkpointer._exclusive

    @contextmanager
    def noting() -> Iterator[None]:
        with real():
            held.append(db._write_lock.locked())
            yield

    monkeypatch.setattr(checkpointer, "_exclusive", noting)
    return held


def read_until(db: Database, reading: threading.Event, release: threading.Event) -> None:
    with db.read() as tx:
        tx.one("SELECT count(*) FROM pad")
        reading.set()
        release.wait(5)


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
