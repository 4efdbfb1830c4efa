"""A device that loops is refused 429 rate-limited; nobody else can spend its allowance."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from storage_fixtures import T0, Fleet

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinCall, CheckinService
from regionlock.services.ratelimit import Rate, RateLimited, TokenBuckets
from regionlock.settings import Settings
from regionlock.signing import ReplayedNonce
from regionlock.storage import Database, Stores

BERLIN = {"network": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}}


def test_a_looping_device_is_rate_limited_and_nothing_is_recorded(
    db: Database, locator: Locator
) -> None:
    fleet = Fleet(2)
    fleet.register(db)
    service = replace(
        CheckinService.of(Stores.on(db), locator, Settings()),
        limiter=TokenBuckets(Rate(per_hour=60, burst=3)),
    )
    for counter in (1, 2, 3):
        service.check_in(fleet.token(0, counter, T0, BERLIN), peer_ip=None, now=T0)
    with pytest.raises(RateLimited) as info:
        service.check_in(fleet.token(0, 4, T0, BERLIN), peer_ip=None, now=T0)
    assert info.value.retry_after_s == 60
    assert service.check_in(fleet.token(1, 1, T0, BERLIN), peer_ip=None, now=T0)  # its own
    later = T0 + timedelta(minutes=1)
    assert service.check_in(fleet.token(0, 4, later, BERLIN), peer_ip=None, now=later)
    with db.read() as tx:
        assert tx.one("SELECT COUNT(*) FROM checkins WHERE counter = 4") == (1,)


def test_replays_and_forgeries_do_not_spend_a_devices_allowance(
    db: Database, locator: Locator
) -> None:
    fleet = Fleet(1)
    fleet.register(db)
    service = replace(
        CheckinService.of(Stores.on(db), locator, Settings()),
        limiter=TokenBuckets(Rate(per_hour=60, burst=2)),
    )
    captured = fleet.token(0, 1, T0, BERLIN, nonce="n" * 22)
    service.check_in(captured, peer_ip=None, now=T0)
    for _ in range(50):  # an attacker replays a captured check-in
        with pytest.raises(ReplayedNonce):
            service.check_in(captured, peer_ip=None, now=T0)
    # The device's own next check-in still goes through: the replays cost it nothing.
    assert service.check_in(fleet.token(0, 2, T0, BERLIN), peer_ip=None, now=T0)


def test_the_default_settings_limit_devices() -> None:
    settings = Settings()
    assert settings.device_rate_per_hour > 0 and settings.device_burst >= 10


def test_a_check_in_the_store_failed_to_record_costs_no_allowance(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused by the store (an outage, a full disk): the device meets the 503 each time and is
    charged once, when its check-in is recorded."""
    from regionlock.storage.db import StoreUnavailable

    fleet = Fleet(2)
    fleet.register(db)
    service = replace(
        CheckinService.of(Stores.on(db), locator, Settings()),
        limiter=TokenBuckets(Rate(per_hour=60, burst=1)),
    )
    real = service.audit.append_many

    def full(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("the store is unavailable: database or disk is full")

    monkeypatch.setattr(service.audit, "append_many", full)
    token = fleet.token(0, 1, T0, BERLIN)
    for _ in range(5):  # retried through the outage: never 429
        with pytest.raises(StoreUnavailable):
            service.check_in(token, peer_ip=None, now=T0)
    # A group that fails as a whole is retried one by one: each charged once, not twice.
    group = [fleet.token(0, 1, T0, BERLIN), fleet.token(1, 1, T0, BERLIN)]
    outcomes = service.check_in_many([CheckinCall(t, None, T0) for t in group])
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    monkeypatch.setattr(service.audit, "append_many", real)
    assert service.check_in(token, peer_ip=None, now=T0)["verdict"]  # the burst of 1 is intact
    assert service.check_in(fleet.token(1, 1, T0, BERLIN), peer_ip=None, now=T0)["verdict"]
    with pytest.raises(RateLimited):  # and now it is spent
        service.check_in(fleet.token(0, 2, T0, BERLIN), peer_ip=None, now=T0)
