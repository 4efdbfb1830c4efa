"""`audit head` and `audit verify --against`: a head kept outside the database shows a rewrite
or a cut that the database alone cannot (on SQLite and, when configured, PostgreSQL)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from regionlock.cli.main import cli
from regionlock.domain import merkle
from regionlock.signing import SigningKey, WrongType, jws, verify_verdict
from regionlock.signing.audit_head import (
    AUDIT_HEAD_TYP,
    audit_head_claims,
    sign_audit_head,
    verify_audit_head,
)
from regionlock.signing.keys import Keyring
from regionlock.signing.verdict import VERDICT_TYP
from regionlock.storage import Database, Stores
from regionlock.storage.audit import SqlAuditStore, content_digest, entry_hash_v3, leaf_of
from regionlock.storage.migrate import migrate

PG_URL = os.environ.get("REGIONLOCK_TEST_POSTGRES_URL")
NOW = datetime.now(UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Database]]:
    """A migrated store: the URL the commands get, and a handle to add and tamper through."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rl.db'}"
        db = Database(url)
    else:
        if not PG_URL:
            pytest.skip("REGIONLOCK_TEST_POSTGRES_URL is not set")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        db = Database(PG_URL, schema=schema)
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    migrate(db)
    yield url, db
    if db.dialect == "postgresql":
        with db.write() as tx:
            tx.execute(f'DROP SCHEMA "{db.schema}" CASCADE')
    db.close()


def run(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--db", url])
    return result.exit_code, result.stdout, result.stderr


def add(db: Database, n: int) -> None:
    audit = SqlAuditStore(db)
    for i in range(n):
        with db.write() as tx:
            audit.append(
                tx,
                at=1_700_000_000_000 + i,
                actor="t",
                action="a",
                subject="s",
                reason="r",
                details={"n": i},
            )


def keep_head(url: str, path: Path) -> dict[str, object]:
    """Run `audit head --json` and keep its output in `path`, as an outsider would."""
    code, out, err = run(url, "audit", "head", "--json")
    assert code == 0, err
    path.write_text(out)
    head: dict[str, object] = json.loads(out)
    return head


def set_head(db: Database, seq: int, digest: str) -> None:
    """Move the head row of the shard the test's entries are in (one thread: one shard)."""
    (shard,) = {e.shard for e in SqlAuditStore(db).entries()}
    with db.write() as tx:
        tx.execute(
            "UPDATE audit_shards SET seq = ?, hash = ? WHERE shard = ?", (seq, digest, shard)
        )


def cut_everything_after(db: Database, seq: int) -> None:
    """Entries after `seq` removed with everything that vouches for them in the database: the
    shard's head, the tree's leaves (the tree rebuilt) and the signed heads."""
    audit = SqlAuditStore(db)
    last = audit.entries(after=seq - 1, limit=1)[0]
    with db.write() as tx:
        tx.execute("DELETE FROM audit WHERE seq > ?", (seq,))
        for table in ("audit_leaves", "audit_nodes", "audit_tree_heads"):
            tx.execute(f"DELETE FROM {table}")
        tx.execute(
            "UPDATE audit_tree SET size = 0, sealed_seq = 0, root = ?, frontier = '[]'",
            (merkle.EMPTY_ROOT.hex(),),
        )
    set_head(db, seq, last.hash)
    upto = audit.settled()
    with db.write() as tx:
        audit.seal(tx, upto=upto)


def test_the_head_is_signed_for_its_purpose_and_a_clean_trail_extends_it(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    add(db, 3)
    head = keep_head(url, tmp_path / "head.json")
    hashes = [leaf_of(e.hash) for e in SqlAuditStore(db).entries()]
    assert {k: head[k] for k in ("ver", "size", "root")} == {
        "ver": 2,
        "size": 3,
        "root": merkle.root(hashes).hex(),
    }
    token = str(head["token"])
    keyring = Stores.on(db).keys.keyring(NOW)
    assert jws.peek_header(token) == {
        "alg": "EdDSA",
        "kid": keyring.active.kid,
        "typ": AUDIT_HEAD_TYP,
    }
    assert head["kid"] == keyring.active.kid
    signed = {k: head[k] for k in ("ver", "size", "root", "iat")}
    assert verify_audit_head(token, keyring) == (keyring.active.kid, signed)
    # The same key signs verdicts; a device never takes a head for one.
    with pytest.raises(WrongType):
        verify_verdict(token, keyring.jwks(NOW, timedelta(days=1)), now=NOW)

    add(db, 1)
    code, out, err = run(url, "audit", "head", "--no-verify")
    assert code == 0 and jws.peek_header(out.strip())["typ"] == AUDIT_HEAD_TYP
    assert "audit tree head: 4 entries, root " in err
    (tmp_path / "head.jws").write_text(out)

    add(db, 2)
    for kept, size in (("head.json", 3), ("head.jws", 4)):
        code, out, _ = run(url, "audit", "verify", "--against", str(tmp_path / kept))
        assert (code, out) == (
            0,
            f"audit trail intact: 6 entries, 4 sealed in the tree, extending the kept tree head"
            f" of {size} entries\n",
        )


def test_an_empty_trail_has_a_head_every_trail_extends(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    head = keep_head(url, tmp_path / "head.json")
    assert (head["size"], head["root"]) == (0, merkle.EMPTY_ROOT.hex())
    add(db, 1)
    code, out, _ = run(url, "audit", "verify", "--against", str(tmp_path / "head.json"))
    assert code == 0 and "intact: 1 entries" in out
    code, out, err = run(url, "audit", "prove", "--since", str(tmp_path / "head.json"))
    assert code == 0, err
    assert json.loads(out)["consistency_path"] == []


def test_a_cut_with_every_head_and_the_tree_cut_back_fails_only_against_a_kept_head(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    add(db, 6)
    keep_head(url, tmp_path / "head.json")
    cut_everything_after(db, 4)
    code, out, _ = run(url, "audit", "verify")
    assert code == 0 and "intact: 4 entries" in out
    code, _, err = run(url, "audit", "verify", "--against", str(tmp_path / "head.json"))
    assert code == 1
    assert "fewer than the kept tree head of 6 leaves" in err
    code, out, err = run(url, "audit", "prove", "--since", str(tmp_path / "head.json"))
    assert (code, out) == (2, "")
    assert "cannot be extended" in err


def test_a_rewrite_with_everything_recomputed_fails_only_against_a_kept_head(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    add(db, 4)
    keep_head(url, tmp_path / "head.json")
    e = SqlAuditStore(db).entries()[-1]
    assert e.salt is not None
    content = content_digest(e.salt, e.actor, e.subject, "nothing", e.details)
    forged = entry_hash_v3(e.seq, e.shard, e.at, e.action, content, e.prev_hash)
    with db.write() as tx:
        tx.execute(
            "UPDATE audit SET reason = 'nothing', content_digest = ?, hash = ? WHERE seq = ?",
            (content, forged, e.seq),
        )
    cut_everything_after(db, e.seq)
    code, out, _ = run(url, "audit", "verify")
    assert code == 0 and "intact: 4 entries" in out
    code, _, err = run(url, "audit", "verify", "--against", str(tmp_path / "head.json"))
    assert code == 1
    assert "the kept tree head of 4 leaves has root" in err
    assert "rewritten within the tree's first 4 leaves" in err
    code, out, err = run(url, "audit", "prove", "--since", str(tmp_path / "head.json"))
    assert (code, out) == (1, "")
    assert "does NOT check out" in err


def test_a_head_kept_before_the_tree_still_verifies(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    """Version 1 heads (an entry's number and hash) from before migration 14 stay good."""
    url, db = store
    add(db, 3)
    last = SqlAuditStore(db).entries()[-1]
    keyring = Stores.on(db).keys.keyring(NOW)
    token = sign_audit_head(audit_head_claims(last.seq, last.hash, last.at, NOW), keyring)
    (tmp_path / "v1.jws").write_text(token)
    add(db, 1)
    code, out, _ = run(url, "audit", "verify", "--against", str(tmp_path / "v1.jws"))
    assert (code, out) == (
        0,
        "audit trail intact: 4 entries, 0 sealed in the tree, extending the kept head at entry"
        f" {last.seq}\n",
    )
    code, _, err = run(url, "audit", "prove", "--since", str(tmp_path / "v1.jws"))
    assert code == 2 and "an entry head from before the tree" in err


def test_prove_prints_proofs_that_rfc9162_accepts(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    add(db, 5)
    first = keep_head(url, tmp_path / "first.json")
    add(db, 4)
    entries = SqlAuditStore(db).entries()
    code, out, err = run(url, "audit", "prove", str(entries[2].seq))
    assert code == 0, err
    proof = json.loads(out)
    assert (proof["kind"], proof["seq"], proof["leaf_index"], proof["tree_size"]) == (
        "inclusion",
        entries[2].seq,
        2,
        9,
    )
    root = merkle.root([leaf_of(e.hash) for e in entries])
    assert proof["root"] == root.hex()
    keyring = Stores.on(db).keys.keyring(NOW)
    assert verify_audit_head(proof["head"], keyring)[1]["root"] == root.hex()
    path = [bytes.fromhex(h) for h in proof["inclusion_path"]]
    assert merkle.verify_inclusion(2, 9, leaf_of(entries[2].hash), path, root)

    code, out, err = run(url, "audit", "prove", str(entries[2].seq), "--size", "5")
    assert code == 0, err
    assert json.loads(out)["tree_size"] == 5

    code, out, err = run(url, "audit", "prove", "--since", str(tmp_path / "first.json"))
    assert code == 0, err
    proof = json.loads(out)
    assert (proof["first_tree_size"], proof["second_tree_size"]) == (5, 9)
    path = [bytes.fromhex(h) for h in proof["consistency_path"]]
    assert merkle.verify_consistency(5, 9, bytes.fromhex(str(first["root"])), root, path)
    # The proof's output keeps the new head: the next `--since` proves against it.
    (tmp_path / "second.json").write_text(out)
    add(db, 1)
    code, out, err = run(url, "audit", "prove", "--since", str(tmp_path / "second.json"))
    assert code == 0, err
    assert json.loads(out)["first_tree_size"] == 9

    code, _, err = run(url, "audit", "prove", "999")
    assert code != 0 and "entry 999 is not in the tree of 10 leaves" in err
    code, _, err = run(url, "audit", "prove")
    assert code == 2 and "give an entry number SEQ, or --since HEAD_FILE" in err


def test_a_deleted_head_row_breaks_verify_and_no_head_is_signed(
    store: tuple[str, Database],
) -> None:
    url, db = store
    add(db, 2)
    with db.write() as tx:
        tx.execute("DELETE FROM audit_shards")
    code, _, err = run(url, "audit", "verify")
    assert code == 1
    assert "head row is missing (deleted?) but its chain has entries up to 2" in err
    code, out, err = run(url, "audit", "head")
    assert (code, out) == (1, "")
    assert "head row is missing" in err


def test_a_head_file_the_store_did_not_sign_as_a_head_is_refused(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    add(db, 2)
    head = keep_head(url, tmp_path / "head.json")
    claims = {k: head[k] for k in ("ver", "size", "root", "iat")}
    keyring = Stores.on(db).keys.keyring(NOW)
    payload = jws.b64url_encode(jws.canonical_json({**claims, "size": 1}))
    header, _, signature = str(head["token"]).split(".")
    stranger = Keyring([SigningKey.generate(NOW)])
    files = {
        "as a verdict": jws.sign(claims, keyring.active, VERDICT_TYP),
        "altered": f"{header}.{payload}.{signature}",
        "by another key": jws.sign(claims, stranger.active, AUDIT_HEAD_TYP),
        "no token": json.dumps({k: head[k] for k in ("size", "root")}),
    }
    for name, text in files.items():
        path = tmp_path / "kept"
        path.write_text(text)
        for command in (("verify", "--against"), ("prove", "--since")):
            code, out, err = run(url, "audit", *command, str(path))
            assert (code, out) == (2, ""), (name, command)
            assert "not an audit head signed by this store" in err or "without the head's" in err
