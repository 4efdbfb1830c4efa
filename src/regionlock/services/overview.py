"""The fleet at a glance (the console's overview): devices by verdict, and by place the share
of them locked or warned; the active policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from regionlock.storage import Stores
from regionlock.storage.overview import OverviewStore
from regionlock.storage.policies import PolicyStore


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
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Overview:
    fleet_store: OverviewStore
    policies: PolicyStore

    @classmethod
    def of(cls, stores: Stores) -> Overview:
        return cls(stores.overview, stores.policies)

    def view(self) -> FleetView:
        by_verdict = {"allow": 0, "warn": 0, "lock": 0, "none": 0}
        countries: dict[str, PlaceShare] = {}
        subdivisions: dict[str, PlaceShare] = {}
        total = 0
        for row in self.fleet_store.fleet():
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
        )
