"""Campaigns: the list with progress, a new one with its dry run first, one campaign with its
live progress and its life (start, approve, advance, pause, cancel, revert). The console runs
the API's own code for each (`api/routers/campaigns.py`), so both refuse the same things."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from regionlock.api.deps import State
from regionlock.api.problems import problem_type
from regionlock.api.routers.campaigns import NewCampaign, approval_rule, create_or_preview
from regionlock.console import web
from regionlock.domain.campaign import SELECTION_FIELDS, Campaign, CampaignState
from regionlock.domain.errors import InvalidInput, NotFound, RegionlockError
from regionlock.services.campaigns import CampaignDrifted, Preview
from regionlock.storage.apikeys import ApiKey, Role

router = APIRouter(prefix="/console", include_in_schema=False)

ACTIONS = ("lock", "unlock", "exempt", "clear")
BLANK = {
    "name": "",
    "action": "lock",
    "where": "",
    "devices": "",
    "message": "",
    "contact": "",
    "until": "",
    "stages": "100",
    "reason": "",
}


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
        can_act=key.role.allows(Role.OPERATOR),
        error=None,
    )


def _new_page(
    key: ApiKey,
    csrf: str,
    fields: dict[str, str],
    *,
    status: int = 200,
    error: str | None = None,
    preview: Preview | None = None,
) -> Response:
    return web.page(
        "campaign-new.html.j2",
        status=status,
        page="campaigns",
        key=key,
        csrf=csrf,
        f=BLANK | fields,
        actions=ACTIONS,
        fields=tuple(SELECTION_FIELDS),
        error=error,
        preview=preview,
    )


@router.get("/campaigns/new")
def new_campaign(request: Request) -> Response:
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    return _new_page(key, web.codec(state).csrf(session), {})


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _body(fields: dict[str, str], dry_run: bool) -> NewCampaign:
    """The form as the API's request body; InvalidInput naming what is wrong."""
    try:
        stages = [float(s) for s in re.split(r"[,\s]+", fields.get("stages", "").strip()) if s]
    except ValueError:
        raise InvalidInput("stages: percentages such as 1, 10, 100") from None
    devices = re.split(r"[,\s]+", fields.get("devices", "").strip())
    raw = {
        "name": fields.get("name", ""),
        "action": fields.get("action", ""),
        "reason": fields.get("reason", ""),
        "where": _lines(fields.get("where", "")),
        "devices": [d for d in devices if d] or None,
        "message": fields.get("message") or None,
        "contact": fields.get("contact") or None,
        "until": fields.get("until") or None,
        "stages": stages or [100.0],
        "dry_run": dry_run,
    }
    try:
        return NewCampaign.model_validate(raw)
    except ValidationError as exc:
        said = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][:1]) or 'form'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise InvalidInput(said) from None


@router.post("/campaigns/new")
async def create_campaign(request: Request) -> Response:
    """`Preview` runs the dry run and shows what the campaign would reach, creating nothing;
    `Create` makes the draft (operator), to be started from its page."""
    acting = await web.acting(request, Role.OPERATOR, "creates campaigns")
    if isinstance(acting, Response):
        return acting
    fields = {k: v for k, v in acting.form.items() if k in BLANK}
    dry_run = acting.form.get("do") != "create"
    try:
        body = _body(fields, dry_run)
        done = await run_in_threadpool(create_or_preview, acting.state, body, acting.key.actor)
    except RegionlockError as exc:
        status = problem_type(exc).status
        return _new_page(acting.key, acting.csrf, fields, status=status, error=exc.message)
    if isinstance(done, Preview):
        return _new_page(acting.key, acting.csrf, fields, preview=done)
    return web.done(f"/console/campaigns/{quote(done.id)}", "created")


def _campaign_page(
    request: Request,
    state: State,
    key: ApiKey,
    csrf: str,
    campaign_id: str,
    status: int = 200,
    error: str | None = None,
) -> Response:
    values: dict[str, Any] = {"page": "campaigns", "key": key, "csrf": csrf}
    try:
        found = state.campaigns.get(campaign_id)
    except NotFound:
        return web.page(
            "campaigns.html.j2",
            status=404,
            campaigns=state.campaigns.recent(limit=100),
            can_act=key.role.allows(Role.OPERATOR),
            error=f"No campaign {campaign_id!r}.",
            **values,
        )
    drift = needs_approval = None
    if found.state is CampaignState.DRAFT:
        drift = state.campaigns.drift(found.id)
        needs_approval = state.campaigns.needs_approval(found.id, approval_rule(state))
    return web.page(
        "campaign.html.j2",
        status=status,
        c=found,
        s=found.summary(),
        drift=drift,
        needs_approval=needs_approval,
        can_act=key.role.allows(Role.OPERATOR),
        can_approve=key.role.allows(Role.ADMIN),
        notice=web.notice(request),
        error=error,
        **values,
    )


@router.get("/campaigns/{campaign_id}")
def campaign(campaign_id: str, request: Request) -> Response:
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    return _campaign_page(request, state, key, web.codec(state).csrf(session), campaign_id[:64])


def progress_of(c: Campaign) -> dict[str, Any]:
    n = c.counts
    return {
        "state": c.state.value,
        "stage": c.stage,
        "applied": n.applied,
        "skipped": n.skipped,
        "errors": n.errors,
        "pending": n.pending,
        "targets": n.targets,
        "handled": n.applied + n.skipped + n.errors,
        "moving": c.state is CampaignState.RUNNING,
    }


@router.get("/campaigns/{campaign_id}/progress")
def progress(campaign_id: str, request: Request) -> Response:
    """The campaign's counts as JSON, which its page polls while it runs."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return JSONResponse({"error": "not signed in"}, status_code=401)
    try:
        found = signed_in[0].campaigns.get(campaign_id[:64])
    except NotFound:
        return JSONResponse({"error": "no such campaign"}, status_code=404)
    return JSONResponse(progress_of(found), headers={"Cache-Control": "no-store"})


# What each button does: the role it needs and the notice after it.
STEPS = {
    "start": (Role.OPERATOR, "started"),
    "advance": (Role.OPERATOR, "advanced"),
    "pause": (Role.OPERATOR, "paused"),
    "cancel": (Role.OPERATOR, "cancelled"),
    "approve": (Role.ADMIN, "approved"),
    "revert": (Role.OPERATOR, "reverted"),
}


@router.post("/campaigns/{campaign_id}/{step}")
async def campaign_step(campaign_id: str, step: str, request: Request) -> Response:
    """One step of a campaign's life, as the API's route of the same name does it."""
    role, said = STEPS.get(step, (Role.OPERATOR, ""))
    acting = await web.acting(request, role, f"{step}s campaigns" if said else "acts")
    if isinstance(acting, Response):
        return acting
    state, form, actor, campaign_id = acting.state, acting.form, acting.key.actor, campaign_id[:64]
    reason = form.get("reason", "").strip() or None

    def run() -> Campaign:
        needed = web.reason(form) if step in ("pause", "cancel", "revert") else ""
        now = state.clock.now()
        campaigns = state.campaigns
        if step == "start":
            return campaigns.start(
                campaign_id,
                actor=actor,
                now=now,
                accept_changes=form.get("accept_changes") == "yes",
                approval=approval_rule(state),
                reason=reason,
            )
        if step == "advance":
            return campaigns.advance(campaign_id, actor=actor, now=now, reason=reason)
        if step == "approve":
            return campaigns.approve(campaign_id, actor=actor, now=now, reason=reason)
        if step == "pause":
            return campaigns.pause(campaign_id, actor=actor, reason=needed, now=now)
        if step == "cancel":
            return campaigns.cancel(campaign_id, actor=actor, reason=needed, now=now)
        if step == "revert":
            return campaigns.revert(
                campaign_id, actor=actor, reason=needed, now=now, stages=[100.0]
            )
        raise InvalidInput(f"no step {step[:20]!r} in a campaign's life")

    try:
        done = await run_in_threadpool(run)
    except CampaignDrifted as exc:
        error = f"{exc.message}. Tick “apply the frozen targets anyway” to start it as it is."
        return _campaign_page(
            request, state, acting.key, acting.csrf, campaign_id, 409, error=error
        )
    except RegionlockError as exc:
        return _campaign_page(
            request,
            state,
            acting.key,
            acting.csrf,
            campaign_id,
            problem_type(exc).status,
            error=exc.message,
        )
    if step in ("start", "advance"):
        state.campaign_runner.wake()
    return web.done(f"/console/campaigns/{quote(done.id)}", said)
