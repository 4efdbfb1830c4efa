"""`regionlock policy check|explain|diff|simulate`: policies before they are activated."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, time
from importlib import resources

import click
from click.core import ParameterSource

from regionlock.cli.locate import SignalOptions, signal_options
from regionlock.cli.progress import input_lines
from regionlock.cli.store import db_option, store
from regionlock.domain.decision import decide
from regionlock.domain.errors import InvalidInput
from regionlock.domain.policy import DeviceFacts, Policy
from regionlock.geo.locator import Locator
from regionlock.policies import load_policy
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.services.policy_tools import (
    SimulationReport,
    diff_policies,
    history_for,
    read_fleet,
    simulate,
    simulate_registry,
    verdict_json,
)
from regionlock.storage import DatabaseUrl


def _as_of(value: str | None) -> datetime:
    """A date (taken at noon UTC) or an ISO timestamp; default now."""
    if value is None:
        return datetime.now(UTC)
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(12), tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--as-of {value!r} is not a date (2021-09-15) or ISO time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group()
def policy() -> None:
    """Validate, explain, compare and simulate policies."""


@policy.command()
def schema() -> None:
    """Print the JSON Schema of policy documents (the TOML, read as JSON)."""
    text = resources.files("regionlock").joinpath("schemas/policy.schema.json").read_text()
    click.echo(text.rstrip())


@policy.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check(files: tuple[str, ...]) -> None:
    """Validate policy files; every problem is listed with its line."""
    for f in files:
        p = load_policy(f)
        codes = {j.code for r in p.restrictions for j in r.jurisdictions}
        click.echo(
            f"{f}: OK: policy {p.id} version {p.version}, {len(p.restrictions)} "
            f"restriction(s) over {len(codes)} jurisdiction(s), "
            f"{len(p.activation_rules)} activation rule(s), "
            f"{len(p.exemptions)} exemption(s)"
        )


@policy.command()
@click.argument("policy_file", type=click.Path(dir_okay=False))
@signal_options
@click.option("--device-id", default="cli-device", show_default=True)
@click.option("--imei")
@click.option("--model")
@click.option("--sku")
@click.option("--sales-region")
@click.option("--distributor")
@click.option("--batch")
@click.option("--first-country", help="Country of first activation (ISO 3166-1).")
@click.option("--first-subdivision", help="Subdivision of first activation (ISO 3166-2).")
@click.option(
    "--days-present",
    type=click.IntRange(0, 365),
    default=0,
    show_default=True,
    help="Earlier days the device was seen where it is now.",
)
@click.option("--as-of", help="Decide as of this date (2021-09-15) or time; default now.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--ip-db", envvar="REGIONLOCK_IP_DB", metavar="SPEC")
def explain(
    policy_file: str,
    opts: SignalOptions,
    device_id: str,
    imei: str | None,
    model: str | None,
    sku: str | None,
    sales_region: str | None,
    distributor: str | None,
    batch: str | None,
    first_country: str | None,
    first_subdivision: str | None,
    days_present: int,
    as_of: str | None,
    as_json: bool,
    ip_db: str | None,
) -> None:
    """Locate a device from its signals and show the verdict POLICY_FILE gives it.

    \b
    regionlock policy explain examples/policies/us-ofac.toml --lat 33.51 --lon 36.28 \\
        --as-of 2021-09-15
    """
    pol = load_policy(policy_file)
    signals = opts.signals()
    when = _as_of(as_of)
    locator = Locator(ip_source=ip_db)
    where = locator.locate(signals)
    device = DeviceFacts(
        id=device_id,
        imeis=(imei,) if imei else (),
        model=model,
        sku=sku,
        sales_region=sales_region,
        distributor=distributor,
        batch=batch,
        first_country=first_country,
        first_subdivision=first_subdivision,
    )
    history = history_for(where, days_present, when.date())
    v = decide(device, where, history, pol, when, locale=signals.locale)
    if as_json:
        out = verdict_json(v) | {"as_of": when.isoformat(), "location": where.to_json()}
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    colour = {"allow": "green", "warn": "yellow", "lock": "red"}[v.action.value]
    click.secho(f"{v.action.value.upper()}", fg=colour, bold=True, nl=False)
    click.echo(f"  under {v.policy_id} {v.policy_version}, as of {when.date().isoformat()}")
    click.echo(f"reasons: {', '.join(v.reasons)}")
    click.echo(v.explanation)
    click.echo(f"location: {locator.explain(where)}")
    if v.message:
        language = f" [{v.language}]" if v.language else ""
        shown = f"device shows{language}: {v.message}"
        click.echo(shown + (f" ({v.contact})" if v.contact else ""))
    click.echo(
        f"lease: valid until {v.lease.expires.isoformat()}, then {v.lease.offline_action.value}"
    )


@policy.command()
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
def diff(old: str, new: str) -> None:
    """List what changed between two policy versions (+ added, - removed, ~ changed)."""
    lines = diff_policies(load_policy(old), load_policy(new))
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo("no changes")


@policy.command("simulate")
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.option(
    "--fleet",
    "fleet_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Devices with last known location, .jsonl or .csv, instead of the registry.",
)
@db_option
@click.option(
    "--against",
    type=click.Path(dir_okay=False),
    help="The policy in force to compare with (default: the registry's active policy; "
    "with --fleet, no policy: all allowed).",
)
@click.option("--as-of", help="Decide as of this date; default now.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--progress/--no-progress", default=None, help="A progress bar over --fleet.")
def simulate_cmd(
    policy_file: str,
    fleet_path: str | None,
    db_url: str,
    against: str | None,
    as_of: str | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    """How many devices per country and verdict would change if POLICY_FILE were active.

    The fleet is the registry at --db (each device at its last known place, with its days
    there), or the file --fleet names; not both.
    """
    pol = load_policy(policy_file)
    baseline = load_policy(against) if against else None
    when = _as_of(as_of)
    if fleet_path is None:
        report, baseline = _simulate_registry(db_url, pol, baseline, when)
        fleet = "in the registry"
    else:
        if (
            click.get_current_context().get_parameter_source("db_url")
            is ParameterSource.COMMANDLINE
        ):
            raise click.UsageError("give --fleet FILE or --db URL as the fleet, not both")
        with input_lines(fleet_path, "simulating", progress) as lines:
            report = simulate(read_fleet(lines, fleet_path.endswith(".csv")), pol, baseline, when)
        fleet = f"in {fleet_path}"
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        base = f"{baseline.id} {baseline.version}" if baseline else "no policy"
        click.echo(
            f"{report.devices} device(s) {fleet}: {pol.id} {pol.version} vs {base}, as of "
            f"{when.date().isoformat()}"
        )
        for name, counts in (("before", report.before), ("after", report.after)):
            click.echo(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        if report.changes:
            click.echo("  changes (country: from -> to: devices):")
            for (country, a, b), n in sorted(report.changes.items(), key=lambda kv: -kv[1]):
                click.echo(f"    {country}: {a} -> {b}: {n}")
        else:
            click.echo("  no device would change verdict")
    for err in report.errors[:20]:
        click.echo(f"error: {err}", err=True)
    if report.errors:
        click.echo(f"{len(report.errors)} bad record(s) skipped", err=True)
        sys.exit(1)


def _simulate_registry(
    db_url: str, pol: Policy, baseline: Policy | None, when: datetime
) -> tuple[SimulationReport, Policy | None]:
    """The report over the registry at `db_url`, against `baseline` or else its active policy
    (as POST /v1/policies/simulate does); and the baseline used."""
    path = DatabaseUrl.parse(db_url).path
    if path is not None and not path.exists():
        # Opening would create an empty registry: say where none was found instead.
        raise click.UsageError(
            f"no registry at {path}: give its --db URL (env REGIONLOCK_DATABASE_URL), or a "
            "--fleet FILE"
        )
    with store(db_url) as stores:
        if baseline is None:
            active = PolicyAdmin.of(stores).active()
            baseline = active[0] if active else None
        return simulate_registry(stores.devices, pol, baseline, when), baseline
