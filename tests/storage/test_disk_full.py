"""The SQLite file's disk full: a check-in or an operator change that needs room the disk no
longer has fails as StoreUnavailable, nothing of it is kept (rows, device state, audit trail,
no transaction left open), and the same one goes through once the room is back, with no
restart and the WAL checkpointed again.

Each test runs on a real small filesystem filled with ballast (a tmpfs, where this machine lets
the test mount one) and on SQLite's own size cap (`PRAGMA max_page_count`, everywhere); see
tests/full_disk.py. Either way the disk fills at some write, not a known one: the tests write
until the store refuses, then check that refusal.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from full_disk import FullDisk, PageLimit, SmallFilesystem
from storage_fixtures import T0, Fleet

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinCall, CheckinService
from regionlock.services.registry import Registry
from regionlock.settings import Settings
from regionlock.storage import Database, Stores
from regionlock.storage.db import StoreUnavailable
from regionlock.storage.migrate import migrate

BERLIN = {"network": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}}
# Devices here check in far more often than a real one may (no rate limit to run into).
UNLIMITED = Settings(device_rate_per_hour=0)
# Writes tried before the store must have refused one: the tmpfs holds 4 MB, the cap no page.
ATTEMPTS = 2000


@pytest.fixture(params=["tmpfs", "page-limit"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, FullDisk]]:
    """A migrated SQLite store, and the disk under it that the test fills."""
    if request.param == "page-limit":
        db = Database(f"sqlite:///{tmp_path / 'store.db'}")
        migrate(db)
        yield db, PageLimit(db)
        db.close()
        return
    fs, why = SmallFilesystem.mount(tmp_path / "fs")
    if fs is None:
        pytest.skip(why)
    db = Database(f"sqlite:///{fs.where / 'store.db'}")
    try:
        migrate(db)
        yield db, fs
    finally:
        db.close()
        fs.unmount()


def until_refused(attempt: Callable[[int], object]) -> tuple[int, StoreUnavailable]:
    """Call `attempt(0)`, `attempt(1)`, ... until one raises StoreUnavailable: how many went
    through before it, and its error."""
    for n in range(ATTEMPTS):
        try:
            attempt(n)
        except StoreUnavailable as exc:
            return n, exc
    raise AssertionError(f"the store took {ATTEMPTS} writes on a full disk")


def counts(db: Database) -> Counter[str]:
    """Check-in rows, and audit entries by action (0 for none)."""
    with db.read() as tx:
        stored = tx.one("SELECT COUNT(*) FROM checkins")
        by_action = tx.all("SELECT action, COUNT(*) FROM audit GROUP BY action")
    assert stored is not None
    return Counter({"checkins": int(stored[0]), **{str(a): int(n) for a, n in by_action}})


def assert_intact(db: Database) -> None:
    """No transaction left open on any connection; the file and the audit trail whole."""
    assert not [c for c in db.open_connections() if c.in_transaction]
    with db.read() as tx:
        assert tx.all("PRAGMA integrity_check") == [("ok",)]
        assert tx.all("PRAGMA foreign_key_check") == []
    assert Stores.on(db).audit.verify().ok


def assert_checkpointed(db: Database) -> None:
    """The checkpointer lived through the full disk: it copies every committed page into the
    database file again (waited for, bounded)."""
    assert db._checkpointer is not None and db._checkpointer._thread.is_alive()
    assert db.url.path is not None
    deadline = time.monotonic() + 30
    while True:
        with db.read() as tx:
            pages, size = tx.one("PRAGMA page_count"), tx.one("PRAGMA page_size")
        assert pages is not None and size is not None
        if db.url.path.stat().st_size >= pages[0] * size[0]:
            return
        assert time.monotonic() < deadline, "the WAL was not checkpointed within 30 s"
        time.sleep(0.05)


def refused_for_full_disk(exc: StoreUnavailable) -> None:
    assert "database or disk is full" in exc.message and exc.retry_after_s > 0


def test_a_checkin_on_a_full_disk_keeps_nothing_and_goes_through_once_room_is_back(
    store: tuple[Database, FullDisk], locator: Locator
) -> None:
    db, disk = store
    fleet = Fleet(1)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), locator, UNLIMITED)
    service.check_in(fleet.token(0, 1, T0, BERLIN), peer_ip=None, now=T0)
    disk.fill()
    tokens: list[str] = []

    def attempt(n: int) -> None:
        tokens.append(fleet.token(0, n + 2, T0, BERLIN))
        service.check_in(tokens[-1], peer_ip=None, now=T0)

    answered, refused = until_refused(attempt)
    refused_for_full_disk(refused)
    # Every answered check-in is stored with its audit entry; the refused one left nothing.
    assert counts(db)["checkins"] == counts(db)["checkin.verdict"] == 1 + answered
    assert_intact(db)
    disk.free()
    # The very same check-in (nonce, counter) now goes through: neither was taken.
    body = service.check_in(tokens[-1], peer_ip=None, now=T0)
    assert body["counter"] == answered + 2
    assert counts(db)["checkins"] == counts(db)["checkin.verdict"] == 2 + answered
    assert_intact(db)
    assert_checkpointed(db)


def test_a_group_on_a_full_disk_stores_exactly_the_checkins_it_answers(
    store: tuple[Database, FullDisk], locator: Locator
) -> None:
    """Group commit on a full disk: the group's transaction fails, each check-in is tried
    alone; whichever are answered are stored, every other one is refused as StoreUnavailable,
    and each refused one goes through as it was once the room is back."""
    db, disk = store
    fleet = Fleet(8)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), locator, UNLIMITED)
    disk.fill()
    answered, _ = until_refused(
        lambda n: service.check_in(fleet.token(0, n + 1, T0, BERLIN), peer_ip=None, now=T0)
    )
    calls = [CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0) for i in range(1, 8)]
    outcomes = service.check_in_many(calls)
    refused = [c for c, o in zip(calls, outcomes, strict=True) if isinstance(o, Exception)]
    for outcome in outcomes:
        if isinstance(outcome, StoreUnavailable):
            refused_for_full_disk(outcome)
        else:
            assert isinstance(outcome, dict), outcome
    with db.read() as tx:
        stored = {r[0] for r in tx.all("SELECT device_id FROM checkins WHERE counter = 1")}
    group_ids = {fleet.records[i].id for i in range(1, 8)}
    answered_ids = {o["sub"] for o in outcomes if isinstance(o, dict)}
    assert stored & group_ids == answered_ids
    assert counts(db)["checkins"] == counts(db)["checkin.verdict"] == answered + len(answered_ids)
    assert_intact(db)
    disk.free()
    again = service.check_in_many(refused)
    assert all(isinstance(o, dict) for o in again), again
    assert counts(db)["checkins"] == counts(db)["checkin.verdict"] == answered + 7
    assert_intact(db)


def test_an_operator_change_on_a_full_disk_keeps_nothing_and_goes_through_once_room_is_back(
    store: tuple[Database, FullDisk],
) -> None:
    db, disk = store
    fleet = Fleet(1)
    fleet.register(db)
    stores = Stores.on(db)
    registry = Registry.of(stores)
    device = fleet.records[0].id

    def change(n: int) -> None:
        """Lock (even n) or unlock (odd n) the device, the reason naming n."""
        act = registry.lock if n % 2 == 0 else registry.unlock
        act(device, reason=f"change {n}", actor="operator", now=T0)

    disk.fill()
    answered, refused = until_refused(change)
    refused_for_full_disk(refused)
    found = stores.devices.get(device)
    assert found is not None
    # Locked after an odd number of changes: the refused one did not move the state.
    assert (found.state.manual_lock is not None) == (answered % 2 == 1)
    before = counts(db)
    assert before["device.lock"] + before["device.unlock"] == answered
    assert_intact(db)
    disk.free()
    change(answered)
    found = stores.devices.get(device)
    assert found is not None and (found.state.manual_lock is not None) == (answered % 2 == 0)
    last = list(stores.audit.iter_all())[-1]
    assert last.subject == device and last.reason == f"change {answered}"
    assert_intact(db)
    assert_checkpointed(db)
