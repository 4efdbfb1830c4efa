"""PostgreSQL's check-in history by month (migration 0015, docs/operating.md "Partitions"): an
existing history becomes the first partition unchanged, months are prepared ahead, replays are
still refused, and none of it touches SQLite."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from storage_fixtures import T0, Fleet

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinService
from regionlock.settings import Settings
from regionlock.signing import ReplayedNonce
from regionlock.storage import Database, Stores
from regionlock.storage.checkins import CheckinRow, DuplicateNonce, SqlCheckinStore, partitions
from regionlock.storage.db import epoch_ms
from regionlock.storage.migrate import available, migrate


def row(device_id: str, at: datetime, nonce: str) -> CheckinRow:
    return CheckinRow(
        device_id, at, 1, nonce, "IR", None, 0.9, [], ["gps"], "lock", ["r"], "p", "1"
    )


def names(db: Database) -> list[str]:
    with db.read() as tx:
        return [p.name for p in partitions(tx)]


def where(db: Database, nonce: str) -> str:
    with db.read() as tx:
        found = tx.one("SELECT tableoid::regclass::text FROM checkins WHERE nonce = ?", (nonce,))
    assert found is not None
    return str(found[0])


def test_an_existing_history_becomes_the_first_partition_as_it_is(unmigrated: Database) -> None:
    db = unmigrated
    (by_month,) = [m.version for m in available(db.dialect) if m.name == "checkins_by_month"]
    migrate(db, upto=by_month - 1)
    fleet = Fleet(1)
    fleet.register(db)
    device = fleet.records[0].id
    store = SqlCheckinStore(db)
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
        sql = (
            "EXPLAIN SELECT c.device_id, c.nonce FROM (VALUES (?, ?)) AS v JOIN checkins AS c"
            " ON c.device_id = v.column1 AND c.nonce = v.column2"
        )
        every = " ".join(str(r[0]) for r in tx.all(sql, [device, "x"]))
        recent = " ".join(str(r[0]) for r in tx.all(sql + " AND c.at >= ?", [device, "x", january]))
    assert "checkins_y2026m11" in every and "checkins_y2026m12" in every
    assert "checkins_y2027m01" in recent and "checkins_default" in recent
    assert "checkins_y2026m11" not in recent and "checkins_y2026m12" not in recent


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
