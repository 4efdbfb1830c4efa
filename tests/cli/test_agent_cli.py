"""`regionlock agent status`: what a device holds and what it will do offline, from its state file.

The service is played by signing a verdict for the device's check-in directly, as in
tests/agent/test_agent.py; the agent runs on the wall clock, as the CLI does.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from regionlock.agent import Agent, AgentState, FileStore
from regionlock.cli.main import cli
from regionlock.clock import SystemClock
from regionlock.signing import VERDICT_TYP, SigningKey, jws, verify_checkin

DAY = 86_400


def device_holding(path: Path, verdict: str, offline: dict[str, Any]) -> int:
    """A state file at `path` whose device holds a fresh 7-day `verdict` with `offline`;
    returns the verdict's `exp`."""
    service = SigningKey.generate(datetime.now(UTC))
    store = FileStore(path)
    agent = Agent(
        AgentState(
            kid="353918050000005",
            seed=secrets.token_bytes(32),
            jwks={"keys": [service.public_jwk()]},
            issuer="regionlock-test",
        ),
        SystemClock(),
        store,
    )
    checkin = agent.begin_checkin({})
    iat = json.loads(jws.b64url_decode(checkin.split(".")[1]))["iat"]
    request = verify_checkin(checkin, agent.key.public_bytes, now=datetime.fromtimestamp(iat, UTC))
    claims = {
        "iss": "regionlock-test",
        "sub": "dev_test",
        "verdict": verdict,
        "reasons": [],
        "message": "",
        "contact": "support@example.com",
        "policy": {"id": "p", "version": "1"},
        "location": {"country": "FR", "subdivision": None},
        "nonce": request.nonce,
        "counter": request.counter,
        "iat": iat,
        "exp": iat + 7 * DAY,
        "offline": offline,
        "ver": 1,
    }
    agent.accept(jws.sign(claims, service, VERDICT_TYP))
    return iat + 7 * DAY


def day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def status(path: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["agent", "status", "--state", str(path), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_status_states_when_an_offline_device_warns_and_locks(tmp_path: Path) -> None:
    state = tmp_path / "agent.json"
    exp = device_holding(state, "allow", {"action": "lock", "lock_after_days": 30, "warn_days": 7})
    out = status(state)
    assert out.startswith("ALLOW  (verdict)")
    assert f"lease ends {datetime.fromtimestamp(exp, UTC).isoformat()}" in out
    # 30 days after the lease it locks, after 7 days of warnings (docs/agent.md).
    assert (
        "offline rule: lock after 30 days: without a check-in the verdict (allow) continues "
        f"until {day(exp + 23 * DAY)}, the device then warns, and locks on {day(exp + 30 * DAY)}"
    ) in out
    shown = json.loads(status(state, "--json"))
    assert shown["offline"] == {"action": "lock", "lock_after_days": 30, "warn_days": 7}


def test_status_states_the_warn_and_keep_rules(tmp_path: Path) -> None:
    warn = tmp_path / "warn.json"
    device_holding(warn, "allow", {"action": "warn", "lock_after_days": 0, "warn_days": 0})
    assert (
        "offline rule: warn: after the lease the device warns and keeps working until it checks in"
    ) in status(warn)
    keep = tmp_path / "keep.json"
    device_holding(keep, "lock", {"action": "keep", "lock_after_days": 0, "warn_days": 0})
    out = status(keep)
    assert out.startswith("LOCK")
    assert "offline rule: keep: after the lease the verdict (lock) stays in force" in out


def test_status_of_a_device_with_no_verdict_yet_names_no_rule(tmp_path: Path) -> None:
    state = tmp_path / "new.json"
    FileStore(state).save(
        AgentState(kid="353918050000005", seed=secrets.token_bytes(32), jwks={"keys": []})
    )
    out = status(state)
    assert out.startswith("ALLOW  (none)") and "offline rule" not in out
