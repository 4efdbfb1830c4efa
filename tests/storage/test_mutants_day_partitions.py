"""Found by mutation testing of the check-in history's day partitions: `_gaps`,
`period_bounds`, `SqlCheckinStore.prepare_partitions` and `_prepare` (docs/test-quality.md,
"The import's writers, day partitions and ended threads' connections"): each test below
failed on a mutant that the partition, conflict and privacy tests let live. Both stores,
unless a test says PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from storage_fixtures import T0, Fleet

from regionlock.storage import Database
from regionlock.storage.checkins import CheckinRow, SqlCheckinStore, partitions
from regionlock.storage.db import epoch_ms


def day_ms(year: int, month: int, day: int) -> int:
    return epoch_ms(datetime(year, month, day, tzinfo=UTC))


def row(device_id: str, at: datetime, nonce: str) -> CheckinRow:
    return CheckinRow(
        device_id, at, 1, nonce, "IR", None, 0.9, [], ["gps"], "lock", ["r"], "p", "1"
    )


def where(db: Database, nonce: str) -> str:
    with db.read() as tx:
        found = tx.one("SELECT tableoid::regclass::text FROM checkins WHERE nonce = ?", (nonce,))
    assert found is not None
    return str(found[0])


def bounds(db: Database, name: str) -> tuple[int | None, int | None]:
    with db.read() as tx:
        (found,) = [p for p in partitions(tx) if p.name == name]
    return found.start, found.end


def test_the_days_prepared_are_utc_days_whatever_the_machines_zone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 02:00 UTC on 28 November it is still the 27th in New York: the days prepared are
    the 28th and 29th, each named by its UTC day and starting at its UTC midnight."""
    if db.dialect != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        made = SqlCheckinStore(db).prepare_partitions(
            datetime(2026, 11, 28, 2, tzinfo=UTC), period="day", ahead=1
        )
    finally:
        monkeypatch.undo()
        time.tzset()
    assert made == ["checkins_y2026m11d28", "checkins_y2026m11d29"]
    assert bounds(db, "checkins_y2026m11d28") == (day_ms(2026, 11, 28), day_ms(2026, 11, 29))


def test_a_gap_whose_rows_went_to_the_default_partition_leaves_the_later_gaps_made(
    db: Database,
) -> None:
    """November has days 27 and 28 already, so its month is two gaps: the 1st to the 27th,
    where a check-in already went to the default partition (left alone), and the 29th on,
    which is still made, and so is December."""
    if db.dialect != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    fleet = Fleet(1)
    fleet.register(db)
    device = fleet.records[0].id
    store = SqlCheckinStore(db)
    assert store.prepare_partitions(T0, period="day", ahead=1) == [  # T0: 27 November 2026
        "checkins_y2026m11d27",
        "checkins_y2026m11d28",
    ]
    with db.write() as tx:
        store.record_many(tx, [row(device, datetime(2026, 11, 5, tzinfo=UTC), "early")])
    assert where(db, "early") == "checkins_default"
    d29 = day_ms(2026, 11, 29)
    assert store.prepare_partitions(T0, period="month", ahead=1) == [
        f"checkins_y2026m11_from{d29}",
        "checkins_y2026m12",
    ]
    assert where(db, "early") == "checkins_default"
    with db.write() as tx:
        store.record_many(tx, [row(device, datetime(2026, 11, 30, tzinfo=UTC), "late")])
    assert where(db, "late") == f"checkins_y2026m11_from{d29}"
