"""Pipelined transactions (`Database.write(pipelined=True)`, PostgreSQL's pipeline mode) on
both backends: what `send` returns is what `one`, `all` and `execute` return; an error of a
statement sent without waiting fails the transaction where it is first read, and nothing of
it is kept; the check-in path runs its transactions pipelined."""

from __future__ import annotations

import contextlib
import tempfile
from typing import Any

import pytest
from storage_fixtures import T0, Fleet

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinCall, CheckinService
from regionlock.settings import Settings
from regionlock.storage import Database, Stores
from regionlock.storage.checkins import SqlCheckinStore

BERLIN = {"gps": {"lat": 52.52, "lon": 13.405, "accuracy_m": 10}}


@pytest.fixture
def pair(db: Database) -> Database:
    with db.write() as tx:
        tx.execute("CREATE TABLE pair (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        tx.execute("INSERT INTO pair (k, v) VALUES (1, 10), (2, 20)")
    return db


@pytest.mark.parametrize("pipelined", [False, True])
def test_what_is_sent_reads_back_as_what_is_run(pair: Database, pipelined: bool) -> None:
    db = pair
    with db.write(pipelined=pipelined) as tx:
        bumped = tx.send("UPDATE pair SET v = v + 1")
        many = tx.send_many("UPDATE pair SET v = v + ? WHERE k = ?", [(5, 1), (5, 3)])
        none = tx.send_many("UPDATE pair SET v = 0 WHERE k = ?", [])
        rows = tx.send("SELECT k, v FROM pair ORDER BY k")
        one = tx.send("SELECT v FROM pair WHERE k = ?", (2,))
        assert one.one() == (21,)  # a later read first: the earlier ones are in by then
        assert rows.rows() == [(1, 16), (2, 21)]
        assert (bumped.rowcount(), many.rowcount(), none.rowcount()) == (2, 1, 0)
        assert tx.execute("UPDATE pair SET v = v WHERE k > ?", (0,)) == 2  # waits, as ever
        assert tx.send("SELECT v FROM pair WHERE k = 9").one() is None
        assert tx.send("UPDATE pair SET v = v WHERE k = 1").rowcount() == 1  # nothing after it
        if db.dialect == "postgresql":  # psycopg's pipeline mode, ON (1) or OFF (0)
            assert int(tx._conn.info.pipeline_status) == int(pipelined)
    with db.read(pipelined=pipelined) as tx:
        assert tx.all("SELECT k, v FROM pair ORDER BY k") == [(1, 16), (2, 21)]


@pytest.mark.parametrize("pipelined", [False, True])
def test_an_error_sent_without_waiting_fails_the_whole_transaction(
    pair: Database, pipelined: bool
) -> None:
    """The duplicate key is sent, not waited for; the read after it is where it shows (at
    once on SQLite). Nothing of the transaction is kept, and the store serves on."""
    db = pair
    with pytest.raises(Exception) as raised, db.write(pipelined=pipelined) as tx:
        tx.send("UPDATE pair SET v = 99 WHERE k = 1")
        tx.send("INSERT INTO pair (k, v) VALUES (2, 0)")
        tx.send("SELECT v FROM pair WHERE k = 1").one()
    assert db.is_unique_violation(raised.value)
    with db.write(pipelined=pipelined) as tx:
        assert tx.send("SELECT v FROM pair WHERE k = 1").one() == (10,)  # the update is gone


def test_an_error_caught_inside_still_keeps_nothing(pair: Database) -> None:
    """A caller that catches a statement's error and carries on: the transaction cannot be
    kept, and leaving it says so instead of committing quietly."""
    db = pair
    if db.dialect != "postgresql":
        pytest.skip("SQLite raises at the statement, and a failed statement alone is undone")
    with pytest.raises(Exception) as raised, db.write(pipelined=True) as tx:
        tx.send("UPDATE pair SET v = 99 WHERE k = 1")
        tx.send("INSERT INTO pair (k, v) VALUES (2, 0)")
        with contextlib.suppress(Exception):
            tx.send("SELECT v FROM pair WHERE k = 1").one()
    assert not db.is_unique_violation(raised.value)  # not the error caught inside
    with db.read() as tx:
        assert tx.one("SELECT v FROM pair WHERE k = 1") == (10,)


def test_copy_is_refused_in_a_pipelined_transaction(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    with pytest.raises(RuntimeError, match="pipelined"), db.write(pipelined=True) as tx:
        tx.insert_many("audit_leaves", ("leaf", "seq"), [(0, 1)])


def test_a_duplicate_nonce_is_told_from_other_duplicate_keys(db: Database) -> None:
    store = SqlCheckinStore(db)
    fleet = Fleet(1)
    fleet.register(db)
    with db.write() as tx:
        tx.execute("CREATE TABLE pair (k INTEGER PRIMARY KEY)")
        tx.execute("INSERT INTO pair (k) VALUES (1)")
    with pytest.raises(Exception) as other, db.write() as tx:
        tx.execute("INSERT INTO pair (k) VALUES (1)")
    assert db.is_unique_violation(other.value)
    assert not store.is_duplicate_nonce(other.value)
    device = fleet.records[0].id
    with db.write() as tx:
        tx.execute(
            "INSERT INTO checkins (device_id, at, counter, nonce, confidence, flags,"
            " signal_kinds, verdict, reasons) VALUES (?, ?, 1, 'n', 1.0, '[]', '[]', 'allow',"
            " '[]')",
            (device, int(T0.timestamp() * 1000)),
        )
    with pytest.raises(Exception) as replay, db.write() as tx:
        tx.execute(
            "INSERT INTO checkins (device_id, at, counter, nonce, confidence, flags,"
            " signal_kinds, verdict, reasons) VALUES (?, ?, 2, 'n', 1.0, '[]', '[]', 'allow',"
            " '[]')",
            (device, int(T0.timestamp() * 1000)),
        )
    assert store.is_duplicate_nonce(replay.value)
    with db.read() as tx:
        row = tx.one("SELECT id FROM checkins")
    assert row is not None
    with pytest.raises(Exception) as same_id, db.write() as tx:  # the primary key, not a replay
        tx.execute(
            "INSERT INTO checkins (id, device_id, at, counter, nonce, confidence, flags,"
            " signal_kinds, verdict, reasons) VALUES (?, ?, ?, 3, 'm', 1.0, '[]', '[]', 'allow',"
            " '[]')",
            (row[0], device, int(T0.timestamp() * 1000)),
        )
    assert db.is_unique_violation(same_id.value)
    assert not store.is_duplicate_nonce(same_id.value)
    assert not store.is_duplicate_nonce(ValueError("UNIQUE constraint failed: checkins.x"))


def test_the_check_in_path_runs_its_transactions_pipelined(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group judged ahead (its snapshot, then its write) and a lone check-in (under its
    row's lock): each transaction pipelined, so that on PostgreSQL its statements travel
    together (bench/README.md, "Pipelined transactions")."""
    fleet = Fleet(3)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), locator, Settings())
    service.keys.keyring(T0)  # the first signing key, made before any check-in
    opened: list[tuple[str, bool]] = []
    for kind in ("read", "write"):
        real = getattr(db, kind)

        def spy(*, pipelined: bool = False, kind: str = kind, real: Any = real) -> Any:
            opened.append((kind, pipelined))
            return real(pipelined=pipelined)

        monkeypatch.setattr(db, kind, spy)
    # The registry records and the keyring are read once, then kept in memory.
    warm = [CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0) for i in range(3)]
    assert all(isinstance(o, dict) for o in service.check_in_many(warm))
    opened.clear()
    group = [CheckinCall(fleet.token(i, 2, T0, BERLIN), None, T0) for i in range(2)]
    assert all(isinstance(o, dict) for o in service.check_in_many(group))
    assert opened == [("read", True), ("write", True)]
    opened.clear()
    lone = [CheckinCall(fleet.token(2, 2, T0, BERLIN), None, T0)]
    assert all(isinstance(o, dict) for o in service.check_in_many(lone))
    assert opened == [("write", True)]


def _exchanges(db: Database, work: Any) -> list[list[tuple[str, str]]]:
    """The round trips `work()` makes on this thread's PostgreSQL connection, from libpq's
    protocol trace: each a run of messages sent (F) and the run of answers (B) after it,
    as (direction, message and first word) pairs."""
    import psycopg

    conn = db._conn()
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            work()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        lines = [line.split("\t") for line in trace.read().splitlines()]
    trips: list[list[tuple[str, str]]] = []
    last = ""
    for line in lines:
        direction, message = line[0], line[2]
        # Parse: "statement name" "query" ...; CommandComplete: "tag": the first word of each.
        quoted = line[3].split('"') if len(line) > 3 else []
        field = {"Parse": 3, "CommandComplete": 1}.get(message)
        detail = quoted[field].split()[0] if field is not None and quoted[field] else ""
        if direction == "F" and last != "F":
            trips.append([])
        trips[-1].append((direction, f"{message} {detail}".strip()))
        last = direction
    return trips


def test_a_check_in_waits_on_the_server_a_few_times_and_commits_last(
    db: Database, locator: Locator
) -> None:
    """PostgreSQL, from the protocol itself: a group's snapshot is 2 round trips, its write 3,
    a lone check-in under its row's lock 4 (unpipelined, 5, 10 and 11 or more); and a write's
    last exchange is its COMMIT, so a connection lost after that answer cannot fail a
    transaction that was kept."""
    if db.dialect != "postgresql":
        pytest.skip("round trips are PostgreSQL's")
    fleet = Fleet(3)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), locator, Settings())
    service.keys.keyring(T0)
    warm = [CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0) for i in range(3)]
    assert all(isinstance(o, dict) for o in service.check_in_many(warm))
    group = service.begin([CheckinCall(fleet.token(i, 2, T0, BERLIN), None, T0) for i in range(2)])
    store = _exchanges(db, group.store)
    assert all(isinstance(o, dict) for o in group.answer())
    lone = _exchanges(
        db, lambda: service.check_in_many([CheckinCall(fleet.token(2, 2, T0, BERLIN), None, T0)])
    )
    snapshot = _exchanges(
        db,
        lambda: service.begin(
            [CheckinCall(fleet.token(i, 3, T0, BERLIN), None, T0) for i in (0, 1)]
        ),
    )
    assert (len(snapshot), len(store), len(lone)) == (2, 3, 4)
    for write in (store, lone):
        done = [[m for d, m in trip if m.startswith("CommandComplete")] for trip in write]
        assert done[0][0] == "CommandComplete BEGIN"  # with the first statements
        assert done[-1] == ["CommandComplete COMMIT"]  # alone, last
