"""Signal validation: bad values are errors naming the field, never guesses."""

import pytest

from regionlock.domain.errors import InvalidSignal
from regionlock.domain.signals import GpsFix, Plmn, parse_signals


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
