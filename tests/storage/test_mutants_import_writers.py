"""Found by mutation testing of `Registry.import_csv` and its `_Writers` (docs/test-quality.md,
"The import's writers, day partitions and ended threads' connections"): each test below failed
on a mutant that the import tests let live. Both stores."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from test_registry_import import HEADER, NOW, _Wrapped, counting, device_count, imei, row

from regionlock.services.registry import BATCH, Registry
from regionlock.storage import Database, Stores


def import_entries(db: Database) -> int:
    with db.read() as tx:
        found = tx.one("SELECT count(*) FROM audit WHERE action = 'devices.import'")
    assert found is not None
    return int(found[0])


class _Held(_Wrapped):
    """A device store whose batches wait until `go` is set, counting the batches started."""

    def __init__(self, inner: object) -> None:
        super().__init__(inner)
        self.go = threading.Event()
        self.started = 0
        self._lock = threading.Lock()

    def import_batch(self, tx: object, records: object, at: int) -> object:
        with self._lock:
            self.started += 1
        assert self.go.wait(10)
        return self._inner.import_batch(tx, records, at)  # type: ignore[attr-defined]


class Interrupted(Exception):
    """What the signal handler below raises, as Ctrl-C raises KeyboardInterrupt."""


def interrupt(signum: int, frame: object) -> None:
    raise Interrupted


def test_an_import_interrupted_while_the_writers_are_busy_drops_the_batch_waiting(
    db: Database,
) -> None:
    """Two writers busy with batches 1 and 2, batch 3 waiting for one of them, the import
    waiting for batch 1, and then an interrupt (Ctrl-C, a signal): batch 3 is never written,
    1 and 2 commit on their own, and the import raises once they are done, tallying and
    auditing nothing."""
    stores = Stores.on(db)
    held = _Held(stores.devices)
    registry = Registry(stores.db, held, stores.audit, stores.keys)  # type: ignore[arg-type]
    read = [0]
    lines = counting(6 * BATCH, read)

    def interrupter() -> None:
        while read[0] < 1 + 3 * BATCH:
            time.sleep(0.01)
        # Batch 3 is put, and the import waits for batch 1 (on SQLite, batch 2 waits for
        # the writer lock that batch 1 holds).
        time.sleep(0.2)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
        time.sleep(0.5)  # the import is leaving: it cancels batch 3, waits for 1 and 2
        held.go.set()

    before = signal.signal(signal.SIGUSR1, interrupt)
    thread = threading.Thread(target=interrupter)
    thread.start()
    try:
        with pytest.raises(Interrupted):
            registry.import_csv(lines, actor="ops", source="f.csv", now=NOW, writers=2)
    finally:
        held.go.set()
        thread.join(30)
        signal.signal(signal.SIGUSR1, before)
    assert read[0] == 1 + 3 * BATCH
    assert held.started == 2
    assert device_count(db) == 2 * BATCH
    assert import_entries(db) == 0

    report = Registry.of(stores).import_csv(
        [HEADER] + [row(i) for i in range(3 * BATCH)],
        actor="ops",
        source="f.csv",
        now=NOW,
        writers=2,
    )
    assert (report.imported, report.unchanged) == (BATCH, 2 * BATCH)


@pytest.mark.parametrize("writers", [1, 2])
def test_problems_found_by_the_store_and_in_the_file_are_reported_in_line_order(
    db: Database, writers: int
) -> None:
    """With several writers a batch's results are tallied after later lines were parsed:
    the store's refusal on line 3 comes after the file's own problem on a later line, and
    the report still lists them by line."""
    stores = Stores.on(db)
    Registry.of(stores).import_csv([HEADER, row(7)], actor="ops", source="f.csv", now=NOW)
    lines = [HEADER, row(1), row(7).replace(",SN7,", ",SN-other,")]
    lines += [row(i) for i in range(100, 100 + BATCH)]
    bad_line = len(lines) + 1
    lines.append("35693804000000X,SN-bad,X1,AE,D1,B1,key\n")
    report = Registry.of(stores).import_csv(
        lines, actor="ops", source="f.csv", now=NOW, writers=writers
    )
    assert [p.line for p in report.problems] == [3, bad_line]
    assert "already registered with other data" in report.problems[0].message
    assert (report.imported, report.unchanged) == (BATCH + 1, 0)


@pytest.mark.parametrize("writers", [1, 2])
def test_an_import_is_audited_once_with_what_it_did(db: Database, writers: int) -> None:
    stores = Stores.on(db)
    Registry.of(stores).import_csv([HEADER, row(7)], actor="ops", source="a.csv", now=NOW)
    lines = [HEADER, row(7), row(7), row(8).replace(",SN8,", ",SN7,").replace(imei(8), imei(7))]
    lines += [row(i) for i in range(100, 100 + BATCH)]
    lines.append("35693804000000X,SN-bad,X1,AE,D1,B1,key\n")
    report = Registry.of(stores).import_csv(
        lines, actor="cli:ana", source="fleet-7.csv", now=NOW, writers=writers
    )
    assert (report.imported, report.unchanged, report.duplicates_in_file) == (BATCH, 1, 1)
    assert len(report.problems) == 2
    (entry, _) = stores.audit.recent(action="devices.import")
    assert (entry.actor, entry.subject, entry.reason) == ("cli:ana", "fleet-7.csv", "bulk import")
    assert entry.at == int(NOW.timestamp() * 1000)
    assert dict(entry.details) == {
        "imported": BATCH,
        "unchanged": 1,
        "duplicates_in_file": 1,
        "problems": 2,
    }
