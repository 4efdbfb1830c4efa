"""Webhooks (issue 14): which events the service announces, what each says, how it is signed,
when a failed delivery is tried again, and where a delivery may go. Pure: no I/O.

Events come from the audit trail. Every change the service makes is written with its audit
entry in one transaction, so the trail is the outbox: an event exists exactly when its change
was committed, whoever made it (the service, a campaign runner, the command line while the
service was down). `event_of` reads one entry and says which event it is, if any.

Signing follows the Standard Webhooks specification 1.0 (github.com/standard-webhooks): the
headers `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, a
space-separated list of `v1,<base64 HMAC-SHA256>` over `id.timestamp.body` with the endpoint's
secret (`whsec_` and the base64 of 32 random bytes). During a secret's rotation both the new and
the previous secret sign, so a receiver that still holds the old one keeps verifying.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import text_problem

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the specification asks for 24 to 64

EVENT_TYPES = (
    "device.locked",
    "device.unlocked",
    "device.warned",
    "device.exempted",
    "campaign.started",
    "campaign.completed",
    "policy.activated",
    "appeal.created",
    "appeal.decided",
)
# Svix's schedule after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h (then it gives up).
DEFAULT_RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
NAME_MAX = 100
URL_MAX = 2000


@dataclass(frozen=True, slots=True)
class Event:
    """One event: its id (`webhook-id`, the same for every attempt and every endpoint: what
    receivers deduplicate by), its type, when, and what it says (`data`, JSON-ready)."""

    id: str
    type: str
    timestamp: datetime
    data: Mapping[str, Any]

    def body(self, previous: str | None) -> bytes:
        """The payload as sent: `{"type", "timestamp", "data"}`, with `data.previous` the
        SHA-256 of the body sent before it to the same endpoint (None for the first), so a
        receiver can see a gap. Canonical JSON (sorted keys), so it hashes the same anywhere."""
        doc = {
            "type": self.type,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "data": {**self.data, "previous": previous},
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def body_digest(body: bytes) -> str:
    """What the next event to the same endpoint names as `previous`."""
    return hashlib.sha256(body).hexdigest()


# -- which audit entries are events --------------------------------------------------------------

_MANUAL = {
    "device.lock": ("device.locked", "operator"),
    "device.unlock": ("device.unlocked", "operator"),
    "device.exempt": ("device.exempted", "operator"),
    "campaign.lock": ("device.locked", "campaign"),
    "campaign.unlock": ("device.unlocked", "campaign"),
    "campaign.exempt": ("device.exempted", "campaign"),
}
_VERDICT_EVENTS = {"lock": "device.locked", "warn": "device.warned"}


def event_of(
    seq: int, entry_hash: str, at: datetime, action: str, subject: str, reason: str, details: Any
) -> Event | None:
    """The event an audit entry announces, or None.

    - A check-in announces a change of the device's verdict: `device.locked` or
      `device.warned` when the verdict becomes lock or warn, `device.unlocked` when a lock
      gives way (cause `checkin`).
    - An operator's or a campaign's lock, unlock or exemption is announced when it is recorded
      (cause `operator` or `campaign`); the lock reaches the device at its next check-in, which
      is announced again then, as a change of its verdict (cause `checkin`).
    - A campaign's start, its last stage done, a policy activated or rolled back.
    """
    if not subject:
        return None  # a redacted entry (its device erased, docs/privacy.md) announces nothing
    d: Mapping[str, Any] = details if isinstance(details, Mapping) else {}
    base = {"audit_seq": seq}
    event_id = f"msg_{seq}_{entry_hash[:16]}"

    def make(kind: str, data: Mapping[str, Any]) -> Event:
        return Event(event_id, kind, at, {**data, **base})

    if action == "checkin.verdict":
        verdict, previous = d.get("verdict"), d.get("previous")
        if verdict == previous:
            return None
        kind = _VERDICT_EVENTS.get(str(verdict))
        if kind is None:
            if previous != "lock":
                return None  # allow after warn (or a first allow): nothing was held
            kind = "device.unlocked"
        return make(
            kind,
            {
                "device": subject,
                "verdict": verdict,
                "previous_verdict": previous,
                "reasons": [r for r in reason.split(",") if r],
                "country": d.get("country"),
                "subdivision": d.get("subdivision"),
                "policy": d.get("policy"),
                "cause": "checkin",
            },
        )
    manual = _MANUAL.get(action)
    if manual is not None:
        kind, cause = manual
        data: dict[str, Any] = {"device": subject, "reason": reason, "cause": cause}
        if cause == "campaign":
            data["campaign"] = d.get("campaign")
        return make(kind, data)
    if action == "campaign.start":
        return make("campaign.started", {"campaign": subject, "reason": reason})
    if action == "campaign.stage_done" and d.get("state") == "done":
        return make("campaign.completed", {"campaign": subject, "reason": reason})
    if action in ("policy.activate", "policy.rollback"):
        policy = d.get("policy") or subject
        return make("policy.activated", {"policy": policy, "reason": reason, "how": action})
    if action in ("appeal.create", "appeal.decide"):
        kind = "appeal.created" if action == "appeal.create" else "appeal.decided"
        return make(kind, {"appeal": subject, "reason": reason, **dict(d)})
    return None


# -- signing ---------------------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh endpoint secret, `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_...` secret stands for."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidInput("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise InvalidInput("a webhook secret is whsec_ and base64") from None
    if not 24 <= len(key) <= 64:
        raise InvalidInput("a webhook secret holds 24 to 64 bytes")
    return key


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` (Standard Webhooks)."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secrets_: Sequence[str], event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a delivery, signed with every secret given (rotation)."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, event_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
    }


# -- retries ---------------------------------------------------------------------------------


def next_attempt(
    attempts: int, now: datetime, schedule: Sequence[timedelta] = DEFAULT_RETRY_SCHEDULE
) -> datetime | None:
    """When to try again after `attempts` failed attempts (1 after the first), or None when
    the schedule is spent and the delivery has failed for good."""
    if attempts < 1 or attempts > len(schedule):
        return None
    return now + schedule[attempts - 1]


def parse_schedule(text: str) -> tuple[timedelta, ...]:
    """A retry schedule from a setting: delays such as `5s,5m,30m,2h,5h,10h`."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d{1,6})([smhd])\s*", part)
        if m is None:
            raise InvalidInput(
                f"retry delay {part.strip()[:20]!r}: expected a number and s, m, h or d (5m)"
            )
        out.append(timedelta(seconds=int(m.group(1)) * units[m.group(2)]))
    if not out or len(out) > 20:
        raise InvalidInput("a retry schedule holds 1 to 20 delays")
    return tuple(out)


# -- endpoints and destinations -------------------------------------------------------------------


def parse_url(url: str) -> str:
    """An endpoint URL: http or https, a host, no user name or password in it."""
    problem = text_problem(url)
    if problem is not None:
        raise InvalidInput(f"the URL {problem}")
    url = url.strip()
    if len(url) > URL_MAX:
        raise InvalidInput(f"the URL is longer than {URL_MAX} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"the URL cannot be read: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("the URL must start with https:// (or http://)")
    if not parts.hostname:
        raise InvalidInput("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "the URL must not hold a user name or password: the signature is the proof"
        )
    if port == 0:
        raise InvalidInput("the URL's port is 0")
    return url


def parse_events(values: Sequence[str]) -> tuple[str, ...]:
    """Event types, from a list or comma-separated texts; `*` for all of them."""
    out: list[str] = []
    for value in values:
        for part in str(value).split(","):
            name = part.strip()
            if not name:
                continue
            if name == "*":
                return EVENT_TYPES
            if name not in EVENT_TYPES:
                raise InvalidInput(
                    f"unknown event {name[:40]!r}: one of {', '.join(EVENT_TYPES)}, or *"
                )
            if name not in out:
                out.append(name)
    if not out:
        raise InvalidInput("name at least one event (or * for all)")
    return tuple(out)


def forbidden_address(address: str) -> str | None:
    """Why a delivery must not go to this IP address (server-side request forgery: the
    service's own machine, its private network, cloud metadata), or None when it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "not a unicast Internet address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a carrier-grade NAT address"
    return None


# -- what is stored --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where events go. `secret` signs them; `previous_secret` signs too until
    `previous_until` (a rotation); a disabled endpoint receives nothing."""

    id: str
    name: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime
    created_by: str
    start_seq: int
    enabled: bool = True
    disabled_reason: str | None = None
    previous_secret: str | None = None
    previous_until: datetime | None = None
    last_digest: str | None = None
    failing_since: datetime | None = None

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets that sign a delivery made at `now`: the current one, and the previous
        one while its rotation lasts."""
        if self.previous_secret and self.previous_until and now < self.previous_until:
            return (self.secret, self.previous_secret)
        return (self.secret,)

    def to_json(self) -> dict[str, Any]:
        """As an operator sees it: never the secret."""
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "events": list(self.events),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "rotating_until": (
                self.previous_until.isoformat()
                if self.previous_secret and self.previous_until
                else None
            ),
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event queued for one endpoint, and how its attempts went."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    audit_seq: int
    body: bytes
    created_at: datetime
    status: str  # pending | delivered | failed | dropped
    attempts: int = 0
    next_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        def t(v: datetime | None) -> str | None:
            return v.isoformat() if v else None

        return {
            "id": self.id,
            "endpoint": self.endpoint_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "audit_seq": self.audit_seq,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": t(self.created_at),
            "next_at": t(self.next_at),
            "last_attempt_at": t(self.last_attempt_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt came to: an HTTP status, or an error before any (timeout, refused)."""

    status: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        """`410 Gone`: the receiver asks never to be sent anything again."""
        return self.status == 410
