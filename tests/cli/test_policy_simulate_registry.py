"""`regionlock policy simulate` over the registry (--db), as POST /v1/policies/simulate does."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from regionlock.cli.main import cli
from regionlock.domain.device import DeviceState, encode_public_key, luhn_check_digit
from regionlock.storage import open_database
from regionlock.storage.devices import SqlDeviceStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
GRAY = str(EXAMPLES / "gray-market-2021.toml")
LIFTED = str(EXAMPLES / "gray-market-2021-lifted.toml")
AS_OF = date(2026, 11, 27)


def imei(n: int) -> str:
    body = f"35693803{n:06d}"
    return body + str(luhn_check_digit(body))


def run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, list(args), env={"REGIONLOCK_DATABASE_URL": None, **(env or {})}
    )
    return result.exit_code, result.stdout, result.stderr


def seen_in(country: str, subdivision: str | None, days: int) -> DeviceState:
    """A device last placed here with confidence, present on each of the last `days` days."""
    codes = frozenset(c for c in (country, subdivision) if c)
    return DeviceState(
        last_country=country,
        last_subdivision=subdivision,
        last_confidence=0.95,
        last_checkin_at=datetime(2026, 11, 27, 8, tzinfo=UTC),
        first_country="AE",
        first_seen_at=datetime(2026, 1, 5, tzinfo=UTC),
        presence={AS_OF - timedelta(days=d): codes for d in range(days)},
    )


@pytest.fixture
def registry(tmp_path: Path) -> str:
    """Four registered phones sold in the UAE: in Tehran and in Khartoum for ten days, in
    Berlin, and one that never checked in; the lifted 2021 policy is active."""
    db = f"sqlite:///{tmp_path / 'rl.db'}"
    csv = tmp_path / "devices.csv"
    rows = ["imei,serial,model,sales_region,distributor,batch,public_key"]
    for n in range(1, 5):
        raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        rows.append(f"{imei(n)},SN{n},X1,AE,D7,B1,{encode_public_key(raw)}")
    csv.write_text("\n".join(rows) + "\n")
    assert run("devices", "import", str(csv), "--db", db)[0] == 0
    assert run("policy", "activate", LIFTED, "--reason", "lifted", "--db", db)[0] == 0
    database = open_database(db)
    try:
        devices = SqlDeviceStore(database)
        places = {1: ("IR", "IR-23"), 2: ("SD", None), 3: ("DE", "DE-BE")}
        with database.write() as tx:
            for n, (country, subdivision) in places.items():
                stored = devices.lock_for_update(tx, imei(n))
                assert stored is not None
                devices.save_state(tx, stored, seen_in(country, subdivision, 10))
    finally:
        database.close()
    return db


def test_the_registry_is_the_fleet_against_its_active_policy(registry: str) -> None:
    code, out, _ = run("policy", "simulate", GRAY, "--db", registry, "--as-of", "2026-11-27")
    assert code == 0, out
    # Against the active (lifted) policy: only the company block on Sudan is new; Iran is
    # locked either way (US embargo); Berlin and the phone never seen stay allowed.
    assert out.splitlines() == [
        "4 device(s) in the registry: gray-market-2021 2021-09-15 vs "
        "gray-market-2021 2021-11-01-lifted, as of 2026-11-27",
        "  before: allow 3, lock 1",
        "  after: allow 2, lock 2",
        "  changes (country: from -> to: devices):",
        "    SD: allow -> lock: 1",
    ]
    code, out, _ = run(
        "policy", "simulate", GRAY, "--as-of", "2026-11-27", "--json",
        env={"REGIONLOCK_DATABASE_URL": registry},
    )  # fmt: skip
    report = json.loads(out)
    assert report["devices"] == 4 and report["after"] == {"allow": 2, "lock": 2}


def test_against_a_file_overrides_the_active_policy(registry: str) -> None:
    code, out, _ = run(
        "policy", "simulate", LIFTED, "--db", registry, "--against", GRAY,
        "--as-of", "2026-11-27", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["changes"] == [
        {"country": "SD", "from": "lock", "to": "allow", "devices": 1}
    ]


def test_fleet_and_db_together_are_refused(registry: str, tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.jsonl"
    fleet.write_text('{"id": "a", "country": "SD", "confidence": 0.9, "days_present": 10}\n')
    code, _, err = run("policy", "simulate", GRAY, "--fleet", str(fleet), "--db", registry)
    assert code == 2 and "give --fleet FILE or --db URL as the fleet, not both" in err
    # The environment's database is only a default: --fleet wins over it.
    code, out, _ = run(
        "policy", "simulate", GRAY, "--fleet", str(fleet), "--as-of", "2026-11-27",
        env={"REGIONLOCK_DATABASE_URL": registry},
    )  # fmt: skip
    assert code == 0 and out.startswith(f"1 device(s) in {fleet}:")


def test_no_registry_where_it_looks_is_named_and_none_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nothing-here.db"
    code, _, err = run("policy", "simulate", GRAY, "--db", f"sqlite:///{missing}")
    assert code == 2 and f"no registry at {missing}" in err
    assert not missing.exists()
    # Neither --fleet nor --db: the default registry, ./regionlock.db, as every store command.
    monkeypatch.chdir(tmp_path)
    code, _, err = run("policy", "simulate", GRAY)
    assert code == 2 and "no registry at regionlock.db" in err and "--fleet FILE" in err
    assert not (tmp_path / "regionlock.db").exists()
