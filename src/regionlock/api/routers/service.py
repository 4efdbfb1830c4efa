"""The service itself: liveness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from regionlock import __version__

api = APIRouter(tags=["service"])


@api.get("/health")
async def health() -> dict[str, Any]:
    """Liveness: answered on the event loop (no thread hop, no database), so it stays prompt
    while check-ins and operator requests keep the threads busy."""
    return {"ok": True, "version": __version__}
