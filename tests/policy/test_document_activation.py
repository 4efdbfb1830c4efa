"""Activation rules: the countries a device must first be activated in are required."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from regionlock.domain.decision import PresenceHistory, decide
from regionlock.domain.location import LocationEstimate
from regionlock.domain.policy import Action, DeviceFacts
from regionlock.policies import PolicyError, parse_policy

RULE = '[policy]\nid = "p"\nversion = "1"\n\n[[activation]]\nid = "a"\naction = "lock"\n'
BERLIN = LocationEstimate("DE", "DE-BE", 0.95, (), ())
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_a_device_activated_in_its_region_is_allowed() -> None:
    policy = parse_policy(RULE + 'countries = ["EEA"]\n')
    device = DeviceFacts("d", first_country="DE")
    assert decide(device, BERLIN, PresenceHistory(), policy, NOW).action is Action.ALLOW


@pytest.mark.parametrize("countries", ["", "countries = []\n"])
def test_a_rule_with_no_countries_is_refused(countries: str) -> None:
    """Accepted, every device in scope would be "first activated outside" nothing, and
    every one of them locked."""
    with pytest.raises(PolicyError) as info:
        parse_policy(RULE + countries)
    [problem] = info.value.problems
    assert problem.path == "activation[0].countries"
    assert problem.line in (5, 8)
    assert "at least one" in problem.message
