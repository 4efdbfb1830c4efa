"""Fusion rules on plain readings: weights, conflicts and the properties they guarantee."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regionlock.domain.location import (
    DISPUTED_TERRITORY,
    HOME_ROUTED_IP,
    LOW_CONFIDENCE_FLAG,
    NO_SIGNALS,
    ROAMING,
    SIGNALS_DISAGREE,
    VPN_SUSPECTED,
    SharedReading,
    explain,
    fuse,
    fuse_ordered,
    reading_weight,
)
from regionlock.domain.reading import SignalKind, SignalReading

K = SignalKind


def r(kind: SignalKind, *countries: str, slot: int | None = None, **kw: object) -> SignalReading:
    return SignalReading(kind, f"{kind.value}-{slot}", tuple(countries), "test", slot=slot, **kw)  # type: ignore[arg-type]


def test_no_signals_is_unknown() -> None:
    e = fuse([])
    assert e.country is None and e.confidence == 0.0
    assert NO_SIGNALS in e.flags and LOW_CONFIDENCE_FLAG in e.flags


def test_all_agree_is_confident() -> None:
    e = fuse(
        [
            r(K.GPS, "IR"),
            r(K.NETWORK, "IR", slot=1),
            r(K.SIM, "IR", slot=1),
            r(K.IP, "IR"),
            r(K.TIMEZONE, "IR"),
            r(K.LOCALE, "IR"),
        ]
    )
    assert e.country == "IR"
    assert e.confidence > 0.98
    assert e.flags == ()


def test_ip_alone_is_low_confidence() -> None:
    e = fuse([r(K.IP, "IR")])
    assert e.country == "IR"
    assert e.confidence == 0.3
    assert LOW_CONFIDENCE_FLAG in e.flags


def test_vpn_exit_does_not_move_a_device() -> None:
    e = fuse([r(K.GPS, "DE"), r(K.NETWORK, "DE", slot=1), r(K.SIM, "DE", slot=1), r(K.IP, "IR")])
    assert e.country == "DE"
    assert VPN_SUSPECTED in e.flags
    assert SIGNALS_DISAGREE not in e.flags


def test_roaming_tourist_with_home_routed_ip() -> None:
    # A French SIM roaming on an Iranian network: data is routed home, so the IP is French.
    e = fuse(
        [
            r(K.GPS, "IR"),
            r(K.NETWORK, "IR", slot=1),
            r(K.SIM, "FR", slot=1),
            r(K.IP, "FR"),
            r(K.LOCALE, "FR"),
        ]
    )
    assert e.country == "IR"
    assert ROAMING in e.flags and HOME_ROUTED_IP in e.flags
    assert VPN_SUSPECTED not in e.flags


def test_dual_sim_roaming_only_on_the_foreign_slot() -> None:
    e = fuse(
        [
            r(K.NETWORK, "TR", slot=1),
            r(K.SIM, "TR", slot=1),
            r(K.NETWORK, "TR", slot=2),
            r(K.SIM, "IR", slot=2),
        ]
    )
    assert e.country == "TR"
    assert ROAMING in e.flags
    assert SIGNALS_DISAGREE not in e.flags


def test_two_sims_of_one_country_are_not_double_evidence() -> None:
    one = fuse([r(K.SIM, "IR", slot=1), r(K.GPS, "TR")])
    two = fuse([r(K.SIM, "IR", slot=1), r(K.SIM, "IR", slot=2), r(K.GPS, "TR")])
    assert one.scores == two.scores


def test_tie_gives_no_country() -> None:
    e = fuse([r(K.NETWORK, "IR", slot=1), r(K.NETWORK, "TR", slot=2)])
    assert e.country is None
    assert SIGNALS_DISAGREE in e.flags


def test_shared_signal_splits_its_weight() -> None:
    e = fuse([r(K.NETWORK, "RU", "UA", slot=1)])
    assert e.country is None  # a tie between the two claimants, never a pick
    e2 = fuse([r(K.TIMEZONE, "RU", "UA"), r(K.NETWORK, "UA", slot=1)])
    assert e2.country == "UA"
    assert e2.scores["UA"] == 0.8 + 0.075


def test_hints_alone_name_no_country() -> None:
    e = fuse([r(K.TIMEZONE, "IR"), r(K.LOCALE, "IR")])
    assert e.country is None and e.confidence == 0.0
    assert "hints_only" in e.flags
    assert fuse([r(K.TIMEZONE, "IR"), r(K.IP, "IR")]).country == "IR"


def test_disputed_gps_is_flagged_and_names_its_subdivision() -> None:
    e = fuse([r(K.GPS, "UA", subdivision="UA-43", tags=("disputed",)), r(K.NETWORK, "UA", slot=1)])
    assert (e.country, e.subdivision) == ("UA", "UA-43")
    assert DISPUTED_TERRITORY in e.flags


def test_imprecise_gps_weighs_less() -> None:
    sharp = fuse([r(K.GPS, "SY", accuracy_m=20.0)])
    blurred = fuse([r(K.GPS, "SY", accuracy_m=25_000.0)])
    assert blurred.confidence < sharp.confidence


def test_explanation_names_countries_and_verdicts() -> None:
    e = fuse([r(K.GPS, "DE"), r(K.IP, "IR")])
    text = explain(e, {"DE": "Germany", "IR": "Iran"}.get)  # type: ignore[arg-type]
    assert text.startswith("Located in Germany (DE)")
    assert "points elsewhere" in text and "vpn_suspected" in text


COUNTRIES = ["IR", "TR", "DE", "FR", "SY"]
readings = st.builds(
    lambda kind, countries, slot: r(kind, *sorted(set(countries)), slot=slot),
    st.sampled_from(list(SignalKind)),
    st.lists(st.sampled_from(COUNTRIES), min_size=0, max_size=2),
    st.integers(min_value=1, max_value=2),
)


@given(st.lists(readings, max_size=8), st.sampled_from([K.GPS, K.NETWORK]), st.randoms())
def test_an_agreeing_strong_signal_never_lowers_confidence(
    rs: list[SignalReading], kind: SignalKind, rnd: random.Random
) -> None:
    before = fuse(rs)
    if before.country is None:
        return
    after = fuse([*rs, r(kind, before.country, slot=3)])
    assert after.country == before.country
    assert after.confidence >= before.confidence


@given(st.lists(readings, max_size=8), st.randoms())
def test_order_of_inputs_never_matters(rs: list[SignalReading], rnd: random.Random) -> None:
    shuffled = list(rs)
    rnd.shuffle(shuffled)
    a, b = fuse(rs), fuse(shuffled)
    assert (a.country, a.subdivision, a.confidence, a.flags) == (
        b.country,
        b.subdivision,
        b.confidence,
        b.flags,
    )
    assert [e.to_json() for e in a.evidence] == [e.to_json() for e in b.evidence]


@given(st.lists(readings, max_size=8))
def test_confidence_is_a_probability(rs: list[SignalReading]) -> None:
    e = fuse(rs)
    assert 0.0 <= e.confidence <= 1.0
    assert (e.country is None) <= (e.confidence == 0.0)


_KIND_RANK = {kind: i for i, kind in enumerate(SignalKind)}


@given(st.lists(readings, max_size=8), st.randoms())
def test_fuse_ordered_with_shared_readings_is_fuse(
    rs: list[SignalReading], rnd: random.Random
) -> None:
    # One reading per kind and slot, in fusion order: what a Locator makes.
    unique = {(x.kind, x.slot): x for x in rs}
    ordered = sorted(unique.values(), key=lambda x: (_KIND_RANK[x.kind], x.slot or 0))
    parts = [SharedReading(x) if rnd.random() < 0.5 else x for x in ordered]
    assert fuse_ordered(parts) == fuse(ordered)


def test_a_reading_shared_by_devices_with_different_winners() -> None:
    # Its evidence is worked out once per winning country: agreement must follow the winner.
    sim, zone = SharedReading(r(K.SIM, "IR", slot=1)), SharedReading(r(K.TIMEZONE, "IR", "AE"))
    for country in ("IR", "DE", "TR", "DE", "IR"):
        gps = r(K.GPS, country)
        assert fuse_ordered([gps, sim, zone]) == fuse([gps, sim.reading, zone.reading])
    assert fuse_ordered([]) == fuse([])


def test_a_vpn_exit_does_not_lower_the_confidence_of_a_served_phone() -> None:
    """A serving network of the winner, and no GPS or network naming the IP's country: the IP
    is where traffic leaves (flagged, no evidence against). Otherwise it still counts."""
    for presence in (
        [r(K.NETWORK, "SY", slot=1), r(K.SIM, "TR", slot=1)],
        [r(K.GPS, "SY"), r(K.NETWORK, "SY", slot=1)],
    ):
        without = fuse(presence)
        behind_vpn = fuse([*presence, r(K.IP, "US")])
        assert behind_vpn.country == "SY" and VPN_SUSPECTED in behind_vpn.flags
        assert behind_vpn.confidence == without.confidence
    # Wi-Fi only (GPS, no network): on a riverbank across from Sinuiju the IP still counts.
    wifi = fuse([r(K.GPS, "KP", accuracy_m=900), r(K.IP, "CN"), r(K.TIMEZONE, "CN")])
    assert wifi.confidence < fuse([r(K.GPS, "KP", accuracy_m=900)]).confidence
    # A fix in Turkey and a Syrian cell across the border: the Turkish IP is no VPN.
    border = [r(K.GPS, "TR"), r(K.NETWORK, "SY", slot=1), r(K.SIM, "SY", slot=1)]
    assert fuse([*border, r(K.IP, "TR")]).confidence < fuse(border).confidence


def test_a_sim_never_names_the_subdivision() -> None:
    """A Crimean SIM in a phone on Kyivstar elsewhere in Ukraine says where it was issued."""
    crimea = ("UA-40", "UA-43")
    e = fuse([r(K.NETWORK, "UA", slot=1), r(K.SIM, "UA", slot=2, subdivisions=crimea)])
    assert (e.country, e.subdivision, e.subdivisions) == ("UA", None, ())


def test_a_presence_reading_outside_the_candidates_is_a_conflict() -> None:
    crimea = ("UA-40", "UA-43")
    net = r(K.NETWORK, "UA", slot=1, subdivisions=crimea)
    henichesk = r(K.GPS, "UA", subdivision="UA-65", accuracy_m=5000)
    e = fuse([net, henichesk])
    assert (e.subdivision, e.subdivisions) == (None, ())


def test_weaker_readings_narrow_candidates_whatever_their_order() -> None:
    crimea = ("UA-40", "UA-43")
    net = r(K.NETWORK, "UA", slot=1, subdivisions=crimea)
    g40 = r(K.GPS, "UA", subdivision="UA-40", accuracy_m=5000)
    g43 = SignalReading(K.GPS, "gps-None", ("UA",), "test", "UA-43", None, 5000.0)
    a, b = fuse([net, g40, g43]), fuse([net, g43, g40])
    assert (a.subdivision, a.subdivisions, a.confidence) == (None, crimea, b.confidence)
    assert (b.subdivision, b.subdivisions) == (None, crimea)


def test_a_network_serving_several_subdivisions_gives_them_as_candidates() -> None:
    crimea = ("UA-40", "UA-43")
    e = fuse([r(K.NETWORK, "UA", slot=1, tags=("disputed",), subdivisions=crimea)])
    assert (e.country, e.subdivision, e.subdivisions) == ("UA", None, crimea)
    assert e.summary_json()["subdivision_candidates"] == list(crimea)
    # A GPS fix, stronger, names the one subdivision.
    gps = r(K.GPS, "UA", subdivision="UA-40", tags=("disputed",))
    e = fuse([gps, r(K.NETWORK, "UA", slot=1, tags=("disputed",), subdivisions=crimea)])
    assert (e.subdivision, e.subdivisions) == ("UA-40", ())
    assert "subdivision_candidates" not in e.summary_json()


def test_a_shared_code_is_ambiguity_not_conflict() -> None:
    """310-410 is assigned to the US and the US Virgin Islands: a phone the IP places in the US
    is not contradicted by the code's other territory (found by the fleet simulator: such US
    residents stayed below the confidence that records presence)."""
    shared = [r(K.NETWORK, "US", "VI", slot=1), r(K.SIM, "US", "VI", slot=1), r(K.IP, "US")]
    e = fuse(shared)
    # Agreement is whole: the confidence is the support of the US votes alone.
    assert e.country == "US" and e.confidence == round(1 - (1 - 0.4) * (1 - 0.175) * (1 - 0.3), 4)
    assert LOW_CONFIDENCE_FLAG not in e.flags and SIGNALS_DISAGREE not in e.flags
    # A reading for the other territory alone still counts against the winner.
    contested = fuse([*shared, r(K.TIMEZONE, "VI")])
    assert contested.country == "US" and contested.confidence < e.confidence
    assert fuse([*shared, r(K.GPS, "VI")]).country == "VI"


def test_an_ip_of_the_administering_state_is_expected_in_crimea() -> None:
    """Crimea's providers use Russian address space: with a GPS fix there, a Russian IP is no
    evidence against it. The tag comes from the boundary data (DE_FACTO_ADMINISTRATION)."""
    gps = r(K.GPS, "UA", subdivision="UA-43", tags=("disputed", "administered:RU"))
    assert fuse([gps, r(K.IP, "RU")]).confidence == fuse([gps]).confidence
    untagged = r(K.GPS, "UA", subdivision="UA-43", tags=("disputed",))
    assert fuse([untagged, r(K.IP, "RU")]).confidence < fuse([untagged]).confidence
    assert fuse([gps, r(K.IP, "DE")]).confidence < fuse([gps]).confidence  # only RU


# Found by mutation testing (docs/test-quality.md, `_conflict_flags`): the flags the policy reads
# (vpn_suspected, roaming, home_routed_ip, signals_disagree) where a winner exists, not on a tie.


def test_an_ip_elsewhere_without_presence_evidence_is_disagreement_not_a_vpn() -> None:
    e = fuse([r(K.SIM, "DE", slot=1), r(K.IP, "FR")])
    assert e.country == "DE"
    assert SIGNALS_DISAGREE in e.flags
    assert VPN_SUSPECTED not in e.flags and HOME_ROUTED_IP not in e.flags


def test_a_presence_reading_elsewhere_is_disagreement() -> None:
    e = fuse([r(K.GPS, "DE"), r(K.NETWORK, "FR", slot=1)])
    assert e.country == "DE"
    assert SIGNALS_DISAGREE in e.flags


def test_a_sim_from_elsewhere_that_roams_nowhere_is_disagreement() -> None:
    """A foreign SIM with no network reading for its slot is not roaming: it disagrees."""
    e = fuse([r(K.GPS, "DE"), r(K.SIM, "FR", slot=1)])
    assert e.country == "DE"
    assert ROAMING not in e.flags
    assert SIGNALS_DISAGREE in e.flags


def test_every_sim_slot_is_judged_not_only_the_first() -> None:
    # The first slot agrees (or roams), the second disagrees: still a disagreement.
    agrees_first = fuse([r(K.GPS, "DE"), r(K.SIM, "DE", slot=1), r(K.SIM, "FR", slot=2)])
    assert SIGNALS_DISAGREE in agrees_first.flags
    roams_first = fuse(
        [
            r(K.GPS, "DE"),
            r(K.NETWORK, "DE", slot=1),
            r(K.SIM, "FR", slot=1),
            r(K.SIM, "IT", slot=2),
        ]
    )
    assert ROAMING in roams_first.flags
    assert SIGNALS_DISAGREE in roams_first.flags


def test_two_roaming_sims_from_different_homes_both_explain_a_home_routed_ip() -> None:
    e = fuse(
        [
            r(K.NETWORK, "DE", slot=1),
            r(K.SIM, "FR", slot=1),
            r(K.NETWORK, "DE", slot=2),
            r(K.SIM, "IT", slot=2),
            r(K.IP, "FR"),
        ]
    )
    assert e.country == "DE"
    assert ROAMING in e.flags and HOME_ROUTED_IP in e.flags
    assert VPN_SUSPECTED not in e.flags and SIGNALS_DISAGREE not in e.flags


def test_an_ip_of_the_administering_state_raises_no_flag_in_crimea() -> None:
    gps = r(K.GPS, "UA", subdivision="UA-43", tags=("disputed", "administered:RU"))
    expected = fuse([gps, r(K.IP, "RU")]).flags
    assert VPN_SUSPECTED not in expected and SIGNALS_DISAGREE not in expected
    assert VPN_SUSPECTED in fuse([gps, r(K.IP, "DE")]).flags  # only the administering state's


# Found by mutation testing, second pass (docs/test-quality.md, "location.py, second pass"):
# the confidence to the fourth decimal in each case `_explained_weight`, `_ambiguous_weight`
# and `reading_weight` tell apart, and the wire format of an estimate. Confidences are worked
# out by hand in each comment: support (1 - prod(1 - w) over the winner's votes) times the
# winner's score over the scores that count.


@pytest.mark.parametrize(
    ("readings", "confidence"),
    [
        # A French SIM roaming on an Iranian network, its data routed home: both explained.
        # (1 - 0.1 * 0.2) * 1.7 / (2.35 - 0.35 - 0.3) = 0.98
        ([r(K.GPS, "IR"), r(K.NETWORK, "IR", slot=1), r(K.SIM, "FR", slot=1), r(K.IP, "FR")], 0.98),
        # Two roaming SIMs from two homes, both served in Iran: both explained. 0.8 * 0.8 / 0.8
        (
            [
                r(K.NETWORK, "IR", slot=1),
                r(K.SIM, "FR", slot=1),
                r(K.NETWORK, "IR", slot=2),
                r(K.SIM, "DE", slot=2),
            ],
            0.8,
        ),
        # A SIM in a slot no network of the winner serves is evidence against: 0.8 * 0.8 / 1.15
        ([r(K.NETWORK, "IR", slot=1), r(K.SIM, "FR", slot=2)], 0.5565),
        # A VPN exit of a served phone: 0.8 * 0.8 / (1.1 - 0.3)
        ([r(K.NETWORK, "DE", slot=1), r(K.IP, "IR")], 0.8),
        # Wi-Fi only (no network): the IP counts. 0.9 * 0.9 / 1.2
        ([r(K.GPS, "DE"), r(K.IP, "IR")], 0.675),
        # A fix split across the border names the IP's country: no VPN exit, the IP counts.
        # (1 - 0.55 * 0.2) * 1.25 / 2.0 = 0.55625
        ([r(K.GPS, "DE", "AT"), r(K.NETWORK, "DE", slot=1), r(K.IP, "AT")], 0.5563),
        # The same with a French SIM roaming there: the roaming explains the SIM, not the
        # Turkish IP. 0.89 * 1.25 / (2.35 - 0.35)
        (
            [
                r(K.GPS, "SY", "TR"),
                r(K.NETWORK, "SY", slot=1),
                r(K.SIM, "FR", slot=1),
                r(K.IP, "TR"),
            ],
            0.5563,
        ),
        # A Turkish SIM roaming there: its data comes home, so the Turkish IP is explained.
        # 0.89 * 1.25 / (2.35 - 0.35 - 0.3) = 0.65441
        (
            [
                r(K.GPS, "SY", "TR"),
                r(K.NETWORK, "SY", slot=1),
                r(K.SIM, "TR", slot=1),
                r(K.IP, "TR"),
            ],
            0.6544,
        ),
        # The state administering the place of the winner's own fix explains its IP: 0.9 * 1
        ([r(K.GPS, "UA", tags=("administered:RU",)), r(K.IP, "RU")], 0.9),
        # A network code shared with the Virgin Islands is ambiguity, with a GPS fix before it
        # too. (1 - 0.1 * 0.6) * 1.3 / (1.7 - 0.4) = 0.94
        ([r(K.GPS, "US"), r(K.NETWORK, "US", "VI", slot=1)], 0.94),
        # A time zone of the islands is no network: the shared code stays ambiguity.
        # 0.94 * 1.3 / (1.85 - 0.4) = 0.84276
        ([r(K.GPS, "US"), r(K.NETWORK, "US", "VI", slot=1), r(K.TIMEZONE, "VI")], 0.8428),
    ],
)
def test_the_confidence_explains_exactly_what_it_should(
    readings: list[SignalReading], confidence: float
) -> None:
    assert fuse(readings).confidence == confidence


def test_an_administering_state_explains_an_ip_only_where_the_winners_fix_lies() -> None:
    """A fix in Crimea loses to a Turkish network and SIM: the phone is not in Crimea, so a
    Russian IP is a VPN exit there, not Crimea's address space. 0.87 * 1.15 / (2.35 - 0.3)"""
    e = fuse(
        [
            r(K.GPS, "UA", tags=("administered:RU",)),
            r(K.NETWORK, "TR", slot=1),
            r(K.SIM, "TR", slot=1),
            r(K.IP, "RU"),
        ]
    )
    assert (e.country, e.confidence) == ("TR", 0.488)
    assert VPN_SUSPECTED in e.flags


@pytest.mark.parametrize(
    ("accuracy_m", "tags", "weight"),
    [
        (None, (), 0.9),
        (1_000.0, (), 0.9),
        (1_000.5, (), 0.9 * 0.75),
        (10_000.0, (), 0.9 * 0.75),
        (10_000.5, (), 0.9 * 0.4),
        (None, ("offshore",), 0.9 * 0.6),
        (5_000.0, ("offshore",), 0.9 * 0.75 * 0.6),
    ],
)
def test_a_gps_fix_weighs_by_its_accuracy_and_offshore(
    accuracy_m: float | None, tags: tuple[str, ...], weight: float
) -> None:
    fix = r(K.GPS, "DE", accuracy_m=accuracy_m, tags=tags)
    assert reading_weight(fix) == pytest.approx(weight)
    # Fusion works from the accuracy's class (`_skeleton`); it must weigh the same.
    assert fuse([fix]).evidence[0].weight == pytest.approx(weight)


def test_a_reading_shared_by_a_device_placed_nowhere_and_one_placed() -> None:
    zone = SharedReading(r(K.TIMEZONE, "IR"))
    assert fuse_ordered([zone]).country is None  # hints only
    gps = r(K.GPS, "DE")
    assert fuse_ordered([gps, zone]) == fuse([gps, zone.reading])
    assert fuse_ordered([gps, zone]).evidence[1].agrees is False


def test_evidence_reads_in_kind_then_slot_order_with_no_slot_first() -> None:
    late, early = r(K.SIM, "FR", slot=1)._replace(value="a"), r(K.SIM, "FR")._replace(value="z")
    e = fuse([late, r(K.GPS, "FR"), early])
    assert [(x.reading.kind, x.reading.slot) for x in e.evidence] == [
        (K.GPS, None),
        (K.SIM, None),
        (K.SIM, 1),
    ]
    assert e.signal_kinds() == ("gps", "sim")


CRIMEA_READINGS = [
    SignalReading(
        K.GPS,
        "44.95,34.10",
        ("UA",),
        "Simferopol",
        subdivision="UA-43",
        accuracy_m=5_000.0,
        tags=("disputed", "administered:RU"),
    ),
    SignalReading(
        K.NETWORK,
        "250-99",
        ("UA",),
        "a network serving Crimea",
        slot=1,
        subdivisions=("UA-40", "UA-43"),
    ),
    SignalReading(K.SIM, "208-01", ("FR",), "Orange France", slot=1),
    SignalReading(K.IP, "5.8.8.8", ("RU",), "a Russian address"),
    SignalReading(K.TIMEZONE, "Etc/UTC", (), "no country"),
]


def test_an_estimate_reads_out_in_its_wire_format() -> None:
    """What the API returns and the audit keeps, key by key and in order."""
    out = fuse(CRIMEA_READINGS).to_json()
    assert out == {
        "country": "UA",
        "subdivision": "UA-43",
        "confidence": 0.935,
        "flags": ["disputed_territory", "roaming"],
        "evidence": [
            {
                "signal": "gps",
                "value": "44.95,34.10",
                "countries": ["UA"],
                "subdivision": "UA-43",
                "weight": 0.675,
                "agrees": True,
                "note": "Simferopol",
                "tags": ["disputed", "administered:RU"],
            },
            {
                "signal": "network",
                "slot": 1,
                "value": "250-99",
                "countries": ["UA"],
                "subdivisions": ["UA-40", "UA-43"],
                "weight": 0.8,
                "agrees": True,
                "note": "a network serving Crimea",
            },
            {
                "signal": "sim",
                "slot": 1,
                "value": "208-01",
                "countries": ["FR"],
                "weight": 0.35,
                "agrees": False,
                "note": "Orange France",
            },
            {
                "signal": "ip",
                "value": "5.8.8.8",
                "countries": ["RU"],
                "weight": 0.3,
                "agrees": False,
                "note": "a Russian address",
            },
            {
                "signal": "timezone",
                "value": "Etc/UTC",
                "countries": [],
                "weight": 0.15,
                "agrees": None,
                "note": "no country",
            },
        ],
    }
    assert list(out) == ["country", "subdivision", "confidence", "flags", "evidence"]
    assert list(out["evidence"][1]) == [
        "signal",
        "slot",
        "value",
        "countries",
        "subdivisions",
        "weight",
        "agrees",
        "note",
    ]
    narrowed = fuse([CRIMEA_READINGS[1]]).summary_json()
    assert narrowed == {
        "country": "UA",
        "subdivision": None,
        "confidence": 0.8,
        "flags": [],
        "subdivision_candidates": ["UA-40", "UA-43"],
    }


NAMES = {"UA": "Ukraine", "IR": "Iran", "DE": "Germany"}


@pytest.mark.parametrize(
    ("readings", "text"),
    [
        (
            CRIMEA_READINGS,
            "Located in Ukraine (UA), UA-43 with confidence 0.94. gps 44.95,34.10: Simferopol "
            "[agrees, weight 0.68]; network (slot 1) 250-99: a network serving Crimea [agrees, "
            "weight 0.80]; sim (slot 1) 208-01: Orange France [points elsewhere, weight 0.35]; ip "
            "5.8.8.8: a Russian address [points elsewhere, weight 0.30]; timezone Etc/UTC: no "
            "country [says nothing, weight 0.15]. Flags: disputed_territory, roaming.",
        ),
        (
            [r(K.GPS, "IR"), r(K.GPS, "DE")],
            "Location unknown: the signals point to different countries equally. gps gps-None: "
            "test [is undecided, weight 0.90]; gps gps-None: test [is undecided, weight 0.90]. "
            "Flags: low_confidence, signals_disagree.",
        ),
        ([], "Location unknown: no signals were given. Flags: no_signals, low_confidence."),
        (
            [r(K.IP)],
            "Location unknown: no signal could be placed in a country. ip ip-None: test [says "
            "nothing, weight 0.30]. Flags: low_confidence.",
        ),
    ],
)
def test_an_explanation_reads_exactly(readings: list[SignalReading], text: str) -> None:
    assert explain(fuse(readings), NAMES.__getitem__) == text
