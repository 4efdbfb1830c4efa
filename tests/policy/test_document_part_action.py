"""`part_action` in a policy document: read, checked, and honoured by the decision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from regionlock.domain.decision import PresenceHistory, decide
from regionlock.domain.location import LocationEstimate
from regionlock.domain.policy import Action, DeviceFacts
from regionlock.policies import PolicyError, parse_policy

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
KRAMATORSK = LocationEstimate("UA", "UA-14", 0.95, (), ())  # Donetsk oblast, government-held

DOCUMENT = """\
[policy]
id = "donetsk"
version = "1"

[[restriction]]
id = "occupied-donetsk"
action = "lock"
jurisdictions = [{{ code = "UA-14", from = 2022-02-21, extent = "part" }}]
{part_action}
[restriction.presence]
min_days = 0
"""


def policy_text(part_action: str = "") -> str:
    return DOCUMENT.format(part_action=part_action)


def action_at_kramatorsk(text: str) -> Action:
    policy = parse_policy(text)
    return decide(DeviceFacts("d"), KRAMATORSK, PresenceHistory(), policy, NOW).action


def test_part_action_defaults_to_warn() -> None:
    assert parse_policy(policy_text()).restrictions[0].part_action is Action.WARN
    assert action_at_kramatorsk(policy_text()) is Action.WARN


@pytest.mark.parametrize("value", ["lock", "warn", "allow"])
def test_part_action_is_read(value: str) -> None:
    text = policy_text(f'part_action = "{value}"')
    assert parse_policy(text).restrictions[0].part_action is Action(value)
    assert action_at_kramatorsk(text) is Action(value)


@pytest.mark.parametrize("value", ['"explode"', '"LOCK"', "true", "2", '["lock"]'])
def test_an_unknown_part_action_is_refused_with_its_line(value: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(policy_text(f"part_action = {value}"), "donetsk.toml")
    [problem] = info.value.problems
    assert (problem.path, problem.line) == ("restriction[0].part_action", 9)
    assert "is not one of allow, warn, lock" in problem.message


def test_part_action_problems_are_listed_with_the_others() -> None:
    text = policy_text('part_action = "explode"').replace('action = "lock"', 'action = "lokc"')
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    paths = {p.path for p in info.value.problems}
    assert paths == {"restriction[0].action", "restriction[0].part_action"}
