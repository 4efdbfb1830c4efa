"""Logging in with an API key, and out (docs/console.md, "Logging in")."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from regionlock.console import web
from regionlock.console.sessions import COOKIE, LIFETIME

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/login")
def login_page(request: Request) -> Response:
    return web.page("login.html.j2", error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    state = web.state_of(request)
    token = (await web.form(request)).get("api_key", "").strip()
    key = await run_in_threadpool(state.stores.apikeys.authenticate, token) if token else None
    if key is None:
        return web.page("login.html.j2", status=401, error="That API key is not valid.")
    cookie, _ = web.codec(state).issue(key.id, datetime.now(UTC))
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(LIFETIME.total_seconds()),
        path="/console",
        httponly=True,
        samesite="strict",
        secure=web.secure(request),
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    state = web.state_of(request)
    who = web.who(request, state)
    form = await web.form(request)
    if who is not None and not web.codec(state).csrf_ok(who[0], form.get("csrf")):
        return web.page("login.html.j2", status=403, error="The form expired: log out again.")
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response
