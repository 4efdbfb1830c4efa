"""The HTTP service's factory: settings, state, error handlers and one router per area.

Device-facing routes (`POST /v1/checkin`, the JWKS, the unlock key, the simulated clock) are in
`api/routers/device.py`; operator-facing ones (Bearer API key; viewer < operator < admin) in
one router per area. Every refusal is an RFC 9457 problem document (`api/problems.py`).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from regionlock import __version__
from regionlock.api.deps import State
from regionlock.api.docs_ui import install_docs
from regionlock.api.guards import RequestGuard
from regionlock.api.metrics import Metrics, Timing
from regionlock.api.problems import document_problems, install_error_handlers
from regionlock.api.routers import (
    admin,
    appeals,
    audit,
    campaigns,
    cases,
    device,
    devices,
    investigations,
    policies,
    service,
    webhooks,
)
from regionlock.clock import Clock
from regionlock.console import routes as console_routes
from regionlock.geo.locator import Locator
from regionlock.settings import Settings


class RegionlockApp(FastAPI):
    """The FastAPI app with the check-in's lane in front of it (`device.CheckinLane`): the
    hot path skips every layer the framework puts before user middleware (its native
    telemetry, error and body-limit layers: about 25 us of the event loop's time a check-in,
    bench/README.md, "The check-in lane in front of the framework"), and everything else is
    served as by FastAPI. Check-ins are thus not in FastAPI's OpenTelemetry spans; the
    node's Prometheus metrics count and time them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkin_lane = device.CheckinLane(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # as the framework sets it, for the lane's endpoint
        await self.checkin_lane(scope, receive, send)


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
        app.state.regionlock = State(settings, locator, clock, metrics)
        if freeze_after_startup:
            # What start-up built (the locator's boundaries and tables, modules) lives as long
            # as the process: out of the collector's sight, a full collection no longer walks
            # it while check-ins wait (bench/README.md: p95 and p99 under load).
            gc.collect()
            gc.freeze()
        yield
        app.state.regionlock.close()

    app = RegionlockApp(
        title="regionlock",
        version=__version__,
        lifespan=lifespan,
        description="Device check-ins with signed verdicts; operator API.",
        docs_url=None,  # served from the package by `install_docs`, not from a CDN
        redoc_url=None,
    )
    metrics = Metrics()
    install_error_handlers(app)
    app.add_middleware(RequestGuard)
    app.add_middleware(Timing, metrics=metrics)  # every answer but a check-in's (its lane's)
    install_docs(app)
    app.include_router(device.router(settings))  # first: the check-in is the hot path
    app.include_router(service.api)
    app.include_router(devices.api)
    app.include_router(policies.api)
    app.include_router(campaigns.api)
    app.include_router(cases.api)
    app.include_router(webhooks.api)
    app.include_router(appeals.api)
    app.include_router(console_routes.router)  # the console's pages (docs/console.md)
    app.include_router(investigations.api)
    app.include_router(audit.api)
    app.include_router(admin.api)
    app.include_router(service.metrics_router(settings))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema["paths"]["/v1/checkin"] = device.CHECKIN_OPENAPI
            app.openapi_schema = document_problems(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
