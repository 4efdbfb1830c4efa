"""PostgreSQL's check-in history by month (migration 0015, docs/operating.md "Partitions"): an
existing history becomes the first partition unchanged, months are prepared ahead, replays are
still refused, and none of it touches SQLite."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from storage_fixtures import T0, Fleet

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinService
from regionlock.settings import Settings
from regionlock.signing import ReplayedNonce
from regionlock.storage import Database, Stores
from regionlock.storage.checkins import (
    CheckinRow,
    DuplicateNonce,
    Partition,
    SqlCheckinStore,
    _gaps,
    partitions,
    seen_statement,
)
from regionlock.storage.db import Transaction, epoch_ms
from regionlock.storage.migrate import available, migrate
from regionlock.storage.privacy import SqlPrivacyStore


def row(device_id: str, at: datetime, nonce: str) -> CheckinRow:
    return CheckinRow(
        device_id, at, 1, nonce, "IR", None, 0.9, [], ["gps"], "lock", ["r"], "p", "1"
    )


def names(db: Database) -> list[str]:
    with db.read() as tx:
        return [p.name for p in partitions(tx)]


def registered_before(db: Database, migration: str) -> tuple[str, SqlCheckinStore]:
    """`db` migrated up to the one before `migration`, with one device registered."""
    (version,) = [m.version for m in available(db.dialect) if m.name == migration]
    migrate(db, upto=version - 1)
    fleet = Fleet(1)
    fleet.register(db)
    return fleet.records[0].id, SqlCheckinStore(db)


def where(db: Database, nonce: str) -> str:
    with db.read() as tx:
        found = tx.one("SELECT tableoid::regclass::text FROM checkins WHERE nonce = ?", (nonce,))
    assert found is not None
    return str(found[0])


def test_an_existing_history_becomes_the_first_partition_as_it_is(unmigrated: Database) -> None:
    db = unmigrated
    device, store = registered_before(db, "checkins_by_month")
    with db.write() as tx:
        store.record_many(
            tx, [row(device, T0, "old-1"), row(device, T0 + timedelta(hours=1), "old-2")]
        )
    migrate(db)

    assert store.recent(device)[0]["at"] == (T0 + timedelta(hours=1)).isoformat()
    with db.read() as tx:
        assert store.seen(tx, [(device, "old-1"), (device, "new")]) == {(device, "old-1")}
    if db.dialect == "sqlite":
        assert names(db) == [] and store.prepare_partitions(T0) == []
        return
    assert names(db) == ["checkins_legacy", "checkins_default"]
    with db.read() as tx:
        legacy = partitions(tx)[0]
    assert (legacy.start, legacy.end) == (None, epoch_ms(T0 + timedelta(hours=1)) + 1)
    assert where(db, "old-1") == "checkins_legacy"
    # T0 is in November 2026: the rest of November after the legacy rows, then two months.
    made = store.prepare_partitions(T0)
    assert made == [
        f"checkins_y2026m11_from{legacy.end}",
        "checkins_y2026m12",
        "checkins_y2027m01",
    ]
    assert store.prepare_partitions(T0) == []  # prepared once
    with db.write() as tx:
        store.record_many(tx, [row(device, T0 + timedelta(days=10), "new")])
    assert where(db, "new") == "checkins_y2026m12"
    # A replay in the same month is refused by that month's UNIQUE (device_id, nonce).
    with pytest.raises(DuplicateNonce), db.write() as tx:
        store.record_many(tx, [row(device, T0 + timedelta(days=11), "new")])


def test_a_month_whose_rows_went_to_the_default_partition_is_left_alone(db: Database) -> None:
    """A clock that ran ahead of the prepared months put rows in the default partition: no
    partition is made over them (PostgreSQL would refuse it), they stay where they are."""
    fleet = Fleet(1)
    fleet.register(db)
    device = fleet.records[0].id
    store = SqlCheckinStore(db)
    far = datetime(2031, 5, 17, tzinfo=UTC)
    with db.write() as tx:
        store.record_many(tx, [row(device, far, "far")])
    if db.dialect == "sqlite":
        assert store.prepare_partitions(far) == []
        return
    assert where(db, "far") == "checkins_default"
    assert store.prepare_partitions(far) == ["checkins_y2031m06", "checkins_y2031m07"]
    assert where(db, "far") == "checkins_default"
    with db.write() as tx:
        store.record_many(tx, [replace(row(device, far + timedelta(days=20), "later"))])
    assert where(db, "later") == "checkins_y2031m06"


def test_the_replay_look_up_reads_from_since_on_and_only_those_months(db: Database) -> None:
    """`seen(since=...)`: rows recorded before are not looked at, and on PostgreSQL the plan
    reads only the partitions from then on (and the default one), not every month kept."""
    fleet = Fleet(1)
    fleet.register(db)
    device = fleet.records[0].id
    store = SqlCheckinStore(db)
    store.prepare_partitions(T0)  # November 2026 to January 2027
    with db.write() as tx:
        store.record_many(
            tx, [row(device, T0, "november"), row(device, T0 + timedelta(days=40), "january")]
        )
    january = epoch_ms(datetime(2027, 1, 1, tzinfo=UTC))
    pairs = [(device, "november"), (device, "january"), (device, "never")]
    with db.read() as tx:
        assert store.seen(tx, pairs) == {(device, "november"), (device, "january")}
        assert store.seen(tx, pairs, since=january) == {(device, "january")}
        assert store.seen(tx, pairs, since=january + 40 * 86_400_000) == set()
    if db.dialect == "sqlite":
        return
    with db.read() as tx:
        # The statement `seen` runs, explained.
        arrays = [[device], ["x"]]
        every = plan(tx, seen_statement(False), arrays)
        recent = plan(tx, seen_statement(True), [*arrays, january])
    assert "checkins_y2026m11" in every and "checkins_y2026m12" in every
    assert "checkins_y2027m01" in recent and "checkins_default" in recent
    assert "checkins_y2026m11" not in recent and "checkins_y2026m12" not in recent


def plan(tx: Transaction, sql: str, params: list[object]) -> str:
    return " ".join(str(r[0]) for r in tx.all("EXPLAIN " + sql, params))


def test_the_replay_look_up_probes_the_index_however_full_the_month(db: Database) -> None:
    """On PostgreSQL, the group's replay look-up probes the (device_id, nonce) index pair by
    pair, never reading a month's partition whole. As a join on VALUES it hashed the whole
    partition for every group of check-ins once the month held a few thousand rows (3.4 ms
    a group at 8,000): the planner's choice, made on the month's size."""
    if db.dialect == "sqlite":
        pytest.skip("SQLite has one table; its join form is checked above")
    fleet = Fleet(1)
    fleet.register(db)
    device = fleet.records[0].id
    store = SqlCheckinStore(db)
    store.prepare_partitions(T0)
    with db.write() as tx:
        rows = [row(device, T0 + timedelta(seconds=i), f"n{i}") for i in range(5000)]
        store.record_many(tx, rows)
        tx.execute("ANALYZE checkins")
    nonces = [f"n{i}" for i in range(0, 6400, 100)]  # 64, the first 50 of them recorded
    with db.read() as tx:
        explained = plan(tx, seen_statement(True), [[device] * 64, nonces, epoch_ms(T0)])
        found = store.seen(tx, [(device, n) for n in nonces], since=epoch_ms(T0))
    # (Empty partitions, analysed as such, may be read whole: there is nothing in them.)
    assert "Seq Scan on checkins_y2026m11" not in explained
    assert "checkins_y2026m11_device_id_nonce_key" in explained
    assert found == {(device, f"n{i}") for i in range(0, 5000, 100)}


def test_a_replay_presented_a_whole_clock_window_later_is_still_named_a_replay(
    db: Database, locator: Locator
) -> None:
    """The look-up reads back two clock windows and a margin: a copy of a check-in that still
    passes the clock check finds its original (replayed-nonce, not stale-counter)."""
    fleet = Fleet(1)
    fleet.register(db)
    settings = Settings()
    service = CheckinService.of(Stores.on(db), locator, settings)
    token = fleet.token(0, 1, T0, {"sim": ["262-01"], "network": ["262-01"]})
    service.check_in(token, peer_ip=None, now=T0)
    later = T0 + timedelta(seconds=settings.clock_skew_s)  # iat still within the window
    with pytest.raises(ReplayedNonce):
        service.check_in(token, peer_ip=None, now=later)
    assert service._replay_horizon_ms == (2 * settings.clock_skew_s + 3600) * 1000


def test_dropping_a_month_waits_for_no_device_write(db: Database) -> None:
    """The order that deadlocked in CI (docs/operating.md, "Partitions"): an operator's
    transaction holds a device row, retention then detaches and drops a month, and the
    operator's transaction goes on to read the history and write the device. With the
    history's foreign key to `devices`, the drop waited for an exclusive lock on `devices`
    while holding the history's, and PostgreSQL ended one of the two after its
    deadlock_timeout. Both must now finish."""
    if db.dialect == "sqlite":
        pytest.skip("SQLite has no partitions: retention deletes rows")
    fleet = Fleet(1)
    fleet.register(db)
    device = fleet.records[0].id
    (legacy,) = [p.name for p in partitions_of(db) if p.name == "checkins_legacy"]
    holding, dropped = threading.Event(), threading.Event()
    watcher = Database(db.url.url)  # its own connections: a read inside a write shares one
    failures: list[BaseException] = []

    def operator() -> None:
        try:
            with db.write() as tx:
                tx.one("SELECT id FROM devices WHERE id = ? FOR UPDATE", (device,))
                holding.set()
                # Until the drop is done, or waits for a lock (the order that deadlocked).
                deadline = time.monotonic() + 5
                while not dropped.is_set() and time.monotonic() < deadline:
                    if lock_waits(watcher):
                        break
                    time.sleep(0.01)
                tx.one("SELECT COUNT(*) FROM checkins WHERE device_id = ?", (device,))
                tx.execute("UPDATE devices SET last_verdict = 'warn' WHERE id = ?", (device,))
        except BaseException as exc:  # reported below
            failures.append(exc)

    def retention() -> None:
        try:
            holding.wait(5)
            with db.write() as tx:
                SqlPrivacyStore(db).drop_partition(tx, legacy)
            dropped.set()
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=operator), threading.Thread(target=retention)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    watcher.close()
    assert failures == []
    assert legacy not in [p.name for p in partitions_of(db)]
    with db.read() as tx:
        assert tx.one("SELECT last_verdict FROM devices WHERE id = ?", (device,)) == ("warn",)


def partitions_of(db: Database) -> list[Any]:
    with db.read() as tx:
        return list(partitions(tx))


def lock_waits(db: Database) -> bool:
    """Whether any session of this database waits for a heavyweight lock now."""
    with db.read() as tx:
        found = tx.one(
            "SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database() LIMIT 1"
        )
    return found is not None


def test_the_history_keeps_no_foreign_key_to_devices_on_postgresql(unmigrated: Database) -> None:
    """Migration 0016 drops the key from the parent, every month made before it and the
    legacy table; months made after it have none. SQLite keeps its key."""
    db = unmigrated
    device, store = registered_before(db, "checkins_without_device_key")
    with db.write() as tx:
        store.record_many(tx, [row(device, T0, "before")])
    if db.dialect == "sqlite":
        migrate(db)
        with db.read() as tx:
            keys = tx.all("SELECT \"table\" FROM pragma_foreign_key_list('checkins')")
        assert [k[0] for k in keys] == ["devices"]
        return
    store.prepare_partitions(T0)
    # The parent's key and its clones, and the legacy table's own (attaching kept it apart).
    assert {"checkins.checkins_device_id_fkey1", "checkins_legacy.checkins_device_id_fkey"} < set(
        device_keys(db)
    )
    migrate(db)
    assert device_keys(db) == []
    assert store.prepare_partitions(T0 + timedelta(days=130)) != []
    assert device_keys(db) == []
    assert [c["at"] for c in store.recent(device)] == [T0.isoformat()]


def device_keys(db: Database) -> list[str]:
    """The foreign keys to `devices` held by the history or any of its partitions."""
    with db.read() as tx:
        rows = tx.all(
            "SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint"
            " WHERE contype = 'f' AND confrelid = 'devices'::regclass"
            " AND (conrelid = 'checkins'::regclass OR conrelid IN"
            " (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'checkins'::regclass))"
        )
    return sorted(str(r[0]) for r in rows)


MS = 1000


@pytest.mark.parametrize(
    ("held", "gaps"),
    [
        ([], [(0, 10 * MS)]),
        ([(None, 0)], [(0, 10 * MS)]),  # the legacy partition, all before
        ([(None, 3 * MS)], [(3 * MS, 10 * MS)]),  # ... or ending inside
        ([(2 * MS, 4 * MS), (6 * MS, 7 * MS)], [(0, 2 * MS), (4 * MS, 6 * MS), (7 * MS, 10 * MS)]),
        ([(0, 4 * MS), (4 * MS, 10 * MS)], []),
        ([(-5 * MS, 20 * MS)], []),
        ([(12 * MS, 20 * MS)], [(0, 10 * MS)]),  # after the period
        ([(5 * MS, None)], [(0, 5 * MS)]),
    ],
)
def test_the_gaps_of_a_period_are_what_no_partition_covers(
    held: list[tuple[int | None, int | None]], gaps: list[tuple[int, int]]
) -> None:
    parts = [Partition(f"p{i}", a, b) for i, (a, b) in enumerate(held)]
    assert _gaps(0, 10 * MS, parts) == gaps


def test_days_are_prepared_by_utc_day_and_take_their_rows(db: Database) -> None:
    store = SqlCheckinStore(db)
    with pytest.raises(ValueError, match="'week': expected month or day"):
        store.prepare_partitions(T0, period="week")
    if db.dialect == "sqlite":
        assert store.prepare_partitions(T0, period="day") == []
        return
    device, _ = registered(db)
    made = store.prepare_partitions(T0, period="day", ahead=2)  # T0: 27 November 2026
    assert made == ["checkins_y2026m11d27", "checkins_y2026m11d28", "checkins_y2026m11d29"]
    assert store.prepare_partitions(T0, period="day", ahead=2) == []
    day = datetime(2026, 11, 28, tzinfo=UTC)
    with db.read() as tx:
        (d28,) = [p for p in partitions(tx) if p.name == "checkins_y2026m11d28"]
    assert (d28.start, d28.end) == (epoch_ms(day), epoch_ms(day + timedelta(days=1)))
    with db.write() as tx:
        store.record_many(tx, [row(device, day + timedelta(hours=23, minutes=59), "late")])
    assert where(db, "late") == "checkins_y2026m11d28"
    with db.read() as tx:
        assert store.seen(tx, [(device, "late")], since=epoch_ms(day)) == {(device, "late")}


def test_months_fill_every_gap_the_days_left_and_days_skip_what_months_cover(
    db: Database,
) -> None:
    """From days back to months (or a node set otherwise than the rest): the month is made
    of every span no day covers, at once, so no row of it goes to the default partition."""
    if db.dialect == "sqlite":
        pytest.skip("SQLite has no partitions")
    device, _ = registered(db)
    store = SqlCheckinStore(db)
    store.prepare_partitions(T0, period="day", ahead=1)  # 27 and 28 November
    d29 = epoch_ms(datetime(2026, 11, 29, tzinfo=UTC))
    assert store.prepare_partitions(T0, period="month", ahead=1) == [
        "checkins_y2026m11",
        f"checkins_y2026m11_from{d29}",
        "checkins_y2026m12",
    ]
    with db.write() as tx:
        store.record_many(
            tx,
            [
                row(device, datetime(2026, 11, 1, tzinfo=UTC), "first"),
                row(device, datetime(2026, 11, 30, 23, tzinfo=UTC), "last"),
            ],
        )
    assert where(db, "first") == "checkins_y2026m11"
    assert where(db, "last") == f"checkins_y2026m11_from{d29}"
    # Days again: November's are covered, December's first is inside December's month.
    assert store.prepare_partitions(T0, period="day", ahead=5) == []


def registered(db: Database) -> tuple[str, Fleet]:
    fleet = Fleet(1)
    fleet.register(db)
    return fleet.records[0].id, fleet
