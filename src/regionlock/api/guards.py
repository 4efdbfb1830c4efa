"""What every operator request passes before any route sees it (ASGI middleware).

- Its path and query are text a store can hold (no NUL, no lone surrogate, valid UTF-8).
- A request with a body is authenticated before one byte of the body is read: an anonymous
  client cannot make the service read, buffer or parse anything big.
- No body is larger than its route allows, declared (Content-Length) or streamed.

The check-in (`/v1/checkin`) and a device's appeal (`POST /v1/appeals`) are left alone: they
have their own size limits, and a device is authenticated by its signature, not by an API key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.requests import HTTPConnection
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regionlock.api.deps import PayloadTooLarge, State, authenticate
from regionlock.api.problems import error_response
from regionlock.console import web as console_web
from regionlock.console.sessions import COOKIE
from regionlock.domain.errors import InvalidInput, RegionlockError
from regionlock.domain.inputs import text_problem
from regionlock.storage.apikeys import Role

KIB = 1024
MIB = 1024 * KIB
# Largest body per route (docs/operator-api.md, "Limits"); everything else: JSON_LIMIT.
JSON_LIMIT = 64 * KIB
BODY_LIMITS = {
    "/v1/devices/import": 32 * MIB,  # CSV: about 200,000 devices; larger files: the CLI
    "/v1/policies/validate": 1 * MIB,  # TOML
    "/v1/policies/simulate": 1 * MIB,
    "/v1/policies/activate": 1 * MIB,  # JSON carrying a TOML document
}
_BODY_METHODS = {"POST", "PUT", "PATCH"}
_DEVICE_PATHS = {"/v1/checkin"}
_DEVICE_POSTS = {"/v1/appeals"}
_CONSOLE = "/console/"
CONSOLE_LIMIT = 8 * KIB  # a console form: a key, a reason, a CSRF token
# Console forms that carry a document, as large as the API takes one; for a signed-in
# session only (the cookie is checked before the body is read), else CONSOLE_LIMIT.
CONSOLE_DOCUMENTS = {
    "/console/policies/check": 1 * MIB,
    "/console/policies/activate": 1 * MIB,
    "/console/campaigns/new": 64 * KIB,  # a list of devices
}


def body_limit(path: str) -> int:
    return BODY_LIMITS.get(path, JSON_LIMIT)


class RequestGuard:
    """The checks above, as a pure ASGI middleware in front of the routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in _DEVICE_PATHS
            or (scope["method"] == "POST" and scope["path"] in _DEVICE_POSTS)
        ):
            await self.app(scope, receive, send)
            return
        try:
            _check_path_and_query(scope)
            if scope["path"].startswith(_CONSOLE):
                # The console's forms: a session cookie, checked by its pages, not an API key.
                if scope["method"] in _BODY_METHODS:
                    receive = _limited(receive, scope, _console_limit(scope))
            elif scope["method"] in _BODY_METHODS and _routed(scope):
                await _authenticate_first(scope)
                receive = _limited(receive, scope, body_limit(scope["path"]))
        except RegionlockError as exc:
            await error_response(exc, scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _routed(scope: Scope) -> bool:
    """Whether a route takes this method and path (else the router answers 404 or 405,
    reading no body, and an anonymous client learns nothing it could not learn anyway)."""
    return any(route.matches(scope)[0] is Match.FULL for route in scope["app"].router.routes)


def _check_path_and_query(scope: Scope) -> None:
    problem = text_problem(scope["path"])
    if problem is not None:
        raise InvalidInput(f"the path {problem}")
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the query string is not valid (percent-encoded UTF-8)") from None
    for name, value in pairs:
        problem = text_problem(name) or text_problem(value)
        if problem is not None:
            raise InvalidInput(f"query parameter {name[:40]!r} {problem}")


def _console_limit(scope: Scope) -> int:
    larger = CONSOLE_DOCUMENTS.get(scope["path"])
    if larger is None:
        return CONSOLE_LIMIT
    state: State = scope["app"].state.regionlock
    cookie = HTTPConnection(scope).cookies.get(COOKIE)  # read as the console's pages read it
    session = console_web.codec(state).read(cookie, datetime.now(UTC))
    return larger if session is not None else CONSOLE_LIMIT


async def _authenticate_first(scope: Scope) -> None:
    """Who sends this body, before it is read; the route's own role check still follows."""
    state: State = scope["app"].state.regionlock
    authorization: str | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
            break
    key = await anyio.to_thread.run_sync(authenticate, state, authorization, Role.VIEWER)
    scope.setdefault("state", {})["api_key"] = key


def _limited(receive: Receive, scope: Scope, limit: int) -> Callable[[], Awaitable[Message]]:
    """`receive`, refusing a body past `limit` bytes: at once when Content-Length says so,
    else as soon as the stream passes it (nothing beyond is read)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise InvalidInput("Content-Length is not a number") from None
            if declared > limit:
                raise PayloadTooLarge(_too_large(limit))
    seen = 0

    async def guarded() -> Message:
        nonlocal seen
        message: Any = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(_too_large(limit))
        return message  # type: ignore[no-any-return]

    return guarded


def _too_large(limit: int) -> str:
    size = f"{limit // MIB} MiB" if limit >= MIB else f"{limit // KIB} KiB"
    return f"this operation takes a body of at most {size}"
