"""Text fields (description, message, contact) are checked like every other key."""

from __future__ import annotations

import pytest

from regionlock.policies import PolicyError, parse_policy

HEAD = '[policy]\nid = "p"\nversion = "1"\n'
RULE = '[[restriction]]\nid = "r"\naction = "lock"\njurisdictions = ["IR"]\nfrom = 2021-09-15\n'
ACTIVATION = '[[activation]]\nid = "a"\ncountries = ["EEA"]\naction = "lock"\n'


def problems(text: str) -> dict[str, tuple[int | None, str]]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    return {p.path: (p.line, p.message) for p in info.value.problems}


@pytest.mark.parametrize(
    ("line", "path", "message"),
    [
        ("message = 42", "policy.message", "must be a string"),
        ("contact = ['a@example.com']", "policy.contact", "must be a string"),
        ("description = true", "policy.description", "must be a string"),
        (f'description = "{"d" * 3000}"', "policy.description", "3000 characters; at most 2000"),
        (f'message = "{"m" * 351}"', "policy.message", "351 characters; at most 350"),
        (f'contact = "{"c" * 201}"', "policy.contact", "201 characters; at most 200"),
    ],
)
def test_policy_text_fields_are_checked(line: str, path: str, message: str) -> None:
    found = problems(HEAD + line + "\n" + RULE)
    assert found.keys() == {path}
    assert found[path][0] == 4
    assert message in found[path][1]


def test_text_at_the_limits_is_accepted() -> None:
    text = HEAD + f'description = "{"d" * 2000}"\nmessage = "{"m" * 350}"\n'
    text += f'contact = "{"c" * 200}"\n'
    policy = parse_policy(text + RULE)
    assert (len(policy.description), len(policy.message.default), len(policy.contact)) == (
        2000,
        350,
        200,
    )


def test_text_problems_are_listed_with_the_others() -> None:
    text = HEAD + "message = 42\n" + RULE.replace('"lock"', '"lokc"')
    assert problems(text).keys() == {"policy.message", "restriction[0].action"}


def test_a_rule_with_a_bad_action_still_has_its_other_keys_checked() -> None:
    rule = RULE.replace('"lock"', '"lokc"') + "message = 7\nwarn_days = -1\n"
    rule += "[restriction.scope]\nmodels = [1]\n"
    activation = ACTIVATION.replace('"lock"', '"block"') + f'contact = "{"c" * 201}"\n'
    assert problems(HEAD + rule + activation).keys() == {
        "restriction[0].action",
        "restriction[0].message",
        "restriction[0].warn_days",
        "restriction[0].scope.models",
        "activation[0].action",
        "activation[0].contact",
    }
