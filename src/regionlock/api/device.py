"""Device-facing routes: check-in, verdict keys, the unlock key, and the simulated clock.

`POST /v1/checkin` is the hot path: a plain route without FastAPI's dependency machinery; its
OpenAPI entry (`CHECKIN_OPENAPI`) is added by the app factory. `/v1/clock` exists only when the
settings enable a simulated clock (never in production).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from regionlock.api.deps import (
    MAX_CHECKIN_BYTES,
    PROBLEM_JSON,
    Admin,
    Forbidden,
    PayloadTooLarge,
    State,
    StateDep,
    UnsupportedMediaType,
)
from regionlock.clock import ClockError, SimulatedClock
from regionlock.domain.errors import InvalidInput
from regionlock.services.checkin import MAX_TOKEN_LIFETIME, CheckinCall
from regionlock.settings import Settings
from regionlock.signing.jws import b64url_encode


class ClockBody(BaseModel):
    now: datetime


def add_device_routes(app: FastAPI, settings: Settings) -> None:
    """Register the device-facing routes on `app`."""

    @app.get("/.well-known/jwks.json", tags=["device"])
    def jwks(state: StateDep) -> dict[str, Any]:
        """The verdict-signing keys, current and still-published retired ones."""
        now = state.clock.now()
        return state.checkins.keys.keyring(now).jwks(now, MAX_TOKEN_LIFETIME)

    async def checkin(request: Request) -> JSONResponse:
        """A device checks in; the answer carries a verdict token it can verify offline."""
        state: State = request.app.state.regionlock
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/jose":
            raise UnsupportedMediaType("send the compact JWS as Content-Type: application/jose")
        body = await request.body()
        if len(body) > MAX_CHECKIN_BYTES:
            raise PayloadTooLarge("a check-in is at most 64 KiB")
        peer = _peer(request, state.settings)
        # The pipeline is synchronous (crypto, location, a database transaction): it runs on
        # the check-in queue's threads, in groups that share one transaction under load.
        out = await state.checkin_queue.check_in(CheckinCall(body, peer, state.clock.now()))
        return JSONResponse(out)

    # The device path is the hot one: a plain route skips FastAPI's dependency solving and
    # response model machinery (31 % more requests/s in bench/frameworks-2026-11.md). Errors
    # still go through the problem+json handlers; its OpenAPI entry is added below.
    app.router.add_route("/v1/checkin", checkin, methods=["POST"], include_in_schema=False)

    @app.get("/.well-known/regionlock-unlock-key", tags=["device"])
    def unlock_public_key(state: StateDep) -> dict[str, str]:
        """The service's X25519 public key for offline unlock codes, provisioned on devices."""
        key = state.checkins.keys.unlock_key(state.clock.now()).public_key()
        return {"kty": "OKP", "crv": "X25519", "x": b64url_encode(key.public_bytes_raw())}

    if settings.simulated_clock:

        @app.get("/v1/clock", tags=["simulation"])
        def get_clock(state: StateDep) -> dict[str, Any]:
            """The service's simulated time (only with REGIONLOCK_SIMULATED_CLOCK)."""
            return {"now": state.clock.now().isoformat(), "simulated": True}

        @app.put("/v1/clock", tags=["simulation"])
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
                )
            },
        },
    }
}


def _peer(request: Request, settings: Settings) -> str | None:
    """The device's address: the socket peer, or X-Forwarded-For behind a trusted proxy only.

    Anything that is not an IP address (a Unix socket, a test client) means "no address".
    """
    peer = request.client.host if request.client else None
    try:
        addr = ipaddress.ip_address(peer or "")
    except ValueError:
        return None
    if settings.trusted_proxies and any(
        addr in ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies
    ):
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            return str(addr)
    return str(addr)
