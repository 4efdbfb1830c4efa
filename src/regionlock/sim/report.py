"""What happened in a simulated run, judged against the scenario's ground truth.

The two numbers that matter come first: travellers (and other legitimate users) wrongly locked,
the worst failure; then diverted devices missed, the second worst. A diverted device that checked
in from the restricted place and was not locked at its last check-in there is missed, with one
exception reported on its own line: a device warned under the traveller grace (seen there on no
more days than the policy's `min_days`, and not first activated there) is indistinguishable
from a visitor so far, and its next day there locks it. Every such device is listed with why it
was not locked (its last reasons), so a reader can tell a policy trade-off from a defect.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from regionlock.sim.driver import Outcome
from regionlock.sim.fleet import Profile, SimDevice

LEGITIMATE = frozenset(
    {Profile.RESIDENT, Profile.ROAMER, Profile.DUAL_SIM, Profile.VPN_USER, Profile.TRAVELLER}
)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class RunSummary:
    """A period of check-ins (e.g. the block week), judged per device."""

    checkins: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: dict[str, float] = field(default_factory=dict)
    rate: float = 0.0  # check-ins per second of wall time
    verdicts_by_country: dict[str, Counter[str]] = field(default_factory=dict)
    profiles: Counter[str] = field(default_factory=Counter)
    wrongly_locked: list[str] = field(default_factory=list)  # "profile imei" of each
    travellers_visited: int = 0
    travellers_warned: int = 0
    vpn_users: int = 0
    vpn_users_locked: int = 0
    diverted: int = 0
    diverted_seen_there: int = 0
    diverted_locked: int = 0
    diverted_missed: list[str] = field(default_factory=list)  # "imei place: last reasons"
    # Not locked yet only because they were seen there on too few days: the traveller grace
    # (policy presence.min_days) treats them as visitors until their next day there.
    diverted_in_grace: list[str] = field(default_factory=list)
    diverted_never_seen_there: int = 0
    locked_by_place: Counter[str] = field(default_factory=Counter)  # at the end of the period

    def to_json(self) -> dict[str, Any]:
        return {
            "checkins": self.checkins,
            "errors": dict(self.errors),
            "latency_ms": self.latencies_ms,
            "checkins_per_s": round(self.rate, 1),
            "verdicts_by_country": {k: dict(v) for k, v in self.verdicts_by_country.items()},
            "profiles": dict(self.profiles),
            "wrongly_locked": self.wrongly_locked,
            "travellers_visited": self.travellers_visited,
            "travellers_warned": self.travellers_warned,
            "vpn_users": self.vpn_users,
            "vpn_users_locked": self.vpn_users_locked,
            "diverted": self.diverted,
            "diverted_seen_there": self.diverted_seen_there,
            "diverted_locked": self.diverted_locked,
            "diverted_missed": self.diverted_missed,
            "diverted_in_grace": self.diverted_in_grace,
            "diverted_never_seen_there": self.diverted_never_seen_there,
            "locked_by_place": dict(self.locked_by_place),
        }


def _place(outcome: Outcome) -> str:
    return outcome.plan.subdivision or outcome.plan.country


def summarize(
    devices: Sequence[SimDevice], outcomes: Iterable[Outcome], wall_s: float
) -> RunSummary:
    """Judge a period's outcomes (any number of days) against the devices' ground truth."""
    by_device: dict[int, list[Outcome]] = defaultdict(list)
    latencies: list[float] = []
    s = RunSummary()
    countries: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        by_device[o.index].append(o)
        s.checkins += 1
        latencies.append(o.latency_s * 1000)
        if o.error:
            s.errors[o.error] += 1
        else:
            countries[o.country or "unknown"][o.verdict or "none"] += 1
    s.verdicts_by_country = dict(sorted(countries.items()))
    s.latencies_ms = {f"p{q}": round(percentile(latencies, q), 1) for q in (50, 95, 99)} | {
        "max": round(max(latencies, default=0.0), 1)
    }
    s.rate = s.checkins / wall_s if wall_s > 0 else 0.0
    for device in devices:
        s.profiles[device.profile.value] += 1
        seen = sorted(by_device.get(device.index, []), key=lambda o: o.day)
        ok = [o for o in seen if not o.error]
        ever_locked = any(o.action == "lock" for o in ok)
        if device.profile in LEGITIMATE and ever_locked:
            s.wrongly_locked.append(f"{device.profile.value} {device.imei}")
        if device.profile is Profile.TRAVELLER:
            there = [o for o in ok if o.plan.restricted]
            if there:
                s.travellers_visited += 1
                s.travellers_warned += any(o.action == "warn" for o in there)
        elif device.profile is Profile.VPN_USER:
            s.vpn_users += 1
            s.vpn_users_locked += ever_locked
        elif device.profile is Profile.DIVERTED:
            s.diverted += 1
            there = [o for o in ok if o.plan.restricted]
            if not there:
                s.diverted_never_seen_there += 1
                continue
            s.diverted_seen_there += 1
            last = there[-1]
            if last.action == "lock":
                s.diverted_locked += 1
            else:
                days = len({o.day for o in there})
                line = (
                    f"{device.imei} in {_place(last)}, seen there on {days} day(s), placed in "
                    f"{last.subdivision or last.country or 'unknown'}: "
                    f"{last.action} ({', '.join(last.reasons) or 'no reason'})"
                )
                grace = last.action == "warn" and "presence.grace" in last.reasons
                (s.diverted_in_grace if grace else s.diverted_missed).append(line)
        if ok and ok[-1].action == "lock":
            s.locked_by_place[_place(ok[-1])] += 1
    return s


# The reasons with which a restriction locks (decision.py `_presence`); a later warning step
# (`escalation.warning`) turns the lock into a warning.
_LAW_LOCKS = frozenset({"presence.first_activation", "presence.established"})


def policy_locks(reasons: Sequence[str]) -> bool:
    """Whether the policy alone locks, from a verdict's reasons (a campaign's or an operator's
    lock adds its own reason in front of the policy's)."""
    return bool(_LAW_LOCKS.intersection(reasons)) and "escalation.warning" not in reasons


@dataclass
class LiftSummary:
    """Devices locked at the end of the block, and what the first check-in after the lift did.

    A device still locked is held by the law (the policy's remaining rule) or by a campaign;
    a campaign-locked device the law would lock too is counted as the campaign's, with the law
    noted (`campaign_and_law`)."""

    locked_before: int = 0
    checked_in_after: int = 0
    unlocked: Counter[str] = field(default_factory=Counter)  # by place
    unlocked_diverted: int = 0  # of them, diverted devices (no campaign reached them)
    still_locked: Counter[str] = field(default_factory=Counter)  # by law: "place: reasons"
    campaign_and_law: Counter[str] = field(default_factory=Counter)  # by place
    campaign_only: Counter[str] = field(default_factory=Counter)  # by place: the law is silent
    campaign_not_diverted: list[str] = field(default_factory=list)  # "profile imei": none
    wrongly_locked: list[str] = field(default_factory=list)  # legitimate, locked after: none

    @property
    def by_campaign(self) -> int:
        return sum(self.campaign_and_law.values()) + sum(self.campaign_only.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "locked_before": self.locked_before,
            "checked_in_after": self.checked_in_after,
            "unlocked": dict(self.unlocked),
            "unlocked_diverted": self.unlocked_diverted,
            "still_locked": dict(self.still_locked),
            "by_campaign": self.by_campaign,
            "campaign_and_law": dict(self.campaign_and_law),
            "campaign_only": dict(self.campaign_only),
            "campaign_not_diverted": self.campaign_not_diverted,
            "wrongly_locked": self.wrongly_locked,
        }


def summarize_lift(
    devices: Sequence[SimDevice], before: Iterable[Outcome], after: Iterable[Outcome]
) -> LiftSummary:
    """Compare each device's last enforcement before the lift with its first after it, and
    judge every lock after it against the devices' ground truth."""
    by_index = {d.index: d for d in devices}
    last: dict[int, Outcome] = {}
    for o in before:
        if not o.error:
            last[o.index] = o
    s = LiftSummary(locked_before=sum(o.action == "lock" for o in last.values()))
    for o in after:
        if o.error:
            continue
        device = by_index[o.index]
        if o.action == "lock":
            if device.profile in LEGITIMATE:
                s.wrongly_locked.append(f"{device.profile.value} {device.imei}")
            if "campaign.lock" in o.reasons:
                held = s.campaign_and_law if policy_locks(o.reasons) else s.campaign_only
                held[_place(o)] += 1
                if device.profile is not Profile.DIVERTED:
                    s.campaign_not_diverted.append(f"{device.profile.value} {device.imei}")
        prior = last.get(o.index)
        if prior is None or prior.action != "lock":
            continue
        s.checked_in_after += 1
        if o.action != "lock":
            s.unlocked[_place(o)] += 1
            s.unlocked_diverted += device.profile is Profile.DIVERTED
        elif "campaign.lock" not in o.reasons:
            s.still_locked[f"{_place(o)}: {', '.join(o.reasons)}"] += 1
    return s
