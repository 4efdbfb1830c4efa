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
