"""The fleet at a glance: devices by verdict, the active policy, the map of the share held
per place, check-ins per day, and a slider back through the days the service snapshotted."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from regionlock.console import web
from regionlock.geo.worldmap import world_map
from regionlock.policies import names as place_names
from regionlock.report.svg import daily_bars_svg, legend_svg, world_svg
from regionlock.services.overview import Overview

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/")
def overview(request: Request) -> Response:
    """Now, or `?day=YYYY-MM-DD`: the fleet as it stood at the end of that UTC day."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    service = Overview.of(state.stores)
    today = datetime.now(UTC).date()
    days = service.days(today)
    asked = request.query_params.get("day", "")
    error = None
    view = None
    if asked:
        with contextlib.suppress(ValueError):
            view = service.view(date.fromisoformat(asked[:10]))
        if view is None:
            error = f"No snapshot of the fleet on {asked[:10]!r}: showing it now."
    if view is None:
        view = web.recent(state, "overview", service.now)
    # Each place shaded by the share of its devices locked or warned, in whole percent
    # (rounded up: one held device in a big country still shows).
    shares = {
        p.code: math.ceil(p.held_share * 100)
        for p in (*view.countries, *view.subdivisions)
        if p.locked + p.warned
    }
    labels = [d.isoformat() for d, _ in days] + ["now"]
    position = labels.index(view.day.isoformat()) if view.day else len(labels) - 1
    return web.page(
        "overview.html.j2",
        status=404 if error else 200,
        page="overview",
        key=key,
        csrf=web.codec(state).csrf(session),
        view=view,
        ttl=state.settings.console_overview_ttl_s,
        error=error,
        map=Markup(
            world_svg(
                world_map(),
                shares,
                {code: place_names().name(code) or code for code in shares},
                title="Share of devices locked or warned, by place",
                unit=" % of its devices locked or warned",
                top=100,
                linear=True,
            )
        ),
        legend=Markup(legend_svg(100, unit=" %", linear=True) if shares else ""),
        places=[p for p in view.countries if p.locked + p.warned][:20],
        labels=labels,
        labels_json=json.dumps(labels),
        position=position,
        bars=Markup(
            daily_bars_svg([(d.isoformat(), n) for d, n in days], label="check-ins per day")
        ),
    )
