"""Campaigns, read only: the list with progress, one campaign."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from regionlock.console import web
from regionlock.domain.errors import NotFound

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/campaigns")
def campaigns(request: Request) -> Response:
    """The most recent campaigns with their progress."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    return web.page(
        "campaigns.html.j2",
        page="campaigns",
        key=key,
        csrf=web.codec(state).csrf(session),
        campaigns=state.campaigns.recent(limit=100),
    )


@router.get("/campaigns/{campaign_id}")
def campaign(campaign_id: str, request: Request) -> Response:
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    values: dict[str, Any] = {
        "page": "campaigns",
        "key": key,
        "csrf": web.codec(state).csrf(session),
    }
    try:
        found = state.campaigns.get(campaign_id[:64])
    except NotFound:
        return web.page(
            "campaigns.html.j2",
            status=404,
            campaigns=state.campaigns.recent(limit=100),
            error=f"No campaign {campaign_id[:64]!r}.",
            **values,
        )
    return web.page("campaign.html.j2", c=found, s=found.summary(), **values)
