"""Messages in the owner's language: tags, selection and fallback, as plain values."""

# Cyrillic text is meant here, not Latin look-alikes.
# ruff: noqa: RUF001

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regionlock.domain.decision import PresenceHistory, decide
from regionlock.domain.errors import InvalidInput
from regionlock.domain.location import LocationEstimate
from regionlock.domain.messages import (
    _TAG_HELP,
    Choice,
    Message,
    is_language_tag,
    language_tag,
    message_problems,
    message_text,
    place_languages,
)
from regionlock.domain.policy import Action, DeviceFacts, Jurisdiction, Policy, Restriction

TEXTS = {
    "en": "Not for this territory.",
    "fa": "برای این منطقه نیست.",
    "ar": "ليس لهذه المنطقة.",
    "es-ES": "No es para este territorio.",
    "ru": "Не для этой территории.",
    "uk": "Не для цієї території.",
}
MESSAGE = Message.parse(TEXTS)


@pytest.mark.parametrize(
    ("locale", "tag"),
    [
        ("fa-IR", "fa-IR"),
        ("fa_IR", "fa-IR"),
        ("fa_IR.UTF-8", "fa-IR"),
        ("sr_RS@latin", "sr-RS"),
        ("EN-us", "en-US"),
        ("zh_hant_tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("ar", "ar"),
        ("C", None),
        ("POSIX", None),
        ("C.UTF-8", None),
    ],
)
def test_a_device_locale_becomes_a_language_tag(locale: str, tag: str | None) -> None:
    assert language_tag(locale) == tag


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("fa-IR", "fa"),  # the language, when the region has no text of its own
        ("fa_IR.UTF-8", "fa"),
        ("ar", "ar"),
        ("ar-SY", "ar"),
        ("es-CU", "es-ES"),  # any text in the language beats the default
        ("es-ES", "es-ES"),
        ("en-US", "en"),
        ("ru-UA", "ru"),  # the owner's language, not the place's
        ("uk-UA", "uk"),
        ("az-IR", "fa"),  # no Azerbaijani: the language of the locale's region
        ("ckb-IR", "fa"),
        ("pt-BR", "en"),  # nothing of the language or the region: the default
        ("de-DE", "en"),
        ("zh-Hant-TW", "en"),
    ],
)
def test_the_locale_chooses_the_language(locale: str, language: str) -> None:
    # In Tehran throughout: the place matters only when the device sent no locale.
    chosen = MESSAGE.choose(locale, place_languages("IR", ["IR-23"]))
    assert chosen.language == language
    assert chosen.text == TEXTS[language]


def test_an_exact_tag_wins_over_its_language() -> None:
    message = Message.parse({"en": "x", "es": "general", "es-CU": "cubano"})
    assert message.choose("es-CU").text == "cubano"
    assert message.choose("es-MX").text == "general"
    assert message.choose("es").text == "general"


@pytest.mark.parametrize(
    ("country", "subdivisions", "language"),
    [
        ("IR", ["IR-23"], "fa"),  # a device in Tehran is told in Persian
        ("SY", [], "ar"),
        ("SD", [], "ar"),
        ("CU", [], "es-ES"),
        ("KP", [], "en"),  # no Korean text in this message: the default
        ("UA", ["UA-30"], "uk"),
        ("UA", ["UA-43"], "ru"),  # Crimea: Russian first, then Ukrainian
        ("UA", ["UA-40", "UA-43"], "ru"),  # narrowed to Sevastopol or Crimea
        ("UA", ["UA-14"], "uk"),  # Donetsk oblast, covered only in part: Ukrainian first
        ("DE", [], "en"),
        (None, [], "en"),  # nowhere known
    ],
)
def test_without_a_locale_the_place_chooses(
    country: str | None, subdivisions: list[str], language: str
) -> None:
    assert MESSAGE.choose(None, place_languages(country, subdivisions)).language == language
    assert MESSAGE.choose("C.UTF-8", place_languages(country, subdivisions)).language == language


def test_crimea_falls_back_to_ukrainian_when_there_is_no_russian() -> None:
    message = Message.parse({"en": "x", "uk": "у"})
    assert message.choose(None, place_languages("UA", ["UA-43"])).language == "uk"


def test_the_default_is_english_else_the_first_given() -> None:
    assert Message.parse({"fa": "ف", "en": "e"}).languages == ("en", "fa")
    assert Message.parse({"fa": "ف", "ar": "ع"}).choose("de").text == "ف"
    assert Message.parse("plain").texts == (("en", "plain"),)
    assert not Message.parse("") and Message.parse("").choose("fa").text == ""


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({}, ("", "names no language")),
        ({"EN": "x"}, ("EN", "not a language tag")),
        ({"fa-ir": "x"}, ("fa-ir", "not a language tag")),
        ({"english": "x"}, ("english", "not a language tag")),
        ({"en": ""}, ("en", "is empty")),
        ({"en": "  "}, ("en", "is empty")),
        ({"en": 3}, ("en", "must be a string")),
        ({"en": "x" * 351}, ("en", "351 characters; at most 350")),
        ({"en": "a\x00b"}, ("en", "NUL")),
        (["en", "x"], ("", "must be a string or a table")),
        (42, ("", "must be a string or a table")),
        (
            {f"a{chr(97 + i)}{chr(97 + j)}": "x" for i in range(6) for j in range(6)},
            ("", "at most"),
        ),
    ],
)
def test_bad_messages_are_named(value: object, problem: tuple[str, str]) -> None:
    found = message_problems(value)
    assert len(found) == 1
    assert found[0][0] == problem[0] and problem[1] in found[0][1]
    with pytest.raises(InvalidInput, match=r"^campaign\.message"):
        Message.parse(value, "campaign.message")


def test_every_problem_is_listed() -> None:
    with pytest.raises(InvalidInput) as info:
        Message.parse({"en": "", "FA": "x", "ar": 1}, "policy.message")
    assert str(info.value) == (
        "policy.message.en: is empty: leave the language out instead; "
        "policy.message.FA: 'FA' is not a language tag: a lower-case language, optional "
        "Script and REGION, such as en, fa, es-419, zh-Hant; "
        "policy.message.ar: must be a string"
    )


# -- properties ---------------------------------------------------------------------------------

tags = st.from_regex(r"[a-z]{2,3}(-[A-Z]{2})?", fullmatch=True)
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1).filter(
    str.strip
)
messages = st.dictionaries(tags, texts.map(lambda t: t[:350]), min_size=1, max_size=8)
locales = st.one_of(
    st.none(),
    tags,
    st.from_regex(r"[A-Za-z]{1,9}([-_][A-Za-z0-9]{1,8}){0,3}(\.UTF-8)?", fullmatch=True),
)
places = st.lists(st.sampled_from(["IR", "SY", "CU", "KP", "UA", "UA-43", "DE"]), max_size=3)


@given(messages, locales, places)
def test_a_choice_is_always_one_of_the_texts(
    table: dict[str, str], locale: str | None, place: list[str]
) -> None:
    message = Message.parse(table)
    chosen = message.choose(locale, place_languages(place[0] if place else None, place[1:]))
    assert table[chosen.language] == chosen.text


@given(messages, tags)
def test_a_locale_with_its_own_text_gets_it(table: dict[str, str], tag: str) -> None:
    message = Message.parse({**table, tag: "exact"})
    assert message.choose(tag.replace("-", "_") + ".UTF-8").text == "exact"


@given(messages)
def test_a_message_survives_its_json_form(table: dict[str, str]) -> None:
    message = Message.parse(table)
    assert Message.parse(message.to_json()) == message
    assert is_language_tag(message.languages[0])
    assert message.languages[0] == ("en" if "en" in table else next(iter(table)))


# -- in the decision ----------------------------------------------------------------------------

TEHRAN = LocationEstimate("IR", "IR-23", 0.95, (), ())
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def policy(rule_message: Message | str = "") -> Policy:
    rule = Restriction(
        "block",
        (Jurisdiction("IR", "Iran", date(2021, 9, 15)),),
        Action.LOCK,
        message=rule_message,
    )
    return Policy("p", "1", "", (rule,), message=MESSAGE)


@pytest.mark.parametrize(
    ("locale", "language"), [("fa-IR", "fa"), (None, "fa"), ("en-US", "en"), ("xx-YY", "en")]
)
def test_the_verdict_carries_the_chosen_text_and_its_language(
    locale: str | None, language: str
) -> None:
    device = DeviceFacts("d", first_country="IR", first_subdivision="IR-23")
    v = decide(device, TEHRAN, PresenceHistory(), policy(), NOW, locale=locale)
    assert v.action is Action.LOCK
    assert (v.language, v.message) == (language, TEXTS[language])


def test_a_rule_message_replaces_the_policys_in_every_language() -> None:
    device = DeviceFacts("d", first_country="IR", first_subdivision="IR-23")
    v = decide(device, TEHRAN, PresenceHistory(), policy("Rule text."), NOW, locale="fa-IR")
    assert (v.language, v.message) == ("en", "Rule text.")


def test_an_allow_shows_nothing() -> None:
    berlin = LocationEstimate("DE", None, 0.95, (), ())
    v = decide(DeviceFacts("d"), berlin, PresenceHistory(), policy(), NOW, locale="fa-IR")
    assert (v.action, v.language, v.message) == (Action.ALLOW, "", "")


# -- kept as text (a campaign's message, a device's lock) ---------------------------------------


@given(st.one_of(messages, st.builds(lambda t: {"en": t}, texts.map(lambda t: t[:350]))))
def test_a_table_survives_its_text_form(table: dict[str, str]) -> None:
    message = Message.parse(table)
    assert Message.from_text(message.to_text()) == message
    assert Message.from_text("Call us.").to_text() == "Call us."


@pytest.mark.parametrize(
    "text",
    [
        "Call us.",
        "{not json",
        '{"EN": "x"}',  # not a table of language tags: an operator's own words
        '{"en": ""}',
        "[1, 2]",
        pytest.param('{"a":' + "[" * 100_000, id="nested-past-the-stack"),
    ],
)
def test_other_text_is_shown_as_written_in_no_known_language(text: str) -> None:
    chosen = Message.from_text(text).choose("fa-IR", ("fa",))
    assert (chosen.language, chosen.text) == ("", text)


def test_an_operators_table_is_checked_and_kept_as_text() -> None:
    assert message_text(None) is None and message_text("") is None
    assert message_text("Call us.") == "Call us."
    kept = message_text({"fa": "تماس بگیرید.", "en": "Call us."})
    assert kept == '{"en": "Call us.", "fa": "تماس بگیرید."}'
    with pytest.raises(InvalidInput, match=r"^message\.FA: 'FA' is not a language tag"):
        message_text({"FA": "x"})
    with pytest.raises(InvalidInput, match="names no language"):
        message_text({})


# -- Found by mutation testing (docs/test-quality.md, "domain/appeal.py and messages.py") -------
# Each test below failed on a mutant of domain/messages.py that the tests above let live.


def test_a_locale_keeps_its_first_part_before_a_dot_or_an_at_sign() -> None:
    # The encoding and modifier are cut at the first "." and the first "@", not the last.
    assert language_tag("fa_IR.UTF-8.x") == "fa-IR"
    assert language_tag("fa_IR@euro@x") == "fa-IR"


def test_a_primary_language_has_two_or_three_letters() -> None:
    assert language_tag("fas_IR") == "fas-IR"
    assert language_tag("Latn_IR") is None  # four letters: a script, never a language
    assert language_tag("Latn") is None


def test_a_script_alone_or_before_a_numeric_region_is_kept() -> None:
    assert language_tag("zh_Hant") == "zh-Hant"
    assert language_tag("zh_hant_419") == "zh-Hant-419"


def test_a_refused_message_is_named_and_its_problems_read_exactly() -> None:
    with pytest.raises(InvalidInput) as plain:
        Message.parse("a\x00b")
    assert str(plain.value) == "message: contains a NUL character"
    with pytest.raises(InvalidInput) as table:
        Message.parse({"en": "x" * 351, "FA": "y"})
    assert str(table.value) == (
        "message.en: is 351 characters; at most 350; "
        f"message.FA: 'FA' is not a language tag: {_TAG_HELP}"
    )
    with pytest.raises(InvalidInput) as named:
        message_text({"fa": "x" * 351}, "campaign.message")
    assert str(named.value) == "campaign.message.fa: is 351 characters; at most 350"


def test_a_message_is_bounded_by_the_limit_it_is_given() -> None:
    assert Message.parse("x" * 20, limit=20).default == "x" * 20
    with pytest.raises(InvalidInput, match=r"^message: is 21 characters; at most 20$"):
        Message.parse("x" * 21, limit=20)


def test_only_a_single_english_or_unknown_text_reads_out_as_a_string() -> None:
    assert Message.plain("Call us.").to_json() == "Call us."
    assert Message.plain("Call us.", "").to_json() == "Call us."
    assert Message.plain("تماس بگیرید.", "fa").to_json() == {"fa": "تماس بگیرید."}
    assert Message.plain("en", "fa").to_json() == {"fa": "en"}  # the text is not the tag
    two = Message.parse({"en": "Call us.", "fa": "تماس بگیرید."})
    assert two.to_json() == {"en": "Call us.", "fa": "تماس بگیرید."}


def test_a_locale_finds_its_shorter_tag_before_another_text_in_its_language() -> None:
    message = Message.parse({"en": "e", "zh-Hans": "simplified", "zh-Hant": "traditional"})
    assert message.choose("zh_Hant_TW") == Choice("zh-Hant", "traditional")
    assert message.choose("zh_Hans_SG") == Choice("zh-Hans", "simplified")


def test_the_region_of_a_locale_with_a_script_picks_its_languages() -> None:
    message = Message.parse({"en": "e", "fa": "ف"})
    # az-Latn-IR: no Azerbaijani text, so the languages of IR, its region, come next.
    assert message.choose("az_Latn_IR") == Choice("fa", "ف")
    assert message.choose("az_IR") == Choice("fa", "ف")
    assert message.choose("az_Latn") == Choice("en", "e")


def test_a_language_finds_a_text_tagged_with_a_script_and_a_region() -> None:
    message = Message.parse({"en": "e", "zh-Hant-TW": "traditional"})
    assert message.choose("zh_CN") == Choice("zh-Hant-TW", "traditional")


def test_message_problems_read_exactly() -> None:
    assert message_problems("a\x00b") == [("", "contains a NUL character")]
    assert message_problems(42) == [
        ("", 'must be a string or a table of language tag -> text: { en = "...", fa = "..." }')
    ]
    assert message_problems({}) == [("", "names no language: give at least the default text (en)")]
    # Every problem is listed, a text that is not a string included.
    assert message_problems({"en": 3, "fa": ""}) == [
        ("en", "must be a string"),
        ("fa", "is empty: leave the language out instead"),
    ]


def test_a_message_has_at_most_32_languages() -> None:
    tags = [f"a{chr(97 + i)}{chr(97 + j)}" for i in range(6) for j in range(6)]
    assert message_problems(dict.fromkeys(tags[:32], "x")) == []
    assert message_problems(dict.fromkeys(tags[:33], "x")) == [("", "has 33 languages; at most 32")]


def test_a_bad_tag_is_named_by_itself_only_when_short_ascii_text() -> None:
    help_ = f"is not a language tag: {_TAG_HELP}"
    twenty, twenty_one = "X" * 20, "X" * 21
    assert message_problems({twenty: "x"}) == [(twenty, f"'{twenty}' {help_}")]
    assert message_problems({twenty_one: "x"}) == [("?", f"'{twenty_one}' {help_}")]
    assert message_problems({"فا": "x"}) == [("?", f"'فا' {help_}")]
    assert message_problems({5: "x"}) == [("?", f"5 {help_}")]
    long = "X" * 60
    assert message_problems({long: "x"}) == [("?", f"'{'X' * 39} {help_}")]
