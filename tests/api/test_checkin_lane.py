"""`CheckinLane`: POST /v1/checkin is answered past the framework's inner layers, with the
same problem documents; every other request goes on to the app."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from regionlock.api.routers.device import CheckinLane


def run(lane: CheckinLane, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    sent: list[Any] = []
    app = SimpleNamespace(state=SimpleNamespace(regionlock=None))  # before start-up: no metrics

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
