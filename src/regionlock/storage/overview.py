"""What the console's overview reads (issue 15): the fleet by place and verdict, from the
devices' own columns (`last_country`, `last_subdivision`, `last_verdict`), in one scan.

Contract (both backends, tests/storage/test_overview.py): `fleet` counts every registered device
once, under the place and verdict of its last check-in (None for one that never checked in)."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from regionlock.storage.db import Database


class FleetCount(NamedTuple):
    country: str | None
    subdivision: str | None
    verdict: str | None
    devices: int


class OverviewStore(Protocol):
    def fleet(self) -> list[FleetCount]:
        """Devices by last place and last verdict, the largest groups first."""
        ...


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
