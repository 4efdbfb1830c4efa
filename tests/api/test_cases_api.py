"""Cases over the API, on both stores: viewers read, admins write, each step audited as the
key; unknown ids, closed cases and bad bodies are problem documents."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_api import setup

PROBLEM = "application/problem+json"
TYPE = "https://regionlock.dev/problems/"
FINDINGS = {"by": "batch", "leaks": [{"group": "B1", "flagged": True, "p_value": 1e-9}]}


def keys(client: TestClient) -> dict[str, dict[str, str]]:
    _, tokens = setup(client)
    return {role: {"authorization": f"Bearer {t}"} for role, t in tokens.items()}


def refused(r: Any, status: int, slug: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"] == TYPE + slug
    detail: str = r.json()["detail"]
    return detail


def open_case(client: TestClient, h: dict[str, dict[str, str]], **body: Any) -> str:
    r = client.post("/v1/cases", json={"title": "B1 leaks", **body}, headers=h["admin"])
    assert r.status_code == 201, r.text
    case_id: str = r.json()["id"]
    assert r.headers["location"] == f"/v1/cases/{case_id}"
    return case_id


def campaign(client: TestClient, h: dict[str, dict[str, str]]) -> str:
    body = {"name": "lock B1", "action": "lock", "reason": "B1 leaked", "where": ["batch=B1"]}
    r = client.post("/v1/campaigns", json=body, headers=h["operator"])
    assert r.status_code == 201, r.text
    cid: str = r.json()["id"]
    return cid


def test_the_life_of_a_case(client: TestClient) -> None:
    h = keys(client)
    case_id = open_case(client, h, findings=FINDINGS, reason="the weekly ranking")
    cid = campaign(client, h)
    r = client.post(f"/v1/cases/{case_id}/notes", json={"text": "carton 12"}, headers=h["admin"])
    assert r.status_code == 201 and r.json()["kind"] == "note" and r.json()["seq"] == 3
    r = client.post(f"/v1/cases/{case_id}/links", json={"campaign": cid}, headers=h["admin"])
    assert r.status_code == 201 and r.json()["campaign"] == cid and r.json()["seq"] == 4
    r = client.post(
        f"/v1/cases/{case_id}/close", json={"outcome": "block lifted"}, headers=h["admin"]
    )
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert r.json()["outcome"] == "block lifted" and r.json()["closed_by"].startswith("apikey:")

    doc = client.get(f"/v1/cases/{case_id}", headers=h["viewer"]).json()
    assert doc["title"] == "B1 leaks" and doc["findings"] == FINDINGS
    assert doc["campaigns"] == [cid]
    assert [e["kind"] for e in doc["history"]] == ["open", "findings", "note", "link", "close"]
    assert doc["history"][2]["text"] == "carton 12"

    entries = client.get(f"/v1/audit?subject={case_id}", headers=h["viewer"]).json()["entries"]
    assert [e["action"] for e in entries] == ["case.open", "case.note", "case.link", "case.close"]
    assert {e["actor"] for e in entries} == {doc["opened_by"]}
    assert entries[0]["reason"] == "the weekly ranking"
    assert entries[0]["details"]["findings"]["sha256"] == doc["history"][1]["data"]["sha256"]


def test_viewers_read_and_only_admins_write(client: TestClient) -> None:
    h = keys(client)
    case_id = open_case(client, h)
    for role in ("viewer", "operator"):
        refused(client.post("/v1/cases", json={"title": "t"}, headers=h[role]), 403, "forbidden")
        for path, body in (
            ("notes", {"text": "n"}),
            ("links", {"campaign": "cmp_x"}),
            ("close", {"outcome": "o"}),
        ):
            r = client.post(f"/v1/cases/{case_id}/{path}", json=body, headers=h[role])
            refused(r, 403, "forbidden")
    refused(client.get("/v1/cases"), 401, "unauthorized")
    refused(client.post("/v1/cases", json={"title": "t"}), 401, "unauthorized")
    assert client.get(f"/v1/cases/{case_id}", headers=h["viewer"]).status_code == 200
    assert client.get("/v1/cases", headers=h["viewer"]).json()["cases"][0]["id"] == case_id
    entries = client.get(f"/v1/audit?subject={case_id}", headers=h["viewer"]).json()["entries"]
    assert [e["action"] for e in entries] == ["case.open"]


def test_listing_by_status(client: TestClient) -> None:
    h = keys(client)
    first = open_case(client, h, findings=FINDINGS)
    second = open_case(client, h)
    client.post(f"/v1/cases/{first}/close", json={"outcome": "no leak"}, headers=h["admin"])
    listed = client.get("/v1/cases", headers=h["viewer"]).json()["cases"]
    assert [c["id"] for c in listed] == [second, first]
    assert all("findings" not in c for c in listed)
    r = client.get("/v1/cases?status=closed", headers=h["viewer"])
    assert [c["id"] for c in r.json()["cases"]] == [first]
    r = client.get("/v1/cases?status=open&limit=1", headers=h["viewer"])
    assert [c["id"] for c in r.json()["cases"]] == [second]
    refused(client.get("/v1/cases?status=shut", headers=h["viewer"]), 422, "invalid-input")
    refused(client.get("/v1/cases?limit=0", headers=h["viewer"]), 422, "invalid-input")


def test_unknown_and_closed_cases(client: TestClient) -> None:
    h = keys(client)
    for r in (
        client.get("/v1/cases/case_nothere", headers=h["viewer"]),
        client.post("/v1/cases/case_nothere/notes", json={"text": "n"}, headers=h["admin"]),
        client.post("/v1/cases/case_nothere/close", json={"outcome": "o"}, headers=h["admin"]),
    ):
        assert "case_nothere" in refused(r, 404, "unknown-case")
    case_id = open_case(client, h)
    cid = campaign(client, h)
    r = client.post(f"/v1/cases/{case_id}/links", json={"campaign": "cmp_no"}, headers=h["admin"])
    refused(r, 404, "unknown-campaign")
    link = {"campaign": cid}
    assert client.post(f"/v1/cases/{case_id}/links", json=link, headers=h["admin"]).is_success
    r = client.post(f"/v1/cases/{case_id}/links", json=link, headers=h["admin"])
    refused(r, 409, "conflict")
    client.post(f"/v1/cases/{case_id}/close", json={"outcome": "lifted"}, headers=h["admin"])
    for path, body in (("notes", {"text": "n"}), ("close", {"outcome": "again"})):
        r = client.post(f"/v1/cases/{case_id}/{path}", json=body, headers=h["admin"])
        assert "lifted" in refused(r, 409, "case-closed")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": "a\u0000b"},
        {"title": "t", "findings": [1, 2]},
        {"title": "t", "findings": "text"},
        {"title": "t", "reason": ""},
    ],
)
def test_a_bad_body_opens_nothing(client: TestClient, body: dict[str, Any]) -> None:
    h = keys(client)
    refused(client.post("/v1/cases", json=body, headers=h["admin"]), 422, "invalid-input")
    assert client.get("/v1/cases", headers=h["viewer"]).json()["cases"] == []


def test_bad_notes_and_outcomes_change_nothing(client: TestClient) -> None:
    h = keys(client)
    case_id = open_case(client, h)
    for path, body in (
        ("notes", {"text": ""}),
        ("notes", {"text": "x" * 4001}),
        ("notes", {"text": "\u0000"}),
        ("notes", {}),
        ("links", {"campaign": ""}),
        ("close", {"outcome": " "}),
        ("close", {"outcome": "x" * 1001}),
    ):
        r = client.post(f"/v1/cases/{case_id}/{path}", json=body, headers=h["admin"])
        refused(r, 422, "invalid-input")
    doc = client.get(f"/v1/cases/{case_id}", headers=h["viewer"]).json()
    assert doc["status"] == "open" and len(doc["history"]) == 1


def test_findings_past_the_body_limit_are_refused(client: TestClient) -> None:
    h = keys(client)
    big = {"title": "t", "findings": {"rows": ["x" * 1000] * 70}}  # about 70 KiB
    r = client.post("/v1/cases", json=big, headers=h["admin"])
    refused(r, 413, "payload-too-large")
    assert client.get("/v1/cases", headers=h["viewer"]).json()["cases"] == []
