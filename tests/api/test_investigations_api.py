"""Investigations over the API: viewers read, the rows and scope come back as JSON, bad
questions are problem documents, an empty store answers with a note."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from test_api import EXAMPLES, imei, post_checkin, setup

PROBLEM = "application/problem+json"


@pytest.fixture
def viewer(client: TestClient, tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # PostgreSQL's cache: not in ~
    _, tokens = setup(client)
    return {"authorization": f"Bearer {tokens['viewer']}"}


def test_a_viewer_reads_an_empty_ranking_with_its_note(client: TestClient, viewer: dict) -> None:
    r = client.get("/v1/investigations/leaks?by=distributor&country=IR", headers=viewer)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["scope"]["places"] == ["IR"]
    assert isinstance(doc["rows"], list)
    flows = client.get("/v1/investigations/flows?country=IR", headers=viewer)
    assert flows.status_code == 200, flows.text
    assert "rows" in flows.json() and "scope" in flows.json()


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("leaks?country=XX", 422, "not a known ISO 3166-1"),
        ("leaks?since=2026-12-01&until=2026-11-01", 422, "is before --since"),
        ("leaks?by=colour", 422, ""),
        ("ranges?batch=NOPE&country=IR", 404, "no registered device is in batch"),
    ],
)
def test_bad_questions_are_problems(
    client: TestClient, viewer: dict, query: str, status: int, words: str
) -> None:
    r = client.get(f"/v1/investigations/{query}", headers=viewer)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert words in r.json()["detail"]


def test_without_a_key_nothing_is_read(client: TestClient) -> None:
    r = client.get("/v1/investigations/leaks")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM


def test_the_report_as_json_and_as_one_html_page(client: TestClient, viewer: dict) -> None:
    r = client.get("/v1/investigations/report?country=IR", headers=viewer)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["scope"]["places"] == ["IR"] and len(doc["snapshot_sha256"]) == 64
    assert set(doc["leaks"]) == {"distributor", "batch", "model", "sales_region"}
    page = client.get("/v1/investigations/report.html?country=IR", headers=viewer)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.startswith("<!DOCTYPE html>") and doc["snapshot_sha256"] in page.text
    missing = client.get("/v1/investigations/report?case=case_nosuchxx", headers=viewer)
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_a_case_opened_with_investigate_keeps_the_findings_as_they_stand(
    client: TestClient, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    key, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    body = {"title": "D7 stock", "investigate": True}
    # No active policy: no place is restricted, so there is nothing to investigate yet.
    r = client.post("/v1/cases", json=body, headers=admin)
    assert r.status_code == 422 and "no policy is active" in r.json()["detail"], r.text
    r = client.post(
        "/v1/policies/activate",
        json={"policy": (EXAMPLES / "gray-market-2021.toml").read_text(), "reason": "2021"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert post_checkin(client, key, imei(1), 1).status_code == 200  # first activated in Iran
    r = client.post("/v1/cases", json=body, headers=admin)
    assert r.status_code == 201, r.text
    case = r.json()
    kept = case["findings"]
    assert kept["leaks"]["distributor"][0]["group"] == "D7"
    assert kept["leaks"]["distributor"][0]["restricted"] == 1
    assert kept["places"] == [{"country": "IR", "subdivision": "IR-23", "devices": 1}]
    report = client.get(f"/v1/investigations/report?case={case['id']}", headers=admin).json()
    assert report["snapshot_sha256"] == kept["snapshot_sha256"]
    assert report["case"]["title"] == "D7 stock"
    both = client.post("/v1/cases", json=body | {"findings": {"a": 1}}, headers=admin)
    assert both.status_code == 422 and both.headers["content-type"] == PROBLEM
