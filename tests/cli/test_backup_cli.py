"""`regionlock backup` and `regionlock restore` as an operator runs them, around a service
answering check-ins over its API (in process)."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient

from regionlock.api.app import create_app
from regionlock.cli.main import cli
from regionlock.domain.device import encode_public_key
from regionlock.geo import Locator
from regionlock.settings import Settings
from regionlock.signing import CheckinRequest, SigningKey, sign_checkin

IMEI = "356938035643809"
DUBAI = {"network": ["424-02"], "sim": ["424-02"], "gps": {"lat": 25.2048, "lon": 55.2708}}
PG_URL = os.environ.get("REGIONLOCK_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1/test"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@contextmanager
def service(url: str, locator: Locator) -> Iterator[TestClient]:
    """The service on the store at `url`, running until the block ends."""
    with TestClient(create_app(Settings(database_url=url), locator=locator)) as client:
        yield client


def register(client: TestClient) -> SigningKey:
    key = SigningKey.generate(datetime.now(UTC))
    csv = (
        "imei,serial,model,sales_region,distributor,batch,public_key\n"
        f"{IMEI},SN1,X1,AE,D7,B1,{encode_public_key(key.public_bytes)}\n"
    )
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    report = state.registry.import_csv(
        csv.splitlines(keepends=True), actor="test", source="t.csv", now=datetime.now(UTC)
    )
    assert report.imported == 1
    return key


def check_in(client: TestClient, key: SigningKey, counter: int) -> tuple[int, str]:
    req = CheckinRequest(secrets.token_urlsafe(16), counter, int(time.time()), DUBAI)
    r = client.post(
        "/v1/checkin",
        content=sign_checkin(req, key, IMEI),
        headers={"content-type": "application/jose"},
    )
    return r.status_code, r.json().get("type", "").rsplit("/", 1)[-1]


def test_restore_brings_back_the_store_and_its_counters(tmp_path: Path, locator: Locator) -> None:
    db = f"sqlite:///{tmp_path / 'rl.db'}"
    backup = tmp_path / "backups" / "rl-monday.db"
    backup.parent.mkdir()
    with service(db, locator) as client:
        key = register(client)
        for counter in (1, 2, 3):
            assert check_in(client, key, counter) == (200, "")
        # Taken while the service runs.
        code, out, _ = run("backup", str(backup), "--db", db)
        assert code == 0, out
        assert f"to {backup}" in out and "schema version" in out
        assert check_in(client, key, 4) == (200, "")
        # The service still has the store open: a restore is refused and changes nothing.
        code, _, err = run("restore", str(backup), "--db", db)
        assert code == 3 and "open (a running service?): stop it" in err
    code, out, _ = run("audit", "verify", "--db", db)
    assert code == 0 and "intact: 5 entries" in out  # import + 4 check-ins

    code, out, _ = run("restore", str(backup), "--db", db)
    assert code == 0 and "restored" in out
    code, out, _ = run("audit", "verify", "--db", db)
    assert code == 0 and "intact: 4 entries" in out
    with service(db, locator) as client:
        assert check_in(client, key, 3) == (409, "stale-counter")
        assert check_in(client, key, 1) == (409, "stale-counter")
        assert check_in(client, key, 5) == (200, "")  # the device is ahead: it goes on


def test_an_existing_backup_is_replaced_only_with_force(tmp_path: Path, locator: Locator) -> None:
    db = f"sqlite:///{tmp_path / 'rl.db'}"
    with service(db, locator) as client:
        register(client)
    target = tmp_path / "b.db"
    target.write_text("last week's")
    code, _, err = run("backup", str(target), "--db", db)
    assert code == 2 and "exists: give --force" in err
    assert target.read_text() == "last week's"
    code, _, _ = run("backup", str(target), "--force", "--db", db)
    assert code == 0
    code, out, _ = run("audit", "verify", "--db", f"sqlite:///{target}")
    assert code == 0 and "intact: 1 entries" in out


def test_postgresql_stores_are_pointed_to_pg_dump(tmp_path: Path) -> None:
    code, _, err = run("backup", str(tmp_path / "b.db"), "--db", PG_URL)
    assert code == 2 and "pg_dump -Fc" in err and "pg_restore" in err
    (tmp_path / "b.dump").write_bytes(b"")
    code, _, err = run("restore", str(tmp_path / "b.dump"), "--db", PG_URL)
    assert code == 2 and "pg_restore" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.dump"]
