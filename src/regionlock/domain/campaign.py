"""Bulk campaigns, as values: which devices (`Selection`), what to do (`CampaignAction`), in
which stages (`stage_of`), and the campaign's life (`Campaign` and its transitions).

Everything here is pure: parsing raises `InvalidInput` naming the problem, a transition that
the campaign's state does not allow raises `Conflict`, and each transition returns a new
`Campaign`. Storage freezes the target set and the runner applies the action (services/).

Life of a campaign::

    draft --start--> running --(stage done, more to come)--> waiting --advance--> running
                        |  \\--(last stage done)--> done
                        +--pause / halt--> paused --start--> running
    draft, running, waiting, paused --cancel--> cancelled       (done, cancelled: final)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from regionlock.domain import regions
from regionlock.domain.device import DeviceState, ManualExemption, ManualLock
from regionlock.domain.errors import Conflict, InvalidInput
from regionlock.domain.messages import Message

# --- selection ---------------------------------------------------------------------------------

# The fields a campaign selects devices by, and what each means.
SELECTION_FIELDS: Mapping[str, str] = {
    "distributor": "the distributor the device was sold through (registry record)",
    "batch": "its production or shipping batch (registry record)",
    "model": "its model (registry record)",
    "sales_region": "its sales region (registry record): a country code, EU, EEA or GLOBAL",
    "country": "the country of its last located check-in",
    "subdivision": "the ISO 3166-2 subdivision of its last located check-in",
    "verdict": "its last verdict: allow, warn or lock",
    "seen_in": "a country of its recorded presence (or of its first activation)",
    "activated_in": "the country of its first activation",
}
VERDICTS = ("allow", "warn", "lock")
_COUNTRY_FIELDS = frozenset({"country", "seen_in", "activated_in"})
_MAX_TEXT = 200


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37]) + "..."


def _parse_value(name: str, raw: str, known_countries: Collection[str] | None) -> str:
    """One filter's value, normalised (codes in upper case), or InvalidInput."""
    value = raw.strip()
    if not value:
        raise InvalidInput(f"{name}=: the value is empty")
    if len(value) > _MAX_TEXT or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput(
            f"{name}={_shown(value)}: expected printable text of at most {_MAX_TEXT} characters"
        )
    if name in _COUNTRY_FIELDS or name == "subdivision":
        code = value.upper()
        check = regions.country_problem if name != "subdivision" else regions.subdivision_problem
        problem = check(code, known_countries)
        if problem is not None:
            raise InvalidInput(f"{name}={_shown(value)}: {problem}")
        return code
    if name == "verdict":
        if value.lower() not in VERDICTS:
            raise InvalidInput(f"verdict={_shown(value)}: expected one of {', '.join(VERDICTS)}")
        return value.lower()
    if name == "sales_region":
        code = value.upper()
        if code == regions.GLOBAL or code in regions.REGIONS:
            return code
        if not regions.ALPHA2.fullmatch(code) or (
            known_countries is not None and code not in known_countries
        ):
            raise InvalidInput(
                f"sales_region={_shown(value)}: expected an ISO 3166-1 alpha-2 code,"
                " EU, EEA or GLOBAL"
            )
        return code
    return value  # distributor, batch, model: the registry's text, exactly


@dataclass(frozen=True, slots=True)
class SelectionFacts:
    """What a selection looks at for one device (see `SELECTION_FIELDS`)."""

    distributor: str
    batch: str
    model: str
    sales_region: str
    country: str | None = None
    subdivision: str | None = None
    verdict: str | None = None
    seen_in: frozenset[str] = frozenset()
    activated_in: str | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """Which devices a campaign targets: for each field, the values accepted.

    Different fields combine with AND, values of one field with OR; a field with no values
    does not filter. A selection with no filter at all selects the whole fleet.
    """

    distributor: frozenset[str] = frozenset()
    batch: frozenset[str] = frozenset()
    model: frozenset[str] = frozenset()
    sales_region: frozenset[str] = frozenset()
    country: frozenset[str] = frozenset()
    subdivision: frozenset[str] = frozenset()
    verdict: frozenset[str] = frozenset()
    seen_in: frozenset[str] = frozenset()
    activated_in: frozenset[str] = frozenset()

    @classmethod
    def parse(
        cls, terms: Iterable[str], *, known_countries: Collection[str] | None = None
    ) -> Selection:
        """A selection from `FIELD=VALUE` terms (`--where`); InvalidInput on an unknown field
        or a malformed value. `known_countries` (a set, from the reference data) also refuses
        well-formed codes that name no country."""
        found: dict[str, set[str]] = {}
        for term in terms:
            name, sep, raw = term.partition("=")
            name = name.strip()
            if not sep:
                raise InvalidInput(f"{_shown(term)}: expected FIELD=VALUE")
            if name not in SELECTION_FIELDS:
                raise InvalidInput(
                    f"{_shown(term)}: unknown field {_shown(name)} (fields: "
                    f"{', '.join(SELECTION_FIELDS)})"
                )
            found.setdefault(name, set()).add(_parse_value(name, raw, known_countries))
        return cls(**{name: frozenset(values) for name, values in found.items()})

    def filters(self) -> dict[str, tuple[str, ...]]:
        """The fields that filter, each with its accepted values sorted."""
        out: dict[str, tuple[str, ...]] = {}
        for f in fields(self):
            values: frozenset[str] = getattr(self, f.name)
            if values:
                out[f.name] = tuple(sorted(values))
        return out

    @property
    def is_everything(self) -> bool:
        return not self.filters()

    def to_json(self) -> dict[str, list[str]]:
        return {name: list(values) for name, values in self.filters().items()}

    @classmethod
    def from_json(cls, doc: Mapping[str, Sequence[str]]) -> Selection:
        terms = [f"{name}={value}" for name, values in doc.items() for value in values]
        return cls.parse(terms)

    def describe(self) -> str:
        """The selection in words: `distributor=D7 AND (country=IR OR country=SY)`."""
        parts = []
        for name, values in self.filters().items():
            alternatives = " OR ".join(f"{name}={v}" for v in values)
            parts.append(f"({alternatives})" if len(values) > 1 else alternatives)
        return " AND ".join(parts) if parts else "every device"

    def matches(self, facts: SelectionFacts) -> bool:
        """Whether a device with these facts is selected (the reference the stores' SQL
        follows)."""
        for name, values in self.filters().items():
            have = getattr(facts, name)
            if name == "seen_in":
                if not set(values) & have:
                    return False
            elif have not in values:
                return False
        return True


def seen_countries(presence: Mapping[date, frozenset[str]], first_country: str | None) -> list[str]:
    """The countries `seen_in` matches for a device: those of its recorded presence days
    (subdivision and joined candidate codes left out) and its first activation, sorted."""
    codes = {c for day in presence.values() for c in day if len(c) == 2}
    if first_country:
        codes.add(first_country)
    return sorted(codes)


# --- stages ------------------------------------------------------------------------------------

_STAGE_SALT = b"regionlock/campaign-stage/v1\x00"


def parse_stages(text: str | Sequence[float]) -> tuple[float, ...]:
    """Cumulative percentages of the target, e.g. "1,10,100": increasing, above 0, ending at
    100. Refuses anything else with InvalidInput."""
    if isinstance(text, str):
        try:
            values = tuple(float(p) for p in text.split(",") if p.strip())
        except ValueError:
            raise InvalidInput(
                f"stages {_shown(text)}: expected increasing percentages, e.g. 1,10,100"
            ) from None
    else:
        values = tuple(float(v) for v in text)
    if not values:
        raise InvalidInput("stages: at least one (100)")
    if any(not 0 < v <= 100 for v in values) or list(values) != sorted(set(values)):
        raise InvalidInput(
            f"stages {','.join(f'{v:g}' for v in values)}: expected increasing percentages"
            " above 0, e.g. 1,10,100"
        )
    if values[-1] != 100:
        raise InvalidInput("stages: the last stage must reach 100 (every targeted device)")
    if len(values) > 20:
        raise InvalidInput("stages: at most 20")
    return values


def stage_of(device_id: str, campaign_id: str, stages: Sequence[float]) -> int:
    """The stage (1-based) in which a campaign reaches this device.

    A device's place in [0, 100) comes from a hash of its id salted with the campaign id, so
    every stage is a pseudo-random, representative slice (a 1% canary is not "the first ids"),
    different campaigns slice differently, and the same campaign always slices the same way.
    Stage n covers the places below stages[n-1] and at or above stages[n-2].
    """
    digest = hashlib.blake2b(
        _STAGE_SALT + campaign_id.encode() + b"\x00" + device_id.encode(), digest_size=8
    ).digest()
    place = int.from_bytes(digest, "big") * 100 / 2**64
    for n, upto in enumerate(stages, start=1):
        if place < upto:
            return n
    return len(stages)


# --- the campaign ------------------------------------------------------------------------------


class CampaignAction(Enum):
    """What a campaign does to each targeted device's state."""

    LOCK = "lock"  # takes the lock slot (replacing a manual or older campaign lock)
    UNLOCK = "unlock"  # empties the lock slot, whoever filled it
    EXEMPT = "exempt"  # sets an exemption (until a date or for good)
    CLEAR = "clear"  # removes both the lock and the exemption: the policy alone decides
    REVERT = "revert"  # puts back what another campaign replaced (made by revert only)

    @property
    def slots(self) -> tuple[bool, bool]:
        """Which of a device's slots the action writes: (the lock, the exemption)."""
        if self is CampaignAction.EXEMPT:
            return (False, True)
        if self is CampaignAction.CLEAR:
            return (True, True)
        if self is CampaignAction.REVERT:
            raise ValueError("a revert writes the slots of the campaign it undoes")
        return (True, False)


# What `campaign create` takes (a revert is made from a campaign, not created).
CREATABLE = tuple(a for a in CampaignAction if a is not CampaignAction.REVERT)


class CampaignState(Enum):
    DRAFT = "draft"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


FINAL = frozenset({CampaignState.DONE, CampaignState.CANCELLED})
DEFAULT_STAGES = (100.0,)


@dataclass(frozen=True, slots=True)
class CampaignCounts:
    """How far a campaign got: targets in all and per stage, and what happened to them."""

    targets: int = 0
    applied: int = 0
    skipped: int = 0
    errors: int = 0
    stage_sizes: tuple[int, ...] = ()
    stage_errors: int = 0  # errors in the current stage

    @property
    def pending(self) -> int:
        return self.targets - self.applied - self.skipped - self.errors


@dataclass(frozen=True, slots=True)
class Campaign:
    """A bulk action over a frozen set of devices, applied in stages."""

    id: str
    name: str
    action: CampaignAction
    reason: str
    selection: Selection
    created_by: str
    created_at: datetime
    message: str | None = None  # a text, or several languages as Message.to_text gives them
    contact: str | None = None
    until: date | None = None
    stages: tuple[float, ...] = DEFAULT_STAGES
    state: CampaignState = CampaignState.DRAFT
    stage: int = 0  # 1-based once started; 0 as a draft
    state_reason: str | None = None  # why it is paused (halted), cancelled, ...
    counts: CampaignCounts = field(default_factory=CampaignCounts)
    digest: str = ""  # SHA-256 of the sorted target ids, one per line
    approved_by: str | None = None
    reverts: str | None = None  # for a revert: the campaign it undoes
    explicit: bool = False  # targets given (a device list, a revert), not selected from the fleet

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidInput("a campaign needs a name")
        if not self.reason.strip():
            raise InvalidInput("a reason is required (it goes into the audit trail)")
        if self.until is not None and self.action is not CampaignAction.EXEMPT:
            raise InvalidInput("an end date (until) applies to exemptions only")
        if (self.message or self.contact) and self.action is not CampaignAction.LOCK:
            raise InvalidInput("a message and a contact apply to locks only")
        if (self.reverts is None) != (self.action is not CampaignAction.REVERT):
            raise InvalidInput("a revert, and only a revert, names the campaign it undoes")
        parse_stages(self.stages)

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def summary(self) -> dict[str, Any]:
        """The campaign as JSON-ready values (status output, audit details)."""
        c = self.counts
        return {
            "id": self.id,
            "name": self.name,
            "action": self.action.value,
            "reason": self.reason,
            # A message in several languages is kept as text (Message.to_text); shown as a table.
            "message": Message.from_text(self.message).to_json() if self.message else None,
            "contact": self.contact,
            "until": self.until.isoformat() if self.until else None,
            "selection": self.selection.to_json(),
            "stages": [f"{s:g}" for s in self.stages],
            "state": self.state.value,
            "state_reason": self.state_reason,
            "stage": self.stage,
            "targets": c.targets,
            "applied": c.applied,
            "skipped": c.skipped,
            "errors": c.errors,
            "pending": c.pending,
            "stage_sizes": list(c.stage_sizes),
            "digest": self.digest,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "approved_by": self.approved_by,
            "reverts": self.reverts,
            "explicit": self.explicit,
        }


def _refuse(c: Campaign, what: str) -> Conflict:
    return Conflict(f"campaign {c.id} is {c.state.value}: cannot {what}")


def start(c: Campaign) -> Campaign:
    """Draft to its first stage, or a paused campaign back to running (the same stage)."""
    if c.state is CampaignState.DRAFT:
        return replace(c, state=CampaignState.RUNNING, stage=1, state_reason=None)
    if c.state is CampaignState.PAUSED:
        return replace(c, state=CampaignState.RUNNING, state_reason=None)
    raise _refuse(c, "start")


def approve(c: Campaign, actor: str) -> Campaign:
    """A second person's approval of a draft (the four-eyes rule): never its creator's."""
    if c.state is not CampaignState.DRAFT:
        raise _refuse(c, "approve (only a draft is approved)")
    if actor == c.created_by:
        raise Conflict(f"campaign {c.id} was created by {actor}: someone else must approve it")
    return replace(c, approved_by=actor)


def advance(c: Campaign) -> Campaign:
    """From waiting at the end of a stage to running the next."""
    if c.state is not CampaignState.WAITING:
        raise _refuse(c, "advance (only a campaign waiting between stages advances)")
    return replace(
        c,
        state=CampaignState.RUNNING,
        stage=c.stage + 1,
        state_reason=None,
        counts=replace(c.counts, stage_errors=0),
    )


def pause(c: Campaign, reason: str) -> Campaign:
    """Stop a running (or waiting) campaign until `start`; what was applied stays."""
    if c.state not in (CampaignState.RUNNING, CampaignState.WAITING):
        raise _refuse(c, "pause")
    return replace(c, state=CampaignState.PAUSED, state_reason=reason)


def cancel(c: Campaign, reason: str) -> Campaign:
    """End a campaign for good; what was applied stays (and is listed)."""
    if c.final:
        raise _refuse(c, "cancel")
    return replace(c, state=CampaignState.CANCELLED, state_reason=reason)


def finish_stage(c: Campaign) -> Campaign:
    """The current stage has no device left: wait for `advance`, or done after the last."""
    if c.state is not CampaignState.RUNNING:
        raise _refuse(c, "finish a stage")
    if c.stage >= len(c.stages):
        return replace(c, state=CampaignState.DONE, state_reason=None)
    return replace(c, state=CampaignState.WAITING, state_reason=None)


# --- guards ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """The four-eyes rule: a campaign over `devices` targets, or over `share` of the fleet,
    needs a second admin's approval before it starts (through the API)."""

    devices: int = 10_000
    share: float = 0.10

    def __post_init__(self) -> None:
        if self.devices < 0 or not 0.0 <= self.share <= 1.0:
            raise InvalidInput("approval rule: devices >= 0 and 0 <= share <= 1")

    def required(self, targets: int, fleet: int) -> bool:
        return targets > self.devices or (fleet > 0 and targets / fleet > self.share)

    def describe(self, targets: int, fleet: int) -> str:
        return (
            f"{targets} devices ({targets / fleet:.1%} of a fleet of {fleet}) is over the"
            f" four-eyes limit of {self.devices} devices or {self.share:.0%} of the fleet"
            if fleet
            else f"{targets} devices is over the four-eyes limit of {self.devices} devices"
        )


@dataclass(frozen=True, slots=True)
class StageHealth:
    """What a halt rule sees of the current stage: its size and what happened so far."""

    stage: int
    size: int
    errors: int
    appeals: int = 0  # owners of this stage's devices who appealed (a later issue fills it)


@dataclass(frozen=True, slots=True)
class ErrorShare:
    """Halt a stage once the share of its devices that errored passes `threshold`."""

    threshold: float = 0.05

    def __call__(self, health: StageHealth) -> str | None:
        if health.size and health.errors / health.size > self.threshold:
            return (
                f"halted: {health.errors} of the {health.size} devices of stage {health.stage}"
                f" failed ({health.errors / health.size:.1%}, above {self.threshold:.1%})"
            )
        return None


@dataclass(frozen=True, slots=True)
class AppealShare:
    """Halt a stage once the share of its devices whose owners appealed passes `threshold`
    (the extension point for appeals: give `StageHealth.appeals` a value and add this rule)."""

    threshold: float = 0.01

    def __call__(self, health: StageHealth) -> str | None:
        if health.size and health.appeals / health.size > self.threshold:
            return (
                f"halted: owners of {health.appeals} of the {health.size} devices of stage"
                f" {health.stage} appealed (above {self.threshold:.1%})"
            )
        return None


# A halt rule: None while the stage may go on, else why it halts.
HaltRule = Callable[[StageHealth], str | None]
DEFAULT_HALT_RULES: tuple[HaltRule, ...] = (ErrorShare(),)


def first_halt(rules: Iterable[HaltRule], health: StageHealth) -> str | None:
    """Why the stage halts, by the first rule that says so; None when none does."""
    for rule in rules:
        if (why := rule(health)) is not None:
            return why
    return None


# --- applying ----------------------------------------------------------------------------------


def apply_to_state(c: Campaign, state: DeviceState, now: datetime) -> DeviceState:
    """A device's state once the campaign's action is applied to it (`now`: when).

    Precedence at check-in (services/checkin.py): an exemption wins; then the lock slot, which
    holds one lock, manual or campaign, whichever was set last; then the policy. A campaign
    lock therefore replaces an operator's lock and an operator's later lock replaces it.
    Raises InvalidInput when the action cannot apply any more (an exemption whose end date
    has passed since the campaign was created).
    """
    if c.action is CampaignAction.LOCK:
        lock = ManualLock(
            c.reason, c.created_by, now.astimezone(UTC), c.message, c.contact, campaign=c.id
        )
        return replace(state, manual_lock=lock)
    if c.action is CampaignAction.UNLOCK:
        return replace(state, manual_lock=None)
    if c.action is CampaignAction.EXEMPT:
        if c.until is not None and c.until <= now.astimezone(UTC).date():
            raise InvalidInput(f"the exemption's end date {c.until} has passed")
        return replace(
            state, exemption=ManualExemption(c.reason, c.created_by, c.until, campaign=c.id)
        )
    if c.action is CampaignAction.REVERT:
        raise ValueError("a revert is applied with revert_state (it needs what was replaced)")
    return replace(state, manual_lock=None, exemption=None)


def _as_left(slot: ManualLock | ManualExemption | None, campaign_id: str, filled: bool) -> bool:
    """Whether a slot still holds what the campaign left: its own entry, or nothing."""
    if filled:
        return slot is not None and slot.campaign == campaign_id
    return slot is None


def revert_state(
    state: DeviceState, original: Campaign, before: DeviceState | None
) -> DeviceState | None:
    """`state` with the slots that `original` wrote put back as they were (`before`: a state
    holding only them; None when they were empty). None when the device no longer holds what
    the campaign left there (an operator or a later campaign changed it since): a revert never
    undoes someone else's later decision."""
    lock_slot, exemption_slot = original.action.slots
    lock, exemption = state.manual_lock, state.exemption
    if lock_slot and not _as_left(lock, original.id, original.action is CampaignAction.LOCK):
        return None
    if exemption_slot and not _as_left(
        exemption, original.id, original.action is CampaignAction.EXEMPT
    ):
        return None
    was = before if before is not None else DeviceState()
    return replace(
        state,
        manual_lock=was.manual_lock if lock_slot else lock,
        exemption=was.exemption if exemption_slot else exemption,
    )


def target_digest(sorted_ids: Iterable[str]) -> str:
    """SHA-256 of target ids in id order, one per line: the frozen set's fingerprint."""
    h = hashlib.sha256()
    for device_id in sorted_ids:
        h.update(device_id.encode() + b"\n")
    return h.hexdigest()
