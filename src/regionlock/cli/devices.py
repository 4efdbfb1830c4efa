"""`regionlock devices import|list` and `regionlock device show|lock|unlock|exempt DEVICE`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from typing import Any

import click

from regionlock.cli.progress import input_lines
from regionlock.cli.store import actor, db_option, store
from regionlock.services.registry import Registry, device_json


@click.group()
def devices() -> None:
    """The device registry: bulk import and listing."""


@devices.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True, allow_dash=True))
@click.option("--progress/--no-progress", default=None)
@click.option(
    "--writers",
    type=click.IntRange(1, 8),
    default=None,
    help="Connections writing batches at once (default: 2 on PostgreSQL, 1 on SQLite).",
)
@db_option
def import_cmd(csv_file: str, progress: bool | None, writers: int | None, db_url: str) -> None:
    """Register devices from a CSV file (idempotent; bad rows reported by line).

    Header: imei,serial,model,sales_region,distributor,batch,public_key (optional: imei2, sku,
    manufactured, shipped). public_key is the raw 32-byte Ed25519 key, base64url, no padding.
    """
    with (
        store(db_url) as stores,
        input_lines(csv_file, "importing", progress, encoding="utf-8-sig", newline="") as lines,
    ):
        if writers is None:
            writers = 2 if stores.db.dialect == "postgresql" else 1
        report = Registry.of(stores).import_csv(
            lines, actor=actor(), source=csv_file, now=datetime.now(UTC), writers=writers
        )
    for p in report.problems[:50]:
        click.echo(f"line {p.line}: {p.message}", err=True)
    if len(report.problems) > 50:
        click.echo(f"... and {len(report.problems) - 50} more", err=True)
    click.echo(
        f"imported {report.imported}, unchanged {report.unchanged}, repeated rows "
        f"{report.duplicates_in_file}, problems {len(report.problems)}"
    )
    if report.problems:
        sys.exit(1)


@devices.command("list")
@click.option("--model")
@click.option("--batch")
@click.option("--distributor")
@click.option("--country", help="Last located country (ISO 3166-1).")
@click.option("--verdict", type=click.Choice(["allow", "warn", "lock"]))
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@db_option
def list_cmd(
    model: str | None,
    batch: str | None,
    distributor: str | None,
    country: str | None,
    verdict: str | None,
    limit: int,
    db_url: str,
) -> None:
    """List device ids matching every filter given."""
    with store(db_url) as stores:
        ids = stores.devices.list(
            model=model,
            batch=batch,
            distributor=distributor,
            country=country,
            verdict=verdict,
            limit=limit,
        )
    for i in ids:
        click.echo(i)


@click.group()
def device() -> None:
    """One device, by id or IMEI: show it, lock, unlock or exempt it, or answer its unlock
    challenge."""


@device.command("show")
@click.argument("device_key")
@db_option
def show(device_key: str, db_url: str) -> None:
    """Print a device's record and state as JSON."""
    with store(db_url) as stores:
        found = stores.devices.get(device_key)
    if found is None:
        raise click.ClickException(f"no device with id or IMEI {device_key!r}")
    click.echo(json.dumps(device_json(found), indent=2))


def _act(name: str, device_key: str, reason: str, db_url: str, **kw: Any) -> None:
    with store(db_url) as stores:
        registry = Registry.of(stores)
        d = getattr(registry, name)(
            device_key, reason=reason, actor=actor(), now=datetime.now(UTC), **kw
        )
    click.echo(f"{name}: {d.record.id} (takes effect at its next check-in)")


@device.command("lock")
@click.argument("device_key")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@click.option("--message", help="What the device shows its owner (default: a general notice).")
@click.option("--contact", help="Whom the owner should contact (default: the policy's).")
@db_option
def lock(
    device_key: str, reason: str, message: str | None, contact: str | None, db_url: str
) -> None:
    """Lock a device at its next check-in."""
    _act("lock", device_key, reason, db_url, message=message, contact=contact)


@device.command("unlock")
@click.argument("device_key")
@click.option("--reason", required=True)
@db_option
def unlock(device_key: str, reason: str, db_url: str) -> None:
    """Lift a manual lock."""
    _act("unlock", device_key, reason, db_url)


@device.command("exempt")
@click.argument("device_key")
@click.option("--reason", required=True)
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Exclusive end date.")
@db_option
def exempt(device_key: str, reason: str, until: datetime | None, db_url: str) -> None:
    """Exempt a device from every lock (e.g. after an appeal)."""
    end: date | None = until.date() if until else None
    _act("exempt", device_key, reason, db_url, until=end)


@device.command("unlock-code")
@click.argument("device_key")
@click.argument("challenge")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@db_option
def unlock_code(device_key: str, challenge: str, reason: str, db_url: str) -> None:
    """The offline unlock code for the CHALLENGE a locked device shows (e.g. 1234-5678).

    Read it to the user; the device accepts it for that challenge, once. It lifts the lock on
    the device only: the next verdict decides again, so also `exempt` a device that should
    stay unlocked.
    """
    with store(db_url) as stores:
        device_id, code = Registry.of(stores).unlock_code(
            device_key, challenge, reason=reason, actor=actor(), now=datetime.now(UTC)
        )
    click.echo(f"unlock code for {device_id}, challenge {challenge}: ", err=True, nl=False)
    click.echo(code)
