"""Webhooks (docs/webhooks.md): endpoints an admin registers, events read from the audit trail
and queued for them, attempts and their retries.

The audit trail is the outbox. Every change is committed with its audit entry, so `fan_out`,
which reads the entries after a cursor and queues a delivery per event and subscribed endpoint
in the transaction that moves the cursor, never misses a change and never queues one twice, in
whatever process the change was made (the command line while the service was down included).
`attempt` sends one claimed delivery and records what came of it: delivered, tried again later
on the retry schedule, or failed; a `410 Gone`, or failures for longer than the set time,
disables the endpoint (audited as `webhook.disable`).

Times here are the real clock, never a demo's simulated one: receivers check
`webhook-timestamp` against theirs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from regionlock.domain.errors import InvalidInput, NotFound
from regionlock.domain.inputs import text_problem
from regionlock.domain.webhooks import (
    DEFAULT_RETRY_SCHEDULE,
    NAME_MAX,
    Attempt,
    Delivery,
    Endpoint,
    body_digest,
    event_of,
    headers,
    new_secret,
    next_attempt,
    parse_events,
    parse_schedule,
    parse_url,
)
from regionlock.services.audit_tree import SIGN_EVERY, AuditTree
from regionlock.settings import Settings
from regionlock.storage import Stores
from regionlock.storage.audit import AuditStore
from regionlock.storage.db import Transaction, Transactions, epoch_ms, new_id
from regionlock.storage.webhooks import Outcome, WebhookStore

# How long the previous secret keeps signing after a rotation: a day to update receivers.
ROTATION_OVERLAP = timedelta(hours=24)
FAN_OUT_BATCH = 2000
ERROR_MAX = 300

Send = Callable[[str, Mapping[str, str], bytes], Attempt]


class UnknownEndpoint(NotFound):
    """No webhook endpoint has this id."""


class UnknownDelivery(NotFound):
    """No webhook delivery has this id."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Webhooks:
    """Webhook use cases on the stores they need."""

    db: Transactions
    webhooks: WebhookStore
    audit: AuditStore
    clock: Callable[[], datetime] = field(default=_now)
    schedule: tuple[timedelta, ...] = DEFAULT_RETRY_SCHEDULE
    disable_after: timedelta = timedelta(hours=120)
    # Seals the audit trail before the outbox reads it: on PostgreSQL an entry may commit after
    # one with a higher number, so the outbox reads only sealed entries, whose order is final.
    tree: AuditTree | None = None

    @classmethod
    def of(cls, stores: Stores, settings: Settings | None = None, **options: Any) -> Webhooks:
        if settings is not None:
            options.setdefault("schedule", parse_schedule(settings.webhook_retry))
            options.setdefault("disable_after", timedelta(hours=settings.webhook_disable_after_h))
        options.setdefault("tree", AuditTree.of(stores))
        return cls(stores.db, stores.webhooks, stores.audit, **options)

    # -- endpoints -------------------------------------------------------------------------------

    def add(
        self, url: str, events: Sequence[str], *, name: str | None, actor: str
    ) -> tuple[Endpoint, str]:
        """Register an endpoint; returns it and its secret (shown once). InvalidInput for a
        bad URL, an unknown event or a bad name. Audited as `webhook.add` (never the secret).
        Events of changes recorded after it go to it."""
        url = parse_url(url)
        kinds = parse_events(events)
        label = _name(name, url)
        now = self.clock()
        secret = new_secret()
        endpoint_id = new_id("wh_")
        with self.db.write() as tx:
            entry = self.audit.append(
                tx,
                at=epoch_ms(now),
                actor=actor,
                action="webhook.add",
                subject=endpoint_id,
                reason=f"webhook {label}",
                details={"url": url, "events": list(kinds), "name": label},
            )
            endpoint = Endpoint(
                id=endpoint_id,
                name=label,
                url=url,
                events=kinds,
                secret=secret,
                created_at=now,
                created_by=actor,
                start_seq=entry.seq,
            )
            self.webhooks.create_endpoint(tx, endpoint)
        return endpoint, secret

    def get(self, endpoint_id: str) -> Endpoint:
        """An endpoint (UnknownEndpoint if there is none)."""
        return self._get(None, endpoint_id)

    def _get(self, tx: Transaction | None, endpoint_id: str) -> Endpoint:
        found = self.webhooks.endpoint(endpoint_id, tx) if len(endpoint_id) <= 64 else None
        if found is None:
            raise UnknownEndpoint(f"no webhook endpoint {endpoint_id[:64]!r}")
        return found

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint, oldest first."""
        return self.webhooks.endpoints()

    def remove(self, endpoint_id: str, *, actor: str, reason: str | None = None) -> None:
        """Remove an endpoint; what was still pending for it is dropped. Audited."""
        self.get(endpoint_id)
        with self.db.write() as tx:
            if not self.webhooks.remove_endpoint(tx, endpoint_id):
                raise UnknownEndpoint(f"no webhook endpoint {endpoint_id!r}")
            self._audit(tx, actor, "webhook.remove", endpoint_id, reason or "removed", {})

    def rotate_secret(self, endpoint_id: str, *, actor: str) -> tuple[Endpoint, str]:
        """A new secret; the old one signs too for ROTATION_OVERLAP. Audited."""
        now = self.clock()
        secret = new_secret()
        with self.db.write() as tx:
            current = self._get(tx, endpoint_id)
            rotated = replace(
                current,
                secret=secret,
                previous_secret=current.secret,
                previous_until=now + ROTATION_OVERLAP,
            )
            self.webhooks.save_endpoint(tx, rotated)
            self._audit(
                tx,
                actor,
                "webhook.rotate",
                endpoint_id,
                "secret rotated",
                {"previous_until": rotated.previous_until.isoformat()}
                if rotated.previous_until
                else {},
            )
        return rotated, secret

    def enable(self, endpoint_id: str, *, actor: str) -> Endpoint:
        """Enable a disabled endpoint again (after its receiver was fixed). Audited."""
        with self.db.write() as tx:
            current = self._get(tx, endpoint_id)
            enabled = replace(current, enabled=True, disabled_reason=None, failing_since=None)
            self.webhooks.save_endpoint(tx, enabled)
            self._audit(tx, actor, "webhook.enable", endpoint_id, "enabled", {})
        return enabled

    # -- deliveries --------------------------------------------------------------------------------

    def deliveries(
        self, endpoint_id: str, *, status: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        self.get(endpoint_id)
        if status is not None and status not in ("pending", "delivered", "failed", "dropped"):
            raise InvalidInput(
                f"status {status[:20]!r}: one of pending, delivered, failed, dropped"
            )
        return self.webhooks.deliveries(endpoint_id, status=status, limit=limit)

    def redeliver(self, delivery_id: str, *, actor: str) -> Delivery:
        """Send a delivery again, now (whatever came of it before). Audited."""
        found = self.webhooks.delivery(delivery_id) if len(delivery_id) <= 64 else None
        if found is None:
            raise UnknownDelivery(f"no webhook delivery {delivery_id[:64]!r}")
        with self.db.write() as tx:
            if not self.webhooks.redeliver(tx, delivery_id, self.clock()):
                raise InvalidInput(f"delivery {delivery_id} is pending already")
            self._audit(
                tx,
                actor,
                "webhook.redeliver",
                found.endpoint_id,
                f"redeliver {delivery_id}",
                {"delivery": delivery_id, "event": found.event_id},
            )
        again = self.webhooks.delivery(delivery_id)
        assert again is not None
        return again

    # -- the outbox --------------------------------------------------------------------------------

    def fan_out(
        self, limit: int = FAN_OUT_BATCH, *, seal: bool = True, skip_if_busy: bool = False
    ) -> int:
        """Queue the events of the audit entries after the cursor for the endpoints that want
        them, and move the cursor past those entries; the number of deliveries queued. Only
        sealed entries are read: with `seal`, every settled one is sealed first; without, those
        the sealers have sealed so far. `skip_if_busy`: queue nothing if another process is
        fanning out right now (it holds the cursor), rather than wait for it."""
        now = self.clock()
        if not any(e.enabled for e in self.webhooks.endpoints()):
            return 0  # idle: no write transaction every poll
        upto = None
        if self.tree is not None:
            tree = self.tree.seal(sign_after=SIGN_EVERY) if seal else self.audit.tree()
            upto = tree.sealed_seq
        with self.db.write() as tx:
            cursor = (
                self.webhooks.cursor_unless_busy(tx)
                if skip_if_busy
                else self.webhooks.cursor_for_update(tx)
            )
            if cursor is None:  # another process is fanning out: its turn
                return 0
            endpoints = [e for e in self.webhooks.endpoints(tx) if e.enabled]
            if not endpoints:
                return 0
            start = max(cursor, min(e.start_seq for e in endpoints))
            entries = self.audit.page(tx, after=start, limit=limit, upto=upto)
            if not entries:
                if start > cursor:
                    self.webhooks.move_cursor(tx, start)
                return 0
            queued: list[Delivery] = []
            digests = {e.id: e.last_digest for e in endpoints}
            for entry in entries:
                event = event_of(
                    entry.seq,
                    entry.hash,
                    datetime.fromtimestamp(entry.at / 1000, UTC),
                    entry.action,
                    entry.subject,
                    entry.reason,
                    entry.details,
                )
                if event is None:
                    continue
                for e in endpoints:
                    if event.type not in e.events or entry.seq <= e.start_seq:
                        continue
                    body = event.body(digests[e.id])
                    digests[e.id] = body_digest(body)
                    queued.append(
                        Delivery(
                            id=new_id("dlv_"),
                            endpoint_id=e.id,
                            event_id=event.id,
                            event_type=event.type,
                            audit_seq=entry.seq,
                            body=body,
                            created_at=now,
                            status="pending",
                            next_at=now,
                        )
                    )
            self.webhooks.queue(tx, queued)
            for e in endpoints:
                if digests[e.id] != e.last_digest:
                    self.webhooks.save_endpoint(tx, replace(e, last_digest=digests[e.id]))
            self.webhooks.move_cursor(tx, entries[-1].seq)
        return len(queued)

    def claim(self, owner: str, limit: int, lease: timedelta) -> list[Delivery]:
        """Due deliveries for `owner` to send, leased for `lease` (none: no write at all)."""
        now = self.clock()
        if not self.webhooks.any_due(now):
            return []
        return self.webhooks.claim(now, owner, now + lease, limit)

    def attempt(self, delivery: Delivery, owner: str, send: Send) -> str:
        """Send one claimed delivery and record what came of it; its new status."""
        endpoint = self.webhooks.endpoint(delivery.endpoint_id)
        now = self.clock()
        if endpoint is None or not endpoint.enabled:
            outcome = Outcome("failed", now, None, "the endpoint is removed or disabled", None)
            with self.db.write() as tx:
                self.webhooks.record(tx, delivery.id, owner, outcome)
            return outcome.status
        signed = headers(
            endpoint.signing_secrets(now), delivery.event_id, int(now.timestamp()), delivery.body
        )
        result = send(endpoint.url, signed, delivery.body)
        done = self.clock()
        if result.delivered:
            outcome = Outcome("delivered", done, result.status, None, None)
        else:
            error = (result.error or f"HTTP {result.status}")[:ERROR_MAX]
            retry = (
                None if result.gone else next_attempt(delivery.attempts + 1, done, self.schedule)
            )
            outcome = Outcome("pending" if retry else "failed", done, result.status, error, retry)
        with self.db.write() as tx:
            if not self.webhooks.record(tx, delivery.id, owner, outcome):
                return "lost"  # the lease ran out and another process took it over
            current = self.webhooks.endpoint(endpoint.id, tx) or endpoint
            if result.delivered:
                if current.failing_since is not None:
                    self.webhooks.save_endpoint(tx, replace(current, failing_since=None))
                return outcome.status
            since = current.failing_since or done
            why = None
            if result.gone:
                why = "the receiver answered 410 Gone"
            elif done - since >= self.disable_after:
                why = f"every attempt failed for {self.disable_after} (last: {outcome.error})"
            if why is not None and current.enabled:
                off = replace(current, enabled=False, disabled_reason=why, failing_since=since)
                self.webhooks.save_endpoint(tx, off)
                self.webhooks.drop_pending(tx, endpoint.id)
                self._audit(tx, "system", "webhook.disable", endpoint.id, why, {})
            elif current.failing_since is None:
                self.webhooks.save_endpoint(tx, replace(current, failing_since=since))
        return outcome.status

    def test(self, endpoint_id: str, send: Send) -> Attempt:
        """Send a `webhook.test` event to the endpoint now, signed as any other, and say what
        came of it (nothing is queued or retried)."""
        endpoint = self.get(endpoint_id)
        now = self.clock()
        body = json.dumps(
            {
                "type": "webhook.test",
                "timestamp": now.isoformat().replace("+00:00", "Z"),
                "data": {"endpoint": endpoint.id},
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        event_id = new_id("msg_test_")
        return send(
            endpoint.url,
            headers(endpoint.signing_secrets(now), event_id, int(now.timestamp()), body),
            body,
        )

    def _audit(
        self,
        tx: Transaction,
        actor: str,
        action: str,
        subject: str,
        reason: str,
        details: Mapping[str, Any],
    ) -> None:
        self.audit.append(
            tx,
            at=epoch_ms(self.clock()),
            actor=actor,
            action=action,
            subject=subject,
            reason=reason,
            details=details,
        )


def _name(name: str | None, url: str) -> str:
    if name is None:
        return url[:NAME_MAX]
    problem = text_problem(name)
    if problem is not None:
        raise InvalidInput(f"the name {problem}")
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise InvalidInput(f"a name holds 1 to {NAME_MAX} characters")
    return name
