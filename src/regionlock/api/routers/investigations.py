"""Investigations for operators (docs/investigations.md): the same rankings, ranges and flows
as `regionlock investigate`, with the same JSON rows, under the report's scope. Viewers read."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from regionlock.api.deps import StateDep, Viewer
from regionlock.api.problems import AS_VIEWER, responses
from regionlock.domain.errors import DataUnavailable, InvalidInput
from regionlock.geo.worldmap import world_map
from regionlock.report.html import render_html
from regionlock.services.cases import UnknownCase
from regionlock.services.investigations import (
    Investigations,
    Scope,
    UnknownBatch,
    parse_question,
)
from regionlock.services.reports import report_data

api = APIRouter(prefix="/v1/investigations", tags=["investigations"])

ASKS = AS_VIEWER | responses(InvalidInput, DataUnavailable)
Countries = Annotated[
    list[Annotated[str, Query(pattern=r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$")]],
    Query(
        max_length=300,
        description="Restricted places (IR, UA-43); default: the active policy's judgement.",
    ),
]
Day = Annotated[date | None, Query(description="A UTC day, YYYY-MM-DD.")]


def investigations_of(state: StateDep) -> Investigations:
    """The investigation service on the app's stores."""
    return Investigations.of(state.stores, clock=state.clock.now)


InvestigationsDep = Annotated[Investigations, Depends(investigations_of)]


def _answer(scope: Scope, rows: list[dict[str, Any]], note: str | None) -> dict[str, Any]:
    return {"scope": scope.to_json(), "note": note, "rows": rows}


@api.get("/leaks", responses=ASKS)
def leaks(
    service: InvestigationsDep,
    _: Viewer,
    by: Literal["distributor", "batch", "model", "sales_region"] = "batch",
    country: Countries = [],  # noqa: B006 - FastAPI copies query defaults
    since: Day = None,
    until: Day = None,
    alpha: Annotated[float, Query(gt=0, le=1)] = 0.01,
    min_restricted: Annotated[int, Query(ge=0, le=1_000_000)] = 3,
) -> dict[str, Any]:
    """Groups ranked by evidence of a leak: `rows` as `investigate leaks --json` prints them."""
    question = parse_question(country, since, until)
    report = service.leaks(by, question, alpha=alpha, min_restricted=min_restricted)
    return _answer(report.scope, [r.to_json() for r in report.rows], report.note)


@api.get("/ranges", responses=ASKS | responses(UnknownBatch))
def ranges(
    service: InvestigationsDep,
    _: Viewer,
    batch: Annotated[str, Query(min_length=1, max_length=200)],
    country: Countries = [],  # noqa: B006
    since: Day = None,
    until: Day = None,
) -> dict[str, Any]:
    """Runs of consecutive IMEIs in `batch` where restricted devices concentrate."""
    report = service.ranges(batch, parse_question(country, since, until))
    answer = _answer(report.scope, [r.to_json() for r in report.rows], report.note)
    return answer | {"batch": batch, "devices": report.devices, "restricted": report.restricted}


@api.get("/flows", responses=ASKS)
def flows(
    service: InvestigationsDep,
    _: Viewer,
    country: Countries = [],  # noqa: B006
    since: Day = None,
    until: Day = None,
) -> dict[str, Any]:
    """From each sales region to where its devices are established."""
    report = service.flows(parse_question(country, since, until))
    return _answer(report.scope, report.rows, report.note)


CaseId = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="The report of this case (case_...)."),
]


def _report(
    state: StateDep, country: list[str], since: date | None, until: date | None, case: str | None
) -> dict[str, Any]:
    question = parse_question(country, since, until)
    return report_data(state.stores, question, case_id=case, clock=state.clock.now)


@api.get("/report", responses=ASKS | responses(UnknownCase))
def report(
    state: StateDep,
    _: Viewer,
    case: CaseId = None,
    country: Countries = [],  # noqa: B006
    since: Day = None,
    until: Day = None,
) -> dict[str, Any]:
    """Everything a report holds, as `investigate report --json` writes it: the rankings by
    every grouping, flows, ranges of flagged batches, places, the snapshot's SHA-256; with
    `case`, the findings that case kept and its history."""
    return _report(state, country, since, until, case)


@api.get(
    "/report.html",
    response_class=HTMLResponse,
    responses=ASKS | responses(UnknownCase) | {200: {"content": {"text/html": {}}}},
)
def report_html(
    state: StateDep,
    _: Viewer,
    case: CaseId = None,
    country: Countries = [],  # noqa: B006
    since: Day = None,
    until: Day = None,
) -> HTMLResponse:
    """The same as one self-contained HTML page (`investigate report --out FILE.html`)."""
    data = _report(state, country, since, until, case)
    return HTMLResponse(render_html(data, world_map()))
