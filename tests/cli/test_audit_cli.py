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
from regionlock.signing import SigningKey, WrongType, jws, verify_verdict
from regionlock.signing.audit_head import AUDIT_HEAD_TYP, verify_audit_head
from regionlock.signing.keys import Keyring
from regionlock.signing.verdict import VERDICT_TYP
from regionlock.storage import Database, Stores
from regionlock.storage.audit import SqlAuditStore, content_digest, entry_hash_v2
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
    code, out, _ = run(url, "audit", "head", "--json")
    assert code == 0
    path.write_text(out)
    head: dict[str, object] = json.loads(out)
    return head


def test_the_head_is_signed_for_its_purpose_and_a_clean_trail_extends_it(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    add(db, 3)
    head = keep_head(url, tmp_path / "head.json")
    last = SqlAuditStore(db).entries()[-1]
    assert {k: head[k] for k in ("ver", "seq", "hash", "at")} == {
        "ver": 1,
        "seq": 3,
        "hash": last.hash,
        "at": last.at,
    }
    token = str(head["token"])
    keyring = Stores.on(db).keys.keyring(NOW)
    assert jws.peek_header(token) == {
        "alg": "EdDSA",
        "kid": keyring.active.kid,
        "typ": AUDIT_HEAD_TYP,
    }
    assert head["kid"] == keyring.active.kid
    signed = {k: head[k] for k in ("ver", "seq", "hash", "at", "iat")}
    assert verify_audit_head(token, keyring) == (keyring.active.kid, signed)
    # The same key signs verdicts; a device never takes a head for one.
    with pytest.raises(WrongType):
        verify_verdict(token, keyring.jwks(NOW, timedelta(days=1)), now=NOW)

    code, out, err = run(url, "audit", "head")
    assert code == 0 and jws.peek_header(out.strip())["typ"] == AUDIT_HEAD_TYP
    assert f"audit head: entry 3, hash {last.hash}" in err
    (tmp_path / "head.jws").write_text(out)

    add(db, 2)
    for kept in ("head.json", "head.jws"):
        code, out, _ = run(url, "audit", "verify", "--against", str(tmp_path / kept))
        assert (code, out) == (
            0,
            "audit trail intact: 5 entries, extending the kept head at entry 3\n",
        )


def test_an_empty_trail_has_a_head_every_trail_extends(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    head = keep_head(url, tmp_path / "head.json")
    assert (head["seq"], head["hash"], head["at"]) == (0, "", None)
    add(db, 1)
    code, out, _ = run(url, "audit", "verify", "--against", str(tmp_path / "head.json"))
    assert code == 0 and "intact: 1 entries" in out


def test_a_cut_with_the_head_rolled_back_fails_only_against_a_kept_head(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    add(db, 6)
    keep_head(url, tmp_path / "head.json")
    fourth = SqlAuditStore(db).entries(after=3, limit=1)[0]
    with db.write() as tx:
        tx.execute("DELETE FROM audit WHERE seq > 4")
        tx.execute("UPDATE audit_head SET seq = 4, hash = ?", (fourth.hash,))
    code, out, _ = run(url, "audit", "verify")
    assert code == 0 and "intact: 4 entries" in out
    code, _, err = run(url, "audit", "verify", "--against", str(tmp_path / "head.json"))
    assert code == 1
    assert "BROKEN at entry 5" in err and "before the kept head's entry 6" in err


def test_a_rewrite_with_the_hash_and_head_recomputed_fails_only_against_a_kept_head(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    add(db, 4)
    keep_head(url, tmp_path / "head.json")
    e = SqlAuditStore(db).entries()[-1]
    assert e.salt is not None
    content = content_digest(e.salt, e.actor, e.subject, "nothing", e.details)
    forged = entry_hash_v2(e.seq, e.at, e.action, content, e.prev_hash)
    with db.write() as tx:
        tx.execute(
            "UPDATE audit SET reason = 'nothing', content_digest = ?, hash = ? WHERE seq = 4",
            (content, forged),
        )
        tx.execute("UPDATE audit_head SET hash = ?", (forged,))
    code, out, _ = run(url, "audit", "verify")
    assert code == 0 and "intact: 4 entries" in out
    code, _, err = run(url, "audit", "verify", "--against", str(tmp_path / "head.json"))
    assert code == 1
    assert "BROKEN at entry 4" in err and "rewritten at or before entry 4" in err


def test_a_deleted_head_row_breaks_verify_and_no_head_is_signed(
    store: tuple[str, Database],
) -> None:
    url, db = store
    add(db, 2)
    with db.write() as tx:
        tx.execute("DELETE FROM audit_head")
    code, _, err = run(url, "audit", "verify")
    assert code == 1
    assert "BROKEN: the head row is missing (deleted?) but the trail has 2 entries" in err
    code, out, err = run(url, "audit", "head")
    assert (code, out) == (1, "")
    assert "head row is missing" in err


def test_a_head_file_the_store_did_not_sign_as_a_head_is_refused(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    add(db, 2)
    head = keep_head(url, tmp_path / "head.json")
    claims = {k: head[k] for k in ("ver", "seq", "hash", "at", "iat")}
    keyring = Stores.on(db).keys.keyring(NOW)
    payload = jws.b64url_encode(jws.canonical_json({**claims, "seq": 1}))
    header, _, signature = str(head["token"]).split(".")
    stranger = Keyring([SigningKey.generate(NOW)])
    files = {
        "as a verdict": jws.sign(claims, keyring.active, VERDICT_TYP),
        "altered": f"{header}.{payload}.{signature}",
        "by another key": jws.sign(claims, stranger.active, AUDIT_HEAD_TYP),
        "no token": json.dumps({k: head[k] for k in ("seq", "hash")}),
    }
    for name, text in files.items():
        path = tmp_path / "kept"
        path.write_text(text)
        code, out, err = run(url, "audit", "verify", "--against", str(path))
        assert (code, out) == (2, ""), name
        assert "not an audit head signed by this store" in err or "without the head's" in err
