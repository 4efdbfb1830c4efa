"""`CheckinLane`, the app's front: POST /v1/checkin is answered past every layer of the
framework, timed, with the same problem documents (a 500 for anything unexpected); every
other request goes on to the app."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from regionlock.api.metrics import Metrics
from regionlock.api.problems import count_refusal
from regionlock.api.routers.device import CheckinLane
from regionlock.services.checkin import CheckinCall
from regionlock.settings import Settings
from regionlock.signing import StaleCounter
from regionlock.storage.db import StoreUnavailable


def scope_of(method: str, path: str, headers: list[tuple[bytes, bytes]], node: Any) -> Any:
    """A request's ASGI scope, in an app whose state is `node` (None: before start-up)."""
    app = SimpleNamespace(state=SimpleNamespace(regionlock=node))
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers,
        "query_string": b"",
        "app": app,
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"x", "more_body": False}


def run(
    lane: CheckinLane,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    node: Any = None,  # the app's state; None: before start-up, no metrics
) -> list[Any]:
    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(lane(scope_of(method, path, headers, node), receive, send))
    return sent


def test_a_check_in_never_reaches_the_app_and_its_refusal_is_a_problem_document() -> None:
    inner: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        inner.append(scope["path"])

    sent = run(CheckinLane(app), "POST", "/v1/checkin", [(b"content-type", b"text/plain")])
    assert inner == []
    start, body = sent
    assert start["status"] == 415
    assert (b"content-type", b"application/problem+json") in start["headers"]
    doc = json.loads(body["body"])
    assert doc["type"].endswith("/unsupported-media-type") and doc["instance"] == "/v1/checkin"


def test_other_methods_and_paths_go_on_to_the_app() -> None:
    inner: list[tuple[str, str]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        inner.append((scope["method"], scope["path"]))

    for method, path in [("GET", "/v1/checkin"), ("POST", "/v1/checkin/"), ("POST", "/health")]:
        assert run(CheckinLane(app), method, path, []) == []
    assert inner == [("GET", "/v1/checkin"), ("POST", "/v1/checkin/"), ("POST", "/health")]


# Found while mutation testing the lane (docs/test-quality.md, "The check-in path's conflict
# retry, replay horizon and lane"): no test read the store-error counter, and mutmut 3.8.1
# makes no mutant of `count_refusal`'s store-error lines; these fail with them broken by hand.


def node(outcome: Exception) -> SimpleNamespace:
    """A started node's state whose check-in queue answers every check-in with `outcome`."""

    async def check_in(call: CheckinCall) -> dict[str, Any]:
        raise outcome

    return SimpleNamespace(
        settings=Settings(),
        clock=SimpleNamespace(now=lambda: datetime(2026, 11, 27, 9, tzinfo=UTC)),
        checkin_queue=SimpleNamespace(check_in=check_in, error=outcome),
        metrics=Metrics(),
    )


def counted(state: SimpleNamespace) -> tuple[dict[str, float], float]:
    """The check-in refusals by problem type, and the store errors, that `state` counted."""
    refusals = {
        s.labels["problem"]: s.value
        for metric in state.metrics.registry.collect()
        if metric.name == "regionlock_checkin_refusals"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    errors = state.metrics.registry.get_sample_value("regionlock_store_errors_total")
    return refusals, errors


def test_a_check_in_refused_by_a_store_outage_is_counted_as_both() -> None:
    state = node(StoreUnavailable("the store is unavailable: connection refused"))

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a check-in went on to the app")

    headers = [(b"content-type", b"application/jose")]
    sent = run(CheckinLane(inner), "POST", "/v1/checkin", headers, state)
    start, body = sent
    assert start["status"] == 503 and (b"retry-after", b"5") in start["headers"]
    assert json.loads(body["body"])["type"].endswith("/store-unavailable")
    assert counted(state) == ({"store-unavailable": 1.0}, 1.0)


def test_a_store_error_is_counted_on_any_path_a_refusal_only_on_the_check_in_path() -> None:
    state = node(RuntimeError("unused"))
    outage = StoreUnavailable("the store is unavailable: connection refused")
    count_refusal(state, "/v1/devices", outage)
    assert counted(state) == ({}, 1.0)
    count_refusal(state, "/v1/checkin", StaleCounter("counter 3 is not above 7"))
    assert counted(state) == ({"stale-counter": 1.0}, 1.0)
    count_refusal(state, "/v1/checkin", outage)
    assert counted(state) == ({"stale-counter": 1.0, "store-unavailable": 1.0}, 2.0)
    count_refusal(None, "/v1/checkin", outage)  # before start-up: nothing to count in


def timed(state: SimpleNamespace) -> float | None:
    """How many check-ins `state`'s latency histogram holds."""
    return state.metrics.registry.get_sample_value(
        "regionlock_http_request_duration_seconds_count",
        {"route": "/v1/checkin", "method": "POST"},
    )


async def unreachable(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("a check-in went on to the app")


def test_an_unexpected_error_is_logged_answered_500_and_timed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = node(RuntimeError("a bug"))
    headers = [(b"content-type", b"application/jose")]
    with caplog.at_level(logging.ERROR, logger="regionlock.api.routers.device"):
        start, body = run(CheckinLane(unreachable), "POST", "/v1/checkin", headers, state)
    assert start["status"] == 500
    assert (b"content-type", b"application/problem+json") in start["headers"]
    doc = json.loads(body["body"])
    assert doc["type"].endswith("/internal") and "a bug" not in body["body"].decode()
    assert [r.exc_info[1] for r in caplog.records if r.exc_info] == [state.checkin_queue.error]
    assert timed(state) == 1
    assert counted(state) == ({}, 0.0)  # a bug is no refusal


def test_a_refusal_is_timed_once() -> None:
    state = node(StaleCounter("counter 3 is not above 7"))
    headers = [(b"content-type", b"application/jose")]
    start, _ = run(CheckinLane(unreachable), "POST", "/v1/checkin", headers, state)
    assert start["status"] == 409 and timed(state) == 1


def test_an_error_after_the_answer_started_is_not_answered_again() -> None:
    state = node(RuntimeError("unused"))

    async def check_in(call: CheckinCall) -> dict[str, Any]:
        return {"verdict": "allow"}

    state.checkin_queue = SimpleNamespace(check_in=check_in)
    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            raise OSError("the connection broke")

    scope = scope_of("POST", "/v1/checkin", [(b"content-type", b"application/jose")], state)
    with pytest.raises(OSError, match="connection broke"):
        asyncio.run(CheckinLane(unreachable)(scope, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200 and timed(state) == 1


def test_the_app_answers_a_check_in_through_its_lane_and_the_rest_through_fastapi(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    state = client.app.state.regionlock  # type: ignore[attr-defined]

    async def check_in(call: CheckinCall) -> dict[str, Any]:
        raise RuntimeError("a bug in the queue")

    original = state.checkin_queue.check_in
    object.__setattr__(state.checkin_queue, "check_in", check_in)
    try:
        with caplog.at_level(logging.ERROR):
            r = client.post(
                "/v1/checkin", content=b"x", headers={"content-type": "application/jose"}
            )
    finally:
        object.__setattr__(state.checkin_queue, "check_in", original)
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/internal") and "a bug" not in r.text
    assert any("unexpected error answering POST /v1/checkin" in m for m in caplog.messages)
    # Other methods on the path are the framework's: 405 with the methods the path takes.
    r = client.get("/v1/checkin")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
