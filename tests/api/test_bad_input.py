"""Every bad input the attack of 2026-12-05 found is a clear 4xx problem document, on both
stores, and changes nothing (issue 11, defects 2 and 3)."""

from __future__ import annotations

import secrets
import time

from fastapi.testclient import TestClient
from test_api import imei, post_checkin, setup

from regionlock.signing import CheckinRequest, sign_checkin

PROBLEM = "application/problem+json"


def refused(r, status: int, slug: str) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("/" + slug), r.json()


def audit_size(client: TestClient, headers: dict[str, str]) -> int:
    return len(client.get("/v1/audit", headers=headers).json()["entries"])


def test_a_huge_gps_number_is_an_invalid_signal(client: TestClient) -> None:
    key, _ = setup(client)
    for bad in ({"lat": 10**400, "lon": 0}, {"lat": 0, "lon": -(10**400)}):
        refused(post_checkin(client, key, imei(1), 1, {"gps": bad}), 422, "invalid-signal")
    r = post_checkin(client, key, imei(1), 1, {"gps": {"lat": 1, "lon": 1, "accuracy_m": 10**400}})
    refused(r, 422, "invalid-signal")
    assert post_checkin(client, key, imei(1), 1).status_code == 200  # counter 1 still free


def test_nul_and_other_unstorable_text_is_refused_not_a_500(client: TestClient) -> None:
    key, tokens = setup(client)
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    before = audit_size(client, viewer)
    # A kid that cannot name a device names none (no signature needed to try it).
    req = CheckinRequest(secrets.token_urlsafe(16), 1, int(time.time()), {})
    r = client.post(
        "/v1/checkin",
        content=sign_checkin(req, key, "dev_a\x00b"),
        headers={"content-type": "application/jose"},
    )
    refused(r, 404, "unknown-device")
    refused(client.get("/v1/devices/dev_a%00b", headers=viewer), 422, "invalid-input")
    refused(client.get("/v1/devices?model=X%001", headers=viewer), 422, "invalid-input")
    refused(client.get("/v1/audit?subject=a%00", headers=viewer), 422, "invalid-input")
    refused(client.get("/v1/devices?model=%ff", headers=viewer), 422, "invalid-input")
    r = client.post(f"/v1/devices/{imei(1)}/lock", json={"reason": "a\x00b"}, headers=operator)
    refused(r, 422, "invalid-input")
    r = client.post("/v1/apikeys", json={"name": "x\x00", "role": "viewer"}, headers=admin)
    refused(r, 422, "invalid-input")
    assert audit_size(client, viewer) == before  # nothing was done, so nothing was audited
    # In a CSV file, a NUL is the problem of its row, reported by line; the rest is imported.
    r = client.post(
        "/v1/devices/import",
        content="imei,serial,model,sales_region,distributor,batch,public_key\n1,S\x00,X,AE,D,B,k\n",
        headers=operator,
    )
    assert r.status_code == 200 and r.json()["imported"] == 0
    assert r.json()["problems"][0]["line"] == 2


def test_numbers_out_of_range_are_refused(client: TestClient) -> None:
    _, tokens = setup(client)
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    refused(client.get("/v1/audit?after=9223372036854775808", headers=viewer), 422, "invalid-input")
    refused(client.get("/v1/audit?after=-1", headers=viewer), 422, "invalid-input")
    assert client.get("/v1/audit?after=9223372036854775807", headers=viewer).status_code == 200


def test_bodies_that_are_not_utf8_are_refused(client: TestClient) -> None:
    _, tokens = setup(client)
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    r = client.post("/v1/devices/import", content=b"imei,serial\n\xff\xfe\n", headers=operator)
    refused(r, 422, "invalid-input")
    assert "not UTF-8" in r.json()["detail"]
    r = client.post("/v1/policies/validate", content=b'[policy]\nid = "\xff"\n', headers=admin)
    refused(r, 422, "invalid-input")
    r = client.post(
        "/v1/policies/activate",
        content=b'{"policy": "\xff", "reason": "x"}',
        headers={**admin, "content-type": "application/json"},
    )
    refused(r, 400, "bad-request")  # the JSON body cannot be read at all


def test_a_key_with_non_ascii_characters_is_unauthorized(client: TestClient) -> None:
    _, tokens = setup(client)
    key_id = tokens["admin"].split("_")[1]
    for token in (f"rlk_{key_id}_\u00e9", "rlk_\u00e9_x", "\u00e9"):
        r = client.get("/v1/devices", headers={"authorization": f"Bearer {token}".encode()})
        refused(r, 401, "unauthorized")


def test_a_challenge_in_other_digits_is_refused_before_anything_is_audited(
    client: TestClient,
) -> None:
    _, tokens = setup(client)
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    before = audit_size(client, viewer)
    body = {"challenge": "\u0661\u0662\u0663\u0664-\u0665\u0666\u0667\u0668", "reason": "x"}
    r = client.post(f"/v1/devices/{imei(1)}/unlock-code", json=body, headers=operator)
    refused(r, 422, "invalid-input")
    assert audit_size(client, viewer) == before  # no entry says a code was issued


def test_bodies_past_their_limit_are_refused(client: TestClient) -> None:
    # Streaming and anonymous bodies over a real socket: tests/e2e/test_body_limits.py.
    _, tokens = setup(client)
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    r = client.post(f"/v1/devices/{imei(1)}/lock", json={"reason": "x" * 70_000}, headers=operator)
    refused(r, 413, "payload-too-large")  # JSON bodies: 64 KiB
    r = client.post("/v1/devices/import", content=b"x" * (33 * 1024 * 1024), headers=operator)
    refused(r, 413, "payload-too-large")  # CSV: 32 MiB


def test_a_viewer_cannot_send_a_body_to_an_operator_route(client: TestClient) -> None:
    _, tokens = setup(client)
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    r = client.post(f"/v1/devices/{imei(1)}/lock", json={"reason": "x"}, headers=viewer)
    refused(r, 403, "forbidden")


def test_an_import_splits_lines_as_csv_does(client: TestClient) -> None:
    """A form feed or U+2028 inside a cell is part of the cell, not a line break: the API
    reports the same lines as `regionlock devices import` would."""
    _, tokens = setup(client)
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    header = "imei,serial,model,sales_region,distributor,batch,public_key\n"
    r = client.post(
        "/v1/devices/import",
        content=header + "1,S\x0cN,X,AE,D,B,k\n2,S\u2028N,X,AE,D,B,k\n",
        headers=operator,
    )
    assert r.status_code == 200
    assert [p["line"] for p in r.json()["problems"]] == [2, 3]  # two rows, two lines


def test_toml_nested_5000_deep_is_an_invalid_policy(client: TestClient) -> None:
    _, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    deep = '[policy]\nid = "x"\nversion = "1"\nnote = ' + "[" * 5000 + "]" * 5000 + "\n"
    for path in ("/v1/policies/validate", "/v1/policies/simulate"):
        refused(client.post(path, content=deep, headers=admin), 422, "invalid-policy")
    r = client.post("/v1/policies/activate", json={"policy": deep, "reason": "x"}, headers=admin)
    refused(r, 422, "invalid-policy")
    assert client.get("/v1/policies/active", headers=admin).json()["active"] is None
