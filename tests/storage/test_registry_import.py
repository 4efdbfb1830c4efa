"""`Registry.import_csv` end to end on both stores: a file that spans several batches, bad rows
among good ones, a bad header, a store that fails mid-file, and a re-run that completes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from regionlock.domain.device import encode_public_key, luhn_check_digit
from regionlock.domain.errors import InvalidInput
from regionlock.services.registry import BATCH, Registry
from regionlock.storage import Database, Stores
from regionlock.storage.db import StoreConflict

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
HEADER = "imei,serial,model,sales_region,distributor,batch,public_key\n"


def imei(n: int) -> str:
    body = f"35693804{n:06d}"
    return body + str(luhn_check_digit(body))


def row(n: int) -> str:
    key = encode_public_key(n.to_bytes(4, "big") * 7 + b"\x00\x00\x00\x01")
    return f"{imei(n)},SN{n},X1,AE,D{n % 3},B1,{key}\n"


def device_count(db: Database) -> int:
    with db.read() as tx:
        found = tx.one("SELECT count(*) FROM devices")
    assert found is not None
    return int(found[0])


def test_a_file_of_several_batches_with_bad_rows_imports_every_good_one(db: Database) -> None:
    n = 2 * BATCH + 500
    lines = [HEADER] + [row(i) for i in range(n)]
    bad_line = BATCH + 201  # a data row in the second batch (line 1 is the header)
    lines.insert(bad_line - 1, "35693804000000X,SN-bad,X1,AE,D1,B1,key\n")
    lines.append(row(7))  # the same device again: an idempotent repeat, skipped
    report = Registry.of(Stores.on(db)).import_csv(lines, actor="ops", source="fleet.csv", now=NOW)

    assert (report.imported, report.unchanged, report.duplicates_in_file) == (n, 0, 1)
    assert [p.line for p in report.problems] == [bad_line]
    assert "'X' is not allowed" in report.problems[0].message
    assert device_count(db) == n


def test_a_bad_header_refuses_the_file_and_imports_nothing(db: Database) -> None:
    lines = ["imei,serial,modle,sales_region,distributor,batch,public_key\n", row(1)]
    with pytest.raises(InvalidInput, match="unknown column"):
        Registry.of(Stores.on(db)).import_csv(lines, actor="ops", source="f.csv", now=NOW)
    assert device_count(db) == 0


class _Wrapped:
    """A device store that passes everything on to `inner` but what a subclass overrides."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


class _FailingOnce(_Wrapped):
    """A device store whose n-th batch fails as a lost connection would."""

    def __init__(self, inner: object, fail_on: int) -> None:
        super().__init__(inner)
        self._fail_on = fail_on
        self.batches = 0

    def import_batch(self, tx: object, records: object, at: int) -> object:
        self.batches += 1
        if self.batches == self._fail_on:
            raise ConnectionError("the store went away")
        return self._inner.import_batch(tx, records, at)  # type: ignore[attr-defined]


def test_a_store_failing_mid_file_keeps_the_batches_before_and_a_rerun_completes_it(
    db: Database,
) -> None:
    n = 3 * BATCH
    lines = [HEADER] + [row(i) for i in range(n)]
    stores = Stores.on(db)
    failing = _FailingOnce(stores.devices, fail_on=2)
    registry = Registry(stores.db, failing, stores.audit, stores.keys)  # type: ignore[arg-type]

    with pytest.raises(ConnectionError):
        registry.import_csv(lines, actor="ops", source="f.csv", now=NOW)
    # The first batch was committed, the second rolled back, and the rest never written.
    assert device_count(db) == BATCH

    report = Registry.of(stores).import_csv(lines, actor="ops", source="f.csv", now=NOW)
    assert (report.imported, report.unchanged, report.problems) == (2 * BATCH, BATCH, [])
    assert device_count(db) == n


class _Losing(_Wrapped):
    """A device store whose first `losses` locked reads lose a conflict, as a deadlock's
    victim does."""

    def __init__(self, inner: object, losses: int) -> None:
        super().__init__(inner)
        self.losses = losses
        self.reads = 0

    def lock_for_update(self, tx: object, key: str) -> object:
        self.reads += 1
        if self.reads <= self.losses:
            raise StoreConflict("a concurrent transaction conflicted: deadlock detected")
        return self._inner.lock_for_update(tx, key)  # type: ignore[attr-defined]


def losing(db: Database, losses: int) -> tuple[Registry, _Losing, Stores]:
    stores = Stores.on(db)
    Registry.of(stores).import_csv([HEADER, row(1)], actor="ops", source="f.csv", now=NOW)
    store = _Losing(stores.devices, losses)
    return Registry(stores.db, store, stores.audit, stores.keys), store, stores  # type: ignore[arg-type]


def test_an_operators_lock_that_loses_a_conflict_is_run_again_once(db: Database) -> None:
    registry, store, _ = losing(db, losses=1)
    device = registry.lock(imei(1), reason="stolen", actor="ops", now=NOW)
    assert store.reads == 2
    assert device.state.manual_lock is not None and device.state.manual_lock.reason == "stolen"
    with db.read() as tx:
        found = tx.one("SELECT count(*) FROM audit WHERE action = 'device.lock'")
    assert found is not None and int(found[0]) == 1


def test_an_operators_lock_that_loses_twice_is_refused_and_changes_nothing(db: Database) -> None:
    registry, store, stores = losing(db, losses=2)
    with pytest.raises(StoreConflict):
        registry.lock(imei(1), reason="stolen", actor="ops", now=NOW)
    assert store.reads == 2
    device = stores.devices.get(imei(1))
    assert device is not None and device.state.manual_lock is None
