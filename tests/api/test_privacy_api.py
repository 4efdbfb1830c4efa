"""Export and erasure over HTTP (admin): the export is the device's data; the erasure answers
a receipt signed by a key of the JWKS, the device is gone (410 afterwards), the trail verifies."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from test_api import imei, post_checkin, setup

from regionlock.signing.erasure import verify_erasure_receipt

PROBLEM = "application/problem+json"


def test_an_admin_exports_then_erases_a_device(client: TestClient) -> None:
    key, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    assert post_checkin(client, key, imei(1), 1).status_code == 200
    path = f"/v1/devices/{imei(1)}"

    assert client.get(f"{path}/export", headers=operator).status_code == 403
    r = client.get(f"{path}/export", headers=admin)
    assert r.status_code == 200, r.text
    doc = r.json()
    dev = doc["device"]["id"]
    assert doc["device"]["imeis"] == [imei(1)] and len(doc["checkins"]) == 1
    assert len(doc["verdicts"]) == 1

    assert client.post(f"{path}/erase", json={"reason": "r"}, headers=operator).status_code == 403
    bad = client.post(f"{path}/erase", json={}, headers=admin)
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    r = client.post(f"{path}/erase", json={"reason": "owner's request"}, headers=admin)
    assert r.status_code == 200, r.text
    receipt = r.json()
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    ring = state.stores.keys.keyring(datetime.now(UTC))
    kid, claims = verify_erasure_receipt(receipt["token"], ring)
    assert kid == receipt["kid"] and claims["removed"]["checkins"] == 1
    jwks = client.get("/.well-known/jwks.json").json()
    assert kid in [k["kid"] for k in jwks["keys"]]

    gone = client.get(f"/v1/devices/{dev}/export", headers=admin)
    assert gone.status_code == 410 and gone.headers["content-type"] == PROBLEM
    assert gone.json()["type"].endswith("/device-erased") and claims["rid"] in gone.json()["detail"]
    again = client.post(f"/v1/devices/{dev}/erase", json={"reason": "again"}, headers=admin)
    assert again.status_code == 410
    missing = client.get(f"/v1/devices/{imei(2)}/export", headers=admin)
    assert missing.status_code == 404 and missing.json()["type"].endswith("/unknown-device")
    assert state.stores.audit.verify().ok
