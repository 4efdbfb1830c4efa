"""Found by mutation testing of storage/audit.py's shards and tree (docs/test-quality.md,
"`storage/audit.py`: the shards and the tree"): each test below failed on a mutant that the
audit, tree, privacy, backup, check-in pipeline, audit CLI and audit API tests let live.
Both stores."""

from __future__ import annotations

import threading

import pytest
from test_audit_tree import add, expected_root, seal

from regionlock.storage import Database, audit
from regionlock.storage.audit import SHARDS, NewEntry, SqlAuditStore, TreeHead


def sealed(db: Database, n: int) -> SqlAuditStore:
    """A store of `n` entries, all sealed into the tree."""
    store = SqlAuditStore(db)
    add(db, store, n)
    seal(db, store)
    return store


def test_the_latest_hundred_signed_heads_are_read_by_default(db: Database) -> None:
    store = SqlAuditStore(db)
    with db.write() as tx:
        for size in range(101):
            store.add_tree_head(tx, TreeHead(size, f"{size:064x}", 1_000 + size, f"t{size}"))
    heads = store.tree_heads()
    assert [h.size for h in heads] == list(range(100, 0, -1))  # size 0, the oldest, left out


@pytest.mark.parametrize(
    "head",
    [TreeHead(3, "ee"), TreeHead(3, "ee", signed_at=1_000), TreeHead(3, "ee", token="token")],
)
def test_a_tree_head_without_its_signature_or_its_time_is_not_kept(
    db: Database, head: TreeHead
) -> None:
    store = SqlAuditStore(db)
    with pytest.raises(ValueError, match=r"^a kept tree head is signed$"), db.write() as tx:
        store.add_tree_head(tx, head)
    assert store.tree_heads() == []


def test_a_consistency_proof_from_the_empty_tree_is_refused_before_the_tree_is_read(
    db: Database,
) -> None:
    # Not "the tree holds ...": a proof from 0 leaves is no proof, whatever the tree holds.
    store = SqlAuditStore(db)
    with pytest.raises(ValueError, match=r"^no consistency proof from 0 to 0 leaves$"):
        store.consistency_proof(0, 0)
    add(db, store, 4)
    seal(db, store)
    with pytest.raises(ValueError, match=r"^no consistency proof from 0 to 5 leaves$"):
        store.consistency_proof(0, 5)


def test_a_signed_head_alone_inside_the_tree_is_checked_at_its_size(db: Database) -> None:
    # One signed head, of 3 leaves of 8, with a root the entries do not give: nothing else is
    # wrong (the tree row is right), so only comparing at leaf 3 itself can find it.
    store = sealed(db, 8)
    good = expected_root(store, 3).hex()
    with db.write() as tx:
        store.add_tree_head(tx, TreeHead(3, "ab" * 32, 1_000, "token"))
    result = store.verify()
    assert (result.ok, result.checked, result.first_broken) == (False, 8, None)
    assert result.problem == (
        f"the signed tree head of 3 leaves has root abababababab..., but the entries give"
        f" {good[:12]}...: the trail was rewritten within the tree's first 3 leaves"
    )


def test_one_entry_made_two_leaves_is_named_even_without_the_unique_constraint(
    db: Database,
) -> None:
    # The schema keeps an entry to one leaf (audit_leaves.seq is UNIQUE); someone who can
    # rebuild the table without it can point leaf 1 at entry 1 as well. The tree row still
    # says 3 leaves: the walk itself must see the entry twice.
    store = sealed(db, 3)
    with db.write() as tx:
        tx.execute("CREATE TABLE audit_leaves_new (leaf BIGINT PRIMARY KEY, seq BIGINT NOT NULL)")
        tx.execute("INSERT INTO audit_leaves_new (leaf, seq) SELECT leaf, seq FROM audit_leaves")
        tx.execute("DROP TABLE audit_leaves")
        tx.execute("ALTER TABLE audit_leaves_new RENAME TO audit_leaves")
        tx.execute("UPDATE audit_leaves SET seq = 1 WHERE leaf = 1")
    result = store.verify()
    assert (result.ok, result.first_broken, result.problem) == (
        False,
        1,
        "leaf 1 (entry 1) is out of order or was added",
    )


def test_a_seal_takes_at_most_50_000_entries_by_default(db: Database) -> None:
    store = SqlAuditStore(db)
    with db.write() as tx:
        store.append_many(tx, [NewEntry(i, "system", "a", "s", "r", {}) for i in range(50_001)])
    upto = store.settled()
    with db.write() as tx:
        before, after = store.seal(tx, upto=upto)
    # The tree then holds up to the last entry taken, not up to `upto`: the next seal goes on.
    assert (before.size, after.size, after.sealed_seq) == (0, 50_000, 50_000)
    assert store.unsealed() == 1


def _append_one(db: Database, store: SqlAuditStore, subject: str) -> int:
    """Append one entry in this thread; the shard it went to."""
    with db.write() as tx:
        return store.append_many(tx, [NewEntry(1, "system", "a", subject, "r", {})])[0].shard


class _Locker:
    """Another connection (another thread) holding some shards' head rows locked."""

    def __init__(self, db: Database, shards: list[int]) -> None:
        self.held, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(db, shards))
        self.thread.start()
        assert self.held.wait(10)

    def _run(self, db: Database, shards: list[int]) -> None:
        with db.write() as tx:
            for shard in shards:
                tx.all("SELECT shard FROM audit_shards WHERE shard = ? FOR UPDATE", (shard,))
            self.held.set()
            self.release.wait(10)

    def done(self) -> None:
        self.release.set()
        self.thread.join()


def test_each_thread_appends_to_its_own_shard_else_the_next_free_one(db: Database) -> None:
    store = SqlAuditStore(db)
    if db.dialect == "sqlite":  # one writer: every chain is shard 0's
        assert {_append_one(db, store, "a"), _append_one(db, store, "b")} == {0}
        return
    seen: list[tuple[int, list[int]]] = []

    def appender() -> None:
        # A new thread takes the next shard in turn as its own.
        own = audit._own_shard()
        went = [_append_one(db, store, "a"), _append_one(db, store, "b")]
        locker = _Locker(db, [own, (own + 1) % SHARDS])
        try:
            went.append(_append_one(db, store, "c"))
        finally:
            locker.done()
        went.append(_append_one(db, store, "d"))
        seen.append((own, went))

    for _ in range(2):  # two turns: a shard order that only agrees for some shards shows
        thread = threading.Thread(target=appender)
        thread.start()
        thread.join(30)
    assert len(seen) == 2 and seen[1][0] == (seen[0][0] + 1) % SHARDS  # threads take turns
    for own, went in seen:
        assert went == [own, own, (own + 2) % SHARDS, own]
    assert store.verify().ok


def test_with_every_shard_taken_an_append_waits_for_its_own(db: Database) -> None:
    if db.dialect == "sqlite":
        pytest.skip("SQLite has one writer and one shard")
    store = SqlAuditStore(db)
    went: list[tuple[int, int]] = []  # (the appender's own shard, the shard it appended to)

    def appender() -> None:
        went.append((audit._own_shard(), _append_one(db, store, "x")))

    locker = _Locker(db, list(range(SHARDS)))
    thread = threading.Thread(target=appender)
    try:
        thread.start()
        thread.join(0.5)
        assert thread.is_alive() and went == []  # waiting, not written elsewhere or failed
    finally:
        locker.done()
    thread.join(10)
    assert len(went) == 1 and went[0][0] == went[0][1]
    assert store.verify().ok
