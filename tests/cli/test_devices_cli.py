"""`regionlock devices import` and `device lock|unlock|exempt|show`, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from databases import database_url

from regionlock.cli.main import cli
from regionlock.domain.device import encode_public_key, luhn_check_digit
from regionlock.services.registry import Registry

HEADER = "imei,serial,model,sales_region,distributor,batch,public_key\n"


def imei(n: int) -> str:
    body = f"35693803{n:06d}"
    return body + str(luhn_check_digit(body))


def key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return encode_public_key(raw)


def run(db: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--db", db])
    return result.exit_code, result.stdout, result.stderr


def test_import_is_idempotent_and_reports_bad_rows(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rl.db'}"
    good = [f"{imei(i)},SN{i},X1,EEA,D7,B1,{key()}" for i in range(5)]
    bad_checksum = imei(9)[:-1] + str((int(imei(9)[-1]) + 1) % 10)
    rows = [
        *good,
        f"{bad_checksum},SN9,X1,EEA,D7,B1,{key()}",
        f"{imei(10)},SN10,X1,EEA,D7,B1,xx",
        f"{imei(0)},SN0-other,X1,EEA,D7,B1,{key()}",
    ]
    path = tmp_path / "devices.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    code, out, err = run(db, "devices", "import", str(path))
    assert code == 1
    assert "imported 5, unchanged 0" in out and "problems 3" in out
    assert "line 7: " in err and "check digit" in err
    assert "line 8: " in err
    assert "line 9: " in err
    # The same file again changes nothing.
    path.write_text(HEADER + "\n".join(good) + "\n")
    code, out, _ = run(db, "devices", "import", str(path))
    assert code == 0 and "imported 0, unchanged 5" in out
    code, out, _ = run(db, "devices", "list", "--distributor", "D7")
    assert len(out.split()) == 5


def test_lock_unlock_exempt_are_audited(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rl.db'}"
    path = tmp_path / "devices.csv"
    path.write_text(HEADER + f"{imei(1)},SN1,X1,EEA,D7,B1,{key()}\n")
    run(db, "devices", "import", str(path))
    code, out, _ = run(db, "device", "lock", imei(1), "--reason", "reported stolen")
    assert code == 0 and "takes effect at its next check-in" in out
    shown = json.loads(run(db, "device", "show", imei(1))[1])
    assert shown["state"]["manual_lock"]["reason"] == "reported stolen"
    run(db, "device", "unlock", shown["id"], "--reason", "found")
    run(db, "device", "exempt", imei(1), "--reason", "appeal 17", "--until", "2099-01-01")
    shown = json.loads(run(db, "device", "show", shown["id"])[1])
    assert shown["state"]["manual_lock"] is None
    assert shown["state"]["exemption"] == {
        "reason": "appeal 17",
        "by": shown["state"]["exemption"]["by"],
        "until": "2099-01-01",
    }
    code, out, _ = run(db, "audit", "export")
    actions = [json.loads(x)["action"] for x in out.splitlines()]
    assert actions == ["devices.import", "device.lock", "device.unlock", "device.exempt"]
    code, _, err = run(db, "device", "lock", "356938035643809", "--reason", "x")
    assert code == 2 and "no device with id or IMEI" in err


def test_audit_export_and_lock_name_a_device_by_imei_or_id(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rl.db'}"
    path = tmp_path / "devices.csv"
    path.write_text(
        HEADER + f"{imei(1)},SN1,X1,EEA,D7,B1,{key()}\n{imei(2)},SN2,X1,EEA,D7,B1,{key()}\n"
    )
    run(db, "devices", "import", str(path))
    code, _, _ = run(
        db,
        "device",
        "lock",
        imei(1),
        "--reason",
        "reported stolen",
        "--message",
        "Reported stolen: call us.",
        "--contact",
        "+49 30 1234567",
    )
    assert code == 0
    run(db, "device", "lock", imei(2), "--reason", "audit")
    shown = json.loads(run(db, "device", "show", imei(1))[1])
    lock = shown["state"]["manual_lock"]
    assert (lock["message"], lock["contact"]) == ("Reported stolen: call us.", "+49 30 1234567")
    by_imei = run(db, "audit", "export", "--subject", imei(1))[1].splitlines()
    by_id = run(db, "audit", "export", "--subject", shown["id"])[1].splitlines()
    assert by_imei == by_id and len(by_imei) == 1
    assert json.loads(by_imei[0])["action"] == "device.lock"
    assert json.loads(by_imei[0])["subject"] == shown["id"]
    # A subject that is no device is taken as it is (a policy, a key).
    assert run(db, "audit", "export", "--subject", "nothing@1")[1] == ""


@pytest.mark.parametrize(("dialect", "default"), [("sqlite", 1), ("postgresql", 2)])
def test_import_writes_with_two_connections_on_postgresql_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dialect: str, default: int
) -> None:
    asked: list[int] = []
    real = Registry.import_csv

    def noting(self: Registry, *args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["writers"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Registry, "import_csv", noting)
    path = tmp_path / "devices.csv"
    path.write_text(HEADER + "".join(f"{imei(i)},SN{i},X1,EEA,D7,B1,{key()}\n" for i in range(3)))
    with database_url(dialect, tmp_path / "store") as db:
        assert run(db, "devices", "import", str(path))[0] == 0
        code, out, _ = run(db, "devices", "import", "--writers", "3", str(path))
        assert code == 0 and "imported 0, unchanged 3" in out
        code, _, err = run(db, "devices", "import", "--writers", "0", str(path))
        assert code == 2 and "'--writers': 0 is not in the range 1<=x<=8" in err
    assert asked == [default, 3]
