"""`regionlock device export|erase DEVICE` and `regionlock retention run` (docs/privacy.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from regionlock.cli.devices import device
from regionlock.cli.output import echo_json
from regionlock.cli.progress import progress_bar
from regionlock.cli.store import actor, db_option, store
from regionlock.services.privacy import Privacy
from regionlock.settings import Settings


@device.command("export")
@click.argument("device_key")
@click.option("--json", "as_json", is_flag=True, help="Write the export as JSON (the default).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE, not stdout.")
@db_option
def export(device_key: str, as_json: bool, output: str | None, db_url: str) -> None:
    """Everything held about a device, as JSON (GDPR articles 15 and 20): its registry row and
    state, check-ins, verdicts, appeals, webhook deliveries and the audit entries naming it."""
    del as_json  # JSON is the one format; the flag says so in scripts
    with store(db_url) as stores:
        doc = Privacy.of(stores).export(device_key, now=datetime.now(UTC))
    if output is None:
        echo_json(doc)
        return
    with open(output, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    click.echo(f"exported {doc['device']['id']} to {output}", err=True)


@device.command("erase")
@click.argument("device_key")
@click.option(
    "--reason",
    required=True,
    help="Why (recorded in the audit trail, which keeps it: do not name the device or owner).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the receipt's claims and token.")
@db_option
def erase(device_key: str, reason: str, as_json: bool, db_url: str) -> None:
    """Erase a device: identifiers and history removed, audit entries naming it redacted, the
    database files scrubbed. Prints the signed erasure receipt. Cannot be undone."""
    with store(db_url) as stores:
        done = Privacy.of(stores).erase(
            device_key, reason=reason, actor=actor(), now=datetime.now(UTC)
        )
    if as_json:
        echo_json({**done.claims, "kid": done.kid, "token": done.token})
        return
    removed = ", ".join(f"{k} {v}" for k, v in sorted(done.claims["removed"].items()))
    click.echo(f"erased: receipt {done.receipt_id} ({removed})", err=True)
    click.echo(done.token)


@click.group()
def retention() -> None:
    """Retention of check-in rows (docs/privacy.md)."""


@retention.command("run")
@click.option(
    "--days",
    type=click.IntRange(1, 100_000),
    help="Delete check-ins older than this many days (default: REGIONLOCK_RETENTION_DAYS).",
)
@click.option("--progress/--no-progress", default=None)
@db_option
def run(days: int | None, progress: bool | None, db_url: str) -> None:
    """Delete check-in rows older than the retention period, after folding the days of
    presence the policy still reads into the device states. Safe to interrupt and re-run."""
    keep = days if days is not None else Settings.from_env().retention_days
    now = datetime.now(UTC)
    with store(db_url) as stores:
        service = Privacy.of(stores)
        total = service.pending_retention(days=keep, now=now)
        bar = progress_bar(total, "deleting check-ins", progress, unit="row", unit_scale=True)
        try:
            report = service.run_retention(days=keep, now=now, progress=bar.update)
        finally:
            bar.close()
    click.echo(
        f"deleted {report.deleted} check-ins older than {report.cutoff.isoformat()}"
        f" ({report.devices_folded} device states gained days of presence)"
    )
