"""The gray-market story, end to end, against a running service (what `regionlock demo` and
`regionlock simulate` run).

1. Register a synthetic fleet (its devices' public keys) through the operator API.
2. Activate a policy modelled on the 2021 block.
3. Run simulated days of check-ins: every device is a reference agent; the service's clock and
   the agents' move together, a day at a time.
4. Judge the week against the scenario's ground truth.
5. Before the lift, the maker investigates: the service ranks batches and distributors by
   evidence of a leak, judged here against the ground truth, and a case keeps the findings
   (`sim/investigation.py`). A campaign locks the devices of the flagged batches first
   activated in a restricted country (`sim/campaign.py`); the case links it.
6. Lift the block (activate the policy without the company-only jurisdictions) and run one more
   day: devices unlock at their next check-in, except where the law still applies and those the
   campaign locked. The case is closed: the block is lifted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from regionlock.sim.campaign import CampaignStep, lock_traced_stock
from regionlock.sim.driver import FleetDriver, ImportResult, Outcome
from regionlock.sim.investigation import InvestigationStep, close_case, investigate, link_campaign
from regionlock.sim.report import LiftSummary, RunSummary, summarize, summarize_lift

# Called with (phase, total) when a phase starts; returns a function advanced by each item done.
Progress = Callable[[str, int], Callable[[int], None]]


def _phase(progress: Progress, name: str) -> Callable[[int], Callable[[int], None]]:
    return lambda total: progress(name, total)


@dataclass
class DayLine:
    day: int
    date: str
    checkins: int
    actions: dict[str, int]
    errors: int


@dataclass
class StoryResult:
    registered: ImportResult
    days: list[DayLine] = field(default_factory=list)
    week: RunSummary | None = None
    investigation: InvestigationStep | None = None
    campaign: CampaignStep | None = None
    lift: LiftSummary | None = None
    lift_day: DayLine | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "registered": {
                "imported": self.registered.imported,
                "unchanged": self.registered.unchanged,
                "problems": self.registered.problems,
            },
            "days": [d.__dict__ for d in self.days],
            "week": self.week.to_json() if self.week else None,
            "investigation": self.investigation.to_json() if self.investigation else None,
            "campaign": self.campaign.to_json() if self.campaign else None,
            "lift": self.lift.to_json() if self.lift else None,
            "lift_day": self.lift_day.__dict__ if self.lift_day else None,
        }


def _quiet(*_: object) -> None:
    return None


def _name(activated: dict[str, Any]) -> str:
    active = activated.get("active", {})
    return f"{active.get('id')} {active.get('version')}"


def _day_line(day: int, start: datetime, outcomes: list[Outcome]) -> DayLine:
    actions: dict[str, int] = {}
    for o in outcomes:
        if not o.error and o.action:
            actions[o.action] = actions.get(o.action, 0) + 1
    return DayLine(
        day=day,
        date=(start + timedelta(days=day)).date().isoformat(),
        checkins=len(outcomes),
        actions=actions,
        errors=sum(1 for o in outcomes if o.error),
    )


async def run_story(
    driver: FleetDriver,
    *,
    block_policy: str,
    lifted_policy: str | None,
    start: datetime,
    progress: Progress,
    on_day: Callable[[DayLine], None] = _quiet,
    on_stage: Callable[[str, str], None] = _quiet,
    on_week: Callable[[RunSummary], None] = _quiet,
    on_investigation: Callable[[InvestigationStep], None] = _quiet,
    on_campaign: Callable[[CampaignStep], None] = _quiet,
) -> StoryResult:
    """Register, block, simulate, judge, then lock the traced stock and lift (if a lifted
    policy is given). The scenario's last day is the day after the lift when there is one;
    every day before it runs under the block."""
    try:
        return await _tell(
            driver,
            block_policy,
            lifted_policy,
            start,
            progress,
            on_day,
            on_stage,
            on_week,
            on_investigation,
            on_campaign,
        )
    finally:
        await driver.close()


async def _tell(
    driver: FleetDriver,
    block_policy: str,
    lifted_policy: str | None,
    start: datetime,
    progress: Progress,
    on_day: Callable[[DayLine], None],
    on_stage: Callable[[str, str], None],
    on_week: Callable[[RunSummary], None],
    on_investigation: Callable[[InvestigationStep], None],
    on_campaign: Callable[[CampaignStep], None],
) -> StoryResult:
    result = StoryResult(await driver.register(progress("register", len(driver.devices))))
    r = result.registered
    on_stage(
        "register",
        f"fleet: {len(driver.devices):,} devices registered ({r.imported:,} new, "
        f"{r.unchanged:,} unchanged, {len(r.problems)} refused)",
    )
    block_days = driver.spec.days - (1 if lifted_policy is not None else 0)
    block = await driver.activate(block_policy, "demo: the 2021 gray-market block")
    on_stage("block", f"Policy {_name(block)} active; {block_days} days:")
    week: list[Outcome] = []
    started = time.perf_counter()
    for day in range(block_days):
        outcomes = await driver.run_day(day, start, progress=_phase(progress, f"day {day + 1}"))
        week += outcomes
        line = _day_line(day, start, outcomes)
        result.days.append(line)
        on_day(line)
    result.week = summarize(driver.devices, week, time.perf_counter() - started)
    on_week(result.week)
    if lifted_policy is not None:
        found = result.investigation = await investigate(driver)
        on_investigation(found)
        flagged = [r["group"] for r in found.batches.flagged]
        result.campaign = await lock_traced_stock(driver, flagged)
        on_campaign(result.campaign)
        if found.case_id and result.campaign.id:
            await link_campaign(driver, found.case_id, result.campaign.id)
        lifted = await driver.activate(lifted_policy, "demo: the block is lifted")
        on_stage("lift", f"The block is lifted: policy {_name(lifted)} active; one more day:")
        after = await driver.run_day(block_days, start, progress=_phase(progress, "after the lift"))
        result.lift_day = _day_line(block_days, start, after)
        on_day(result.lift_day)
        result.lift = summarize_lift(driver.devices, week, after)
        if found.case_id:
            await close_case(driver, found.case_id)
    return result
