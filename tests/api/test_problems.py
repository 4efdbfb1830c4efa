"""The API's error edge: one table decides every status and problem type, every refusal is a
problem document, and every problem type the API can return is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from regionlock.api.problems import (
    FRAMEWORK_PROBLEMS,
    PROBLEM_BASE,
    PROBLEMS,
    ProblemType,
    problem_type,
)
from regionlock.domain.errors import InvalidSignal, NotFound, RegionlockError
from regionlock.services.checkin_queue import ServiceBusy
from regionlock.signing import (
    BadSignature,
    ClockSkew,
    InvalidCheckin,
    MalformedToken,
    NoSigningKey,
    ReplayedNonce,
    StaleCounter,
    TokenExpired,
    WrongAlgorithm,
    WrongType,
)
from regionlock.storage.apikeys import UnknownApiKey

DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented(doc: str) -> dict[str, int]:
    """The problem types a document's error table lists, with their statuses."""
    rows = re.findall(r"^\| `([a-z-]+)` \| (\d{3}) \|", (DOCS / doc).read_text(), re.M)
    return {slug: int(status) for slug, status in rows}


def every_problem_type() -> list[ProblemType]:
    return [*PROBLEMS.values(), *FRAMEWORK_PROBLEMS]


@pytest.mark.parametrize(
    ("doc", "audiences"),
    [("protocol.md", {"device", "both"}), ("operator-api.md", {"operator", "both"})],
)
def test_every_problem_type_the_api_returns_is_documented(doc: str, audiences: set[str]) -> None:
    listed = documented(doc)
    missing = {
        (p.slug, p.status)
        for p in every_problem_type()
        if p.audience in audiences and listed.get(p.slug) != p.status
    }
    assert not missing, f"{doc} does not document (or gives another status for) {missing}"


def test_the_documents_list_no_problem_type_the_api_cannot_return() -> None:
    known = {p.slug for p in every_problem_type()}
    for doc in ("protocol.md", "operator-api.md"):
        assert set(documented(doc)) <= known, doc


def test_the_device_protocol_answers_as_specified() -> None:
    expected = {
        MalformedToken("x"): (401, "malformed-token"),
        WrongAlgorithm("x"): (401, "wrong-algorithm"),
        WrongType("x"): (401, "wrong-type"),
        BadSignature("x"): (401, "bad-signature"),
        InvalidCheckin("nonce", "x"): (422, "invalid-checkin"),
        InvalidSignal("gps", "x"): (422, "invalid-signal"),
        ClockSkew("x", 0): (401, "clock-skew"),
        ReplayedNonce("x"): (409, "replayed-nonce"),
        StaleCounter("x"): (409, "stale-counter"),
        NoSigningKey("x"): (503, "no-signing-key"),
        ServiceBusy("x"): (503, "service-busy"),
    }
    for error, (status, slug) in expected.items():
        kind = problem_type(error)
        assert (kind.status, kind.slug) == (status, slug), type(error).__name__


def test_the_most_specific_listed_class_decides() -> None:
    assert problem_type(UnknownApiKey("x")).slug == "unknown-api-key"
    assert problem_type(NotFound("x")).slug == "not-found"
    # A token error without an entry of its own is still a 401, never a 500.
    assert (problem_type(TokenExpired("x")).status, problem_type(TokenExpired("x")).slug) == (
        401,
        "invalid-token",
    )

    class Surprise(RegionlockError):
        pass

    assert problem_type(Surprise("x")).status == 500
    assert problem_type(ValueError("x")).status == 500
    assert all(p.uri.startswith(PROBLEM_BASE) for p in every_problem_type())


def test_framework_refusals_are_problem_documents(client: TestClient) -> None:
    r = client.get("/v1/no-such-thing")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == PROBLEM_BASE + "not-found"
    r = client.get("/v1/checkin")
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == PROBLEM_BASE + "method-not-allowed"
    assert "POST" in r.headers["allow"]
    r = client.post("/v1/apikeys", json={"name": "x"})  # no key: refused before the body
    assert r.status_code == 401 and r.json()["type"] == PROBLEM_BASE + "unauthorized"


def test_revoking_an_unknown_api_key_is_404(client: TestClient) -> None:
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    from regionlock.storage.apikeys import Role

    with state.stores.db.write() as tx:
        _, token = state.stores.apikeys.create(tx, name="root", role=Role.ADMIN, at=0)
    r = client.post(
        "/v1/apikeys/nosuchkey/revoke",
        json={"reason": "cleanup"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert r.status_code == 404 and r.json()["type"] == PROBLEM_BASE + "unknown-api-key"


def test_an_unexpected_error_is_a_problem_document_and_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    from regionlock.storage.apikeys import Role

    with state.stores.db.write() as tx:
        _, token = state.stores.apikeys.create(tx, name="root", role=Role.ADMIN, at=0)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    original = state.stores.apikeys.list
    object.__setattr__(state.stores.apikeys, "list", broken)
    try:
        # Not entered: the app's state (and the broken store) stay the running client's.
        quiet = TestClient(client.app, raise_server_exceptions=False)
        r = quiet.get("/v1/apikeys", headers={"authorization": f"Bearer {token}"})
    finally:
        object.__setattr__(state.stores.apikeys, "list", original)
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == PROBLEM_BASE + "internal" and "a bug" not in r.text
    assert any("unexpected error" in rec.getMessage() for rec in caplog.records)
