"""Found by mutation testing of `verify`'s walk over the shard chains (docs/test-quality.md,
"`storage/audit.py`: `_Walk`, `verify`, `computed_hash`, `to_json`, and `append_many`'s
statements"): each test below failed on a mutant that the audit, tree, privacy, backup,
check-in pipeline, audit CLI and audit API tests let live. Both stores."""

from __future__ import annotations

from dataclasses import replace

from test_audit_tree import add

from regionlock.storage import Database
from regionlock.storage.audit import SqlAuditStore

COLUMNS = (
    "seq, at, actor, action, subject, reason, details, prev_hash, hash, content_digest, salt,"
    " redacted, shard, fmt"
)


def test_a_second_entry_with_the_last_ones_number_is_named_even_without_the_key(
    db: Database,
) -> None:
    # The schema keeps one entry to a number (audit.seq is the key); someone who can rebuild
    # the table without it can add a second entry 3 that chains onto the first, with its hash
    # recomputed and the shard's head row moved to it. Every hash and link then holds: only
    # the number, not above the one before it, gives it away. (Both stores read the two
    # entries 3 in the order written; the other order is named the same, by the broken link.)
    store = SqlAuditStore(db)
    add(db, store, 3)
    third = store.entries(limit=3)[-1]
    twin = replace(third, prev_hash=third.hash)
    twin = replace(twin, hash=twin.computed_hash())
    with db.write() as tx:
        tx.execute("CREATE TABLE audit_copy AS SELECT * FROM audit")
        tx.execute("DROP TABLE audit")
        tx.execute("ALTER TABLE audit_copy RENAME TO audit")
        tx.execute(
            f"INSERT INTO audit ({COLUMNS}) SELECT {COLUMNS.replace('prev_hash, hash', '?, ?')}"
            " FROM audit WHERE seq = 3",
            (twin.prev_hash, twin.hash),
        )
        tx.execute("UPDATE audit_shards SET hash = ? WHERE shard = ?", (twin.hash, third.shard))
    result = store.verify()
    assert (result.ok, result.first_broken, result.checked) == (False, 3, 3)
    assert result.problem == (
        f"entry 3 does not follow entry 3, the one before it in shard {third.shard}: entries"
        " between them were removed, or the order changed"
    )
