"""Policy documents: the shipped examples are valid; bad ones list every problem with its line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from regionlock.domain.policy import Action, OfflineAction
from regionlock.policies import PolicyError, load_policy, parse_policy, presets

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


@pytest.mark.parametrize(
    "name", ["us-ofac", "eu", "uk", "gray-market-2021", "gray-market-2021-lifted"]
)
def test_examples_are_valid(name: str) -> None:
    policy = load_policy(EXAMPLES / f"{name}.toml")
    assert policy.restrictions
    assert all(r.jurisdictions for r in policy.restrictions)


def test_presets_carry_their_dates() -> None:
    ofac = {j.code: j for j in presets()["us-ofac"].jurisdictions}
    assert ofac["SY"].end == date(2025, 7, 1)
    assert ofac["SD"].end == date(2017, 10, 12)
    assert ofac["IR"].end is None
    assert ofac["UA-43"].origin == "us-ofac"


def test_gray_market_policy_shape() -> None:
    p = load_policy(EXAMPLES / "gray-market-2021.toml")
    block = p.restrictions[0]
    assert block.action is Action.LOCK
    assert {j.code for j in block.jurisdictions} == {"IR", "SY", "CU", "KP", "SD", "UA-43", "UA-40"}
    assert all(j.start == date(2021, 9, 15) for j in block.jurisdictions)
    assert block.presence.min_days == 3 and block.presence.window_days == 14
    assert p.lease.offline_action is OfflineAction.WARN
    assert p.regimes == ("us-ofac",)


BAD = """\
[policy]
id = "bad policy"
version = "1"

[[restriction]]
id = "r1"
action = "block"
jurisdictions = ["IR", "XX-99", "ZZ"]

[restriction.presence]
min_days = 20
window_days = 14

[[restriction]]
id = "r1"
action = "lock"
regimes = ["un"]

[[exemption]]
reason = "appeal"
"""


def test_bad_policy_lists_every_problem_with_lines() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(BAD, "bad.toml")
    problems = {(p.path, p.line) for p in info.value.problems}
    text = str(info.value)
    assert ("policy.id", 2) in problems
    assert ("restriction[0].action", 7) in problems
    assert "'block' is not one of allow, warn, lock" in text
    assert "XX-99 is not a known ISO 3166 code" in text
    assert "ZZ is not a known ISO 3166 code" in text
    assert ("restriction[0].presence.min_days", 11) in problems
    assert ("restriction[1].id", 15) in problems  # duplicate id
    assert "unknown regime preset 'un'" in text
    assert "name exactly one of device or batch" in text


def test_toml_syntax_error_is_reported() -> None:
    with pytest.raises(PolicyError, match="not valid TOML"):
        parse_policy("[policy\nid = 1", "broken.toml")


def test_unknown_keys_are_errors_not_ignored() -> None:
    text = '[policy]\nid = "p"\nversion = "1"\nmin_lock_confidense = 0.5\n'
    with pytest.raises(PolicyError, match="min_lock_confidense: unknown key"):
        parse_policy(text)


def test_dates_must_be_dates() -> None:
    text = (
        '[policy]\nid = "p"\nversion = "1"\n[[restriction]]\nid = "r"\naction = "lock"\n'
        'jurisdictions = [{code = "IR", from = "2021-09-15"}]\n'
    )
    with pytest.raises(PolicyError, match="must be a date"):
        parse_policy(text)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_policy(tmp_path / "nope.toml")
