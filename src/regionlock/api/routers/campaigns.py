"""Bulk campaigns for operators: dry run, create, read, and the life of a campaign (start,
advance, pause, cancel, a second admin's approval, revert). A campaign started here is applied
by the service's background runner (`services/campaign_runner.py`), never in the request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from regionlock.api.deps import (
    TEXT_PATTERN,
    WORDS_PATTERN,
    Admin,
    KeyPath,
    Operator,
    Reason,
    State,
    StateDep,
    Text,
    Viewer,
)
from regionlock.api.problems import AS_OPERATOR, AS_VIEWER, problem, problem_type, responses
from regionlock.domain.campaign import (
    SELECTION_FIELDS,
    ApprovalRule,
    Campaign,
    CampaignAction,
    CampaignState,
    Selection,
    parse_stages,
)
from regionlock.domain.errors import Conflict, InvalidInput
from regionlock.domain.messages import message_text
from regionlock.geo.countries import country_names
from regionlock.services.campaigns import (
    ApprovalRequired,
    CampaignDrifted,
    Preview,
    UnknownCampaign,
)

api = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
PREFIX = "/v1/campaigns"

ONE_CAMPAIGN = responses(UnknownCampaign)
CHANGES_A_CAMPAIGN = AS_OPERATOR | responses(UnknownCampaign, Conflict)
STARTS_A_CAMPAIGN = AS_OPERATOR | responses(
    UnknownCampaign, Conflict, ApprovalRequired, CampaignDrifted
)

Term = Annotated[
    str, Field(min_length=1, max_length=200, json_schema_extra={"pattern": WORDS_PATTERN})
]
# `{"batch": ["B1", "B2"], "country": ["IR"]}`: one member per selection field, each a list of
# accepted values; its description is the domain's (`SELECTION_FIELDS`).
Where = create_model(  # type: ignore[call-overload]
    "Where",
    __config__=ConfigDict(extra="forbid"),
    **{
        name: (list[Text], Field(default_factory=list, max_length=1000, description=meaning))
        for name, meaning in SELECTION_FIELDS.items()
    },
)
Stages = Annotated[
    list[Annotated[float, Field(gt=0, le=100)]],
    Field(
        min_length=1,
        max_length=20,
        description="Cumulative percentages of the target, increasing and ending at 100.",
        examples=[[1, 10, 100]],
    ),
]


class NewCampaign(Reason):
    """What `POST /v1/campaigns` takes (docs/operator-api.md, "Campaigns")."""

    name: Text = Field(min_length=1, max_length=200, json_schema_extra={"pattern": WORDS_PATTERN})
    action: Literal["lock", "unlock", "exempt", "clear"]
    where: Where | list[Term] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="Which devices: an object of field to accepted values, or a list of"
        ' "FIELD=VALUE"; different fields AND, values of one field OR; none: every device.',
        examples=[{"batch": ["B7"], "country": ["IR"]}, ["batch=B7", "country=IR"]],
    )
    devices: list[Text] | None = Field(
        default=None,
        max_length=10_000,
        description="Only among these devices (ids or IMEIs), as far as the body limit"
        " (64 KiB, about 3,000 IMEIs) allows; larger lists: `regionlock campaign create`.",
    )
    message: Annotated[Text, Field(max_length=500)] | dict[str, Text] | None = Field(
        default=None,
        description="What a locked device shows its owner: a text, or an object of language"
        ' tag -> text ({"en": "...", "fa": "..."}) that the device\'s locale chooses from'
        ' (docs/policy.md, "Messages in the owner\'s language").',
        examples=[
            "Reported stolen: call your shop.",
            {"en": "Call us.", "fa": "با ما تماس بگیرید."},
        ],
    )
    contact: Text | None = Field(
        default=None, max_length=200, description="Whom the owner of a locked device contacts."
    )
    until: date | None = Field(
        default=None, description="Exclusive end date of an exemption; none: for good."
    )
    stages: Stages = Field(default_factory=lambda: [100.0])
    dry_run: bool = Field(default=False, description="Only say what it would do; create nothing.")


class Why(BaseModel):
    """An optional reason, for the audit trail (a start, an advance, an approval)."""

    reason: Text | None = Field(
        default=None, max_length=1000, description="Why, for the audit trail."
    )


class Start(Why):
    accept_changes: bool = Field(
        default=False,
        description="Start although the fleet the selection matches has changed since creation"
        " (the frozen target set is applied, as shown at creation).",
    )


class Revert(Reason):
    stages: Stages = Field(default_factory=lambda: [100.0])


def selection_of(where: BaseModel | Sequence[str]) -> Selection:
    """The selection a request names (InvalidInput on a malformed value)."""
    if isinstance(where, BaseModel):
        terms = [f"{name}={value}" for name, values in where for value in values]
    else:
        terms = list(where)
    return Selection.parse(terms, known_countries=country_names())


def created(response: Response, campaign: Campaign) -> dict[str, Any]:
    response.status_code = 201
    response.headers["Location"] = f"{PREFIX}/{campaign.id}"
    return campaign.summary()


@api.post(
    "",
    status_code=201,
    responses=AS_OPERATOR
    | {200: {"description": "The dry run: what the campaign would do (nothing created)."}},
)
def create_campaign(
    body: NewCampaign, response: Response, state: StateDep, who: Operator
) -> dict[str, Any]:
    """Create a draft campaign over the devices the selection matches now (operator): `201`
    with its summary and `Location`. With `dry_run`, `200` and what it would do, nothing
    created. A bad field or value, or a selection matching no device, creates nothing."""
    done = create_or_preview(state, body, who.actor)
    if isinstance(done, Preview):
        response.status_code = 200
        return done.to_json()
    return created(response, done)


def create_or_preview(state: State, body: NewCampaign, actor: str) -> Campaign | Preview:
    """The draft campaign the body asks for, or with `dry_run` what it would do (nothing
    created): what both the API and the console run."""
    selection = selection_of(body.where)
    devices = None if body.devices is None else resolve_devices(state, body.devices)
    now = state.clock.now()
    if body.dry_run:
        refuse_like_create(body, selection, actor, now)
        return state.campaigns.dry_run(selection, devices=devices)
    return state.campaigns.create(
        name=body.name,
        action=CampaignAction(body.action),
        reason=body.reason,
        selection=selection,
        actor=actor,
        now=now,
        message=body.message,
        contact=body.contact,
        until=body.until,
        stages=body.stages,
        devices=devices,
    )


def approval_rule(state: State) -> ApprovalRule:
    """The four-eyes rule of this service's settings (REGIONLOCK_CAMPAIGN_APPROVAL_*)."""
    return ApprovalRule(
        state.settings.campaign_approval_devices, state.settings.campaign_approval_share
    )


def refuse_like_create(body: NewCampaign, selection: Selection, actor: str, now: datetime) -> None:
    """Refuse in a dry run what `create` would refuse (a blank name or reason, a message on
    an unlock, stages that do not reach 100, an end date in the past): a dry run that passes
    where the real run fails is what operators of other tools complain of."""
    Campaign(
        id="cmp_dryrun",
        name=body.name,
        action=CampaignAction(body.action),
        reason=body.reason,
        selection=selection,
        created_by=actor,
        created_at=now,
        message=message_text(body.message),
        contact=body.contact or None,
        until=body.until,
        stages=parse_stages(body.stages),
    )
    if body.action == "exempt" and body.until is not None and body.until <= now.date():
        raise InvalidInput(f"exemption until {body.until} is not in the future")


def resolve_devices(state: State, keys: Sequence[str]) -> list[str]:
    """Device ids for ids or IMEIs; InvalidInput naming every one that is unknown."""
    ids: list[str] = []
    unknown: list[str] = []
    for n, key in enumerate(keys):
        found = state.stores.devices.get(key)
        if found is None:
            unknown.append(f"{n}: {key[:40]!r}")
        else:
            ids.append(found.record.id)
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise InvalidInput(
            f"devices: no registered device at index {', '.join(unknown[:10])}{more}"
            ": nothing created"
        )
    if not ids:
        raise InvalidInput("devices: the list is empty: nothing created")
    return ids


@api.get("", responses=AS_VIEWER)
def list_campaigns(
    state: StateDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """The most recent campaigns first, each as its summary."""
    return {"campaigns": [c.summary() for c in state.campaigns.recent(limit=limit)]}


@api.get("/{campaign_id}", responses=AS_VIEWER | ONE_CAMPAIGN)
def get_campaign(
    campaign_id: KeyPath,
    state: StateDep,
    _: Viewer,
    drift: Annotated[
        bool,
        Query(
            description="Also say how the fleet the selection matches has changed since the"
            " targets were frozen (a draft only: it selects the fleet again)."
        ),
    ] = False,
) -> dict[str, Any]:
    """A campaign's summary: state, stage and counts (and, asked for a draft, its drift)."""
    c = state.campaigns.get(campaign_id)
    out = c.summary()
    if drift and c.state is CampaignState.DRAFT:
        out["drift"] = state.campaigns.drift(campaign_id).to_json()
    return out


@api.get("/{campaign_id}/targets", responses=AS_VIEWER | ONE_CAMPAIGN)
def campaign_targets(
    campaign_id: KeyPath,
    state: StateDep,
    _: Viewer,
    status: Literal["pending", "applied", "skipped", "error"] | None = None,
    after: Annotated[str, Query(max_length=64, json_schema_extra={"pattern": TEXT_PATTERN})] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A campaign's targets in device-id order after `after`, with their stage and what
    became of them; `next` pages on."""
    found = state.campaigns.targets(campaign_id, status=status, after=after, limit=limit)
    return {
        "targets": [
            {
                "device": t.device_id,
                "stage": t.stage,
                "status": t.status,
                "detail": t.detail,
                "applied_at": t.applied_at,
            }
            for t in found
        ],
        "next": found[-1].device_id if len(found) == limit else None,
    }


@api.post("/{campaign_id}/start", response_model=None, responses=STARTS_A_CAMPAIGN)
def start_campaign(
    campaign_id: KeyPath,
    request: Request,
    state: StateDep,
    who: Operator,
    body: Start | None = None,
) -> dict[str, Any] | JSONResponse:
    """Start a draft at its first stage, or resume a paused campaign (operator); the service
    applies it in the background. A draft over the four-eyes limit needs a second admin's
    `approve` first; one whose selection matches a changed fleet needs `accept_changes`."""
    rule = approval_rule(state)
    try:
        c = state.campaigns.start(
            campaign_id,
            actor=who.actor,
            now=state.clock.now(),
            accept_changes=body is not None and body.accept_changes,
            approval=rule,
            reason=body.reason if body else None,
        )
    except CampaignDrifted as exc:  # say by how much, as members a client can read
        drift = exc.drift.to_json()
        return problem(problem_type(exc), exc.message, request.url.path, {"drift": drift})
    state.campaign_runner.wake()
    return c.summary()


@api.post("/{campaign_id}/advance", responses=CHANGES_A_CAMPAIGN)
def advance_campaign(
    campaign_id: KeyPath, state: StateDep, who: Operator, body: Why | None = None
) -> dict[str, Any]:
    """Go on to the next stage of a campaign waiting between stages (operator)."""
    c = state.campaigns.advance(
        campaign_id, actor=who.actor, now=state.clock.now(), reason=body.reason if body else None
    )
    state.campaign_runner.wake()
    return c.summary()


@api.post("/{campaign_id}/pause", responses=CHANGES_A_CAMPAIGN)
def pause_campaign(
    campaign_id: KeyPath, body: Reason, state: StateDep, who: Operator
) -> dict[str, Any]:
    """Pause (operator): the runner stops after the chunk in flight; what was applied stays."""
    return state.campaigns.pause(
        campaign_id, actor=who.actor, reason=body.reason, now=state.clock.now()
    ).summary()


@api.post("/{campaign_id}/cancel", responses=CHANGES_A_CAMPAIGN)
def cancel_campaign(
    campaign_id: KeyPath, body: Reason, state: StateDep, who: Operator
) -> dict[str, Any]:
    """End for good (operator); what was applied stays and is listed in its targets."""
    return state.campaigns.cancel(
        campaign_id, actor=who.actor, reason=body.reason, now=state.clock.now()
    ).summary()


@api.post("/{campaign_id}/approve", responses=CHANGES_A_CAMPAIGN)
def approve_campaign(
    campaign_id: KeyPath, state: StateDep, who: Admin, body: Why | None = None
) -> dict[str, Any]:
    """A second admin's approval of a draft (the four-eyes rule); never its creator's key."""
    return state.campaigns.approve(
        campaign_id, actor=who.actor, now=state.clock.now(), reason=body.reason if body else None
    ).summary()


@api.post(
    "/{campaign_id}/revert",
    status_code=201,
    responses=CHANGES_A_CAMPAIGN,
)
def revert_campaign(
    campaign_id: KeyPath, body: Revert, response: Response, state: StateDep, who: Operator
) -> dict[str, Any]:
    """A new draft campaign putting back what this one changed, on exactly the devices it
    changed (operator): `201` with its summary and `Location`; start it like any other."""
    campaign = state.campaigns.revert(
        campaign_id,
        actor=who.actor,
        reason=body.reason,
        now=state.clock.now(),
        stages=body.stages,
    )
    return created(response, campaign)
