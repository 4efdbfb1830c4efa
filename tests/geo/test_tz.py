"""Time zone and locale hints from the IANA tables shipped in `tzdata`."""

import pytest

from regionlock.domain.errors import InvalidSignal
from regionlock.geo.tz import LocaleResolver, TimezoneResolver, TzTables

TABLES = TzTables.load()
TZ = TimezoneResolver(TABLES)
LOCALE = LocaleResolver(TABLES)


@pytest.mark.parametrize(
    ("zone", "countries"),
    [
        ("Asia/Tehran", ("IR",)),
        ("Asia/Damascus", ("SY",)),
        ("America/Havana", ("CU",)),
        ("Asia/Pyongyang", ("KP",)),
        ("Africa/Khartoum", ("SD",)),
        ("Africa/Juba", ("SS",)),
        # zone.tab says UA, zone1970.tab RU,UA: both claim it, and we keep both.
        ("Europe/Simferopol", ("RU", "UA")),
        # Oslo links to Berlin in zone1970 terms, but devices say Europe/Oslo for Norway.
        ("Europe/Berlin", ("DE",)),
        ("Europe/Oslo", ("NO",)),
        ("Europe/Kyiv", ("UA",)),
        ("Europe/Kiev", ("UA",)),  # the pre-2022 name, still sent by old devices
        ("US/Eastern", ("US",)),  # a backward link
        ("Etc/UTC", ()),
    ],
)
def test_zone_countries(zone: str, countries: tuple[str, ...]) -> None:
    assert TZ.resolve(zone).countries == countries


def test_unknown_zone_is_an_error() -> None:
    with pytest.raises(InvalidSignal, match="not a time zone in IANA tz"):
        TZ.resolve("Mars/Olympus_Mons")


@pytest.mark.parametrize(
    ("locale", "countries"),
    [
        ("fa_IR", ("IR",)),
        ("fa_IR.UTF-8", ("IR",)),
        ("en-US", ("US",)),
        ("zh-Hant-TW", ("TW",)),
        ("sr_RS@latin", ("RS",)),
        ("fr", ()),
        ("es-419", ()),
    ],
)
def test_locale_region(locale: str, countries: tuple[str, ...]) -> None:
    assert LOCALE.resolve(locale).countries == countries


def test_locale_with_unknown_region_is_an_error() -> None:
    with pytest.raises(InvalidSignal, match="not an ISO 3166-1 country code"):
        LOCALE.resolve("en-UK")


def test_country_names_come_from_tzdata() -> None:
    assert TABLES.country_name("IR") == "Iran"
    assert TABLES.version[:2] == "20"
