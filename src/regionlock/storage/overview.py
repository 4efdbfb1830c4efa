"""What the console's overview reads (issue 15): the fleet by place and verdict now, from the
devices' own columns (`last_country`, `last_subdivision`, `last_verdict`), in one scan; and
as it stood at the end of past days, from daily snapshots of counts (migration 0012).

Contract (both backends, tests/storage/test_overview.py): `fleet` counts every registered device
once, under the place and verdict of its last check-in (None for one that never checked in).
`count_day` counts every device that had checked in by the end of a day once, under the place
and verdict of its last check-in before then, and that day's check-ins; `save_day` stores them
for `fleet_on` and `days`, replacing an earlier count of the same day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple, Protocol

from regionlock.storage.db import Database, epoch_ms_of_day, from_epoch_ms


class FleetCount(NamedTuple):
    country: str | None
    subdivision: str | None
    verdict: str | None
    devices: int


class DayCount(NamedTuple):
    """One day's snapshot: the fleet as its check-ins left it, and how many came that day."""

    day: date
    fleet: list[FleetCount]
    checkins: int


class OverviewStore(Protocol):
    def fleet(self) -> list[FleetCount]:
        """Devices by last place and last verdict, the largest groups first."""
        ...

    def first_checkin_day(self) -> date | None:
        """The UTC day of the oldest check-in kept (None: there is none)."""
        ...

    def count_day(self, day: date) -> DayCount:
        """The fleet at the end of `day` (UTC) from the check-ins kept: a long read, no lock."""
        ...

    def save_day(self, counted: DayCount, *, at: int) -> None:
        """Store a day's snapshot (replacing one of the same day) in one short write."""
        ...

    def days(self, since: date) -> list[tuple[date, int]]:
        """The days snapshotted since `since`, oldest first, with their check-ins."""
        ...

    def fleet_on(self, day: date) -> list[FleetCount] | None:
        """The fleet at the end of `day` as snapshotted (None: no snapshot of that day)."""
        ...


def _counts(rows: Sequence[tuple[Any, ...]]) -> list[FleetCount]:
    return [FleetCount(str(r[0]) or None, str(r[1]) or None, str(r[2]), int(r[3])) for r in rows]


class SqlOverviewStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def fleet(self) -> list[FleetCount]:
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT last_country, last_subdivision, last_verdict, COUNT(*) FROM devices"
                " GROUP BY last_country, last_subdivision, last_verdict"
                " ORDER BY 4 DESC, 1, 2, 3"
            )
        return [FleetCount(r[0], r[1], r[2], int(r[3])) for r in rows]

    def first_checkin_day(self) -> date | None:
        with self.db.read() as tx:
            r = tx.one("SELECT MIN(at) FROM checkins")
        oldest = from_epoch_ms(r[0]) if r is not None else None
        return oldest.date() if oldest is not None else None

    def count_day(self, day: date) -> DayCount:
        start = epoch_ms_of_day(day)
        end = epoch_ms_of_day(day + timedelta(days=1))
        with self.db.read() as tx:
            # A device's last check-in before the end of the day is its highest id there: ids
            # are given in commit order, and `at` is the service's clock at that commit.
            rows = tx.all(
                "SELECT COALESCE(c.country, ''), COALESCE(c.subdivision, ''), c.verdict,"
                " COUNT(*) FROM checkins c JOIN (SELECT MAX(id) AS id FROM checkins"
                " WHERE at < ? GROUP BY device_id) l ON c.id = l.id"
                " GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3",
                (end,),
            )
            n = tx.one("SELECT COUNT(*) FROM checkins WHERE at >= ? AND at < ?", (start, end))
        return DayCount(day, _counts(rows), int(n[0]) if n else 0)

    def save_day(self, counted: DayCount, *, at: int) -> None:
        key = counted.day.isoformat()
        with self.db.write() as tx:
            tx.execute("DELETE FROM fleet_days WHERE day = ?", (key,))
            tx.execute("DELETE FROM fleet_day_totals WHERE day = ?", (key,))
            tx.executemany(
                "INSERT INTO fleet_days (day, country, subdivision, verdict, devices)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (key, c.country or "", c.subdivision or "", c.verdict, c.devices)
                    for c in counted.fleet
                ],
            )
            tx.execute(
                "INSERT INTO fleet_day_totals (day, checkins, devices, computed_at)"
                " VALUES (?, ?, ?, ?)",
                (key, counted.checkins, sum(c.devices for c in counted.fleet), at),
            )

    def days(self, since: date) -> list[tuple[date, int]]:
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT day, checkins FROM fleet_day_totals WHERE day >= ? ORDER BY day",
                (since.isoformat(),),
            )
        return [(date.fromisoformat(str(r[0])), int(r[1])) for r in rows]

    def fleet_on(self, day: date) -> list[FleetCount] | None:
        key = day.isoformat()
        with self.db.read() as tx:
            if tx.one("SELECT 1 FROM fleet_day_totals WHERE day = ?", (key,)) is None:
                return None
            rows = tx.all(
                "SELECT country, subdivision, verdict, devices FROM fleet_days WHERE day = ?"
                " ORDER BY 4 DESC, 1, 2, 3",
                (key,),
            )
        return _counts(rows)
