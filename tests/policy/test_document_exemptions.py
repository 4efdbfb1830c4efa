"""Exemptions: a device or batch that is not text is refused, never silently ignored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from regionlock.domain.decision import PresenceHistory, decide
from regionlock.domain.location import LocationEstimate
from regionlock.domain.policy import Action, DeviceFacts
from regionlock.policies import PolicyError, parse_policy

POLICY = """\
[policy]
id = "p"
version = "1"

[[restriction]]
id = "r"
action = "lock"
from = 2021-09-15
jurisdictions = ["IR"]

[[exemption]]
{exemption}
reason = "appeal #4711"
"""
TEHRAN = LocationEstimate("IR", "IR-23", 0.95, (), ())
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_a_quoted_imei_exempts_the_device() -> None:
    policy = parse_policy(POLICY.format(exemption='device = "356938035643809"'))
    device = DeviceFacts("d", imeis=("356938035643809",))
    assert decide(device, TEHRAN, PresenceHistory(), policy, NOW).action is Action.ALLOW


@pytest.mark.parametrize(
    ("exemption", "path"),
    [
        ("device = 356938035643809", "exemption[0].device"),  # an IMEI without quotes
        ("batch = 2021", "exemption[0].batch"),
        ('device = ["356938035643809"]', "exemption[0].device"),
        ('device = ""', "exemption[0].device"),
    ],
)
def test_an_exemption_that_could_match_nothing_is_refused(exemption: str, path: str) -> None:
    """Accepted, it would exempt nobody: the owner who won the appeal would stay locked."""
    with pytest.raises(PolicyError) as info:
        parse_policy(POLICY.format(exemption=exemption))
    [problem] = info.value.problems
    assert (problem.path, problem.line) == (path, 12)
    assert "must be a non-empty string" in problem.message
