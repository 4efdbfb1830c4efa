"""The service itself: liveness (`/health`) and readiness (`/ready`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from regionlock import __version__
from regionlock.api.deps import StateDep

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
