"""The HTTP API in process: check-ins, JWKS, roles, problem+json, operator actions."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

import jwt
from fastapi.testclient import TestClient

from regionlock.domain.device import encode_public_key, luhn_check_digit
from regionlock.geo import Locator
from regionlock.settings import Settings
from regionlock.signing import CheckinRequest, SigningKey, sign_checkin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
TEHRAN = {"network": ["432-11"], "sim": ["432-11"], "gps": {"lat": 35.6892, "lon": 51.389}}


def imei(n: int) -> str:
    body = f"35693803{n:06d}"
    return body + str(luhn_check_digit(body))


def setup(client: TestClient) -> tuple[SigningKey, dict[str, str]]:
    """Register one device and create keys of every role through the service's own stores."""
    from regionlock.storage.apikeys import Role

    state = client.app.state.regionlock  # type: ignore[attr-defined]
    key = SigningKey.generate(datetime.now(UTC))
    csv = (
        "imei,serial,model,sales_region,distributor,batch,public_key\n"
        f"{imei(1)},SN1,X1,AE,D7,B1,"
        f"{encode_public_key(key.private_key.public_key().public_bytes_raw())}\n"
    )
    report = state.registry.import_csv(
        csv.splitlines(keepends=True), actor="test", source="t.csv", now=datetime.now(UTC)
    )
    assert report.imported == 1
    tokens = {}
    for role in Role:
        with state.stores.db.write() as tx:
            _, tokens[role.value] = state.stores.apikeys.create(
                tx, name=role.value, role=role, at=0
            )
    return key, tokens


def post_checkin(
    client: TestClient,
    key: SigningKey,
    kid: str,
    counter: int,
    signals: dict[str, object] = TEHRAN,
    nonce: str | None = None,
):  # type: ignore[no-untyped-def]
    req = CheckinRequest(nonce or secrets.token_urlsafe(16), counter, int(time.time()), signals)
    return client.post(
        "/v1/checkin",
        content=sign_checkin(req, key, kid),
        headers={"content-type": "application/jose"},
    )


def test_checkin_returns_a_token_verifiable_from_the_jwks(client: TestClient) -> None:
    key, tokens = setup(client)
    r = client.post(
        "/v1/policies/activate",
        json={"policy": (EXAMPLES / "gray-market-2021.toml").read_text(), "reason": "2021"},
        headers={"authorization": f"Bearer {tokens['admin']}"},
    )
    assert r.status_code == 200, r.text
    r = post_checkin(client, key, imei(1), 1)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "lock" and "presence.first_activation" in body["reasons"]
    jwks = client.get("/.well-known/jwks.json").json()
    signing = jwt.PyJWKSet.from_dict(jwks).keys[0]
    claims = jwt.decode(body["token"], signing.key, algorithms=["EdDSA"])
    assert claims["verdict"] == "lock" and claims["location"]["country"] == "IR"


def test_bad_requests_get_problem_json_and_no_verdict(client: TestClient) -> None:
    key, _ = setup(client)
    r = client.post("/v1/checkin", content="x", headers={"content-type": "application/json"})
    assert r.status_code == 415 and r.headers["content-type"] == "application/problem+json"
    r = client.post(
        "/v1/checkin", content="a" * 70_000, headers={"content-type": "application/jose"}
    )
    assert r.status_code == 413 and r.json()["type"].endswith("/payload-too-large")
    r = post_checkin(client, SigningKey.generate(datetime.now(UTC)), imei(1), 1)
    assert r.status_code == 401 and r.json()["type"].endswith("/bad-signature")
    r = post_checkin(client, key, "dev_unknown", 1)
    assert r.status_code == 404 and r.json()["type"].endswith("/unknown-device")
    r = client.post(
        "/v1/checkin", content="not.a.jws", headers={"content-type": "application/jose"}
    )
    assert r.status_code == 401 and "token" not in r.json()
    ok = post_checkin(client, key, imei(1), 5, nonce="N" * 22)
    assert ok.status_code == 200
    replay = post_checkin(client, key, imei(1), 6, nonce="N" * 22)
    assert replay.status_code == 409 and replay.json()["type"].endswith("/replayed-nonce")
    stale = post_checkin(client, key, imei(1), 5)
    assert stale.status_code == 409 and stale.json()["type"].endswith("/stale-counter")
    bad_signal = post_checkin(client, key, imei(1), 7, {"gps": {"lat": 91, "lon": 0}})
    assert bad_signal.status_code == 422 and "latitude 91" in bad_signal.json()["detail"]


def test_roles_are_enforced(client: TestClient) -> None:
    _, tokens = setup(client)
    assert client.get("/v1/devices").status_code == 401
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    listed = client.get("/v1/devices", headers=viewer)
    assert listed.status_code == 200 and len(listed.json()["devices"]) == 1
    r = client.post(f"/v1/devices/{imei(1)}/lock", json={"reason": "stolen"}, headers=viewer)
    assert r.status_code == 403 and r.json()["type"].endswith("/forbidden")
    r = client.post(f"/v1/devices/{imei(1)}/lock", json={"reason": "stolen"}, headers=operator)
    assert r.status_code == 200
    r = client.post("/v1/policies/rollback", json={"reason": "x"}, headers=operator)
    assert r.status_code == 403
    device = client.get(f"/v1/devices/{imei(1)}", headers=viewer).json()
    assert device["state"]["manual_lock"]["reason"] == "stolen"
    audit = client.get("/v1/audit", headers=viewer).json()["entries"]
    assert audit[-1]["action"] == "device.lock" and audit[-1]["actor"].startswith("apikey:")


def test_openapi_describes_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/v1/checkin",
        "/.well-known/jwks.json",
        "/v1/devices",
        "/v1/devices/{key}",
        "/v1/devices/{key}/lock",
        "/v1/audit",
        "/v1/policies/activate",
        "/v1/policies/rollback",
    } <= paths
    assert "application/jose" in spec["paths"]["/v1/checkin"]["post"]["requestBody"]["content"]


def test_import_validate_simulate_over_the_api(client: TestClient) -> None:
    key, tokens = setup(client)
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    k2 = SigningKey.generate(datetime.now(UTC))
    csv = (
        "imei,serial,model,sales_region,distributor,batch,public_key\n"
        f"{imei(2)},SN2,X1,AE,D7,B1,"
        f"{encode_public_key(k2.private_key.public_key().public_bytes_raw())}\n"
        f"{imei(3)[:-1]}0,SN3,X1,AE,D7,B1,xx\n"
    )
    r = client.post("/v1/devices/import", content=csv, headers=operator)
    assert r.status_code == 200
    assert r.json()["imported"] == 1 and r.json()["problems"][0]["line"] == 3
    bad = client.post("/v1/policies/validate", content=b'[policy]\nid = "x"\n', headers=admin)
    assert bad.status_code == 422 and bad.json()["problems"][0]["path"] == "policy.version"
    good = (EXAMPLES / "gray-market-2021.toml").read_bytes()
    assert client.post("/v1/policies/validate", content=good, headers=admin).json()["valid"]
    # Device 1 checks in from Tehran with no policy active: allowed; simulate the 2021 block.
    assert post_checkin(client, key, imei(1), 1).json()["verdict"] == "allow"
    report = client.post("/v1/policies/simulate", content=good, headers=operator).json()
    assert report["devices"] == 2
    assert report["changes"] == [{"country": "IR", "from": "allow", "to": "lock", "devices": 1}]


def test_a_checkin_outside_the_clock_window_is_refused(client: TestClient) -> None:
    key, _ = setup(client)
    old = CheckinRequest(secrets.token_urlsafe(16), 1, int(time.time()) - 3600, TEHRAN)
    r = client.post(
        "/v1/checkin",
        content=sign_checkin(old, key, imei(1)),
        headers={"content-type": "application/jose"},
    )
    assert r.status_code == 401 and r.json()["type"].endswith("/clock-skew")
    assert "server_time" in r.json()
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    stored = state.stores.devices.get(imei(1))
    assert stored.state.counter is None  # nothing changed


def test_admins_manage_api_keys_and_signing_keys(client: TestClient) -> None:
    key, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    assert (
        client.post(
            "/v1/apikeys", json={"name": "x", "role": "viewer"}, headers=operator
        ).status_code
        == 403
    )
    created = client.post("/v1/apikeys", json={"name": "auditor", "role": "viewer"}, headers=admin)
    assert created.status_code == 201
    new_token = created.json()["token"]
    assert (
        client.get("/v1/audit", headers={"authorization": f"Bearer {new_token}"}).status_code == 200
    )
    listed = client.get("/v1/apikeys", headers=admin).json()["keys"]
    assert new_token not in str(listed) and any(k["name"] == "auditor" for k in listed)
    r = client.post(
        f"/v1/apikeys/{created.json()['id']}/revoke", json={"reason": "left"}, headers=admin
    )
    assert r.status_code == 200
    assert (
        client.get("/v1/audit", headers={"authorization": f"Bearer {new_token}"}).status_code == 401
    )
    before = post_checkin(client, key, imei(1), 1).json()["token"]
    kid = client.post("/v1/keys/rotate", json={"reason": "yearly"}, headers=admin).json()["kid"]
    after = post_checkin(client, key, imei(1), 2).json()["token"]
    assert jwt.get_unverified_header(after)["kid"] == kid
    assert jwt.get_unverified_header(before)["kid"] != kid
    jwks = client.get("/.well-known/jwks.json").json()
    assert {k["kid"] for k in jwks["keys"]} >= {kid, jwt.get_unverified_header(before)["kid"]}


def test_the_device_address_is_the_peer_unless_a_trusted_proxy_forwards_it() -> None:
    from regionlock.api.routers.device import peer_address

    assert peer_address(("5.30.2.9", 5000), "", ()) == "5.30.2.9"
    # Anyone can send X-Forwarded-For: only a trusted proxy's is believed, its last hop.
    assert peer_address(("5.30.2.9", 5000), "2.144.0.1", ()) == "5.30.2.9"
    assert peer_address(("5.30.2.9", 5000), "2.144.0.1", ("10.0.0.0/8",)) == "5.30.2.9"
    assert peer_address(("10.1.2.3", 5000), "1.1.1.1, 2.144.0.1", ("10.0.0.0/8",)) == "2.144.0.1"
    # A proxy that forwards garbage leaves its own address, never a guess.
    assert peer_address(("10.1.2.3", 5000), "unknown", ("10.0.0.0/8",)) == "10.1.2.3"
    assert peer_address(("testclient", 50000), "", ()) is None
    assert peer_address(None, "2.144.0.1", ("10.0.0.0/8",)) is None


def test_a_busy_node_answers_503_with_retry_after_and_records_nothing(client: TestClient) -> None:
    key, _ = setup(client)
    client.app.state.regionlock.checkin_queue.max_waiting = 0  # type: ignore[attr-defined]
    r = post_checkin(client, key, imei(1), 1)
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/service-busy") and "token" not in r.json()
    assert int(r.headers["retry-after"]) > 0
    client.app.state.regionlock.checkin_queue.max_waiting = 1024  # type: ignore[attr-defined]
    assert post_checkin(client, key, imei(1), 1).status_code == 200  # counter 1 was not used


def test_a_server_process_freezes_what_start_up_built(db_url: str, locator: Locator) -> None:
    import gc

    from regionlock.api.app import create_app

    gc.unfreeze()
    app = create_app(Settings(database_url=db_url), locator=locator, freeze_after_startup=True)
    try:
        with TestClient(app):
            assert gc.get_freeze_count() > 0  # out of the collector's sight from now on
    finally:
        gc.unfreeze()
    with TestClient(create_app(Settings(database_url=db_url), locator=locator)):
        assert gc.get_freeze_count() == 0  # tests and embedders keep the default
