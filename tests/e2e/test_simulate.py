"""End to end: `regionlock simulate` against `regionlock serve` started with a simulated clock,
and its refusal to drive a service whose clock is real."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serving import CLI, served


def serve(tmp: Path, simulated: bool) -> Iterator[tuple[str, str]]:
    env = {**os.environ, "REGIONLOCK_DATABASE_URL": f"sqlite:///{tmp / 'sim.db'}"}
    env["REGIONLOCK_SIMULATED_CLOCK"] = "true" if simulated else "false"
    made = subprocess.run(
        [*CLI, "apikey", "create", "--role", "admin", "--name", "sim"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    with served(env) as base:
        yield base, key


@pytest.fixture
def simulated(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from serve(tmp_path, simulated=True)


@pytest.fixture
def real(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from serve(tmp_path, simulated=False)


def simulate(base: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "simulate", "--url", base, "--api-key", key, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_simulate_drives_a_fleet_and_judges_it(simulated: tuple[str, str]) -> None:
    base, key = simulated
    done = simulate(base, key, "--devices", "150", "--days", "3", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["registered"]["imported"] == 150
    assert [d["day"] for d in result["days"]] == [0, 1, 2]
    week = result["week"]
    assert week["errors"] == {} and week["wrongly_locked"] == []
    assert week["checkins"] == sum(d["checkins"] for d in result["days"])
    assert set(week["latency_ms"]) == {"p50", "p95", "p99", "max"}
    # The service's clock moved with the scenario: three days and the lift day later.
    now = httpx.get(base + "/v1/clock").json()["now"]
    assert now.startswith(result["lift_day"]["date"])
    again = simulate(base, key, "--devices", "150", "--days", "1", "--no-lift", "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["registered"]["unchanged"] == 150  # idempotent import


def test_simulate_refuses_a_service_whose_clock_is_real(real: tuple[str, str]) -> None:
    base, key = real
    done = simulate(base, key, "--devices", "10", "--days", "1")
    assert done.returncode != 0 and "not simulated" in done.stderr
