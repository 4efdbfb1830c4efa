"""The audit trail's hashed form is the standard library's, whoever writes it.

Every stored hash was computed on `json`'s canonical text (sorted keys, no spaces, floats as
`repr` writes them). Since 2026-12-07 orjson writes that text where it writes it alike
(`audit._orjson_alike`): about 9 us less an entry. These tests hold the fast form to the
standard library's on any JSON value, and to hashes pinned with the code before orjson.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import sys
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from regionlock.storage import audit
from regionlock.storage.audit import NewEntry, content_digest, entry_hash_v3, prepare_entries

REFERENCE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def reference(value: Any) -> bytes | type[BaseException]:
    """The bytes the code before orjson hashed, or the error it raised."""
    try:
        return REFERENCE.encode(value).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError: a ValueError
        return type(exc)


def fast(value: Any) -> bytes | type[BaseException]:
    try:
        return audit._hashed_form(value)
    except (TypeError, ValueError, RecursionError) as exc:
        return type(exc)


# Floats of every size, with the ones orjson writes its own way over-represented: 1e-9 to 1e-4
# ("0.00001" against "1e-05"), non-finite ones (null against NaN), and their neighbours.
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=1e-11, max_value=1e-3),
    st.floats(min_value=-1e-3, max_value=-1e-11),
    st.sampled_from([1e-4, -1e-4, 9.999999999999999e-05, 1e-9, 1e-10, 5e-324, 1e16, -0.0]),
)
# All of Unicode, unpaired surrogates included (orjson refuses them; the reference fails to
# encode them as UTF-8): text that is not plain ASCII is where escaping and key order differ.
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70), floats, text
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(text, inner, max_size=4),
    ),
    max_leaves=12,
)


@given(values)
@example(1e-05)
@example(2.5e-07)
@example(math.nan)
@example({"a": [math.inf]})
@example(2**64)
@example("\ud800")
@example({"\ud800": 1})
@example({"é": 1, "e": 2, "\U0001f6f0": 3, "\uffff": 4})
def test_the_fast_form_is_the_standard_librarys(value: Any) -> None:
    assert fast(value) == reference(value)


class Tag(enum.StrEnum):
    LOCK = "lock"


class Count(enum.IntEnum):
    ONE = 1


class Text(str):
    pass


class Shown(dict):  # type: ignore[type-arg]
    """A dict that shows the standard library other members than it holds."""

    def items(self):  # type: ignore[no-untyped-def]
        return [("shown", 1)]


class Listed(list):  # type: ignore[type-arg]
    pass


def cyclic() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


@pytest.mark.parametrize(
    "value",
    [
        {"verdict": Tag.LOCK},  # a str enum: the standard library writes its value
        {"n": Count.ONE},
        {Text("k"): Text("v")},  # subclasses: orjson writes them, or refuses keys, its own way
        {"when": __import__("datetime").date(2021, 9, 1)},  # orjson writes it; json refuses
        {"id": __import__("uuid").UUID(int=1)},
        {1: "int key"},  # json turns it into "1"; orjson refuses it
        __import__("types").MappingProxyType({"a": 1}),
        {"d": Shown(a=1)},  # a dict subclass: the standard library asks its items()
        {"d": __import__("collections").OrderedDict(b=1, a=2)},
        {"l": Listed([1, 2])},
        {"deep": json.loads("[" * 300 + "]" * 300)},  # deeper than orjson goes
        {"cycle": cyclic()},  # the standard library's ValueError, not a RecursionError
    ],
    ids=[
        "str-enum",
        "int-enum",
        "str-subclass",
        "date",
        "uuid",
        "int-key",
        "mapping",
        "dict-subclass",
        "ordered-dict",
        "list-subclass",
        "deep",
        "cycle",
    ],
)
def test_what_orjson_writes_its_own_way_takes_the_standard_librarys_form(value: Any) -> None:
    assert fast(value) == reference(value)
    assert fast(["regionlock/audit-content/v2", value]) == reference(
        ["regionlock/audit-content/v2", value]
    )


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_near_the_recursion_limit_is_written_or_refused_as_before() -> None:
    """Past orjson's 254 levels the standard library decides, up to where it gives up itself:
    the look at the value (one frame a level, as the encoder's) must not give up first. (At
    the very limit, the wrappers' own few frames decide which call gives up.)"""
    limit = sys.getrecursionlimit()
    for depth in range(limit - 300, limit - 60, 4):
        value = nested(depth)
        assert fast(value) == reference(value), depth
        assert fast({"d": value}) == reference({"d": value}), depth
    assert fast(nested(limit + 50)) is RecursionError
    assert reference(nested(limit + 50)) is RecursionError


def test_hashes_are_those_of_the_code_before_orjson() -> None:
    """Pinned with the code of 17e7522 (the standard library only): old trails verify."""
    details = {
        "confidence": 0.93,
        "tiny": 1e-05,
        "tinier": 2.5e-07,
        "nan": math.nan,
        "inf": -math.inf,
        "zero": -0.0,
        "big": 2**70,
        "neg": -1.5e300,
        "t": (1, "é"),
        "country": "IR",
        "none": None,
        "ok": True,
        "emoji": "🛰️\u2028\x7f",
    }
    assert (
        content_digest("00" * 16, "device:dev_1", "dev_1", "iran", details)
        == "11326be5cd566e7d29037faeaf202cf7358561e76511b326461a416dbb2402e1"
    )
    assert (
        entry_hash_v3(7, 3, 1_700_000_000_000, "checkin.verdict", "ab" * 32, "cd" * 32)
        == "dd7a89bcce4c6295bf3db91e50b104a3d123223bf588087572f304ae75186a60"
    )
    checkin = {
        "verdict": "lock",
        "previous": None,
        "country": "IR",
        "subdivision": None,
        "confidence": 0.9,
        "flags": ["vpn_suspected"],
        "signals": ["gps", "network"],
        "policy": "gray-market-2021@3",
        "counter": 12,
    }
    assert (
        content_digest("11" * 16, "device:dev_2", "dev_2", "sanctions", checkin)
        == "8a35afe17a592036f96f7c9c937e1254ac1bde9e15b3712666d27f1ff447f061"
    )


@given(st.dictionaries(text, values, max_size=6), text, text)
@example({"tiny": 1e-05, "nan": math.nan}, "device:d", "r")
@example({"big": 2**70}, "device:d", "r")
@example({"k": "\udfff"}, "device:d", "r")
def test_a_new_entry_verifies_from_what_is_stored(details: Any, actor: str, reason: str) -> None:
    """What `verify` recomputes - the digest of the stored text read back - is the digest the
    entry was written with, and the stored text holds the same details."""
    entry = NewEntry(1, actor, "device.lock", "dev_1", reason, details)
    try:
        REFERENCE.encode(["x", actor, reason, details]).encode("utf-8")
    except (TypeError, ValueError):  # what the trail never took: still refused alike
        with pytest.raises((TypeError, ValueError)):
            prepare_entries([entry])
        return
    (prepared,) = prepare_entries([entry])
    stored = json.loads(prepared.details_text)
    assert REFERENCE.encode(stored) == REFERENCE.encode(details)
    # The digest by the definition itself, not by the code under test.
    defined = REFERENCE.encode(
        ["regionlock/audit-content/v2", prepared.salt, actor, "dev_1", reason, details]
    )
    assert prepared.content == hashlib.sha256(defined.encode("utf-8")).hexdigest()
    assert prepared.content == content_digest(prepared.salt, actor, "dev_1", reason, stored)


def test_an_orjson_that_writes_floats_otherwise_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """orjson before 3.11.7 wrote 1e16 as "1e16", not "1e+16": the probe at import turns the
    fast form off for such a release, and the standard library writes every entry."""
    assert audit._ORJSON_FLOATS_ALIKE  # this environment's orjson (pyproject: >= 3.11.7)
    monkeypatch.setattr(audit, "_ORJSON_FLOATS_ALIKE", False)

    def refuse(*_: Any, **__: Any) -> bytes:
        raise AssertionError("orjson used although its floats differ")

    monkeypatch.setattr(audit.orjson, "dumps", refuse)
    details = {"bytes": 2.5e16, "n": [1, "é"]}
    (prepared,) = prepare_entries([NewEntry(1, "a", "x", "s", "r", details)])
    assert prepared.details_text == '{"bytes": 2.5e+16, "n": [1, "é"]}'
    assert prepared.content == content_digest(prepared.salt, "a", "s", "r", details)
    assert fast(details) == reference(details)


def test_details_that_orjson_would_change_are_stored_as_before() -> None:
    """NaN would come back as null from orjson's text: such details keep the old form."""
    (prepared,) = prepare_entries([NewEntry(1, "a", "x", "s", "r", {"v": math.nan, "w": 1e-5})])
    assert prepared.details_text == '{"v": NaN, "w": 1e-05}'
    (plain,) = prepare_entries([NewEntry(1, "a", "x", "s", "r", {"v": 0.5, "w": ["é"]})])
    assert plain.details_text == '{"v":0.5,"w":["é"]}'
