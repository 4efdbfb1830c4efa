"""`part_action`: what a lock becomes over a code an instrument covers only in part."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from regionlock.domain.decision import PresenceHistory, Verdict, decide
from regionlock.domain.location import NO_PRESENCE_EVIDENCE, LocationEstimate
from regionlock.domain.policy import (
    Action,
    DeviceFacts,
    Jurisdiction,
    Policy,
    Presence,
    Restriction,
)

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
DONETSK = Jurisdiction("UA-14", "Donetsk", date(2022, 2, 21), extent="part")
CRIMEA = Jurisdiction("UA-43", "Crimea", date(2014, 3, 1))
KHERSON = Jurisdiction("UA-65", "Kherson", date(2022, 10, 6), extent="part")
KRAMATORSK = LocationEstimate("UA", "UA-14", 0.95, (), ())
SETTLED = Presence(min_days=0)  # today alone establishes presence: only extent decides


def verdict(
    rule: Restriction, where: LocationEstimate, history: PresenceHistory | None = None
) -> Verdict:
    policy = Policy("p", "1", "", (rule,))
    return decide(DeviceFacts("d"), where, history or PresenceHistory(), policy, NOW)


def test_a_lock_over_a_part_warns_by_default() -> None:
    v = verdict(Restriction("r", (DONETSK,), Action.LOCK, presence=SETTLED), KRAMATORSK)
    assert v.action is Action.WARN
    assert "jurisdiction.partial" in v.reasons


@pytest.mark.parametrize(
    ("part_action", "expected"),
    [(Action.LOCK, Action.LOCK), (Action.WARN, Action.WARN), (Action.ALLOW, Action.ALLOW)],
)
def test_part_action_is_what_a_lock_over_a_part_becomes(
    part_action: Action, expected: Action
) -> None:
    rule = Restriction("r", (DONETSK,), Action.LOCK, presence=SETTLED, part_action=part_action)
    assert verdict(rule, KRAMATORSK).action is expected


def test_part_action_lock_still_needs_evidence_and_presence() -> None:
    rule = Restriction(
        "r", (DONETSK,), Action.LOCK, presence=Presence(min_days=3), part_action=Action.LOCK
    )
    visiting = verdict(rule, KRAMATORSK)
    assert (visiting.action, visiting.reasons[-1]) == (Action.WARN, "presence.grace")
    ip_only = KRAMATORSK._replace(flags=(NO_PRESENCE_EVIDENCE,))
    assert verdict(replace(rule, presence=SETTLED), ip_only).action is Action.WARN


def test_part_action_never_raises_a_warning_rule_to_a_lock() -> None:
    rule = Restriction("r", (DONETSK,), Action.WARN, presence=SETTLED, part_action=Action.LOCK)
    assert verdict(rule, KRAMATORSK).action is Action.WARN


def test_candidates_straddling_a_part_are_judged_as_the_part() -> None:
    """A place narrowed to "UA-43 or UA-65", under a rule on all of Crimea but only part of
    Kherson oblast: the device may be in the government-controlled rest of Kherson oblast, so
    the lock is the part's, whichever candidate is listed first."""
    today = NOW.date()
    in_crimea = PresenceHistory(
        {today - timedelta(days=d): frozenset({"UA", "UA-43"}) for d in (1, 2, 3, 4)}
    )
    rule = Restriction("r", (CRIMEA, KHERSON), Action.LOCK, presence=Presence(min_days=3))
    for order in (("UA-43", "UA-65"), ("UA-65", "UA-43")):
        where = LocationEstimate("UA", None, 0.95, (), (), subdivisions=order)
        v = verdict(rule, where, in_crimea)
        assert v.action is Action.WARN, order
        assert "jurisdiction.partial" in v.reasons
        opted_in = verdict(replace(rule, part_action=Action.LOCK), where, in_crimea)
        assert opted_in.action is Action.LOCK, order


def test_a_code_restricted_in_full_is_not_reduced_by_a_part_entry_for_it() -> None:
    """A rule on all of Ukraine that also lists Donetsk oblast in part (first) restricts
    Kramatorsk in full: the part entry must not turn its lock into a warning."""
    ukraine = Jurisdiction("UA", "Ukraine", date(2014, 3, 1))
    for js in ((DONETSK, ukraine), (ukraine, DONETSK)):
        v = verdict(Restriction("r", js, Action.LOCK, presence=SETTLED), KRAMATORSK)
        assert v.action is Action.LOCK, [j.code for j in js]
        assert "jurisdiction.partial" not in v.reasons
