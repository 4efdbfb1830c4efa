"""Device-facing routes: check-in, verdict keys, the unlock key, and the simulated clock.

`POST /v1/checkin` is the hot path: a raw ASGI endpoint (`CheckinEndpoint`) without the
framework's request and dependency machinery, feeding the check-in queue (group commit); its
OpenAPI entry (`CHECKIN_OPENAPI`) is added by the app factory. `/v1/clock` exists only when the
settings enable a simulated clock (never in production).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regionlock.api.deps import (
    MAX_CHECKIN_BYTES,
    Admin,
    Forbidden,
    PayloadTooLarge,
    State,
    StateDep,
    UnsupportedMediaType,
)
from regionlock.api.problems import (
    AS_OPERATOR,
    INTERNAL,
    PROBLEM_JSON,
    count_refusal,
    error_response,
    problem,
    responses,
)
from regionlock.clock import ClockError, SimulatedClock
from regionlock.domain.errors import InvalidInput, RegionlockError
from regionlock.services.checkin import MAX_TOKEN_LIFETIME, CheckinCall
from regionlock.settings import Settings
from regionlock.signing import NoSigningKey
from regionlock.signing.jws import b64url_encode

CHECKIN_PATH = "/v1/checkin"
log = logging.getLogger(__name__)


class ClockBody(BaseModel):
    now: datetime


def router(settings: Settings) -> APIRouter:
    """The device-facing routes (the check-in first: the app includes this router first)."""
    api = APIRouter(tags=["device"])
    # The device path is the hot one: a raw ASGI endpoint, first in the routing table, skips
    # the framework's request, dependency and response machinery (bench/README.md). Errors
    # still go through the app's problem+json handlers; its OpenAPI entry is added by the app.
    api.routes.append(Route(CHECKIN_PATH, CheckinEndpoint(), methods=["POST"]))

    @api.get("/.well-known/jwks.json", responses=responses(NoSigningKey))
    def jwks(state: StateDep) -> dict[str, Any]:
        """The verdict-signing keys, current and still-published retired ones."""
        now = state.clock.now()
        return state.stores.keys.keyring(now).jwks(now, MAX_TOKEN_LIFETIME)

    @api.get("/.well-known/regionlock-unlock-key")
    def unlock_public_key(state: StateDep) -> dict[str, str]:
        """The service's X25519 public key for offline unlock codes, provisioned on devices."""
        key = state.stores.keys.unlock_key(state.clock.now()).public_key()
        return {"kty": "OKP", "crv": "X25519", "x": b64url_encode(key.public_bytes_raw())}

    if settings.simulated_clock:

        @api.get("/v1/clock", tags=["simulation"])
        def get_clock(state: StateDep) -> dict[str, Any]:
            """The service's simulated time (only with REGIONLOCK_SIMULATED_CLOCK)."""
            return {"now": state.clock.now().isoformat(), "simulated": True}

        @api.put("/v1/clock", tags=["simulation"], responses=AS_OPERATOR)
        def set_clock(body: ClockBody, state: StateDep, _: Admin) -> dict[str, Any]:
            """Move the simulated time forward (admin; never available in production)."""
            clock = state.clock
            if not isinstance(clock, SimulatedClock):
                raise Forbidden("this service's clock is not simulated")
            try:
                now = clock.set(body.now)
            except ClockError as exc:
                raise InvalidInput(str(exc)) from None
            return {"now": now.isoformat(), "simulated": True}

    return api


CHECKIN_OPENAPI: dict[str, Any] = {
    "post": {
        "tags": ["device"],
        "summary": "Check in",
        "description": "A device checks in with a compact JWS it signed (docs/protocol.md); the "
        "answer carries a verdict token it can verify offline against the JWKS.",
        "operationId": "checkin",
        "requestBody": {
            "required": True,
            "content": {
                "application/jose": {
                    "schema": {
                        "type": "string",
                        "description": "compact JWS signed by the device (protocol v1)",
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "The verdict: `token` and its claims mirrored",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **{
                code: {
                    "description": what,
                    "content": {PROBLEM_JSON: {"schema": {"type": "object"}}},
                }
                for code, what in (
                    ("401", "bad signature, malformed token, clock skew"),
                    ("404", "unknown device"),
                    ("409", "replayed nonce or stale counter"),
                    ("413", "payload too large"),
                    ("415", "not application/jose"),
                    ("422", "invalid check-in payload or signal"),
                    ("429", "the device checks in too often (rate-limited; Retry-After)"),
                )
            },
        },
    }
}


class CheckinEndpoint:
    """`POST /v1/checkin` as a plain ASGI app: the body is read up to the size limit and no
    further, the check-in goes to the check-in queue, the answer is written as JSON."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: State = scope["app"].state.regionlock
        headers = {k.lower(): v for k, v in scope["headers"]}
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/jose":
            raise UnsupportedMediaType("send the compact JWS as Content-Type: application/jose")
        try:
            body = await _read_body(receive, MAX_CHECKIN_BYTES)
        except ClientDisconnect:
            return  # nobody to answer; nothing was done
        forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1")
        peer = peer_address(scope.get("client"), forwarded, state.settings.trusted_proxies)
        out = await state.checkin_queue.check_in(CheckinCall(body, peer, state.clock.now()))
        state.metrics.checkins.labels(out["verdict"]).inc()
        # The claims are canonical JSON members (no floats): orjson writes the same bytes as
        # the standard library with these options, ten times faster (signing/jws.py).
        try:
            payload = orjson.dumps(out)
        except orjson.JSONEncodeError:  # what only the standard library takes (str subclasses)
            payload = json.dumps(
                out, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class CheckinLane:
    """The app's front (`api/app.py`, `RegionlockApp`): `POST /v1/checkin` straight to
    `CheckinEndpoint`, past every layer of the framework - its telemetry, error, body-limit,
    exception, exit-stack and routing layers and ours (bench/README.md, "Check-in service" and
    "The check-in lane in front of the framework"); everything else, other methods on the path
    included, to `app`.

    So the lane does for a check-in what those layers do for the rest: it times it into the
    latency histogram, answers a refusal from the same table as everywhere (`error_response`)
    and counts it as the app's handler does, and answers anything unexpected with the 500
    problem document the app's last-resort handler sends, after logging it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.endpoint = CheckinEndpoint()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CHECKIN_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state: State | None = getattr(scope["app"].state, "regionlock", None)
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.endpoint(scope, receive, sending)
        except RegionlockError as exc:
            count_refusal(state, CHECKIN_PATH, exc)
            await error_response(exc, CHECKIN_PATH)(scope, receive, send)
        except Exception:
            if started:  # nothing can be answered any more: the server logs it
                raise
            log.exception("unexpected error answering POST %s", CHECKIN_PATH)
            answer = problem(INTERNAL, "an unexpected error; it has been logged", CHECKIN_PATH)
            await answer(scope, receive, send)
        finally:
            if state is not None:
                state.metrics.latency.labels(CHECKIN_PATH, "POST").observe(
                    time.perf_counter() - start
                )


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refused as soon as it passes `limit` bytes (nothing more is read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"a check-in is at most {limit // 1024} KiB")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def peer_address(
    client: tuple[str, int] | list[Any] | None, forwarded_for: str, trusted_proxies: Sequence[str]
) -> str | None:
    """The device's address: the socket peer, or the last X-Forwarded-For hop when the peer is
    a trusted proxy (only then: anyone can send the header).

    Anything that is not an IP address (a Unix socket, a test client) means "no address".
    """
    try:
        addr = ipaddress.ip_address(client[0] if client else "")
    except ValueError:
        return None
    if trusted_proxies and any(addr in net for net in _networks(tuple(trusted_proxies))):
        hop = forwarded_for.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return str(addr)
    return str(addr)


@functools.lru_cache(maxsize=16)
def _networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The trusted proxies' networks, parsed once (not on every check-in behind them)."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in proxies)
