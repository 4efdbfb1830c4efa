"""The webhook service on both stores, with a stand-in for HTTP: events come from what was
recorded (whoever recorded it), each body names the one before it, attempts are signed, retried
on schedule, and an endpoint that answers 410 or fails for too long is disabled."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook
from storage_fixtures import T0, Fleet, cursor_held_elsewhere, imei
from storage_fixtures import checkin as signed_checkin
from test_checkin_pipeline import TEHRAN

from regionlock.domain.errors import InvalidInput
from regionlock.domain.webhooks import Attempt, body_digest
from regionlock.geo import Locator
from regionlock.services.audit_tree import AuditSealer, AuditTree
from regionlock.services.checkin import CheckinService
from regionlock.services.registry import Registry
from regionlock.services.webhooks import UnknownEndpoint, Webhooks
from regionlock.settings import Settings
from regionlock.storage import Database, Stores


class Clock:
    def __init__(self) -> None:
        now = datetime.now(UTC)  # receivers check the signature's time against theirs
        self.now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # stored to the ms

    def __call__(self) -> datetime:
        return self.now


class Receiver:
    """Answers each attempt with the next status given (200 once they run out)."""

    def __init__(self, *statuses: int | None) -> None:
        self.statuses = list(statuses)
        self.got: list[tuple[str, dict[str, str], bytes]] = []

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> Attempt:
        self.got.append((url, dict(headers), body))
        status = self.statuses.pop(0) if self.statuses else 200
        return Attempt(status, None if status else "connection refused")


def _setup(db: Database, clock: Clock) -> tuple[Stores, Webhooks, Registry]:
    """Three devices registered and the 2021 policy active, before any endpoint exists."""
    Fleet(3).register(db)
    stores = Stores.on(db)
    return stores, Webhooks.of(stores, clock=clock), Registry.of(stores)


def _deliver_all(webhooks: Webhooks, receiver: Receiver) -> list[str]:
    webhooks.fan_out()
    out = []
    for d in webhooks.claim("me", 100, timedelta(minutes=1)):
        out.append(webhooks.attempt(d, "me", receiver))
    return out


def test_a_lock_recorded_anywhere_is_delivered_signed_in_order(db: Database) -> None:
    clock = Clock()
    _, webhooks, registry = _setup(db, clock)
    before = registry.lock(imei(3), reason="before the endpoint", actor="t", now=T0)
    endpoint, secret = webhooks.add(
        "https://crm.example.com/rl", ["device.locked", "device.unlocked"], name="crm", actor="t"
    )
    # As the command line would, with no service running: recorded, with its audit entry.
    registry.lock(imei(1), reason="stolen", actor="cli:ana", now=T0)
    registry.unlock(imei(1), reason="found", actor="cli:ana", now=T0)
    registry.exempt(imei(2), reason="appeal", actor="cli:ana", now=T0, until=None)  # not asked
    receiver = Receiver()
    assert _deliver_all(webhooks, receiver) == ["delivered"]  # one per endpoint at a time
    assert _deliver_all(webhooks, receiver) == ["delivered"]
    assert _deliver_all(webhooks, receiver) == []
    docs = []
    for url, headers, body in receiver.got:
        assert url == "https://crm.example.com/rl"
        docs.append(Webhook(secret).verify(body, headers))
    assert [d["type"] for d in docs] == ["device.locked", "device.unlocked"]
    locked = docs[0]["data"]
    assert locked["device"] == before.record.id.replace(before.record.id, locked["device"])
    assert locked["device"] != before.record.id  # the lock before the endpoint is not sent
    assert (locked["cause"], locked["reason"], locked["previous"]) == ("operator", "stolen", None)
    assert docs[1]["data"]["previous"] == body_digest(receiver.got[0][2])
    assert docs[0]["data"]["audit_seq"] < docs[1]["data"]["audit_seq"]
    # The same event id on every attempt: what receivers deduplicate by.
    ids = [h["webhook-id"] for _, h, _ in receiver.got]
    assert len(set(ids)) == 2 and all(i.startswith("msg_") for i in ids)
    assert [d.status for d in webhooks.deliveries(endpoint.id)] == ["delivered", "delivered"]


def test_a_checkin_that_changes_the_verdict_is_an_event(db: Database, locator: Locator) -> None:
    """Through the real check-in service: a first activation in Iran locks, and the lock
    verdicts after it change nothing and are not announced again."""
    clock = Clock()
    fleet = Fleet(1)
    fleet.register(db)  # and activates the 2021 policy
    stores = Stores.on(db)
    webhooks = Webhooks.of(stores, clock=clock)
    _, secret = webhooks.add("https://x.example.com/h", ["*"], name=None, actor="t")
    service = CheckinService.of(stores, locator, Settings())
    for day in range(3):
        now = T0 + timedelta(days=day)
        signed = signed_checkin(fleet.keys[0], imei(1), day + 1, now, TEHRAN)
        assert service.check_in(signed, peer_ip="2.144.0.1", now=now)["verdict"] == "lock"
    receiver = Receiver()
    while _deliver_all(webhooks, receiver):
        pass
    docs = [Webhook(secret).verify(b, h) for _, h, b in receiver.got]
    assert [d["type"] for d in docs] == ["device.locked"]
    lock = docs[0]["data"]
    assert (lock["cause"], lock["verdict"], lock["previous_verdict"]) == ("checkin", "lock", None)
    assert (lock["country"], lock["subdivision"]) == ("IR", "IR-23")
    assert "presence.first_activation" in lock["reasons"]
    assert lock["policy"].startswith("gray-market-2021@") and lock["device"] == fleet.records[0].id


def test_failures_are_retried_on_schedule_then_given_up(db: Database) -> None:
    clock = Clock()
    stores, webhooks, registry = _setup(db, clock)
    webhooks = Webhooks.of(
        stores, clock=clock, schedule=(timedelta(seconds=5), timedelta(minutes=5))
    )
    endpoint, _ = webhooks.add("https://down.example.com/", ["device.locked"], name="d", actor="t")
    registry.lock(imei(1), reason="stolen", actor="t", now=T0)
    receiver = Receiver(500, None, 503)
    assert _deliver_all(webhooks, receiver) == ["pending"]
    [d] = webhooks.deliveries(endpoint.id)
    assert (d.attempts, d.last_status, d.next_at) == (1, 500, clock.now + timedelta(seconds=5))
    assert _deliver_all(webhooks, receiver) == []  # not due yet
    clock.now += timedelta(seconds=5)
    assert _deliver_all(webhooks, receiver) == ["pending"]
    [d] = webhooks.deliveries(endpoint.id)
    assert (d.attempts, d.last_status, d.last_error) == (2, None, "connection refused")
    clock.now += timedelta(minutes=5)
    assert _deliver_all(webhooks, receiver) == ["failed"]  # the schedule is spent
    failing = webhooks.get(endpoint.id)
    assert failing.enabled and failing.failing_since is not None
    # An operator redelivers it once the receiver is back; it succeeds and the endpoint heals.
    webhooks.redeliver(d.id, actor="t")
    assert _deliver_all(webhooks, Receiver(200)) == ["delivered"]
    assert webhooks.get(endpoint.id).failing_since is None


def test_410_gone_disables_the_endpoint_and_drops_what_is_pending(db: Database) -> None:
    clock = Clock()
    stores, webhooks, registry = _setup(db, clock)
    endpoint, _ = webhooks.add("https://gone.example.com/", ["device.locked"], name="g", actor="t")
    registry.lock(imei(1), reason="a", actor="t", now=T0)
    registry.lock(imei(2), reason="b", actor="t", now=T0)
    assert _deliver_all(webhooks, Receiver(410)) == ["failed"]
    got = webhooks.get(endpoint.id)
    assert not got.enabled and got.disabled_reason and "410" in got.disabled_reason
    assert sorted(d.status for d in webhooks.deliveries(endpoint.id)) == ["dropped", "failed"]
    registry.lock(imei(3), reason="c", actor="t", now=T0)
    assert _deliver_all(webhooks, Receiver()) == []  # a disabled endpoint gets nothing
    assert [e.action for e in stores.audit.entries(subject=endpoint.id)] == [
        "webhook.add",
        "webhook.disable",
    ]
    webhooks.enable(endpoint.id, actor="t")
    registry.lock(imei(3), reason="d", actor="t", now=T0)
    assert _deliver_all(webhooks, Receiver()) == ["delivered"]


def test_an_endpoint_failing_for_too_long_is_disabled(db: Database) -> None:
    clock = Clock()
    stores, webhooks, registry = _setup(db, clock)
    webhooks = Webhooks.of(stores, clock=clock, disable_after=timedelta(hours=1))
    endpoint, _ = webhooks.add("https://x.example.com/", ["device.locked"], name="x", actor="t")
    registry.lock(imei(1), reason="a", actor="t", now=T0)
    assert _deliver_all(webhooks, Receiver(500)) == ["pending"]
    clock.now += timedelta(hours=1)
    assert _deliver_all(webhooks, Receiver(500)) == ["pending"]
    got = webhooks.get(endpoint.id)
    assert not got.enabled and "every attempt failed" in (got.disabled_reason or "")


def test_rotation_signs_with_both_secrets_and_the_endpoint_api(db: Database) -> None:
    clock = Clock()
    _, webhooks, registry = _setup(db, clock)
    endpoint, old = webhooks.add("https://x.example.com/", ["*"], name="x", actor="t")
    _, new = webhooks.rotate_secret(endpoint.id, actor="t")
    registry.lock(imei(1), reason="a", actor="t", now=T0)
    receiver = Receiver()
    _deliver_all(webhooks, receiver)
    _, headers, body = receiver.got[0]
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    assert webhooks.get(endpoint.id).to_json()["rotating_until"] is not None
    assert "secret" not in json.dumps(webhooks.get(endpoint.id).to_json())
    assert webhooks.test(endpoint.id, receiver).delivered
    assert json.loads(receiver.got[-1][2])["type"] == "webhook.test"
    webhooks.remove(endpoint.id, actor="t")
    with pytest.raises(UnknownEndpoint):
        webhooks.get(endpoint.id)
    with pytest.raises(InvalidInput):
        webhooks.add("http://x.example.com/", ["device.nothing"], name="x", actor="t")


def test_two_processes_send_each_event_once(db: Database) -> None:
    """Two dispatchers with connections of their own (as two service processes would have),
    racing on one store: every event is delivered, and each by one of them only."""
    import threading

    from regionlock.services.webhook_sender import WebhookDispatcher

    clock = Clock()
    _, webhooks, registry = _setup(db, clock)
    for name in ("crm", "carrier", "desk"):
        webhooks.add(f"https://{name}.example.com/", ["device.locked"], name=name, actor="t")
    for n in range(1, 4):
        for round_ in range(4):
            registry.lock(imei(n), reason=f"r{round_}", actor="t", now=T0)
    expected = 3 * 3 * 4  # endpoints x devices x locks
    other = Database(db.url.url, schema=db.schema)
    try:
        got: list[tuple[str, str]] = []
        lock = threading.Lock()
        done = threading.Event()

        def receiver() -> Receiver:
            class Recording(Receiver):
                def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> Attempt:
                    with lock:
                        got.append((url, headers["webhook-id"]))
                        if len(got) >= expected:
                            done.set()
                    return Attempt(200)

            return Recording()

        dispatchers = [
            WebhookDispatcher(
                Webhooks.of(Stores.on(database), clock=clock),
                receiver(),
                poll_s=0.01,
                senders=2,
                owner=f"p{i}",
            ).start()
            for i, database in enumerate((db, other))
        ]
        try:
            assert done.wait(60), f"{len(got)} of {expected} delivered"
        finally:
            for d in dispatchers:
                d.close()
        assert len(got) == len(set(got)) == expected
    finally:
        other.close()


def test_an_outbox_that_does_not_seal_sends_what_a_sealer_has_sealed(db: Database) -> None:
    """In a service the outbox leaves sealing to the nodes' sealers (which take turns) and
    reads only what they have sealed: a change recorded after the last seal waits for the
    next one, and is then sent."""
    clock = Clock()
    stores, webhooks, registry = _setup(db, clock)
    webhooks.add("https://crm.example.com/rl", ["device.locked"], name="crm", actor="t")
    registry.lock(imei(1), reason="stolen", actor="cli:ana", now=T0)
    assert webhooks.fan_out(seal=False) == 0  # not sealed yet: nothing read
    assert stores.audit.unsealed() > 0
    AuditSealer(AuditTree.of(stores)).round()
    assert webhooks.fan_out(seal=False) == 1
    receiver = Receiver()
    assert [webhooks.attempt(d, "me", receiver) for d in webhooks.claim("me", 9, timedelta(1))] == [
        "delivered"
    ]
    assert json.loads(receiver.got[0][2])["type"] == "device.locked"


def test_a_fan_out_that_takes_turns_skips_while_another_node_fans_out(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's: SQLite's one writer serialises the fan-outs")
    clock = Clock()
    _, webhooks, registry = _setup(db, clock)
    webhooks.add("https://crm.example.com/rl", ["device.locked"], name="crm", actor="t")
    registry.lock(imei(1), reason="stolen", actor="cli:ana", now=T0)
    with cursor_held_elsewhere(db):  # another node fanning out
        assert webhooks.fan_out(skip_if_busy=True) == 0  # at once, not after the other
    assert webhooks.fan_out(skip_if_busy=True) == 1  # its turn: the lock is queued now
