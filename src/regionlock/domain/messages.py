"""What a device shows its owner, in several languages, and which language a device is told in.

A `Message` pairs language tags with texts; its first pair is the default. `Message.choose`
picks the text for a device from the `locale` it reported (or an appeal's `language`) and,
when it reported none, from the place it is in. The order, and why (docs/policy.md,
"Messages in the owner's language"):

1. the locale's own tag, then its shorter forms (`zh-Hant-TW`, `zh-Hant`, `zh`);
2. any text in the locale's language (`es-CU` reads `es-ES`);
3. the languages of the locale's region (`az-IR` reads Persian before English);
4. with no locale at all, the languages of the place the device is in (`PLACE_LANGUAGES`):
   a phone in Tehran that says nothing of its owner's language is told in Persian;
5. the default.

A locale in a language the message lacks (`de-DE` in Tehran) falls back to the default, not
to the place's language: its owner chose a language, and most likely is not from there.
Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import text_problem

DEFAULT_LANGUAGE = "en"
UNKNOWN_LANGUAGE = ""  # a text whose language nobody stated: an operator's own words
MAX_LANGUAGES = 32
MAX_TEXT = 350  # characters per language: what a lock screen shows without scrolling

# BCP 47, the subset a message needs: a language (ISO 639, lower case), an optional script
# (ISO 15924, title case) and an optional region (ISO 3166-1 upper case, or UN M.49 digits).
_TAG_RE = re.compile(r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|[0-9]{3}))?")
_SUBTAG_SPLIT = re.compile(r"[-_]")

# The languages a person in each place most likely reads, best first: the places of the
# shipped regime presets and example policies. Used only for a device that sent no locale.
# Ukraine: Ukrainian, the state language. Crimea and Sevastopol: Russian first, which most
# people there read (Russian was the first language of 77% and 91% at the 2001 census),
# then Ukrainian. The oblasts the presets cover only in part (Donetsk, Luhansk, Zaporizhzhia,
# Kherson): Ukrainian first, since the device may well be in the government-controlled part,
# then Russian. Sudan: Arabic (English is also official, and is the default anyway).
PLACE_LANGUAGES: Mapping[str, tuple[str, ...]] = {
    "IR": ("fa",),
    "SY": ("ar",),
    "SD": ("ar",),
    "CU": ("es",),
    "KP": ("ko",),
    "UA": ("uk",),
    "UA-43": ("ru", "uk"),
    "UA-40": ("ru", "uk"),
    "UA-14": ("uk", "ru"),
    "UA-09": ("uk", "ru"),
    "UA-23": ("uk", "ru"),
    "UA-65": ("uk", "ru"),
}


def is_language_tag(tag: str) -> bool:
    """Whether `tag` is a language tag a message may use: `fa`, `fa-IR`, `zh-Hant`, `es-419`."""
    return _TAG_RE.fullmatch(tag) is not None


def language_tag(locale: str) -> str | None:
    """The BCP 47 tag of a device locale (`fa_IR.UTF-8` -> `fa-IR`, `EN-us` -> `en-US`), or
    None when it names no language (`C`, `POSIX`). Unknown trailing subtags are dropped."""
    base = locale.strip().split(".", 1)[0].split("@", 1)[0]
    parts = _SUBTAG_SPLIT.split(base)
    primary = parts[0].lower()
    if not (2 <= len(primary) <= 3 and primary.isascii() and primary.isalpha()):
        return None
    out = [primary]
    rest = parts[1:]
    if rest and len(rest[0]) == 4 and rest[0].isascii() and rest[0].isalpha():
        out.append(rest[0].title())
        rest = rest[1:]
    if rest and len(rest[0]) == 2 and rest[0].isascii() and rest[0].isalpha():
        out.append(rest[0].upper())
    elif rest and len(rest[0]) == 3 and rest[0].isascii() and rest[0].isdigit():
        out.append(rest[0])
    return "-".join(out)


def place_languages(country: str | None, subdivisions: Sequence[str] = ()) -> tuple[str, ...]:
    """The languages of a place, best first: its subdivisions' (in order), then its country's."""
    found: list[str] = []
    for code in (*subdivisions, country):
        for language in PLACE_LANGUAGES.get(code or "", ()):
            if language not in found:
                found.append(language)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Choice:
    """The text a device is shown and its language tag (empty: no text)."""

    language: str
    text: str


@dataclass(frozen=True, slots=True)
class Message:
    """A text in one or more languages: (tag, text) pairs, the default first. Built by
    `Message.plain` or `Message.parse`, which check it; empty when there is no message."""

    texts: tuple[tuple[str, str], ...] = ()

    @classmethod
    def plain(cls, text: str, language: str = DEFAULT_LANGUAGE) -> Message:
        """One text in one language (English unless told); an empty text is no message."""
        return cls(((language, text),)) if text else cls()

    @classmethod
    def parse(cls, value: object, what: str = "message", *, limit: int = MAX_TEXT) -> Message:
        """A plain string (English) or a mapping of language tag -> text; InvalidInput naming
        `what` and the language for everything wrong with it."""
        problems = message_problems(value, limit=limit)
        if problems:
            raise InvalidInput(
                "; ".join(f"{what}.{key}: {p}" if key else f"{what}: {p}" for key, p in problems)
            )
        return cls.from_checked(value)

    @classmethod
    def from_checked(cls, value: object) -> Message:
        """The message of a value `message_problems` found nothing wrong with."""
        if isinstance(value, str):
            return cls.plain(value)
        assert isinstance(value, Mapping)
        pairs = [(str(k), str(v)) for k, v in value.items()]
        default = next((p for p in pairs if p[0] == DEFAULT_LANGUAGE), pairs[0])
        return cls((default, *(p for p in pairs if p is not default)))

    def __bool__(self) -> bool:
        return bool(self.texts)

    def __str__(self) -> str:
        return self.default

    @property
    def default(self) -> str:
        """The default text ("" when there is no message)."""
        return self.texts[0][1] if self.texts else ""

    @property
    def languages(self) -> tuple[str, ...]:
        """The language tags, the default first."""
        return tuple(tag for tag, _ in self.texts)

    def to_json(self) -> str | dict[str, str]:
        """A plain string for a message in one text, English or of no known language (as
        before messages had languages), else the tags and texts, the default first."""
        if len(self.texts) == 1 and self.texts[0][0] in (DEFAULT_LANGUAGE, UNKNOWN_LANGUAGE):
            return self.default
        return dict(self.texts)

    def to_text(self) -> str:
        """The message as one text, for stores that keep a message as text (a campaign's, a
        device's lock): a text of no known language as itself, else the JSON object of its
        tags and texts, which `from_text` reads back."""
        if len(self.texts) == 1 and self.texts[0][0] == UNKNOWN_LANGUAGE:
            return self.default
        return json.dumps(dict(self.texts), ensure_ascii=False)

    @classmethod
    def from_text(cls, text: str) -> Message:
        """A message kept as text (`to_text`): a JSON object of language tags -> texts is
        that table; any other text is one text whose language is not known (an operator's
        own words are shown as written)."""
        if text.startswith("{"):
            try:
                table = json.loads(text)
            except (ValueError, RecursionError):  # not JSON, or nested past the stack
                table = None
            if isinstance(table, dict) and not message_problems(table, limit=MAX_TEXT):
                return cls.from_checked(table)
        return cls.plain(text, UNKNOWN_LANGUAGE)

    def choose(self, locale: str | None, place: Iterable[str] = ()) -> Choice:
        """The text for a device with this locale (None: it sent none) in a place whose
        languages are `place` (`place_languages`). See the module's docstring for the order."""
        if not self.texts:
            return Choice("", "")
        tag = language_tag(locale) if locale else None
        if tag is None:
            wanted = tuple(place)
        else:
            parts = tag.split("-")
            for n in range(len(parts), 1, -1):  # the tag, then its shorter forms
                found = self._text("-".join(parts[:n]), exact=True)
                if found is not None:
                    return found
            region = parts[-1] if len(parts) > 1 and not parts[-1].istitle() else ""
            wanted = (parts[0], *PLACE_LANGUAGES.get(region, ()))
        for language in wanted:
            found = self._text(language)
            if found is not None:
                return found
        return Choice(*self.texts[0])

    def _text(self, language: str, *, exact: bool = False) -> Choice | None:
        """The text tagged `language`, else (unless `exact`) the first in that language with
        a script or region (`es` finds `es-CU`)."""
        for tag, text in self.texts:
            if tag == language:
                return Choice(tag, text)
        if not exact:
            for tag, text in self.texts:
                if tag.split("-", 1)[0] == language:
                    return Choice(tag, text)
        return None


def message_text(value: str | Mapping[str, str] | None, what: str = "message") -> str | None:
    """A message as an operator gives it (a campaign's): a text, kept as written, or a table of
    language tag -> text, checked (InvalidInput naming `what`) and kept as `Message.to_text`.
    None for none (or an empty text); an empty table is refused like a policy's."""
    if isinstance(value, str) or value is None:
        return value or None
    return Message.parse(value, what).to_text()


_TAG_HELP = "a lower-case language, optional Script and REGION, such as en, fa, es-419, zh-Hant"


def message_problems(value: object, *, limit: int = MAX_TEXT) -> list[tuple[str, str]]:
    """Everything wrong with a message as written (a string, or a table of language tag ->
    text), as (language tag or "", problem) pairs; empty when it is a valid message."""
    if isinstance(value, str):
        return _text_problems("", value, limit)
    if not isinstance(value, Mapping):
        return [
            ("", 'must be a string or a table of language tag -> text: { en = "...", fa = "..." }')
        ]
    if not value:
        return [("", "names no language: give at least the default text (en)")]
    if len(value) > MAX_LANGUAGES:
        return [("", f"has {len(value)} languages; at most {MAX_LANGUAGES}")]
    problems: list[tuple[str, str]] = []
    for key, text in value.items():
        if not isinstance(key, str) or not is_language_tag(key):
            shown = key if isinstance(key, str) and key.isascii() and len(key) <= 20 else "?"
            problems.append((shown, f"{repr(key)[:40]} is not a language tag: {_TAG_HELP}"))
            continue
        if not isinstance(text, str):
            problems.append((key, "must be a string"))
            continue
        problems += _text_problems(key, text, limit)
    return problems


def _text_problems(key: str, text: str, limit: int) -> list[tuple[str, str]]:
    problem = text_problem(text)
    if problem is not None:
        return [(key, problem)]
    if key and not text.strip():
        return [(key, "is empty: leave the language out instead")]
    if len(text) > limit:
        return [(key, f"is {len(text)} characters; at most {limit}")]
    return []
