"""Whatever a device reports, `parse_signals` returns well-formed `Signals` or raises
`InvalidSignal` naming the field: never a ValueError from a huge integer, a RecursionError from
deep nesting, a TypeError from a value of the wrong type.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from fuzz_inputs import deep_values, json_like, signal_dicts, texts
from hypothesis import given, settings
from hypothesis import strategies as st

from regionlock.domain.errors import InvalidSignal
from regionlock.domain.inputs import is_ascii_digits, text_problem
from regionlock.domain.signals import KNOWN_FIELDS, Signals, parse_signals

FUZZ = settings(max_examples=400, deadline=None)


def parsed_or_refused(obj: Any) -> Signals | InvalidSignal:
    try:
        signals = parse_signals(obj)
    except InvalidSignal as exc:
        assert exc.signal and exc.message
        str(exc)
        return exc
    check_signals(signals)
    return signals


def check_signals(signals: Signals) -> None:
    """What a parsed `Signals` promises the locator and anything that stores or prints it."""
    for plmn in (*signals.sim, *signals.network):
        assert len(plmn.mcc) == 3 and is_ascii_digits(plmn.mcc), plmn
        assert plmn.mnc is None or (len(plmn.mnc) in (2, 3) and is_ascii_digits(plmn.mnc)), plmn
    if signals.gps is not None:
        gps = signals.gps
        assert -90 <= gps.lat <= 90 and -180 <= gps.lon <= 180
        assert gps.accuracy_m is None or (math.isfinite(gps.accuracy_m) and gps.accuracy_m >= 0)
    for text in (signals.ip, signals.timezone, signals.locale):
        assert text is None or (text and text_problem(text) is None and text == text.strip())
    # Everything parsed can be written out as UTF-8, as the batch output and the store do.
    str(signals).encode("utf-8")


@FUZZ
@given(signal_dicts)
def test_any_signals_are_refused_or_well_formed(obj: dict[str, Any]) -> None:
    parsed_or_refused(obj)


_fields = st.sampled_from(sorted(KNOWN_FIELDS)) | texts(8)


@FUZZ
@given(st.dictionaries(_fields, json_like() | deep_values, max_size=4))
def test_any_value_in_any_field_is_refused_or_well_formed(obj: dict[str, Any]) -> None:
    parsed_or_refused(obj)


# Integers of 4,301 to 6,000 digits, built from their length (hypothesis cannot show them).
_huge = st.builds(
    lambda n, sign: sign * (10**n - 1), st.integers(4301, 6000), st.sampled_from([1, -1])
)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(sorted(KNOWN_FIELDS - {"id"})), st.sampled_from(["mcc", "mnc"]), _huge)
def test_huge_integers_are_refused_by_name(field: str, member: str, number: int) -> None:
    """Python refuses to turn integers of over 4,300 digits into text: a message quoting one
    must not try (an integer this size cannot come from JSON, but can from a caller)."""
    for obj in ({field: number}, {field: [number]}, {field: {member: number}}):
        assert isinstance(parsed_or_refused(obj), InvalidSignal)
    assert isinstance(parsed_or_refused({"sim": [{"mcc": "432", member: number}]}), InvalidSignal)
    assert isinstance(parsed_or_refused({"gps": {"lat": 0, "lon": number}}), InvalidSignal)


@pytest.mark.parametrize(
    "plmn",
    [
        {"mcc": "432\n"},
        {"mcc": "432", "mnc": "11\n"},
        {"mcc": "\u0664\u0663\u0662"},
        {"mcc": "\uff14\uff13\uff12"},
        {"mcc": "432", "mnc": "\u0661\u0661"},
    ],
)
def test_mcc_and_mnc_are_exactly_ascii_digits(plmn: dict[str, str]) -> None:
    """`^...$` with `match` takes a trailing newline, `[0-9]` no other digits."""
    assert isinstance(parsed_or_refused({"sim": [plmn]}), InvalidSignal)


@pytest.mark.parametrize("scope", ["\x00", "\ud800", "eth\x000", "\udfff\udfff"])
def test_an_ipv6_zone_is_text_that_can_be_stored(scope: str) -> None:
    """`ipaddress` takes anything after "%" as the zone, NUL and lone surrogates included."""
    result = parsed_or_refused({"ip": f"fe80::1%{scope}"})
    assert isinstance(result, InvalidSignal) and result.signal == "ip"


def test_an_ipv6_zone_of_plain_text_still_parses() -> None:
    assert parse_signals({"ip": "fe80::1%eth0"}).ip == "fe80::1%eth0"
