"""The story's investigation: after the week under the block, the maker asks which
distributors and batches leak (`GET /v1/investigations/leaks`), checks the answer against the
scenario's ground truth (found, missed, flagged wrongly), and opens a case on the findings as
they stand (`POST /v1/cases` with `"investigate": true`). The campaign then locks the flagged
batches' stock (`sim/campaign.py`); the case links it and is closed when the block is lifted.

The ground truth: a batch leaks when the simulator diverted some of its devices; a distributor
leaks when one of its batches does. A leaking batch can be too small to prove anything (one
diverted device among three): the story says so rather than hide it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from regionlock.sim.driver import FleetDriver
from regionlock.sim.fleet import Profile, SimDevice

TITLE = "Gray-market stock in restricted places"
REASON = "the week under the block: which distributors' and batches' stock leaks"
OUTCOME = "block lifted; the flagged batches' stock stays locked by the campaign"


@dataclass
class Verdicts:
    """One grouping's flagged groups against the truth."""

    flagged: list[dict[str, Any]]  # the service's flagged rows, strongest first
    truth: list[str]  # the groups that really leak
    devices: dict[str, int] = field(default_factory=dict)  # group -> devices registered
    diverted: dict[str, int] = field(default_factory=dict)  # group -> diverted devices (truth)

    @property
    def found(self) -> list[str]:
        return [r["group"] for r in self.flagged if r["group"] in self.truth]

    @property
    def wrong(self) -> list[str]:
        return [r["group"] for r in self.flagged if r["group"] not in self.truth]

    @property
    def missed(self) -> list[str]:
        found = {r["group"] for r in self.flagged}
        return [g for g in self.truth if g not in found]

    def to_json(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "truth": self.truth,
            "found": self.found,
            "missed": {g: [self.diverted[g], self.devices[g]] for g in self.missed},
            "wrong": self.wrong,
        }


@dataclass
class InvestigationStep:
    batches: Verdicts
    distributors: Verdicts
    case_id: str | None = None
    snapshot_sha256: str | None = None
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "batches": self.batches.to_json(),
            "distributors": self.distributors.to_json(),
            "case": self.case_id,
            "snapshot_sha256": self.snapshot_sha256,
            "wall_s": self.wall_s,
        }


def _verdicts(rows: Sequence[dict[str, Any]], devices: Sequence[SimDevice], attr: str) -> Verdicts:
    registered: dict[str, int] = {}
    diverted: dict[str, int] = {}
    for d in devices:
        group = getattr(d, attr)
        registered[group] = registered.get(group, 0) + 1
        if d.profile is Profile.DIVERTED:
            diverted[group] = diverted.get(group, 0) + 1
    return Verdicts(
        flagged=[r for r in rows if r["flagged"]],
        truth=sorted(diverted),
        devices=registered,
        diverted=diverted,
    )


async def investigate(driver: FleetDriver) -> InvestigationStep:
    """Rank batches and distributors, judge the flags, open the case."""
    started = time.perf_counter()
    by_batch = await driver.operator("GET", "/v1/investigations/leaks", params={"by": "batch"})
    by_distributor = await driver.operator(
        "GET", "/v1/investigations/leaks", params={"by": "distributor"}
    )
    step = InvestigationStep(
        batches=_verdicts(by_batch["rows"], driver.devices, "batch"),
        distributors=_verdicts(by_distributor["rows"], driver.devices, "distributor"),
    )
    case = await driver.operator(
        "POST", "/v1/cases", json={"title": TITLE, "reason": REASON, "investigate": True}
    )
    step.case_id = case["id"]
    step.snapshot_sha256 = case["findings"]["snapshot_sha256"]
    step.wall_s = time.perf_counter() - started
    return step


async def link_campaign(driver: FleetDriver, case_id: str, campaign_id: str) -> None:
    """The campaign is the decision taken on the case."""
    await driver.operator("POST", f"/v1/cases/{case_id}/links", json={"campaign": campaign_id})


async def close_case(driver: FleetDriver, case_id: str) -> dict[str, Any]:
    """The block is lifted: the case ends."""
    return await driver.operator("POST", f"/v1/cases/{case_id}/close", json={"outcome": OUTCOME})
