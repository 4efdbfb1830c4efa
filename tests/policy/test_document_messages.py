"""A message in a policy document: a string (English) or a table of language tag -> text."""

from __future__ import annotations

import pytest

from regionlock.policies import PolicyError, example_policy, parse_policy

HEAD = '[policy]\nid = "p"\nversion = "1"\n'
RULE = '[[restriction]]\nid = "r"\naction = "lock"\njurisdictions = ["IR"]\nfrom = 2021-09-15\n'
ACTIVATION = '[[activation]]\nid = "a"\ncountries = ["EEA"]\naction = "lock"\n'
LANGUAGES = ("en", "fa", "ar", "es", "ko", "ru", "uk")


def problems(text: str) -> dict[str, tuple[int | None, str]]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    return {p.path: (p.line, p.message) for p in info.value.problems}


def test_a_plain_string_is_english() -> None:
    policy = parse_policy(HEAD + 'message = "Not here."\n' + RULE)
    assert policy.message.texts == (("en", "Not here."),)


@pytest.mark.parametrize(
    "written",
    [
        'message = { fa = "اینجا نه.", en = "Not here." }\n',
        'message.fa = "اینجا نه."\nmessage.en = "Not here."\n',
        '[policy.message]\nfa = "اینجا نه."\nen = "Not here."\n',
    ],
    ids=["inline", "dotted", "table"],
)
def test_a_table_of_languages_in_any_toml_form(written: str) -> None:
    policy = parse_policy(HEAD + written + RULE)
    # English is the default wherever it is written.
    assert policy.message.texts == (("en", "Not here."), ("fa", "اینجا نه."))


def test_without_english_the_first_language_is_the_default() -> None:
    policy = parse_policy(HEAD + 'message = { fa = "اینجا نه.", ar = "ليس هنا." }\n' + RULE)
    assert policy.message.languages == ("fa", "ar")
    assert policy.message.choose("de-DE").text == "اینجا نه."


def test_rules_and_activation_rules_take_tables_too() -> None:
    rule = RULE + 'message = { en = "Rule.", es = "Regla." }\n'
    activation = ACTIVATION + '[activation.message]\nen = "Act."\nko = "활성."\n'
    policy = parse_policy(HEAD + rule + activation)
    assert policy.restrictions[0].message.choose("es-CU").text == "Regla."
    assert policy.activation_rules[0].message.choose("ko-KP").text == "활성."


@pytest.mark.parametrize(
    ("written", "path", "problem"),
    [
        ('message = { EN = "x" }', "policy.message.EN", "'EN' is not a language tag"),
        ('message = { fa_IR = "x" }', "policy.message.fa_IR", "is not a language tag"),
        ('message = { en = "" }', "policy.message.en", "is empty"),
        ('message = { en = "x", fa = 3 }', "policy.message.fa", "must be a string"),
        ("message = {}", "policy.message", "names no language"),
        ('message = ["x"]', "policy.message", "must be a string or a table"),
        (f'message = {{ en = "{"m" * 351}" }}', "policy.message.en", "at most 350"),
    ],
)
def test_a_bad_message_table_is_refused_naming_the_field(
    written: str, path: str, problem: str
) -> None:
    found = problems(HEAD + written + "\n" + RULE)
    assert found.keys() == {path}
    line, message = found[path]
    assert line == 4 and problem in message


def test_problems_in_several_messages_are_all_listed() -> None:
    rule = RULE + 'message = { en = "ok", fa = "" }\n'
    activation = ACTIVATION + '[activation.message]\nen = "ok"\nRU = "x"\n'
    found = problems(HEAD + "message.ar = 5\n" + rule + activation)
    assert found.keys() == {
        "policy.message.ar",
        "restriction[0].message.fa",
        "activation[0].message.RU",
    }
    assert found["policy.message.ar"][0] == 4  # a dotted key is found on its line


@pytest.mark.parametrize(
    "name", ["gray-market-2021", "gray-market-2021-lifted", "us-ofac", "eu", "uk"]
)
def test_the_example_presets_speak_the_languages_of_their_places(name: str) -> None:
    message = example_policy(name).message
    assert message.languages == LANGUAGES
    texts = [text for _, text in message.texts]
    assert len(set(texts)) == len(texts)  # every language translated, none copied


def test_a_diff_names_each_language_that_changed() -> None:
    from regionlock.services.policy_tools import diff_policies

    old = parse_policy(HEAD + 'message = { en = "Not here.", fa = "اینجا نه." }\n' + RULE)
    new = parse_policy(HEAD + 'message = { fa = "اینجا نه.", ar = "ليس هنا." }\n' + RULE)
    assert diff_policies(old, new) == [
        "~ policy.message.en: 'Not here.' -> ''",
        "~ policy.message.ar: '' -> 'ليس هنا.'",
        "~ policy.message default: en -> fa",
    ]
    assert diff_policies(old, old) == []
