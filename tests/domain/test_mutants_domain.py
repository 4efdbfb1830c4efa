"""Found by mutation testing (docs/test-quality.md, "signals.py, inputs.py, reading.py,
errors.py"): each test failed on mutants of the input parsers that every other test let
through. Most pin the exact words of a refusal, which reach a device as a problem's `detail`
and an operator as a line of an import report, and the edges of every range."""

from __future__ import annotations

from typing import Any

import pytest

from regionlock.domain import signals
from regionlock.domain.errors import InvalidInput, InvalidSignal, RegionlockError, most_specific
from regionlock.domain.inputs import (
    bounded_number,
    load_json,
    nesting_depth,
    short_int,
    text_problem,
)
from regionlock.domain.signals import (
    GpsFix,
    Plmn,
    parse_gps,
    parse_ip,
    parse_locale,
    parse_plmn,
    parse_plmns,
    parse_timezone,
)

# --- inputs.py ---


def test_a_lone_surrogate_is_named_as_such() -> None:
    assert text_problem("a\ud800") == "contains a lone surrogate (not valid Unicode text)"


@pytest.mark.parametrize("value", [-1, 1, -1.0, 1.0])
def test_a_bounded_number_accepts_both_of_its_ends(value: float) -> None:
    assert bounded_number(value, "x", -1, 1) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "lat: expected a number, got bool"),
        ("1", "lat: expected a number, got str"),
        (2, "lat: 2 is outside [-1.5, 1]"),
        (1.5, "lat: 1.5 is outside [-1.5, 1]"),
        (10**40, "lat: a number of about 41 digits is outside [-1.5, 1]"),
    ],
)
def test_a_bounded_number_refused_says_why(value: object, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        bounded_number(value, "lat", -1.5, 1)
    assert err.value.message == message


def test_nesting_is_measured_past_a_scalar_and_up_to_the_limit_itself() -> None:
    assert nesting_depth([[[]], 1]) == 3  # the scalar is popped first: the walk goes on
    assert nesting_depth([[[]]], limit=3) == 3
    with pytest.raises(InvalidInput, match=r"^nested more than 2 levels deep$"):
        nesting_depth([[[]], 1], limit=2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1,", "the input: not valid JSON: Expecting value at column 4"),
        ("NaN", "the input: not valid JSON: NaN is not JSON"),
        ("1e400", "the input: not valid JSON: 1e400 is beyond the range of a number"),
        (
            "1" * 400 + ".5",
            "the input: not valid JSON: 11111111111111111111 is beyond the range of a number",
        ),
        (
            "1" * 5000,
            "the input: not valid JSON: Exceeds the limit (4300 digits) for integer string "
            "conversion: value has 5000 digits; use sys.set_in",
        ),
    ],
)
def test_json_refused_says_why_in_at_most_100_characters_of_the_reason(
    text: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        load_json(text)
    assert err.value.message == message


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        (5, "5"),
        (999, "999"),
        (10**30 - 1, "9" * 30),
        (10**30, "a number of about 31 digits"),
        (-(10**30), "a number of about 31 digits"),
    ],
)
def test_an_integer_is_shown_whole_below_10_to_the_30(number: int, shown: str) -> None:
    assert short_int(number) == shown


# --- errors.py ---


def test_the_most_specific_class_listed_answers() -> None:
    table = {InvalidInput: "input", RegionlockError: "any"}
    assert most_specific(table, InvalidSignal) == "input"
    assert most_specific(table, RegionlockError) == "any"
    assert most_specific(table, ValueError) is None


# --- signals.py ---


def test_a_gps_fix_reads_with_its_accuracy_or_without() -> None:
    assert str(GpsFix(1.23456, -2.5, 12.0)) == "1.2346,-2.5000 ±12 m"
    assert str(GpsFix(1.0, 2.0)) == "1.0000,2.0000"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_ip(5), "ip: expected a string, got int"),
        (
            lambda: parse_ip("fe80::1%\x00"),
            "ip: 'fe80::1%\\x00' is not a valid IPv4 or IPv6 address",
        ),
        (
            lambda: parse_plmn({"mcc": "432", "x": 1}, "sim[0]"),
            "sim[0]: unknown key(s) ['x']; expected mcc and mnc",
        ),
        (lambda: parse_plmn({"mcc": "43"}, "sim"), "sim: MCC '43' is not three digits"),
        (lambda: parse_plmn({"mcc": True}, "sim"), "sim: MCC True is not three digits"),
        (lambda: parse_plmn({"mcc": 1000}, "sim"), "sim: MCC 1000 is not three digits"),
        (
            lambda: parse_plmn({"mcc": 10**5000}, "sim"),
            "sim: MCC a number of about 5001 digits is not three digits",
        ),
        (
            lambda: parse_plmn({"mcc": "432", "mnc": 11}, "sim"),
            "sim: MNC 11 is not two or three digits (as a string)",
        ),
        (lambda: parse_plmn(4.5, "sim"), "sim: expected an object with mcc/mnc, got float"),
        (
            lambda: parse_plmns(["432-11", "bad"], "network"),
            "network[1]: 'bad' is not an MCC-MNC pair such as 432-11",
        ),
        (lambda: parse_gps([1]), "gps: expected an object with lat, lon and optional accuracy_m"),
        (lambda: parse_gps({"lat": 1, "lon": 2, "x": 3}), "gps: unknown key(s) ['x']"),
        (lambda: parse_gps({"lat": 1}), "gps: lat and lon are both required"),
        (lambda: parse_gps({"lat": "1", "lon": 2}), "gps.lat: expected a number, got str"),
        (lambda: parse_gps({"lat": 1, "lon": "2"}), "gps.lon: expected a number, got str"),
        (lambda: parse_gps({"lat": 10**9 + 1, "lon": 2}), "gps.lat: 1000000001 is out of range"),
        (
            lambda: parse_gps({"lat": 10**9, "lon": 2}),
            "gps.lat: latitude 1e+09 is outside [-90, 90]",
        ),
        (
            lambda: parse_gps({"lat": -(10**9), "lon": 2}),
            "gps.lat: latitude -1e+09 is outside [-90, 90]",
        ),
        (
            lambda: parse_gps({"lat": -90.5, "lon": 2}),
            "gps.lat: latitude -90.5 is outside [-90, 90]",
        ),
        (
            lambda: parse_gps({"lat": 1, "lon": 180.5}),
            "gps.lon: longitude 180.5 is outside [-180, 180]",
        ),
        (
            lambda: parse_gps({"lat": 1, "lon": 2, "accuracy_m": "5"}),
            "gps.accuracy_m: expected a number, got str",
        ),
        (lambda: parse_timezone(5), "timezone: 5 is not an IANA time zone name"),
        (lambda: parse_locale([1]), "locale: [1] is not a locale such as fa_IR or en-US"),
    ],
)
def test_a_refused_signal_says_exactly_what_is_wrong(call: Any, message: str) -> None:
    with pytest.raises(InvalidSignal) as err:
        call()
    assert err.value.message == message


def test_a_value_too_deep_to_quote_is_named_by_its_type() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidSignal) as err:
        parse_timezone(deep)
    assert err.value.message == "timezone: a list too large to show is not an IANA time zone name"


@pytest.mark.parametrize(
    ("value", "plmn"),
    [
        ({"mcc": 0}, Plmn("000")),
        ({"mcc": 7, "mnc": "01"}, Plmn("007", "01")),
        ({"mcc": 999}, Plmn("999")),
    ],
)
def test_an_mcc_given_as_an_integer_from_0_to_999_is_read_as_three_digits(
    value: object, plmn: Plmn
) -> None:
    assert parse_plmn(value, "sim") == plmn


@pytest.mark.parametrize(
    ("lat", "lon", "accuracy"), [(90, 180, 0), (-90, -180, 0.5), (90.0, -180.0, None)]
)
def test_a_fix_on_the_edges_of_the_ranges_is_valid(
    lat: float, lon: float, accuracy: float | None
) -> None:
    fix = parse_gps({"lat": lat, "lon": lon, "accuracy_m": accuracy})
    assert (fix.lat, fix.lon, fix.accuracy_m) == (lat, lon, accuracy)


def test_the_plmn_memos_stay_within_their_size() -> None:
    signals._PLMN_TEXTS.clear()
    signals._PLMNS.clear()
    for n in range(signals._PLMN_MEMO_SIZE + 1):  # the last one finds both memos full
        parse_plmn(f"{n // 1000 + 100:03d}-{n % 1000:03d}", "sim")
    assert len(signals._PLMN_TEXTS) <= signals._PLMN_MEMO_SIZE
    assert len(signals._PLMNS) <= signals._PLMN_MEMO_SIZE
