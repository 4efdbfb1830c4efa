"""The HTTP service: an app factory, its lifespan, typed dependencies, problem+json errors.

Device-facing: `POST /v1/checkin` (application/jose), `GET /.well-known/jwks.json`.
Operator-facing (Bearer API key; viewer < operator < admin): devices, audit, policies.
Every regionlock error maps to an RFC 9457 problem document in one place (`_problem`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from regionlock import __version__
from regionlock.clock import Clock, ClockError, SimulatedClock, SystemClock
from regionlock.domain.errors import InvalidInput, RegionlockError
from regionlock.geo.locator import Locator
from regionlock.policies import PolicyError, parse_policy
from regionlock.services.access import Access
from regionlock.services.checkin import MAX_TOKEN_LIFETIME, CheckinService
from regionlock.services.policy_tools import simulate_registry
from regionlock.services.registry import Registry, UnknownDevice, device_json
from regionlock.settings import Settings
from regionlock.signing.jws import b64url_encode
from regionlock.storage import open_database
from regionlock.storage.apikeys import ApiKey, Role, SqlApiKeyStore

PROBLEM_BASE = "https://regionlock.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class Unauthorized(RegionlockError):
    status = 401
    type_slug = "unauthorized"


class Forbidden(RegionlockError):
    status = 403
    type_slug = "forbidden"


class UnsupportedMediaType(RegionlockError):
    status = 415
    type_slug = "unsupported-media-type"


class PayloadTooLarge(RegionlockError):
    status = 413
    type_slug = "payload-too-large"


MAX_CHECKIN_BYTES = 64 * 1024  # docs/protocol.md


def _problem(
    status: int, slug: str, detail: str, instance: str, extra: dict[str, Any] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": slug.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


class State:
    """What the app holds for its lifetime (one per process)."""

    def __init__(self, settings: Settings, locator: Locator | None, clock: Clock | None) -> None:
        self.settings = settings
        # A simulated clock only where the settings allow one (never in production).
        self.clock: Clock = clock or (
            SimulatedClock() if settings.simulated_clock else SystemClock()
        )
        self.db = open_database(settings.database_url)
        self.locator = locator or Locator(ip_source=settings.ip_db)
        self.checkins = CheckinService(self.db, self.locator, settings)
        self.registry = Registry(self.db)
        self.apikeys = SqlApiKeyStore(self.db)
        self.access = Access(self.db)
        # Check-ins run in a small pool of their own: SQLite has one writer, so more threads
        # only fight over the GIL and the write lock; PostgreSQL gains from overlapping
        # round trips, so it gets more.
        self.checkin_pool = ThreadPoolExecutor(
            max_workers=2 if self.db.dialect == "sqlite" else 8, thread_name_prefix="checkin"
        )


def _state(request: Request) -> State:
    state: State = request.app.state.regionlock
    return state


StateDep = Annotated[State, Depends(_state)]


def require(role: Role) -> Callable[..., ApiKey]:
    """A dependency admitting API keys with at least `role`."""

    def check(state: StateDep, authorization: Annotated[str | None, Header()] = None) -> ApiKey:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("send 'Authorization: Bearer <api key>'")
        key = state.apikeys.authenticate(authorization.removeprefix("Bearer ").strip())
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        if not key.role.allows(role):
            raise Forbidden(f"this needs the {role.value} role; the key is {key.role.value}")
        return key

    return check


Viewer = Annotated[ApiKey, Depends(require(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(require(Role.OPERATOR))]
Admin = Annotated[ApiKey, Depends(require(Role.ADMIN))]


class ActionBody(BaseModel):
    reason: str = Field(min_length=1, max_length=500)
    until: date | None = None


class UnlockCodeBody(BaseModel):
    challenge: str = Field(min_length=8, max_length=12, examples=["1234-5678"])
    reason: str = Field(min_length=1, max_length=500)


class ClockBody(BaseModel):
    now: datetime


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role


def create_app(
    settings: Settings | None = None, *, locator: Locator | None = None, clock: Clock | None = None
) -> FastAPI:
    """The ASGI app. Tests pass their own settings (and a shared locator) instead of env vars;
    a `clock` other than the system's is accepted only when the settings allow a simulated one."""
    settings = settings or Settings.from_env()
    if clock is not None and not settings.simulated_clock:
        raise ValueError("a clock may be passed only with simulated_clock enabled in the settings")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.regionlock = State(settings, locator, clock)
        yield
        app.state.regionlock.checkin_pool.shutdown(wait=True)
        app.state.regionlock.db.close()

    app = FastAPI(
        title="regionlock",
        version=__version__,
        lifespan=lifespan,
        description="Device check-ins with signed verdicts; operator API.",
    )

    @app.exception_handler(RegionlockError)
    async def regionlock_error(request: Request, exc: RegionlockError) -> JSONResponse:
        extra = {k: getattr(exc, k) for k in ("field", "server_time") if hasattr(exc, k)}
        return _problem(exc.status, exc.type_slug, exc.message, request.url.path, extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _problem(
            422,
            "invalid-input",
            "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()),
            request.url.path,
        )

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__}

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
        # The pipeline is synchronous (crypto, location, a database transaction): run it in
        # the thread pool so one check-in never blocks the event loop for the others.
        out = await asyncio.get_running_loop().run_in_executor(
            state.checkin_pool,
            functools.partial(state.checkins.check_in, body, peer_ip=peer, now=state.clock.now()),
        )
        return JSONResponse(out)

    # The device path is the hot one: a plain route skips FastAPI's dependency solving and
    # response model machinery (31 % more requests/s in bench/frameworks-2026-11.md). Errors
    # still go through the problem+json handlers; its OpenAPI entry is added below.
    app.router.add_route("/v1/checkin", checkin, methods=["POST"], include_in_schema=False)

    @app.get("/v1/devices", tags=["operators"])
    def list_devices(
        state: StateDep,
        _: Viewer,
        model: str | None = None,
        batch: str | None = None,
        distributor: str | None = None,
        country: str | None = None,
        verdict: str | None = None,
        after: str = "",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        ids = state.registry.devices.list(
            model=model,
            batch=batch,
            distributor=distributor,
            country=country,
            verdict=verdict,
            after=after,
            limit=limit,
        )
        return {"devices": ids, "next": ids[-1] if len(ids) == limit else None}

    @app.get("/v1/devices/{key}", tags=["operators"])
    def get_device(key: str, state: StateDep, _: Viewer) -> dict[str, Any]:
        found = state.registry.devices.get(key)
        if found is None:
            raise UnknownDevice(f"no device with id or IMEI {key!r}")
        return device_json(found)

    @app.get("/v1/devices/{key}/checkins", tags=["operators"])
    def device_checkins(
        key: str, state: StateDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        found = state.registry.devices.get(key)
        if found is None:
            raise UnknownDevice(f"no device with id or IMEI {key!r}")
        return {
            "device": found.record.id,
            "checkins": state.checkins.checkin_rows.recent(found.record.id, limit),
        }

    def _act(name: str) -> Callable[..., dict[str, Any]]:
        def act(key: str, body: ActionBody, state: StateDep, who: Operator) -> dict[str, Any]:
            kwargs: dict[str, Any] = {"until": body.until} if name == "exempt" else {}
            d = getattr(state.registry, name)(
                key,
                reason=body.reason,
                actor=f"apikey:{who.id} ({who.name})",
                now=state.clock.now(),
                **kwargs,
            )
            return {
                "device": d.record.id,
                "action": name,
                "effective": "at the device's next check-in",
            }

        return act

    for name in ("lock", "unlock", "exempt"):
        app.post(f"/v1/devices/{{key}}/{name}", tags=["operators"], name=f"device_{name}")(
            _act(name)
        )

    @app.post("/v1/devices/{key}/unlock-code", tags=["operators"])
    def device_unlock_code(
        key: str, body: UnlockCodeBody, state: StateDep, who: Operator
    ) -> dict[str, Any]:
        """The offline unlock code for the challenge a locked device shows (operator).

        The code lifts the lock on that device, for that challenge, once; the next verdict
        decides again (add an exemption to keep it unlocked)."""
        device, code = state.registry.unlock_code(
            key,
            body.challenge,
            reason=body.reason,
            actor=f"apikey:{who.id} ({who.name})",
            now=state.clock.now(),
        )
        return {"device": device, "challenge": body.challenge, "code": code}

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

    @app.get("/v1/audit", tags=["operators"])
    def audit(
        state: StateDep,
        _: Viewer,
        after: int = 0,
        subject: str | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    ) -> dict[str, Any]:
        entries = state.checkins.audit.entries(after=after, subject=subject, limit=limit)
        return {"entries": [e.to_json() for e in entries]}

    @app.get("/v1/policies/active", tags=["policies"])
    def active_policy(state: StateDep, _: Viewer) -> dict[str, Any]:
        found = state.checkins.policies.active()
        if found is None:
            return {"active": None}
        _policy, a = found
        return {
            "active": {
                "id": a.policy.policy_id,
                "version": a.policy.version,
                "sha256": a.policy.sha256,
                "activated_by": a.activated_by,
                "reason": a.reason,
                "document": a.policy.document,
            }
        }

    @app.post(
        "/v1/policies/activate",
        tags=["policies"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/toml": {"schema": {"type": "string"}}},
            }
        },
    )
    async def activate_policy(
        request: Request, reason: Annotated[str, Query(min_length=1)]
    ) -> dict[str, Any]:
        """Validate a TOML policy and make it active (admin). A bad policy is never stored."""
        state: State = request.app.state.regionlock
        who = require(Role.ADMIN)(state, request.headers.get("authorization"))
        text = (await request.body()).decode("utf-8", errors="strict")
        a = state.checkins.policies.activate(
            text, source="api", actor=f"apikey:{who.id}", reason=reason, now=state.clock.now()
        )
        return {"active": {"id": a.policy.policy_id, "version": a.policy.version}}

    @app.post(
        "/v1/policies/validate",
        tags=["policies"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/toml": {"schema": {"type": "string"}}},
            }
        },
    )
    async def validate_policy(request: Request, _: Viewer) -> JSONResponse:
        """Check a TOML policy; every problem is listed with its line (nothing is stored)."""
        text = (await request.body()).decode("utf-8", errors="replace")
        try:
            p = parse_policy(text, "request body")
        except PolicyError as exc:
            return JSONResponse(
                {
                    "valid": False,
                    "problems": [
                        {"line": pr.line, "path": pr.path, "message": pr.message}
                        for pr in exc.problems
                    ],
                },
                status_code=422,
            )
        return JSONResponse(
            {"valid": True, "id": p.id, "version": p.version, "restrictions": len(p.restrictions)}
        )

    @app.post(
        "/v1/policies/simulate",
        tags=["policies"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/toml": {"schema": {"type": "string"}}},
            }
        },
    )
    async def simulate_policy(request: Request, _: Viewer) -> dict[str, Any]:
        """How many registered devices per country and verdict would change if this policy
        replaced the active one (each device at its last known place)."""
        state: State = request.app.state.regionlock
        candidate = parse_policy(
            (await request.body()).decode("utf-8", errors="replace"), "request body"
        )
        active = state.checkins.policies.active()
        report = simulate_registry(
            state.registry.devices, candidate, active[0] if active else None, state.clock.now()
        )
        return report.to_json()

    @app.post(
        "/v1/devices/import",
        tags=["operators"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    )
    async def import_devices(request: Request) -> dict[str, Any]:
        """Register devices from CSV (operator); idempotent; bad rows reported by line."""
        state: State = request.app.state.regionlock
        who = require(Role.OPERATOR)(state, request.headers.get("authorization"))
        text = (await request.body()).decode("utf-8-sig", errors="strict")
        report = state.registry.import_csv(
            text.splitlines(keepends=True),
            actor=f"apikey:{who.id} ({who.name})",
            source="api",
            now=state.clock.now(),
        )
        return {
            "imported": report.imported,
            "unchanged": report.unchanged,
            "repeated_rows": report.duplicates_in_file,
            "problems": [{"line": p.line, "message": p.message} for p in report.problems],
        }

    @app.get("/v1/apikeys", tags=["admin"])
    def list_apikeys(state: StateDep, _: Admin) -> dict[str, Any]:
        return {
            "keys": [
                {
                    "id": k.id,
                    "name": k.name,
                    "role": k.role.value,
                    "created_at": k.created_at,
                    "revoked_at": k.revoked_at,
                }
                for k in state.apikeys.list()
            ]
        }

    @app.post("/v1/apikeys", tags=["admin"], status_code=201)
    def create_apikey(body: NewKey, state: StateDep, who: Admin) -> dict[str, Any]:
        """Create an API key; the token is in this response only and never stored."""
        key, token = state.access.create_apikey(
            name=body.name, role=body.role, actor=f"apikey:{who.id}", now=state.clock.now()
        )
        return {"id": key.id, "role": key.role.value, "token": token}

    @app.post("/v1/apikeys/{key_id}/revoke", tags=["admin"])
    def revoke_apikey(key_id: str, body: ActionBody, state: StateDep, who: Admin) -> dict[str, Any]:
        state.access.revoke_apikey(
            key_id, reason=body.reason, actor=f"apikey:{who.id}", now=state.clock.now()
        )
        return {"id": key_id, "revoked": True}

    @app.post("/v1/keys/rotate", tags=["admin"])
    def rotate_signing_key(body: ActionBody, state: StateDep, who: Admin) -> dict[str, Any]:
        """Add a verdict-signing key; the old one stays in the JWKS until its tokens expire."""
        new = state.access.rotate_signing_key(
            reason=body.reason, actor=f"apikey:{who.id}", now=state.clock.now()
        )
        state.checkins.forget_keyring()
        return {"kid": new.kid}

    @app.post("/v1/policies/rollback", tags=["policies"])
    def rollback_policy(body: ActionBody, state: StateDep, who: Admin) -> dict[str, Any]:
        a = state.checkins.policies.rollback(
            actor=f"apikey:{who.id}", reason=body.reason, now=state.clock.now()
        )
        return {"active": {"id": a.policy.policy_id, "version": a.policy.version}}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema["paths"]["/v1/checkin"] = CHECKIN_OPENAPI
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


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
