"""The story's campaign: the maker locks the stock its investigation traced, before the lift.

The investigation (`sim/investigation.py`, the service's `GET /v1/investigations/leaks`) names
the batches that leaked: the campaign selects those batches, never devices; which devices are
locked is the service's answer to the selection, from what it saw at check-in. The ground truth
(the batches with diverted devices, `traced_batches`) only judges the result.

The selection is those batches AND `activated_in` a fully restricted country. Not `seen_in` or
`country`: a traveller of the same batch who visited Iran has IR in its presence but was first
switched on at home, and locking a legitimate owner is the worst failure there is. Not Crimea
either: `activated_in` is a country, and UA would reach every owner in mainland Ukraine (the law
keeps Crimea locked after the lift anyway). A diverted device first switched on in its transit
country is therefore not reached: the lift unlocks it, and the story says so.

Through the operator API, as an operator would: a dry run (refused to go on if any device it
reaches is inside its sales region: an owner at home), create, start (with a second admin's
approval when the four-eyes rule asks for it), then wait for the service's background runner.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from regionlock.sim.driver import FleetDriver, ServiceError
from regionlock.sim.fleet import FleetSpec, Profile, SimDevice, day_plan

# The fully restricted countries of the 2021 block (Crimea is a subdivision: see above).
ACTIVATED_IN = ("CU", "IR", "KP", "SD", "SY")
NAME = "lock the stock of the leaked batches"
REASON = "investigation: batches sold on into restricted places by transit distributors"
MESSAGE = (
    "This device was traced to stock sold on against its distribution agreement."
    " Please contact the retailer."
)
WAIT_S = 60.0
POLL_S = 0.1
_PAGE = 1000


@dataclass
class CampaignStep:
    """What the story's campaign did, and the check of its targets against ground truth."""

    where: dict[str, list[str]]
    dry_run: dict[str, Any] = field(default_factory=dict)  # the service's preview
    refused: str | None = None  # why no campaign was created
    id: str | None = None
    targets: int = 0  # frozen at creation
    second_admin: str | None = None  # who approved it, when the four-eyes rule asked
    approval_asked: str | None = None  # the service's words when it asked
    state: str = ""
    applied: int = 0
    skipped: int = 0
    errors: int = 0
    targets_diverted: int = 0
    targets_legitimate: list[str] = field(default_factory=list)  # "profile imei": must be none
    targets_unknown: int = 0  # ids no agent learnt: cannot be judged
    # Diverted devices of the traced batches it did not reach, by where they really were first
    # switched on (ground truth): a transit country, Crimea, or a restricted country where the
    # service placed the activation elsewhere.
    diverted_not_reached: dict[str, int] = field(default_factory=dict)
    travellers_spared: int = 0  # of the traced batches, visited a restricted place: not targets
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def traced_batches(devices: Sequence[SimDevice]) -> list[str]:
    """The batches that really leak (those with diverted devices): the ground truth."""
    return sorted({d.batch for d in devices if d.profile is Profile.DIVERTED})


async def lock_traced_stock(
    driver: FleetDriver,
    batches: Sequence[str],
    *,
    wait_s: float = WAIT_S,
    poll_s: float = POLL_S,
) -> CampaignStep:
    """Dry-run, create, start and wait for the campaign on `batches` (the investigation's
    flagged ones); judge its targets."""
    started = time.perf_counter()
    batches = sorted(batches)
    step = CampaignStep(where={"batch": batches, "activated_in": list(ACTIVATED_IN)})
    if not batches:
        step.refused = "no batch flagged: nothing to lock"
        return step
    body: dict[str, Any] = {
        "name": NAME,
        "action": "lock",
        "reason": REASON,
        "where": step.where,
        "message": MESSAGE,
    }
    step.dry_run = await driver.operator("POST", "/v1/campaigns", json=body | {"dry_run": True})
    if not step.dry_run["devices"]:
        step.refused = "no device of those batches was first activated in a restricted country"
        return step
    if step.dry_run["inside_sales_region"]:
        step.refused = (
            f"{step.dry_run['inside_sales_region']} of the devices it would lock are inside"
            " their sales region: owners at home; not created"
        )
        return step
    created = await driver.operator("POST", "/v1/campaigns", json=body)
    step.id, step.targets = created["id"], created["targets"]
    path = f"/v1/campaigns/{step.id}"
    try:
        await driver.operator("POST", f"{path}/start", json={})
    except ServiceError as exc:
        if exc.status != 409 or not str(exc.problem.get("type")).endswith("/approval-required"):
            raise
        step.approval_asked = str(exc.problem.get("detail", ""))
        step.second_admin = await _approve_as_second_admin(driver, path)
        await driver.operator("POST", f"{path}/start", json={})
    summary = await _until_done(driver, path, wait_s, poll_s)
    step.state = summary["state"]
    step.applied, step.skipped, step.errors = (summary[k] for k in ("applied", "skipped", "errors"))
    await _judge(driver, step, path, batches)
    step.wall_s = time.perf_counter() - started
    return step


def _activation_place(device: SimDevice, spec: FleetSpec) -> str:
    plan = day_plan(device, 0, spec)
    return "never" if plan is None else plan.subdivision or plan.country


async def _approve_as_second_admin(driver: FleetDriver, path: str) -> str:
    """The four-eyes rule: a second admin key, made for the demo, approves the campaign."""
    key = await driver.operator(
        "POST", "/v1/apikeys", json={"name": "demo second admin", "role": "admin"}
    )
    approved = await driver.operator("POST", f"{path}/approve", token=key["token"])
    return str(approved["approved_by"])


async def _until_done(
    driver: FleetDriver, path: str, wait_s: float, poll_s: float
) -> dict[str, Any]:
    """The campaign's summary once the service's runner has finished it; ServiceError if it
    stops otherwise or is not done within `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        summary = await driver.operator("GET", path)
        state = summary["state"]
        if state == "done":
            return summary
        if state not in ("running", "draft"):
            raise ServiceError(f"campaign {summary['id']} stopped {state}: {summary}")
        if time.monotonic() > deadline:
            raise ServiceError(
                f"campaign {summary['id']} not done within {wait_s:g} s: {state}, applied"
                f" {summary['applied']} of {summary['targets']} (see the service's log)"
            )
        await asyncio.sleep(poll_s)


async def _judge(driver: FleetDriver, step: CampaignStep, path: str, batches: list[str]) -> None:
    """Each target against ground truth; what the selection rightly leaves out."""
    known = driver.by_device_id()
    targeted: set[int] = set()
    after = ""
    while True:
        page = await driver.operator(
            "GET", f"{path}/targets", params={"after": after, "limit": _PAGE}
        )
        for t in page["targets"]:
            device = known.get(t["device"])
            if device is None:
                step.targets_unknown += 1
                continue
            targeted.add(device.index)
            if device.profile is Profile.DIVERTED:
                step.targets_diverted += 1
            else:
                step.targets_legitimate.append(f"{device.profile.value} {device.imei}")
        if page["next"] is None:
            break
        after = page["next"]
    traced = [d for d in driver.devices if d.batch in batches and d.index not in targeted]
    first = Counter(
        _activation_place(d, driver.spec) for d in traced if d.profile is Profile.DIVERTED
    )
    step.diverted_not_reached = dict(first.most_common())
    step.travellers_spared = sum(1 for d in traced if d.profile is Profile.TRAVELLER)
