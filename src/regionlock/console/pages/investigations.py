"""Investigations: the leak ranking, the cases, the report download."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from regionlock.api.deps import State
from regionlock.console import web
from regionlock.domain.errors import DataUnavailable, InvalidInput, NotFound
from regionlock.geo.worldmap import world_map
from regionlock.report.html import render_html
from regionlock.services.cases import Cases
from regionlock.services.investigations import Investigations, LeakReport, Question
from regionlock.services.reports import report_data
from regionlock.storage.investigations import GROUP_COLUMNS

router = APIRouter(prefix="/console", include_in_schema=False)


def _ranking(state: State, by: str) -> Callable[[], tuple[LeakReport, datetime]]:
    def rank() -> tuple[LeakReport, datetime]:
        found = Investigations.of(state.stores, clock=state.clock.now).leaks(by, Question())
        return found, datetime.now(UTC)

    return rank


@router.get("/investigations")
def investigations(request: Request) -> Response:
    """The leak ranking (the active policy's places, every check-in), and the cases."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    by = request.query_params.get("by", "batch")
    by = by if by in GROUP_COLUMNS else "batch"
    report, error, computed = None, None, None
    try:
        # It reads every check-in (2.8 s warm at 10,000,000: bench/README.md): no view waits
        # for it but the first.
        report, computed = web.recent(state, f"ranking by {by}", _ranking(state, by))
    except (InvalidInput, DataUnavailable) as exc:
        error = exc.message
    return web.page(
        "investigations.html.j2",
        page="investigations",
        key=key,
        csrf=web.codec(state).csrf(session),
        groupings=GROUP_COLUMNS,
        by=by,
        report=report,
        computed=computed,
        ttl=state.settings.console_overview_ttl_s,
        error=error,
        cases=Cases.of(state.stores).list(limit=50),
    )


@router.get("/investigations/flows")
def flows(request: Request) -> Response:
    """From each sales region to where its devices are established, with the time to get
    there (as `regionlock investigate flows`)."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    report, error = None, None
    try:
        report = Investigations.of(state.stores, clock=state.clock.now).flows(Question())
    except (InvalidInput, DataUnavailable) as exc:
        error = exc.message
    return web.page(
        "investigation-flows.html.j2",
        page="investigations",
        key=key,
        csrf=web.codec(state).csrf(session),
        report=report,
        error=error,
    )


@router.get("/investigations/ranges")
def ranges(request: Request) -> Response:
    """Runs of consecutive IMEIs in a batch where restricted devices concentrate (a scan
    statistic; as `regionlock investigate ranges --batch`)."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    batch = request.query_params.get("batch", "").strip()[:200]
    report, error, status = None, None, 200
    if batch:
        try:
            report = Investigations.of(state.stores, clock=state.clock.now).ranges(
                batch, Question()
            )
        except (InvalidInput, NotFound, DataUnavailable) as exc:
            error, status = exc.message, 404 if isinstance(exc, NotFound) else 422
    return web.page(
        "investigation-ranges.html.j2",
        status=status,
        page="investigations",
        key=key,
        csrf=web.codec(state).csrf(session),
        batch=batch,
        report=report,
        error=error,
    )


@router.get("/investigations/report.html")
def investigation_report(request: Request) -> Response:
    """The self-contained report (of a case with `?case=`), as a file to keep."""
    signed_in = web.signed_in(request)
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
