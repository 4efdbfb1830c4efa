"""Time zone and locale -> country hints, from the IANA tz database (the `tzdata` package).

A time zone name maps to the country zone.tab gives it. zone1970.tab can list several countries
for one zone; we add them only when the extra country has no zone name of its own that links here.
That keeps Europe/Berlin for DE (Oslo, Copenhagen and Stockholm are links to it but devices report
their own names) while Europe/Simferopol stays claimed by both RU and UA, as zone1970.tab says.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources

from regionlock.domain.errors import InvalidSignal
from regionlock.domain.reading import SignalKind, SignalReading
from regionlock.geo.countries import country_names

_REGION_RE = re.compile(r"^(?:[A-Za-z]{2}|[0-9]{3})$")
_SCRIPT_RE = re.compile(r"^[A-Za-z]{4}$")


def _read(name: str) -> str:
    return resources.files("tzdata").joinpath("zoneinfo", name).read_text(encoding="utf-8")


def _tab_rows(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


@dataclass(frozen=True, slots=True)
class TzTables:
    """Country names and the zone -> countries map, loaded once from tzdata."""

    country_names: dict[str, str]
    zone_countries: dict[str, tuple[str, ...]]
    links: dict[str, str]
    zones: frozenset[str]
    version: str

    @classmethod
    def load(cls) -> TzTables:
        names = country_names()
        zi = _read("tzdata.zi")
        zones = set()
        links: dict[str, str] = {}
        version = "unknown"
        for line in zi.splitlines():
            if line.startswith("# version "):
                version = line.split()[-1]
            elif line.startswith("Z "):
                zones.add(line.split()[1])
            elif line.startswith("L "):
                _, target, link = line.split()[:3]
                links[link] = target
        tab: dict[str, set[str]] = defaultdict(set)
        own_zones: dict[str, set[str]] = defaultdict(set)
        for row in _tab_rows(_read("zone.tab")):
            tab[row[2]].add(row[0])
            own_zones[row[0]].add(row[2])
        for row in _tab_rows(_read("zone1970.tab")):
            zone = row[2]
            for code in row[0].split(","):
                if code in tab[zone]:
                    continue
                # A country whose own zone names link to this zone was merged here, not claimed.
                if any(links.get(z) == zone for z in own_zones.get(code, ())):
                    continue
                tab[zone].add(code)
        zone_countries = {z: tuple(sorted(c)) for z, c in tab.items() if c}
        return cls(names, zone_countries, links, frozenset(zones | set(links)), version)

    def country_name(self, code: str) -> str:
        return self.country_names.get(code, code)


class TimezoneResolver:
    """IANA zone name -> the countries that use it."""

    def __init__(self, tables: TzTables) -> None:
        self._t = tables

    def resolve(self, zone: str) -> SignalReading:
        t = self._t
        if zone not in t.zones:
            raise InvalidSignal("timezone", f"{zone!r} is not a time zone in IANA tz {t.version}")
        name = zone if zone in t.zone_countries else t.links.get(zone, zone)
        countries = t.zone_countries.get(name, ())
        via = f" (an alias of {name})" if name != zone else ""
        if not countries:
            note = f"{zone}{via} is not tied to any country"
        elif len(countries) == 1:
            note = f"{zone}{via} is used in {t.country_name(countries[0])}"
        else:
            note = f"{zone}{via} is used in " + ", ".join(countries)
        return SignalReading(SignalKind.TIMEZONE, zone, countries, note)


class LocaleResolver:
    """Locale (fa_IR, en-US, zh-Hant-TW) -> its region, when it names a country."""

    def __init__(self, tables: TzTables) -> None:
        self._t = tables

    def resolve(self, locale: str) -> SignalReading:
        base = locale.split(".", 1)[0].split("@", 1)[0]
        subtags = re.split(r"[-_]", base)
        region = None
        for tag in subtags[1:]:
            if _SCRIPT_RE.match(tag):
                continue
            if _REGION_RE.match(tag):
                region = tag.upper()
            break
        if region is None:
            note = f"{locale} names a language but no region"
            return SignalReading(SignalKind.LOCALE, locale, (), note)
        if region.isdigit():
            note = f"{locale}: region {region} is a UN M.49 area, not a country"
            return SignalReading(SignalKind.LOCALE, locale, (), note)
        if region not in self._t.country_names:
            raise InvalidSignal("locale", f"{locale!r}: {region} is not an ISO 3166-1 country code")
        note = f"{locale} is a locale of {self._t.country_name(region)}"
        return SignalReading(SignalKind.LOCALE, locale, (region,), note)
