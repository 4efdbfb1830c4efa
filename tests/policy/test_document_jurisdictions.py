"""A jurisdiction written as a table: only its own keys, each of the right type."""

from __future__ import annotations

import pytest

from regionlock.policies import PolicyError, parse_policy

RULE = """\
[policy]
id = "p"
version = "1"

[[restriction]]
id = "r"
action = "lock"
jurisdictions = [{{ code = "UA-14", from = 2022-02-21, {extra} }}]
"""


def problems(extra: str) -> dict[str, tuple[int | None, str]]:
    with pytest.raises(PolicyError) as info:
        parse_policy(RULE.format(extra=extra))
    return {p.path: (p.line, p.message) for p in info.value.problems}


def test_every_key_of_a_jurisdiction_table_is_accepted() -> None:
    text = RULE.format(extra='until = 2030-01-01, extent = "part", name = "D", instrument = "I"')
    [j] = parse_policy(text).restrictions[0].jurisdictions
    assert (j.extent, j.name, j.instrument) == ("part", "D", "I")


def test_a_misspelt_extent_is_refused_not_taken_as_whole() -> None:
    """`extnt = "part"` ignored would make the code whole: a lock over all of Donetsk oblast
    for a rule meant to warn there."""
    found = problems('extnt = "part"')
    assert found.keys() == {"restriction[0].jurisdictions[0].extnt"}
    line, message = found["restriction[0].jurisdictions[0].extnt"]
    assert line == 8 and "unknown key" in message


@pytest.mark.parametrize("key", ["name", "instrument"])
def test_name_and_instrument_must_be_text(key: str) -> None:
    found = problems(f"{key} = 42")
    assert found.keys() == {f"restriction[0].jurisdictions[0].{key}"}
    assert "must be a string" in found[f"restriction[0].jurisdictions[0].{key}"][1]
