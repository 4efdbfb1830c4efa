"""A connection per thread, and none left open by threads that ended: the server's worker
threads end after 10 s idle and an import's writers with their file, and each one's connection
used to stay open until the process ended (PostgreSQL then refused new clients)."""

from __future__ import annotations

import threading
from typing import Any

from regionlock.storage import Database


def in_a_thread(db: Database) -> Any:
    """The connection a thread used for one read, after the thread has ended."""
    used: list[Any] = []

    def read() -> None:
        with db.read() as tx:
            tx.one("SELECT 1")
        used.append(db._conn())

    t = threading.Thread(target=read)
    t.start()
    t.join()
    return used[0]


def is_closed(db: Database, conn: Any) -> bool:
    if db.dialect == "postgresql":
        return bool(conn.closed)
    try:
        conn.execute("SELECT 1")
    except Exception:  # sqlite3.ProgrammingError: Cannot operate on a closed database.
        return True
    return False


def test_the_connections_of_ended_threads_are_closed_by_the_next_one_opened(
    db: Database,
) -> None:
    with db.read() as tx:  # this thread's own, which stays
        tx.one("SELECT 1")
    mine = db._conn()
    ended = [in_a_thread(db) for _ in range(20)]

    # Each thread's connection was closed when the next thread opened its own; the last
    # one's stays open until another is opened.
    assert [is_closed(db, c) for c in ended] == [True] * 19 + [False]
    assert len(db.open_connections()) == 2
    in_a_thread(db)
    assert is_closed(db, ended[-1]) and len(db.open_connections()) == 2
    assert not is_closed(db, mine)
    with db.read() as tx:
        assert tx.one("SELECT 1") == (1,)


def test_a_thread_that_is_alive_keeps_its_connection(db: Database) -> None:
    go, done = threading.Event(), threading.Event()
    held: list[Any] = []

    def hold() -> None:
        with db.read() as tx:
            tx.one("SELECT 1")
        held.append(db._conn())
        go.set()
        done.wait(10)
        with db.read() as tx:  # still its own, still open
            held.append(tx.one("SELECT 1"))

    t = threading.Thread(target=hold)
    t.start()
    assert go.wait(10)
    in_a_thread(db)  # opens a connection: the live thread's is not an orphan
    assert not is_closed(db, held[0])
    done.set()
    t.join()
    assert held[1] == (1,)
