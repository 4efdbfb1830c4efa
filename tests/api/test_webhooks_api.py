"""Webhook endpoints over the API: admins only, the secret shown once, every refusal a problem
document, and a test delivery to a loopback address refused unless allowed."""

from __future__ import annotations

from fastapi.testclient import TestClient
from test_api import setup

PROBLEM = "application/problem+json"


def test_an_admin_adds_lists_rotates_tests_and_removes_an_endpoint(client: TestClient) -> None:
    _, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    body = {"url": "http://127.0.0.1:9/hook", "events": ["device.locked"], "name": "desk"}
    assert client.post("/v1/webhooks", json=body, headers=viewer).status_code == 403
    r = client.post("/v1/webhooks", json=body, headers=admin)
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["secret"].startswith("whsec_") and r.headers["location"].endswith(added["id"])
    listed = client.get("/v1/webhooks", headers=admin).json()["webhooks"]
    assert [e["id"] for e in listed] == [added["id"]] and "secret" not in listed[0]
    rotated = client.post(f"/v1/webhooks/{added['id']}/rotate-secret", headers=admin).json()
    assert rotated["secret"] != added["secret"] and rotated["rotating_until"]
    # The service's default refuses loopback destinations (server-side request forgery).
    tried = client.post(f"/v1/webhooks/{added['id']}/test", headers=admin).json()
    assert tried["delivered"] is False and "loopback" in tried["error"]
    assert client.get(f"/v1/webhooks/{added['id']}/deliveries", headers=admin).json() == {
        "deliveries": []
    }
    assert client.delete(f"/v1/webhooks/{added['id']}", headers=admin).status_code == 204
    gone = client.get(f"/v1/webhooks/{added['id']}", headers=admin)
    assert gone.status_code == 404 and gone.headers["content-type"] == PROBLEM
    assert gone.json()["type"].endswith("/unknown-webhook")


def test_bad_endpoints_are_refused_with_problems(client: TestClient) -> None:
    _, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    for body, words in [
        ({"url": "ftp://x.example.com/", "events": ["*"]}, ""),
        ({"url": "https://u:p@x.example.com/", "events": ["*"]}, "user name or password"),
        ({"url": "https://x.example.com/", "events": ["device.lockd"]}, ""),
        ({"url": "https://x.example.com/", "events": []}, ""),
    ]:
        r = client.post("/v1/webhooks", json=body, headers=admin)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
        assert words in r.json()["detail"]
    r = client.post("/v1/webhooks/deliveries/dlv_nothere/redeliver", headers=admin)
    assert r.status_code == 404 and r.json()["type"].endswith("/unknown-delivery")
