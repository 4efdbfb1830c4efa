"""Investigation cases for operators (docs/cases.md): viewers read them, admins open them,
add notes, link the campaigns that acted on them and close them. Every step is audited."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field, model_validator

from regionlock.api.deps import WORDS_PATTERN, Admin, KeyPath, StateDep, Text, Viewer
from regionlock.api.problems import AS_OPERATOR, AS_VIEWER, responses
from regionlock.domain.case import NOTE_MAX, OUTCOME_MAX, TITLE_MAX, CaseClosed
from regionlock.domain.errors import Conflict, DataUnavailable, InvalidInput
from regionlock.services.campaigns import UnknownCampaign
from regionlock.services.cases import Cases, UnknownCase
from regionlock.services.reports import SNAPSHOT_TOP, current_findings

api = APIRouter(prefix="/v1/cases", tags=["cases"])
PREFIX = "/v1/cases"

ONE_CASE = responses(UnknownCase)
CHANGES_A_CASE = AS_OPERATOR | responses(UnknownCase, CaseClosed)
# A campaign linked already is a plain `conflict`.
LINKS_A_CAMPAIGN = AS_OPERATOR | responses(UnknownCase, UnknownCampaign, CaseClosed, Conflict)


def cases_of(state: StateDep) -> Cases:
    """The case service on the app's stores and clock."""
    return Cases.of(state.stores, clock=state.clock.now)


CasesDep = Annotated[Cases, Depends(cases_of)]


def _words(max_length: int, description: str) -> Any:
    return Field(
        min_length=1,
        max_length=max_length,
        description=description,
        json_schema_extra={"pattern": WORDS_PATTERN},
    )


class NewCase(BaseModel):
    """What `POST /v1/cases` takes."""

    title: Text = _words(TITLE_MAX, "What the case is about.")
    findings: dict[str, Any] | None = Field(
        default=None,
        description="A snapshot of the findings as they stand (any JSON object, e.g."
        ' `{"leaks": [...]}` from `GET /v1/investigations/leaks`), kept with the case;'
        " its SHA-256 goes into the audit trail.",
    )
    reason: Text | None = Field(
        default=None,
        max_length=OUTCOME_MAX,
        description="Why it is opened, for the audit trail (default: the title).",
        json_schema_extra={"pattern": WORDS_PATTERN},
    )
    investigate: bool = Field(
        default=False,
        description="Keep the findings as they stand now (`GET /v1/investigations/report`:"
        " the active policy's places, every check-in; each ranking's first"
        f" {SNAPSHOT_TOP} rows and every flagged one) as the case's snapshot. Not with"
        " `findings`.",
    )

    @model_validator(mode="after")
    def _one_snapshot(self) -> NewCase:
        if self.investigate and self.findings is not None:
            raise ValueError("give findings or investigate, not both")
        return self


class NewNote(BaseModel):
    text: Text = _words(NOTE_MAX, "What was learnt.")


class NewLink(BaseModel):
    campaign: Text = Field(
        min_length=1, max_length=200, description="The campaign: a decision taken on the case."
    )


class Closing(BaseModel):
    outcome: Text = _words(OUTCOME_MAX, 'How it ended, e.g. "block lifted".')


@api.get("", responses=AS_VIEWER)
def list_cases(
    cases: CasesDep,
    _: Viewer,
    status: Literal["open", "closed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Cases, the most recently opened first, without their findings."""
    return {"cases": [c.summary() for c in cases.list(status, limit=limit)]}


@api.get("/{case_id}", responses=AS_VIEWER | ONE_CASE)
def get_case(case_id: KeyPath, cases: CasesDep, _: Viewer) -> dict[str, Any]:
    """A case with its findings, the campaigns linked and its history in order."""
    return cases.get(case_id).to_json(cases.history(case_id))


@api.post("", status_code=201, responses=AS_OPERATOR | responses(InvalidInput, DataUnavailable))
def open_case(
    body: NewCase, response: Response, cases: CasesDep, state: StateDep, who: Admin
) -> dict[str, Any]:
    """Open a case (admin): `201` with the case and `Location`."""
    findings = body.findings
    if body.investigate:
        findings = current_findings(state.stores, clock=state.clock.now)
    c = cases.open(body.title, actor=who.actor, findings=findings, reason=body.reason)
    response.headers["Location"] = f"{PREFIX}/{c.id}"
    return c.to_json(cases.history(c.id))


@api.post("/{case_id}/notes", status_code=201, responses=CHANGES_A_CASE)
def add_note(case_id: KeyPath, body: NewNote, cases: CasesDep, who: Admin) -> dict[str, Any]:
    """Add a note to an open case (admin): `201` with the history's new step."""
    return cases.note(case_id, body.text, actor=who.actor).to_json()


@api.post("/{case_id}/links", status_code=201, responses=LINKS_A_CAMPAIGN)
def link_campaign(case_id: KeyPath, body: NewLink, cases: CasesDep, who: Admin) -> dict[str, Any]:
    """Link a campaign to an open case (admin): `201` with the history's new step."""
    return cases.link(case_id, body.campaign, actor=who.actor).to_json()


@api.post("/{case_id}/close", responses=CHANGES_A_CASE)
def close_case(case_id: KeyPath, body: Closing, cases: CasesDep, who: Admin) -> dict[str, Any]:
    """Close an open case with its outcome (admin): the case, closed."""
    closed = cases.close(case_id, body.outcome, actor=who.actor)
    return closed.to_json(cases.history(case_id))
