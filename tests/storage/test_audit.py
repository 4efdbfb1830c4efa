"""Audit trail conformance: append-only, gapless, tamper-evident, safe under concurrency."""

from __future__ import annotations

import itertools
import threading

from regionlock.storage import Database
from regionlock.storage.audit import SqlAuditStore, entry_hash
from regionlock.storage.migrate import available, current_version, migrate


def add(db: Database, store: SqlAuditStore, n: int, actor: str = "system") -> None:
    for i in range(n):
        with db.write() as tx:
            store.append(
                tx,
                at=1_700_000_000_000 + i,
                actor=actor,
                action="device.lock",
                subject=f"dev_{i % 3}",
                reason=f"test {i}",
                details={"policy": "p@1", "n": i},
            )


def test_migrations_are_idempotent(db: Database) -> None:
    assert current_version(db) == len(available(db.dialect))
    assert migrate(db) == []


def test_append_and_read_back_in_order(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 5)
    entries = store.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == ""
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert entries[2].details == {"policy": "p@1", "n": 2}
    assert [e.seq for e in store.entries(subject="dev_1")] == [2, 5]
    assert store.verify().ok and store.verify().checked == 5


def test_an_entry_rolled_back_with_its_change_leaves_no_trace(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 2)
    try:
        with db.write() as tx:
            store.append(tx, at=1, actor="x", action="a", subject="s", reason="r", details={})
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    add(db, store, 1)
    assert [e.seq for e in store.entries()] == [1, 2, 3]
    assert store.verify().ok


def test_tampering_is_detected_and_located(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 6)
    with db.write() as tx:
        tx.execute("UPDATE audit SET reason = ? WHERE seq = ?", ("nothing to see", 4))
    result = store.verify()
    assert not result.ok
    assert result.first_broken == 4
    assert "entry 4 was altered" in result.problem


def rewrite(db: Database, store: SqlAuditStore, seq: int, reason: str) -> None:
    """Rewrite entry `seq`'s reason as a forger would: with its own hash recomputed over the
    new content and its stored prev_hash, so the entry checks out on its own."""
    e = store.entries(after=seq - 1, limit=1)[0]
    digest = entry_hash(e.seq, e.at, e.actor, e.action, e.subject, reason, e.details, e.prev_hash)
    with db.write() as tx:
        tx.execute("UPDATE audit SET reason = ?, hash = ? WHERE seq = ?", (reason, digest, seq))


def test_an_entry_rewritten_with_its_hash_recomputed_breaks_the_next_link(db: Database) -> None:
    """Entry 3 alone verifies after the rewrite; what gives it away is entry 4, which
    committed to entry 3's old hash: its prev_hash no longer equals entry 3's hash."""
    store = SqlAuditStore(db)
    add(db, store, 6)
    rewrite(db, store, 3, "nothing to see")
    result = store.verify()
    assert (result.ok, result.first_broken, result.checked) == (False, 4, 3)
    assert "entry 4" in result.problem and "entry 3" in result.problem


def test_the_last_entry_rewritten_with_its_hash_recomputed_is_detected(db: Database) -> None:
    """No later entry commits to the last one: the head row, which holds its hash, does."""
    store = SqlAuditStore(db)
    add(db, store, 6)
    rewrite(db, store, 6, "nothing to see")
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, 6)


def test_deleting_an_entry_is_detected(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 5)
    with db.write() as tx:
        tx.execute("DELETE FROM audit WHERE seq = ?", (3,))
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, 3)


def test_truncating_the_end_is_detected(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 5)
    with db.write() as tx:
        tx.execute("DELETE FROM audit WHERE seq = ?", (5,))
    result = store.verify()
    assert not result.ok
    assert "removed from the end" in result.problem


def test_concurrent_appends_never_fork_the_chain(db: Database) -> None:
    store = SqlAuditStore(db)
    threads = [threading.Thread(target=add, args=(db, store, 25, f"t{i}")) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = store.entries(limit=1000)
    assert [e.seq for e in entries] == list(range(1, 101))
    assert store.verify().ok
