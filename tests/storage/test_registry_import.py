"""`Registry.import_csv` end to end on both stores: a file that spans several batches, bad rows
among good ones, a bad header, a store that fails mid-file, and a re-run that completes it;
with one writer and with several."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
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


def counting(n: int, read: list[int]) -> Iterator[str]:
    """The header and `n` rows, counting in `read[0]` the lines handed out so far."""
    for line in [HEADER] + [row(i) for i in range(n)]:
        read[0] += 1
        yield line


def device_count(db: Database) -> int:
    with db.read() as tx:
        found = tx.one("SELECT count(*) FROM devices")
    assert found is not None
    return int(found[0])


class _Wrapped:
    """A device store that passes everything on to `inner` but what a subclass overrides."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


class _Watching(_Wrapped):
    """A device store that notes which threads wrote batches, each taking a moment, so that
    a second writer is started while the first is busy."""

    def __init__(self, inner: object) -> None:
        super().__init__(inner)
        self.threads: set[str] = set()

    def import_batch(self, tx: object, records: object, at: int) -> object:
        self.threads.add(threading.current_thread().name)
        time.sleep(0.05)
        return self._inner.import_batch(tx, records, at)  # type: ignore[attr-defined]


@pytest.mark.parametrize("writers", [1, 2, 3])
def test_a_file_of_several_batches_with_bad_rows_imports_every_good_one(
    db: Database, writers: int
) -> None:
    n = 4 * BATCH + 500
    lines = [HEADER] + [row(i) for i in range(n)]
    bad_line = BATCH + 201  # a data row in the second batch (line 1 is the header)
    lines.insert(bad_line - 1, "35693804000000X,SN-bad,X1,AE,D1,B1,key\n")
    lines.append(row(7))  # the same device again: an idempotent repeat, skipped
    # A device of the first batch with other data, in the last: refused, naming line 9.
    lines.append(row(7).replace(",SN7,", ",SN-other,"))
    report = Registry.of(Stores.on(db)).import_csv(
        lines, actor="ops", source="fleet.csv", now=NOW, writers=writers
    )

    assert (report.imported, report.unchanged, report.duplicates_in_file) == (n, 0, 1)
    assert [p.line for p in report.problems] == [bad_line, len(lines)]
    assert "'X' is not allowed" in report.problems[0].message
    assert "also on line 9 with different data" in report.problems[1].message
    assert device_count(db) == n
    # Batches written at once by several connections: the same rows as one by one.
    with db.read() as tx:
        serials = tx.all("SELECT d.serial FROM device_imeis i JOIN devices d ON d.id = i.device_id")
    assert sorted(str(r[0]) for r in serials) == sorted(f"SN{i}" for i in range(n))


def test_several_writers_write_batches_on_threads_of_their_own(db: Database) -> None:
    stores = Stores.on(db)
    seen = _Watching(stores.devices)
    registry = Registry(stores.db, seen, stores.audit, stores.keys)  # type: ignore[arg-type]
    lines = [HEADER] + [row(i) for i in range(4 * BATCH)]
    before = threading.active_count()
    report = registry.import_csv(lines, actor="ops", source="f.csv", now=NOW, writers=2)

    assert report.imported == 4 * BATCH
    assert len(seen.threads) == 2 and all(t.startswith("import-writer") for t in seen.threads)
    assert threading.active_count() == before  # none is left behind
    seen.threads.clear()
    Registry(stores.db, seen, stores.audit, stores.keys).import_csv(  # type: ignore[arg-type]
        lines, actor="ops", source="f.csv", now=NOW
    )
    assert seen.threads == {threading.current_thread().name}  # one writer: inline


class _Held(_Wrapped):
    """A device store whose writes wait until `go` is set."""

    def __init__(self, inner: object) -> None:
        super().__init__(inner)
        self.go = threading.Event()

    def import_batch(self, tx: object, records: object, at: int) -> object:
        assert self.go.wait(10)
        return self._inner.import_batch(tx, records, at)  # type: ignore[attr-defined]


def test_while_the_writers_are_busy_the_file_is_read_at_most_one_batch_ahead(
    db: Database,
) -> None:
    """Memory stays bounded however slow the store: two batches being written, one waiting,
    and no more of the file read."""
    stores = Stores.on(db)
    held = _Held(stores.devices)
    registry = Registry(stores.db, held, stores.audit, stores.keys)  # type: ignore[arg-type]
    read = [0]
    lines = counting(10 * BATCH, read)

    done: list[object] = []
    worker = threading.Thread(
        target=lambda: done.append(
            registry.import_csv(lines, actor="ops", source="f.csv", now=NOW, writers=2)
        )
    )
    worker.start()
    try:
        # However slow the machine: wait until the header and three batches are read, then
        # give the reader time to go on; it must not.
        deadline = time.monotonic() + 30
        while read[0] < 1 + 3 * BATCH and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert read[0] == 1 + 3 * BATCH  # the header and three batches
    finally:
        held.go.set()
        worker.join(30)
    assert len(done) == 1 and device_count(db) == 10 * BATCH


def test_no_writers_is_refused_before_anything_is_read(db: Database) -> None:
    with pytest.raises(InvalidInput, match="0 writers: expected at least 1"):
        Registry.of(Stores.on(db)).import_csv(
            iter_failing(), actor="ops", source="f.csv", now=NOW, writers=0
        )
    assert device_count(db) == 0


def iter_failing() -> Iterator[str]:
    raise AssertionError("the file was read")
    yield ""  # pragma: no cover - a generator that fails when first read


def test_a_bad_header_refuses_the_file_and_imports_nothing(db: Database) -> None:
    lines = ["imei,serial,modle,sales_region,distributor,batch,public_key\n", row(1)]
    with pytest.raises(InvalidInput, match="unknown column"):
        Registry.of(Stores.on(db)).import_csv(lines, actor="ops", source="f.csv", now=NOW)
    assert device_count(db) == 0


class _FailingOnce(_Wrapped):
    """A device store whose n-th batch fails as a lost connection would."""

    def __init__(self, inner: object, fail_on: int) -> None:
        super().__init__(inner)
        self._fail_on = fail_on
        self._lock = threading.Lock()
        self.batches = 0

    def import_batch(self, tx: object, records: object, at: int) -> object:
        with self._lock:
            self.batches += 1
            fail = self.batches == self._fail_on
        if fail:
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


def test_with_several_writers_a_failure_stops_the_file_and_a_rerun_completes_it(
    db: Database,
) -> None:
    """The batches in flight beside the failing one commit or not on their own; the import
    raises once they are done (no thread is left writing), and nothing after them is read."""
    n = 8 * BATCH
    lines = [HEADER] + [row(i) for i in range(n)]
    stores = Stores.on(db)
    failing = _FailingOnce(stores.devices, fail_on=3)
    registry = Registry(stores.db, failing, stores.audit, stores.keys)  # type: ignore[arg-type]
    before = threading.active_count()

    with pytest.raises(ConnectionError):
        registry.import_csv(lines, actor="ops", source="f.csv", now=NOW, writers=2)
    assert threading.active_count() == before
    # Batches 1 and 2 are in, 3 failed; at most the two put after it were written too.
    kept = device_count(db)
    assert 2 * BATCH <= kept <= 4 * BATCH and kept % BATCH == 0
    assert failing.batches <= 5
    with db.read() as tx:
        audited = tx.one("SELECT count(*) FROM audit WHERE action = 'devices.import'")
    assert audited == (0,)  # the import's entry is written only when a file is done

    report = Registry.of(stores).import_csv(lines, actor="ops", source="f.csv", now=NOW, writers=2)
    assert (report.imported, report.unchanged, report.problems) == (n - kept, kept, [])
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
