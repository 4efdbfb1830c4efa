"""The synthetic fleet: reproducible, importable, shaped as specified, and true to the resolver."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from regionlock.domain.device import parse_imei
from regionlock.domain.signals import parse_signals
from regionlock.geo import Locator
from regionlock.geo.countries import country_names
from regionlock.services.device_import import ImportProblem, parse_device_csv
from regionlock.sim import (
    DayPlan,
    FleetSpec,
    Profile,
    SimDevice,
    csv_lines,
    day_plan,
    expected_restricted_days,
    generate_fleet,
    summary,
)
from regionlock.sim.catalog import DISTRIBUTORS
from regionlock.sim.places import PLACES, RESTRICTED

SPEC = FleetSpec(devices=2000, seed=2021)
LEAKY = {d.name for d in DISTRIBUTORS if d.leaky}


@pytest.fixture(scope="module")
def fleet() -> list[SimDevice]:
    return generate_fleet(SPEC)


@pytest.fixture(scope="module")
def large() -> list[SimDevice]:
    """Enough devices for the shares to settle (generating costs ~20 us a device)."""
    return generate_fleet(FleetSpec(devices=20_000, seed=2021))


Week = list[DayPlan | None]


@pytest.fixture(scope="module")
def weeks(fleet: list[SimDevice]) -> list[tuple[SimDevice, Week]]:
    """Every device of the fleet with its plans for each day."""
    return [(d, plans(d)) for d in fleet]


def plans(device: SimDevice, spec: FleetSpec = SPEC) -> Week:
    return [day_plan(device, day, spec) for day in range(spec.days)]


def dump(devices: list[SimDevice], spec: FleetSpec) -> Iterator[str]:
    """Everything the simulator says about a fleet, as text."""
    yield from csv_lines(devices)
    for d in devices:
        yield repr(d)
        for plan in plans(d, spec):
            yield json.dumps(None if plan is None else plan.signals, sort_keys=True)


# --- reproducibility ---------------------------------------------------------------------------


def test_the_same_spec_gives_the_same_bytes_and_another_seed_does_not() -> None:
    spec = FleetSpec(devices=300, seed=7)
    first = list(dump(generate_fleet(spec), spec))
    assert first == list(dump(generate_fleet(spec), spec))
    other = FleetSpec(devices=300, seed=8)
    assert list(csv_lines(generate_fleet(other))) != list(csv_lines(generate_fleet(spec)))
    assert first != list(dump(generate_fleet(other), other))


def test_a_smaller_fleet_is_the_start_of_a_larger_one(fleet: list[SimDevice]) -> None:
    assert generate_fleet(FleetSpec(devices=500, seed=2021)) == fleet[:500]
    assert generate_fleet(FleetSpec(devices=0)) == []


def test_spec_and_days_are_checked(fleet: list[SimDevice]) -> None:
    with pytest.raises(ValueError):
        FleetSpec(days=0)
    with pytest.raises(ValueError):
        FleetSpec(devices=-1)
    with pytest.raises(ValueError):
        day_plan(fleet[0], SPEC.days, SPEC)


# --- the registry's view -----------------------------------------------------------------------


def test_imeis_and_serials_are_valid_and_unique(fleet: list[SimDevice]) -> None:
    assert all(parse_imei(d.imei).digits == d.imei for d in fleet)
    assert len({d.imei for d in fleet}) == len(fleet)
    assert len({d.serial for d in fleet}) == len(fleet)
    # A few TACs per model, as a real production would have.
    tacs = {(d.model, d.imei[:8]) for d in fleet}
    assert 1 < len(tacs) <= 2 * len({d.model for d in fleet})


def test_keys_derive_from_seed_and_index(fleet: list[SimDevice]) -> None:
    assert all(len(d.key_seed) == 32 for d in fleet)
    assert len({d.key_seed for d in fleet}) == len(fleet)
    d = fleet[5]
    raw = Ed25519PrivateKey.from_private_bytes(d.key_seed).public_key().public_bytes_raw()
    assert base64.urlsafe_b64decode(d.public_key() + "=") == raw
    again = generate_fleet(FleetSpec(devices=6, seed=2021, days=3))[5]
    assert again.key_seed == d.key_seed  # the number of days changes no device


def test_the_csv_imports_without_a_problem(fleet: list[SimDevice]) -> None:
    lines = list(csv_lines(fleet))
    assert lines[0] == (
        "imei,serial,model,sku,sales_region,distributor,batch,manufactured,shipped,public_key\n"
    )
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    items = list(parse_device_csv(lines, known_countries=set(country_names()), id_key=b"k" * 32))
    problems = [i for i in items if isinstance(i, ImportProblem)]
    assert problems == []
    assert len(items) == len(fleet)
    for device, record in zip(fleet, items, strict=True):
        assert not isinstance(record, ImportProblem)
        assert record.imeis[0].digits == device.imei
        assert (record.batch, record.sales_region) == (device.batch, device.sales_region)
        assert device.manufactured <= device.shipped
        assert device.shipped.year == 2021


def test_batches_are_named_by_month_and_distributor_country(fleet: list[SimDevice]) -> None:
    country = {d.name: d.country for d in DISTRIBUTORS}
    for d in fleet:
        _, month, code, _ = d.batch.split("-")
        assert code == country[d.distributor]
        assert int(month) == d.manufactured.month


# --- the scenario's shape ----------------------------------------------------------------------


def test_profile_shares_are_as_specified(large: list[SimDevice]) -> None:
    counts = summary(large)
    assert list(counts) == [p.value for p in Profile]
    assert sum(counts.values()) == len(large)
    share = {k: v / len(large) for k, v in counts.items()}
    assert 0.84 <= share["resident"] <= 0.90
    assert 0.02 <= share["diverted"] <= 0.04
    assert 0.025 <= share["offline"] <= 0.035
    assert 0.01 <= share["traveller"] <= 0.02
    for name in ("roamer", "vpn_user", "dual_sim"):
        assert 0.015 <= share[name] <= 0.035, name


def test_only_leaky_batches_divert_and_most_of_each_does(large: list[SimDevice]) -> None:
    by_batch: dict[str, Counter[bool]] = {}
    for d in large:
        by_batch.setdefault(d.batch, Counter())[d.profile is Profile.DIVERTED] += 1
        if d.profile is Profile.DIVERTED:
            assert d.distributor in LEAKY
            assert d.restricted in RESTRICTED
            assert d.home == PLACES[d.restricted].country
        elif d.profile is Profile.TRAVELLER:
            assert d.restricted in RESTRICTED and d.home not in RESTRICTED
        else:
            assert d.restricted is None and d.home in PLACES and d.home not in RESTRICTED
    leaky = {b: c for b, c in by_batch.items() if c[True]}
    assert len(leaky) >= 4
    for batch, c in leaky.items():
        assert 0.5 <= c[True] / c.total() <= 0.9, batch
    diverted_to = {d.restricted for d in large if d.profile is Profile.DIVERTED}
    assert diverted_to == RESTRICTED


def test_each_profile_moves_as_described(weeks: list[tuple[SimDevice, Week]]) -> None:
    seen = Counter[Profile]()
    for d, week in weeks:
        here = [p for p in week if p is not None]
        seen[d.profile] += 1
        if d.profile is Profile.OFFLINE:
            assert here == []
            continue
        assert week[0] is not None  # activation day
        restricted_days = [i for i, p in enumerate(week) if p is not None and p.restricted]
        assert expected_restricted_days(d, SPEC) == len(restricted_days)
        if d.profile is Profile.TRAVELLER:
            assert len(restricted_days) <= 3 and restricted_days[0] >= 1
            assert restricted_days == list(range(restricted_days[0], restricted_days[-1] + 1))
            last = week[-1]
            assert last is None or last.country == d.home
        elif d.profile is Profile.DIVERTED:
            # There from day 3 at the latest (a skipped day can hide the move), then stays.
            assert restricted_days and all(p.restricted for p in week[4:] if p is not None)
            assert all(p.restricted for p in week[restricted_days[0] :] if p is not None)
            transit = PLACES[{x.name: x.country for x in DISTRIBUTORS}[d.distributor]]
            assert all(p.country == transit.country for p in week[: restricted_days[0]] if p)
        else:
            assert restricted_days == []
            if d.profile is not Profile.ROAMER:
                assert {p.country for p in here} == {d.home}
    assert all(seen[p] for p in Profile)


def test_signals_match_each_profile(weeks: list[tuple[SimDevice, Week]]) -> None:
    for d, week in weeks:
        for plan in week:
            if plan is None:
                continue
            s = plan.signals
            parse_signals(s)  # valid check-in signals, no "id"
            assert "id" not in s and {"ip", "timezone", "locale"} <= set(s)
            if d.profile is Profile.DUAL_SIM:
                assert len(s["sim"]) == 2 and len(s["network"]) == 2
            if d.profile is Profile.ROAMER and plan.country != d.home:
                assert s["network"][0] != "-".join(s["sim"][0].values())  # roaming


# --- location ground truth ---------------------------------------------------------------------


def sample(
    weeks: list[tuple[SimDevice, Week]], gps: bool, limit: int = 2000
) -> list[tuple[SimDevice, DayPlan]]:
    """Day plans with (or without) GPS: every one of a device that is not a plain resident,
    and residents' until there are `limit`."""
    out: list[tuple[SimDevice, DayPlan]] = []
    for d, week in weeks:
        for plan in week:
            if plan is None or ("gps" in plan.signals) != gps:
                continue
            if d.profile is not Profile.RESIDENT or len(out) < limit:
                out.append((d, plan))
    return out


def test_gps_day_plans_are_located_where_they_really_are(
    locator: Locator, weeks: list[tuple[SimDevice, Week]]
) -> None:
    pairs = sample(weeks, gps=True)
    found = locator.locate_many([parse_signals(p.signals) for _, p in pairs])
    profiles = Counter(d.profile for d, _ in pairs)
    assert all(profiles[p] for p in Profile if p is not Profile.OFFLINE), profiles
    for (d, plan), estimate in zip(pairs, found, strict=True):
        where = f"{d.profile} {d.index} {plan.signals}"
        assert estimate.country == plan.country, where
        if plan.subdivision is not None:
            assert estimate.subdivision == plan.subdivision, where
        if d.profile is Profile.VPN_USER and "sim" in plan.signals:
            assert estimate.has("vpn_suspected"), where


def test_without_gps_a_serving_network_still_names_the_country(
    locator: Locator, weeks: list[tuple[SimDevice, Week]]
) -> None:
    """Right everywhere but for roamers on a network that also serves another territory.

    SFR and Bouygues (FR, MC), AT&T (US, VI) and T-Mobile (US, PR, VI) split the network's
    weight, and a roamer's home SIM plus home-routed IP then outweigh it: such a roamer is
    placed at home. Only allowed places have such networks, so no verdict changes.
    """
    shared = {
        n.plmn
        for place in PLACES.values()
        for n in place.networks
        if len(locator.locate(parse_signals({"network": [n.plmn]})).evidence[0].reading.countries)
        > 1
    }
    assert shared and not any(
        n.plmn in shared for code in RESTRICTED for n in PLACES[code].networks
    )
    pairs = [(d, p) for d, p in sample(weeks, gps=False) if "network" in p.signals]
    found = locator.locate_many([parse_signals(p.signals) for _, p in pairs])
    crimea = misses = 0
    for (d, plan), estimate in zip(pairs, found, strict=True):
        if estimate.country != plan.country:
            misses += 1
            where = f"{d.profile} {d.index} {plan.signals}"
            assert d.profile is Profile.ROAMER and estimate.country == d.home, where
            assert set(plan.signals["network"]) <= shared, where
        if plan.subdivision is not None:
            crimea += 1
            # No GPS: the Crimea-only networks narrow it to UA-43 or UA-40, not to one.
            assert estimate.subdivision is None
            assert plan.subdivision in estimate.subdivisions
    assert crimea > 0
    assert misses < 0.01 * len(pairs)
