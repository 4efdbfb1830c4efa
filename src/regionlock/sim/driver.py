"""Drive a simulated fleet against a running service: register it, then check in day by day.

Every device is a reference `Agent` (the same code a firmware team would port), kept in
memory. Many of them check in at once over one pooled HTTP client (asyncio), and the service
and the agents share one simulated time: the driver moves the service's clock
(`PUT /v1/clock`, which exists only when the service runs with REGIONLOCK_SIMULATED_CLOCK) and
its own to the start of each simulated day, and both then tick in real time from there.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from regionlock.agent import Agent, AgentState
from regionlock.agent.client import (
    PROBLEM_PREFIX,
    CheckinFailed,
    RefreshJwks,
    Retry,
    accept_after_refresh,
    handle_response,
)
from regionlock.agent.core import BackingOff
from regionlock.clock import SimulatedClock
from regionlock.signing import TokenError
from regionlock.signing.jws import b64url_decode
from regionlock.sim.fleet import DayPlan, FleetSpec, SimDevice, csv_lines, day_plan

IMPORT_CHUNK = 5_000  # devices per import request: bounded request bodies, visible progress


@dataclass(frozen=True, slots=True)
class Outcome:
    """One device's check-in on one simulated day, as the device saw it."""

    index: int
    day: int
    plan: DayPlan
    action: str | None  # what the device enforces after it (None: the check-in failed)
    verdict: str | None  # the verdict token's claim (None: no verdict)
    reasons: tuple[str, ...]
    country: str | None  # where the service placed it
    subdivision: str | None
    latency_s: float
    error: str | None = None


@dataclass
class ImportResult:
    imported: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)


class ServiceError(RuntimeError):
    """The service answered an operator request with an error: its status and, for a problem
    document (RFC 9457), its type."""

    def __init__(
        self, message: str, status: int = 0, problem: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


class FleetDriver:
    """Registers a fleet with a running service and drives its check-ins."""

    def __init__(
        self,
        url: str,
        admin_token: str,
        devices: Sequence[SimDevice],
        spec: FleetSpec,
        *,
        clock: SimulatedClock,
        concurrency: int = 16,
        issuer: str = "regionlock",
    ) -> None:
        self.url = url
        self.headers = {"authorization": f"Bearer {admin_token}"}
        self.devices = devices
        self.spec = spec
        self.clock = clock
        self.concurrency = concurrency
        self.issuer = issuer
        self.agents: dict[int, Agent] = {}
        self._jwks: dict[str, Any] | None = None
        self._unlock_key: bytes | None = None
        self._http: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # One pooled session for the whole run. aiohttp, not httpx: measured here, httpx's
        # async pool cost ~3 ms of client CPU per check-in, more than the service's own work.
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                base_url=self.url,
                connector=aiohttp.TCPConnector(limit=self.concurrency),
                timeout=aiohttp.ClientTimeout(total=60),
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _operator(
        self, client: aiohttp.ClientSession, method: str, path: str, **kw: Any
    ) -> dict[str, Any]:
        headers = {**self.headers, **kw.pop("headers", {})}
        async with client.request(method, path, headers=headers, **kw) as response:
            if response.status >= 400:
                text = await response.text()
                try:
                    problem = json.loads(text)
                except ValueError:
                    problem = None
                raise ServiceError(
                    f"{method} {path}: {response.status} {text[:300]}",
                    response.status,
                    problem if isinstance(problem, dict) else None,
                )
            body: dict[str, Any] = await response.json()
        return body

    async def operator(
        self, method: str, path: str, *, token: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        """An operator API request as the demo's admin (or as the holder of `token`); its
        JSON answer, or ServiceError."""
        if token is not None:
            kw["headers"] = {"authorization": f"Bearer {token}"}
        return await self._operator(self._client(), method, path, **kw)

    async def set_time(self, client: aiohttp.ClientSession, when: datetime) -> None:
        """Move the service's clock and the agents' clock to `when` together."""
        await self._operator(client, "PUT", "/v1/clock", json={"now": when.isoformat()})
        self.clock.set(when)

    async def register(self, progress: Callable[[int], None] | None = None) -> ImportResult:
        """Import the fleet through the operator API, in chunks (idempotent)."""
        result = ImportResult()
        client = self._client()
        for start in range(0, len(self.devices), IMPORT_CHUNK):
            chunk = self.devices[start : start + IMPORT_CHUNK]
            body = "".join(csv_lines(chunk))
            got = await self._operator(
                client,
                "POST",
                "/v1/devices/import",
                data=body.encode(),
                headers={"content-type": "text/csv"},
            )
            result.imported += got["imported"]
            result.unchanged += got["unchanged"]
            result.problems += [f"{p['line']}: {p['message']}" for p in got["problems"]]
            if progress:
                progress(len(chunk))
        self._jwks = await self._operator(client, "GET", "/.well-known/jwks.json")
        unlock = await self._operator(client, "GET", "/.well-known/regionlock-unlock-key")
        self._unlock_key = b64url_decode(unlock["x"])
        return result

    async def activate(self, policy_text: str, reason: str) -> dict[str, Any]:
        client = self._client()
        return await self._operator(
            client,
            "POST",
            "/v1/policies/activate",
            json={"policy": policy_text, "reason": reason},
        )

    def agent(self, device: SimDevice) -> Agent:
        """The device's agent, provisioned as at manufacture (key, pinned JWKS, unlock key)."""
        found = self.agents.get(device.index)
        if found is None:
            if self._jwks is None:
                raise RuntimeError("register the fleet first (it fetches the JWKS)")
            state = AgentState(
                kid=device.imei,
                seed=device.key_seed,
                jwks=self._jwks,
                issuer=self.issuer,
                unlock_key=self._unlock_key,
            )
            found = self.agents[device.index] = Agent(state, self.clock)
        return found

    def by_device_id(self) -> dict[str, SimDevice]:
        """The devices that have checked in, by the id the service gave them (each agent
        learns its id from its first verified verdict)."""
        found: dict[str, SimDevice] = {}
        for device in self.devices:
            agent = self.agents.get(device.index)
            if agent is not None and agent.state.device_id is not None:
                found[agent.state.device_id] = device
        return found

    async def run_day(
        self,
        day: int,
        start: datetime,
        *,
        progress: Callable[[int], Callable[[int], None]] | None = None,
        devices: Iterable[SimDevice] | None = None,
    ) -> list[Outcome]:
        """Day `day` (0-based) of the scenario: every device online that day checks in once.

        `progress` is called with the number of check-ins planned and returns a function
        called after each one."""
        planned = [
            (d, plan)
            for d in (self.devices if devices is None else devices)
            if (plan := day_plan(d, day, self.spec)) is not None
        ]
        advance = progress(len(planned)) if progress else None
        outcomes: list[Outcome] = []
        queue: asyncio.Queue[tuple[SimDevice, DayPlan]] = asyncio.Queue()
        for item in planned:
            queue.put_nowait(item)
        client = self._client()
        await self.set_time(client, start + timedelta(days=day))

        async def worker() -> None:
            while True:
                try:
                    device, plan = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                outcomes.append(await self._check_in(client, device, day, plan))
                if advance:
                    advance(1)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        outcomes.sort(key=lambda o: o.index)
        return outcomes

    async def _check_in(
        self, client: aiohttp.ClientSession, device: SimDevice, day: int, plan: DayPlan
    ) -> Outcome:
        agent = self.agent(device)
        started = time.perf_counter()
        error: str | None = None
        for attempt in range(2):
            try:
                token = agent.begin_checkin(plan.signals)
            except BackingOff:
                error = "backing-off"
                break
            try:
                async with client.post(
                    "/v1/checkin", data=token, headers={"content-type": "application/jose"}
                ) as response:
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
                    try:
                        body = await response.json(content_type=None)
                    except ValueError:
                        body = None
            except (aiohttp.ClientError, TimeoutError) as exc:
                agent.abandon_checkin()
                error = f"unreachable: {type(exc).__name__}"
                break
            try:
                try:
                    handle_response(
                        agent, status, body, may_retry=attempt == 0, retry_after=retry_after
                    )
                except RefreshJwks as refresh:
                    jwks = await self._operator(client, "GET", "/.well-known/jwks.json")
                    self._jwks = jwks  # agents provisioned from now on get the new set
                    accept_after_refresh(agent, jwks, refresh.token)
            except Retry:
                continue
            except CheckinFailed as exc:
                error = exc.problem.removeprefix(PROBLEM_PREFIX)
            except TokenError as exc:  # the agent refused the verdict
                error = f"verdict refused: {exc.kind}"
            except (ServiceError, aiohttp.ClientError, TimeoutError) as exc:
                agent.abandon_checkin()
                error = f"unreachable: JWKS ({type(exc).__name__})"
            break
        latency = time.perf_counter() - started
        claims = None if error else agent.held_or_none()
        return Outcome(
            index=device.index,
            day=day,
            plan=plan,
            action=agent.enforcement().action.value,
            verdict=claims["verdict"] if claims else None,
            reasons=tuple(claims["reasons"]) if claims else (),
            country=claims["location"]["country"] if claims else None,
            subdivision=claims["location"]["subdivision"] if claims else None,
            latency_s=latency,
            error=error,
        )
