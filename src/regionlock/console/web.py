"""What every console page shares: the templates, the session, the form reader."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from regionlock.api.deps import State
from regionlock.console.sessions import COOKIE, Session, SessionCodec
from regionlock.storage.apikeys import ApiKey

env = jinja2.Environment(
    loader=jinja2.PackageLoader("regionlock", "console/templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["num"] = lambda v: f"{v:,}"
env.filters["pct"] = lambda v: f"{v * 100:.1f} %"


def state_of(request: Request) -> State:
    state: State = request.app.state.regionlock
    return state


def codec(state: State) -> SessionCodec:
    codec: SessionCodec | None = getattr(state, "console_sessions", None)
    if codec is None:
        codec = SessionCodec(state.stores.devices.device_id_key())
        state.console_sessions = codec  # type: ignore[attr-defined]
    return codec


def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(env.get_template(name).render(**values), status_code=status)


def who(request: Request, state: State) -> tuple[Session, ApiKey] | None:
    session = codec(state).read(request.cookies.get(COOKIE), datetime.now(UTC))
    if session is None:
        return None
    for key in state.stores.apikeys.list():
        if key.id == session.key_id:
            return (session, key) if key.revoked_at is None else None
    return None


def signed_in(request: Request) -> tuple[State, Session, ApiKey] | Response:
    """The app's state and who is signed in, or the redirect to the login page."""
    state = state_of(request)
    found = who(request, state)
    if found is None:
        return RedirectResponse("/console/login", status_code=303)
    return state, found[0], found[1]


async def form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto == "https"
