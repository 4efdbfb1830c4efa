"""The service side of the reference agent: unlock codes, the unlock key, the simulated clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from test_api import EXAMPLES, TEHRAN, imei, setup

from regionlock.agent import Agent, AgentState, UnlockRefused
from regionlock.agent.client import check_in
from regionlock.api.app import create_app
from regionlock.clock import SimulatedClock
from regionlock.domain.policy import Action
from regionlock.geo import Locator
from regionlock.settings import Settings


@pytest.fixture
def sim_client(db_url: str, locator: Locator) -> Iterator[TestClient]:
    clock = SimulatedClock(datetime(2026, 3, 1, 8, tzinfo=UTC), ticking=False)
    app = create_app(
        Settings(database_url=db_url, simulated_clock=True), locator=locator, clock=clock
    )
    with TestClient(app) as c:
        yield c


def agent_for(client: TestClient, seed: bytes, clock: object) -> Agent:
    jwks = client.get("/.well-known/jwks.json").json()
    unlock = client.get("/.well-known/regionlock-unlock-key").json()
    assert unlock["crv"] == "X25519" and "d" not in unlock
    from regionlock.signing.jws import b64url_decode

    state = AgentState(
        kid=imei(1),
        seed=seed,
        jwks=jwks,
        issuer="regionlock",
        unlock_key=b64url_decode(unlock["x"]),
    )
    return Agent(state, clock)  # type: ignore[arg-type]


def test_an_operator_reads_an_unlock_code_that_the_locked_device_accepts_once(
    client: TestClient,
) -> None:
    key, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    r = client.post(
        "/v1/policies/activate",
        json={"policy": (EXAMPLES / "gray-market-2021.toml").read_text(), "reason": "2021"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    agent = agent_for(client, key.private_key.private_bytes_raw(), state.clock)
    enforcement = check_in(agent, client, TEHRAN)  # type: ignore[arg-type]
    assert enforcement.action is Action.LOCK
    challenge = agent.challenge()
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    body = {"challenge": challenge, "reason": "owner proved purchase in Germany"}
    r = client.post(f"/v1/devices/{imei(1)}/unlock-code", json=body, headers=viewer)
    assert r.status_code == 403  # viewers read; operators act
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    r = client.post(f"/v1/devices/{imei(1)}/unlock-code", json=body, headers=operator)
    assert r.status_code == 200, r.text
    code = r.json()["code"]
    assert agent.enter_unlock_code(code).action is Action.ALLOW
    with pytest.raises(UnlockRefused):
        agent.enter_unlock_code(code)
    entry = client.get("/v1/audit", headers=viewer).json()["entries"][-1]
    assert entry["action"] == "device.unlock_code" and entry["details"] == {"challenge": challenge}
    assert code.replace("-", "") not in str(entry)  # the code itself is never stored
    r = client.post(
        f"/v1/devices/{imei(1)}/unlock-code",
        json={"challenge": "12ab-5678", "reason": "x"},
        headers=operator,
    )
    assert r.status_code == 422 and "8 digits" in r.json()["detail"]


def test_the_clock_endpoint_exists_only_when_simulated(client: TestClient) -> None:
    assert client.get("/v1/clock").status_code == 404
    assert client.put("/v1/clock", json={"now": "2030-01-01T00:00:00Z"}).status_code == 404


def test_a_simulated_clock_moves_the_service_and_never_back(sim_client: TestClient) -> None:
    _, tokens = setup(sim_client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    assert sim_client.get("/v1/clock").json()["now"].startswith("2026-03-01T08:00")
    later = "2026-03-08T08:00:00+00:00"
    assert sim_client.put("/v1/clock", json={"now": later}, headers=operator).status_code == 403
    r = sim_client.put("/v1/clock", json={"now": later}, headers=admin)
    assert r.status_code == 200 and r.json()["now"] == later
    r = sim_client.put("/v1/clock", json={"now": "2026-03-02T00:00:00Z"}, headers=admin)
    assert r.status_code == 422 and "backwards" in r.json()["detail"]
    r = sim_client.put("/v1/clock", json={"now": "2026-03-09T00:00:00"}, headers=admin)
    assert r.status_code == 422  # a time without its zone is refused, not guessed


def test_a_device_on_real_time_adopts_the_simulated_service_time(sim_client: TestClient) -> None:
    """The CLI agent uses the machine's clock; the service's clock-skew answer corrects it."""
    key, _ = setup(sim_client)
    from regionlock.clock import SystemClock

    agent = agent_for(sim_client, key.private_key.private_bytes_raw(), SystemClock())
    got = check_in(agent, sim_client, {"network": ["262-01"]})  # type: ignore[arg-type]
    assert got.action is Action.ALLOW
    server = datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert abs(agent.now() - server.timestamp()) < timedelta(minutes=5).total_seconds()


def test_settings_refuse_a_simulated_clock_where_it_could_mislead() -> None:
    from regionlock.domain.errors import InvalidInput

    with pytest.raises(InvalidInput, match="production"):
        Settings(environment="production", simulated_clock=True).validated()
    with pytest.raises(InvalidInput, match="single worker"):
        Settings(simulated_clock=True, workers=2).validated()
    with pytest.raises(ValueError, match="simulated_clock"):
        create_app(Settings(), clock=SimulatedClock())


def test_after_a_key_rotation_the_agent_fetches_the_jwks_once_and_carries_on(
    client: TestClient,
) -> None:
    key, tokens = setup(client)
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    agent = agent_for(client, key.private_key.private_bytes_raw(), state.clock)
    assert check_in(agent, client, {"network": ["262-01"]}).action is Action.ALLOW  # type: ignore[arg-type]
    old_kids = {k["kid"] for k in agent.state.jwks["keys"]}
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    assert (
        client.post("/v1/keys/rotate", json={"reason": "yearly"}, headers=admin).status_code == 200
    )
    got = check_in(agent, client, {"network": ["262-01"]})  # type: ignore[arg-type]
    assert got.action is Action.ALLOW
    new_kids = {k["kid"] for k in agent.state.jwks["keys"]}
    assert old_kids < new_kids  # the retired key stays published beside the new one
    assert agent.state.counter == 2 and agent.state.pending_nonce is None
