"""The shared input rules answer any input with a value or `InvalidInput`, nothing else:
`load_json` reads batch lines and request bodies, the others check what was read.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fuzz_inputs import deep_json_texts, deep_values, floats, integers, json_like, texts
from hypothesis import given, settings
from hypothesis import strategies as st

from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import (
    MAX_NESTING,
    bounded_number,
    clean_text,
    load_json,
    nesting_depth,
    short_int,
    text_problem,
)

FUZZ = settings(max_examples=400, deadline=None)


def _json_text(value: Any) -> str | None:
    try:
        return json.dumps(value, allow_nan=True)
    except (ValueError, RecursionError):
        return None


_documents = (
    texts(40)
    | st.builds(_json_text, json_like(max_leaves=24)).filter(lambda t: t is not None)
    | deep_json_texts
    | st.sampled_from(
        ["", "1" * 4301, "-" + "9" * 5000, "1e400", "[-1" + "0" * 400 + ".5]", "[1,]", "\ufeff1"]
    )
)


@FUZZ
@given(_documents, st.integers(1, 40))
def test_load_json_reads_json_or_refuses(text: str, limit: int) -> None:
    try:
        value = load_json(text, "the line", limit=limit)
    except InvalidInput as exc:
        assert exc.message.startswith("the line")
        return
    assert nesting_depth(value, limit) <= limit
    assert json.loads(text) == value  # the same value json reads, where it reads one
    assert not _has_infinity(value)


def _has_infinity(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        value = list(value.values())
    return isinstance(value, list) and any(map(_has_infinity, value))


@FUZZ
@given(json_like(max_leaves=30) | deep_values, st.integers(0, 40))
def test_nesting_depth_is_counted_or_refused(value: Any, limit: int) -> None:
    try:
        depth = nesting_depth(value, limit)
    except InvalidInput:
        return
    assert 0 <= depth <= limit


@FUZZ
@given(
    st.none() | st.booleans() | integers | floats | texts(5) | json_like(max_leaves=3),
    st.floats(-1e6, 1e6),
    st.floats(0, 1e6),
)
def test_bounded_number_is_in_range_or_refused(value: Any, low: float, width: float) -> None:
    try:
        number = bounded_number(value, "n", low, low + width)
    except InvalidInput as exc:
        str(exc)
        return
    assert math.isfinite(number) and low <= number <= low + width


@FUZZ
@given(texts(40), st.none() | st.integers(0, 50))
def test_clean_text_is_storable_or_refused(value: str, max_length: int | None) -> None:
    try:
        text = clean_text(value, "name", max_length=max_length)
    except InvalidInput:
        assert text_problem(value) is not None or len(value) > (max_length or 0)
        return
    text.encode("utf-8")
    assert "\x00" not in text


@FUZZ
@given(integers)
def test_short_int_can_always_be_shown(number: int) -> None:
    assert short_int(number)


def test_the_default_nesting_limit_holds_a_checkin() -> None:
    checkin = {"signals": {"sim": [{"mcc": "432"}]}}
    assert nesting_depth(checkin) == 4 <= MAX_NESTING
