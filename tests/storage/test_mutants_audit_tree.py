"""Found by mutation testing of storage/audit.py's shards and tree (docs/test-quality.md,
"storage/audit.py, shards and the tree"): each test below failed on a mutant that the tests of
test_audit.py, test_audit_tree.py and test_audit_redaction.py let live. Both stores."""

from __future__ import annotations

import threading

import pytest
from test_audit_tree import add, expected_root, forge, seal

from regionlock.domain import merkle
from regionlock.storage import Database
from regionlock.storage.audit import (
    NODE_LEVEL,
    AuditHead,
    NewEntry,
    SqlAuditStore,
    TreeHead,
    entry_hash_v2,
    leaf_of,
)


def heads(db: Database, store: SqlAuditStore, *sizes_and_roots: tuple[int, str]) -> None:
    with db.write() as tx:
        for size, root in sizes_and_roots:
            store.add_tree_head(tx, TreeHead(size, root, 1_000 + size, f"token-{size}"))


def test_signed_heads_are_kept_once_per_size_and_read_newest_first(db: Database) -> None:
    store = SqlAuditStore(db)
    assert store.tree_heads() == [] and store.tree_head(0) is None
    heads(db, store, (0, "aa"), (2, "bb"), (1, "cc"))
    heads(db, store, (2, "dd"))  # another node signed the same size: the first stays
    assert store.tree_heads() == [
        TreeHead(2, "bb", 1_002, "token-2"),
        TreeHead(1, "cc", 1_001, "token-1"),
        TreeHead(0, "aa", 1_000, "token-0"),
    ]
    assert store.tree_heads(limit=1) == [TreeHead(2, "bb", 1_002, "token-2")]
    assert store.tree_head(1) == TreeHead(1, "cc", 1_001, "token-1")
    assert store.tree_head(3) is None
    with pytest.raises(ValueError, match="a kept tree head is signed"), db.write() as tx:
        store.add_tree_head(tx, TreeHead(3, "ee"))


def test_unsealed_counts_what_the_sealer_has_not_taken(db: Database) -> None:
    store = SqlAuditStore(db)
    assert store.unsealed() == 0
    add(db, store, 3)
    assert store.unsealed() == 3
    seal(db, store)
    add(db, store, 2)
    assert store.unsealed() == 2


def test_settled_is_the_last_number_taken(db: Database) -> None:
    store = SqlAuditStore(db)
    assert store.settled() == 0
    add(db, store, 3)
    assert store.settled() == 3
    with pytest.raises(RuntimeError), db.write() as tx:
        store.append_many(tx, [NewEntry(1, "a", "b", "c", "d", {})])
        raise RuntimeError
    # PostgreSQL's sequence keeps the number the rolled-back append took; SQLite gives it back.
    assert store.settled() == (3 if db.dialect == "sqlite" else 4)


def test_a_seal_past_rolled_back_numbers_moves_on_and_says_what_it_sealed(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 5)
    with db.write() as tx:
        before, after = store.seal(tx, upto=5, limit=2)
    assert (before.size, before.sealed_seq) == (0, 0)
    assert (after.size, after.sealed_seq) == (2, 2)  # the limit: up to the last one taken
    with db.write() as tx:
        before, after = store.seal(tx, upto=9, limit=10)
    assert (after.size, after.sealed_seq, after.root) == (5, 9, expected_root(store, 5))
    with db.write() as tx:
        before, after = store.seal(tx, upto=12, limit=10)  # 10 to 12 never committed
    assert (after.size, after.sealed_seq, after.frontier) == (5, 12, before.frontier)
    assert store.tree().sealed_seq == 12


def test_two_sealers_at_once_never_both_grow_the_tree(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 200, group=50)
    errors: list[BaseException] = []

    def sealer() -> None:
        try:
            for _ in range(5):
                seal(db, SqlAuditStore(db), limit=7)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sealer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert seal(db, store) == 200 and store.verify().ok


def test_a_proof_says_which_entry_and_tree_it_is_about(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 4)
    seal(db, store)
    proof = store.inclusion_proof(3, 4)
    assert proof is not None and (proof.seq, proof.leaf, proof.size) == (3, 2, 4)
    for call in (lambda: store.consistency_proof(0, 4), lambda: store.inclusion_proof(1, 0)):
        with pytest.raises(ValueError, match=r"^(no consistency proof from 0 to 4|the tree holds)"):
            call()


def test_proofs_use_the_stored_subtree_roots_and_do_without_them(db: Database) -> None:
    """Leaf 0's proof in a tree of 600 needs the root of leaves 256-511, a stored one."""
    store = SqlAuditStore(db)
    add(db, store, 600, group=200)
    seal(db, store)
    root = expected_root(store, 600)
    first = store.entries(limit=1)[0]

    def checks() -> bool:
        proof = store.inclusion_proof(first.seq, 600)
        assert proof is not None
        path = [bytes.fromhex(h) for h in proof.path]
        return merkle.verify_inclusion(0, 600, leaf_of(first.hash), path, root)

    assert checks()
    with db.write() as tx:
        tx.execute(
            "UPDATE audit_nodes SET hash = ? WHERE level = ? AND idx = 1", ("00" * 32, NODE_LEVEL)
        )
    assert not checks()  # the stored root was used
    with db.write() as tx:
        tx.execute("DELETE FROM audit_nodes")
    assert checks()  # hashed from its leaves instead
    with db.write() as tx:
        tx.execute("DELETE FROM audit_leaves WHERE leaf BETWEEN 300 AND 310")
    with pytest.raises(ValueError, match=r"^leaves 256 to 511 of the tree are not all there$"):
        store.inclusion_proof(first.seq, 600)


def test_a_verified_trail_says_which_tree_it_checked(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 3)
    seal(db, store)
    result = store.verify()
    assert result.ok and result.tree == store.tree() and result.tree.size == 3


def test_the_tree_row_is_required(db: Database) -> None:
    store = SqlAuditStore(db)
    with db.write() as tx:
        tx.execute("DELETE FROM audit_tree")
    with pytest.raises(AssertionError, match=r"^audit_tree row missing: run migrations$"):
        store.tree()


def test_an_old_entry_moved_to_another_shard_is_found_where_it_is(db: Database) -> None:
    """A format-2 entry's hash does not commit to its shard; its place in shard 0 is checked
    apart."""
    store = SqlAuditStore(db)
    prev = forge(db, 1, 0, "")
    forge(db, 2, 0, prev)
    with db.write() as tx:
        tx.execute("UPDATE audit SET fmt = 2 WHERE seq = 1")
    # A v2 entry with a v3 hash is altered anyway; recompute it as v2 first.
    first = store.entries(limit=1)[0]
    assert first.content_digest is not None
    v2 = entry_hash_v2(1, first.at, first.action, first.content_digest, "")
    with db.write() as tx:
        tx.execute("UPDATE audit SET hash = ?, shard = 3 WHERE seq = 1", (v2,))
    result = store.verify()
    assert (result.ok, result.first_broken, result.checked) == (False, 1, 0)
    assert result.problem == "entry 1 does not start shard 3's chain (it was moved?)"


def test_a_kept_head_of_an_entry_that_never_was_is_refused(db: Database) -> None:
    store = SqlAuditStore(db)
    prev = forge(db, 1, 0, "")
    prev = forge(db, 2, 0, prev)
    forge(db, 4, 0, prev)
    result = store.verify(against=AuditHead(3, "ab" * 32))
    assert (result.ok, result.first_broken) == (False, 3)
    assert result.problem == "the kept head's entry 3 is not in the trail"


def test_signed_heads_are_checked_at_their_own_size(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 8)
    seal(db, store)
    good = {n: expected_root(store, n).hex() for n in (0, 1, 3, 5, 8)}
    heads(db, store, *good.items())
    assert store.verify().ok
    for size in (0, 3):
        with db.write() as tx:
            tx.execute("UPDATE audit_tree_heads SET root = ? WHERE size = ?", ("ab" * 32, size))
        result = store.verify()
        assert (result.ok, result.checked) == (False, 8)
        assert result.problem == (
            f"the signed tree head of {size} leaves has root abababababab..., but the entries give"
            f" {good[size][:12]}...: the trail was rewritten within the tree's first {size} leaves"
        )
        with db.write() as tx:
            tx.execute("UPDATE audit_tree_heads SET root = ? WHERE size = ?", (good[size], size))
    heads(db, store, (9, "cd" * 32))
    assert store.verify().problem == (
        "the tree holds 8 leaves, fewer than the signed tree head of 9 leaves: entries were"
        " removed and the tree cut back with them"
    )


def test_what_is_wrong_with_the_stored_tree_is_said(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 600, group=300)
    seal(db, store)
    cases = [
        (
            "UPDATE audit_nodes SET hash = '00' WHERE level = 8 AND idx = 1",
            "the stored root of leaves 256 to 511 is not the one their entries give: proofs"
            " built with it would fail",
        ),
        (
            "INSERT INTO audit_nodes (level, idx, hash) VALUES (8, 50, 'ab')",
            "a stored subtree root (8, 50) has no leaves",
        ),
        (
            "DELETE FROM audit_leaves WHERE leaf = 599",
            "the tree row says 600 leaves but 599 are stored: leaves were removed or added",
        ),
        ("DELETE FROM audit_leaves WHERE leaf = 17", "leaf 17 of the tree is missing"),
    ]
    for change, problem in cases:
        snapshot = _copy(db)
        with db.write() as tx:
            tx.execute(change)
        result = store.verify()
        assert (result.ok, result.checked, result.problem) == (False, 600, problem), change
        _restore(db, snapshot)
        assert store.verify().ok


def _copy(db: Database) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with db.read() as tx:
        return tx.all("SELECT leaf, seq FROM audit_leaves"), tx.all(
            "SELECT level, idx, hash FROM audit_nodes"
        )


def _restore(
    db: Database, snapshot: tuple[list[tuple[object, ...]], list[tuple[object, ...]]]
) -> None:
    leaves, nodes = snapshot
    with db.write() as tx:
        tx.execute("DELETE FROM audit_leaves")
        tx.execute("DELETE FROM audit_nodes")
        tx.executemany("INSERT INTO audit_leaves (leaf, seq) VALUES (?, ?)", leaves)
        tx.executemany("INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)


def test_a_trail_longer_than_a_page_is_walked_and_its_first_page_checked(db: Database) -> None:
    """More than 5,000 entries: the walk and the tree check read in pages."""
    store = SqlAuditStore(db)
    with db.write() as tx:
        store.append_many(tx, [NewEntry(i, "system", "a", "s", "r", {}) for i in range(5_100)])
    seal(db, store)
    result = store.verify()
    assert (result.ok, result.checked) == (True, 5_100)
    with db.write() as tx:
        tx.execute("UPDATE audit_nodes SET hash = '00' WHERE level = ? AND idx = 0", (NODE_LEVEL,))
    assert store.verify().problem.startswith("the stored root of leaves 0 to 255 ")
