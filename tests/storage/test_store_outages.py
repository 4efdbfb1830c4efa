"""A store that goes away heals by itself: PostgreSQL connections killed or refused, a
connection left mid-pipeline, and what callers see meanwhile (StoreUnavailable: 503)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from storage_fixtures import T0, Fleet, end_backend, open_store

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinCall, CheckinService
from regionlock.settings import Settings
from regionlock.signing import ReplayedNonce, StaleCounter
from regionlock.storage import Database, Stores
from regionlock.storage.db import StoreUnavailable

BERLIN = {"network": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}}


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Database]:
    yield from open_store("postgresql", tmp_path)


def test_a_connection_left_mid_pipeline_is_replaced_not_reused(pg: Database) -> None:
    # What a backend killed during a pipelined group leaves behind: psycopg's connection is
    # not "broken", but it is mid-pipeline with an error pending ("ACTIVE, pipeline ABORTED").
    with pg.read() as tx:
        tx.one("SELECT 1")
    conn = pg._conn()
    pipeline = conn.pipeline()  # held: the pipeline ends when it is collected
    pipeline.__enter__()
    with contextlib.suppress(psycopg.Error):
        conn.cursor().execute("SELECT 1/0")
    assert not conn.broken and conn.info.pipeline_status != psycopg.pq.PipelineStatus.OFF
    for _ in range(3):  # before: every later operation of this thread failed until restart
        with pg.write() as tx:
            assert tx.one("SELECT 2") == (2,)
    assert pg._conn() is not conn
    del pipeline


def test_a_connection_the_server_ended_while_idle_is_replaced_before_its_next_use(
    pg: Database,
) -> None:
    # A restart, a failover or an administrator ends a connection that sat idle: the server
    # says so on the socket, and the driver would only find out by failing the next unit of
    # work (a check-in answered 503 after the store is back). Nothing was sent on it yet, so
    # the next unit of work takes a new connection instead.
    with pg.read() as tx:
        pid = tx.one("SELECT pg_backend_pid()")
    conn = pg._conn()
    end_backend(pg, conn)
    assert not conn.closed and not conn.broken  # the driver does not know yet
    with pg.write() as tx:
        assert tx.one("SELECT pg_backend_pid()") != pid
    assert pg._conn() is not conn


def test_an_unreachable_store_is_store_unavailable_and_heals(pg: Database) -> None:
    assert pg.schema is not None
    good = pg.url.url
    pg.close()
    pg.url = type(pg.url).parse("postgresql://postgres@127.0.0.1:1/test")  # nobody listens
    with pytest.raises(StoreUnavailable) as info, pg.write():
        pass
    assert info.value.retry_after_s > 0 and "cannot connect" in info.value.message
    with pytest.raises(StoreUnavailable):
        pg.ping()
    pg.url = type(pg.url).parse(good)  # the server is back: the next operation connects
    pg.ping()
    with pg.write() as tx:
        assert tx.one("SELECT 1") == (1,)


def test_checkins_under_repeated_connection_kills_fail_as_503_and_recover(
    pg: Database, locator: Locator
) -> None:
    """Kill the service's backends 60 times, 20 ms apart, while check-ins run (the attack of
    2026-12-05): every failure is a refusal the protocol names (StoreUnavailable, 503 with
    Retry-After, for nearly all), never a driver error (500), and afterwards every check-in
    goes through without a restart."""
    fleet = Fleet(100)
    fleet.register(pg)
    # The service's own connections carry a name, and only they are killed: other tests'
    # connections to the same database live on.
    name = f"storm-{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in pg.url.url else "?"
    db = Database(f"{pg.url.url}{sep}application_name={name}", schema=pg.schema)
    service = CheckinService.of(Stores.on(db), locator, Settings())
    stop = threading.Event()
    kills = []

    def killer() -> None:
        with psycopg.connect(pg.url.url, autocommit=True) as admin:
            me = admin.execute("SELECT pg_backend_pid()").fetchone()
            assert me is not None
            for _ in range(60):
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s AND pid <> %s",
                    (name, me[0]),
                ).fetchall()
                kills.append(len(killed))
                time.sleep(0.02)
        stop.set()

    thread = threading.Thread(target=killer)
    thread.start()
    counter, answered, failures = 0, 0, []
    try:
        while not stop.is_set():
            counter += 1
            calls = [CheckinCall(fleet.token(i, counter, T0, BERLIN), None, T0) for i in range(100)]
            for outcome in service.check_in_many(calls):
                if isinstance(outcome, Exception):
                    failures.append(outcome)
                else:
                    answered += 1
    finally:
        thread.join()
    assert sum(kills) > 0 and answered > 0
    # A COMMIT whose acknowledgement is lost with the connection was kept by the server: its
    # check-in answers 503 (single) or, retried one by one after its group failed, finds its
    # own nonce (409 replayed-nonce). Either way the device signs a new check-in.
    named = (StoreUnavailable, ReplayedNonce, StaleCounter)
    assert all(isinstance(f, named) for f in failures), {type(f).__name__ for f in failures}
    assert sum(isinstance(f, StoreUnavailable) for f in failures) > 0
    counter += 1
    after = service.check_in_many(
        [CheckinCall(fleet.token(i, counter, T0, BERLIN), None, T0) for i in range(100)]
    )
    assert all(isinstance(o, dict) for o in after)
    db.close()
    with pg.read() as tx:
        stored = tx.one("SELECT COUNT(*) FROM checkins")
    assert stored is not None
    # Every answered check-in is stored; beyond those, only ones whose COMMIT acknowledgement
    # was lost (at most one per failure).
    assert answered + 100 <= stored[0] <= answered + 100 + len(failures)
    assert service.audit.verify().ok
