"""Audit trail conformance, the Merkle tree (docs/audit.md, "Shards and the tree"): sealing,
proofs an outsider can check with RFC 9162's algorithms, what `verify` finds when the tree or
the entries under it are changed, and the migration of a trail written before the tree."""

from __future__ import annotations

import json
import secrets
import threading
from datetime import timedelta

import pytest

from regionlock.domain import merkle
from regionlock.services.audit_tree import AuditSealer, AuditTree
from regionlock.storage import Database, Stores
from regionlock.storage import audit as audit_module
from regionlock.storage.audit import (
    NODE_LEVEL,
    AuditHead,
    NewEntry,
    SqlAuditStore,
    TreeHead,
    content_digest,
    entry_hash,
    entry_hash_v2,
    entry_hash_v3,
    leaf_of,
)
from regionlock.storage.migrate import available, migrate


def add(db: Database, store: SqlAuditStore, n: int, *, group: int = 1) -> None:
    for i in range(0, n, group):
        with db.write() as tx:
            store.append_many(
                tx,
                [
                    NewEntry(1_700_000_000_000 + j, "system", "device.lock", f"dev_{j}", "r", {})
                    for j in range(i, min(n, i + group))
                ],
            )


def seal(db: Database, store: SqlAuditStore, limit: int = 50_000, *, planned: bool = True) -> int:
    """Seal every settled entry, as the service does (`planned`: each step worked out from a
    snapshot first); the tree's size."""
    upto = store.settled()
    while True:
        plan = store.plan_seal(upto=upto, limit=limit) if planned else None
        with db.write() as tx:
            before, after = store.seal(tx, upto=upto, limit=limit, plan=plan)
        if after.sealed_seq >= upto or after.size == before.size:
            return after.size


def expected_root(store: SqlAuditStore, size: int) -> bytes:
    """RFC 9162's root of the first `size` entries in number order, from nothing but them."""
    return merkle.root([leaf_of(e.hash) for e in store.entries(limit=size)])


def keep_head(db: Database, store: SqlAuditStore) -> TreeHead:
    """A tree head as the service keeps one (the signature is not the store's business)."""
    tree = store.tree()
    head = TreeHead(tree.size, tree.root.hex(), 1, "token")
    with db.write() as tx:
        store.add_tree_head(tx, head)
    return head


def test_sealing_puts_the_entries_in_number_order_into_one_tree(db: Database) -> None:
    store = SqlAuditStore(db)
    assert store.tree().size == 0 and store.tree().root == merkle.EMPTY_ROOT
    add(db, store, 5)
    assert seal(db, store) == 5
    add(db, store, 3, group=3)
    assert seal(db, store) == 8
    assert store.tree().root == expected_root(store, 8)
    assert store.verify().ok
    assert seal(db, store) == 8  # nothing new: the same tree


def test_sealing_in_small_steps_gives_the_same_tree(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 600, group=100)
    assert seal(db, store, limit=37) == 600
    assert store.tree().root == expected_root(store, 600)
    with db.read() as tx:
        nodes = tx.all("SELECT level, idx FROM audit_nodes ORDER BY level, idx")
    # 600 leaves: two perfect subtrees of 256 (level 8) and one of 512 (level 9).
    assert [tuple(r) for r in nodes] == [(NODE_LEVEL, 0), (NODE_LEVEL, 1), (NODE_LEVEL + 1, 0)]
    assert store.verify().ok


def test_every_entry_has_an_inclusion_proof_that_rfc9162_accepts(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 300, group=50)
    seal(db, store)
    heads = {}
    for size in (1, 7, 256, 257, 300):
        heads[size] = expected_root(store, size)
    for e in store.entries(limit=300):
        for size, root in heads.items():
            proof = store.inclusion_proof(e.seq, size)
            if e.seq > size:  # numbers have no gaps here: entry n is leaf n - 1
                assert proof is None
                continue
            assert proof is not None and proof.leaf == e.seq - 1
            path = [bytes.fromhex(h) for h in proof.path]
            assert merkle.verify_inclusion(proof.leaf, size, leaf_of(e.hash), path, root)
            assert not merkle.verify_inclusion(proof.leaf, size, leaf_of("00" * 32), path, root)


def test_every_later_tree_has_a_consistency_proof_from_every_earlier_one(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 270, group=90)
    seal(db, store)
    sizes = [1, 2, 3, 8, 100, 255, 256, 257, 270]
    roots = {n: expected_root(store, n) for n in sizes}
    for old in sizes:
        for new in sizes:
            if old > new:
                with pytest.raises(ValueError):
                    store.consistency_proof(old, new)
                continue
            proof = [bytes.fromhex(h) for h in store.consistency_proof(old, new)]
            assert merkle.verify_consistency(old, new, roots[old], roots[new], proof)
    with pytest.raises(ValueError, match="holds 270 leaves"):
        store.consistency_proof(1, 271)


def test_a_proof_is_not_given_for_a_tree_the_log_does_not_hold(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 3)
    assert seal(db, store) == 3
    with pytest.raises(ValueError, match="holds 3 leaves"):
        store.inclusion_proof(1, 4)
    add(db, store, 1)  # not sealed yet
    assert store.inclusion_proof(4, 3) is None


def test_concurrent_appenders_and_sealers_make_one_tree(db: Database) -> None:
    store = SqlAuditStore(db)
    stop = threading.Event()

    def sealer(planned: bool) -> None:
        while not stop.is_set():
            seal(db, SqlAuditStore(db), planned=planned)

    sealers = [threading.Thread(target=sealer, args=(p,)) for p in (True, False)]
    writers = [
        threading.Thread(target=add, args=(db, store, 60), kwargs={"group": 3}) for _ in range(3)
    ]
    for t in sealers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in sealers:
        t.join()
    assert seal(db, store) == 180
    with db.read() as tx:
        leaves = [int(r[0]) for r in tx.all("SELECT seq FROM audit_leaves ORDER BY leaf")]
    assert leaves == sorted(leaves) == [e.seq for e in store.entries()]
    assert store.verify().ok


def test_a_fresh_plan_is_stored_without_reading_the_trail_again(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the writer holds while a seal is stored: no read of the entries, no hashing."""
    store = SqlAuditStore(db)
    add(db, store, 5)
    upto = store.settled()
    plan = store.plan_seal(upto=upto)

    def no_reading(*args: object) -> None:
        raise AssertionError("the entries were read again under the tree's lock")

    monkeypatch.setattr(audit_module, "_unsealed_rows", no_reading)
    with db.write() as tx:
        before, after = store.seal(tx, upto=upto, plan=plan)
    assert (before.size, after.size, after.sealed_seq) == (0, 5, upto)
    assert after.root == expected_root(store, 5) == store.tree().root
    assert store.verify().ok


def test_a_plan_another_sealer_overtook_is_worked_out_again(db: Database) -> None:
    """A plan of a tree that has grown since (another sealer, another node) is not stored:
    the seal reads and hashes again under the lock, and no leaf is added twice."""
    store = SqlAuditStore(db)
    add(db, store, 7)
    upto = store.settled()
    stale = store.plan_seal(upto=upto)
    assert seal(db, store, limit=3, planned=False) == 7  # in steps of 3: 3, 6, 7
    add(db, store, 2)
    with db.write() as tx:
        before, after = store.seal(tx, upto=upto, plan=stale)
    assert (before.size, after.size) == (7, 7)  # nothing new up to `upto`
    later = store.settled()
    stale = store.plan_seal(upto=later)
    with db.write() as tx:  # a step of another sealer in between
        store.seal(tx, upto=later, limit=1)
    with db.write() as tx:
        before, after = store.seal(tx, upto=later, plan=stale)
    assert (before.size, after.size) == (8, 9)
    with db.read() as tx:
        leaves = [int(r[0]) for r in tx.all("SELECT seq FROM audit_leaves ORDER BY leaf")]
    assert leaves == [e.seq for e in store.entries()]
    assert after.root == expected_root(store, 9)
    assert store.verify().ok


# -- what verify finds -------------------------------------------------------------------------


def test_a_tail_cut_with_its_head_rolled_back_shows_in_the_tree(db: Database) -> None:
    """Entries cut off the end and their shard's head moved back: the chains agree again, but
    the tree still has leaves for the entries."""
    store = SqlAuditStore(db)
    add(db, store, 6)
    seal(db, store)
    fourth = store.entries(after=3, limit=1)[0]
    with db.write() as tx:
        tx.execute("DELETE FROM audit WHERE seq > 4")
        tx.execute(
            "UPDATE audit_shards SET seq = 4, hash = ? WHERE shard = ?", (fourth.hash, fourth.shard)
        )
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, 5)
    assert result.problem == "leaf 4 is entry 5, which is not in the trail"


def test_a_cut_with_the_tree_cut_back_too_shows_against_a_signed_or_kept_head(
    db: Database,
) -> None:
    store = SqlAuditStore(db)
    add(db, store, 6)
    seal(db, store)
    kept = keep_head(db, store)
    fourth = store.entries(after=3, limit=1)[0]
    with db.write() as tx:
        tx.execute("DELETE FROM audit WHERE seq > 4")
        tx.execute(
            "UPDATE audit_shards SET seq = 4, hash = ? WHERE shard = ?", (fourth.hash, fourth.shard)
        )
        tx.execute("DELETE FROM audit_leaves WHERE leaf >= 4")
        tx.execute("DELETE FROM audit_tree")
        tx.execute(
            "INSERT INTO audit_tree (one, size, sealed_seq, root, frontier) VALUES (1, 0, 0, ?,"
            " '[]')",
            (merkle.EMPTY_ROOT.hex(),),
        )
        tx.execute("DELETE FROM audit_leaves")
    seal(db, store)
    result = store.verify()
    assert not result.ok
    assert "fewer than the signed tree head of 6 leaves" in result.problem
    # Someone who also deletes the signed heads leaves a trail that checks out on its own...
    with db.write() as tx:
        tx.execute("DELETE FROM audit_tree_heads")
    assert store.verify().ok
    # ...but not against the head kept outside.
    result = store.verify(against=kept)
    assert not result.ok and "fewer than the kept tree head of 6 leaves" in result.problem


def test_reordered_leaves_are_found(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 4)
    seal(db, store)
    with db.write() as tx:
        tx.execute("UPDATE audit_leaves SET seq = -seq WHERE leaf IN (1, 2)")
        tx.execute("UPDATE audit_leaves SET seq = 3 WHERE leaf = 1")
        tx.execute("UPDATE audit_leaves SET seq = 2 WHERE leaf = 2")
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, 2)
    assert "leaf 2 (entry 2) is out of order" in result.problem


def forge(db: Database, seq: int, shard: int, prev: str) -> str:
    """Write entry `seq` into `shard` after `prev` as someone with the database would: a v3
    entry whose hashes all check out, the shard's head moved to it. Its hash."""
    salt = secrets.token_hex(16)
    content = content_digest(salt, "cli:x", "d", "r", {})
    digest = entry_hash_v3(seq, shard, seq, "device.unlock", content, prev)
    with db.write() as tx:
        tx.execute(
            "INSERT INTO audit (seq, at, actor, action, subject, reason, details, prev_hash, hash,"
            " content_digest, salt, shard, fmt) VALUES (?, ?, 'cli:x', 'device.unlock', 'd', 'r',"
            " '{}', ?, ?, ?, ?, ?, 3)",
            (seq, seq, prev, digest, content, salt, shard),
        )
        tx.execute(
            "UPDATE audit_shards SET seq = ?, hash = ? WHERE shard = ?", (seq, digest, shard)
        )
        if db.dialect == "postgresql":
            tx.execute(
                "SELECT setval('audit_seq', GREATEST(?, (SELECT last_value FROM audit_seq)))",
                (seq,),
            )
    return digest


def test_an_entry_slipped_in_below_the_sealed_ones_is_found(db: Database) -> None:
    """Entries 1, 2 and 4 (3 rolled back, as happens on PostgreSQL) sealed; then an entry 3
    put in on a shard of its own, its chain and head all consistent: the tree does not hold it."""
    store = SqlAuditStore(db)
    prev = forge(db, 1, 0, "")
    prev = forge(db, 2, 0, prev)
    forge(db, 4, 0, prev)
    assert seal(db, store) == 3
    assert store.verify().ok
    forge(db, 3, 15, "")
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, 3)
    assert result.problem == (
        "entry 3 was sealed (the tree holds up to entry 4) but is not in the tree: its leaf was"
        " removed, or the entry put in later"
    )


def test_a_tampered_subtree_root_and_tree_row_are_found(db: Database) -> None:
    store = SqlAuditStore(db)
    add(db, store, 300, group=100)
    seal(db, store)
    with db.write() as tx:
        tx.execute(
            "UPDATE audit_nodes SET hash = ? WHERE level = ? AND idx = 0", ("00" * 32, NODE_LEVEL)
        )
    result = store.verify()
    assert not result.ok
    assert result.problem == (
        "the stored root of leaves 0 to 255 is not the one their entries give: proofs built with"
        " it would fail"
    )
    with db.write() as tx:
        tx.execute("DELETE FROM audit_nodes")
    assert store.verify().ok  # the stored roots only save work: proofs hash the leaves instead
    proof = store.inclusion_proof(1, 300)
    assert proof is not None
    root = expected_root(store, 300)
    path = [bytes.fromhex(h) for h in proof.path]
    assert merkle.verify_inclusion(0, 300, leaf_of(proof.entry_hash), path, root)
    with db.write() as tx:
        tx.execute("UPDATE audit_tree SET frontier = ?", (json.dumps(["00" * 32] * 4),))
    result = store.verify()
    assert not result.ok and result.problem == "the tree row's root is not the one its leaves give"


def test_a_rewrite_under_a_kept_tree_head_shows_against_it(db: Database) -> None:
    """Everything recomputed by someone with the database: chains, heads, leaves, tree. Only
    the root an outsider kept gives it away."""
    store = SqlAuditStore(db)
    add(db, store, 4)
    seal(db, store)
    kept = keep_head(db, store)
    entries = store.entries()
    with db.write() as tx:
        for table in ("audit", "audit_leaves", "audit_nodes", "audit_tree_heads"):
            tx.execute(f"DELETE FROM {table}")
        tx.execute("UPDATE audit_shards SET seq = 0, hash = ''")
        tx.execute(
            "UPDATE audit_tree SET size = 0, sealed_seq = 0, root = ?, frontier = '[]'",
            (merkle.EMPTY_ROOT.hex(),),
        )
    add(db, store, len(entries))
    seal(db, store)
    assert store.verify().ok
    result = store.verify(against=kept)
    assert not result.ok
    assert result.problem.startswith(f"the kept tree head of 4 leaves has root {kept.root[:12]}")


# -- a trail from before the tree --------------------------------------------------------------


def test_a_trail_written_before_the_tree_migrates_and_still_verifies(unmigrated: Database) -> None:
    """Entries in formats 1 and 2 and the old head row, as migration 13 left them: after the
    migration the old chain is shard 0's, a head kept before still verifies, the tree seals
    them, and new entries join."""
    db = unmigrated
    (tree,) = [m.version for m in available(db.dialect) if m.name == "audit_shards"]
    before_tree = tree - 1
    migrate(db, upto=before_tree)
    prev, rows = "", []
    for seq in range(1, 6):
        if seq <= 2:  # format 1
            digest = entry_hash(seq, seq, "cli:a", "device.lock", f"d{seq}", "r", {}, prev)
            rows.append(
                (seq, seq, "cli:a", "device.lock", f"d{seq}", "r", "{}", prev, digest, None, None)
            )
        else:  # format 2
            salt = secrets.token_hex(16)
            content = content_digest(salt, "cli:a", f"d{seq}", "r", {})
            digest = entry_hash_v2(seq, seq, "device.lock", content, prev)
            rows.append(
                (
                    seq,
                    seq,
                    "cli:a",
                    "device.lock",
                    f"d{seq}",
                    "r",
                    "{}",
                    prev,
                    digest,
                    content,
                    salt,
                )
            )
        prev = digest
    with db.write() as tx:
        tx.executemany(
            "INSERT INTO audit (seq, at, actor, action, subject, reason, details, prev_hash, hash,"
            " content_digest, salt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        tx.execute("UPDATE audit_head SET seq = 5, hash = ? WHERE one = 1", (prev,))
    kept_before = AuditHead(5, prev)
    migrate(db)
    store = SqlAuditStore(db)
    assert store.verify().ok and store.verify(against=kept_before).ok
    assert [(e.shard, e.fmt) for e in store.entries()][:3] == [(0, 2), (0, 2), (0, 2)]
    add(db, store, 3)
    assert seal(db, store) == 8
    assert store.tree().root == expected_root(store, 8)
    result = store.verify(against=kept_before)
    assert (result.ok, result.checked) == (True, 8)
    # The first new entry in shard 0 carries the old chain on.
    first_new = store.entries(after=5, limit=1)[0]
    if first_new.shard == 0:
        assert first_new.prev_hash == prev


# -- the sealer of each node ---------------------------------------------------------------------


def test_a_lone_sealer_seals_every_round(db: Database) -> None:
    store = SqlAuditStore(db)
    sealer = AuditSealer(AuditTree.of(Stores.on(db)))
    for n in (3, 5):
        add(db, store, n)
        assert sealer.round() is True
        assert store.tree().sealed_seq == store.settled()
    assert store.unsealed() == 0


def test_nodes_sealers_take_turns_and_seal_everything(db: Database) -> None:
    """Two nodes' sealers on one store: once each has looked, one seals each time both have
    had a round, and every entry is sealed all the same."""
    store = SqlAuditStore(db)
    a, b = (AuditSealer(AuditTree.of(Stores.on(db))) for _ in range(2))
    a.round()
    b.round()
    sealed = 0
    for _ in range(6):
        add(db, store, 4)
        sealed += [a.round(), b.round()].count(True)
        assert store.unsealed() == 0
    assert sealed == 6


def test_a_sealer_takes_over_when_the_others_stop(db: Database) -> None:
    """A sealer that skipped for another node's seal seals again once nobody else has sealed
    since it looked, and goes back to skipping while the other seals."""
    store = SqlAuditStore(db)
    a, b = (AuditSealer(AuditTree.of(Stores.on(db))) for _ in range(2))
    a.round()
    b.round()
    add(db, store, 3)
    assert a.round() is True
    assert b.round() is False  # a sealed since b looked
    add(db, store, 3)
    assert b.round() is True  # nobody sealed since b looked
    add(db, store, 5)
    assert a.round() is False  # a sees b's seal
    assert a.round() is True  # b has stopped: a takes over
    assert store.unsealed() == 0
    assert store.tree().size == len(store.entries(limit=1_000))


def test_a_skipping_sealer_still_signs_a_head_that_is_due(db: Database) -> None:
    """Signing does not depend on whose turn it is: a node that skips sealing signs a head
    of the tree it read once one is due."""
    store = SqlAuditStore(db)
    a = AuditSealer(AuditTree.of(Stores.on(db)), sign_every=timedelta(hours=1))
    b = AuditSealer(AuditTree.of(Stores.on(db)), sign_every=timedelta(0))
    a.round()
    b.round()
    add(db, store, 4)
    a.tree.seal(sign_after=timedelta(hours=1))  # a seals, and its head is not due yet
    heads = len(store.tree_heads())
    assert b.round() is False
    assert len(store.tree_heads()) == heads + 1
    assert store.tree_heads(limit=1)[0].size == store.tree().size
