"""The console's pages (docs/console.md), one router per area. Login with an API key gives a
session cookie (`console/sessions.py`); every page needs one, and every form carries the
session's CSRF token. Pages are rendered on the server from the same services the API uses."""

from __future__ import annotations

from fastapi import APIRouter

from regionlock.console.pages import (
    appeals,
    audit,
    auth,
    campaigns,
    devices,
    investigations,
    overview,
    policies,
    static,
)

router = APIRouter()
for area in (static, auth, overview, devices, appeals, investigations, campaigns, policies, audit):
    router.include_router(area.router)
