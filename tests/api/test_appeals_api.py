"""Appeals over HTTP: the device posts a signed appeal without an API key; viewers read the
queue; admins decide; refusals are problem documents."""

from __future__ import annotations

import secrets
import time

from fastapi.testclient import TestClient
from test_api import EXAMPLES, imei, post_checkin, setup

from regionlock.signing.appeal import AppealRequest, sign_appeal

PROBLEM = "application/problem+json"
JOSE = {"content-type": "application/jose"}


def test_a_locked_device_appeals_and_an_admin_grants_it(client: TestClient) -> None:
    key, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    r = client.post(
        "/v1/policies/activate",
        json={"policy": (EXAMPLES / "gray-market-2021.toml").read_text(), "reason": "2021"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    request = AppealRequest(
        secrets.token_urlsafe(16), int(time.time()), "+971 50 000 0000", "I live in Dubai."
    )
    token = sign_appeal(request, key, imei(1))
    early = client.post("/v1/appeals", content=token, headers=JOSE)
    assert early.status_code == 409 and early.json()["type"].endswith("/not-locked")
    assert post_checkin(client, key, imei(1), 1).json()["verdict"] == "lock"  # Tehran
    assert client.post("/v1/appeals", content=token, headers={}).status_code == 415
    r = client.post("/v1/appeals", content=token, headers=JOSE)  # no API key: the device signs
    assert r.status_code == 201, r.text
    appeal = r.json()
    assert appeal["status"] == "open" and r.headers["location"].endswith(appeal["id"])
    assert client.post("/v1/appeals", content=token, headers=JOSE).status_code == 200  # again
    queue = client.get("/v1/appeals?status=open", headers=viewer).json()["appeals"]
    assert [a["id"] for a in queue] == [appeal["id"]] and "message" not in queue[0]
    shown = client.get(f"/v1/appeals/{appeal['id']}", headers=viewer).json()
    assert shown["message"] == "I live in Dubai." and shown["evidence"]["verdicts"]
    decision = {"grant": True, "days": 30, "reason": "proof of residence"}
    path = f"/v1/appeals/{appeal['id']}/decide"
    assert client.post(path, json=decision, headers=viewer).status_code == 403
    r = client.post(path, json=decision, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "granted" and r.json()["exempt_until"]
    again = client.post(path, json=decision, headers=admin)
    assert again.status_code == 409 and again.json()["type"].endswith("/appeal-decided")
    assert post_checkin(client, key, imei(1), 2).json()["verdict"] != "lock"
    bad = client.post(path, json={"grant": True, "reason": "no days"}, headers=admin)
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    missing = client.get("/v1/appeals/apl_nothere", headers=viewer)
    assert missing.status_code == 404 and missing.json()["type"].endswith("/unknown-appeal")
