"""Investigations over the API: viewers read, the rows and scope come back as JSON, bad
questions are problem documents, an empty store answers with a note."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from test_api import setup

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
