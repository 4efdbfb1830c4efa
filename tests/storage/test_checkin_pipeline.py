"""The check-in pipeline in process, on both stores: verify, locate, decide, record, sign."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jwt
import pytest
from storage_fixtures import EXAMPLES, T0, Fleet, imei
from storage_fixtures import checkin as signed_checkin

from regionlock.domain.device import AppealAnswer, DeviceRecord, ManualExemption, ManualLock
from regionlock.geo import Locator
from regionlock.services.checkin import MANUAL_LOCK_NOTICE, CheckinService
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.services.ratelimit import Rate, RateLimited, TokenBuckets
from regionlock.services.registry import Registry, UnknownDevice
from regionlock.settings import Settings
from regionlock.signing import (
    BadSignature,
    ClockSkew,
    ReplayedNonce,
    SigningKey,
    StaleCounter,
)
from regionlock.storage import Database, Stores

TEHRAN = {
    "sim": ["432-11"],
    "network": ["432-11"],
    "gps": {"lat": 35.6892, "lon": 51.389},
    "timezone": "Asia/Tehran",
}


@pytest.fixture
def world(db: Database, locator: Locator) -> tuple[CheckinService, SigningKey, DeviceRecord]:
    fleet = Fleet(1)
    fleet.register(db)
    return CheckinService.of(Stores.on(db), locator, Settings()), fleet.keys[0], fleet.records[0]


def checkin(
    key: SigningKey,
    kid: str,
    counter: int,
    at: datetime,
    signals: Mapping[str, object] = TEHRAN,
    nonce: str | None = None,
) -> str:
    return signed_checkin(key, kid, counter, at, signals, nonce)


def test_first_activation_in_tehran_locks_at_once(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    verdicts = []
    for day in range(6):
        now = T0 + timedelta(days=day)
        out = service.check_in(checkin(key, imei(1), day + 1, now), peer_ip="2.144.0.1", now=now)
        verdicts.append(out["verdict"])
    assert verdicts == ["lock"] * 6
    assert "presence.first_activation" in out["reasons"]
    assert out["location"] == {"country": "IR", "subdivision": "IR-23"}
    jwks = service.keys.keyring(now).jwks(now, timedelta(days=400))
    claims = jwt.decode(
        out["token"],
        jwt.PyJWK(jwks["keys"][0]).key,
        algorithms=["EdDSA"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == record.id and claims["verdict"] == "lock"
    stored = service.devices.get(record.id)
    assert stored is not None and stored.state.counter == 6
    assert service.audit.verify().ok
    with service.db.read() as tx:
        rows = tx.all(
            "SELECT country, signal_kinds FROM checkins WHERE device_id = ?", (record.id,)
        )
    assert rows[0] == ("IR", '["gps", "network", "sim", "ip", "timezone"]')


def test_a_phone_from_its_sales_region_gets_traveller_grace(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    dubai = {"network": ["424-02"], "sim": ["424-02"], "gps": {"lat": 25.2048, "lon": 55.2708}}
    service.check_in(checkin(key, record.id, 1, T0, dubai), peer_ip=None, now=T0)
    verdicts = []
    for day in range(1, 7):
        now = T0 + timedelta(days=day)
        out = service.check_in(checkin(key, record.id, day + 1, now), peer_ip=None, now=now)
        verdicts.append((out["verdict"], out["reasons"][-1]))
    # More than 3 days within 14 establishes presence: warned for 3 days, locked on the 4th.
    assert verdicts == [("warn", "presence.grace")] * 3 + [("lock", "presence.established")] * 3
    stored = service.devices.get(record.id)
    assert stored is not None and stored.state.first_country == "AE"


def test_a_traveller_whose_home_checkins_were_uncertain_is_not_locked_on_arrival(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    """Found by the fleet simulator: check-ins at home placed with low confidence must not
    let the first confident check-in abroad count as the first activation there."""
    service, key, record = world
    home = {"ip": "5.30.2.9", "timezone": "Asia/Dubai"}  # IP only: no presence evidence
    first = service.check_in(checkin(key, record.id, 1, T0, home), peer_ip=None, now=T0)
    assert first["verdict"] == "allow"
    now = T0 + timedelta(days=1)
    out = service.check_in(checkin(key, record.id, 2, now), peer_ip=None, now=now)
    assert (out["verdict"], out["reasons"][-1]) == ("warn", "presence.grace")
    stored = service.devices.get(record.id)
    assert stored is not None and stored.state.first_country is None


def test_a_phone_set_up_over_wifi_in_tehran_is_locked_as_activated_there(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    wifi = {"ip": "2.144.0.1", "timezone": "Asia/Tehran", "locale": "fa_IR"}
    first = service.check_in(checkin(key, record.id, 1, T0, wifi), peer_ip=None, now=T0)
    assert first["verdict"] == "warn"  # placed by its IP alone: never a lock
    now = T0 + timedelta(hours=6)
    out = service.check_in(checkin(key, record.id, 2, now), peer_ip=None, now=now)
    assert (out["verdict"], out["reasons"][-1]) == ("lock", "presence.first_activation")


def test_a_place_narrowed_to_candidates_is_kept_with_the_checkin(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    crimea = {"network": ["250-60"], "sim": ["250-60"], "timezone": "Europe/Simferopol"}
    out = service.check_in(checkin(key, record.id, 1, T0, crimea), peer_ip=None, now=T0)
    assert out["location"] == {"country": "UA", "subdivision": None}
    # Both candidates are restricted by the 2021 policy: a first activation there locks.
    assert (out["verdict"], out["reasons"][-1]) == ("lock", "presence.first_activation")
    (row,) = service.checkins.recent(record.id)
    assert row["subdivision_candidates"] == ["UA-40", "UA-43"]
    stored = service.devices.get(record.id)
    assert stored is not None and stored.state.last_subdivisions == ("UA-40", "UA-43")
    assert stored.state.first_subdivision == "UA-40|UA-43"


def test_replays_and_forgeries_change_nothing(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    token = checkin(key, record.id, 5, T0, nonce="n" * 20)
    service.check_in(token, peer_ip=None, now=T0)
    # An exact replay is named for its nonce, checked before the counter (docs/protocol.md).
    with pytest.raises(ReplayedNonce):
        service.check_in(token, peer_ip=None, now=T0)
    with pytest.raises(StaleCounter):
        service.check_in(checkin(key, record.id, 4, T0), peer_ip=None, now=T0)
    with pytest.raises(ReplayedNonce):
        service.check_in(checkin(key, record.id, 6, T0, nonce="n" * 20), peer_ip=None, now=T0)
    with pytest.raises(BadSignature):
        service.check_in(checkin(SigningKey.generate(T0), record.id, 7, T0), peer_ip=None, now=T0)
    with pytest.raises(UnknownDevice):
        service.check_in(checkin(key, "dev_nobody", 8, T0), peer_ip=None, now=T0)
    stored = service.devices.get(record.id)
    assert stored is not None and stored.state.counter == 5 and stored.version == 1
    assert [e.action for e in service.audit.entries()][-1] == "checkin.verdict"
    assert len([e for e in service.audit.entries() if e.action == "checkin.verdict"]) == 1


def test_operator_exemption_wins_and_manual_lock_applies(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    registry = Registry.of(Stores.on(service.db))
    registry.lock(record.id, reason="stolen", actor="ops", now=T0)
    berlin = {"network": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}}
    out = service.check_in(checkin(key, record.id, 1, T0, berlin), peer_ip=None, now=T0)
    assert out["verdict"] == "lock" and out["reasons"][0] == "operator.lock"
    registry.exempt(record.id, reason="appeal 4711", actor="ops", now=T0, until=None)
    out = service.check_in(checkin(key, record.id, 2, T0), peer_ip=None, now=T0)
    assert out["verdict"] == "allow" and out["reasons"] == ["exemption.device"]


def test_one_checkin_sent_many_times_at_once_is_processed_once(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    import threading

    service, key, record = world
    token = checkin(key, record.id, 1, T0)
    outcomes: list[str] = []
    lock = threading.Lock()

    def send() -> None:
        try:
            service.check_in(token, peer_ip=None, now=T0)
            result = "ok"
        except (StaleCounter, ReplayedNonce) as exc:
            result = type(exc).__name__
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1 and len(outcomes) == 8
    with service.db.read() as tx:
        rows = tx.one("SELECT COUNT(*) FROM checkins WHERE device_id = ?", (record.id,))
    assert rows == (1,)
    assert len([e for e in service.audit.entries() if e.action == "checkin.verdict"]) == 1
    assert service.audit.verify().ok


def test_a_manual_lock_shows_its_own_message_not_the_regions(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    from regionlock.services.checkin import MANUAL_LOCK_MESSAGE

    service, key, record = world
    registry = Registry.of(Stores.on(service.db))
    region_message = "does not permit"  # from the 2021 policy's message for region locks
    berlin = {"network": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}}
    registry.lock(record.id, reason="reported stolen", actor="ops", now=T0)
    out = service.check_in(checkin(key, record.id, 1, T0, berlin), peer_ip=None, now=T0)
    assert out["verdict"] == "lock" and out["reasons"][0] == "operator.lock"
    assert out["message"] == MANUAL_LOCK_MESSAGE and region_message not in out["message"]
    registry.lock(
        record.id,
        reason="reported stolen",
        actor="ops",
        now=T0,
        message="Reported stolen. Bring it to a store with proof of purchase.",
        contact="+49 30 1234567",
    )
    out = service.check_in(checkin(key, record.id, 2, T0, berlin), peer_ip=None, now=T0)
    assert out["message"] == "Reported stolen. Bring it to a store with proof of purchase."
    assert out["contact"] == "+49 30 1234567"


def test_a_rotation_from_another_process_signs_the_next_verdict(
    world: tuple[CheckinService, SigningKey, DeviceRecord], db: Database
) -> None:
    from regionlock.services.access import Access

    service, key, record = world
    first = service.check_in(checkin(key, record.id, 1, T0), peer_ip=None, now=T0)
    # The CLI rotates with stores of its own, on a connection of its own.
    cli_db = Database(db.url.url, schema=db.schema)
    try:
        new = Access.of(Stores.on(cli_db)).rotate_signing_key(reason="yearly", actor="cli", now=T0)
    finally:
        cli_db.close()
    second = service.check_in(checkin(key, record.id, 2, T0), peer_ip=None, now=T0)
    assert jwt.get_unverified_header(first["token"])["kid"] != new.kid
    assert jwt.get_unverified_header(second["token"])["kid"] == new.kid


# Found by mutation testing (docs/test-quality.md): each test below failed on a mutant of
# services/checkin.py that the tests above let through.


def test_a_new_activation_decides_from_the_next_check_in_on(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    admin = PolicyAdmin.of(Stores.on(service.db))
    versions = []
    for counter, name in enumerate(("gray-market-2021-lifted", "gray-market-2021"), start=1):
        out = service.check_in(checkin(key, record.id, counter, T0), peer_ip=None, now=T0)
        versions.append(out["policy"]["version"])
        text = (EXAMPLES / f"{name}.toml").read_text()
        admin.activate(text, source="t", actor="test", reason="test", now=T0)
    out = service.check_in(checkin(key, record.id, 3, T0), peer_ip=None, now=T0)
    versions.append(out["policy"]["version"])
    assert versions == ["2021-09-15", "2021-11-01-lifted", "2021-09-15"]


def test_the_policy_and_the_keys_are_read_again_only_when_they_change(
    world: tuple[CheckinService, SigningKey, DeviceRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The active policy is parsed, and the keyring read, once per change, not per check-in:
    the group commit's throughput rests on it (bench/README.md)."""
    from regionlock.services.access import Access

    service, key, record = world
    service.keys.keyring(T0)  # the first key, which a first read would create (a change too)
    reads = {"policy": 0, "keyring": 0}

    def counted(what: str, real: Any) -> Any:
        def read(*args: Any, **kwargs: Any) -> Any:
            reads[what] += 1
            return real(*args, **kwargs)

        return read

    monkeypatch.setattr(service.policies, "active", counted("policy", service.policies.active))
    monkeypatch.setattr(service.keys, "keyring", counted("keyring", service.keys.keyring))
    for counter in (1, 2, 3):
        service.check_in(checkin(key, record.id, counter, T0), peer_ip=None, now=T0)
    assert reads == {"policy": 1, "keyring": 1}
    PolicyAdmin.of(Stores.on(service.db)).activate(
        (EXAMPLES / "gray-market-2021-lifted.toml").read_text(),
        source="t",
        actor="test",
        reason="test",
        now=T0,
    )
    for counter in (4, 5):
        service.check_in(checkin(key, record.id, counter, T0), peer_ip=None, now=T0)
    assert reads == {"policy": 2, "keyring": 1}
    Access.of(Stores.on(service.db)).rotate_signing_key(reason="yearly", actor="cli", now=T0)
    for counter in (6, 7):
        service.check_in(checkin(key, record.id, counter, T0), peer_ip=None, now=T0)
    assert reads == {"policy": 2, "keyring": 2}


def test_a_check_in_is_recorded_with_its_place_its_policy_and_its_evidence(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    out = service.check_in(checkin(key, record.id, 1, T0), peer_ip="2.144.0.1", now=T0)
    reasons = ["jurisdiction.restricted", "presence.first_activation"]
    assert out["reasons"] == reasons
    (row,) = service.checkins.recent(record.id)
    assert (row["subdivision"], row["policy"]) == ("IR-23", "gray-market-2021@2021-09-15")
    entry = service.audit.entries()[-1]
    assert (entry.actor, entry.action, entry.subject) == (
        f"device:{record.id}",
        "checkin.verdict",
        record.id,
    )
    assert entry.reason == "jurisdiction.restricted,presence.first_activation"
    assert entry.details == {
        "verdict": "lock",
        "previous": None,  # its first check-in: no verdict before it
        "country": "IR",
        "subdivision": "IR-23",
        "confidence": row["confidence"],
        "flags": [],
        "signals": ["gps", "network", "sim", "ip", "timezone"],
        "policy": "gray-market-2021@2021-09-15",
        "counter": 1,
    }
    crimea = {"network": ["250-60"], "sim": ["250-60"], "timezone": "Europe/Simferopol"}
    service.check_in(checkin(key, record.id, 2, T0, crimea), peer_ip=None, now=T0)
    details = service.audit.entries()[-1].details
    assert (details["subdivision"], details["subdivision_candidates"]) == (None, ["UA-40", "UA-43"])


def test_a_refused_check_in_says_why(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    token = checkin(key, record.id, 5, T0)
    service.check_in(token, peer_ip=None, now=T0)
    with pytest.raises(ReplayedNonce, match=r"^this nonce was already used by this device$"):
        service.check_in(token, peer_ip=None, now=T0)
    with pytest.raises(StaleCounter, match=r"^counter 4 is not above the last accepted \(5\)$"):
        service.check_in(checkin(key, record.id, 4, T0), peer_ip=None, now=T0)
    stranger = checkin(key, "dev_nobody", 1, T0)
    with pytest.raises(
        UnknownDevice, match=r"^no registered device has this kid \(device id or IMEI\)$"
    ):
        service.check_in(stranger, peer_ip=None, now=T0)
    limited = replace(service, limiter=TokenBuckets(Rate(per_hour=60, burst=1)))
    limited.check_in(checkin(key, record.id, 6, T0), peer_ip=None, now=T0)
    with pytest.raises(RateLimited, match=r"^this device checks in too often: try again in 60 s$"):
        limited.check_in(checkin(key, record.id, 7, T0), peer_ip=None, now=T0)


def test_a_service_without_a_limiter_never_rate_limits(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    unlimited = replace(service, limiter=None)
    verdicts = [
        unlimited.check_in(checkin(key, record.id, c, T0), peer_ip=None, now=T0)["verdict"]
        for c in range(1, 31)
    ]
    assert verdicts == ["lock"] * 30


def test_an_operator_exemption_ends_on_its_until_date(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    registry = Registry.of(Stores.on(service.db))
    until = (T0 + timedelta(days=2)).date()
    registry.exempt(record.id, reason="appeal 4711", actor="ops", now=T0, until=until)
    verdicts = []
    for day in (0, 1, 2):
        now = T0 + timedelta(days=day)
        out = service.check_in(checkin(key, record.id, day + 1, now), peer_ip=None, now=now)
        verdicts.append((out["verdict"], out["reasons"][0]))
    assert verdicts == [
        ("allow", "exemption.device"),
        ("allow", "exemption.device"),
        ("lock", "jurisdiction.restricted"),
    ]


def test_the_clock_window_is_the_services_setting(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    strict = replace(service, settings=Settings(clock_skew_s=60))
    ahead = T0 + timedelta(seconds=120)  # inside the default window of 300 s
    with pytest.raises(ClockSkew):
        strict.check_in(checkin(key, record.id, 1, ahead), peer_ip=None, now=T0)
    assert service.check_in(checkin(key, record.id, 1, ahead), peer_ip=None, now=T0)


def test_the_ip_a_device_reports_wins_over_the_peer_address(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    """A device behind a proxy or NAT says its own address; the peer's is only a fallback."""
    service, key, record = world
    wifi = {"ip": "2.144.0.1", "timezone": "Asia/Tehran"}
    out = service.check_in(checkin(key, record.id, 1, T0, wifi), peer_ip="5.30.2.9", now=T0)
    assert out["location"]["country"] == "IR"
    alone = {"timezone": "Asia/Tehran"}
    service.check_in(checkin(key, record.id, 2, T0, alone), peer_ip="2.144.0.1", now=T0)
    (latest, _) = service.checkins.recent(record.id)
    assert "ip" in latest["signals"]


# Found by mutation testing (docs/test-quality.md, "services/checkin.py, since 33687c7"): each
# test below failed on a mutant of services/checkin.py that the tests above let through.


def test_without_an_active_policy_every_device_is_allowed(db: Database, locator: Locator) -> None:
    fleet = Fleet(1)
    with db.write() as tx:
        Registry.of(Stores.on(db)).devices.import_batch(tx, fleet.records, at=0)
    service = CheckinService.of(Stores.on(db), locator, Settings())
    out = service.check_in(checkin(fleet.keys[0], imei(1), 1, T0), peer_ip=None, now=T0)
    assert (out["verdict"], out["reasons"]) == ("allow", ["policy.no_match"])
    assert out["policy"] == {"id": "none", "version": "0"}


def test_each_audited_verdict_names_the_one_before_it(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    service.check_in(checkin(key, record.id, 1, T0), peer_ip=None, now=T0)
    later = T0 + timedelta(hours=1)
    service.check_in(checkin(key, record.id, 2, later), peer_ip=None, now=later)
    first, second = (e.details for e in service.audit.entries()[-2:])
    assert (first["previous"], first["verdict"]) == (None, "lock")
    assert (second["previous"], second["verdict"]) == ("lock", "lock")


def _exempt_by_campaign(service: CheckinService, device_id: str, until: date) -> None:
    with service.db.write() as tx:
        device = service.devices.lock_for_update(tx, device_id)
        assert device is not None
        exemption = ManualExemption("stage 1", "ana", until, campaign="cmp_1")
        service.devices.save_state(tx, device, replace(device.state, exemption=exemption))


def test_a_campaigns_exemption_is_named_and_travels_in_the_verdict(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    until = (T0 + timedelta(days=3)).date()
    _exempt_by_campaign(service, record.id, until)
    out = service.check_in(checkin(key, record.id, 1, T0), peer_ip=None, now=T0)
    assert (out["verdict"], out["reasons"][:2]) == (
        "allow",
        ["campaign.exempt", "exemption.device"],
    )
    claims = jwt.decode(out["token"], options={"verify_signature": False})
    midnight = datetime(until.year, until.month, until.day, tzinfo=UTC)
    assert claims["exemption"] == {"until": int(midnight.timestamp())}


def test_a_policys_own_exemption_is_not_sent_as_an_operators(
    db: Database, locator: Locator
) -> None:
    """An exemption the policy document lists allows the device, but only an operator's (or a
    campaign's, or a granted appeal's) travels in the verdict for the device to honour offline:
    the policy may change, and the next verdict says what it then says."""
    fleet = Fleet(1)
    fleet.register(db)
    text = (
        (EXAMPLES / "gray-market-2021.toml")
        .read_text()
        .replace('version = "2021-09-15"', 'version = "2021-09-15-exempt"')
    )
    text += f'\n[[exemption]]\ndevice = "{imei(1)}"\nreason = "a test phone"\n'
    PolicyAdmin.of(Stores.on(db)).activate(text, source="t", actor="test", reason="t", now=T0)
    service = CheckinService.of(Stores.on(db), locator, Settings())
    out = service.check_in(checkin(fleet.keys[0], imei(1), 1, T0), peer_ip=None, now=T0)
    assert (out["verdict"], out["reasons"][0]) == ("allow", "exemption.device")
    claims = jwt.decode(out["token"], options={"verify_signature": False})
    assert "exemption" not in claims


def test_an_exemption_ends_on_its_utc_day_whatever_the_machines_zone(
    world: tuple[CheckinService, SigningKey, DeviceRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 22:00 UTC on the exemption's last day it is already the next day in Tehran
    (UTC+03:30): the exemption still holds, and the verdict still carries it."""
    service, key, record = world
    until = (T0 + timedelta(days=1)).date()
    Registry.of(Stores.on(service.db)).exempt(
        record.id, reason="appeal", actor="ops", now=T0, until=until
    )
    late = datetime(T0.year, T0.month, T0.day, 22, tzinfo=UTC)
    monkeypatch.setenv("TZ", "Asia/Tehran")
    time.tzset()
    try:
        out = service.check_in(checkin(key, record.id, 1, late), peer_ip=None, now=late)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (out["verdict"], out["reasons"][0]) == ("allow", "exemption.device")
    claims = jwt.decode(out["token"], options={"verify_signature": False})
    assert "exemption" in claims


def _set_state(service: CheckinService, device_id: str, **changes: Any) -> None:
    with service.db.write() as tx:
        device = service.devices.lock_for_update(tx, device_id)
        assert device is not None
        service.devices.save_state(tx, device, replace(device.state, **changes))


def _lang(out: Mapping[str, Any]) -> str:
    return str(jwt.decode(out["token"], options={"verify_signature": False})["lang"])


def test_a_manual_lock_speaks_the_devices_language_else_the_places(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    notice = dict(MANUAL_LOCK_NOTICE.texts)
    Registry.of(Stores.on(service.db)).lock(record.id, reason="stolen", actor="ops", now=T0)
    out = service.check_in(checkin(key, record.id, 1, T0), peer_ip=None, now=T0)
    assert (out["message"], _lang(out)) == (notice["fa"], "fa")  # no locale: Tehran's language
    english = {**TEHRAN, "locale": "en-US"}
    out = service.check_in(checkin(key, record.id, 2, T0, english), peer_ip=None, now=T0)
    assert (out["message"], _lang(out)) == (notice["en"], "en")


def test_an_operators_own_words_are_in_no_known_language(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    Registry.of(Stores.on(service.db)).lock(
        record.id, reason="stolen", actor="ops", now=T0, message="Call us."
    )
    out = service.check_in(checkin(key, record.id, 1, T0), peer_ip=None, now=T0)
    assert (out["message"], _lang(out)) == ("Call us.", "")


def test_a_campaigns_lock_is_named_as_one(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    berlin = {"network": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}}
    _set_state(service, record.id, manual_lock=ManualLock("stage 1", "ana", T0, campaign="cmp_1"))
    out = service.check_in(checkin(key, record.id, 1, T0, berlin), peer_ip=None, now=T0)
    assert (out["verdict"], out["reasons"][0]) == ("lock", "campaign.lock")


def test_a_denied_appeal_is_told_in_supports_words_in_no_known_language(
    world: tuple[CheckinService, SigningKey, DeviceRecord],
) -> None:
    service, key, record = world
    answer = AppealAnswer("apl_1", "used in Tehran daily", "appeals@example.com", T0)
    _set_state(service, record.id, appeal_answer=answer)
    out = service.check_in(checkin(key, record.id, 1, T0), peer_ip=None, now=T0)
    assert out["message"] == "Your appeal apl_1 was denied: used in Tehran daily"
    assert (out["contact"], _lang(out)) == ("appeals@example.com", "")


def test_a_service_built_from_settings_limits_each_devices_rate(
    db: Database, locator: Locator
) -> None:
    fleet = Fleet(1)
    fleet.register(db)
    settings = Settings(device_rate_per_hour=1, device_burst=2)
    service = CheckinService.of(Stores.on(db), locator, settings)
    for counter in (1, 2):
        service.check_in(checkin(fleet.keys[0], imei(1), counter, T0), peer_ip=None, now=T0)
    with pytest.raises(RateLimited):
        service.check_in(checkin(fleet.keys[0], imei(1), 3, T0), peer_ip=None, now=T0)
