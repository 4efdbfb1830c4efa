"""Group commit (`CheckinService.check_in_many`, `CheckinQueue`) on both stores: a group is
judged exactly as the same check-ins one after the other, a refused check-in writes nothing
and sinks nobody, and a failed shared transaction falls back to one transaction each."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from storage_fixtures import T0, Fleet, end_backend, open_store

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinCall, CheckinService
from regionlock.services.checkin_queue import CheckinQueue, ServiceBusy
from regionlock.services.ratelimit import Rate, TokenBuckets
from regionlock.services.registry import UnknownDevice
from regionlock.settings import Settings
from regionlock.signing import (
    BadSignature,
    CheckinRequest,
    ReplayedNonce,
    SigningKey,
    StaleCounter,
    sign_checkin,
)
from regionlock.storage import Database, Stores
from regionlock.storage.db import Pending
from regionlock.storage.devices import state_to_json

PLACES: list[dict[str, Any]] = [
    {"sim": ["432-11"], "network": ["432-11"], "gps": {"lat": 35.6892, "lon": 51.389}},
    {"network": ["424-02"], "sim": ["424-02"], "gps": {"lat": 25.2048, "lon": 55.2708}},
    {"network": ["262-01"], "sim": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}},
    {"network": ["424-03"], "sim": ["432-35"], "gps": {"lat": 25.1972, "lon": 55.2744}},
    {"ip": "2.144.0.1", "timezone": "Asia/Tehran"},
]


def registered(db: Database, n: int) -> Fleet:
    fleet = Fleet(n)
    fleet.register(db)
    return fleet


def call(fleet: Fleet, i: int, counter: int, place: int, nonce: str = "") -> CheckinCall:
    return CheckinCall(fleet.token(i, counter, T0, PLACES[place], nonce), None, T0)


def service_on(db: Database, locator: Locator) -> CheckinService:
    return CheckinService.of(Stores.on(db), locator, Settings())


def kinds(outcomes: list[Any]) -> list[str]:
    return [type(o).__name__ if isinstance(o, Exception) else o["verdict"] for o in outcomes]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the event loop until `condition` holds. The bound only turns a hang into a
    failure; nothing here depends on how long anything takes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.001)


def waiting(queue: CheckinQueue) -> int:
    """Check-ins queued and not yet taken by a worker thread."""
    return queue._queue.qsize()


def test_a_group_with_refusals_records_exactly_the_good_ones(
    db: Database, locator: Locator
) -> None:
    fleet = registered(db, 4)
    service = service_on(db, locator)
    service.check_in(fleet.token(0, 5, T0, PLACES[0], "n" * 20), peer_ip=None, now=T0)
    stranger = SigningKey.generate(T0)
    calls = [
        call(fleet, 1, 1, 1),  # ok (Dubai, its sales region)
        call(fleet, 0, 5, 0),  # counter not above 5
        call(fleet, 0, 6, 0, "n" * 20),  # nonce used before
        CheckinCall(
            sign_checkin(CheckinRequest("x" * 16, 1, int(T0.timestamp()), {}), stranger, "dev_x"),
            None,
            T0,
        ),  # unknown device
        CheckinCall(
            sign_checkin(
                CheckinRequest("y" * 16, 2, int(T0.timestamp()), PLACES[2]),
                stranger,
                fleet.records[2].id,
            ),
            None,
            T0,
        ),  # forged
        call(fleet, 2, 1, 2),  # ok
        call(fleet, 3, 7, 3, "m" * 20),  # ok
        call(fleet, 3, 8, 3, "m" * 20),  # same nonce earlier in the group
        call(fleet, 3, 6, 3),  # behind the group's counter 7
        call(fleet, 3, 9, 3),  # ok, after 7 in the same group
        call(fleet, 0, 7, 0),  # ok (activated in Tehran: locked)
    ]
    outcomes = service.check_in_many(calls)
    assert kinds(outcomes) == [
        "allow",
        "StaleCounter",
        "ReplayedNonce",
        "UnknownDevice",
        "BadSignature",
        "allow",
        "allow",
        "ReplayedNonce",
        "StaleCounter",
        "allow",
        "lock",
    ]
    assert isinstance(outcomes[1], StaleCounter) and isinstance(outcomes[2], ReplayedNonce)
    assert isinstance(outcomes[3], UnknownDevice) and isinstance(outcomes[4], BadSignature)
    with db.read() as tx:
        stored = tx.all("SELECT device_id, counter FROM checkins ORDER BY id")
    ids = [r.id for r in fleet.records]
    assert stored == [
        (ids[0], 5),
        (ids[1], 1),
        (ids[2], 1),
        (ids[3], 7),
        (ids[3], 9),
        (ids[0], 7),
    ]
    entries = [e for e in service.audit.entries() if e.action == "checkin.verdict"]
    assert [(e.subject, e.details["counter"]) for e in entries] == stored
    assert service.audit.verify().ok
    device3 = service.devices.get(ids[3])
    assert device3 is not None and device3.state.counter == 9 and device3.version == 1


@pytest.fixture
def twin(db: Database, tmp_path: Path) -> Iterator[Database]:
    """A second, empty store of the same backend."""
    yield from open_store(db.dialect, tmp_path / "twin")


def test_a_group_ends_where_the_same_checkins_one_by_one_end(
    db: Database, twin: Database, locator: Locator
) -> None:
    """A week of check-ins for 6 devices, in groups of 7 on one store and one by one on
    the other (same devices, keys and tokens): same outcomes, states and audit details."""
    fleet = registered(db, 6)
    fleet.register(twin)
    grouped, single = service_on(db, locator), service_on(twin, locator)
    calls = []
    for day in range(7):
        now = T0 + timedelta(days=day, hours=day % 3)
        for i in range(6):
            place = (i + day // 3) % len(PLACES)
            calls.append(CheckinCall(fleet.token(i, day * 2 + 1, now, PLACES[place]), None, now))
        stale = fleet.token(day % 6, day * 2 + 1, now, PLACES[0])
        calls.append(CheckinCall(stale, None, now))
    by_group: list[Any] = []
    for i in range(0, len(calls), 7):
        by_group += grouped.check_in_many(calls[i : i + 7])
    one_by_one = [single.check_in_many([c])[0] for c in calls]
    assert kinds(by_group) == kinds(one_by_one)
    assert "lock" in kinds(by_group) and "StaleCounter" in kinds(by_group)
    for a, b in zip(by_group, one_by_one, strict=True):
        if not isinstance(a, Exception):
            assert {k: v for k, v in a.items() if k != "token"} == {
                k: v for k, v in b.items() if k != "token"
            }
    for record in fleet.records:
        x, y = grouped.devices.get(record.id), single.devices.get(record.id)
        assert x is not None and y is not None
        assert state_to_json(x.state) == state_to_json(y.state)
    a_entries = [(e.subject, dict(e.details)) for e in grouped.audit.entries(limit=10_000)]
    b_entries = [(e.subject, dict(e.details)) for e in single.audit.entries(limit=10_000)]
    assert a_entries == b_entries
    assert grouped.audit.verify().ok and single.audit.verify().ok


def test_a_failed_group_transaction_is_retried_one_by_one(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = registered(db, 3)
    service = service_on(db, locator)
    real = service.audit.append_many
    failures = []

    def flaky(tx: Any, entries: Any) -> Any:
        if len(entries) > 1:  # the shared transaction dies late, after its other writes
            failures.append(len(entries))
            raise RuntimeError("connection lost")
        return real(tx, entries)

    monkeypatch.setattr(service.audit, "append_many", flaky)
    calls = [call(fleet, i, 1, i) for i in range(3)]
    assert kinds(service.check_in_many(calls)) == ["lock", "allow", "allow"]
    assert failures == [3]
    with db.read() as tx:
        assert tx.one("SELECT COUNT(*) FROM checkins") == (3,)
    assert service.audit.verify().ok
    assert len([e for e in service.audit.entries() if e.action == "checkin.verdict"]) == 3


def test_one_checkin_that_breaks_sinks_only_itself(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = registered(db, 3)
    service = service_on(db, locator)
    real = service._decide
    broken = fleet.records[1].id

    def decide(device_id: str, *args: Any) -> Any:
        if device_id == broken:
            raise ZeroDivisionError("a bug")
        return real(device_id, *args)

    monkeypatch.setattr(service, "_decide", decide)
    calls = [call(fleet, i, 1, i) for i in range(3)]
    assert kinds(service.check_in_many(calls)) == ["lock", "ZeroDivisionError", "allow"]
    with db.read() as tx:
        rows = tx.all("SELECT device_id FROM checkins")
    assert broken not in {r[0] for r in rows} and len(rows) == 2
    device = service.devices.get(broken)
    assert device is not None and device.version == 0
    assert service.audit.verify().ok


def test_signals_that_cannot_be_located_are_that_check_ins_error_alone(
    db: Database,
    locator: Locator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A group is located together (one vectorised look-up of its GPS fixes and of its
    addresses), each check-in in its own place whatever was refused before it; a device whose
    signals name no real place gets its own error, and should locating the group fail as a
    whole, each is located alone: the same outcomes either way."""
    fleet = registered(db, 4)
    service = service_on(db, locator)
    ids = [r.id for r in fleet.records]
    nowhere = {"timezone": "Mars/Olympus_Mons"}  # well formed, in no tz database
    forged = sign_checkin(
        CheckinRequest("f" * 16, 1, int(T0.timestamp()), PLACES[0]),
        SigningKey.generate(T0),
        ids[3],
    )
    calls = [
        CheckinCall(forged, None, T0),  # refused before locating: the rest keep their places
        call(fleet, 0, 1, 2),  # Berlin
        CheckinCall(fleet.token(1, 1, T0, nowhere), None, T0),
        CheckinCall(fleet.token(2, 1, T0, PLACES[0]), "2.144.0.1", T0),  # Tehran, Iranian peer
        call(fleet, 3, 1, 1),  # Dubai
    ]
    outcomes = service.check_in_many(calls)
    assert kinds(outcomes) == ["BadSignature", "allow", "InvalidSignal", "lock", "allow"]
    assert [o["location"]["country"] for o in outcomes if isinstance(o, dict)] == [
        "DE",
        "IR",
        "AE",
    ]
    assert "locating a group" not in caplog.text  # the vectorised path answered

    real = locator.locate_each

    def broken(batch: Any) -> Any:
        if len(batch) > 1:
            raise RuntimeError("a bug in the vectorised look-up")
        return real(batch)

    monkeypatch.setattr(locator, "locate_each", broken)
    calls = [
        call(fleet, 0, 2, 2),
        CheckinCall(fleet.token(1, 2, T0, nowhere), None, T0),
        call(fleet, 3, 2, 1),
    ]
    outcomes = service.check_in_many(calls)
    assert kinds(outcomes) == ["allow", "InvalidSignal", "allow"]
    assert [o["location"]["country"] for o in outcomes if isinstance(o, dict)] == ["DE", "AE"]
    assert "locating a group of 3 check-ins failed" in caplog.text
    with db.read() as tx:
        stored = tx.all("SELECT device_id, country, flags, confidence FROM checkins ORDER BY id")
    # The Iranian peer address agrees with Tehran's fix and raises its confidence; given to
    # another device of the group, it would flag a VPN there instead.
    assert [(d, c, f, round(x, 4)) for d, c, f, x in stored] == [
        (ids[0], "DE", "[]", 0.987),
        (ids[2], "IR", "[]", 0.9909),
        (ids[3], "AE", "[]", 0.987),
        (ids[0], "DE", "[]", 0.987),
        (ids[3], "AE", "[]", 0.987),
    ]
    assert service.audit.verify().ok


def test_the_queue_answers_every_caller_and_groups_under_load(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = registered(db, 40)
    service = service_on(db, locator)
    sizes: list[int] = []
    gate = threading.Event()
    real = service.begin

    def counted(calls: Any) -> Any:
        sizes.append(len(calls))
        gate.wait(60)  # load: the threads are busy while the other callers arrive
        return real(calls)

    monkeypatch.setattr(service, "begin", counted)
    queue = CheckinQueue(service, threads=1 if db.dialect == "sqlite" else 2, max_group=16)

    async def main() -> list[Any]:
        calls = [call(fleet, i, 1, i % len(PLACES)) for i in range(40)]
        calls.append(call(fleet, 0, 1, 0))  # a replayed counter
        asked = [asyncio.ensure_future(queue.check_in(c)) for c in calls]
        # Every check-in is in a group a thread holds, or queued. Only the loop thread queues
        # and `sizes` is read first, so a check-in moving to a thread is never counted twice.
        await until(lambda: sum(sizes) + waiting(queue) == 41, "all 41 were taken or queued")
        gate.set()
        return await asyncio.gather(*asked, return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        gate.set()  # on a failure, do not leave the threads waiting
        queue.close()
    assert sum(sizes) == 41 and max(sizes) <= 16
    assert len(sizes) < 41  # callers that arrived together were grouped
    assert kinds(outcomes).count("StaleCounter") == 1
    assert sum(1 for o in outcomes if isinstance(o, dict)) == 40
    with db.read() as tx:
        assert tx.one("SELECT COUNT(*) FROM checkins") == (40,)
    assert service.audit.verify().ok
    with pytest.raises(ServiceBusy, match="shutting down"):
        asyncio.run(queue.check_in(call(fleet, 1, 2, 1)))


def test_a_full_queue_refuses_at_once_and_loses_nothing_it_took(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = registered(db, 12)
    service = service_on(db, locator)
    taken, gate = threading.Event(), threading.Event()
    real = service.begin

    def stuck(calls: Any) -> Any:
        taken.set()
        gate.wait(60)  # a database that hangs: the thread holds its group, the rest pile up
        return real(calls)

    monkeypatch.setattr(service, "begin", stuck)
    queue = CheckinQueue(service, threads=1, max_group=2, max_waiting=4)

    async def main() -> list[Any]:
        first = asyncio.ensure_future(queue.check_in(call(fleet, 0, 1, 0)))
        await until(taken.is_set, "the thread took the first check-in and hangs on it")
        rest = [asyncio.ensure_future(queue.check_in(call(fleet, i, 1, 2))) for i in range(1, 12)]
        # Nothing is answered while the thread hangs: a caller done was refused.
        await until(
            lambda: sum(f.done() for f in rest) + waiting(queue) == 11,
            "each of the other 11 was queued or refused",
        )
        gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        gate.set()  # on a failure, do not leave the threads waiting
        queue.close()
    busy = [o for o in outcomes if isinstance(o, ServiceBusy)]
    answered = [o for o in outcomes if isinstance(o, dict)]
    assert len(answered) == 5 and len(busy) == 7  # the stuck one and the 4 that could wait
    assert all(b.retry_after_s > 0 for b in busy)
    with db.read() as tx:
        assert tx.one("SELECT COUNT(*) FROM checkins") == (5,)
    assert service.audit.verify().ok


def test_an_outcome_asyncio_refuses_does_not_strand_the_rest_of_the_group() -> None:
    from regionlock.services.checkin_queue import _settle

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(3)]
        # asyncio will not take StopIteration as a future's exception (TypeError).
        outcomes = [StopIteration(), {"verdict": "allow"}, ValueError("x")]
        _settle(list(zip(futures, outcomes, strict=True)))
        return await asyncio.gather(*futures, return_exceptions=True)

    first, second, third = asyncio.run(main())
    assert isinstance(first, RuntimeError) and isinstance(first.__cause__, TypeError)
    assert second == {"verdict": "allow"} and isinstance(third, ValueError)


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Database]:
    yield from open_store("postgresql", tmp_path)


def test_a_lost_postgresql_connection_costs_one_attempt_not_the_service(
    pg: Database, locator: Locator
) -> None:
    from regionlock.storage.db import StoreUnavailable

    db = pg

    fleet = registered(db, 4)
    service = service_on(db, locator)
    assert kinds(service.check_in_many([call(fleet, i, 1, 1) for i in range(4)])) == ["allow"] * 4

    # A group whose connection died while idle (after its devices' records were cached) is
    # answered on a new connection.
    end_backend(db, db._conn())
    outcomes = service.check_in_many([call(fleet, i, 2, 1) for i in range(4)])
    assert kinds(outcomes) == ["allow"] * 4
    # A single check-in whose connection dies in its transaction fails; the next one goes
    # through. (One that died while idle is replaced before use: test_store_outages.py.)
    real_write = db.write

    @contextlib.contextmanager
    def dying_write(**kwargs: Any) -> Iterator[Any]:
        with real_write(**kwargs) as tx:
            end_backend(db, tx._conn)
            yield tx

    db.write = dying_write  # type: ignore[method-assign]
    try:
        with pytest.raises(StoreUnavailable):  # answered 503 store-unavailable, Retry-After
            service.check_in(fleet.token(0, 3, T0, PLACES[1]), peer_ip=None, now=T0)
    finally:
        del db.write
    assert service.check_in(fleet.token(0, 4, T0, PLACES[1]), peer_ip=None, now=T0)
    with db.read() as tx:
        assert tx.one("SELECT COUNT(*) FROM checkins") == (9,)
    assert service.audit.verify().ok


# Found by mutation testing (docs/test-quality.md): each test below failed on a mutant of
# services/checkin.py that the tests above let through.


def test_a_device_gone_or_rate_limited_in_a_group_stops_only_itself(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device deleted between its check-in's verification and the group's transaction, and
    one over its allowance, are each refused with the reason; the check-ins after them in
    the group are judged and recorded as usual."""
    fleet = registered(db, 3)
    service = replace(service_on(db, locator), limiter=TokenBuckets(Rate(per_hour=60, burst=1)))
    service.check_in(fleet.token(1, 1, T0, PLACES[1]), peer_ip=None, now=T0)
    gone = fleet.records[0].id
    real = service.devices.states_later  # judged ahead, or under the rows' locks

    def hiding(tx: Any, ids: Any, *, lock: bool) -> Any:
        read = real(tx, ids, lock=lock)
        return Pending(lambda: {i: s for i, s in read.get().items() if i != gone})

    monkeypatch.setattr(service.devices, "states_later", hiding)
    outcomes = service.check_in_many(
        [call(fleet, 0, 1, 0), call(fleet, 1, 2, 1), call(fleet, 2, 1, 2)]
    )
    assert kinds(outcomes) == ["UnknownDevice", "RateLimited", "allow"]
    assert str(outcomes[0]) == "the device is no longer registered"
    with db.read() as tx:
        assert tx.all("SELECT device_id, counter FROM checkins ORDER BY id") == [
            (fleet.records[1].id, 1),
            (fleet.records[2].id, 1),
        ]


def test_a_failed_group_says_so_in_the_log(
    db: Database,
    locator: Locator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = registered(db, 2)
    service = service_on(db, locator)
    real = service.audit.append_many

    def flaky(tx: Any, entries: Any) -> Any:
        if len(entries) > 1:
            raise RuntimeError("connection lost")
        return real(tx, entries)

    monkeypatch.setattr(service.audit, "append_many", flaky)
    with caplog.at_level("WARNING", logger="regionlock.services.checkin"):
        assert kinds(service.check_in_many([call(fleet, i, 1, 1) for i in range(2)])) == [
            "allow",
            "allow",
        ]
    assert [r.getMessage() for r in caplog.records] == [
        "a group of 2 check-ins failed (RuntimeError: connection lost); retrying one by one"
    ]


def test_a_group_of_refused_check_ins_opens_no_write_transaction(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forged or unknown check-ins end before any state is read or written: nobody without a
    device key can make the service take the store's write lock."""
    fleet = registered(db, 1)
    service = service_on(db, locator)
    writes = []
    real = service.db.write
    monkeypatch.setattr(service.db, "write", lambda *a, **k: writes.append(1) or real(*a, **k))
    stranger = SigningKey.generate(T0)
    forged = sign_checkin(
        CheckinRequest("y" * 16, 1, int(T0.timestamp()), PLACES[2]), stranger, fleet.records[0].id
    )
    unknown = sign_checkin(CheckinRequest("x" * 16, 1, int(T0.timestamp()), {}), stranger, "dev_x")
    outcomes = service.check_in_many([CheckinCall(t, None, T0) for t in (forged, unknown)])
    assert kinds(outcomes) == ["BadSignature", "UnknownDevice"]
    assert writes == []


def test_a_replay_that_the_look_up_misses_is_refused_by_the_unique_key(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two copies racing past the look-up of used nonces: the check-in rows' UNIQUE
    (device, nonce) is the last word, and the copy is told it is a replay."""
    fleet = registered(db, 1)
    service = service_on(db, locator)
    first = call(fleet, 0, 1, 1, "n" * 20)
    assert kinds(service.check_in_many([first])) == ["allow"]
    monkeypatch.setattr(service.checkins, "seen_later", lambda tx, pairs, since=None: Pending(set))
    (outcome,) = service.check_in_many([call(fleet, 0, 2, 1, "n" * 20)])
    assert isinstance(outcome, ReplayedNonce)
    assert str(outcome) == "this nonce was already used by this device"


def test_a_verdict_that_cannot_be_signed_is_that_check_ins_error_alone(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = registered(db, 2)
    service = service_on(db, locator)
    real = service._answer
    broken = fleet.records[0].id

    def answer(p: Any, *args: Any) -> Any:
        if p.record.id == broken:
            raise ZeroDivisionError("no token")
        return real(p, *args)

    monkeypatch.setattr(service, "_answer", answer)
    outcomes = service.check_in_many([call(fleet, 0, 1, 1), call(fleet, 1, 1, 1)])
    assert kinds(outcomes) == ["ZeroDivisionError", "allow"]
    with db.read() as tx:  # recorded all the same: the device checks in again
        assert tx.one("SELECT COUNT(*) FROM checkins") == (2,)
