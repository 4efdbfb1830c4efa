"""Check-ins judged ahead of their write transaction (`CheckinService._plan`), on both
stores: a group is judged on a snapshot and stored only over the state versions it was judged
on. When anything it read moves in between (an operator's lock, a new policy, the same
check-in recorded by another node), nothing of it is kept and it is judged again under its
rows' locks, with the outcome it would have had had it arrived after that change."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from storage_fixtures import EXAMPLES, T0, Fleet

from regionlock.domain.device import ManualLock
from regionlock.geo import Locator
from regionlock.services.checkin import CheckinCall, CheckinService
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.services.ratelimit import Rate, TokenBuckets
from regionlock.settings import Settings
from regionlock.signing import ReplayedNonce
from regionlock.storage import Database, Stores
from regionlock.storage.db import Pending, StoreUnavailable

BERLIN = {"network": ["262-01"], "sim": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}}
TEHRAN = {"sim": ["432-11"], "network": ["432-11"], "gps": {"lat": 35.6892, "lon": 51.389}}


def service_on(db: Database, locator: Locator, **settings: Any) -> CheckinService:
    return CheckinService.of(Stores.on(db), locator, Settings(**settings))


def outcome(o: Any) -> str:
    return type(o).__name__ if isinstance(o, Exception) else str(o["verdict"])


def counting(monkeypatch: pytest.MonkeyPatch, obj: object, name: str) -> list[int]:
    """Count the calls of `obj.name` (still calling it)."""
    real, calls = getattr(obj, name), []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)
    return calls


def counting_states(
    monkeypatch: pytest.MonkeyPatch, service: CheckinService, *, lock: bool
) -> list[int]:
    """Count the reads of device states with row locks (`lock`) or on a snapshot."""
    real, calls = service.devices.states_later, []

    def states_later(tx: Any, ids: Any, *, lock: bool) -> Any:
        if lock is wanted:
            calls.append(1)
        return real(tx, ids, lock=lock)

    wanted = lock
    monkeypatch.setattr(service.devices, "states_later", states_later)
    return calls


def after_snapshot(
    monkeypatch: pytest.MonkeyPatch, service: CheckinService, change: Any
) -> list[int]:
    """Run `change()` once, right after the service's first snapshot of device states, as
    another process would between that snapshot and the write transaction."""
    real, done = service.devices.states_later, list[int]()

    def states_later(tx: Any, ids: Any, *, lock: bool) -> Any:
        read = real(tx, ids, lock=lock)
        if lock:
            return read

        def get() -> Any:
            out = read.get()
            if not done:
                done.append(1)
                # On a thread of its own: its own connection, as another process's would be.
                errors: list[BaseException] = []
                worker = threading.Thread(target=lambda: _run(change, errors))
                worker.start()
                worker.join()
                assert not errors, errors
            return out

        return Pending(get)

    monkeypatch.setattr(service.devices, "states_later", states_later)
    return done


def _run(change: Any, errors: list[BaseException]) -> None:
    try:
        change()
    except BaseException as exc:
        errors.append(exc)


def rows(db: Database) -> list[tuple[Any, ...]]:
    with db.read() as tx:
        return tx.all("SELECT device_id, counter, verdict FROM checkins ORDER BY id")


def test_a_quiet_group_is_judged_ahead_and_takes_no_row_lock(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = Fleet(3)
    fleet.register(db)
    service = service_on(db, locator)
    locked = counting_states(monkeypatch, service, lock=True)
    calls = [CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0) for i in range(3)]
    assert [outcome(o) for o in service.check_in_many(calls)] == ["allow"] * 3
    assert locked == []
    assert [r[:2] for r in rows(db)] == [(fleet.records[i].id, 1) for i in range(3)]
    assert service.audit.verify().ok


def test_an_operator_lock_after_the_snapshot_is_honoured_and_charged_once(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock lands between the group's snapshot and its write: the device's state version
    has moved, so the group is judged again under its rows' locks and the check-in is locked.
    The device's allowance (one check-in) is spent once, not once per judging."""
    fleet = Fleet(2)
    fleet.register(db)
    service = replace(service_on(db, locator), limiter=TokenBuckets(Rate(per_hour=60, burst=1)))
    target = fleet.records[0].id

    def lock() -> None:
        with db.write() as tx:
            device = service.devices.lock_for_update(tx, target)
            assert device is not None
            state = replace(device.state, manual_lock=ManualLock("stolen", "api:support", T0))
            service.devices.save_state(tx, device, state)

    changed = after_snapshot(monkeypatch, service, lock)
    locked = counting_states(monkeypatch, service, lock=True)
    calls = [CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0) for i in range(2)]
    out = service.check_in_many(calls)
    assert changed == [1] and locked == [1]
    assert [outcome(o) for o in out] == ["lock", "allow"]
    assert isinstance(out[0], dict) and out[0]["reasons"][0] == "operator.lock"
    assert rows(db) == [(target, 1, "lock"), (fleet.records[1].id, 1, "allow")]
    assert service.audit.verify().ok


def test_a_device_erased_after_the_snapshot_is_judged_again_quietly(
    db: Database,
    locator: Locator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its state's version no longer matches (no row): the group is judged again under its
    rows' locks, in one transaction, before its check-in rows are even sent (SQLite's foreign
    key would refuse them), not failed and retried one by one."""
    fleet = Fleet(2)
    fleet.register(db)
    service = service_on(db, locator)
    gone = fleet.records[0].id

    def erase() -> None:
        with db.write() as tx:
            tx.execute("DELETE FROM device_imeis WHERE device_id = ?", (gone,))
            tx.execute("DELETE FROM devices WHERE id = ?", (gone,))

    changed = after_snapshot(monkeypatch, service, erase)
    locked = counting_states(monkeypatch, service, lock=True)
    calls = [CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0) for i in range(2)]
    with caplog.at_level("INFO"):
        out = service.check_in_many(calls)
    assert changed == [1] and locked == [1]
    assert [outcome(o) for o in out] == ["UnknownDevice", "allow"]
    assert "one by one" not in caplog.text
    assert rows(db) == [(fleet.records[1].id, 1, "allow")]
    assert service.audit.verify().ok


def test_a_policy_activated_after_the_snapshot_decides_the_group(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The block is lifted when the group is read (Tehran allowed); the gray-market policy
    is activated again before its write: the check-in from Tehran is judged under it."""
    fleet = Fleet(2)
    fleet.register(db)  # activates the gray-market policy
    service = service_on(db, locator)

    def activate(name: str) -> None:
        PolicyAdmin.of(Stores.on(db)).activate(
            (EXAMPLES / f"{name}.toml").read_text(), source="t", actor="test", reason="t", now=T0
        )

    activate("gray-market-2021-lifted")
    changed = after_snapshot(monkeypatch, service, lambda: activate("gray-market-2021"))
    calls = [CheckinCall(fleet.token(i, 1, T0, TEHRAN), None, T0) for i in range(2)]
    out = service.check_in_many(calls)
    assert changed == [1]
    assert [(o["verdict"], o["policy"]["version"]) for o in out] == [("lock", "2021-09-15")] * 2
    assert [r[2] for r in rows(db)] == ["lock", "lock"]


def test_a_copy_recorded_by_another_node_after_the_snapshot_is_a_replay(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same check-in reaches two nodes; the other records it between this node's snapshot
    (which saw its nonce unused) and write. This node answers a replay and stores nothing."""
    fleet = Fleet(2)
    fleet.register(db)
    here, other = service_on(db, locator), service_on(db, locator)
    token = fleet.token(0, 1, T0, BERLIN)
    alongside = CheckinCall(fleet.token(1, 1, T0, BERLIN), None, T0)
    answered: list[Any] = []
    after_snapshot(
        monkeypatch,
        here,
        lambda: answered.append(other.check_in_many([CheckinCall(token, None, T0)])[0]),
    )
    out = here.check_in_many([CheckinCall(token, None, T0), alongside])
    assert [outcome(o) for o in answered] == ["allow"]
    assert isinstance(out[0], ReplayedNonce) and outcome(out[1]) == "allow"
    assert rows(db) == [(fleet.records[0].id, 1, "allow"), (fleet.records[1].id, 1, "allow")]
    assert here.audit.verify().ok


def test_a_group_refused_on_its_snapshot_opens_no_write_transaction(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replays and stale counters found on the snapshot write nothing: they stay refused
    whatever happens later (a nonce stays used, a counter only grows)."""
    fleet = Fleet(1)
    fleet.register(db)
    service = service_on(db, locator)
    first = CheckinCall(fleet.token(0, 5, T0, BERLIN, "n" * 20), None, T0)
    assert outcome(service.check_in_many([first])[0]) == "allow"
    writes = counting(monkeypatch, service.db, "write")
    out = service.check_in_many([first, CheckinCall(fleet.token(0, 4, T0, BERLIN), None, T0)])
    assert [outcome(o) for o in out] == ["ReplayedNonce", "StaleCounter"]
    assert writes == []
    assert len(rows(db)) == 1


def test_a_lone_check_in_is_judged_under_its_rows_lock(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody waits long behind one check-in: no snapshot, its statements saved."""
    fleet = Fleet(1)
    fleet.register(db)
    service = service_on(db, locator)
    snapshots = counting_states(monkeypatch, service, lock=False)
    locked = counting_states(monkeypatch, service, lock=True)
    out = service.check_in_many([CheckinCall(fleet.token(0, 1, T0, BERLIN), None, T0)])
    assert [outcome(o) for o in out] == ["allow"]
    assert (snapshots, locked) == ([], [1])


def test_a_groups_states_are_written_in_device_id_order(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written without a prior lock, rows are locked as they are updated: in one order on
    every node, so two groups sharing devices wait for each other instead of deadlocking."""
    fleet = Fleet(4)
    fleet.register(db)
    service = service_on(db, locator)
    real, written = service.devices.save_states_later, []

    def save_states_later(tx: Any, updates: Any) -> Any:
        written.append([p[-2] for p in updates.params])  # (..., device id, version)
        return real(tx, updates)

    monkeypatch.setattr(service.devices, "save_states_later", save_states_later)
    order = [2, 0, 3, 1]
    calls = [CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0) for i in order]
    assert [outcome(o) for o in service.check_in_many(calls)] == ["allow"] * 4
    assert written == [sorted(fleet.records[i].id for i in order)]


def test_a_group_of_devices_not_in_memory_is_looked_up_in_one_read(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet of millions checking in daily finds almost no record in the service's cache:
    a group's devices are read from the registry together, not one read each."""
    fleet = Fleet(5)
    fleet.register(db)
    service = service_on(db, locator)
    batched = counting(monkeypatch, service.devices, "records")
    single = counting(monkeypatch, service.devices, "get")
    calls = [CheckinCall(fleet.token(i, 1, T0, BERLIN), None, T0) for i in range(5)]
    assert [outcome(o) for o in service.check_in_many(calls)] == ["allow"] * 5
    assert (batched, single) == ([1], [])
    calls = [CheckinCall(fleet.token(i, 2, T0, BERLIN), None, T0) for i in range(5)]
    assert [outcome(o) for o in service.check_in_many(calls)] == ["allow"] * 5
    assert batched == [1]  # all in memory now


def test_a_failed_registry_read_fails_only_the_check_ins_it_was_for(
    db: Database, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store cannot be read: check-ins of devices already in memory go on, the others
    are answered with the outage (503): whether their devices exist cannot be known."""
    fleet = Fleet(3)
    fleet.register(db)
    service = service_on(db, locator)
    first = CheckinCall(fleet.token(0, 1, T0, BERLIN), None, T0)
    assert outcome(service.check_in_many([first])[0]) == "allow"

    def unavailable(keys: Any) -> Any:
        raise StoreUnavailable("the store is unavailable: connection refused")

    monkeypatch.setattr(service.devices, "records", unavailable)
    calls = [CheckinCall(fleet.token(i, 2, T0, BERLIN), None, T0) for i in range(3)]
    assert [outcome(o) for o in service.check_in_many(calls)] == [
        "allow",
        "StoreUnavailable",
        "StoreUnavailable",
    ]
