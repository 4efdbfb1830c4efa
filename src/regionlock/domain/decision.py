"""`decide`: allow, warn or lock, with stable reason codes and an explanation.

The order of judgement, each step written so that a wrong lock is the hardest outcome to reach:

1. An exemption that applies wins over everything (`exemption.device`, `exemption.batch`).
2. An unknown location never restricts (`location.unknown`).
3. Each restriction in scope whose jurisdiction contains the location, active on the date,
   proposes its action (`jurisdiction.restricted`). A lock then has to pass, in turn:
   - extent: a jurisdiction covered only in part (e.g. occupied areas of an oblast) becomes
     the rule's `part_action`: warn by default, lock or allow if the rule says so
     (`jurisdiction.partial`); a place narrowed to several candidate subdivisions is judged
     as its least covered candidate;
   - evidence: a place named only by IP or SIM, with no GPS or serving network behind it,
     warns (`location.no_presence_evidence`); below the policy's minimum confidence, or with
     `low_confidence`, it warns (`confidence.low`). A VPN flag alone changes nothing: it
     says the IP was outvoted by presence signals, which is what a lock should rest on;
     and in places where VPNs are everyday tools, a VPN exemption would miss every
     diverted phone;
   - presence: until presence is established (days within the window, or first activation
     there) it becomes the rule's grace action (`presence.grace`; `presence.established`,
     `presence.first_activation` when it is);
   - escalation: with `warn_days`, a lock needs that many days of warnings first
     (`escalation.warning`).
4. Activation rules: a device first activated outside its sales region (`activation.region`).
5. The most severe remaining action wins; with none, `allow` (`policy.no_match`).

The message shown is the deciding rule's, else the policy's, in the language the device's
`locale` asks for (`regionlock.domain.messages`).

Everything is a pure function of its arguments: the same inputs give the same verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from regionlock.domain.location import (
    LOW_CONFIDENCE_FLAG,
    NO_PRESENCE_EVIDENCE,
    VPN_SUSPECTED,
    LocationEstimate,
)
from regionlock.domain.messages import Message, place_languages
from regionlock.domain.policy import (
    Action,
    DeviceFacts,
    Jurisdiction,
    OfflineAction,
    Policy,
    Restriction,
)

CANDIDATES_SEPARATOR = "|"


def join_candidates(subdivisions: Iterable[str]) -> str:
    """One code for a place narrowed to several subdivisions: "UA-40|UA-43" (sorted)."""
    return CANDIDATES_SEPARATOR.join(sorted(subdivisions))


def split_candidates(code: str) -> list[str]:
    """The subdivisions of a joined code (a plain code gives itself)."""
    return code.split(CANDIDATES_SEPARATOR)


@dataclass(frozen=True, slots=True)
class PresenceHistory:
    """What the service remembers of where a device was: no raw signals, only places by day.

    `days` maps a UTC date to the codes (country and subdivision) where the device was located
    with enough confidence that day; a place narrowed to several subdivisions is one code
    joining them with `CANDIDATES_SEPARATOR` ("UA-40|UA-43"), never each of them.
    `warned_since` maps a rule id to the first day a warning for it was issued, for
    warn-before-lock.
    """

    days: Mapping[date, frozenset[str]] = field(default_factory=dict)
    warned_since: Mapping[str, date] = field(default_factory=dict)

    def days_in(
        self, code: str, today: date, window_days: int, *, present_today: bool = False
    ) -> int:
        """Distinct days in the window ending today (inclusive) the device was seen in `code`."""
        return self.days_where(
            lambda codes: code in codes, today, window_days, present_today=present_today
        )

    def days_where(
        self,
        counts: Callable[[frozenset[str]], bool],
        today: date,
        window_days: int,
        *,
        present_today: bool = False,
    ) -> int:
        """Distinct days in the window ending today (inclusive) whose codes `counts`."""
        start = today - timedelta(days=window_days - 1)
        seen = {d for d, codes in self.days.items() if start <= d <= today and counts(codes)}
        if present_today:
            seen.add(today)
        return len(seen)


@dataclass(frozen=True, slots=True)
class Lease:
    """The lease a verdict carries: valid until `expires`, then `offline_action`."""

    expires: datetime
    offline_action: OfflineAction
    offline_lock_after_days: int
    offline_warn_days: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision, why, and what the device shows."""

    action: Action
    reasons: tuple[str, ...]
    explanation: str
    policy_id: str
    policy_version: str
    lease: Lease
    message: str = ""
    contact: str = ""
    rule: str | None = None  # the rule that decided, when one did
    language: str = ""  # the language tag of `message` ("" when unknown or no message)
    # Lock rules that matched but were held back to a warning (grace, evidence, escalation):
    # each one's warn-before-lock clock runs, whichever rule decided.
    held_back: tuple[str, ...] = ()
    # An operator's exemption decided it (an appeal granted, ...): the verdict tells the device,
    # which honours it offline until `exempt_until` (None: for good). Set by the check-in
    # service, which holds the device's exemption.
    exempt: bool = False
    exempt_until: date | None = None


@dataclass(frozen=True, slots=True)
class _Proposal:
    action: Action
    reasons: tuple[str, ...]
    text: str
    rule: str
    message: Message
    contact: str


def decide(
    device: DeviceFacts,
    location: LocationEstimate,
    history: PresenceHistory,
    policy: Policy,
    as_of: datetime,
    *,
    locale: str | None = None,
) -> Verdict:
    """Allow, warn or lock this device, at this place and time, under this policy.

    `locale` is the one the device reported (None: none), which picks the message's language.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    today = as_of.astimezone(UTC).date()
    lease = Lease(
        expires=as_of + timedelta(days=policy.lease.valid_days),
        offline_action=policy.lease.offline_action,
        offline_lock_after_days=policy.lease.offline_lock_after_days,
        offline_warn_days=policy.lease.offline_warn_days,
    )

    def verdict(
        action: Action,
        reasons: tuple[str, ...],
        text: str,
        p: _Proposal | None = None,
    ) -> Verdict:
        shown = (p.message if p else Message()) or (
            policy.message if action is not Action.ALLOW else Message()
        )
        choice = shown.choose(locale, languages_at(location))
        return Verdict(
            action=action,
            reasons=reasons,
            explanation=text,
            policy_id=policy.id,
            policy_version=policy.version,
            lease=lease,
            message=choice.text,
            language=choice.language,
            contact=(p.contact if p else "")
            or (policy.contact if action is not Action.ALLOW else ""),
            rule=p.rule if p else None,
        )

    for exemption in policy.exemptions:
        if exemption.applies(device, today):
            kind = "device" if exemption.device is not None else "batch"
            until = f" until {exemption.until.isoformat()}" if exemption.until else ""
            return verdict(
                Action.ALLOW,
                (f"exemption.{kind}",),
                f"Allowed: {kind} exemption{until} ({exemption.reason}).",
            )

    proposals: list[_Proposal] = []
    if location.country is None:
        base_reasons: tuple[str, ...] = ("location.unknown",)
    else:
        base_reasons = ()
        for rule in policy.restrictions:
            if not rule.scope.covers(device):
                continue
            hit = _matching(rule, location, today)
            if hit is not None:
                proposals.append(_judge(rule, hit, device, location, history, policy, today))
    for arule in policy.activation_rules:
        if not arule.scope.covers(device) or device.first_country is None:
            continue
        if device.first_country not in arule.countries:
            proposals.append(
                _Proposal(
                    arule.action,
                    ("activation.region",),
                    f"rule {arule.id}: first activated in {device.first_country}, outside "
                    f"{', '.join(sorted(arule.countries))}",
                    arule.id,
                    arule.message,
                    arule.contact,
                )
            )

    if not proposals:
        where = _where(location)
        text = (
            "Allowed: location unknown; an unknown location never restricts."
            if location.country is None
            else f"Allowed: no rule restricts {where} on {today.isoformat()}."
        )
        return verdict(Action.ALLOW, base_reasons or ("policy.no_match",), text)
    # Most severe wins; ties go to the earliest rule in the document (stable order).
    best = max(proposals, key=lambda p: p.action.severity)
    reasons: list[str] = []
    for p in proposals:
        for r in p.reasons:
            if r not in reasons:
                reasons.append(r)
    text = f"{best.action.value.capitalize()}: " + "; ".join(p.text for p in proposals) + "."
    lock_rules = {r.id for r in policy.restrictions if r.action is Action.LOCK}
    held = tuple(p.rule for p in proposals if p.rule in lock_rules and p.action is Action.WARN)
    return replace(verdict(best.action, tuple(reasons), text, best), held_back=held)


def languages_at(location: LocationEstimate) -> tuple[str, ...]:
    """The languages people read where the device is, best first (`PLACE_LANGUAGES`): its
    subdivision's, or those of the candidates of a place narrowed to several, then its
    country's."""
    where = (location.subdivision,) if location.subdivision else tuple(location.subdivisions)
    return place_languages(location.country, where)


def _where(location: LocationEstimate) -> str:
    if location.subdivision:
        return f"{location.country}/{location.subdivision}"
    if location.subdivisions:
        return f"{location.country}/{' or '.join(location.subdivisions)}"
    return location.country or "an unknown place"


def _matching(rule: Restriction, location: LocationEstimate, today: date) -> Jurisdiction | None:
    """The rule's jurisdiction that restricts this place today, if any.

    Where several entries restrict the place, one covering it in full wins over one covering
    it only in part (a missed lock otherwise). A place narrowed to several subdivisions
    matches only when the rule restricts every candidate, and then as the least covered of
    them: if one is restricted only in part, the device may be in its uncovered rest.
    """

    def best(subdivision: str | None) -> Jurisdiction | None:
        hits = [
            j
            for j in rule.jurisdictions
            if j.active(today) and j.contains(location.country, subdivision)
        ]
        return next((j for j in hits if j.extent == "whole"), hits[0] if hits else None)

    if location.subdivision is None and location.subdivisions:
        found = [best(s) for s in location.subdivisions]
        if all(found):
            return next((j for j in found if j is not None and j.extent != "whole"), found[0])
        # Not every candidate is restricted: whichever the device is in, the rule cannot say.
        return None
    return best(location.subdivision)


def _judge(
    rule: Restriction,
    j: Jurisdiction,
    device: DeviceFacts,
    location: LocationEstimate,
    history: PresenceHistory,
    policy: Policy,
    today: date,
) -> _Proposal:
    origin = f"{j.origin}: " if j.origin != "policy" else ""
    head = (
        f"rule {rule.id}: {_where(location)} is restricted ({origin}{j.name} {j.code}, "
        f"since {j.start.isoformat()})"
    )
    reasons = ["jurisdiction.restricted"]
    action = rule.action
    notes: list[str] = []
    if action is Action.LOCK:
        if location.has(NO_PRESENCE_EVIDENCE):
            action = Action.WARN
            reasons.append("location.no_presence_evidence")
            notes.append(
                "neither GPS nor a serving network places the device there (only "
                "IP or SIM), so no lock"
            )
        if location.confidence < policy.min_lock_confidence or location.has(LOW_CONFIDENCE_FLAG):
            action = Action.WARN
            reasons.append("confidence.low")
            notes.append(
                f"confidence {location.confidence:.2f} is below the "
                f"{policy.min_lock_confidence:.2f} needed to lock"
            )
    if action is Action.LOCK and j.extent == "part" and rule.part_action is not Action.LOCK:
        action = rule.part_action
        reasons.append("jurisdiction.partial")
        notes.append(
            f"the instrument covers only part of {j.code}, so no lock from the subdivision alone"
        )
    if action is Action.LOCK:
        action, why, code = _presence(rule, j, device, history, today, location)
        reasons.append(code)
        notes.append(why)
        if location.has(VPN_SUSPECTED):
            # The IP is not trusted; GPS and the serving network placed the device.
            notes.append("its IP points elsewhere (VPN suspected); presence signals decide")
    if action is Action.LOCK and rule.warn_days > 0:
        first = history.warned_since.get(rule.id)
        if first is not None and (today - first).days >= rule.presence.window_days:
            first = None  # warnings from an earlier stay do not count
        warned = (today - first).days if first is not None else 0
        if warned < rule.warn_days:
            action = Action.WARN
            reasons.append("escalation.warning")
            notes.append(f"{warned} of {rule.warn_days} days of warnings shown before a lock")
    text = head + ("; " + "; ".join(notes) if notes else "")
    return _Proposal(action, tuple(reasons), text, rule.id, rule.message, rule.contact)


def _first_activated_in(
    j: Jurisdiction,
    device: DeviceFacts,
    covered: Callable[[str], bool],
    location: LocationEstimate,
) -> bool:
    """Whether the device was first activated in `j`; a first activation narrowed to several
    subdivisions ("UA-40|UA-43") counts when the rule restricts every one of them in full.

    Where the place now is itself narrowed to several subdivisions the rule restricts in full,
    `j` is just one of them (`_matching`); a first activation in any of them is one here, so
    the verdict does not hang on which candidate sorts first."""
    first = device.first_subdivision
    if first is not None and CANDIDATES_SEPARATOR in first:
        parts = split_candidates(first)
        return device.first_country == j.code[:2] and j.code in parts and all(map(covered, parts))
    candidates = location.subdivisions if location.subdivision is None else ()
    if (
        first in candidates
        and device.first_country == location.country
        and all(map(covered, candidates))
    ):
        return True
    return j.contains(device.first_country, first)


def _presence(
    rule: Restriction,
    j: Jurisdiction,
    device: DeviceFacts,
    history: PresenceHistory,
    today: date,
    location: LocationEstimate,
) -> tuple[Action, str, str]:
    p = rule.presence

    def covered(code: str) -> bool:
        # Restricted by this rule, today, in full (a part-extent subdivision is not enough to
        # count an imprecise day as a day there, unless the rule locks on parts too).
        return any(
            k.active(today)
            and k.code == code
            and (k.extent == "whole" or rule.part_action is Action.LOCK)
            for k in rule.jurisdictions
        )

    if p.first_activation_locks and _first_activated_in(j, device, covered, location):
        return Action.LOCK, f"first activated in {j.code}", "presence.first_activation"
    # The places that count: the jurisdiction matched, or, for a subdivision narrowed to
    # several candidates, all of them (the rule restricts each, or it would not match). A day
    # recorded with candidates counts only if this rule restricts every one of them in full.
    subdivision_level = "-" in j.code
    targets = (
        frozenset(location.subdivisions)
        if subdivision_level and location.subdivision is None and location.subdivisions
        else frozenset((j.code,))
    )

    def counts(codes: frozenset[str]) -> bool:
        if codes & targets:
            return True
        for code in codes:
            parts = split_candidates(code)
            if len(parts) > 1 and targets & set(parts) and all(covered(x) for x in parts):
                return True
        return False

    # Today counts as a day of presence: the device is there now.
    seen = history.days_where(counts, today, p.window_days, present_today=True)
    if seen > p.min_days:
        return (
            Action.LOCK,
            f"present {seen} day(s) in the last {p.window_days} (more than {p.min_days})",
            "presence.established",
        )
    return (
        p.grace_action,
        f"present {seen} day(s) in the last {p.window_days}, not more than "
        f"{p.min_days}: traveller grace",
        "presence.grace",
    )
