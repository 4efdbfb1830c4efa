"""End to end: the real server on loopback, devices with keys made here, tokens verified by an
independent JOSE library (joserfc) from the published JWKS alone."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import KeySet
from serving import CLI, served

from regionlock.domain.device import encode_public_key, luhn_check_digit
from regionlock.signing import CheckinRequest, SigningKey, sign_checkin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def imei(n: int) -> str:
    body = f"35693803{n:06d}"
    return body + str(luhn_check_digit(body))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, list[SigningKey]]]:
    db = f"sqlite:///{tmp_path / 'e2e.db'}"
    keys = [SigningKey.generate(datetime.now(UTC)) for _ in range(3)]
    rows = [
        f"{imei(i)},SN{i},X1,AE,D7,B1,"
        f"{encode_public_key(k.private_key.public_key().public_bytes_raw())}"
        for i, k in enumerate(keys)
    ]
    csv = tmp_path / "devices.csv"
    csv.write_text(
        "imei,serial,model,sales_region,distributor,batch,public_key\n" + "\n".join(rows) + "\n"
    )
    env = {**os.environ, "REGIONLOCK_DATABASE_URL": db}
    subprocess.run([*CLI, "devices", "import", str(csv)], check=True, env=env, capture_output=True)
    subprocess.run(
        [*CLI, "policy", "activate", str(EXAMPLES / "gray-market-2021.toml"), "--reason", "e2e"],
        check=True,
        env=env,
        capture_output=True,
    )
    with served(env) as base:
        yield base, db, keys


def test_checkins_over_loopback(server: tuple[str, str, list[SigningKey]]) -> None:
    base, _, keys = server
    places = [
        {"network": ["432-11"], "gps": {"lat": 35.6892, "lon": 51.389}},  # Tehran
        {"network": ["424-02"], "gps": {"lat": 25.2048, "lon": 55.2708}},  # Dubai
        {"network": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}, "ip": "2.144.0.1"},
    ]
    jwks = KeySet.import_key_set(httpx.get(base + "/.well-known/jwks.json").json())
    verdicts = []
    for i, (key, signals) in enumerate(zip(keys, places, strict=True)):
        req = CheckinRequest(secrets.token_urlsafe(16), 1, int(time.time()), signals)
        r = httpx.post(
            base + "/v1/checkin",
            content=sign_checkin(req, key, imei(i)),
            headers={"content-type": "application/jose"},
        )
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        verified = jws.deserialize_compact(token, jwks, algorithms=["EdDSA"])
        claims = __import__("json").loads(verified.payload)
        assert claims["nonce"] == req.nonce and claims["counter"] == 1
        verdicts.append(claims["verdict"])
    assert verdicts == ["lock", "allow", "allow"]
    replay = httpx.post(
        base + "/v1/checkin",
        content=sign_checkin(
            CheckinRequest("x" * 20, 1, int(time.time()), places[1]), keys[1], imei(1)
        ),
        headers={"content-type": "application/jose"},
    )
    assert replay.status_code == 409
    assert replay.headers["content-type"] == "application/problem+json"


def test_only_the_configured_proxies_may_name_the_device_address(
    server: tuple[str, str, list[SigningKey]],
) -> None:
    """No REGIONLOCK_TRUSTED_PROXIES: the peer (loopback, which places nothing) is the address,
    whatever X-Forwarded-For says, even from 127.0.0.1 (the server's own default trusts it)."""
    base, _, keys = server
    req = CheckinRequest(secrets.token_urlsafe(16), 1, int(time.time()), {})
    r = httpx.post(
        base + "/v1/checkin",
        content=sign_checkin(req, keys[2], imei(2)),
        headers={"content-type": "application/jose", "x-forwarded-for": "2.144.0.1"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["location"] == {"country": None, "subdivision": None}
