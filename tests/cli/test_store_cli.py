"""Store commands as an operator runs them: activate, roll back, verify and export the audit."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from databases import postgres_database

from regionlock.cli.main import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def run(db: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--db", db])
    return result.exit_code, result.stdout, result.stderr


def test_policy_lifecycle_and_audit(tmp_path: Path) -> None:
    path = tmp_path / "rl.db"
    db = f"sqlite:///{path}"
    code, out, _ = run(
        db, "policy", "activate", str(EXAMPLES / "gray-market-2021.toml"), "--reason", "2021 block"
    )
    assert code == 0 and "active: gray-market-2021 2021-09-15" in out
    run(
        db,
        "policy",
        "activate",
        str(EXAMPLES / "gray-market-2021-lifted.toml"),
        "--reason",
        "lifted",
    )
    code, out, _ = run(db, "policy", "rollback", "--reason", "too early")
    assert code == 0 and "2021-09-15 (rolled back)" in out
    code, out, _ = run(db, "policy", "active")
    assert out.splitlines()[0].startswith("* ") and "2021-09-15" in out.splitlines()[0]
    code, out, _ = run(db, "audit", "verify")
    assert code == 0 and "intact: 5 entries" in out
    code, out, _ = run(db, "audit", "export")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["action"] for r in rows] == [
        "policy.upload",
        "policy.activate",
        "policy.upload",
        "policy.activate",
        "policy.rollback",
    ]
    assert rows[0]["actor"].startswith("cli:")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE audit SET reason = 'nothing happened' WHERE seq = 3")
    conn.commit()
    conn.close()
    code, _, err = run(db, "audit", "verify")
    assert code == 1
    assert "BROKEN at entry 3" in err


def test_a_bad_policy_cannot_be_activated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy]\nid = "p"\nversion = "1"\n[lease]\noffline_action = "brick"\n')
    db = f"sqlite:///{tmp_path / 'rl.db'}"
    code, _, err = run(db, "policy", "activate", str(bad), "--reason", "x")
    assert code == 2
    assert "lease.offline_action: 'brick' is not one of keep, warn, lock" in err
    code, out, _ = run(db, "policy", "active")
    assert "no policy is active" in out


def test_an_unknown_database_scheme_is_refused() -> None:
    result = CliRunner().invoke(cli, ["policy", "active", "--db", "mysql://x"])
    assert result.exit_code == 2
    assert "expected sqlite:///FILE or postgresql://" in result.stderr


def test_postgres_needs_migrating_first() -> None:
    with postgres_database(migrated=False) as url:
        code, out, err = run(url, "policy", "active")
        assert code == 3 and out == ""
        assert "schema version 0" in err and "run `regionlock migrate`" in err
        code, out, _ = run(url, "migrate")
        assert code == 0 and "postgresql database at schema version" in out
        code, out, _ = run(url, "policy", "active")
        assert code == 0 and "no policy is active" in out


def test_apikey_lifecycle(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rl.db'}"
    code, token, err = run(db, "apikey", "create", "--role", "viewer", "--name", "auditor")
    assert code == 0 and token.startswith("rlk_") and "not shown again" in err
    key_id = token.split("_")[1]
    code, out, _ = run(db, "apikey", "list")
    assert f"{key_id}  viewer    active" in out
    assert token.strip().split("_")[2] not in out
    code, out, _ = run(db, "apikey", "revoke", key_id, "--reason", "left the company")
    assert code == 0
    code, out, _ = run(db, "apikey", "list")
    assert "revoked" in out
    code, out, _ = run(db, "audit", "export")
    assert [json.loads(x)["action"] for x in out.splitlines()] == ["apikey.create", "apikey.revoke"]


def test_keys_rotate_keeps_the_old_key_published(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rl.db'}"
    code, first, _ = run(db, "keys", "list")
    assert code == 0 and first.count("signing") == 1
    old_kid = first.split()[0]
    code, out, _ = run(db, "keys", "rotate", "--reason", "yearly")
    new_kid = out.split()[-1]
    code, listing, _ = run(db, "keys", "list")
    lines = listing.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(old_kid) and "retired" in lines[0]
    assert lines[1].startswith(new_kid) and lines[1].endswith("signing")


def test_migrate_prepares_days_when_the_history_is_partitioned_by_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    today = datetime.now(UTC)
    with postgres_database(migrated=False) as url:
        monkeypatch.setenv("REGIONLOCK_CHECKIN_PARTITIONS", "weekly")
        code, _, err = run(url, "migrate")
        assert code == 2 and "PARTITIONS='weekly': expected month or day" in err
        monkeypatch.setenv("REGIONLOCK_CHECKIN_PARTITIONS", "day")
        code, out, _ = run(url, "migrate")
        assert code == 0 and "applied 0001_init" in out  # nothing was applied before
        days = {"checkins_" + t.strftime("y%Ym%md%d") for t in (today, datetime.now(UTC))}
        made = [line.split()[-1] for line in out.splitlines() if "check-in partition" in line]
        assert len(made) == 15 and made[0] in days
