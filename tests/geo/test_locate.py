"""End-to-end location on the shipped data: borders, disputed areas, conflicts, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regionlock.domain.errors import InvalidSignal
from regionlock.domain.location import fuse
from regionlock.domain.signals import parse_signals
from regionlock.geo import Locator, default_locator, locate
from regionlock.geo.boundaries import Boundaries
from regionlock.services.batch_locate import estimate_json, locate_lines


@pytest.fixture(scope="module")
def boundaries(locator: Locator) -> Boundaries:
    return locator.boundaries


# (name, lat, lon, country, subdivision or None to skip the check)
BORDER_POINTS = [
    # Kilis (TR) is ~5 km from the Syrian border; Oncupinar crossing area 3 km inside Turkey.
    ("Kilis, TR", 36.7184, 37.1212, "TR", None),
    ("3 km north of the Bab al-Salameh crossing, TR", 36.6900, 37.0570, "TR", None),
    ("Azaz, SY", 36.5862, 37.0441, "SY", None),
    ("Ceylanpinar, TR (facing Ras al-Ayn)", 36.8483, 40.0469, "TR", None),
    ("Ras al-Ayn, SY", 36.8500, 40.0700, "SY", None),
    ("Nusaybin, TR", 37.0700, 41.2150, "TR", None),
    ("Qamishli, SY", 37.0500, 41.2200, "SY", None),
    # Dandong (CN) faces Sinuiju (KP) across the Yalu, about 1 km of water.
    ("Dandong riverfront, CN", 40.1210, 124.3950, "CN", None),
    ("Dandong centre, CN", 40.1290, 124.3940, "CN", None),
    ("Sinuiju, KP", 40.1006, 124.3984, "KP", None),
    ("Tumen, CN (across from Namyang, KP)", 42.9660, 129.8400, "CN", None),
    ("Hunchun, CN", 42.8680, 130.3580, "CN", None),
    # Iran's borders.
    ("Tehran", 35.6892, 51.3890, "IR", "IR-23"),
    ("Bazargan, IR", 39.3920, 44.3860, "IR", None),
    ("Dogubayazit, TR", 39.5470, 44.0830, "TR", None),
    ("Astara, IR", 38.4290, 48.8720, "IR", None),
    ("Astara, AZ", 38.4560, 48.8750, "AZ", None),
    # Others that sanctions care about.
    ("Havana", 23.1136, -82.3666, "CU", None),
    ("Khartoum", 15.5007, 32.5599, "SD", None),
    ("Juba", 4.8594, 31.5713, "SS", None),
    ("Damascus", 33.5138, 36.2765, "SY", None),
    ("Pyongyang", 39.0392, 125.7625, "KP", None),
    ("Berlin", 52.5200, 13.4050, "DE", "DE-BE"),
    ("Valga, EE", 57.7780, 26.0470, "EE", None),
    # Enclaves and territories the source also draws inside another country.
    ("Maseru, LS", -29.3100, 27.4800, "LS", None),
    ("Vatican City", 41.9029, 12.4534, "VA", None),
    ("Cayenne, GF", 4.9224, -52.3135, "GF", None),
    ("San Juan, PR", 18.4655, -66.1057, "PR", None),
    ("Bangkok, TH", 13.7500, 100.5000, "TH", None),
    ("Hanoi, VN", 21.0285, 105.8542, "VN", None),
    ("Valka, LV", 57.7750, 26.0230, "LV", None),
]


@pytest.mark.parametrize(("name", "lat", "lon", "country", "sub"), BORDER_POINTS)
def test_border_points(
    boundaries: Boundaries, name: str, lat: float, lon: float, country: str, sub: str | None
) -> None:
    match = boundaries.lookup(lat, lon)
    assert match.countries == (country,), name
    if sub is not None:
        assert match.subdivision == sub, name


UKRAINE = [
    ("Simferopol", 44.9521, 34.1024, "UA-43"),
    ("Yalta", 44.4952, 34.1663, "UA-43"),
    ("Kerch", 45.3562, 36.4674, "UA-43"),
    ("Sevastopol", 44.6166, 33.5254, "UA-40"),
    ("Donetsk", 48.0159, 37.8028, "UA-14"),
    ("Mariupol", 47.0971, 37.5434, "UA-14"),
    ("Luhansk", 48.5740, 39.3078, "UA-09"),
    ("Kherson", 46.6354, 32.6169, "UA-65"),
    ("Zaporizhzhia", 47.8388, 35.1396, "UA-23"),
    ("Melitopol", 46.8489, 35.3653, "UA-23"),
    ("Kyiv", 50.4501, 30.5234, "UA-30"),
    ("Lviv", 49.8397, 24.0297, "UA-46"),
    ("Odesa", 46.4825, 30.7233, "UA-51"),
    ("Kharkiv", 49.9935, 36.2304, "UA-63"),
]


@pytest.mark.parametrize(("name", "lat", "lon", "sub"), UKRAINE)
def test_ukrainian_subdivisions(
    boundaries: Boundaries, name: str, lat: float, lon: float, sub: str
) -> None:
    match = boundaries.lookup(lat, lon)
    assert match.countries == ("UA",), name
    assert match.subdivision == sub, name


def test_crimea_is_disputed_and_resolved_to_the_iso_view(boundaries: Boundaries) -> None:
    match = boundaries.lookup(44.9521, 34.1024)
    assert "disputed" in match.tags
    assert match.countries == ("UA",)


def test_only_real_disputes_are_flagged(boundaries: Boundaries) -> None:
    for lat, lon in [(-29.31, 27.48), (13.75, 100.5), (4.9224, -52.3135), (21.0285, 105.8542)]:
        assert "disputed" not in boundaries.lookup(lat, lon).tags, (lat, lon)


def test_open_sea_is_unknown(boundaries: Boundaries) -> None:
    for lat, lon in [(0.0, 0.0), (35.0, -40.0), (-50.0, 100.0), (41.5, 18.0)]:
        assert boundaries.lookup(lat, lon).countries == (), (lat, lon)


def test_coastal_waters_belong_to_the_coast(boundaries: Boundaries) -> None:
    # ~5 km off Italy's heel: inside the 12 nm territorial sea, and a single-country cell.
    assert boundaries.lookup(40.0, 18.5).countries == ("IT",)
    # ~2 km off Bushehr (IR), in a grid cell that touches Iran's coast.
    assert boundaries.lookup(28.92, 50.82).countries == ("IR",)


def test_batch_and_single_lookups_agree(boundaries: Boundaries) -> None:
    lats = [p[1] for p in BORDER_POINTS]
    lons = [p[2] for p in BORDER_POINTS]
    assert boundaries.lookup_many(lats, lons) == [
        boundaries.lookup(a, b) for a, b in zip(lats, lons, strict=True)
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.floats(min_value=-90, max_value=90, allow_nan=False),
                st.floats(min_value=-180, max_value=180, allow_nan=False),
            ),
            # Within about 5 km of a border point, where grid cells need their polygons.
            st.builds(
                lambda p, dlat, dlon: (p[1] + dlat, p[2] + dlon),
                st.sampled_from(BORDER_POINTS),
                st.floats(min_value=-0.05, max_value=0.05),
                st.floats(min_value=-0.05, max_value=0.05),
            ),
        ),
        min_size=2,
        max_size=80,
    )
)
def test_batch_and_single_lookups_agree_anywhere(points: list[tuple[float, float]]) -> None:
    """The check-in service locates a group's fixes in one batch: anywhere on Earth and near
    borders above all, the batch must give what one look-up per point gives (a verdict may
    not hang on which check-ins shared its group)."""
    boundaries = default_locator().boundaries
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    assert boundaries.lookup_many(lats, lons) == [
        boundaries.lookup(a, b) for a, b in zip(lats, lons, strict=True)
    ]


def test_tehran_all_signals() -> None:
    e = locate(
        {
            "ip": "2.144.0.1",
            "sim": ["432-11"],
            "network": ["432-11"],
            "gps": {"lat": 35.7, "lon": 51.4, "accuracy_m": 20},
            "timezone": "Asia/Tehran",
            "locale": "fa_IR",
        }
    )
    assert (e.country, e.subdivision) == ("IR", "IR-23")
    assert e.confidence > 0.95
    assert e.flags == ()
    assert [x.reading.kind.value for x in e.evidence] == [
        "gps",
        "network",
        "sim",
        "ip",
        "timezone",
        "locale",
    ]


def test_vpn_exit_in_iran_for_a_phone_in_germany(locator: Locator) -> None:
    e = locator.locate(
        parse_signals(
            {
                "ip": "2.144.0.1",
                "sim": ["262-01"],
                "network": ["262-01"],
                "gps": {"lat": 52.52, "lon": 13.405},
                "timezone": "Europe/Berlin",
            }
        )
    )
    assert e.country == "DE"
    assert "vpn_suspected" in e.flags


def test_french_tourist_roaming_in_iran(locator: Locator) -> None:
    e = locator.locate(
        parse_signals(
            {
                "ip": "90.0.0.1",
                "sim": ["208-01"],
                "network": ["432-11"],
                "gps": {"lat": 29.61, "lon": 52.5311},
                "locale": "fr_FR",
            }
        )
    )
    assert e.country == "IR"
    assert {"roaming", "home_routed_ip"} <= set(e.flags)
    assert "vpn_suspected" not in e.flags


def test_dual_sim_slots_each_count(locator: Locator) -> None:
    e = locator.locate(
        parse_signals({"sim": ["634-01", "424-02"], "network": ["634-01", "634-01"]})
    )
    assert e.country == "SD"
    assert "roaming" in e.flags  # slot 2: an Emirati SIM on a Sudanese network
    slots = [(x.reading.kind.value, x.reading.slot) for x in e.evidence]
    assert slots == [("network", 1), ("network", 2), ("sim", 1), ("sim", 2)]


def test_crimean_network_and_gps(locator: Locator) -> None:
    e = locator.locate(
        parse_signals(
            {
                "network": ["250-60"],
                "gps": {"lat": 44.9521, "lon": 34.1024},
                "timezone": "Europe/Simferopol",
            }
        )
    )
    assert (e.country, e.subdivision) == ("UA", "UA-43")
    assert "disputed_territory" in e.flags


def test_ipv6_and_reserved_ip(locator: Locator) -> None:
    assert locator.locate(parse_signals({"ip": "2001:da8::1"})).country == "CN"
    reserved = locator.locate(parse_signals({"ip": "100.64.1.1"}))
    assert reserved.country is None
    assert (
        "CGNAT" in reserved.evidence[0].reading.note
        or "100.64" in reserved.evidence[0].reading.note
    )


def test_unknown_time_zone_is_an_error(locator: Locator) -> None:
    with pytest.raises(InvalidSignal, match="timezone"):
        locator.locate(parse_signals({"timezone": "Asia/Atlantis"}))


def test_locate_each_keeps_going_past_a_bad_device(locator: Locator) -> None:
    batch = [parse_signals({"timezone": "Asia/Atlantis"}), parse_signals({"network": ["432-11"]})]
    first, second = locator.locate_each(batch)
    assert isinstance(first, InvalidSignal)
    assert not isinstance(second, InvalidSignal) and second.country == "IR"


# A mix of shapes: dual SIM roaming, shared and unassigned MCCs, hints alone, special and IPv6
# addresses, disputed and offshore positions, nothing at all; repeated so that the batch path's
# shared readings and cached JSON are used as well as built.
MIXED_DEVICES: list[dict[str, Any]] = [
    {
        "ip": "2.144.0.1",
        "sim": ["432-11"],
        "network": ["432-11", "286-01"],
        "gps": {"lat": 35.7, "lon": 51.4, "accuracy_m": 20},
        "timezone": "Asia/Tehran",
        "locale": "fa_IR",
    },
    {"sim": ["208-10", "432-11"], "network": ["432-35", "432-11"], "ip": "90.0.0.1"},
    {"gps": {"lat": 44.95, "lon": 34.1}, "network": ["250-01"], "timezone": "Europe/Simferopol"},
    {"network": ["250-60"], "ip": "95.24.1.74", "timezone": "Europe/Simferopol"},
    {"network": ["250-60", "250-97"], "sim": ["250-60"]},
    {"gps": {"lat": 28.9, "lon": 50.7, "accuracy_m": 8000}, "ip": "::ffff:2.144.0.1"},
    {"network": ["340-01"], "sim": ["901-01"], "timezone": "Etc/UTC", "locale": "es-419"},
    {"timezone": "Asia/Dubai", "locale": "ar_AE"},
    {"ip": "100.64.1.1", "locale": "de_DE.UTF-8"},
    {"ip": "2001:da8::1", "gps": {"lat": 0.0, "lon": -30.0}},
    {"ip": " 8.8.8.8 ", "gps": {"lat": 52.52, "lon": 13.405, "accuracy_m": 50000}},
    {},
]


def test_batch_is_one_at_a_time_and_plain_fusion(locator: Locator) -> None:
    signals = [parse_signals(d) for d in MIXED_DEVICES * 3]
    batch = locator.locate_many(signals)
    assert batch == [locator.locate(s) for s in signals]
    for estimate in batch:
        # The batch path skips the sort and shares readings; the answer must not change.
        assert fuse([e.reading for e in estimate.evidence]) == estimate


@pytest.mark.parametrize("explain", [False, True])
def test_batch_lines_are_json_dumps_of_the_records(locator: Locator, explain: bool) -> None:
    ids: list[Any] = [7, "d-ø", 10**30, "x\u2028y", -1]
    devices = [{"id": ids[i % len(ids)], **d} for i, d in enumerate(MIXED_DEVICES * 3)]
    lines = [json.dumps(d) for d in devices]
    for device, text in zip(devices, locate_lines(lines, locator, explain=explain), strict=True):
        estimate = locator.locate(parse_signals(device))
        record = estimate_json(device["id"], estimate)
        if explain:
            record["explanation"] = locator.explain(estimate)
        assert text == json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def test_crimean_fixes_carry_their_de_facto_administration(locator: Locator) -> None:
    simferopol = locator.boundaries.lookup(44.9521, 34.1024)
    assert simferopol.subdivision == "UA-43" and "administered:RU" in simferopol.tags
    kyiv = locator.boundaries.lookup(50.4501, 30.5234)
    assert not any(t.startswith("administered:") for t in kyiv.tags)
    located = locator.locate(
        parse_signals({"gps": {"lat": 44.9521, "lon": 34.1024}, "ip": "95.24.1.138"})
    )
    assert (located.subdivision, located.confidence >= 0.7) == ("UA-43", True)
