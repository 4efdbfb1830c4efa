"""The fleet at a glance: devices by verdict, the active policy, the map."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from regionlock.console import web
from regionlock.geo.worldmap import world_map
from regionlock.report.svg import legend_svg, world_svg
from regionlock.services.overview import Overview

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/")
def overview(request: Request) -> Response:
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    view = Overview.of(state.stores).view()
    held = {p.code: p.locked + p.warned for p in view.countries if p.locked + p.warned}
    held |= {p.code: p.locked + p.warned for p in view.subdivisions if p.locked + p.warned}
    world = world_map()
    names = {code: code for code in held}
    return web.page(
        "overview.html.j2",
        page="overview",
        key=key,
        csrf=web.codec(state).csrf(session),
        view=view,
        map=Markup(world_svg(world, held, names, title="Devices locked or warned, by place")),
        legend=Markup(legend_svg(max(held.values(), default=0))),
        places=[p for p in view.countries if p.locked + p.warned][:20],
    )
