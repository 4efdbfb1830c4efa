"""`regionlock webhook ...`: endpoints that hear of every lock, unlock, campaign and policy
change (docs/webhooks.md). `add` and `rotate-secret` print the secret once; every change is
audited as the person running the command (`cli:<user>`). Deliveries are sent by the running
service (`regionlock serve`), which also sends what was recorded while it was down."""

from __future__ import annotations

import click

from regionlock.cli.output import echo_json
from regionlock.cli.store import actor, db_option, store
from regionlock.domain.webhooks import EVENT_TYPES, Endpoint
from regionlock.services.webhook_sender import HttpSender
from regionlock.services.webhooks import Webhooks
from regionlock.settings import Settings

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _print(e: Endpoint) -> None:
    state = "enabled" if e.enabled else f"DISABLED: {e.disabled_reason}"
    click.echo(f"{e.id}  {e.name}  {e.url}")
    click.echo(f"  events: {', '.join(e.events)}")
    click.echo(
        f"  {state}"
        + (f"; failing since {e.failing_since:%Y-%m-%d %H:%M} UTC" if e.failing_since else "")
    )


@click.group()
def webhook() -> None:
    """Webhook endpoints: add, list, remove, rotate-secret, test, deliveries, redeliver."""


@webhook.command("add")
@click.option("--url", required=True, help="Where to send events (https://...).")
@click.option(
    "--events",
    required=True,
    metavar="E1,E2,...",
    help=f"Event types, or * for all: {', '.join(EVENT_TYPES)}.",
)
@click.option("--name", help="A name to know it by (default: the URL).")
@json_option
@db_option
def add(url: str, events: str, name: str | None, as_json: bool, db_url: str) -> None:
    """Register an endpoint; print its id and its secret (shown this once)."""
    with store(db_url) as stores:
        endpoint, secret = Webhooks.of(stores).add(url, [events], name=name, actor=actor())
    if as_json:
        echo_json(endpoint.to_json() | {"secret": secret})
        return
    _print(endpoint)
    click.echo(f"  secret: {secret}")
    click.echo("  (shown this once: give it to the receiver, which verifies every delivery)")


@webhook.command("list")
@json_option
@db_option
def list_cmd(as_json: bool, db_url: str) -> None:
    """Every endpoint (never the secrets)."""
    with store(db_url) as stores:
        found = Webhooks.of(stores).endpoints()
    if as_json:
        echo_json([e.to_json() for e in found])
        return
    if not found:
        click.echo("no webhook endpoint")
    for e in found:
        _print(e)


@webhook.command("remove")
@click.argument("endpoint_id")
@click.option("--reason", help="Why, for the audit trail.")
@db_option
def remove(endpoint_id: str, reason: str | None, db_url: str) -> None:
    """Remove an endpoint; what was still pending for it is dropped."""
    with store(db_url) as stores:
        Webhooks.of(stores).remove(endpoint_id, actor=actor(), reason=reason)
    click.echo(f"removed {endpoint_id}")


@webhook.command("rotate-secret")
@click.argument("endpoint_id")
@db_option
def rotate_secret(endpoint_id: str, db_url: str) -> None:
    """A new secret (printed once); the old one also signs for 24 hours."""
    with store(db_url) as stores:
        endpoint, secret = Webhooks.of(stores).rotate_secret(endpoint_id, actor=actor())
    click.echo(f"{endpoint.id}: new secret {secret}")
    click.echo(f"  the previous one signs too until {endpoint.previous_until:%Y-%m-%d %H:%M} UTC")


@webhook.command("enable")
@click.argument("endpoint_id")
@db_option
def enable(endpoint_id: str, db_url: str) -> None:
    """Enable an endpoint that was disabled (410 Gone, or failing too long)."""
    with store(db_url) as stores:
        Webhooks.of(stores).enable(endpoint_id, actor=actor())
    click.echo(f"enabled {endpoint_id}")


@webhook.command("test")
@click.argument("endpoint_id")
@db_option
def test(endpoint_id: str, db_url: str) -> None:
    """Send a signed `webhook.test` event now, from here, and say what the receiver answered
    (REGIONLOCK_WEBHOOK_ALLOW_PRIVATE and _TIMEOUT_S apply as in the service)."""
    settings = Settings.from_env()
    sender = HttpSender(
        timeout_s=settings.webhook_timeout_s, allow_private=settings.webhook_allow_private
    )
    try:
        with store(db_url) as stores:
            attempt = Webhooks.of(stores).test(endpoint_id, sender)
    finally:
        sender.close()
    if attempt.delivered:
        click.echo(f"delivered: the receiver answered {attempt.status}")
        return
    raise click.ClickException(
        f"not delivered: {attempt.error or f'the receiver answered {attempt.status}'}"
    )


@webhook.command("deliveries")
@click.argument("endpoint_id")
@click.option(
    "--status", type=click.Choice(["pending", "delivered", "failed", "dropped"]), help="Only these."
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@db_option
def deliveries(
    endpoint_id: str, status: str | None, limit: int, as_json: bool, db_url: str
) -> None:
    """An endpoint's deliveries, the newest first."""
    with store(db_url) as stores:
        found = Webhooks.of(stores).deliveries(endpoint_id, status=status, limit=limit)
    if as_json:
        echo_json([d.to_json() for d in found])
        return
    for d in found:
        last = f"; last: {d.last_status or d.last_error}" if d.attempts else ""
        retry = (
            f"; next {d.next_at:%Y-%m-%d %H:%M:%S} UTC"
            if d.status == "pending" and d.next_at
            else ""
        )
        click.echo(
            f"{d.id}  {d.event_type:<18} seq {d.audit_seq:<8} {d.status:<9}"
            f" {d.attempts} attempt(s){last}{retry}"
        )


@webhook.command("redeliver")
@click.argument("delivery_id")
@db_option
def redeliver(delivery_id: str, db_url: str) -> None:
    """Send a delivery again (the running service sends it at its next poll)."""
    with store(db_url) as stores:
        Webhooks.of(stores).redeliver(delivery_id, actor=actor())
    click.echo(f"{delivery_id} queued again")
