"""Appeals: the queue, one appeal with its evidence, an admin's decision."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from regionlock.api.deps import State
from regionlock.console import web
from regionlock.console.sessions import Session
from regionlock.domain.errors import Conflict, InvalidInput
from regionlock.services.appeals import Appeals, UnknownAppeal
from regionlock.storage.apikeys import ApiKey, Role

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/appeals")
def appeals(request: Request) -> Response:
    """The appeals queue, the oldest first, open ones by default."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    status = request.query_params.get("status", "open")
    status = status if status in ("open", "granted", "denied") else ""
    return web.page(
        "appeals.html.j2",
        page="appeals",
        key=key,
        csrf=web.codec(state).csrf(session),
        status_filter=status,
        appeals=Appeals.of(state.stores).list(status or None, limit=200),
    )


def _appeal_page(
    state: State,
    session: Session,
    key: ApiKey,
    appeal_id: str,
    status: int = 200,
    notice: str | None = None,
    **extra: Any,
) -> Response:
    try:
        found = Appeals.of(state.stores).get(appeal_id)
    except UnknownAppeal:
        return web.page(
            "appeals.html.j2",
            status=404,
            page="appeals",
            key=key,
            csrf=web.codec(state).csrf(session),
            status_filter="",
            appeals=[],
        )
    values: dict[str, Any] = {"notice": notice, "error": None} | extra
    return web.page(
        "appeal.html.j2",
        status=status,
        page="appeals",
        key=key,
        csrf=web.codec(state).csrf(session),
        a=found,
        can_act=key.role.allows(Role.ADMIN),
        **values,
    )


@router.get("/appeals/{appeal_id}")
def appeal(appeal_id: str, request: Request) -> Response:
    """One appeal: the owner's words, the evidence, and for admins the decision form."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    return _appeal_page(*signed_in, appeal_id[:64], notice=web.notice(request))


@router.post("/appeals/{appeal_id}/decide")
async def decide_appeal(appeal_id: str, request: Request) -> Response:
    """An admin grants or denies; audited as the key (`appeal.decide`)."""
    acting = await web.acting(request, Role.ADMIN, "decides appeals")
    if isinstance(acting, Response):
        return acting
    state, form, appeal_id = acting.state, acting.form, appeal_id[:64]
    grant = form.get("decision") == "grant"
    try:
        days = int(form.get("days", "")) if grant else None
    except ValueError:
        days = None
    try:
        await run_in_threadpool(
            lambda: Appeals.of(state.stores).decide(
                appeal_id,
                grant=grant,
                days=days,
                reason=form.get("reason", ""),
                actor=acting.key.actor,
                contact=form.get("contact") or None,
            )
        )
    except (InvalidInput, Conflict) as exc:
        return _appeal_page(state, acting.session, acting.key, appeal_id, 422, error=exc.message)
    return web.done(f"/console/appeals/{appeal_id}", "decided")
