"""Signal validation: bad values are errors naming the field, never guesses."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regionlock.domain.errors import InvalidSignal
from regionlock.domain.signals import GpsFix, Plmn, ipv4_number, parse_ip, parse_signals


def test_full_shape_parses() -> None:
    s = parse_signals(
        {
            "id": "d1",
            "ip": " 2.144.0.1 ",
            "sim": [{"mcc": "432", "mnc": "11"}, "250-01"],
            "network": [{"mcc": "432", "mnc": "011"}],
            "gps": {"lat": 35.7, "lon": 51.4, "accuracy_m": 20},
            "timezone": "Asia/Tehran",
            "locale": "fa_IR",
        }
    )
    assert s.ip == "2.144.0.1"
    assert s.sim == (Plmn("432", "11"), Plmn("250", "01"))
    assert s.network == (Plmn("432", "011"),)
    assert s.gps == GpsFix(35.7, 51.4, 20.0)
    assert s.kinds() == ("gps", "network", "sim", "ip", "timezone", "locale")


def test_ipv6_is_canonicalised() -> None:
    assert parse_signals({"ip": "2001:DB8:0:0::1"}).ip == "2001:db8::1"


def test_empty_object_is_no_signals() -> None:
    assert parse_signals({"id": "x"}).kinds() == ()


@pytest.mark.parametrize(
    ("obj", "field", "fragment"),
    [
        ({"gps": {"lat": 91, "lon": 0}}, "gps.lat", "outside [-90, 90]"),
        ({"gps": {"lat": 0, "lon": -180.5}}, "gps.lon", "outside [-180, 180]"),
        ({"gps": {"lat": "35", "lon": 0}}, "gps.lat", "expected a number"),
        ({"gps": {"lat": float("nan"), "lon": 0}}, "gps.lat", "not a finite number"),
        ({"gps": {"lat": 1}}, "gps", "both required"),
        ({"gps": {"lat": 1, "lon": 2, "accuracy_m": -3}}, "gps.accuracy_m", "negative"),
        ({"sim": [{"mcc": "4x2", "mnc": "11"}]}, "sim[0]", "not three digits"),
        ({"network": ["4321"]}, "network[0]", "not an MCC-MNC pair"),
        ({"sim": [{"mcc": "432", "mnc": 11}]}, "sim[0]", "MNC"),
        ({"ip": "999.1.1.1"}, "ip", "not a valid IPv4 or IPv6 address"),
        ({"ip": 12345}, "ip", "expected a string"),
        ({"timezone": "Asia/Tehran; rm -rf"}, "timezone", "not an IANA time zone"),
        ({"locale": "!!"}, "locale", "not a locale"),
        ({"gpss": {}}, "input", "unknown field"),
    ],
)
def test_bad_values_name_the_field(obj: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(InvalidSignal) as info:
        parse_signals(obj)
    assert info.value.signal == field
    assert fragment in info.value.message


# Text ipaddress takes or refuses as an address, canonical or not, plus the odd cases.
_ip_texts = (
    st.ip_addresses().map(str)
    | st.ip_addresses(v=4).map(
        lambda a: ".".join(
            f"{int(o):0{w}d}" for o, w in zip(str(a).split("."), (1, 2, 1, 3), strict=True)
        )
    )
    | st.text(alphabet="0123456789.:abcdefx%/ \n\u0661\uff11", max_size=24)
    | st.sampled_from(
        ["1.2.3.4\n", " 8.8.8.8 ", "256.1.1.1", "1.2.3", "1.2.3.4.5", "::ffff:1.2.3.4"]
    )
)


@given(_ip_texts)
def test_parse_ip_is_exactly_ipaddress(text: str) -> None:
    """The IPv4 fast path accepts and rewrites exactly what `ipaddress` does."""
    try:
        expected: str | None = str(ipaddress.ip_address(text.strip()))
    except ValueError:
        expected = None
    try:
        got: str | None = parse_ip(text)
    except InvalidSignal:
        got = None
    assert got == expected


@given(st.ip_addresses(v=4))
def test_ipv4_number_of_canonical_text(address: ipaddress.IPv4Address) -> None:
    assert ipv4_number(str(address)) == int(address)


@pytest.mark.parametrize(
    "text",
    ["01.2.3.4", " 1.2.3.4", "1.2.3.4\n", "1.2.3", "1.2.3.4.5", "256.1.1.1", "::1", "0x7f.0.0.1"],
)
def test_ipv4_number_is_none_for_anything_else(text: str) -> None:
    assert ipv4_number(text) is None


def test_equal_plmns_are_one_object_and_bad_ones_still_fail() -> None:
    sim = parse_signals({"sim": ["432-11", {"mcc": "432", "mnc": "11"}, "43211"]}).sim
    assert sim == (Plmn("432", "11"),) * 3
    assert sim[0] is sim[1] is sim[2]
    assert parse_signals({"network": ["432-11"]}).network[0] is sim[0]
    with pytest.raises(InvalidSignal) as info:
        parse_signals({"sim": ["432-11", "4x2-11"]})
    assert info.value.signal == "sim[1]"
