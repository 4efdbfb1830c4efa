"""Audit trail conformance: append-only, tamper-evident, safe under concurrency.

Appends go to shard 0 on SQLite and to the appending thread's shard on PostgreSQL (each test's
entries come from one thread, so they share a shard: `shard_of`)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from regionlock.storage import Database
from regionlock.storage import audit as audit_module
from regionlock.storage.audit import (
    AuditEntry,
    AuditHead,
    NewEntry,
    SqlAuditStore,
    content_digest,
    entry_hash,
    entry_hash_v3,
)
from regionlock.storage.db import Transaction
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


def shard_of(store: SqlAuditStore) -> int:
    """The shard this test's entries went to."""
    shards = {e.shard for e in store.entries()}
    assert len(shards) == 1, shards
    return shards.pop()


def set_head(db: Database, shard: int, seq: int, digest: str) -> None:
    """Move a shard's head row, as someone with write access to the database would."""
    with db.write() as tx:
        tx.execute(
            "UPDATE audit_shards SET seq = ?, hash = ? WHERE shard = ?", (seq, digest, shard)
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
    # PostgreSQL's sequence does not give back the number the rolled-back entry took.
    third = 3 if db.dialect == "sqlite" else 4
    assert [e.seq for e in store.entries()] == [1, 2, third]
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


def resealed(e: AuditEntry, reason: str, prev_hash: str) -> AuditEntry:
    """`e` with another reason and previous hash, its digests recomputed as a forger with the
    database (and so the salt) would."""
    assert e.salt is not None and e.content_digest is not None
    content = content_digest(e.salt, e.actor, e.subject, reason, e.details)
    digest = entry_hash_v3(e.seq, e.shard, e.at, e.action, content, prev_hash)
    return replace(e, reason=reason, prev_hash=prev_hash, content_digest=content, hash=digest)


def rewrite(db: Database, store: SqlAuditStore, seq: int, reason: str) -> None:
    """Rewrite entry `seq`'s reason as a forger would: with its own hash recomputed over the
    new content and its stored prev_hash, so the entry checks out on its own."""
    e = store.entries(after=seq - 1, limit=1)[0]
    e = resealed(e, reason, e.prev_hash)
    with db.write() as tx:
        tx.execute(
            "UPDATE audit SET reason = ?, content_digest = ?, hash = ? WHERE seq = ?",
            (reason, e.content_digest, e.hash, seq),
        )


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


@pytest.mark.parametrize("own_shard", [0, 5])
def test_deleting_an_entry_is_detected(
    db: Database, own_shard: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL a thread appends to its own shard, taken in turn from a random start: both
    # answers, pinned (tests/conftest.py pins shard 5 for every other test).
    monkeypatch.setattr(audit_module._threads, "shard", own_shard, raising=False)
    store = SqlAuditStore(db)
    add(db, store, 5)
    with db.write() as tx:
        tx.execute("DELETE FROM audit WHERE seq = ?", (3,))
    result = store.verify()
    if db.dialect == "sqlite" or own_shard == 0:
        # SQLite's numbers have no gaps, and shard 0 holds the chain from before shards,
        # whose numbers had none either: the missing one is named.
        assert (result.ok, result.first_broken, result.checked) == (False, 3, 2)
        assert "entry 3 is missing" in result.problem
    else:  # gaps are rollbacks too: the entry after the hole is named
        assert (result.ok, result.first_broken, result.checked) == (False, 4, 2)
        assert "entry 4 does not follow entry 2" in result.problem


def test_truncating_the_end_is_detected(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 5)
    with db.write() as tx:
        tx.execute("DELETE FROM audit WHERE seq = ?", (5,))
    result = store.verify()
    assert (result.ok, result.first_broken, result.checked) == (False, 5, 4)
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
    if db.dialect == "postgresql":  # four threads, four chains that do not wait for each other
        assert len({e.shard for e in entries}) == 4


def head_of(store: SqlAuditStore) -> AuditHead:
    """The head an outsider keeps: what a clean `verify` ends at."""
    result = store.verify()
    assert result.ok and result.head is not None
    return result.head


def test_an_empty_trail_without_a_head_row_is_intact(db: Database) -> None:
    store = SqlAuditStore(db)
    with db.write() as tx:
        tx.execute("DELETE FROM audit_shards")
    result = store.verify()
    assert (result.ok, result.checked, result.head) == (True, 0, AuditHead(0, ""))
    assert store.verify(against=AuditHead(0, "")).ok


def test_a_deleted_head_row_is_detected(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 3)
    shard = shard_of(store)
    with db.write() as tx:
        tx.execute("DELETE FROM audit_shards WHERE shard = ?", (shard,))
    result = store.verify()
    assert (result.ok, result.first_broken, result.checked) == (False, None, 3)
    assert "head row is missing" in result.problem


def test_a_head_reset_to_empty_is_detected(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 3)
    set_head(db, shard_of(store), 0, "")
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, 1)
    assert "head row was reset" in result.problem


def test_entries_after_the_head_are_detected(db: Database) -> None:
    """The head rolled back over entries that are still there: nothing vouches for them."""
    store = SqlAuditStore(db)
    add(db, store, 5)
    third = store.entries(after=2, limit=1)[0]
    set_head(db, third.shard, 3, third.hash)
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, 4)
    assert "entries up to 5 come after" in result.problem and "(entry 3)" in result.problem


def test_a_clean_trail_extends_every_head_kept_along_the_way(db: Database) -> None:
    store = SqlAuditStore(db)
    kept = [head_of(store)]
    for _ in range(3):
        add(db, store, 2)
        kept.append(head_of(store))
    assert [k.seq for k in kept] == [0, 2, 4, 6]
    assert kept[-1].at == 1_700_000_000_001
    for k in kept:
        result = store.verify(against=k)
        assert (result.ok, result.checked, result.head) == (True, 6, kept[-1])


def test_a_tail_cut_with_the_head_rolled_back_shows_only_against_a_kept_head(
    db: Database,
) -> None:
    """With write access to the database, entries 5 and 6 go and the head moves back to 4:
    the trail is consistent again, but a head kept at 6 is no longer in it."""
    store = SqlAuditStore(db)
    add(db, store, 6)
    kept = head_of(store)
    fourth = store.entries(after=3, limit=1)[0]
    with db.write() as tx:
        tx.execute("DELETE FROM audit WHERE seq > 4")
    set_head(db, fourth.shard, 4, fourth.hash)
    assert store.verify().ok
    result = store.verify(against=kept)
    assert (result.ok, result.first_broken, result.checked) == (False, 5, 4)
    assert "before the kept head's entry 6" in result.problem


def forge_from(db: Database, store: SqlAuditStore, seq: int, reason: str) -> None:
    """Rewrite entry `seq`'s reason as a forger with write access would: every hash from it
    on recomputed, every later entry re-linked, the head moved to the new last hash."""
    prev = store.entries(after=seq - 2, limit=1)[0].hash if seq > 1 else ""
    later = store.entries(after=seq - 1)
    with db.write() as tx:
        for e in later:
            new = resealed(e, reason if e.seq == seq else e.reason, prev)
            prev = new.hash
            tx.execute(
                "UPDATE audit SET reason = ?, prev_hash = ?, content_digest = ?, hash = ?"
                " WHERE seq = ?",
                (new.reason, new.prev_hash, new.content_digest, new.hash, e.seq),
            )
        tx.execute("UPDATE audit_shards SET hash = ? WHERE shard = ?", (prev, later[-1].shard))


def test_a_rewrite_with_every_later_hash_recomputed_shows_only_against_a_kept_head(
    db: Database,
) -> None:
    store = SqlAuditStore(db)
    add(db, store, 3)
    kept = head_of(store)
    add(db, store, 3)
    forge_from(db, store, 2, "nothing to see")
    assert store.entries(after=1, limit=1)[0].reason == "nothing to see"
    assert store.verify().ok
    result = store.verify(against=kept)
    assert (result.ok, result.first_broken, result.checked) == (False, 3, 2)
    assert "rewritten at or before entry 3" in result.problem
    # A head kept before the rewritten entry still holds: that part is as it was.
    assert store.verify(against=AuditHead(1, store.entries(limit=1)[0].hash)).ok


class OvertakenStore(SqlAuditStore):
    """A store whose verification is overtaken by a writer: `extra` entries are appended and
    sealed, from another thread and connection, once the verification's snapshot is taken."""

    extra = 2

    @contextmanager
    def _snapshot(self) -> Iterator[Transaction]:
        with super()._snapshot() as tx:
            tx.one("SELECT COUNT(*) FROM audit")  # the snapshot starts with its first read

            def write() -> None:
                add(self.db, SqlAuditStore(self.db), self.extra)
                seal(self.db, SqlAuditStore(self.db))

            writer = threading.Thread(target=write)
            writer.start()
            writer.join()
            yield tx


def seal(db: Database, store: SqlAuditStore) -> None:
    upto = store.settled()
    with db.write() as tx:
        store.seal(tx, upto=upto)


def test_appends_while_verifying_are_not_mistaken_for_a_cut(db: Database) -> None:
    """Appends and a seal between the walk's pages and its reading of the heads and the tree
    would look like entries after the head or leaves beyond the tree: one snapshot sees none."""
    store = OvertakenStore(db)
    add(db, store, 3)
    result = store.verify()
    assert (result.ok, result.checked) == (True, 3)
    assert SqlAuditStore(db).verify().checked == 5


def test_entry_hashes_are_pinned() -> None:
    """Every stored hash was computed this way: a change to the canonical form (separators,
    key order, escaping, encoding) would make every existing trail fail to verify."""
    details = {"policy": "p@1", "n": [1, 2]}
    assert (
        entry_hash(
            1, 1_700_000_000_000, "cli:zoë", "device.lock", "dev_1", "réclamation", details, ""
        )
        == "a5121fb9345a971ef3e276c63ea0c6513fa663ec0508e73960e99ce14f616535"
    )


def test_an_entry_reads_out_with_every_field(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 1)
    e = store.entries()[0]
    assert e.to_json() == {
        "seq": 1,
        "at": 1_700_000_000_000,
        "actor": "system",
        "action": "device.lock",
        "subject": "dev_0",
        "reason": "test 0",
        "details": {"policy": "p@1", "n": 0},
        "prev_hash": "",
        "hash": e.hash,
        "content_digest": e.content_digest,
        "salt": e.salt,
        "fmt": 3,
        "shard": e.shard,
    }


# Found by mutation testing (docs/test-quality.md): each test below failed on a mutant of
# storage/audit.py that the tests above let through.


def test_a_trail_without_its_head_row_refuses_to_grow(db: Database) -> None:
    """Appending with no head row would start a second chain at entry 1: refused, saying why."""
    store = SqlAuditStore(db)
    with db.write() as tx:
        tx.execute("DELETE FROM audit_shards")
    with pytest.raises(AssertionError, match=r"^audit_shards rows missing: run migrations$"):
        add(db, store, 1)
    assert store.entries() == []


def test_entries_reads_a_thousand_at_most_by_default(db: Database) -> None:
    store = SqlAuditStore(db)
    with db.write() as tx:
        store.append_many(tx, [NewEntry(i, "system", "a", "s", "r", {}) for i in range(1001)])
    assert [e.seq for e in store.entries()] == list(range(1, 1001))
    assert [e.seq for e in store.entries(after=1000)] == [1001]


def test_iter_all_reads_every_batch(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 5)
    assert [e.seq for e in store.iter_all(batch=2)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "head", [AuditHead(-1, "ab"), AuditHead(-1, ""), AuditHead(0, "ab"), AuditHead(2, "")]
)
def test_a_kept_head_that_cannot_be_one_is_refused(db: Database, head: AuditHead) -> None:
    """A negative number, an entry without a hash, or a hash for the empty trail."""
    with pytest.raises(ValueError, match=r"^not a head: AuditHead\("):
        SqlAuditStore(db).verify(against=head)


def test_a_rewrite_seen_against_a_kept_head_quotes_both_hashes(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 3)
    kept = head_of(store)
    forge_from(db, store, 3, "nothing to see")
    now = store.entries(after=2, limit=1)[0].hash
    assert store.verify(against=kept).problem == (
        f"entry 3 is not the one in the kept head (hash {kept.hash[:12]}..., now"
        f" {now[:12]}...): the trail was rewritten at or before entry 3"
    )


def test_verify_says_what_is_wrong_with_the_end_of_the_trail(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 5)
    kept = head_of(store)
    entries = store.entries()
    shard = shard_of(store)
    where = "the head row" if shard == 0 else f"shard {shard}'s head row"
    with db.write() as tx:
        tx.execute("DELETE FROM audit WHERE seq = 5")
    assert store.verify().problem == (
        f"the chain ends at entry 4 but {where} says 5: entries were removed from the end"
    )
    set_head(db, shard, 3, entries[2].hash)
    assert store.verify().problem == (
        f"entries up to 4 come after {where} (entry 3): the head was rolled back, or they were"
        " added behind its back"
    )
    set_head(db, shard, 4, entries[2].hash)
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, 4)
    assert result.problem == (
        f"entry 4 does not match {where}'s hash: it (or the head) was rewritten"
    )
    set_head(db, shard, 4, entries[3].hash)
    assert store.verify().ok
    assert store.verify(against=kept).problem == (
        "the trail ends at entry 4, before the kept head's entry 5: entries were removed from"
        " the end and the head rolled back with them"
    )


def test_an_empty_trail_whose_head_names_a_hash_is_broken(db: Database) -> None:
    store = SqlAuditStore(db)
    set_head(db, 0, 0, "ab" * 32)
    result = store.verify()
    assert (result.ok, result.checked, result.first_broken) == (False, 0, None)
    assert result.problem == "the chain is empty but the head row names an entry hash"
