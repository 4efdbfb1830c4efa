"""The storage calls a group of check-ins is recorded with, on both backends: replays refused
by the store itself, states saved only over the version read, absent devices left out."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from storage_fixtures import T0, Fleet

from regionlock.domain.device import DeviceState, ManualExemption, ManualLock
from regionlock.storage import Database
from regionlock.storage.checkins import CheckinRow, DuplicateNonce, SqlCheckinStore
from regionlock.storage.devices import SqlDeviceStore, StaleState


def row(device_id: str, nonce: str, counter: int) -> CheckinRow:
    return CheckinRow(
        device_id=device_id,
        at=T0,
        counter=counter,
        nonce=nonce,
        country="AE",
        subdivision=None,
        confidence=0.9,
        flags=(),
        signal_kinds=("gps",),
        verdict="allow",
        reasons=("policy.no_match",),
        policy_id="p",
        policy_version="1",
    )


def test_record_many_refuses_a_nonce_used_before_or_twice_in_one_call(db: Database) -> None:
    fleet = Fleet(2)
    fleet.register(db)
    a, b = (r.id for r in fleet.records)
    rows = SqlCheckinStore(db)
    with db.write() as tx:
        rows.record_many(tx, [row(a, "n" * 16, 1), row(b, "n" * 16, 1)])  # per device
    with db.read() as tx:
        assert rows.seen(tx, [(a, "n" * 16), (b, "n" * 16), (a, "m" * 16)]) == {
            (a, "n" * 16),
            (b, "n" * 16),
        }
    for again in ([row(a, "m" * 16, 2), row(a, "n" * 16, 3)], [row(b, "k" * 16, 2)] * 2):
        with pytest.raises(DuplicateNonce), db.write() as tx:
            rows.record_many(tx, again)
    with db.read() as tx:  # neither refused call left anything
        assert tx.one("SELECT COUNT(*) FROM checkins") == (2,)


def test_states_are_locked_together_and_saved_only_over_the_version_read(db: Database) -> None:
    fleet = Fleet(2)
    fleet.register(db)
    a, b = (r.id for r in fleet.records)
    devices = SqlDeviceStore(db)
    with db.write() as tx:
        states = devices.lock_states(tx, [b, a, "dev_nobody", a])
    assert set(states) == {a, b}  # an absent device is left out, duplicates read once
    assert states[a] == (DeviceState(), 0)
    moved = replace(DeviceState(), counter=7, last_country="AE")
    with db.write() as tx:
        devices.save_states(tx, [(a, 0, moved), (b, 0, moved)])
    with pytest.raises(StaleState), db.write() as tx:
        devices.save_states(tx, [(a, 1, moved), (b, 0, moved)])  # b is at version 1 now
    with db.write() as tx:
        after = devices.lock_states(tx, [a, b])
    assert after == {a: (moved, 1), b: (moved, 1)}  # the refused save changed nothing


def test_slots_are_read_and_saved_without_touching_the_rest_of_a_state(db: Database) -> None:
    """What a campaign reads and writes: only the manual lock and the exemption, over the
    version read; the presence, counter and columns of the state stay as they were."""
    fleet = Fleet(3)
    fleet.register(db)
    a, b, c = (r.id for r in fleet.records)
    devices = SqlDeviceStore(db)
    older = ManualLock("stolen", "api:support", T0, "Call us", "s@x")
    full = replace(
        DeviceState(),
        counter=9,
        last_country="AE",
        first_country="AE",
        presence={date(2026, 11, 20): frozenset({"AE", "AE-DU"})},
        manual_lock=older,
    )
    with db.write() as tx:
        devices.save_states(tx, [(a, 0, full)])
    with db.write() as tx:
        slots = devices.lock_slots(tx, [c, a, b, "dev_nobody"])
    assert set(slots) == {a, b, c}
    assert slots[a] == (DeviceState(manual_lock=older), 1)  # nothing else is read
    assert slots[b] == (DeviceState(), 0)
    lock = ManualLock("leak", "cli:ops", T0, "Return it", "shop@x", campaign="cmp_x")
    exemption = ManualExemption("diplomat", "cli:ops", date(2027, 1, 1), campaign="cmp_y")
    with db.write() as tx:
        devices.save_slots(
            tx,
            [(a, 1, DeviceState(manual_lock=lock)), (b, 0, DeviceState(manual_lock=lock))],
            (True, False),
        )
        devices.save_slots(tx, [(c, 0, DeviceState(exemption=exemption))], (False, True))
    with pytest.raises(StaleState), db.write() as tx:
        devices.save_slots(tx, [(b, 1, DeviceState()), (c, 0, DeviceState())], (True, True))
    with db.write() as tx:
        after = devices.lock_states(tx, [a, b, c])
    assert after[a] == (replace(full, manual_lock=lock), 2)  # presence and the rest kept
    assert after[b] == (DeviceState(manual_lock=lock), 1)
    assert after[c] == (DeviceState(exemption=exemption), 1)  # the refused save changed nothing
    with db.read() as tx:
        assert tx.one("SELECT last_country FROM devices WHERE id = ?", (a,)) == ("AE",)
    with db.write() as tx:  # emptied slots read back as empty
        devices.save_slots(tx, [(a, 2, DeviceState()), (c, 1, DeviceState())], (True, True))
        assert devices.lock_slots(tx, [a, c]) == {a: (DeviceState(), 3), c: (DeviceState(), 2)}


def test_a_group_of_rows_is_stored_value_for_value(db: Database) -> None:
    """Several rows at once (PostgreSQL: one INSERT of arrays), columns with and without
    NULLs in every row, read back exactly as one-by-one rows are."""
    fleet = Fleet(3)
    fleet.register(db)
    a, b, c = (r.id for r in fleet.records)
    rows = [
        row(a, "a" * 16, 1),
        replace(
            row(b, "b" * 16, 2),
            country=None,
            confidence=0.123456789,
            flags=("vpn", "roaming"),
            subdivision_candidates=("AE-DU", "AE-SH"),
        ),
        replace(row(c, "c" * 16, 2**40), subdivision="AE-AZ", policy_id="q", reasons=()),
    ]
    alone = [replace(r, nonce=r.nonce.upper()) for r in rows]
    store = SqlCheckinStore(db)
    with db.write() as tx:
        store.record_many(tx, rows)
    for r in alone:
        with db.write() as tx:
            store.record_many(tx, [r])
    columns = (
        "device_id, at, counter, country, subdivision, confidence, flags, signal_kinds,"
        " verdict, reasons, policy_id, policy_version, subdivision_candidates"
    )
    with db.read() as tx:
        stored = {
            str(r[0]): r[1:] for r in tx.all(f"SELECT nonce, {columns} FROM checkins ORDER BY id")
        }
    assert list(stored) == [r.nonce for r in rows + alone]  # in the order given
    for grouped, single in zip(rows, alone, strict=True):
        assert stored[grouped.nonce] == stored[single.nonce]
        expected = grouped.params()
        assert stored[grouped.nonce] == (*expected[:3], *expected[4:])


def test_a_group_of_states_is_stored_column_for_column(db: Database) -> None:
    """Several states at once (one executemany, pipelined on PostgreSQL) write the same columns as
    one state at a time, NULLs included."""
    fleet = Fleet(4)
    fleet.register(db)
    ids = sorted(r.id for r in fleet.records)
    devices = SqlDeviceStore(db)
    full = replace(
        DeviceState(),
        counter=3,
        last_country="IR",
        last_subdivision="IR-23",
        first_country="AE",
        last_checkin_at=T0,
        presence={date(2026, 11, 20): frozenset({"AE", "IR"})},
    )
    bare = replace(DeviceState(), counter=1)
    with db.write() as tx:
        devices.save_states(tx, [(ids[0], 0, full), (ids[1], 0, bare)])
    with db.write() as tx:
        devices.save_states(tx, [(ids[2], 0, full)])
    with db.write() as tx:
        devices.save_states(tx, [(ids[3], 0, bare)])
    columns = (
        "state, state_version, last_verdict, last_country, last_checkin_at, last_subdivision,"
        " first_country, seen_in"
    )
    with db.read() as tx:
        got = {str(r[0]): r[1:] for r in tx.all(f"SELECT id, {columns} FROM devices ORDER BY id")}
    assert got[ids[0]] == got[ids[2]] and got[ids[1]] == got[ids[3]]
    assert got[ids[0]][1:] == (1, None, "IR", int(T0.timestamp() * 1000), "IR-23", "AE", ",AE,IR,")
    assert got[ids[1]][1:] == (1, None, None, None, None, None, None)
    with db.write() as tx:
        assert devices.lock_states(tx, ids[:2]) == {ids[0]: (full, 1), ids[1]: (bare, 1)}
