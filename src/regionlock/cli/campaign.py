"""`regionlock campaign ...`: bulk actions over a slice of the fleet (docs/campaigns.md).

The command line acts with direct access to the store, so it has no second admin to approve a
large campaign: `start` asks for confirmation on a terminal instead (`--yes` answers it for
scripts) and records who ran it. `start` and `advance` then apply the stage in the foreground.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import cast

import click

from regionlock.cli.campaign_run import run_stage
from regionlock.cli.output import echo_json
from regionlock.cli.progress import input_lines
from regionlock.cli.store import actor, db_option, store
from regionlock.domain.campaign import (
    CREATABLE,
    DEFAULT_STAGES,
    Campaign,
    CampaignAction,
    CampaignState,
    Selection,
    parse_stages,
)
from regionlock.domain.errors import InvalidInput
from regionlock.geo.countries import country_names
from regionlock.services.campaigns import CampaignDrifted, Campaigns, Preview
from regionlock.services.imei_list import ImeiList, resolve_imeis
from regionlock.storage import Stores
from regionlock.storage.campaigns import Target, TargetStatus

TARGET_STATUSES = ("applied", "skipped", "error", "pending")
_PAGE = 1000

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
stages_option = click.option(
    "--stages",
    metavar="1,10,100",
    help="Cumulative percentages of the target per stage; it waits for `advance` between them.",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _stages(text: str | None) -> tuple[float, ...]:
    return parse_stages(text) if text else DEFAULT_STAGES


@click.group()
def campaign() -> None:
    """Bulk campaigns: lock, unlock, exempt or clear a slice of the fleet, in stages."""


# -- create -------------------------------------------------------------------------------------


def _imei_list(stores: Stores, path: str, skip_bad: bool) -> ImeiList:
    """The devices the IMEI file names; InvalidInput (nothing created) on bad lines unless
    `skip_bad`, which reports them on stderr and goes on with the rest."""
    with input_lines(path, "checking IMEIs", None) as lines:
        found = resolve_imeis(
            lines, db=stores.db, devices=stores.devices, campaigns=stores.campaigns
        )
    if found.bad:
        for problem in found.problems:
            click.echo(f"{path}: {problem}", err=True)
        more = found.bad - len(found.problems)
        if more:
            click.echo(f"{path}: ... and {more} more bad line(s)", err=True)
        if not skip_bad:
            raise InvalidInput(
                f"{path}: {found.bad} of {found.imeis} IMEI line(s) are bad (not an IMEI, or no"
                " registered device has it);"
                " nothing created (fix them, or pass --skip-bad to use the rest)"
            )
        click.echo(f"{path}: skipped {found.bad} bad line(s) (--skip-bad)", err=True)
    if not found.device_ids:
        raise InvalidInput(f"{path}: no registered device listed; nothing created")
    return found


def _print_preview(preview: Preview, action: CampaignAction, listed: int | None = None) -> None:
    click.echo(f"dry run, nothing changed: {action.value} {preview.selection}")
    of_listed = f" of the {listed} listed" if listed is not None else ""
    click.echo(f"devices: {preview.devices}{of_listed}")
    inside = f"now inside their sales region: {preview.inside_sales_region} of {preview.devices}"
    if action is CampaignAction.LOCK and preview.inside_sales_region:
        click.secho(
            f"WARNING: {inside} - a lock would lock out owners in their own market",
            bold=True,
            fg="red",
        )
    else:
        click.echo(inside)
    click.echo("by country: " + _counts(preview.by_country))
    click.echo("by verdict: " + _counts(preview.by_verdict))
    click.echo("sample: " + (", ".join(preview.sample) or "-"))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


@campaign.command("create")
@click.option("--name", required=True)
@click.option("--action", type=click.Choice([a.value for a in CREATABLE]), required=True)
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@click.option(
    "--where",
    "terms",
    multiple=True,
    metavar="FIELD=VALUE",
    help="distributor, batch, model, sales_region, country, subdivision, verdict, seen_in,"
    " activated_in; fields combine with AND, a field repeated with OR.",
)
@click.option(
    "--imeis",
    "imei_file",
    type=click.Path(dir_okay=False, exists=True, allow_dash=True),
    help="Only the devices of this file: one IMEI a line, blank lines and # comments allowed.",
)
@click.option("--skip-bad", is_flag=True, help="Use the good lines of --imeis despite bad ones.")
@click.option("--message", help="What a locked device shows its owner (lock only).")
@click.option(
    "--message-in",
    "translations",
    nargs=2,
    multiple=True,
    metavar="LANG TEXT",
    help="The message in a language (repeatable): --message-in fa '...'. The device's locale"
    " chooses; --message is then the English text.",
)
@click.option("--contact", help="Whom the owner should contact (lock only).")
@click.option(
    "--until", type=click.DateTime(["%Y-%m-%d"]), help="Exemption end date (exempt only)."
)
@stages_option
@click.option("--dry-run", is_flag=True, help="Show what it would reach; change nothing.")
@json_option
@click.option("--yes", is_flag=True, help="Accepted for scripts; creating asks nothing.")
@db_option
def create(
    name: str,
    action: str,
    reason: str,
    terms: tuple[str, ...],
    imei_file: str | None,
    skip_bad: bool,
    message: str | None,
    translations: tuple[tuple[str, str], ...],
    contact: str | None,
    until: datetime | None,
    stages: str | None,
    dry_run: bool,
    as_json: bool,
    yes: bool,
    db_url: str,
) -> None:
    """Create a draft campaign over the devices selected now (the target set is frozen), and
    print its id on the last line; `campaign start ID` applies it. --dry-run changes nothing."""
    kind = CampaignAction(action)
    selection = Selection.parse(terms, known_countries=set(country_names()))
    stage_list = _stages(stages)
    end: date | None = until.date() if until else None
    with store(db_url) as stores:
        listed = _imei_list(stores, imei_file, skip_bad) if imei_file is not None else None
        svc = Campaigns.of(stores)
        if dry_run:
            ids = sorted(listed.device_ids) if listed is not None else None
            preview = svc.dry_run(selection, devices=ids)
            count = len(ids) if ids is not None else None
            if as_json:
                echo_json(preview.to_json() | ({"listed": count} if count is not None else {}))
            else:
                _print_preview(preview, kind, count)
            return
        created = svc.create(
            name=name,
            action=kind,
            reason=reason,
            selection=selection,
            actor=actor(),
            now=_now(),
            message=_message(message, translations),
            contact=contact,
            until=end,
            stages=stage_list,
            devices=sorted(listed.device_ids) if listed is not None else None,
        )
    if as_json:
        echo_json(created.summary())
        return
    sizes = ", ".join(str(n) for n in created.counts.stage_sizes)
    click.echo(
        f"created draft campaign {created.name!r}: {created.action.value}"
        f" {created.counts.targets} device(s) ({created.selection.describe()}"
        f"{', from the IMEI list' if listed is not None else ''})"
    )
    click.echo(f"stages {','.join(f'{s:g}' for s in created.stages)}%: {sizes} device(s)")
    click.echo(f"apply it with: regionlock campaign start {created.id}")
    click.echo(created.id)


# -- start, advance -----------------------------------------------------------------------------


def on_terminal() -> bool:
    """Whether someone is there to answer a question."""
    return sys.stdin.isatty()


def _confirm(svc: Campaigns, c: Campaign, yes: bool) -> None:
    """Ask on a terminal before a campaign starts changing devices; refuse without one."""
    if yes:
        return
    if not on_terminal():
        raise InvalidInput(
            f"campaign {c.id} would {c.action.value} {c.counts.targets} device(s): confirm with"
            " --yes (no terminal to ask on)"
        )
    # Its pending targets still registered, not its selection run again: what starting (or
    # resuming) reaches is the frozen set, less what is done and what was deleted since.
    preview = svc.preview(c.id, sample=0)
    inside = (
        f"{preview.inside_sales_region} of the {preview.devices} device(s) it will reach now"
        " are inside their sales region"
    )
    click.echo(f"campaign {c.id} {c.name!r}: {c.action.value} {c.counts.targets} device(s)")
    click.echo(f"  selection: {c.selection.describe()}; reason: {c.reason}")
    if c.action is CampaignAction.LOCK and preview.inside_sales_region:
        click.secho(f"  WARNING: {inside}: their owners would be locked out", bold=True, fg="red")
    else:
        click.echo(f"  {inside}")
    if not click.confirm(f"Start it as {actor()}?", default=False):
        raise click.Abort


def _message(
    message: str | None, translations: tuple[tuple[str, str], ...]
) -> str | dict[str, str] | None:
    """--message alone, as written; with --message-in, a table of languages (English first)."""
    if not translations:
        return message
    table = {"en": message} if message else {}
    for language, text in translations:
        if language in table:
            raise click.UsageError(f"--message-in {language} is given twice")
        table[language] = text
    return table


def _accept_hint(campaign_id: str, message: str) -> str:
    return (
        f"{message}\nto apply the targets frozen at creation anyway:"
        f" regionlock campaign start {campaign_id} --accept-changes"
    )


def _start_and_run(svc: Campaigns, campaign_id: str, accept: bool, yes: bool, chunk: int) -> None:
    c = svc.get(campaign_id)
    if c.state is CampaignState.WAITING:
        click.echo(
            f"campaign {c.id} waits after stage {c.stage} of {len(c.stages)}:"
            f" `regionlock campaign advance {c.id}` runs the next"
        )
        return
    if c.state is CampaignState.DONE:
        click.echo(f"campaign {c.id} is done: nothing left to apply")
        return
    if c.state in (CampaignState.DRAFT, CampaignState.PAUSED):
        if c.state is CampaignState.DRAFT and not accept:
            # Refused before asking, rather than after the question.
            drift = svc.drift(c.id)
            if drift.changed:
                raise CampaignDrifted(
                    _accept_hint(c.id, f"campaign {c.id}: {drift.describe()}"), drift
                )
        _confirm(svc, c, yes)
        try:
            c = svc.start(c.id, actor=actor(), now=_now(), accept_changes=accept)
        except CampaignDrifted as exc:  # the fleet changed while we asked
            raise CampaignDrifted(_accept_hint(c.id, exc.message), exc.drift) from exc
    # A running campaign (one this command just started, or one a crash left) is run here.
    run_stage(svc, c, chunk)


@campaign.command("start")
@click.argument("campaign_id")
@click.option(
    "--accept-changes",
    is_flag=True,
    help="Start even though the fleet changed since creation (the frozen targets apply).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
@click.option("--chunk", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@db_option
def start(campaign_id: str, accept_changes: bool, yes: bool, chunk: int, db_url: str) -> None:
    """Start a draft (or resume a paused campaign) and apply its current stage here, with a
    progress bar. Run it again after a crash or Ctrl-C: it goes on where it stopped."""
    with store(db_url) as stores:
        _start_and_run(Campaigns.of(stores), campaign_id, accept_changes, yes, chunk)


@campaign.command("advance")
@click.argument("campaign_id")
@click.option("--no-run", is_flag=True, help="Only advance; `start` applies the stage later.")
@click.option("--chunk", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@db_option
def advance(campaign_id: str, no_run: bool, chunk: int, db_url: str) -> None:
    """Go on from a stage done to the next, and apply it here (unless --no-run)."""
    with store(db_url) as stores:
        svc = Campaigns.of(stores)
        c = svc.advance(campaign_id, actor=actor(), now=_now())
        click.echo(f"campaign {c.id}: stage {c.stage} of {len(c.stages)}")
        if not no_run:
            run_stage(svc, c, chunk)


# -- the other transitions ----------------------------------------------------------------------


@campaign.command("pause")
@click.argument("campaign_id")
@click.option("--reason", required=True)
@db_option
def pause(campaign_id: str, reason: str, db_url: str) -> None:
    """Pause; a runner stops after its chunk in flight, and `start` resumes."""
    with store(db_url) as stores:
        c = Campaigns.of(stores).pause(campaign_id, actor=actor(), reason=reason, now=_now())
    click.echo(
        f"campaign {c.id} paused at stage {c.stage} of {len(c.stages)}"
        f" ({c.counts.applied} applied); `regionlock campaign start {c.id}` resumes it"
    )


@campaign.command("cancel")
@click.argument("campaign_id")
@click.option("--reason", required=True)
@db_option
def cancel(campaign_id: str, reason: str, db_url: str) -> None:
    """End a campaign for good. What was applied stays; `revert` undoes it."""
    with store(db_url) as stores:
        c = Campaigns.of(stores).cancel(campaign_id, actor=actor(), reason=reason, now=_now())
    click.echo(
        f"campaign {c.id} cancelled; the {c.counts.applied} device(s) already changed stay so:"
        f" `regionlock campaign targets {c.id} --status applied` lists them,"
        f" `regionlock campaign revert {c.id}` undoes them"
    )


@campaign.command("approve")
@click.argument("campaign_id")
@db_option
def approve(campaign_id: str, db_url: str) -> None:
    """Approve a draft as a second person (never its creator)."""
    with store(db_url) as stores:
        c = Campaigns.of(stores).approve(campaign_id, actor=actor(), now=_now())
    click.echo(f"campaign {c.id} approved by {c.approved_by}")


@campaign.command("revert")
@click.argument("campaign_id")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@stages_option
@json_option
@db_option
def revert(campaign_id: str, reason: str, stages: str | None, as_json: bool, db_url: str) -> None:
    """Create the campaign that puts back what CAMPAIGN_ID changed, on exactly the devices it
    changed, and print its id on the last line; `campaign start ID` applies it."""
    with store(db_url) as stores:
        c = Campaigns.of(stores).revert(
            campaign_id, actor=actor(), reason=reason, now=_now(), stages=_stages(stages)
        )
    if as_json:
        echo_json(c.summary())
        return
    click.echo(f"created draft campaign {c.name!r} over the {c.counts.targets} device(s) changed")
    click.echo(f"apply it with: regionlock campaign start {c.id}")
    click.echo(c.id)


# -- reading ------------------------------------------------------------------------------------


def _stage(c: Campaign) -> str:
    return f"{c.stage} of {len(c.stages)}" if c.stage else f"- of {len(c.stages)}"


@campaign.command("status")
@click.argument("campaign_id")
@json_option
@db_option
def status(campaign_id: str, as_json: bool, db_url: str) -> None:
    """A campaign's state and counts."""
    with store(db_url) as stores:
        c = Campaigns.of(stores).get(campaign_id)
    if as_json:
        echo_json(c.summary())
        return
    n = c.counts
    click.echo(f"{c.id}  {c.name!r}  {c.action.value}" + (f" of {c.reverts}" if c.reverts else ""))
    click.echo(f"state: {c.state.value}, stage {_stage(c)}")
    if c.state_reason:
        click.echo(f"state reason: {c.state_reason}")
    click.echo(
        f"targets {n.targets}: applied {n.applied}, skipped {n.skipped}, errors {n.errors},"
        f" pending {n.pending}"
    )
    sizes = ", ".join(str(s) for s in n.stage_sizes)
    click.echo(f"stages {','.join(f'{s:g}' for s in c.stages)}%: {sizes} device(s)")
    click.echo(f"selection: {c.selection.describe()}; reason: {c.reason}")
    click.echo(f"created by {c.created_by} at {c.created_at.isoformat(timespec='seconds')}")


@campaign.command("list")
@json_option
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@db_option
def list_cmd(as_json: bool, limit: int, db_url: str) -> None:
    """The most recent campaigns, newest first."""
    with store(db_url) as stores:
        found = Campaigns.of(stores).recent(limit=limit)
    if as_json:
        echo_json([c.summary() for c in found])
        return
    rows = [("ID", "STATE", "ACTION", "STAGE", "APPLIED/TARGETS", "CREATED", "NAME")]
    rows += [
        (
            c.id,
            c.state.value,
            c.action.value,
            _stage(c),
            f"{c.counts.applied}/{c.counts.targets}",
            c.created_at.isoformat(timespec="minutes"),
            c.name,
        )
        for c in found
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1])


def _targets(svc: Campaigns, campaign_id: str, status: str | None) -> Iterator[Target]:
    after = ""
    wanted = cast("TargetStatus | None", status)
    while page := svc.targets(campaign_id, status=wanted, after=after, limit=_PAGE):
        yield from page
        after = page[-1].device_id


@campaign.command("targets")
@click.argument("campaign_id")
@click.option("--status", "status_", type=click.Choice(TARGET_STATUSES))
@json_option
@db_option
def targets(campaign_id: str, status_: str | None, as_json: bool, db_url: str) -> None:
    """A campaign's targets in device-id order, and what became of each (--json: one JSON
    object a line)."""
    with store(db_url) as stores:
        for t in _targets(Campaigns.of(stores), campaign_id, status_):
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "device_id": t.device_id,
                            "stage": t.stage,
                            "status": t.status,
                            "detail": t.detail,
                            "applied_at": t.applied_at,
                        }
                    )
                )
            else:
                click.echo(f"{t.device_id}  {t.stage}  {t.status}  {t.detail or ''}".rstrip())
