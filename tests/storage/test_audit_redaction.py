"""Redaction of audit entries (docs/audit.md, "Redaction"): a redacted chain still verifies,
and every tampering `verify` caught before a redaction it still catches after one: an entry
altered, deleted, reordered or cut off the end, a redacted entry's remaining fields altered, a
redaction that no erasure recorded. Entries written before format v2 keep verifying."""

from __future__ import annotations

import hashlib
import re

import pytest

from regionlock.storage import Database
from regionlock.storage.audit import (
    ERASE_ACTION,
    NewEntry,
    SqlAuditStore,
    content_digest,
    entry_hash,
    entry_hash_v2,
    entry_hash_v3,
)


def add(db: Database, store: SqlAuditStore, subjects: list[str]) -> None:
    for i, subject in enumerate(subjects):
        with db.write() as tx:
            store.append(
                tx,
                at=1_700_000_000_000 + i,
                actor=f"device:{subject}",
                action="checkin.verdict",
                subject=subject,
                reason="policy.no_match",
                details={"country": "AE", "n": i},
            )


def erase(db: Database, store: SqlAuditStore, device: str) -> list[int]:
    """As the erasure does: redact what names `device`, record it in a new entry."""
    with db.write() as tx:
        seqs = store.redact(tx, [e.seq for e in store.naming(tx, device)], "era_test")
        store.append(
            tx,
            at=1_800_000_000_000,
            actor="cli:ana",
            action=ERASE_ACTION,
            subject="erasure:era_test",
            reason="owner's request",
            details={"receipt": "era_test", "redacted": seqs},
        )
    return seqs


@pytest.fixture
def redacted(db: Database) -> tuple[SqlAuditStore, list[int]]:
    """Entries 1-6 about three devices, dev_b's (2 and 5) redacted, the erasure entry 7."""
    store = SqlAuditStore(db)
    add(db, store, ["dev_a", "dev_b", "dev_c", "dev_a", "dev_b", "dev_c"])
    seqs = erase(db, store, "dev_b")
    assert seqs == [2, 5]
    return store, seqs


def test_a_redacted_chain_verifies_and_shows_nothing_of_what_was_removed(
    db: Database, redacted: tuple[SqlAuditStore, list[int]]
) -> None:
    store, seqs = redacted
    result = store.verify()
    assert (result.ok, result.checked) == (True, 7)
    for e in store.entries():
        if e.seq in seqs:
            assert (e.actor, e.subject, e.reason, dict(e.details)) == ("", "", "", {})
            assert e.salt is None and e.redacted == "era_test"
            assert e.to_json()["redacted"] == "era_test"
        else:
            assert e.redacted is None and "redacted" not in e.to_json()
    with db.read() as tx:
        assert store.naming(tx, "dev_b") == []
    # The head kept before the redaction still holds: no hash changed.
    assert store.verify(against=result.head).ok


@pytest.mark.parametrize(
    ("sql", "broken"),
    [
        ("UPDATE audit SET reason = 'nothing to see' WHERE seq = 3", 3),  # altered
        ("DELETE FROM audit WHERE seq = 4", 4),  # deleted
        ("UPDATE audit SET at = at + 1 WHERE seq = 5", 5),  # a redacted entry's time
        ("UPDATE audit SET action = 'device.lock' WHERE seq = 2", 2),  # ... its action
        ("UPDATE audit SET content_digest = hash WHERE seq = 2", 2),  # ... its digest
        ("UPDATE audit SET subject = 'dev_z' WHERE seq = 5", 5),  # content put back in
        ("UPDATE audit SET details = '{\"redacted\": []}' WHERE seq = 7", 7),  # the claim
        ("DELETE FROM audit WHERE seq = 7", 7),  # the erasure entry cut off the end
    ],
)
def test_tampering_after_a_redaction_is_still_detected(
    db: Database, redacted: tuple[SqlAuditStore, list[int]], sql: str, broken: int
) -> None:
    store, _ = redacted
    with db.write() as tx:
        tx.execute(sql)
    result = store.verify()
    if sql.startswith("DELETE") and broken == 4 and db.dialect == "postgresql":
        broken = 5  # numbers may have gaps there: the entry after the hole is named
    assert (result.ok, result.first_broken) == (False, broken), result.problem


def test_reordered_entries_are_still_detected(
    db: Database, redacted: tuple[SqlAuditStore, list[int]]
) -> None:
    store, _ = redacted
    with db.write() as tx:
        tx.execute("UPDATE audit SET seq = 100 WHERE seq = 2")
        tx.execute("UPDATE audit SET seq = 2 WHERE seq = 3")
        tx.execute("UPDATE audit SET seq = 3 WHERE seq = 100")
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, 2)


def test_a_redaction_no_erasure_records_is_refused(
    db: Database, redacted: tuple[SqlAuditStore, list[int]]
) -> None:
    """Emptying an entry and marking it redacted, without a later erasure entry that lists
    it, would hide what it said: `verify` names it."""
    store, _ = redacted
    with db.write() as tx:
        assert store.redact(tx, [3], "era_forged") == [3]
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, 3)
    assert "no later entry records the redaction" in result.problem
    # Nor may an entry be emptied without the mark: its digest then shows it.
    with db.write() as tx:
        tx.execute("UPDATE audit SET redacted = NULL WHERE seq = 3")
    assert store.verify().first_broken == 3


def test_entries_written_before_format_v2_verify_and_are_not_redacted(db: Database) -> None:
    """A v1 entry (its hash over every field, no digest: a trail from before migration 0010)
    verifies as before, chained with v2 entries; `redact` leaves it as it is."""
    store = SqlAuditStore(db)
    fields = (1, 1_600_000_000_000, "device:dev_b", "checkin.verdict", "dev_b", "r", {"n": 1}, "")
    digest = entry_hash(*fields)
    with db.write() as tx:
        tx.execute(
            "INSERT INTO audit (seq, at, actor, action, subject, reason, details, prev_hash,"
            " hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*fields[:6], '{"n": 1}', "", digest),
        )
        tx.execute("UPDATE audit_shards SET seq = 1, hash = ? WHERE shard = 0", (digest,))
        if db.dialect == "postgresql":
            tx.execute("SELECT setval('audit_seq', 1)")
    add(db, store, ["dev_a", "dev_b"])
    assert store.verify().ok
    assert erase(db, store, "dev_b") == [3]
    assert store.verify().ok
    first = store.entries(limit=1)[0]
    assert (first.subject, first.content_digest, first.redacted) == ("dev_b", None, None)
    with db.write() as tx:
        tx.execute("UPDATE audit SET reason = 'x' WHERE seq = 1")
    assert store.verify().first_broken == 1


def test_v2_hashes_are_pinned() -> None:
    """Every v2 entry is hashed this way: a change would make every trail fail to verify."""
    content = content_digest("00" * 16, "cli:zoë", "dev_1", "réclamation", {"n": [1, 2]})
    assert content == "4ace794c76af582dbc010b1e34d8cf8decd8d2f94d24e1d284bfcd3ba7387479"
    assert (
        entry_hash_v2(1, 1_700_000_000_000, "device.lock", content, "")
        == "888e519d4b1367a8753bb3443a09246aa41a46aae570484be8fe84b8a81e6a02"
    )


def test_v3_hashes_are_pinned() -> None:
    """Every v3 entry is hashed this way: a change would make every trail fail to verify."""
    content = content_digest("00" * 16, "cli:zoë", "dev_1", "réclamation", {"n": [1, 2]})
    pinned = "a078a70cf4519e29a4dae48803dfac3de5f3c07e8134928724031683912ed728"
    assert entry_hash_v3(1, 7, 1_700_000_000_000, "device.lock", content, "") == pinned
    # ... which is the SHA-256 of exactly this text (docs/audit.md, "The chains"):
    text = f'["regionlock/audit-entry/v3",1,7,1700000000000,"device.lock","{content}",""]'
    assert hashlib.sha256(text.encode()).hexdigest() == pinned


def test_an_export_is_enough_to_recompute_a_redacted_chain(
    redacted: tuple[SqlAuditStore, list[int]],
) -> None:
    """What `audit export` writes (`to_json`) lets an outsider recompute every hash."""
    store, _ = redacted
    prev: dict[int, str] = {}  # each shard's last hash
    for doc in (e.to_json() for e in store.entries()):
        if doc.get("redacted") is None:
            assert doc["content_digest"] == content_digest(
                doc["salt"], doc["actor"], doc["subject"], doc["reason"], doc["details"]
            )
        else:
            assert doc["salt"] is None
        assert doc["fmt"] == 3
        shard = doc["shard"]
        assert doc["prev_hash"] == prev.get(shard, "")
        prev[shard] = entry_hash_v3(
            doc["seq"], shard, doc["at"], doc["action"], doc["content_digest"], doc["prev_hash"]
        )
        assert doc["hash"] == prev[shard]


# -- Found by mutation testing (docs/test-quality.md, "storage/audit.py, format v2") -----------
# Each test below failed on a mutant of `redact` or `_Walk.finish` that the tests above let live.


def test_a_redaction_unclaimed_says_so_in_full(
    db: Database, redacted: tuple[SqlAuditStore, list[int]]
) -> None:
    store, _ = redacted
    with db.write() as tx:
        store.redact(tx, [3], "era_forged")
    assert store.verify().problem == (
        "entry 3 is redacted but no later entry records the redaction (an erasure lists what it"
        " redacted)"
    )


def test_redact_handles_seqs_in_chunks_each_once(db: Database) -> None:
    """`redact` works through its list 500 at a time: every entry named is redacted, once,
    and a chunk naming nothing it can redact does not stop the ones after it."""
    store = SqlAuditStore(db)
    entries = [NewEntry(1_700_000_000_000 + i, "system", "a", "s", "r", {}) for i in range(1001)]
    with db.write() as tx:
        store.append_many(tx, entries)
    with db.write() as tx:
        assert store.redact(tx, [*range(10_001, 10_501), 1001], "era_x") == [1001]
    with db.write() as tx:
        done = store.redact(tx, list(range(1, 1001)), "era_x")
    assert done == list(range(1, 1001))
    assert all(e.redacted == "era_x" for e in store.entries(limit=1001))


@pytest.mark.parametrize(
    ("action", "claimed", "seq"),
    [
        ("device.lock", [3], 3),  # not an erasure: its details claim nothing
        (ERASE_ACTION, [True], 1),  # a boolean is not an entry's number (True == 1)
        (ERASE_ACTION, [3.0], 3),
        (ERASE_ACTION, ["3"], 3),
    ],
)
def test_only_an_erasure_listing_entry_numbers_claims_a_redaction(
    db: Database,
    redacted: tuple[SqlAuditStore, list[int]],
    action: str,
    claimed: list[object],
    seq: int,
) -> None:
    store, _ = redacted
    with db.write() as tx:
        store.redact(tx, [seq], "era_forged")
        store.append(
            tx,
            at=1_800_000_000_001,
            actor="cli:mallory",
            action=action,
            subject="erasure:era_forged",
            reason="",
            details={"redacted": claimed},
        )
    result = store.verify()
    assert (result.ok, result.first_broken) == (False, seq)


def test_each_entry_has_a_salt_of_its_own_16_random_bytes_in_hex(db: Database) -> None:
    """docs/audit.md: `salt` is 16 random bytes in hex, one per entry."""
    store = SqlAuditStore(db)
    add(db, store, ["dev_a", "dev_a", "dev_a"])
    salts = [e.salt for e in store.entries()]
    assert all(s is not None and re.fullmatch("[0-9a-f]{32}", s) for s in salts)
    assert len(set(salts)) == 3
