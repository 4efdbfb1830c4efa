"""Sections of a policy document: rules are arrays of tables; nothing unknown is ignored."""

from __future__ import annotations

import pytest

from regionlock.policies import PolicyError, parse_policy

HEAD = '[policy]\nid = "p"\nversion = "1"\n\n'


def problems(text: str) -> dict[str, tuple[int | None, str]]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    return {p.path: (p.line, p.message) for p in info.value.problems}


@pytest.mark.parametrize(
    ("section", "body"),
    [
        ("restriction", 'id = "r"\naction = "lock"\njurisdictions = ["IR"]\nfrom = 2021-09-15\n'),
        ("activation", 'id = "a"\ncountries = ["EEA"]\naction = "lock"\n'),
        ("exemption", 'device = "356938035643809"\nreason = "appeal"\n'),
    ],
)
def test_a_rule_written_as_a_single_table_is_refused(section: str, body: str) -> None:
    assert parse_policy(f"{HEAD}[[{section}]]\n{body}")  # the right way
    found = problems(f"{HEAD}[{section}]\n{body}")
    assert found.keys() == {section}
    line, message = found[section]
    assert line == 5
    assert f"write [[{section}]]" in message


@pytest.mark.parametrize("value", ['"IR"', "1", "true", "{ id = 'r' }"])
def test_a_rule_section_given_as_a_plain_value_is_refused(value: str) -> None:
    text = f"restriction = {value}\n{HEAD}"
    line, message = problems(text)["restriction"]
    assert line == 1
    assert "write [[restriction]]" in message


def test_a_single_table_with_its_subtables_is_refused() -> None:
    text = HEAD + (
        '[restriction]\nid = "r"\naction = "lock"\njurisdictions = ["IR"]\nfrom = 2021-09-15\n'
        "[restriction.presence]\nmin_days = 3\n"
    )
    assert "restriction" in problems(text)


def test_an_empty_rule_list_is_fine() -> None:
    policy = parse_policy("restriction = []\nexemption = []\n" + HEAD)
    assert policy.restrictions == () and policy.exemptions == ()


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (HEAD + '[[restrictions]]\nid = "r"\n', "restrictions"),  # plural: a typo
        (HEAD + "[leases]\nvalid_days = 3\n", "leases"),
        ("enabled = false\n" + HEAD, "enabled"),
    ],
)
def test_unknown_top_level_tables_and_keys_are_refused(text: str, path: str) -> None:
    found = problems(text)
    assert found.keys() == {path}
    assert "unknown key" in found[path][1]


@pytest.mark.parametrize("section", ["policy", "lease"])
def test_a_table_written_as_an_array_is_refused(section: str) -> None:
    text = HEAD if section == "lease" else ""
    text += f'[[{section}]]\nid = "p"\n'
    assert problems(text).get(section, (None, ""))[1] == "must be a table"
