"""The console's pages (docs/console.md). Login with an API key gives a session cookie
(`console/sessions.py`); every page needs one, and every form carries the session's CSRF token.
Pages are rendered on the server from the same services the API uses."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from regionlock.api.deps import State
from regionlock.console.sessions import COOKIE, LIFETIME, Session, SessionCodec
from regionlock.domain.errors import Conflict, DataUnavailable, InvalidInput, NotFound
from regionlock.geo.worldmap import world_map
from regionlock.report.html import render_html
from regionlock.report.svg import legend_svg, world_svg
from regionlock.services.appeals import Appeals, UnknownAppeal
from regionlock.services.cases import Cases
from regionlock.services.investigations import Investigations, Question
from regionlock.services.overview import Overview
from regionlock.services.policy_tools import diff_policies
from regionlock.services.reports import report_data
from regionlock.storage.apikeys import ApiKey, Role
from regionlock.storage.investigations import GROUP_COLUMNS

router = APIRouter(prefix="/console", include_in_schema=False)
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("regionlock", "console/templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["num"] = lambda v: f"{v:,}"
_env.filters["pct"] = lambda v: f"{v * 100:.1f} %"


def _state(request: Request) -> State:
    state: State = request.app.state.regionlock
    return state


def _codec(state: State) -> SessionCodec:
    codec: SessionCodec | None = getattr(state, "console_sessions", None)
    if codec is None:
        codec = SessionCodec(state.stores.devices.device_id_key())
        state.console_sessions = codec  # type: ignore[attr-defined]
    return codec


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**values), status_code=status)


def _who(request: Request, state: State) -> tuple[Session, ApiKey] | None:
    session = _codec(state).read(request.cookies.get(COOKIE), datetime.now(UTC))
    if session is None:
        return None
    for key in state.stores.apikeys.list():
        if key.id == session.key_id:
            return (session, key) if key.revoked_at is None else None
    return None


def _signed_in(request: Request) -> tuple[State, Session, ApiKey] | Response:
    """The app's state and who is signed in, or the redirect to the login page."""
    state = _state(request)
    who = _who(request, state)
    if who is None:
        return RedirectResponse("/console/login", status_code=303)
    return state, who[0], who[1]


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto == "https"


@router.get("/login")
def login_page(request: Request) -> Response:
    return _page("login.html.j2", error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    state = _state(request)
    token = (await _form(request)).get("api_key", "").strip()
    key = await run_in_threadpool(state.stores.apikeys.authenticate, token) if token else None
    if key is None:
        return _page("login.html.j2", status=401, error="That API key is not valid.")
    cookie, _ = _codec(state).issue(key.id, datetime.now(UTC))
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(LIFETIME.total_seconds()),
        path="/console",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    state = _state(request)
    who = _who(request, state)
    form = await _form(request)
    if who is not None and not _codec(state).csrf_ok(who[0], form.get("csrf")):
        return _page("login.html.j2", status=403, error="The form expired: log out again.")
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("/")
def overview(request: Request) -> Response:
    signed_in = _signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    view = Overview.of(state.stores).view()
    held = {p.code: p.locked + p.warned for p in view.countries if p.locked + p.warned}
    held |= {p.code: p.locked + p.warned for p in view.subdivisions if p.locked + p.warned}
    world = world_map()
    names = {code: code for code in held}
    return _page(
        "overview.html.j2",
        page="overview",
        key=key,
        csrf=_codec(state).csrf(session),
        view=view,
        map=Markup(world_svg(world, held, names, title="Devices locked or warned, by place")),
        legend=Markup(legend_svg(max(held.values(), default=0))),
        places=[p for p in view.countries if p.locked + p.warned][:20],
    )


PAGE = 50


@router.get("/devices")
def devices(request: Request) -> Response:
    """Search by IMEI or device id (`q`), or list by verdict and country, paged by id."""
    signed_in = _signed_in(request)
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
    return _page(
        "devices.html.j2",
        page="devices",
        key=key,
        csrf=_codec(state).csrf(session),
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
    signed_in = _signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    found = state.stores.devices.get(device_key[:64])
    values: dict[str, Any] = {"page": "devices", "key": key, "csrf": _codec(state).csrf(session)}
    if found is None:
        return _page(
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
    return _page(
        "device.html.j2",
        d=found,
        checkins=state.stores.checkins.recent(found.record.id, 50),
        appeals=state.stores.appeals.list(device_id=found.record.id, limit=20),
        **values,
    )


@router.get("/appeals")
def appeals(request: Request) -> Response:
    """The appeals queue, the oldest first, open ones by default."""
    signed_in = _signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    status = request.query_params.get("status", "open")
    status = status if status in ("open", "granted", "denied") else ""
    return _page(
        "appeals.html.j2",
        page="appeals",
        key=key,
        csrf=_codec(state).csrf(session),
        status_filter=status,
        appeals=Appeals.of(state.stores).list(status or None, limit=200),
    )


def _appeal_page(
    state: State, session: Session, key: ApiKey, appeal_id: str, status: int = 200, **extra: Any
) -> Response:
    try:
        found = Appeals.of(state.stores).get(appeal_id)
    except UnknownAppeal:
        return _page(
            "appeals.html.j2",
            status=404,
            page="appeals",
            key=key,
            csrf=_codec(state).csrf(session),
            status_filter="",
            appeals=[],
        )
    values: dict[str, Any] = {"notice": None, "error": None} | extra
    return _page(
        "appeal.html.j2",
        status=status,
        page="appeals",
        key=key,
        csrf=_codec(state).csrf(session),
        a=found,
        can_act=key.role.allows(Role.ADMIN),
        **values,
    )


@router.get("/appeals/{appeal_id}")
def appeal(appeal_id: str, request: Request) -> Response:
    """One appeal: the owner's words, the evidence, and for admins the decision form."""
    signed_in = _signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    return _appeal_page(*signed_in, appeal_id[:64])


@router.post("/appeals/{appeal_id}/decide")
async def decide_appeal(appeal_id: str, request: Request) -> Response:
    """An admin grants or denies; audited as the key (`appeal.decide`)."""
    signed_in = _signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    form = await _form(request)
    if not _codec(state).csrf_ok(session, form.get("csrf")):
        return _appeal_page(state, session, key, appeal_id[:64], 403, error="The form expired.")
    if not key.role.allows(Role.ADMIN):
        return _appeal_page(
            state, session, key, appeal_id[:64], 403, error="Only an admin decides appeals."
        )
    grant = form.get("decision") == "grant"
    try:
        days = int(form.get("days", "")) if grant else None
    except ValueError:
        days = None
    try:
        await run_in_threadpool(
            lambda: Appeals.of(state.stores).decide(
                appeal_id[:64],
                grant=grant,
                days=days,
                reason=form.get("reason", ""),
                actor=key.actor,
                contact=form.get("contact") or None,
            )
        )
    except (InvalidInput, Conflict) as exc:
        return _appeal_page(state, session, key, appeal_id[:64], 422, error=exc.message)
    return RedirectResponse(f"/console/appeals/{appeal_id[:64]}", status_code=303)


@router.get("/investigations")
def investigations(request: Request) -> Response:
    """The leak ranking (the active policy's places, every check-in), and the cases."""
    signed_in = _signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    by = request.query_params.get("by", "batch")
    by = by if by in GROUP_COLUMNS else "batch"
    report, error = None, None
    try:
        report = Investigations.of(state.stores, clock=state.clock.now).leaks(by, Question())
    except (InvalidInput, DataUnavailable) as exc:
        error = exc.message
    return _page(
        "investigations.html.j2",
        page="investigations",
        key=key,
        csrf=_codec(state).csrf(session),
        groupings=GROUP_COLUMNS,
        by=by,
        report=report,
        error=error,
        cases=Cases.of(state.stores).list(limit=50),
    )


@router.get("/investigations/report.html")
def investigation_report(request: Request) -> Response:
    """The self-contained report (of a case with `?case=`), as a file to keep."""
    signed_in = _signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state = signed_in[0]
    case = request.query_params.get("case") or None
    try:
        data = report_data(state.stores, Question(), case_id=case, clock=state.clock.now)
    except (InvalidInput, NotFound, DataUnavailable) as exc:
        return HTMLResponse(f"<p>{escape(exc.message)}</p>", status_code=422)
    name = f"regionlock-report-{case or 'now'}.html"
    return HTMLResponse(
        render_html(data, world_map()),
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.get("/campaigns")
def campaigns(request: Request) -> Response:
    """The most recent campaigns with their progress."""
    signed_in = _signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    return _page(
        "campaigns.html.j2",
        page="campaigns",
        key=key,
        csrf=_codec(state).csrf(session),
        campaigns=state.campaigns.recent(limit=100),
    )


@router.get("/campaigns/{campaign_id}")
def campaign(campaign_id: str, request: Request) -> Response:
    signed_in = _signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    values: dict[str, Any] = {"page": "campaigns", "key": key, "csrf": _codec(state).csrf(session)}
    try:
        found = state.campaigns.get(campaign_id[:64])
    except NotFound:
        return _page(
            "campaigns.html.j2",
            status=404,
            campaigns=state.campaigns.recent(limit=100),
            error=f"No campaign {campaign_id[:64]!r}.",
            **values,
        )
    return _page("campaign.html.j2", c=found, s=found.summary(), **values)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


@router.get("/policies")
def policies(request: Request) -> Response:
    """The active policy, what changed from the one before it, and the activation history."""
    signed_in = _signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    store = state.stores.policies
    active = store.active()
    diff = None
    if active is not None:
        with state.stores.db.read() as tx:
            before = store.previous(tx)
        if before is not None:
            admin = state.policies
            diff = diff_policies(admin.parse(before), admin.parse(active.policy))
    history = [
        {
            "when": _utc(a.activated_at),
            "policy": f"{a.policy.policy_id}@{a.policy.version}",
            "by": a.activated_by,
            "reason": a.reason,
        }
        for a in store.activations(limit=50)
    ]
    return _page(
        "policies.html.j2",
        page="policies",
        key=key,
        csrf=_codec(state).csrf(session),
        active=active,
        since=_utc(active.activated_at) if active else None,
        diff=diff,
        history=history,
    )
