"""Transactions that lose a conflict (PostgreSQL: a deadlock's victim, a lock waited for too
long) are `StoreConflict`; the check-in path runs such a group again at once instead of
answering 503, and preparing a month's partition gives way to check-ins instead of making
them a deadlock's victim (found by CI: a service starting on a store without this month's
partition answered its first check-ins 503)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from storage_fixtures import T0, Fleet

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinService
from regionlock.settings import Settings
from regionlock.storage import Database, Stores
from regionlock.storage import checkins as checkins_module
from regionlock.storage.checkins import SqlCheckinStore, partitions
from regionlock.storage.db import StoreConflict, StoreUnavailable

TEHRAN = {"sim": ["432-11"], "network": ["432-11"], "gps": {"lat": 35.6892, "lon": 51.389}}


def test_a_deadlocks_victim_is_a_store_conflict(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer: two write transactions never deadlock")
    with db.write() as tx:
        tx.execute("CREATE TABLE pair (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        tx.execute("INSERT INTO pair VALUES (1, 0), (2, 0)")
    both = threading.Barrier(2)
    errors: list[BaseException] = []

    def lock(first: int, second: int) -> None:
        try:
            with db.write() as tx:
                tx.execute("UPDATE pair SET v = v + 1 WHERE k = ?", (first,))
                both.wait(timeout=10)
                tx.execute("UPDATE pair SET v = v + 1 WHERE k = ?", (second,))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lock, args=p) for p in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(errors) == 1 and isinstance(errors[0], StoreConflict), errors
    assert isinstance(errors[0], StoreUnavailable)  # still a 503 where nobody runs it again
    assert errors[0].retry_after_s == 1
    with db.read() as tx:  # the winner's two updates, nothing of the victim's
        assert tx.all("SELECT v FROM pair ORDER BY k") == [(1,), (1,)]


def losing(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch, losses: int
) -> tuple[CheckinService, Fleet, list[object]]:
    """A service over one registered device whose replay look-up loses a conflict the first
    `losses` times it runs; the list of its calls."""
    fleet = Fleet(1)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), locator, Settings())
    real_seen, calls = service.checkins.seen_later, []

    def seen_later(tx, pairs, since=None):  # type: ignore[no-untyped-def]
        calls.append(pairs)
        if len(calls) <= losses:
            raise StoreConflict("a concurrent transaction conflicted: deadlock detected")
        return real_seen(tx, pairs, since=since)

    monkeypatch.setattr(service.checkins, "seen_later", seen_later)
    return service, fleet, calls


def test_a_check_in_whose_transaction_lost_a_conflict_is_run_again_and_answered(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, fleet, calls = losing(db, locator, monkeypatch, losses=1)
    out = service.check_in(fleet.token(0, 1, T0, TEHRAN), peer_ip=None, now=T0)
    assert out["verdict"] == "lock" and len(calls) == 2
    assert len(service.checkins.recent(fleet.records[0].id)) == 1  # recorded once


def test_a_conflict_lost_twice_is_answered_store_unavailable(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, fleet, calls = losing(db, locator, monkeypatch, losses=2)
    with pytest.raises(StoreConflict):
        service.check_in(fleet.token(0, 1, T0, TEHRAN), peer_ip=None, now=T0)
    assert len(calls) == 2  # once, and once more: not a loop
    assert service.checkins.recent(fleet.records[0].id) == []


def test_preparing_a_month_gives_way_to_check_ins_holding_the_default_partition(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    monkeypatch.setattr(checkins_module, "PARTITION_RETRY_S", 0.01)
    store = SqlCheckinStore(db)
    later = datetime(2031, 5, 1, tzinfo=UTC)  # months no partition covers yet
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        # A check-in's replay look-up reads the default partition: hold what it holds.
        with db.write() as tx:
            tx.execute("LOCK TABLE checkins_default IN ACCESS SHARE MODE")
            locked.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        started = datetime.now(UTC)
        with pytest.raises(StoreConflict):
            store.prepare_partitions(later, ahead=0)
        waited = datetime.now(UTC) - started
    finally:
        release.set()
        holder.join(timeout=30)
    # Five tries of 200 ms each with short pauses: it gave up instead of queueing.
    assert waited < timedelta(seconds=5)
    with db.read() as tx:
        assert not [p for p in partitions(tx) if p.name.startswith("checkins_y2031m05")]
    assert store.prepare_partitions(later, ahead=0) == ["checkins_y2031m05"]
