"""The one set of input rules (domain/inputs.py) and the places that were broken without them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regionlock.domain.device import could_name_device
from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import (
    bounded_number,
    clean_text,
    is_ascii_digits,
    nesting_depth,
    text_problem,
)
from regionlock.signing.unlock import code_matches, normalize_challenge, normalize_code


def test_text_with_nul_or_a_lone_surrogate_is_refused() -> None:
    assert text_problem("ordinary text, with\ttabs\nand ünïcödé") is None
    assert text_problem("a\x00b") == "contains a NUL character"
    assert "surrogate" in (text_problem("a\ud800b") or "")
    with pytest.raises(InvalidInput, match="reason contains a NUL"):
        clean_text("x\x00", "reason")
    with pytest.raises(InvalidInput, match="longer than 3"):
        clean_text("abcd", "name", max_length=3)


@given(st.text())
def test_clean_text_never_raises_anything_but_invalid_input(value: str) -> None:
    try:
        assert clean_text(value, "x") == value
    except InvalidInput:
        assert text_problem(value) is not None


def test_only_ascii_digits_are_digits() -> None:
    assert is_ascii_digits("0123456789")
    for other in ("\u0661\u0662", "\u06f1", "\u0967", "\uff11", "", "1a"):
        assert not is_ascii_digits(other), other
    with pytest.raises(InvalidInput):
        normalize_challenge("\u0661\u0662\u0663\u0664-\u0665\u0666\u0667\u0668")
    with pytest.raises(InvalidInput):
        normalize_code("\u0661\u0662\u0663\u0664\u0665-\u0666\u0667\u0668\u0669\u0660")
    # The agent compares a typed code: other digits are a wrong code, never an exception.
    assert code_matches(b"k" * 32, "12345678", "\u0661" * 10) is False


def test_numbers_are_range_checked_before_conversion() -> None:
    assert bounded_number(5, "x", 0, 10) == 5.0
    for bad in (10**400, -(10**400), 11, -0.5, float("nan"), float("inf")):
        with pytest.raises(InvalidInput, match="outside"):
            bounded_number(bad, "x", 0, 10)
    for bad in (True, "5", None):
        with pytest.raises(InvalidInput, match="expected a number"):
            bounded_number(bad, "x", 0, 10)
    with pytest.raises(InvalidInput, match="about 401 digits"):
        bounded_number(10**400, "x", 0, 10)


def test_nesting_is_measured_without_recursion_and_bounded() -> None:
    assert nesting_depth({"a": [1, {"b": []}]}) == 4  # dict, list, dict, list
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nested more than 32"):
        nesting_depth(deep)


def test_only_device_shaped_keys_name_a_device() -> None:
    assert could_name_device("dev_abcdefghijklmnopqrstuvwx")
    assert could_name_device("356938035643809")
    for bad in ("dev_a\x00b", "", "x" * 100, "dev_ABC", "dev_", "356938035643809\n", "a b"):
        assert not could_name_device(bad), repr(bad)
