"""The check-in queue's threads in relay (`services.checkin_queue._Relay`), on both stores: one
thread judges the next group while another stores the group before, and groups are stored in
the order they were taken. A group judged on a snapshot that the group before it then changes
is judged again under its rows' locks, so a device's check-ins keep their order."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from storage_fixtures import T0, Fleet

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinCall, CheckinService
from regionlock.services.checkin_queue import CheckinQueue, _Relay
from regionlock.settings import Settings
from regionlock.storage import Database, Stores
from regionlock.storage.db import Pending

BERLIN = {"network": ["262-01"], "sim": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}}
# Only bounds a hang, or gives a broken relay the time to show itself; nothing that passes
# waits for it.
BOUND_S = 30


def outcome(o: Any) -> str:
    return type(o).__name__ if isinstance(o, Exception) else str(o["verdict"])


def test_groups_are_stored_in_the_order_they_were_taken() -> None:
    relay = _Relay()
    with relay.judging:
        first, second = relay.ticket(), relay.ticket()
    assert (first, second) == (0, 1)
    entered = threading.Event()
    with relay.turn(first):
        thread = threading.Thread(target=_enter_and_set, args=(relay, second, entered))
        thread.start()
        # The second group's turn waits for the first's to end (a relay that let it in
        # would show within this bound).
        assert not entered.wait(0.5)
    assert entered.wait(BOUND_S)
    thread.join()


def test_a_turn_passes_on_when_its_group_fails() -> None:
    relay = _Relay()
    with relay.judging:
        first, second = relay.ticket(), relay.ticket()
    with pytest.raises(RuntimeError), relay.turn(first):
        raise RuntimeError("the group failed")
    done = threading.Event()
    thread = threading.Thread(target=_enter_and_set, args=(relay, second, done))
    thread.start()
    assert done.wait(BOUND_S)
    thread.join()


def _enter_and_set(relay: _Relay, ticket: int, done: threading.Event) -> None:
    with relay.turn(ticket):
        done.set()


def test_a_group_judged_while_the_one_before_is_stored_keeps_each_devices_order(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = Fleet(3)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), locator, Settings(device_rate_per_hour=0))
    # The first verdict ever signed creates the signing key, in a write transaction: made
    # here, so that no thread's answer waits for the store this test holds back.
    service.keys.keyring(T0)
    first = fleet.records[0].id
    snapshots, locked = [0], [0]
    holding, release, second_judged = threading.Event(), threading.Event(), threading.Event()
    real_begin, real_states, real_record = (
        service.begin,
        service.devices.states_later,
        service.checkins.record_many_later,
    )

    def begin(calls: Any) -> Any:
        # The first group (device 2 alone) holds the judging until the four check-ins of
        # devices 0 and 1 are queued, so that the next two groups take two each.
        if not release.is_set():
            holding.set()
            assert release.wait(BOUND_S)
        return real_begin(calls)

    def states_later(tx: Any, ids: Any, *, lock: bool) -> Any:
        read = real_states(tx, ids, lock=lock)
        if first in ids and lock:
            locked[0] += 1
        elif first in ids:
            snapshots[0] += 1
            if snapshots[0] == 2:
                # Once read: sent in a pipeline, the snapshot is taken when it is waited for.
                def got() -> Any:
                    out = read.get()
                    second_judged.set()
                    return out

                return Pending(got)
        return read

    def record_many_later(tx: Any, rows: Any) -> Any:
        if any(r.device_id == first and r.counter == 1 for r in rows):
            # The group of counters 1 is stored only once the group of counters 2 has been
            # judged on a snapshot taken before: that judging is then out of date.
            assert second_judged.wait(BOUND_S)
        return real_record(tx, rows)

    monkeypatch.setattr(service, "begin", begin)
    monkeypatch.setattr(service.devices, "states_later", states_later)
    monkeypatch.setattr(service.checkins, "record_many_later", record_many_later)
    queue = CheckinQueue(service, threads=2, max_group=2)
    calls = [
        CheckinCall(fleet.token(i, counter, T0, BERLIN), None, T0)
        for counter in (1, 2)
        for i in (0, 1)
    ]

    async def main() -> list[Any]:
        held = asyncio.ensure_future(
            queue.check_in(CheckinCall(fleet.token(2, 1, T0, BERLIN), None, T0))
        )
        while not holding.is_set():  # a thread took it, and waits in `begin`
            await asyncio.sleep(0.001)
        asked = [asyncio.ensure_future(queue.check_in(c)) for c in calls]
        while queue._queue.qsize() < len(calls):
            await asyncio.sleep(0.001)
        release.set()
        return await asyncio.gather(held, *asked, return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        release.set()
        second_judged.set()
        queue.close()
    # Every check-in accepted, none refused as stale: the group of counters 2 was judged
    # again under its rows' locks, after the group of counters 1 was stored.
    assert [outcome(o) for o in outcomes] == ["allow"] * 5
    assert snapshots[0] == 2 and locked[0] == 1
    ids = [r.id for r in fleet.records]
    with db.read() as tx:
        stored = tx.all("SELECT device_id, counter FROM checkins ORDER BY id")
    assert stored == [(ids[2], 1), (ids[0], 1), (ids[1], 1), (ids[0], 2), (ids[1], 2)]
    for device_id in ids[:2]:
        device = service.devices.get(device_id)
        assert device is not None and device.state.counter == 2
    assert service.audit.verify().ok


def test_a_closing_queue_with_threads_in_relay_answers_what_it_took(
    db: Database, locator: Locator
) -> None:
    fleet = Fleet(6)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), locator, Settings(device_rate_per_hour=0))
    queue = CheckinQueue(service, threads=3, max_group=2)
    calls = [CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0) for i in range(6)]

    async def main() -> list[Any]:
        asked = [asyncio.ensure_future(queue.check_in(c)) for c in calls]
        await asyncio.sleep(0)  # every caller has queued its check-in
        closing = asyncio.get_running_loop().run_in_executor(None, queue.close)
        out = await asyncio.gather(*asked, return_exceptions=True)
        await closing
        return out

    outcomes = asyncio.run(main())
    assert [outcome(o) for o in outcomes] == ["allow"] * 6
    with db.read() as tx:
        assert tx.one("SELECT COUNT(*) FROM checkins") == (6,)


def test_a_group_that_fails_as_a_whole_fails_its_callers_and_not_the_queue(
    db: Database,
    locator: Locator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = Fleet(2)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), locator, Settings(device_rate_per_hour=0))
    real_begin, calls = service.begin, [0]

    def begin(group: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise ZeroDivisionError("a bug")
        return real_begin(group)

    monkeypatch.setattr(service, "begin", begin)
    queue = CheckinQueue(service, threads=2, max_group=2)

    async def one(i: int) -> Any:
        call = CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0)
        asked = asyncio.wait_for(queue.check_in(call), BOUND_S)
        return (await asyncio.gather(asked, return_exceptions=True))[0]

    try:
        with caplog.at_level("ERROR", logger="regionlock.services.checkin_queue"):
            first = asyncio.run(one(0))
        second = asyncio.run(one(1))  # the failed group passed its turn on
    finally:
        queue.close()
    assert isinstance(first, RuntimeError) and "ZeroDivisionError" in str(first)
    assert [r.getMessage() for r in caplog.records] == ["a group of 1 check-ins failed as a whole"]
    assert outcome(second) == "allow"
