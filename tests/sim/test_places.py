"""Every row of the simulator's place tables, checked against the data regionlock ships.

A city, network, IP block, zone or locale that our own resolver would put elsewhere would make
the simulator's ground truth wrong, so each one is looked up here.
"""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from regionlock.domain.signals import parse_signals
from regionlock.geo import Locator
from regionlock.sim.catalog import DISTRIBUTORS
from regionlock.sim.places import GPS_JITTER_DEG, PLACES, RESTRICTED, VPN_EXITS, Place

CORNERS = [(0.0, 0.0)] + [
    (dlat * GPS_JITTER_DEG, dlon * GPS_JITTER_DEG) for dlat in (-1, 1) for dlon in (-1, 1)
]
GRID = [
    (dlat * GPS_JITTER_DEG, dlon * GPS_JITTER_DEG)
    for dlat in (-1, -0.5, 0, 0.5, 1)
    for dlon in (-1, -0.5, 0, 0.5, 1)
]


@pytest.mark.parametrize("place", PLACES.values(), ids=list(PLACES))
def test_no_jittered_fix_falls_in_the_sea(locator: Locator, place: Place) -> None:
    """A fix at sea counts less ("offshore"): found by the fleet simulator, whose Feodosia
    phones dropped below the confidence a lock needs on days their fix fell in the bay."""
    for city in place.cities:
        for dlat, dlon in GRID:
            match = locator.boundaries.lookup(city.lat + dlat, city.lon + dlon)
            assert "offshore" not in match.tags and match.countries, (city.name, dlat, dlon)


def test_restricted_places_are_the_demo_policys_company_block() -> None:
    text = resources.files("regionlock").joinpath("data/policies/gray-market-2021.toml")
    policy = tomllib.loads(text.read_text("utf-8"))
    (block,) = [r for r in policy["restriction"] if r["id"] == "company-block-2021"]
    assert set(block["jurisdictions"]) == RESTRICTED
    assert RESTRICTED.issubset(PLACES)


def test_every_diverting_route_starts_and_ends_at_a_known_place() -> None:
    for d in DISTRIBUTORS:
        assert d.country in PLACES and d.country not in RESTRICTED
        assert all(code in RESTRICTED for code, _ in d.diverts_to)


@pytest.mark.parametrize("place", PLACES.values(), ids=list(PLACES))
def test_gps_alone_places_every_city_even_at_the_edge_of_the_jitter(
    locator: Locator, place: Place
) -> None:
    for city in place.cities:
        fixes = [
            {"gps": {"lat": city.lat + dlat, "lon": city.lon + dlon, "accuracy_m": 10}}
            for dlat, dlon in CORNERS
        ]
        for fix, found in zip(
            fixes, locator.locate_many([parse_signals(f) for f in fixes]), strict=True
        ):
            where = f"{city.name} {fix['gps']}"
            assert found.country == place.country, where
            assert not found.has("offshore"), where
            if place.subdivision is not None:
                assert found.subdivision == place.subdivision, where


@pytest.mark.parametrize("place", PLACES.values(), ids=list(PLACES))
def test_every_ip_block_is_registered_to_the_places_ip_country(
    locator: Locator, place: Place
) -> None:
    for block in place.ip_blocks:
        readings = locator.ip.resolve_many([f"{block}.{host}" for host in range(256)])
        assert {r.countries for r in readings} == {(place.ip_country,)}, block


@pytest.mark.parametrize("country", sorted(VPN_EXITS))
def test_every_vpn_exit_block_is_registered_to_its_country(locator: Locator, country: str) -> None:
    for block in VPN_EXITS[country]:
        readings = locator.ip.resolve_many([f"{block}.{host}" for host in range(256)])
        assert {r.countries for r in readings} == {(country,)}, block


@pytest.mark.parametrize("place", PLACES.values(), ids=list(PLACES))
def test_networks_zones_and_locales_point_to_the_place(locator: Locator, place: Place) -> None:
    for network in place.networks:
        found = locator.locate(parse_signals({"network": [network.plmn]}))
        # A few real networks also serve a neighbour (SFR and Bouygues in Monaco, AT&T in
        # the US Virgin Islands): the place must be among the countries the MCC table names.
        reading = found.evidence[0].reading
        assert place.country in reading.countries, network
        if place.subdivision is not None:
            assert reading.subdivision is None or reading.subdivision == place.subdivision
            assert "disputed" in reading.tags
    for zone in {c.timezone for c in place.cities}:
        reading = locator.timezones.resolve(zone)
        assert place.country in reading.countries, zone
    for locale in place.locales:
        assert locator.locales.resolve(locale).countries, locale  # a real region, no error


@pytest.mark.parametrize("place", PLACES.values(), ids=list(PLACES))
def test_a_resident_with_every_signal_is_placed_there(locator: Locator, place: Place) -> None:
    for i, city in enumerate(place.cities):
        network = place.networks[i % len(place.networks)]
        signals = {
            "ip": f"{place.ip_blocks[i % len(place.ip_blocks)]}.10",
            "sim": [{"mcc": network.mcc, "mnc": network.mnc}],
            "network": [network.plmn],
            "gps": {"lat": city.lat, "lon": city.lon, "accuracy_m": 20},
            "timezone": city.timezone,
            "locale": place.locales[0],
        }
        found = locator.locate(parse_signals(signals))
        assert found.country == place.country, city.name
        if place.subdivision is not None:
            assert found.subdivision == place.subdivision, city.name
        if place.code in RESTRICTED:  # sure enough to lock (the demo policy's minimum)
            assert found.confidence >= 0.7, city.name


@pytest.mark.parametrize("place", PLACES.values(), ids=list(PLACES))
def test_a_resident_without_gps_is_placed_in_the_country(locator: Locator, place: Place) -> None:
    """Without GPS the country is still right everywhere; in Crimea the networks narrow it to
    UA-43 or UA-40 (they serve both), which the fleet docstring records."""
    for i, network in enumerate(place.networks):
        city = place.cities[i % len(place.cities)]
        signals = {
            "ip": f"{place.ip_blocks[i % len(place.ip_blocks)]}.10",
            "sim": [{"mcc": network.mcc, "mnc": network.mnc}],
            "network": [network.plmn],
            "timezone": city.timezone,
            "locale": place.locales[0],
        }
        found = locator.locate(parse_signals(signals))
        assert found.country == place.country, network
        if place.subdivision is not None:
            assert found.subdivision is None, network
            assert place.subdivision in found.subdivisions, network
