"""The service itself: liveness (`/health`), readiness (`/ready`) and metrics (`/metrics`)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from regionlock import __version__
from regionlock.api.deps import State, StateDep, Viewer
from regionlock.api.metrics import StoreGauges
from regionlock.api.problems import AS_VIEWER
from regionlock.domain.campaign import CampaignState
from regionlock.settings import Settings

api = APIRouter(tags=["service"])


@api.get("/health")
async def health() -> dict[str, Any]:
    """Liveness: answered on the event loop (no thread hop, no database), so it stays prompt
    while check-ins and operator requests keep the threads busy."""
    return {"ok": True, "version": __version__}


@api.get(
    "/ready",
    responses={503: {"description": "The store is unavailable (problem+json, Retry-After)"}},
)
def ready(state: StateDep) -> dict[str, Any]:
    """Readiness: whether this node can serve, i.e. its store answers. A load balancer takes
    a node out while this answers 503 `store-unavailable`, and back when it answers 200 (the
    node reconnects by itself)."""
    state.stores.db.ping()  # StoreUnavailable: 503 with Retry-After
    return {"ok": True, "store": state.stores.db.dialect, "version": __version__}


LIVE = (CampaignState.RUNNING, CampaignState.WAITING, CampaignState.PAUSED)
METRICS_DOC = (
    "Prometheus metrics of this node, and the webhook backlog and campaigns' progress from"
    ' the store (docs/operating.md, "Metrics").'
)


def _metrics(state: State) -> Response:
    def campaigns() -> list[tuple[str, str, int, int]]:
        return [
            (c.id, c.state.value, c.counts.pending, c.counts.targets)
            for c in state.campaigns.recent(limit=100)
            if c.state in LIVE
        ]

    def audit() -> tuple[int, int, float | None]:
        audit = state.stores.audit
        heads = audit.tree_heads(limit=1)
        signed = heads[0].signed_at if heads else None
        age = None if signed is None else max(0.0, time.time() - signed / 1000)
        return audit.tree().size, audit.unsealed(), age

    gauges = StoreGauges(state.stores.webhooks.backlog, campaigns, audit)
    body, media_type = state.metrics.render(gauges)
    return Response(body, media_type=media_type)


def metrics_router(settings: Settings) -> APIRouter:
    """`GET /metrics`: with a viewer's key, or open to any scraper when
    REGIONLOCK_METRICS_PUBLIC is set (a private network only)."""
    router = APIRouter(tags=["service"])
    if settings.metrics_public:

        @router.get("/metrics", response_class=Response, description=METRICS_DOC)
        def open_metrics(state: StateDep) -> Response:
            return _metrics(state)

    else:

        @router.get(
            "/metrics", response_class=Response, responses=AS_VIEWER, description=METRICS_DOC
        )
        def metrics(state: StateDep, _: Viewer) -> Response:
            return _metrics(state)

    return router
