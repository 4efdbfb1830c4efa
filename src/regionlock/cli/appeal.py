"""`regionlock appeal ...`: the support desk's side of appeals (docs/appeals.md): the queue, one
appeal with its evidence, and the decision (audited as the person running the command)."""

from __future__ import annotations

import json

import click

from regionlock.cli.output import echo_json
from regionlock.cli.store import actor, db_option, store
from regionlock.services.appeals import Appeals

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def appeal() -> None:
    """Owners' appeals against a lock: list, show, decide."""


@appeal.command("list")
@click.option("--status", type=click.Choice(["open", "granted", "denied"]), help="Only these.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@db_option
def list_cmd(status: str | None, limit: int, as_json: bool, db_url: str) -> None:
    """Appeals, the oldest first (a queue)."""
    with store(db_url) as stores:
        found = Appeals.of(stores).list(status, limit=limit)
    if as_json:
        echo_json([a.summary() for a in found])
        return
    if not found:
        click.echo("no appeal")
    for a in found:
        click.echo(
            f"{a.id}  {a.status.value:<8} {a.created_at:%Y-%m-%d %H:%M} UTC  device {a.device_id}"
            + (f"  ({a.language})" if a.language else "")
        )


@appeal.command("show")
@click.argument("appeal_id")
@json_option
@db_option
def show(appeal_id: str, as_json: bool, db_url: str) -> None:
    """One appeal: the owner's words, the evidence the service held, the decision."""
    with store(db_url) as stores:
        a = Appeals.of(stores).get(appeal_id)
    if as_json:
        echo_json(a.to_json())
        return
    click.echo(f"appeal {a.id}, {a.status.value}, from device {a.device_id}")
    click.echo(f"  sent {a.created_at:%Y-%m-%d %H:%M} UTC; contact: {a.contact}")
    click.echo(f"  message: {a.message}")
    ev = a.evidence
    click.echo(f"  last verdict: {ev.get('last_verdict')}; policy: {ev.get('policy')}")
    if ev.get("manual_lock"):
        click.echo(f"  manual lock: {json.dumps(ev['manual_lock'], ensure_ascii=False)}")
    for v in ev.get("verdicts", [])[:5]:
        place = v.get("subdivision") or v.get("country") or "unknown"
        click.echo(f"  {v['at']}: {v['verdict']} in {place} ({', '.join(v['reasons'])})")
    days = ev.get("presence", {})
    if days:
        click.echo("  presence: " + "; ".join(f"{d} {' '.join(p)}" for d, p in days.items()))
    if a.decided_at:
        until = f", exempt until {a.exempt_until}" if a.exempt_until else ""
        click.echo(f"  decided {a.decided_at:%Y-%m-%d %H:%M} UTC by {a.decided_by}{until}:")
        click.echo(f"    {a.decision_reason}")


@appeal.command("decide")
@click.argument("appeal_id")
@click.option("--grant/--deny", required=True, help="Grant (an exemption) or deny.")
@click.option("--days", type=click.IntRange(1, 3650), help="With --grant: days of exemption.")
@click.option("--reason", required=True, help="Why, for the owner and the audit trail.")
@click.option(
    "--contact", help="With --deny: whom the owner may contact (default: the policy's contact)."
)
@json_option
@db_option
def decide(
    appeal_id: str,
    grant: bool,
    days: int | None,
    reason: str,
    contact: str | None,
    as_json: bool,
    db_url: str,
) -> None:
    """Decide an open appeal; a grant exempts the device for --days days from today (UTC)."""
    if not grant and days is not None:
        raise click.BadParameter("--days goes with --grant", param_hint="--days")
    with store(db_url) as stores:
        a = Appeals.of(stores).decide(
            appeal_id, grant=grant, days=days, reason=reason, actor=actor()
        )
    if as_json:
        echo_json(a.to_json())
        return
    until = f": exempt until {a.exempt_until} (exclusive)" if a.exempt_until else ""
    click.echo(f"appeal {a.id} {a.status.value}{until}")
