"""`regionlock case ...`: investigation cases (docs/cases.md). Open one with the findings as
they stand, note what is learnt, link the campaigns that acted on it, close it with how it
ended; `show` tells the whole story in order. Every step is audited (`case.*`)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from regionlock.cli.investigate import loading_bars
from regionlock.cli.output import echo_json
from regionlock.cli.store import actor, db_option, store
from regionlock.domain.case import (
    Case,
    CaseEvent,
    EventKind,
    findings_digest,
    findings_json,
    linked_campaigns,
    summarize_findings,
)
from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import load_json
from regionlock.services.cases import Cases
from regionlock.services.reports import current_findings

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _when(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def read_findings(path: str) -> dict[str, Any]:
    """The snapshot in `path` ("-": standard input): a JSON object as it is, or an array
    (what `investigate leaks --json` prints) as `{"rows": [...]}`."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the findings: {exc}") from None
    value = load_json(text, f"{path}")
    if isinstance(value, list):
        return {"rows": value}
    if not isinstance(value, dict):
        raise InvalidInput(f"{path}: the findings must be a JSON object or array")
    return value


@click.group()
def case() -> None:
    """Investigation cases: the findings, the decisions taken, how it ended."""


@case.command("open")
@click.option("--title", required=True, help="What the case is about (at most 200 characters).")
@click.option(
    "--findings",
    "findings_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="A JSON snapshot of the findings (e.g. `regionlock investigate report --json`"
    " for a chosen question); '-' reads standard input.",
)
@click.option(
    "--investigate",
    is_flag=True,
    help="Keep the findings as they stand now (the active policy's places, every check-in)."
    " Not with --findings.",
)
@click.option("--reason", help="Why it is opened, for the audit trail (default: the title).")
@json_option
@db_option
def open_cmd(
    title: str,
    findings_file: str | None,
    investigate: bool,
    reason: str | None,
    as_json: bool,
    db_url: str,
) -> None:
    """Open a case and print its id on the last line."""
    if investigate and findings_file is not None:
        raise InvalidInput("give --findings or --investigate, not both")
    findings = read_findings(findings_file) if findings_file is not None else None
    with store(db_url) as stores:
        if investigate:
            with loading_bars() as progress:
                findings = current_findings(stores, progress=progress)
        c = Cases.of(stores).open(title, actor=actor(), findings=findings, reason=reason)
    if as_json:
        echo_json(c.to_json())
        return
    kept = ""
    if c.findings is not None:
        kept = f" with findings (sha256 {findings_digest(findings_json(c.findings))[:12]})"
    click.echo(f"opened case {c.title!r}{kept}")
    click.echo(c.id)


@case.command("note")
@click.argument("case_id")
@click.argument("text")
@db_option
def note(case_id: str, text: str, db_url: str) -> None:
    """Add a note (at most 4000 characters) to an open case."""
    with store(db_url) as stores:
        e = Cases.of(stores).note(case_id, text, actor=actor())
    click.echo(f"case {case_id}: note {e.seq} added")


@case.command("link")
@click.argument("case_id")
@click.option("--campaign", "campaign_id", required=True, metavar="CID", help="The campaign.")
@db_option
def link(case_id: str, campaign_id: str, db_url: str) -> None:
    """Link a campaign (a decision taken on the findings) to an open case."""
    with store(db_url) as stores:
        e = Cases.of(stores).link(case_id, campaign_id, actor=actor())
    click.echo(f"case {case_id}: campaign {e.campaign_id} linked")


@case.command("close")
@click.argument("case_id")
@click.option("--outcome", required=True, help='How it ended, e.g. "block lifted".')
@db_option
def close(case_id: str, outcome: str, db_url: str) -> None:
    """Close a case with its outcome; nothing is added to it afterwards."""
    with store(db_url) as stores:
        c = Cases.of(stores).close(case_id, outcome, actor=actor())
    click.echo(f"case {c.id} closed: {c.outcome}")


@case.command("list")
@click.option("--status", type=click.Choice(["open", "closed"]), help="Only these cases.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@db_option
def list_cmd(status: str | None, limit: int, as_json: bool, db_url: str) -> None:
    """Cases, the most recently opened first."""
    with store(db_url) as stores:
        found = Cases.of(stores).list(status, limit=limit)
    if as_json:
        echo_json([c.summary() for c in found])
        return
    rows = [("ID", "STATUS", "OPENED", "BY", "TITLE")]
    rows += [
        (c.id, c.status.value, c.opened_at.isoformat(timespec="minutes"), c.opened_by, c.title)
        for c in found
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1])


def _step(e: CaseEvent) -> str:
    """One event in words; a text of several lines indented under it."""
    if e.kind is EventKind.OPEN:
        what = f"opened: {e.text}"
    elif e.kind is EventKind.FINDINGS:
        data = e.data or {}
        what = (
            f"findings kept (sha256 {str(data.get('sha256', ''))[:12]}, {data.get('bytes')} bytes)"
        )
    elif e.kind is EventKind.NOTE:
        what = f"note: {e.text}"
    elif e.kind is EventKind.LINK:
        what = f"decision: campaign {e.campaign_id}"
    else:
        what = f"closed: {e.text}"
    head = f"  {e.seq:>3}  {_when(e.at)}  {e.actor}  "
    return head + what.replace("\n", "\n" + " " * len(head))


def _print_case(c: Case, events: list[CaseEvent]) -> None:
    click.echo(f"{c.id}  {c.title}")
    click.echo(f"status: {c.status.value}")
    click.echo(f"opened {_when(c.opened_at)} by {c.opened_by}")
    if c.findings is None:
        click.echo("findings: none kept")
    else:
        click.echo(f"findings (sha256 {findings_digest(findings_json(c.findings))[:12]}):")
        for line in summarize_findings(c.findings):
            click.echo(f"  {line}")
    campaigns = linked_campaigns(events)
    click.echo("campaigns: " + (", ".join(campaigns) or "none linked"))
    click.echo("history:")
    for e in events:
        click.echo(_step(e))
    if c.closed_at is not None:
        click.echo(f"outcome: {c.outcome} (closed {_when(c.closed_at)} by {c.closed_by})")


@case.command("show")
@click.argument("case_id")
@json_option
@db_option
def show(case_id: str, as_json: bool, db_url: str) -> None:
    """A case: its findings, the campaigns linked, its notes and its outcome, in order
    (--json: the case with its findings, `campaigns` and `history`)."""
    with store(db_url) as stores:
        svc = Cases.of(stores)
        c = svc.get(case_id)
        events = svc.history(case_id)
    if as_json:
        echo_json(c.to_json(events))
        return
    _print_case(c, events)
