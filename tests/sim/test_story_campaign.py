"""The story's campaign step, against a stand-in for the operator API: what it asks the service
for, when it stops, and how it judges the targets against ground truth. (`tests/e2e/test_demo.py`
runs it against the real service.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from regionlock.clock import SimulatedClock
from regionlock.sim.campaign import ACTIVATED_IN, lock_traced_stock, traced_batches
from regionlock.sim.driver import FleetDriver, ServiceError
from regionlock.sim.fleet import FleetSpec, Profile, SimDevice, generate_fleet

SPEC = FleetSpec(devices=600, seed=7, days=3)
FLEET = generate_fleet(SPEC)
APPROVAL = {
    "type": "https://regionlock.dev/problems/approval-required",
    "detail": "over the four-eyes limit",
}
Answer = Callable[[str, str, dict[str, Any]], dict[str, Any]]


class Service(FleetDriver):
    """A driver whose operator requests `answer` replies to (recorded), with known device ids."""

    def __init__(self, answer: Answer, ids: dict[str, SimDevice]) -> None:
        super().__init__(
            "http://unused", "admin", FLEET, SPEC, clock=SimulatedClock(datetime.now(UTC))
        )
        self.answer = answer
        self.ids = ids
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def operator(
        self, method: str, path: str, *, token: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        self.calls.append((method, path, kw | ({"token": token} if token else {})))
        return self.answer(method, path, kw)

    def by_device_id(self) -> dict[str, SimDevice]:
        return self.ids


def diverted(n: int) -> list[SimDevice]:
    return [d for d in FLEET if d.profile is Profile.DIVERTED][:n]


def preview(devices: int, inside: int = 0) -> dict[str, Any]:
    return {"devices": devices, "inside_sales_region": inside, "by_country": {"IR": devices}}


def test_the_batches_traced_are_those_with_diverted_devices() -> None:
    batches = traced_batches(FLEET)
    assert batches and batches == sorted({d.batch for d in diverted(10_000)})
    assert all(any(d.batch == b and d.profile is Profile.DIVERTED for d in FLEET) for b in batches)
    assert traced_batches([d for d in FLEET if d.profile is Profile.RESIDENT]) == []


def test_dry_run_create_approve_start_wait_and_judge() -> None:
    targets = [*diverted(2), next(d for d in FLEET if d.profile is Profile.RESIDENT)]
    ids = {f"dev{i}": d for i, d in enumerate(targets)}
    states = iter(["running", "running", "done"])
    started: list[int] = []

    def answer(method: str, path: str, kw: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/campaigns":
            return preview(3) if kw["json"].get("dry_run") else {"id": "cmp_x", "targets": 3}
        if path.endswith("/start"):
            started.append(1)
            if len(started) == 1:
                raise ServiceError("409", 409, APPROVAL)
            return {}
        if path == "/v1/apikeys":
            return {"token": "second"}
        if path.endswith("/approve"):
            return {"approved_by": "apikey:2 (demo second admin)"}
        if path.endswith("/targets"):
            listed = [{"device": i} for i in [*ids, "devX"]]
            return {"targets": listed, "next": None}
        counts = {"applied": 4, "skipped": 0, "errors": 0, "targets": 4}
        return {"id": "cmp_x", "state": next(states)} | counts

    service = Service(answer, ids)
    step = asyncio.run(lock_traced_stock(service, traced_batches(FLEET), poll_s=0))
    dry, create = (kw["json"] for _, path, kw in service.calls[:2])
    assert dry["dry_run"] is True and "dry_run" not in create
    assert dry["where"] == {"batch": traced_batches(FLEET), "activated_in": list(ACTIVATED_IN)}
    assert dry["action"] == create["action"] == "lock"
    approve = next(kw for _, path, kw in service.calls if path.endswith("/approve"))
    assert approve["token"] == "second"
    assert (step.id, step.state, step.applied, step.targets) == ("cmp_x", "done", 4, 3)
    assert step.approval_asked == "over the four-eyes limit"
    assert step.second_admin == "apikey:2 (demo second admin)"
    assert step.targets_diverted == 2 and step.targets_unknown == 1
    assert step.targets_legitimate == [f"resident {targets[2].imei}"]
    reached = {d.index for d in targets}
    others = [d for d in diverted(10_000) if d.index not in reached]
    assert sum(step.diverted_not_reached.values()) == len(others)


def test_a_dry_run_reaching_owners_at_home_creates_nothing() -> None:
    def answer(method: str, path: str, kw: dict[str, Any]) -> dict[str, Any]:
        assert kw["json"]["dry_run"] is True, "only the dry run may be asked for"
        return preview(5, inside=1)

    service = Service(answer, {})
    step = asyncio.run(lock_traced_stock(service, traced_batches(FLEET)))
    assert step.id is None and step.refused is not None
    assert "1 of the devices it would lock are inside their sales region" in step.refused
    assert len(service.calls) == 1


@pytest.mark.parametrize(
    ("state", "message"),
    [("running", "not done within 0.01 s: running, applied 1 of 3"), ("paused", "stopped paused")],
)
def test_waiting_for_the_runner_is_bounded(state: str, message: str) -> None:
    def answer(method: str, path: str, kw: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/campaigns":
            return preview(3) if kw["json"].get("dry_run") else {"id": "cmp_y", "targets": 3}
        if path.endswith("/start"):
            return {}
        return {"id": "cmp_y", "state": state, "applied": 1, "targets": 3}

    with pytest.raises(ServiceError, match=message):
        asyncio.run(
            lock_traced_stock(Service(answer, {}), traced_batches(FLEET), wait_s=0.01, poll_s=0.002)
        )
