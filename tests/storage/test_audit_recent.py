"""Audit trail conformance, the console's view: the latest entries first, filtered, paged."""

from __future__ import annotations

from regionlock.storage import Database
from regionlock.storage.audit import NewEntry, SqlAuditStore


def test_recent_entries_come_newest_first_filtered_and_paged(db: Database) -> None:
    store = SqlAuditStore(db)
    with db.write() as tx:
        for i in range(7):
            store.append(
                tx,
                at=1_700_000_000_000 + i,
                actor="system",
                action="device.lock" if i % 2 else "policy.activate",
                subject=f"dev_{i % 3}",
                reason=f"test {i}",
                details={},
            )
    assert [e.seq for e in store.recent(limit=3)] == [7, 6, 5]
    assert [e.seq for e in store.recent(before=5, limit=3)] == [4, 3, 2]
    assert [e.seq for e in store.recent(before=2)] == [1]
    assert [e.seq for e in store.recent(action="device.lock")] == [6, 4, 2]
    assert [e.seq for e in store.recent(subject="dev_0")] == [7, 4, 1]
    assert [e.seq for e in store.recent(subject="dev_0", action="device.lock")] == [4]
    assert store.recent(action="nothing") == []
    assert store.recent(limit=1)[0].reason == "test 6"


# -- Found by mutation testing (docs/test-quality.md, "storage/audit.py, format v2") -----------
# Each test below failed on a mutant of `recent` that the test above let live.


def test_recent_reads_the_newest_hundred_by_default_however_long_the_trail(
    db: Database,
) -> None:
    store = SqlAuditStore(db)
    entries = [NewEntry(1_700_000_000_000 + i, "system", "a", "s", "r", {}) for i in range(130)]
    with db.write() as tx:
        store.append_many(tx, entries)
    newest = store.recent()
    assert [e.seq for e in newest] == list(range(130, 30, -1))
