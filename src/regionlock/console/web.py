"""What every console page shares: the templates, the session, the form reader, and the one
way an action is let through (signed in, the form's CSRF token, the key's role)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from regionlock.api.deps import State
from regionlock.console.sessions import COOKIE, Session, SessionCodec
from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import text_problem
from regionlock.services.recent import Recent
from regionlock.storage.apikeys import ApiKey, Role

T = TypeVar("T")

# Every console page says where it may load from: only this service, and scripts only from
# files (`/console/static/`), never inline; nothing can be framed, no form posted elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self';"
    " style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(value: datetime | date | str | int | None) -> Markup:
    """A time in UTC, marked up so that the page's script adds the reader's local time beside
    it; epoch milliseconds, ISO text or a datetime."""
    if value is None or value == "":
        return Markup("")
    if isinstance(value, int):
        at = datetime.fromtimestamp(value / 1000, UTC)
    elif isinstance(value, str):
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif isinstance(value, datetime):
        at = value
    else:
        return Markup('<time datetime="{0}">{0}</time>').format(value.isoformat())
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return Markup('<time datetime="{}">{} UTC</time>').format(
        at.isoformat().replace("+00:00", "Z"), at.strftime("%Y-%m-%d %H:%M")
    )


env = jinja2.Environment(
    loader=jinja2.PackageLoader("regionlock", "console/templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["num"] = lambda v: f"{v:,}"
env.filters["pct"] = lambda v: f"{v * 100:.1f} %"
env.filters["when"] = _when


def state_of(request: Request) -> State:
    state: State = request.app.state.regionlock
    return state


def codec(state: State) -> SessionCodec:
    codec: SessionCodec | None = getattr(state, "console_sessions", None)
    if codec is None:
        codec = SessionCodec(state.stores.devices.device_id_key())
        state.console_sessions = codec  # type: ignore[attr-defined]
    return codec


def recent(state: State, name: str, compute: Callable[[], T]) -> T:
    """`compute`'s value in this process, worked out again at most every
    REGIONLOCK_CONSOLE_OVERVIEW_TTL_S seconds in the background (services/recent.py): for
    pages that would read much of the store (the fleet's count, a leak ranking). `name`
    keeps one per kind; the first `compute` given for a name is the one kept."""
    kept: dict[str, Recent[Any]] | None = getattr(state, "console_recent", None)
    if kept is None:
        kept = state.console_recent = {}  # type: ignore[attr-defined]
    if name not in kept:
        kept[name] = Recent(compute, state.settings.console_overview_ttl_s, name=name)
    value: T = kept[name].get()
    return value


def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = env.get_template(name).render(**values)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def who(request: Request, state: State) -> tuple[Session, ApiKey] | None:
    session = codec(state).read(request.cookies.get(COOKIE), datetime.now(UTC))
    if session is None:
        return None
    key = state.stores.apikeys.get(session.key_id)
    return None if key is None or key.revoked_at is not None else (session, key)


def signed_in(request: Request) -> tuple[State, Session, ApiKey] | Response:
    """The app's state and who is signed in, or the redirect to the login page."""
    state = state_of(request)
    found = who(request, state)
    if found is None:
        return RedirectResponse("/console/login", status_code=303)
    return state, found[0], found[1]


# The longest value of each form field, as the API's request models allow; the rest: 200.
# A policy document is bounded by the body limit alone (api/guards.py).
MAX_LENGTH: dict[str, int | None] = {
    "reason": 1000,
    "message": 500,
    "where": 20_000,
    "devices": 60_000,
    "policy": None,
}


async def form(request: Request) -> dict[str, str]:
    """The posted form's fields (the first value of each); InvalidInput when the body is not
    UTF-8, or a value is longer than its field takes or holds what no store keeps (NUL, a
    lone surrogate)."""
    try:
        body = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the form is not UTF-8") from None
    fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    for name, value in fields.items():
        problem = text_problem(name) or text_problem(value)
        if problem is not None:
            raise InvalidInput(f"the field {name[:40]!r} {problem}")
        longest = MAX_LENGTH.get(name, 200)
        if longest is not None and len(value) > longest:
            raise InvalidInput(f"the field {name[:40]!r} takes at most {longest} characters")
    return fields


def secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto == "https"


@dataclass(frozen=True)
class Acting:
    """Who acts, with the posted form: let through by `acting`."""

    state: State
    session: Session
    key: ApiKey
    form: dict[str, str]

    @property
    def csrf(self) -> str:
        return codec(self.state).csrf(self.session)


ARTICLE = {Role.VIEWER: "a viewer", Role.OPERATOR: "an operator", Role.ADMIN: "an admin"}


def refused(
    state: State, session: Session, key: ApiKey, message: str, *, status: int = 403
) -> Response:
    return page(
        "refused.html.j2",
        status=status,
        page="",
        key=key,
        csrf=codec(state).csrf(session),
        message=message,
    )


async def acting(request: Request, role: Role, what: str) -> Acting | Response:
    """The one gate of every console action: a session (else the login page), the form's
    CSRF token (else 403), a key whose role allows `what` (else 403: the server refuses what
    the page hides), and a form that is text (else 400)."""
    signed = signed_in(request)
    if isinstance(signed, Response):
        return signed
    state, session, key = signed
    try:
        fields = await form(request)
    except InvalidInput as exc:
        return refused(state, session, key, exc.message, status=400)
    if not codec(state).csrf_ok(session, fields.get("csrf")):
        return refused(state, session, key, "The form expired: reload the page and try again.")
    if not key.role.allows(role):
        return refused(state, session, key, f"Only {ARTICLE[role]} or above {what}.")
    return Acting(state, session, key, fields)


def reason(fields: dict[str, str]) -> str:
    """The form's reason for the audit trail; InvalidInput when it is blank."""
    text = fields.get("reason", "").strip()
    if not text:
        raise InvalidInput("a reason is required (it goes into the audit trail)")
    return text


def done(url: str, notice: str) -> RedirectResponse:
    """After an action, back to a page that says what was done (POST, redirect, GET)."""
    sep = "&" if "?" in url else "?"
    return RedirectResponse(f"{url}{sep}done={notice}", status_code=303)


# What a page says after `done(url, notice)`: the notices are fixed words, never echoed text.
NOTICES = {
    "locked": "Locked: the device locks at its next check-in.",
    "unlocked": "Unlocked: the policy decides again at the device's next check-in.",
    "exempted": "Exempted: no lock applies at the device's next check-in.",
    "created": "Created as a draft: check it, then start it.",
    "started": "Started: the service applies it in the background.",
    "advanced": "Advanced to the next stage.",
    "paused": "Paused after the chunk in flight.",
    "cancelled": "Cancelled: what was applied stays.",
    "approved": "Approved.",
    "reverted": "This draft puts back what the campaign changed: start it to apply.",
    "activated": "Activated: devices get the new policy's verdict at their next check-in.",
    "rolledback": "Rolled back to the policy active before.",
    "decided": "Decided.",
}


def notice(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("done", ""))
