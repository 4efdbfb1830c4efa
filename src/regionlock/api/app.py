"""The HTTP service: an app factory, its lifespan, and the operator-facing routes.

Device-facing routes (`POST /v1/checkin`, `GET /.well-known/jwks.json`, the unlock key, the
simulated clock) live in `api/device.py`; shared state, roles and errors in `api/deps.py`.
Operator-facing (Bearer API key; viewer < operator < admin): devices, audit, policies, keys.
Every regionlock error maps to an RFC 9457 problem document in one place (`deps.problem`).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from regionlock import __version__
from regionlock.api.deps import (
    Admin,
    Operator,
    State,
    StateDep,
    Viewer,
    problem,
    require,
)
from regionlock.api.device import CHECKIN_OPENAPI, add_device_routes
from regionlock.clock import Clock
from regionlock.domain.errors import RegionlockError
from regionlock.geo.locator import Locator
from regionlock.policies import PolicyError, parse_policy
from regionlock.services.checkin_queue import ServiceBusy
from regionlock.services.policy_tools import simulate_registry
from regionlock.services.registry import UnknownDevice, device_json
from regionlock.settings import Settings
from regionlock.storage.apikeys import Role


class ActionBody(BaseModel):
    reason: str = Field(min_length=1, max_length=500)
    until: date | None = None


class UnlockCodeBody(BaseModel):
    challenge: str = Field(min_length=8, max_length=12, examples=["1234-5678"])
    reason: str = Field(min_length=1, max_length=500)


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role


def create_app(
    settings: Settings | None = None,
    *,
    locator: Locator | None = None,
    clock: Clock | None = None,
    freeze_after_startup: bool = False,
) -> FastAPI:
    """The ASGI app. Tests pass their own settings (and a shared locator) instead of env vars;
    a `clock` other than the system's is accepted only when the settings allow a simulated one.
    A server process freezes what start-up built out of the garbage collector's sight
    (`freeze_after_startup`, `api/asgi.py`)."""
    settings = settings or Settings.from_env()
    if clock is not None and not settings.simulated_clock:
        raise ValueError("a clock may be passed only with simulated_clock enabled in the settings")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.regionlock = State(settings, locator, clock)
        if freeze_after_startup:
            # What start-up built (the locator's boundaries and tables, modules) lives as long
            # as the process: out of the collector's sight, a full collection no longer walks
            # it while check-ins wait (bench/README.md: p95 and p99 under load).
            gc.collect()
            gc.freeze()
        yield
        app.state.regionlock.checkin_queue.close()
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
        response = problem(exc.status, exc.type_slug, exc.message, request.url.path, extra)
        if isinstance(exc, ServiceBusy):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(
            422,
            "invalid-input",
            "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()),
            request.url.path,
        )

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness: answered on the event loop (no thread hop, no database), so it stays
        prompt while check-ins and operator requests keep the threads busy."""
        return {"ok": True, "version": __version__}

    add_device_routes(app, settings)

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
