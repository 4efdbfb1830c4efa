"""`regionlock device export|erase` and `retention run`, as an operator runs them, on both
stores: the export is JSON about that device; the erasure prints a receipt signed by the
service's key, the audit trail still verifies, and the device is gone."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from regionlock.cli.main import cli
from regionlock.domain.device import encode_public_key, luhn_check_digit
from regionlock.signing.erasure import verify_erasure_receipt
from regionlock.storage import Database, Stores
from regionlock.storage.migrate import migrate

PG_URL = os.environ.get("REGIONLOCK_TEST_POSTGRES_URL")
HEADER = "imei,serial,model,sales_region,distributor,batch,public_key\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Database]]:
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


def imei(n: int) -> str:
    body = f"35693803{n:06d}"
    return body + str(luhn_check_digit(body))


def key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return encode_public_key(raw)


def run(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--db", url])
    return result.exit_code, result.stdout, result.stderr


def test_export_then_erase_with_a_signed_receipt(
    store: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = store
    path = tmp_path / "devices.csv"
    path.write_text(HEADER + "".join(f"{imei(i)},SN{i},X1,EEA,D7,B1,{key()}\n" for i in (1, 2)))
    assert run(url, "devices", "import", str(path))[0] == 0
    assert run(url, "device", "lock", imei(1), "--reason", "reported stolen")[0] == 0

    code, out, _ = run(url, "device", "export", imei(1), "--json")
    assert code == 0
    doc = json.loads(out)
    dev = doc["device"]["id"]
    assert doc["device"]["imeis"] == [imei(1)] and doc["device"]["serial"] == "SN1"
    assert [e["action"] for e in doc["audit"]] == ["device.lock"]
    assert doc["checkins"] == [] and doc["appeals"] == []
    code, _, err = run(url, "device", "export", imei(1), "-o", str(tmp_path / "x.json"))
    assert code == 0 and json.loads((tmp_path / "x.json").read_text())["device"]["id"] == dev

    code, out, err = run(url, "device", "erase", imei(1), "--reason", "owner's request 42")
    assert code == 0 and "erased: receipt era_" in err and "devices 1" in err
    ring = Stores.on(db).keys.keyring(datetime.now(UTC))
    _, claims = verify_erasure_receipt(out.strip(), ring)
    assert claims["removed"]["imeis"] == 1 and claims["removed"]["audit_redacted"] == 1

    code, out, _ = run(url, "audit", "verify")
    assert code == 0 and "intact" in out
    code, _, err = run(url, "device", "export", dev, "--json")
    assert code == 2 and "erased" in err and claims["rid"] in err
    code, _, err = run(url, "device", "show", imei(1))
    assert code != 0
    # The other device is untouched.
    assert json.loads(run(url, "device", "export", imei(2), "--json")[1])["device"]["serial"] == (
        "SN2"
    )
    code, out, err = run(url, "device", "erase", imei(3), "--reason", "x")
    assert code == 2 and "no device" in err


def test_retention_run_reports_what_it_deleted(store: tuple[str, Database]) -> None:
    url, _ = store
    code, out, _ = run(url, "retention", "run", "--days", "30", "--no-progress")
    assert code == 0 and out.startswith("deleted 0 check-ins older than ")
    code, _, err = run(url, "retention", "run", "--days", "0")
    assert code == 2 and "--days" in err
