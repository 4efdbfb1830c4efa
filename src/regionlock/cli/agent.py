"""`regionlock agent`: one simulated device from the command line (the reference agent).

    regionlock agent init --url http://127.0.0.1:8000 --imei 356938035643809   # prints a CSV row
    regionlock devices import device.csv                                      # operator side
    regionlock agent checkin --network 432-11 --lat 35.69 --lon 51.39
    regionlock agent status
    regionlock agent challenge        # on a locked device
    regionlock agent unlock 12345-67890

The state (key, counter, last verdict) lives in one JSON file, `--state` (default
./regionlock-agent.json, env REGIONLOCK_AGENT_STATE).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import click
import httpx

from regionlock.agent import Agent, AgentState, Enforcement, FileStore, UnlockRefused
from regionlock.agent.client import check_in, fetch_provisioning
from regionlock.agent.core import DAY
from regionlock.cli.locate import SignalOptions, signal_options
from regionlock.clock import SystemClock
from regionlock.domain.device import encode_public_key, parse_imei
from regionlock.domain.errors import InvalidInput
from regionlock.signing import SigningKey
from regionlock.signing.appeal import AppealRequest, sign_appeal

state_option = click.option(
    "--state",
    "state_path",
    envvar="REGIONLOCK_AGENT_STATE",
    default="regionlock-agent.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The device's state file (holds its private key: keep it private).",
)
COLOURS = {"allow": "green", "warn": "yellow", "lock": "red"}


@contextmanager
def _device(path: str) -> Iterator[Agent]:
    """The device of the state file, held exclusively for the command (no two processes
    change one device's state at once)."""
    store = FileStore(path)
    with store.exclusive():
        device = Agent(store.load(), SystemClock(), store)
        yield device
        store.save(device.state)


def _show(agent: Agent, enforcement: Enforcement, as_json: bool) -> None:
    held = agent.held_or_none()
    offline = held["offline"] if held is not None else None
    if as_json:
        click.echo(
            json.dumps(
                {"device": agent.state.device_id, **enforcement.to_json(), "offline": offline}
            )
        )
        return
    action = enforcement.action.value
    click.secho(f"{action.upper():<5}", fg=COLOURS[action], bold=True, nl=False)
    click.echo(f"  ({enforcement.reason})  device {agent.state.device_id or agent.state.kid}")
    if enforcement.message:
        click.echo(f"  {enforcement.message}")
    if enforcement.contact:
        click.echo(f"  contact: {enforcement.contact}")
    if enforcement.lease_expires:
        when = datetime.fromtimestamp(enforcement.lease_expires, UTC).isoformat()
        click.echo(f"  lease ends {when}")
    if held is not None and enforcement.reason != "support-unlock":
        click.echo(f"  offline rule: {offline_rule(held)}")
    if action == "lock":
        click.echo("  On a phone only emergency calls and network settings remain.")
        click.echo("  Support can unlock it offline: `regionlock agent challenge`.")


def offline_rule(claims: dict[str, Any]) -> str:
    """What the held verdict's `offline` rule makes the device do once its lease ends without
    a newer verdict, in the terms of `Agent.enforcement` (docs/agent.md, "Enforcing offline")."""
    offline, exp = claims["offline"], int(claims["exp"])
    locked = claims["verdict"] == "lock"
    until = "until it checks in"
    if offline["action"] == "keep":
        return f"keep: after the lease the verdict ({claims['verdict']}) stays in force {until}"
    if offline["action"] == "warn":
        if locked:
            return f"warn: after the lease a lock stays a lock {until}"
        return f"warn: after the lease the device warns and keeps working {until}"
    lock_at = exp + offline["lock_after_days"] * DAY
    warn_at = max(exp, lock_at - offline["warn_days"] * DAY)
    if locked:
        return f"lock: after the lease it stays locked {until}"
    rule = f"lock after {offline['lock_after_days']} days: without a check-in the verdict "
    if warn_at == lock_at:
        return rule + f"({claims['verdict']}) continues until it locks on {_date(lock_at)}"
    return rule + (
        f"({claims['verdict']}) continues until {_date(warn_at)}, the device then warns, "
        f"and locks on {_date(lock_at)}"
    )


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "127.0.0.1", "::1")


@click.group()
def agent() -> None:
    """Run one simulated device: provision it, check in, show what it enforces."""


@agent.command("init")
@click.option("--url", required=True, help="The service, e.g. http://127.0.0.1:8000.")
@click.option("--imei", required=True, help="The device's IMEI (15 digits, Luhn-checked).")
@click.option("--issuer", default="regionlock", show_default=True, help="Expected `iss`.")
@click.option("--model", default="REF-1", show_default=True)
@click.option("--sales-region", default="GLOBAL", show_default=True)
@click.option("--distributor", default="reference", show_default=True)
@click.option("--batch", default="cli", show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing state file (a new key!).")
@state_option
def init(
    url: str,
    imei: str,
    issuer: str,
    model: str,
    sales_region: str,
    distributor: str,
    batch: str,
    force: bool,
    state_path: str,
) -> None:
    """Provision a device: new key, pinned JWKS and unlock key; prints its import CSV row."""
    parsed = parse_imei(imei)
    if not url.startswith("https://") and not _loopback(url):
        click.secho(
            f"warning: {url} is not https: whoever answers it could pin their own verdict key. "
            "Provision devices over TLS.",
            fg="yellow",
            err=True,
        )
    store = FileStore(state_path)
    if store.path.exists() and not force:
        raise InvalidInput(f"{state_path} exists; pass --force to replace it (and its key)")
    with httpx.Client(base_url=url, timeout=10) as client:
        try:
            jwks, unlock_key = fetch_provisioning(client)
        except httpx.HTTPError as exc:
            raise InvalidInput(f"cannot reach {url}: {exc}") from None
    seed = secrets.token_bytes(32)
    public = SigningKey.from_seed(seed, datetime.now(UTC)).public_bytes
    state = AgentState(
        kid=parsed.digits,
        seed=seed,
        jwks=jwks,
        issuer=issuer,
        service_url=url,
        unlock_key=unlock_key,
    )
    store.save(state)
    click.echo(f"device state written to {state_path}; register it with:", err=True)
    click.echo("imei,serial,model,sales_region,distributor,batch,public_key")
    click.echo(
        f"{parsed.digits},SN-{parsed.digits[-6:]},{model},{sales_region},{distributor},{batch},"
        f"{encode_public_key(public)}"
    )


@agent.command("checkin")
@signal_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@state_option
def checkin(opts: SignalOptions, as_json: bool, state_path: str) -> None:
    """Check in with these signals (as the device would sense them) and apply the verdict."""
    signals: dict[str, Any] = opts.wire()
    with _device(state_path) as device:
        url = device.state.service_url
        if url is None:
            raise InvalidInput("the state has no service URL; run `regionlock agent init`")
        with httpx.Client(base_url=url, timeout=30) as client:
            enforcement = check_in(device, client, signals)
        _show(device, enforcement, as_json)


@agent.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@state_option
def status(as_json: bool, state_path: str) -> None:
    """What the device enforces now, offline (lease, offline rule, support unlock)."""
    with _device(state_path) as device:
        enforcement = device.enforcement()
        _show(device, enforcement, as_json)
        if not as_json and device.state.rejected:
            click.echo(f"  last refused verdict: {device.state.rejected[-1]}")


@agent.command("challenge")
@state_option
def challenge(state_path: str) -> None:
    """Show the unlock challenge of a locked device (read it to support)."""
    with _device(state_path) as device:
        try:
            click.echo(device.challenge())
        except UnlockRefused as exc:
            raise InvalidInput(str(exc)) from None


@agent.command("unlock")
@click.argument("code")
@state_option
def unlock(code: str, state_path: str) -> None:
    """Enter the unlock code support read out for the challenge shown."""
    with _device(state_path) as device:
        try:
            enforcement = device.enter_unlock_code(code)
        except UnlockRefused as exc:
            raise InvalidInput(str(exc)) from None
        _show(device, enforcement, False)


@agent.command("appeal")
@click.option("--contact", required=True, help="How support can reach the owner.")
@click.option("--message", required=True, help="Why the lock is wrong, in the owner's words.")
@click.option("--language", help="The owner's language, e.g. fa-IR (default: none given).")
@state_option
def appeal(contact: str, message: str, language: str | None, state_path: str) -> None:
    """Contest the lock: send a signed appeal (docs/protocol.md, "Appeals"); print its id."""
    with _device(state_path) as device:
        url = device.state.service_url
        if url is None:
            raise InvalidInput("the state has no service URL; run `regionlock agent init`")
        request = AppealRequest(
            nonce=secrets.token_urlsafe(16),
            iat=device._signing_time(),
            contact=contact,
            message=message,
            language=language,
        )
        token = sign_appeal(request, device.key, device.state.device_id or device.state.kid)
        with httpx.Client(base_url=url, timeout=30) as client:
            response = client.post(
                "/v1/appeals", content=token, headers={"content-type": "application/jose"}
            )
    body = response.json() if response.content else {}
    if response.status_code in (200, 201):
        click.echo(f"appeal {body['id']}: {body['status']}")
        click.echo(body["id"])
        return
    raise click.ClickException(
        f"the service refused the appeal ({response.status_code}): {body.get('detail', body)}"
    )
