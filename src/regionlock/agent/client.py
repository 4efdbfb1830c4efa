"""Moving an agent's check-ins over HTTP, and what to do with each answer (docs/protocol.md).

`handle_response` is shared by the synchronous client below (the CLI) and the fleet
simulator's asyncio driver, so both follow the same rules: a `clock-skew` answer makes the
device adopt the server's time and sign again, a `stale-counter` answer makes it jump its
counter ahead (protocol rule 2), and every other refusal leaves its verdict as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from regionlock.agent.core import Agent, BackingOff, Enforcement
from regionlock.domain.errors import RegionlockError
from regionlock.signing import TokenError, UnknownKey
from regionlock.signing.jws import b64url_decode

PROBLEM_PREFIX = "https://regionlock.dev/problems/"
RETRIES = 1  # one more signed attempt after clock-skew or stale-counter


class CheckinFailed(RegionlockError):
    """The service refused the check-in (or could not be reached); the device keeps its
    current verdict."""

    def __init__(self, problem: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{problem}: {detail}")
        self.problem = problem
        self.http_status = status


class Retry(Exception):
    """Sign a new check-in and send it again (the agent has corrected its clock or counter)."""


class RefreshJwks(Exception):
    """The verdict names a key the pinned JWKS lacks: fetch the JWKS again, then call
    `accept_after_refresh` with the same token (docs/protocol.md, verifying step 3)."""

    def __init__(self, token: str) -> None:
        super().__init__("unknown verdict key")
        self.token = token


def handle_response(
    agent: Agent, status: int, body: Any, *, may_retry: bool, retry_after: str | None = None
) -> Enforcement:
    """Apply a check-in answer. Raises `Retry` when a corrected check-in should be sent. A 429
    or 503 makes the agent wait as `retry_after` (the header) says before it checks in again."""
    if not isinstance(body, Mapping):
        body = None  # not a JSON object: garbage, handled as a refusal below
    if status == 200 and body is not None and isinstance(body.get("token"), str):
        try:
            return agent.accept(body["token"])
        except UnknownKey:
            raise RefreshJwks(body["token"]) from None
    agent.abandon_checkin()
    body = body or {}
    problem = str(body.get("type", "")).removeprefix(PROBLEM_PREFIX) or f"http-{status}"
    detail = str(body.get("detail", ""))
    if status in (429, 503):  # rate-limited, service-busy, store-unavailable: come back later
        agent.back_off(retry_after)
    if may_retry and problem == "clock-skew" and isinstance(body.get("server_time"), int):
        agent.sync_clock(body["server_time"])
        raise Retry
    if may_retry and problem == "stale-counter":
        # Protocol rule 2: a device that lost its counter recovers with the time in ms.
        agent.state.counter = max(agent.state.counter + 1, agent.now() * 1000)
        agent.store.save(agent.state)
        raise Retry
    raise CheckinFailed(problem, detail, status)


def accept_after_refresh(agent: Agent, jwks: Any, token: str) -> Enforcement:
    """Check the same verdict against the JWKS fetched again (once; no second refresh). The
    new keys are pinned only if the verdict verifies with them."""
    try:
        if not isinstance(jwks, dict):
            raise UnknownKey("the service's JWKS is not a JSON object")
        return agent.accept(token, jwks=jwks)
    except TokenError:
        agent.abandon_checkin()
        raise


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def check_in(agent: Agent, client: httpx.Client, signals: dict[str, Any]) -> Enforcement:
    """One check-in over HTTP (with at most one corrected retry); the enforcement after it."""
    for attempt in range(RETRIES + 1):
        try:
            token = agent.begin_checkin(signals)
        except BackingOff as exc:
            raise CheckinFailed("backing-off", exc.message) from None
        try:
            response = client.post(
                "/v1/checkin", content=token, headers={"content-type": "application/jose"}
            )
        except httpx.HTTPError as exc:
            agent.abandon_checkin()
            raise CheckinFailed("unreachable", str(exc)) from None
        try:
            return handle_response(
                agent,
                response.status_code,
                _json(response),
                may_retry=attempt < RETRIES,
                retry_after=response.headers.get("retry-after"),
            )
        except Retry:
            continue
        except RefreshJwks as refresh:
            try:
                jwks = client.get("/.well-known/jwks.json")
                jwks.raise_for_status()
            except httpx.HTTPError as exc:
                agent.abandon_checkin()
                raise CheckinFailed("unreachable", f"JWKS: {exc}") from None
            return accept_after_refresh(agent, _json(jwks), refresh.token)
    raise AssertionError("unreachable")  # the last attempt never raises Retry


def fetch_provisioning(client: httpx.Client) -> tuple[dict[str, Any], bytes]:
    """The service's JWKS and unlock public key, as a factory provisions them on a device."""
    jwks = client.get("/.well-known/jwks.json")
    jwks.raise_for_status()
    unlock = client.get("/.well-known/regionlock-unlock-key")
    unlock.raise_for_status()
    keys, x = _json(jwks), (_json(unlock) or {}).get("x")
    if keys is None or not isinstance(keys.get("keys"), list) or not isinstance(x, str):
        raise CheckinFailed("bad-provisioning", "the service's JWKS or unlock key is malformed")
    try:
        unlock_key = b64url_decode(x)
    except ValueError:
        raise CheckinFailed("bad-provisioning", "the unlock key is not base64url") from None
    return keys, unlock_key
