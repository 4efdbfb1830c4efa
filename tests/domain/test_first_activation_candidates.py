"""A first activation where the place is narrowed to several subdivisions that one rule
restricts in full is judged the same whichever of them the first activation named (found by
mutation testing: `_matching__mutmut_20`, docs/test-quality.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from regionlock.domain.decision import PresenceHistory, decide
from regionlock.domain.location import LocationEstimate
from regionlock.domain.policy import (
    Action,
    DeviceFacts,
    Jurisdiction,
    Policy,
    Presence,
    Restriction,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
CRIMEA_NETWORK = LocationEstimate("UA", None, 0.8, (), (), subdivisions=("UA-40", "UA-43"))
BOTH = Restriction(
    "crimea",
    (
        Jurisdiction("UA-43", "Crimea", date(2014, 3, 1)),
        Jurisdiction("UA-40", "Sevastopol", date(2014, 3, 1)),
    ),
    Action.LOCK,
    presence=Presence(min_days=3),
)


@pytest.mark.parametrize("first", ["UA-40", "UA-43", "UA-40|UA-43"])
def test_first_activation_in_either_candidate_locks(first: str) -> None:
    device = DeviceFacts("d", first_country="UA", first_subdivision=first, first_seen=NOW.date())
    v = decide(device, CRIMEA_NETWORK, PresenceHistory(), Policy("p", "1", "", (BOTH,)), NOW)
    assert v.action is Action.LOCK and "presence.first_activation" in v.reasons, v.explanation


def test_a_first_activation_outside_the_candidates_is_not_one_there() -> None:
    device = DeviceFacts("d", first_country="UA", first_subdivision="UA-30", first_seen=NOW.date())
    v = decide(device, CRIMEA_NETWORK, PresenceHistory(), Policy("p", "1", "", (BOTH,)), NOW)
    assert v.action is Action.WARN  # a visitor from Kyiv: traveller grace


def test_when_one_candidate_is_restricted_only_in_part_a_first_activation_does_not_lock() -> None:
    part = Restriction(
        "part",
        (
            Jurisdiction("UA-43", "Crimea", date(2014, 3, 1)),
            Jurisdiction("UA-40", "Sevastopol", date(2014, 3, 1), extent="part"),
        ),
        Action.LOCK,
        presence=Presence(min_days=3),
    )
    device = DeviceFacts("d", first_country="UA", first_subdivision="UA-43", first_seen=NOW.date())
    v = decide(device, CRIMEA_NETWORK, PresenceHistory(), Policy("p", "1", "", (part,)), NOW)
    assert v.action is not Action.LOCK  # it may be in Sevastopol's unrestricted rest
