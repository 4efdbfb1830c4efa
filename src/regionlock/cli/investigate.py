"""`regionlock investigate ...`: which distributors and batches leak (docs/investigations.md)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from regionlock.cli.output import echo_json
from regionlock.cli.progress import progress_bar
from regionlock.cli.store import db_option, store
from regionlock.domain.errors import InvalidInput
from regionlock.geo.worldmap import world_map
from regionlock.report.html import render_html
from regionlock.services.investigations import Investigations, Question, Scope, parse_question
from regionlock.services.reports import report_data
from regionlock.storage.analytics import Progress
from regionlock.storage.investigations import GROUP_COLUMNS

_PLACE_OPTIONS = [
    click.option(
        "--country",
        "countries",
        multiple=True,
        metavar="CC",
        help="A restricted place (IR, UA-43); repeat or comma-separate. Default: the"
        " places the active policy restricts, as it judged them.",
    ),
    click.option("--since", metavar="DATE", help="First day (UTC, YYYY-MM-DD)."),
    click.option("--until", metavar="DATE", help="Last day (UTC, YYYY-MM-DD)."),
]


def place_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--country, --since and --until: the question (`parse_question`)."""
    for option in reversed(_PLACE_OPTIONS):
        f = option(f)
    return f


def question_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            *_PLACE_OPTIONS,
            click.option("--json", "as_json", is_flag=True, help="Print JSON."),
            db_option,
        ]
    ):
        f = option(f)
    return f


@contextmanager
def loading_bars() -> Iterator[Progress]:
    """A progress callback for the analytics export: one bar per table loaded."""
    bars: dict[str, Any] = {}

    def progress(table: str, done: int, total: int) -> None:
        bar = bars.get(table)
        if bar is None:
            bar = bars[table] = progress_bar(
                total, f"loading {table}", None, unit=" rows", unit_scale=True
            )
        bar.n = done
        bar.refresh()

    try:
        yield progress
    finally:
        for bar in bars.values():
            bar.close()


@contextmanager
def _service(db_url: str) -> Iterator[Investigations]:
    with store(db_url) as stores, loading_bars() as progress:
        yield Investigations.of(stores, progress=progress)


def _scope_lines(scope: Scope) -> None:
    window = f"{scope.since or 'the first check-in'} to {scope.until or 'the last'}"
    click.echo(f"Window: {window} ({scope.checkins:,} check-ins)")
    click.echo(f"Restricted places: {', '.join(scope.places) or '(none)'}")
    click.echo(f"Established: {scope.rule}")


@click.group()
def investigate() -> None:
    """Gray-market investigations: leaking groups, ranges of IMEIs, flows."""


@investigate.command("leaks")
@click.option(
    "--by", type=click.Choice(GROUP_COLUMNS), default="batch", show_default=True, help="Group by."
)
@click.option("--alpha", type=float, default=0.01, show_default=True, help="q-value threshold.")
@click.option("--min-restricted", type=int, default=3, show_default=True)
@question_options
def leaks(
    by: str,
    alpha: float,
    min_restricted: int,
    countries: tuple[str, ...],
    since: str | None,
    until: str | None,
    as_json: bool,
    db_url: str,
) -> None:
    """Rank groups by evidence that their devices leak into restricted places."""
    question = parse_question(countries, since, until)
    with _service(db_url) as service:
        report = service.leaks(by, question, alpha=alpha, min_restricted=min_restricted)
    if as_json:
        echo_json([r.to_json() for r in report.rows])
        return
    _scope_lines(report.scope)
    if report.note:
        click.echo(f"Note: {report.note}")
    click.echo(
        f"{by:<24} {'devices':>8} {'seen':>8} {'restr.':>7} {'share':>7} {'expected':>9}"
        f" {'p':>9} {'q':>9} {'shrunk':>7}  flagged"
    )
    for r in report.rows:
        click.echo(
            f"{r.group[:24]:<24} {r.devices:>8,} {r.seen:>8,} {r.restricted:>7,}"
            f" {r.share:>7.2%} {r.expected:>9.1f} {r.p_value:>9.2g} {r.q_value:>9.2g}"
            f" {r.shrunk:>7.2%}  {'YES' if r.flagged else ''}"
        )


@investigate.command("ranges")
@click.option("--batch", required=True, help="The batch to scan.")
@click.option("--permutations", type=int, default=999, show_default=True)
@question_options
def ranges(
    batch: str,
    permutations: int,
    countries: tuple[str, ...],
    since: str | None,
    until: str | None,
    as_json: bool,
    db_url: str,
) -> None:
    """Runs of consecutive IMEIs in a batch where restricted devices concentrate."""
    question = parse_question(countries, since, until)
    with _service(db_url) as service:
        report = service.ranges(batch, question, permutations=permutations)
    if as_json:
        echo_json([r.to_json() for r in report.rows])
        return
    _scope_lines(report.scope)
    click.echo(f"Batch {batch}: {report.devices:,} devices seen, {report.restricted:,} restricted")
    if report.note:
        click.echo(f"Note: {report.note}")
    for r in report.rows:
        click.echo(
            f"{r.first} .. {r.last}  positions {r.first_position}-{r.last_position}:"
            f" {r.restricted} of {r.devices} restricted, p = {r.p_value:.3g}"
        )


@investigate.command("flows")
@question_options
def flows(
    countries: tuple[str, ...],
    since: str | None,
    until: str | None,
    as_json: bool,
    db_url: str,
) -> None:
    """From each sales region to where its devices are established."""
    question: Question = parse_question(countries, since, until)
    with _service(db_url) as service:
        report = service.flows(question)
    if as_json:
        echo_json(report.rows)
        return
    _scope_lines(report.scope)
    if report.note:
        click.echo(f"Note: {report.note}")
    for f in report.rows:
        arrival = (
            f"  median {f['median_days_to_arrival']:.1f} days to arrive"
            if f["median_days_to_arrival"] is not None
            else ""
        )
        mark = (
            " (restricted)"
            if f["restricted"]
            else " (seen there most, not established)"
            if f["destination"] in report.scope.places
            else ""
        )
        click.echo(
            f"{f['sales_region']} -> {f['destination']}{mark}: {f['devices']:,}"
            f" ({f['share']:.1%}){arrival}"
        )


@investigate.command("report")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Where to write the report ('-': standard output).",
)
@click.option("--case", "case_id", metavar="ID", help="The report of this case (case_...).")
@click.option("--json", "as_json", is_flag=True, help="Write the same content as JSON.")
@click.option(
    "--snapshot",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Also write the per-device table every number is computed from (CSV); its SHA-256"
    " is the report's.",
)
@place_options
@db_option
def report(
    out: str,
    case_id: str | None,
    as_json: bool,
    snapshot: str | None,
    countries: tuple[str, ...],
    since: str | None,
    until: str | None,
    db_url: str,
) -> None:
    """Write the investigation as one self-contained HTML file (or JSON): the question, the
    rankings, flows, ranges, a map, the methods, and what reproduces every number."""
    question = parse_question(countries, since, until)
    with store(db_url) as stores, loading_bars() as progress:
        data = report_data(
            stores,
            question,
            case_id=case_id,
            snapshot=Path(snapshot) if snapshot else None,
            progress=progress,
        )
    text = (
        json.dumps(data, indent=1, ensure_ascii=False) + "\n"
        if as_json
        else render_html(data, world_map())
    )
    if out == "-":
        sys.stdout.write(text)
        return
    _write_whole(Path(out), text)
    flagged = {by: sum(1 for r in rows if r["flagged"]) for by, rows in data["leaks"].items()}
    click.echo(
        f"wrote {out} ({len(text.encode()):,} bytes): flagged "
        + ", ".join(f"{n} by {by}" for by, n in flagged.items())
        + f"; snapshot SHA-256 {data['snapshot_sha256']}",
        err=True,
    )


def _write_whole(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all: a temporary file beside it, renamed."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as an ordinary file (mkstemp makes it private)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
