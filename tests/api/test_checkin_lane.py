"""`CheckinLane`: POST /v1/checkin is answered past the framework's inner layers, with the
same problem documents; every other request goes on to the app."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from regionlock.api.metrics import Metrics
from regionlock.api.problems import count_refusal
from regionlock.api.routers.device import CheckinLane
from regionlock.services.checkin import CheckinCall
from regionlock.settings import Settings
from regionlock.signing import StaleCounter
from regionlock.storage.db import StoreUnavailable


def run(
    lane: CheckinLane,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    node: Any = None,  # the app's state; None: before start-up, no metrics
) -> list[Any]:
    sent: list[Any] = []
    app = SimpleNamespace(state=SimpleNamespace(regionlock=node))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers,
        "query_string": b"",
        "app": app,
    }
    asyncio.run(lane(scope, receive, send))
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
        checkin_queue=SimpleNamespace(check_in=check_in),
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
