"""The console's static files (its one script), from the package: no CDN, nothing outside."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(prefix="/console/static", include_in_schema=False)

TYPES = {"console.js": "text/javascript; charset=utf-8"}


@cache
def _read(name: str) -> bytes:
    return resources.files("regionlock").joinpath("console/static", name).read_bytes()


@router.get("/{name}")
def static(name: str) -> Response:
    if name not in TYPES:
        return Response("no such file", status_code=404, media_type="text/plain")
    return Response(
        _read(name),
        media_type=TYPES[name],
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
