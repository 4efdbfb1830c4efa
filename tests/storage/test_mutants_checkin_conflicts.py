"""Found by mutation testing of the check-in path's conflict retry, replay horizon and month
partitions (docs/test-quality.md, "The check-in path's conflict retry, replay horizon and
lane"): each test below failed on a mutant that the check-in, partition and conflict tests let
live. Both stores, unless a test says PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from storage_fixtures import T0, Fleet

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinCall, CheckinService
from regionlock.settings import Settings
from regionlock.signing import ReplayedNonce
from regionlock.storage import Database, Stores
from regionlock.storage import checkins as checkins_module
from regionlock.storage.checkins import SqlCheckinStore, month_start, partitions
from regionlock.storage.db import StoreConflict, epoch_ms

BERLIN = {"sim": ["262-01"], "network": ["262-01"]}


def losing(
    db: Database,
    locator: Locator,
    monkeypatch: pytest.MonkeyPatch,
    n: int,
    fails: Callable[[int], Exception | None],
) -> tuple[CheckinService, Fleet, list[int]]:
    """A service over `n` registered devices whose replay look-up raises `fails(the call's
    number, from 1)`, if anything; how many check-ins each call looked up."""
    fleet = Fleet(n)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), locator, Settings())
    real_seen, calls = service.checkins.seen_later, []

    def seen_later(tx: Any, pairs: list[tuple[str, str]], since: int | None = None) -> Any:
        calls.append(len(pairs))
        failure = fails(len(calls))
        if failure is not None:
            raise failure
        return real_seen(tx, pairs, since=since)

    monkeypatch.setattr(service.checkins, "seen_later", seen_later)
    return service, fleet, calls


def conflict() -> StoreConflict:
    return StoreConflict("a concurrent transaction conflicted: deadlock detected")


def group(fleet: Fleet) -> list[CheckinCall]:
    return [CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0) for i in range(len(fleet.keys))]


def outcome(o: Any) -> str:
    return type(o).__name__ if isinstance(o, Exception) else str(o["verdict"])


def bounds(db: Database, name: str) -> tuple[int | None, int | None]:
    with db.read() as tx:
        (found,) = [p for p in partitions(tx) if p.name == name]
    return found.start, found.end


def test_a_month_before_the_partitions_made_already_is_still_prepared(db: Database) -> None:
    """A clock that ran ahead had months prepared in 2031; back on time, the months from now
    on are made all the same: a partition later than the month does not cover it."""
    if db.dialect != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    store = SqlCheckinStore(db)
    assert store.prepare_partitions(datetime(2031, 5, 17, tzinfo=UTC), ahead=0) == [
        "checkins_y2031m05"
    ]
    made = store.prepare_partitions(T0)  # November 2026
    assert made == ["checkins_y2026m11", "checkins_y2026m12", "checkins_y2027m01"]
    assert bounds(db, "checkins_y2026m11") == (month_start(2026, 11), month_start(2026, 12))


def test_a_month_partly_covered_by_a_partition_made_by_hand_gets_the_rest(
    db: Database,
) -> None:
    """The month's partition is the month less what others cover: one made by hand from the
    15th on leaves the 1st to the 15th to the one prepared."""
    if db.dialect != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    mid = month_start(2026, 11) + 14 * 86_400_000
    with db.write() as tx:
        tx.execute(
            "CREATE TABLE checkins_by_hand PARTITION OF checkins"
            f" FOR VALUES FROM ({mid}) TO ({month_start(2026, 12)})"
        )
    store = SqlCheckinStore(db)
    assert store.prepare_partitions(T0, ahead=0) == ["checkins_y2026m11"]
    assert bounds(db, "checkins_y2026m11") == (month_start(2026, 11), mid)
    assert store.prepare_partitions(T0, ahead=0) == []


def test_the_months_prepared_are_utc_months_whatever_the_machines_zone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 02:00 UTC on 1 December it is still 30 November in New York: the months prepared are
    December and January, each named by its UTC month (December begins at 19:00 on 30
    November there; named so, it would clash with November's)."""
    if db.dialect != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        made = SqlCheckinStore(db).prepare_partitions(datetime(2026, 12, 1, 2, tzinfo=UTC), ahead=1)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert made == ["checkins_y2026m12", "checkins_y2027m01"]
    assert bounds(db, "checkins_y2026m12") == (month_start(2026, 12), month_start(2027, 1))


@pytest.mark.parametrize("losses", [4, 5])
def test_preparing_a_month_tries_five_times_a_growing_pause_apart(
    db: Database, monkeypatch: pytest.MonkeyPatch, losses: int
) -> None:
    """A month whose making loses a conflict (a check-in held the default partition past the
    lock timeout) is tried again after 0.5 s, 1 s, 1.5 s, 2 s: made at the fifth try, or the
    fifth loss is the caller's. The existing test holds the lock throughout, so it never sees
    a later try succeed."""
    if db.dialect != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    store = SqlCheckinStore(db)
    real, tries, pauses = store._prepare, [], []

    def prepare(start: int, end: int, name: str) -> list[str]:
        tries.append(start)
        if len(tries) <= losses:
            raise StoreConflict("a concurrent transaction conflicted: lock timeout")
        return real(start, end, name)

    monkeypatch.setattr(store, "_prepare", prepare)
    monkeypatch.setattr(checkins_module, "time", SimpleNamespace(sleep=pauses.append))
    if losses < 5:
        assert store.prepare_partitions(T0, ahead=0) == ["checkins_y2026m11"]
    else:
        with pytest.raises(StoreConflict):
            store.prepare_partitions(T0, ahead=0)
    assert tries == [month_start(2026, 11)] * 5
    assert pauses == [0.5, 1.0, 1.5, 2.0]  # none after the last try


def test_a_replay_two_whole_clock_windows_later_is_still_named_a_replay(
    db: Database, locator: Locator
) -> None:
    """The farthest apart a check-in and its copy can be recorded: the first at the front of
    its iat's window, the copy at the back, and a fraction of a second more (the clock check
    reads whole seconds). The copy is a replay, not a stale counter: the look-up reaches back
    two clock windows and then the margin."""
    fleet = Fleet(1)
    fleet.register(db)
    settings = Settings(clock_skew_s=3600)  # the widest window: as wide as the margin
    service = CheckinService.of(Stores.on(db), locator, settings)
    window = timedelta(seconds=settings.clock_skew_s)
    token = fleet.token(0, 1, T0 + window, BERLIN)
    service.check_in(token, peer_ip=None, now=T0)
    with pytest.raises(ReplayedNonce):
        service.check_in(token, peer_ip=None, now=T0 + 2 * window + timedelta(seconds=0.5))


def test_the_replay_look_up_reads_back_from_the_groups_earliest_check_in(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clock windows and the margin before the earliest check-in of the group, and no
    further: on PostgreSQL the months before are then not read (`test_checkin_partitions`)."""
    fleet = Fleet(2)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), locator, Settings(clock_skew_s=120))
    real_seen, bounds_read = service.checkins.seen_later, []

    def seen_later(tx: Any, pairs: list[tuple[str, str]], since: int | None = None) -> Any:
        bounds_read.append(since)
        return real_seen(tx, pairs, since=since)

    monkeypatch.setattr(service.checkins, "seen_later", seen_later)
    later = T0 + timedelta(seconds=10)
    calls = [
        CheckinCall(fleet.token(0, 1, later, BERLIN), None, later),
        CheckinCall(fleet.token(1, 1, T0, BERLIN), None, T0),
    ]
    assert [outcome(o) for o in service.check_in_many(calls)] == ["allow", "allow"]
    assert bounds_read == [epoch_ms(T0) - (2 * 120 + 3600) * 1000]


def test_a_group_that_lost_a_conflict_says_so_in_the_log(
    db: Database,
    locator: Locator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, fleet, calls = losing(
        db, locator, monkeypatch, 2, lambda i: conflict() if i == 1 else None
    )
    with caplog.at_level("INFO", logger="regionlock.services.checkin"):
        assert [outcome(o) for o in service.check_in_many(group(fleet))] == ["allow", "allow"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "a group of 2 check-ins lost a conflict; running it again")
    ]
    assert calls == [2, 2]  # run again as a group, not one by one


def test_a_check_in_run_alone_after_its_group_failed_still_has_its_retry(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group failed otherwise (not a conflict): each check-in then runs alone, and one
    that loses a conflict there is run once more, as it would have been had it come alone."""
    failures = {1: RuntimeError("connection lost"), 2: conflict()}
    service, fleet, calls = losing(db, locator, monkeypatch, 2, failures.get)
    assert [outcome(o) for o in service.check_in_many(group(fleet))] == ["allow", "allow"]
    assert calls == [2, 1, 1, 1]


def test_a_group_that_lost_twice_tries_each_check_in_once_alone(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group that lost a conflict twice has had its retry: each check-in is then tried once
    on its own, and one that loses again is answered 503 (StoreConflict), not run a fourth
    time; the others are answered."""
    service, fleet, calls = losing(
        db, locator, monkeypatch, 2, lambda i: conflict() if i <= 3 else None
    )
    assert [outcome(o) for o in service.check_in_many(group(fleet))] == [
        "StoreConflict",
        "allow",
    ]
    assert calls == [2, 2, 1, 1]
    assert service.checkins.recent(fleet.records[0].id) == []
    assert len(service.checkins.recent(fleet.records[1].id)) == 1
