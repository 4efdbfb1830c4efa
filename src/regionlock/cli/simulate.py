"""`regionlock simulate`: a synthetic fleet checking in against a running service.

The service must run with a simulated clock (REGIONLOCK_SIMULATED_CLOCK=true, development only):
the simulator moves it a day at a time. Shared with `regionlock demo`: the progress bars and the
printed summary.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
from tqdm import tqdm

from regionlock.clock import SimulatedClock
from regionlock.policies import example_policy_text
from regionlock.sim.campaign import CampaignStep
from regionlock.sim.driver import FleetDriver, ServiceError
from regionlock.sim.fleet import FleetSpec, generate_fleet
from regionlock.sim.investigation import InvestigationStep, Verdicts
from regionlock.sim.report import RunSummary
from regionlock.sim.story import DayLine, StoryResult, run_story

COLOURS = {"allow": "green", "warn": "yellow", "lock": "red"}


def tqdm_progress(*, disable: bool = False) -> Callable[[str, int], Callable[[int], None]]:
    """Progress bars on stderr, one per phase (only on a terminal unless forced)."""
    current: list[tqdm] = []
    show = sys.stderr.isatty() and not disable

    def start(phase: str, total: int) -> Callable[[int], None]:
        if current:
            current.pop().close()
        bar = tqdm(
            total=total,
            desc=f"{phase:>14}",
            unit=" devices" if phase == "register" else " check-ins",
            file=sys.stderr,
            disable=not show,
            dynamic_ncols=True,
            leave=False,
        )
        current.append(bar)

        def advance(n: int) -> None:
            bar.update(n)
            if bar.n >= total:
                bar.close()

        return advance

    return start


def _actions(counts: dict[str, int]) -> str:
    return "  ".join(
        click.style(f"{a} {counts.get(a, 0):,}", fg=COLOURS[a]) for a in ("allow", "warn", "lock")
    )


def print_day(d: DayLine) -> None:
    """One simulated day, as it ends."""
    errors = f"  errors {d.errors}" if d.errors else ""
    click.echo(
        f"  day {d.day + 1} {d.date}: {d.checkins:>7,} check-ins  {_actions(d.actions)}{errors}"
    )


def print_stage(stage: str, detail: str) -> None:
    """A stage of the story as it starts (registration, the block, the lift)."""
    click.secho(f"\n{detail}" if stage != "register" else detail, bold=stage != "register")


def print_week(week: RunSummary) -> None:
    """What happened under the block, judged against the scenario's ground truth."""
    profiles = ", ".join(f"{n:,} {p}" for p, n in sorted(week.profiles.items()))
    click.secho("\nWhat happened", bold=True)
    click.echo(f"  fleet: {profiles}")
    click.echo("  check-ins by where the service placed them (warn and lock first):")
    ranked = sorted(
        week.verdicts_by_country.items(),
        key=lambda kv: (-(kv[1]["lock"] + kv[1]["warn"]), -sum(kv[1].values()), kv[0]),
    )
    for country, counts in ranked[:12]:
        click.echo(f"    {country:<8} {_actions(dict(counts))}")
    if len(ranked) > 12:
        rest = sum(sum(c.values()) for _, c in ranked[12:])
        click.echo(f"    ... {len(ranked) - 12} more countries, {rest:,} check-ins (--json)")
    locked = ", ".join(f"{p} {n}" for p, n in week.locked_by_place.most_common()) or "none"
    click.echo(f"  devices locked at the end of the week, by where they are: {locked}")
    wrong = len(week.wrongly_locked)
    click.secho(
        f"  legitimate users wrongly locked: {wrong}",
        fg="green" if wrong == 0 else "red",
        bold=True,
    )
    for line in week.wrongly_locked[:10]:
        click.echo(f"    {line}")
    click.echo(
        f"  travellers who visited a restricted place: {week.travellers_visited}, "
        f"warned: {week.travellers_warned}, locked: "
        f"{sum(1 for w in week.wrongly_locked if w.startswith('traveller'))}"
    )
    click.echo(f"  VPN users: {week.vpn_users}, locked: {week.vpn_users_locked}")
    missed = len(week.diverted_missed)
    click.echo(
        f"  diverted devices: {week.diverted}; seen in the restricted place: "
        f"{week.diverted_seen_there}; locked: {week.diverted_locked}; never checked in from "
        f"there: {week.diverted_never_seen_there}"
    )
    click.secho(
        f"  diverted devices missed: {missed}", fg="green" if missed == 0 else "red", bold=True
    )
    for line in week.diverted_missed[:10]:
        click.echo(f"    {line}")
    if missed > 10:
        click.echo(f"    ... and {missed - 10} more (--json lists them all)")
    if missed:
        click.echo("    (why a rule leaves such devices unlocked: docs/demo.md, trade-offs)")
    grace = week.diverted_in_grace
    if grace:
        click.echo(
            f"  diverted devices not locked yet, within the traveller grace: {len(grace)} "
            "(seen there on too few days to tell from a visitor; their next day there locks them)"
        )
        for line in grace[:5]:
            click.echo(f"    {line}")
    lat = week.latencies_ms
    errors = ", ".join(f"{k} {v}" for k, v in week.errors.items()) or "none"
    click.echo(
        f"  service: {week.checkins:,} check-ins at {week.rate:,.0f}/s; latency p50 "
        f"{lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms; errors: {errors}"
    )


def _by_place(counts: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{p} {n}" for p, n in Counter(counts).most_common()) or "none"


def _must_be_none(label: str, found: list[str]) -> None:
    click.secho(f"  {label}: {len(found)}", fg="red" if found else "green", bold=True)
    for line in found[:10]:
        click.echo(f"    {line}")


def _flagged_line(verdicts: Verdicts, what: str, top: int = 5) -> None:
    rows = verdicts.flagged
    click.echo(f"  {what} flagged: {len(rows)}" + (", strongest first:" if rows else ""))
    for r in rows[:top]:
        truth = "leaks" if r["group"] in verdicts.truth else "DOES NOT LEAK"
        click.echo(
            f"    {r['group'][:32]:<32} {r['restricted']:>4} of {r['seen']:>4} seen restricted"
            f" (expected {r['expected']:.1f}), q = {r['q_value']:.1g}: {truth}"
        )
    if len(rows) > top:
        click.echo(f"    ... and {len(rows) - top} more")
    found = len(verdicts.found)
    colour = "green" if found == len(verdicts.truth) else "yellow"
    click.secho(
        f"  the scenario's leaking {what}: {len(verdicts.truth)}; found {found}",
        fg=colour,
        bold=True,
    )
    for group in verdicts.missed:
        diverted, devices = verdicts.diverted[group], verdicts.devices[group]
        click.echo(
            f"    missed {group}: {diverted} of its {devices} devices diverted, too few to tell"
            " from honest causes"
            if diverted < 3
            else f"    missed {group}: {diverted} of its {devices} devices diverted"
        )
    _must_be_none(f"{what} flagged wrongly", verdicts.wrong)


def print_investigation(step: InvestigationStep) -> None:
    """Which batches and distributors the service's investigation flags, against the truth."""
    click.secho(
        "\nThe investigation: which batches and distributors leak (the service's statistics)",
        bold=True,
    )
    _flagged_line(step.batches, "batches")
    _flagged_line(step.distributors, "distributors")
    click.echo(
        f"  case {step.case_id} opened on these findings"
        f" (snapshot SHA-256 {str(step.snapshot_sha256)[:16]}...), in {step.wall_s:.1f} s"
    )


def print_campaign(step: CampaignStep) -> None:
    """The campaign the maker runs on the flagged stock before the lift, checked."""
    click.secho("\nA campaign locks the flagged batches' stock; the case links it", bold=True)
    batches, countries = step.where["batch"], step.where["activated_in"]
    if not batches:
        click.secho(f"  no campaign: {step.refused}", fg="yellow")
        return
    click.echo(f"  where batch is one of {len(batches)}: {', '.join(batches) or '-'}")
    click.echo(
        f"    and activated_in one of {', '.join(countries)}"
        " (where it was first switched on: a visiting traveller was not)"
    )
    if step.dry_run:
        inside = step.dry_run["inside_sales_region"]
        click.echo(
            f"  dry run: {step.dry_run['devices']} devices"
            f" ({_by_place(step.dry_run['by_country'])}); ",
            nl=False,
        )
        click.secho(
            f"inside their sales region: {inside}", fg="red" if inside else "green", bold=True
        )
    if step.refused is not None or step.id is None:
        click.secho(f"  no campaign: {step.refused}", fg="yellow")
        return
    if step.second_admin:
        click.echo(f"  four-eyes rule: {step.approval_asked}")
        click.echo(f"    the demo made a second admin key, which approved it: {step.second_admin}")
    click.echo(
        f"  campaign {step.id}: {step.targets} targets, {step.state} in {step.wall_s:.1f} s"
        f" (the service's runner): applied {step.applied}, skipped {step.skipped},"
        f" errors {step.errors}"
    )
    unknown = (
        f" ({step.targets_unknown} never checked in: not judged)" if step.targets_unknown else ""
    )
    click.echo(
        f"  targets that are diverted devices (ground truth): {step.targets_diverted}"
        f" of {step.targets}{unknown}"
    )
    _must_be_none("legitimate devices targeted", step.targets_legitimate)
    missed = step.diverted_not_reached
    click.echo(
        f"  not reached: {sum(missed.values())} diverted devices of those batches, by where they"
        f" were really first switched on: {_by_place(missed)}; and, rightly, none"
        f" of the {step.travellers_spared} traveller(s) of those batches"
    )


def print_lift(result: StoryResult) -> None:
    """What the first check-in after the lift did to the devices locked before it, and who
    keeps the devices still locked: the law, or the campaign."""
    lift = result.lift
    if lift is None:
        return
    unlocked = sum(lift.unlocked.values())
    click.echo(
        f"  of {lift.locked_before} devices locked, {lift.checked_in_after} checked in again: "
        f"{unlocked} unlocked ({_by_place(lift.unlocked)}), of them {lift.unlocked_diverted}"
        " diverted devices no campaign reached"
    )
    for place, n in lift.still_locked.most_common():
        click.echo(f"  still locked, as the law requires: {n} in {place}")
    step = result.campaign
    campaign = f"{step.id} (of its {step.targets} targets)" if step and step.id else "none"
    click.echo(
        f"  kept locked by campaign {campaign}: {lift.by_campaign}; where the law locks too:"
        f" {sum(lift.campaign_and_law.values())} ({_by_place(lift.campaign_and_law)}); where"
        f" only the campaign holds them: {sum(lift.campaign_only.values())}"
        f" ({_by_place(lift.campaign_only)})"
    )
    _must_be_none("campaign-locked devices that are not diverted", lift.campaign_not_diverted)
    _must_be_none("legitimate users locked after the lift", lift.wrongly_locked)
    if result.investigation and result.investigation.case_id:
        click.echo(f"  case {result.investigation.case_id} closed: block lifted")


def next_morning(now: datetime) -> datetime:
    """08:00 UTC on the day after `now`: day 0 of a scenario (a service clock only moves
    forward, so the story starts after the service's present)."""
    return (now + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)


def tell(
    driver: FleetDriver,
    *,
    block_policy: str,
    lifted_policy: str | None,
    start: datetime,
    as_json: bool,
) -> StoryResult:
    """Run the story with progress bars, printing it as it goes (or its JSON at the end)."""
    reporters: dict[str, Any] = (
        {}
        if as_json
        else {
            "on_day": print_day,
            "on_stage": print_stage,
            "on_week": print_week,
            "on_investigation": print_investigation,
            "on_campaign": print_campaign,
        }
    )
    try:
        result = asyncio.run(
            run_story(
                driver,
                block_policy=block_policy,
                lifted_policy=lifted_policy,
                start=start,
                progress=tqdm_progress(disable=as_json),
                **reporters,
            )
        )
    except ServiceError as exc:  # the service refused an operator request, or a campaign hung
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=1))
    else:
        print_lift(result)
    return result


@click.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True)
@click.option(
    "--api-key",
    envvar="REGIONLOCK_API_KEY",
    required=True,
    help="An admin key (env REGIONLOCK_API_KEY).",
)
@click.option(
    "--devices",
    default=10_000,
    show_default=True,
    help="Fleet size. Time grows in proportion: 7 days and the lift take about 1 min per "
    "10,000 phones on an idle 2-core VM, service included; more on shared cores "
    "(docs/demo.md, Measured).",
)
@click.option("--days", default=7, show_default=True, help="Simulated days under the policy.")
@click.option("--seed", default=2021, show_default=True)
@click.option("--concurrency", default=16, show_default=True, help="Devices in flight at once.")
@click.option(
    "--policy",
    type=click.Path(dir_okay=False, exists=True),
    help="Policy to activate first (default: the 2021 block example).",
)
@click.option(
    "--lift",
    type=click.Path(dir_okay=False, exists=True),
    help="Policy to activate after the days, for one more day (default: the 2021 lift example).",
)
@click.option("--no-lift", is_flag=True, help="Stop after the days under the policy.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def simulate(
    url: str,
    api_key: str,
    devices: int,
    days: int,
    seed: int,
    concurrency: int,
    policy: str | None,
    lift: str | None,
    no_lift: bool,
    as_json: bool,
) -> None:
    """Register a synthetic fleet with a running service and drive days of check-ins."""
    try:
        clock_reply = httpx.get(f"{url}/v1/clock", timeout=10)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    if clock_reply.status_code != 200:
        raise click.ClickException(
            "the service's clock is not simulated: start it with REGIONLOCK_SIMULATED_CLOCK=true "
            "(development only), or use `regionlock demo`"
        )
    start = next_morning(datetime.fromisoformat(clock_reply.json()["now"]))
    block = Path(policy).read_text("utf-8") if policy else example_policy_text("gray-market-2021")
    lifted = None
    if not no_lift:
        lifted = (
            Path(lift).read_text("utf-8")
            if lift
            else example_policy_text("gray-market-2021-lifted")
        )
    spec = FleetSpec(devices=devices, seed=seed, days=days + (0 if no_lift else 1))
    fleet = generate_fleet(spec)
    driver = FleetDriver(
        url, api_key, fleet, spec, clock=SimulatedClock(datetime.now(UTC)), concurrency=concurrency
    )
    tell(driver, block_policy=block, lifted_policy=lifted, start=start, as_json=as_json)
