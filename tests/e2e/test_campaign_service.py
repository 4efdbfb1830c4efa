"""End to end: a campaign created, approved and started over HTTP is applied by the background
runners of a real two-worker server, on both stores, each device exactly once."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from databases import database_url
from serving import CLI, served

from regionlock.domain.device import encode_public_key, luhn_check_digit
from regionlock.signing import SigningKey

PG_URL = os.environ.get("REGIONLOCK_TEST_POSTGRES_URL")
DEVICES = 300


def imei(n: int) -> str:
    body = f"35693804{n:06d}"
    return body + str(luhn_check_digit(body))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path, migrated=False) as url:
        yield url


def test_two_workers_apply_an_approved_campaign_once(database: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REGIONLOCK_DATABASE_URL": database,
        "REGIONLOCK_WORKERS": "2",
        "REGIONLOCK_CAMPAIGN_POLL_S": "0.2",
    }

    def cli(*args: str) -> str:
        done = subprocess.run([*CLI, *args], check=True, env=env, capture_output=True, text=True)
        return done.stdout

    cli("migrate")
    public = encode_public_key(
        SigningKey.generate(datetime.now(UTC)).private_key.public_key().public_bytes_raw()
    )
    csv = tmp_path / "devices.csv"
    csv.write_text(
        "imei,serial,model,sales_region,distributor,batch,public_key\n"
        + "".join(f"{imei(n)},SN{n},X1,AE,D7,B1,{public}\n" for n in range(DEVICES))
    )
    cli("devices", "import", str(csv))
    keys = {
        name: {
            "authorization": "Bearer "
            + cli("apikey", "create", "--role", role, "--name", name).split()[-1]
        }
        for name, role in (("ops", "operator"), ("boss", "admin"))
    }
    with served(env) as base, httpx.Client(base_url=base, timeout=10) as http:
        body = {"name": "leak", "action": "lock", "reason": "B1 leaked", "where": ["batch=B1"]}
        r = http.post("/v1/campaigns", json=body, headers=keys["ops"])
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        # The whole fleet: over the default four-eyes share (10 %).
        r = http.post(f"/v1/campaigns/{cid}/start", json={}, headers=keys["ops"])
        assert r.status_code == 409 and r.json()["type"].endswith("/approval-required"), r.text
        assert http.post(f"/v1/campaigns/{cid}/approve", headers=keys["boss"]).is_success
        r = http.post(f"/v1/campaigns/{cid}/start", json={}, headers=keys["ops"])
        assert r.status_code == 200, r.text

        deadline = time.monotonic() + 60
        while (summary := http.get(f"/v1/campaigns/{cid}", headers=keys["ops"]).json())[
            "state"
        ] != "done":
            assert time.monotonic() < deadline, summary
            time.sleep(0.1)
        assert (summary["applied"], summary["pending"], summary["errors"]) == (DEVICES, 0, 0)
        entries: list[dict[str, Any]] = http.get(
            "/v1/audit", params={"limit": 5000}, headers=keys["ops"]
        ).json()["entries"]
    changed = Counter(e["subject"] for e in entries if e["details"].get("campaign") == cid)
    assert len(changed) == DEVICES and set(changed.values()) == {1}
