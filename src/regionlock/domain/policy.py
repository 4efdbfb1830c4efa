"""A policy, as values: restricted jurisdictions with dates, scopes, grace, exemptions, lease.

Policies are written as TOML documents (see docs/policy.md and `regionlock.policy_format`);
this module holds the validated, immutable result the pure `decide` function reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from regionlock.domain.messages import Message


class Action(StrEnum):
    """What the device does. Ordered by severity: allow < warn < lock."""

    ALLOW = "allow"
    WARN = "warn"
    LOCK = "lock"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Action.ALLOW: 0, Action.WARN: 1, Action.LOCK: 2}


class OfflineAction(StrEnum):
    """What a device does when its lease runs out without contact."""

    KEEP = "keep"
    WARN = "warn"
    LOCK = "lock"


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """A restricted place over a period: a country (`IR`) or a subdivision (`UA-43`).

    `start` is inclusive, `end` exclusive (the first day it no longer applies); both UTC dates.
    `extent` is "part" when the instrument covers only part of the code's area (e.g. the
    non-government-controlled areas of an oblast).
    """

    code: str
    name: str
    start: date
    end: date | None = None
    extent: str = "whole"
    origin: str = "policy"  # the regime preset it came from, or "policy"
    instrument: str = ""

    def active(self, on: date) -> bool:
        return self.start <= on and (self.end is None or on < self.end)

    def contains(self, country: str | None, subdivision: str | None) -> bool:
        if country is None:
            return False
        if "-" in self.code:
            return subdivision == self.code
        return country == self.code


@dataclass(frozen=True, slots=True)
class Scope:
    """Which devices a rule applies to; an empty set means "any"."""

    models: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    sales_regions: frozenset[str] = frozenset()
    distributors: frozenset[str] = frozenset()
    batches: frozenset[str] = frozenset()

    def covers(self, device: DeviceFacts) -> bool:
        checks = (
            (self.models, device.model),
            (self.skus, device.sku),
            (self.sales_regions, device.sales_region),
            (self.distributors, device.distributor),
            (self.batches, device.batch),
        )
        return all(not allowed or value in allowed for allowed, value in checks)


@dataclass(frozen=True, slots=True)
class Presence:
    """When presence in a restricted place counts as established (traveller grace).

    Established when the device was seen there on more than `min_days` distinct days within the
    last `window_days` (today included), or when it was first activated there and
    `first_activation_locks` is set. Until then the rule's action becomes `grace_action`.
    """

    min_days: int = 0
    window_days: int = 30
    first_activation_locks: bool = True
    grace_action: Action = Action.WARN


@dataclass(frozen=True, slots=True)
class Restriction:
    """A rule: devices in scope that are in one of these jurisdictions get `action`."""

    id: str
    jurisdictions: tuple[Jurisdiction, ...]
    action: Action
    scope: Scope = field(default_factory=Scope)
    presence: Presence = field(default_factory=Presence)
    warn_days: int = 0  # days of warnings required before a lock
    message: Message = field(default_factory=Message)
    contact: str = ""
    # Where an instrument covers only part of a subdivision (extent "part"), locating to the
    # subdivision cannot tell the covered part from the rest: by default such a lock is a warning.
    part_action: Action = Action.WARN

    def __post_init__(self) -> None:
        _plain_message(self)


@dataclass(frozen=True, slots=True)
class ActivationRule:
    """Devices in scope must first be activated in one of `countries`, else `action`."""

    id: str
    countries: frozenset[str]
    action: Action
    scope: Scope = field(default_factory=Scope)
    message: Message = field(default_factory=Message)
    contact: str = ""

    def __post_init__(self) -> None:
        _plain_message(self)


@dataclass(frozen=True, slots=True)
class Exemption:
    """A device or a batch that no lock applies to until `until` (exclusive), and why."""

    reason: str
    device: str | None = None
    batch: str | None = None
    until: date | None = None

    def applies(self, device: DeviceFacts, on: date) -> bool:
        if self.until is not None and on >= self.until:
            return False
        if self.device is not None and self.device in (device.id, *device.imeis):
            return True
        return self.batch is not None and self.batch == device.batch


@dataclass(frozen=True, slots=True)
class Lease:
    """How long a verdict stays valid offline, and what happens when it runs out."""

    valid_days: int = 7
    offline_action: OfflineAction = OfflineAction.WARN
    offline_lock_after_days: int = 30  # with offline_action LOCK: days past the lease end
    offline_warn_days: int = 7  # warnings shown before an offline lock


@dataclass(frozen=True, slots=True)
class Policy:
    """A complete, validated policy version."""

    id: str
    version: str
    description: str
    restrictions: tuple[Restriction, ...]
    activation_rules: tuple[ActivationRule, ...] = ()
    exemptions: tuple[Exemption, ...] = ()
    min_lock_confidence: float = 0.7
    lease: Lease = field(default_factory=Lease)
    message: Message = field(default_factory=Message)
    contact: str = ""
    regimes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _plain_message(self)


def _plain_message(rule: Restriction | ActivationRule | Policy) -> None:
    """A plain string given as a message is an English one, as in a policy document."""
    if isinstance(rule.message, str):
        object.__setattr__(rule, "message", Message.plain(rule.message))


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What the policy may know of a device (registry attributes, first activation)."""

    id: str
    imeis: tuple[str, ...] = ()
    model: str | None = None
    sku: str | None = None
    sales_region: str | None = None
    distributor: str | None = None
    batch: str | None = None
    first_country: str | None = None
    first_subdivision: str | None = None
    first_seen: date | None = None
