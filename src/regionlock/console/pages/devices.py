"""Devices: search by IMEI or id, lists by verdict and country, one device."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from regionlock.console import web

router = APIRouter(prefix="/console", include_in_schema=False)


PAGE = 50


@router.get("/devices")
def devices(request: Request) -> Response:
    """Search by IMEI or device id (`q`), or list by verdict and country, paged by id."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    params = request.query_params
    q = params.get("q", "").strip()[:64]
    verdict = params.get("verdict", "")
    verdict = verdict if verdict in ("allow", "warn", "lock") else ""
    country = params.get("country", "").strip().upper()[:2]
    after = params.get("after", "")[:64]
    error = None
    rows = []
    next_url = None
    if q:
        found = state.stores.devices.get(q)
        if found is None:
            error = f"No device has the IMEI or id {q!r}."
        else:
            rows = [found]
    else:
        ids = state.stores.devices.list(
            verdict=verdict or None, country=country or None, after=after, limit=PAGE
        )
        rows = [d for d in (state.stores.devices.get(i) for i in ids) if d is not None]
        if len(ids) == PAGE:
            next_url = "/console/devices?" + urlencode(
                {"verdict": verdict, "country": country, "after": ids[-1]}
            )
    return web.page(
        "devices.html.j2",
        page="devices",
        key=key,
        csrf=web.codec(state).csrf(session),
        q=q,
        verdict=verdict,
        country=country,
        rows=rows,
        next=next_url,
        error=error,
    )


@router.get("/devices/{device_key}")
def device(device_key: str, request: Request) -> Response:
    """One device: its registry data and state, its verdicts with their evidence, its appeals."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    found = state.stores.devices.get(device_key[:64])
    values: dict[str, Any] = {"page": "devices", "key": key, "csrf": web.codec(state).csrf(session)}
    if found is None:
        return web.page(
            "devices.html.j2",
            status=404,
            q=device_key[:64],
            verdict="",
            country="",
            rows=[],
            next=None,
            error=f"No device has the IMEI or id {device_key[:64]!r}.",
            **values,
        )
    return web.page(
        "device.html.j2",
        d=found,
        checkins=state.stores.checkins.recent(found.record.id, 50),
        appeals=state.stores.appeals.list(device_id=found.record.id, limit=20),
        **values,
    )
