"""`regionlock agent` from the command line against the real server on loopback, as
docs/agent.md walks through it: init, import, check in, status; and a device whose stored
counter fell behind the service's (a state restored from a backup) recovers by itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import CLI, served

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
IMEI = "356938035643809"
BERLIN = ["--network", "262-01", "--lat", "52.52", "--lon", "13.405", "--tz", "Europe/Berlin"]
TEHRAN = ["--network", "432-11", "--lat", "35.69", "--lon", "51.39", "--tz", "Asia/Tehran"]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A served instance under the 2021 example policy; its base URL and the CLI's env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIONLOCK_")}
    env["REGIONLOCK_DATABASE_URL"] = f"sqlite:///{tmp_path / 'rl.db'}"
    policy = str(EXAMPLES / "gray-market-2021.toml")
    done = run(env, "policy", "activate", policy, "--reason", "e2e")
    assert done.returncode == 0, done.stderr
    with served(env) as base:
        yield base, env


@pytest.fixture
def device(service: tuple[str, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A device provisioned with `agent init` and registered from the CSV row it printed."""
    base, env = service
    state = tmp_path / "device.json"
    init = run(env, "agent", "init", "--url", base, "--imei", IMEI, "--state", str(state))
    assert init.returncode == 0, init.stderr
    assert init.stdout.startswith("imei,serial,model,sales_region,distributor,batch,public_key\n")
    csv = tmp_path / "device.csv"
    csv.write_text(init.stdout)
    imported = run(env, "devices", "import", str(csv))
    assert imported.returncode == 0, imported.stderr
    return state, env


def agent(env: dict[str, str], state: Path, *args: str) -> dict[str, Any]:
    """`regionlock agent ARGS --json`: the enforcement it prints (it must succeed)."""
    done = run(env, "agent", *args, "--json", "--state", str(state))
    assert done.returncode == 0, done.stdout + done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def test_init_checkin_and_status_from_the_command_line(
    device: tuple[Path, dict[str, str]],
) -> None:
    state, env = device
    first = run(env, "agent", "checkin", *TEHRAN, "--state", str(state))
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.startswith("LOCK   (verdict)  device dev_")
    assert "support@example.com" in first.stdout
    # The verdict is kept: status shows it offline, with the 2021 policy's offline rule.
    status = run(env, "agent", "status", "--state", str(state))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("LOCK   (verdict)")
    assert "offline rule: warn: after the lease a lock stays a lock until it checks in" in (
        status.stdout
    )
    shown = agent(env, state, "status")
    assert (shown["action"], shown["reason"]) == ("lock", "verdict")
    assert shown["offline"] == {"action": "warn", "lock_after_days": 30, "warn_days": 7}


def test_a_device_restored_with_an_old_counter_recovers_from_stale_counter(
    device: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """The service has counter 4 from the device; a backup taken at counter 1 is restored.
    The next check-in signs counter 2, is refused `stale-counter`, and the agent jumps its
    counter to the time in ms (protocol rule 2) and signs again: it gets a verdict."""
    state, env = device
    backup = tmp_path / "backup.json"
    assert agent(env, state, "checkin", *BERLIN)["action"] == "allow"  # first activated in DE
    shutil.copy(state, backup)
    for _ in range(3):
        assert agent(env, state, "checkin", *BERLIN)["action"] == "allow"
    shutil.copy(backup, state)
    assert json.loads(state.read_text())["counter"] == 1

    # The restored device holds an allow; in Tehran the service answers a visitor's warning.
    shown = agent(env, state, "checkin", *TEHRAN)
    assert (shown["action"], shown["reason"]) == ("warn", "verdict")
    # The recovery's jump: a time in ms (above 10**12 since 2001), no longer a count.
    assert json.loads(state.read_text())["counter"] > 10**12
    assert agent(env, state, "status")["action"] == "warn"
    # It goes on from there: the next check-in needs no recovery.
    assert agent(env, state, "checkin", *TEHRAN)["action"] == "warn"


def test_a_locked_owner_appeals_from_the_device_and_support_grants_it(
    device: tuple[Path, dict[str, str]],
) -> None:
    """docs/appeals.md, from the command line: lock, appeal, the queue, the evidence, a grant;
    the next check-in in the same place is not a lock."""
    state, env = device
    assert agent(env, state, "checkin", *TEHRAN)["action"] == "lock"
    sent = run(
        env, "agent", "appeal", "--contact", "owner@example.com", "--language", "fa-IR",
        "--message", "I live in Dubai; this was a trip.", "--state", str(state),
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    appeal_id = sent.stdout.strip().splitlines()[-1]
    assert appeal_id.startswith("apl_") and "open" in sent.stdout
    queue = json.loads(run(env, "appeal", "list", "--status", "open", "--json").stdout)
    assert [a["id"] for a in queue] == [appeal_id]
    shown = run(env, "appeal", "show", appeal_id)
    assert "I live in Dubai" in shown.stdout and "lock in IR-23" in shown.stdout
    decided = run(
        env, "appeal", "decide", appeal_id, "--grant", "--days", "14", "--reason", "receipt"
    )
    assert decided.returncode == 0 and "granted: exempt until" in decided.stdout, decided.stderr
    assert agent(env, state, "checkin", *TEHRAN)["action"] != "lock"
    again = run(env, "appeal", "decide", appeal_id, "--deny", "--reason", "changed my mind")
    assert again.returncode != 0 and "granted already" in again.stderr
