"""The overview's store on both backends, and the service over it: every device counted once,
under the place and verdict of its last check-in."""

from __future__ import annotations

from datetime import timedelta

from storage_fixtures import T0, Fleet, imei
from storage_fixtures import checkin as signed_checkin
from test_checkin_pipeline import TEHRAN

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinService
from regionlock.services.overview import Overview
from regionlock.settings import Settings
from regionlock.storage import Database, Stores
from regionlock.storage.overview import FleetCount

DUBAI = {"gps": {"lat": 25.2, "lon": 55.27, "accuracy_m": 20}, "timezone": "Asia/Dubai"}


def test_the_fleet_by_place_and_verdict(db: Database, locator: Locator) -> None:
    fleet = Fleet(4)
    fleet.register(db)
    stores = Stores.on(db)
    service = CheckinService.of(stores, locator, Settings())
    for n, where in ((1, TEHRAN), (2, DUBAI), (3, DUBAI)):
        signed = signed_checkin(fleet.keys[n - 1], imei(n), 1, T0, where)
        service.check_in(signed, peer_ip=None, now=T0)
    later = T0 + timedelta(hours=1)  # device 3 travels to Tehran: warned, not locked
    service.check_in(
        signed_checkin(fleet.keys[2], imei(3), 2, later, TEHRAN), peer_ip=None, now=later
    )
    counts = stores.overview.fleet()
    assert sorted(counts, key=str) == sorted(
        [
            FleetCount("IR", "IR-23", "lock", 1),
            FleetCount("AE", "AE-DU", "allow", 1),
            FleetCount("IR", "IR-23", "warn", 1),
            FleetCount(None, None, None, 1),
        ],
        key=str,
    )
    view = Overview.of(stores).view()
    assert view.total == 4
    assert view.by_verdict == {"allow": 1, "warn": 1, "lock": 1, "none": 1}
    iran = view.countries[0]
    assert (iran.code, iran.devices, iran.locked, iran.warned, iran.held_share) == (
        "IR", 2, 1, 1, 1.0,
    )  # fmt: skip
    assert view.policy is not None and view.policy.startswith("gray-market-2021@")


def test_days_are_snapshotted_as_they_stood_and_outlive_their_checkins(
    db: Database, locator: Locator
) -> None:
    fleet = Fleet(3)
    fleet.register(db)
    stores = Stores.on(db)
    service = CheckinService.of(stores, locator, Settings())
    day0 = T0.replace(hour=12, minute=0, second=0, microsecond=0)

    def at(n: int, day: int, where: dict[str, object], counter: int) -> None:
        when = day0 + timedelta(days=day)
        signed = signed_checkin(fleet.keys[n - 1], imei(n), counter, when, where)
        service.check_in(signed, peer_ip=None, now=when)

    at(1, 0, DUBAI, 1)
    at(2, 0, DUBAI, 1)
    at(2, 0, DUBAI, 2)  # three check-ins on day 0
    at(2, 1, TEHRAN, 3)  # device 2 travels: warned on day 1
    at(3, 2, TEHRAN, 1)  # device 3 first seen on day 2, activated in Tehran: locked
    overview = Overview.of(stores)
    written = overview.snapshot_missing(day0 + timedelta(days=3))
    d0, d1, d2 = (day0.date() + timedelta(days=i) for i in range(3))
    assert written == [d0, d1, d2]  # the day in progress is not snapshotted
    assert overview.snapshot_missing(day0 + timedelta(days=3)) == []  # nothing left to do
    assert overview.days(d2) == [(d0, 3), (d1, 1), (d2, 1)]
    on0 = overview.view(d0)
    assert on0 is not None and on0.total == 2 and on0.by_verdict["allow"] == 2
    on1 = overview.view(d1)
    assert on1 is not None and (on1.by_verdict["allow"], on1.by_verdict["warn"]) == (1, 1)
    on2 = overview.view(d2)
    assert on2 is not None and on2.total == 3 and on2.by_verdict["lock"] == 1
    assert on2.day == d2 and overview.view(d2 + timedelta(days=1)) is None
    # The snapshots hold counts only: they stay when the check-ins they came from are gone.
    with db.write() as tx:
        tx.execute("DELETE FROM checkins")
    again = overview.view(d1)
    assert again is not None and (again.by_verdict["allow"], again.by_verdict["warn"]) == (1, 1)
    # A day counted again replaces its snapshot rather than adding to it.
    stores.overview.save_day(stores.overview.count_day(d1), at=0)
    emptied = overview.view(d1)
    assert emptied is not None and emptied.total == 0 and overview.days(d0)[1] == (d1, 0)


def test_the_fleet_now_is_counted_at_most_once_a_ttl() -> None:
    """A page gets the last count; a stale one is counted again in one background thread."""
    import threading

    from regionlock.services.overview import FleetView
    from regionlock.services.recent import Recent

    counted = threading.Semaphore(0)
    release = threading.Event()
    calls: list[int] = []

    class Counting:
        def now(self) -> FleetView:
            calls.append(1)
            if len(calls) > 1:
                release.wait(5)  # a slow count: pages must not wait for it
            counted.release()
            return FleetView(len(calls), {}, [], [], None, None)

    now = [0.0]
    cache = Recent(Counting().now, ttl=30, name="overview", clock=lambda: now[0])
    assert cache.get().total == 1  # the first page waits for the first count
    now[0] = 29.0
    assert cache.get().total == 1 and len(calls) == 1  # fresh: no count
    now[0] = 31.0
    assert cache.get().total == 1  # stale: served at once while one thread counts
    assert cache.get().total == 1
    release.set()
    assert counted.acquire(timeout=5) and counted.acquire(timeout=5)
    for _ in range(100):  # the thread stores its count just after counting
        if cache.get().total == 2:
            break
        threading.Event().wait(0.01)
    assert cache.get().total == 2 and len(calls) == 2  # two stale pages, one count


def test_a_filled_window_is_not_scanned_for_its_oldest_checkin(db: Database) -> None:
    """Every node's daily job wakes every 10 minutes: once the last 90 days are snapshotted,
    it must not look for the oldest check-in (a scan of every check-in) to find nothing."""
    from datetime import UTC, datetime

    from regionlock.storage.overview import DayCount, SqlOverviewStore

    store = SqlOverviewStore(db)
    today = datetime(2026, 12, 6, 12, tzinfo=UTC)
    for n in range(1, 91):
        store.save_day(DayCount(today.date() - timedelta(days=n), [], 0), at=0)
    scans: list[int] = []

    class Watched(SqlOverviewStore):
        def first_checkin_day(self):  # type: ignore[no-untyped-def]
            scans.append(1)
            return super().first_checkin_day()

    overview = Overview(Watched(db), Stores.on(db).policies)
    assert overview.snapshot_missing(today) == [] and scans == []
    with db.write() as tx:  # one day missing: now it looks
        tx.execute("DELETE FROM fleet_day_totals WHERE day = ?", ("2026-12-01",))
    assert overview.snapshot_missing(today) == [] and scans == [1]  # no check-ins kept
