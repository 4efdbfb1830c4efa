"""The fleet at a glance (the console's overview): devices by verdict, and by place the share
of them locked or warned; the active policy; the same as it stood at the end of past days, and
check-ins per day, from daily snapshots that the service writes as each day ends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from regionlock.storage import Stores
from regionlock.storage.db import epoch_ms
from regionlock.storage.overview import FleetCount, OverviewStore
from regionlock.storage.policies import PolicyStore

log = logging.getLogger(__name__)

# How far back the service fills in days it has no snapshot of (a new installation, or one
# that was down): each is one scan of the check-ins kept.
BACKFILL_DAYS = 90


@dataclass
class PlaceShare:
    """One country (or a subdivision of it): its devices and how many are locked or warned."""

    code: str
    devices: int = 0
    locked: int = 0
    warned: int = 0

    @property
    def held_share(self) -> float:
        return (self.locked + self.warned) / self.devices if self.devices else 0.0


@dataclass
class FleetView:
    total: int
    by_verdict: dict[str, int]  # allow, warn, lock, and "none" for devices never seen
    countries: list[PlaceShare]
    subdivisions: list[PlaceShare]
    policy: str | None
    policy_since: str | None
    day: date | None = None  # None: now; else the end of this UTC day, from its snapshot
    counted_at: datetime | None = None  # when the devices were counted (now: up to a TTL ago)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Overview:
    fleet_store: OverviewStore
    policies: PolicyStore

    @classmethod
    def of(cls, stores: Stores) -> Overview:
        return cls(stores.overview, stores.policies)

    def now(self) -> FleetView:
        """The fleet now: every device under its last verdict and place (reads them all)."""
        return self._view(self.fleet_store.fleet(), None)

    def view(self, day: date | None = None) -> FleetView | None:
        """The fleet now, or at the end of `day` (None when that day has no snapshot)."""
        if day is None:
            return self.now()
        counts = self.fleet_store.fleet_on(day)
        return None if counts is None else self._view(counts, day)

    def _view(self, rows: list[FleetCount], day: date | None) -> FleetView:
        by_verdict = {"allow": 0, "warn": 0, "lock": 0, "none": 0}
        countries: dict[str, PlaceShare] = {}
        subdivisions: dict[str, PlaceShare] = {}
        total = 0
        for row in rows:
            total += row.devices
            verdict = row.verdict or "none"
            by_verdict[verdict] = by_verdict.get(verdict, 0) + row.devices
            places = []
            if row.country:
                places.append(countries.setdefault(row.country, PlaceShare(row.country)))
            if row.subdivision:
                places.append(subdivisions.setdefault(row.subdivision, PlaceShare(row.subdivision)))
            for place in places:
                place.devices += row.devices
                place.locked += row.devices if verdict == "lock" else 0
                place.warned += row.devices if verdict == "warn" else 0
        active = self.policies.active()
        return FleetView(
            total=total,
            by_verdict=by_verdict,
            countries=sorted(countries.values(), key=lambda p: (-p.held_share, -p.devices)),
            subdivisions=sorted(subdivisions.values(), key=lambda p: (-p.held_share, -p.devices)),
            policy=f"{active.policy.policy_id}@{active.policy.version}" if active else None,
            policy_since=(
                datetime.fromtimestamp(active.activated_at / 1000, UTC).isoformat()
                if active
                else None
            ),
            day=day,
            counted_at=datetime.now(UTC),
        )

    def days(self, today: date, *, back: int = BACKFILL_DAYS) -> list[tuple[date, int]]:
        """The days with a snapshot in the last `back` days, with their check-ins."""
        return self.fleet_store.days(today - timedelta(days=back))

    def snapshot_missing(
        self,
        now: datetime,
        *,
        back: int = BACKFILL_DAYS,
        stopping: Callable[[], bool] = lambda: False,
    ) -> list[date]:
        """Snapshot every ended day of the last `back` that has none and has check-ins kept
        (from the oldest one kept); returns the days written. Idempotent: another node doing
        the same day writes the same counts."""
        today = now.astimezone(UTC).date()
        have = {d for d, _ in self.fleet_store.days(today - timedelta(days=back))}
        window = (today - timedelta(days=n) for n in range(1, back + 1))
        if all(d in have for d in window):
            return []  # the usual wake-up: no need to look for the oldest check-in (a scan)
        first = self.fleet_store.first_checkin_day()
        if first is None:
            return []
        written = []
        day = max(first, today - timedelta(days=back))
        while day < today and not stopping():
            if day not in have:
                counted = self.fleet_store.count_day(day)
                self.fleet_store.save_day(counted, at=epoch_ms(datetime.now(UTC)))
                written.append(day)
                log.info("overview: snapshot of %s (%d check-ins)", day, counted.checkins)
            day += timedelta(days=1)
        return written
