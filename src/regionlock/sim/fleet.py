"""A synthetic fleet and its week of check-ins: pure, seeded, reproducible data.

`generate_fleet(spec)` gives the devices (what the import CSV says of them, plus the ground
truth of what each really does); `day_plan(device, day, spec)` gives where a device really is
on a day and the `signals` its check-in sends. The same spec always gives the same bytes:
every value comes from `Draws` streams keyed by (seed, device index[, day]), never from global
state, so device 17 is the same in a fleet of 2,000 as in one of 100,000.

How the fleet behaves (shares are of the whole fleet; places, networks and IP blocks are real,
see `places.py`; models and distributors are fictional, see `catalog.py`):

* **Diverted** (about 2-4 %): devices of the leaky batches of transit-country distributors
  (60-80 % of such a batch), used in IR, SY, CU, KP, SD or Crimea (UA-43, UA-40). 70 % are
  first activated there on day 0; the rest are first switched on in the transit country with a
  SIM from there and move on day 1-3. Then they stay. There, 65 % use a local SIM and 35 % keep
  the transit country's SIM, served by a local network; in North Korea, where foreign SIMs get
  practically no roaming, all use Koryolink or Kangsong. 30 % run a VPN (IP in NL, US, DE, SE
  or CH), except in North Korea, where ordinary users have no open Internet to tunnel through.
  (These shares are assumptions, not measurements.)
* Of the rest: **offline** 3 % (never check in), **travellers** 1.5 % (a 1-3 day visit to a
  restricted place, leaving on day 1 at the earliest and back home before the last day),
  **roamers** 2.5 % (2-5 days in another allowed country), **VPN users** 2.5 %, **dual SIM**
  2 %, and **residents**, about 85 % of the fleet, who stay in their sales region's country.
* Destinations follow the main real flows, with assumed shares: Russians to Crimea, the
  diaspora and business to Iran from Turkey, the Gulf and Europe, tourists to Cuba from Europe,
  the Americas and China, Lebanese and Gulf residents to Syria and Sudan. No traveller goes to
  North Korea: its few tourists have practically no mobile data and could not check in.
* A SIM's data is routed through its home network, so a roaming SIM's IP is in the SIM's home
  country (GSMA home routing, the default for roaming data). A device with no SIM uses Wi-Fi,
  with an IP of where it is. VPN users' IP is the exit's.
* Every check-in has the time zone of the city the device is in (phones set it from the
  network) and the locale of the user's home. 75 % of devices have GPS on (the rest send no
  `gps`), 4 % are Wi-Fi only (no `sim`, no `network`; never the roamers and dual-SIM
  devices). A device that checks in skips a later day with probability 3 %; day 0 is its
  activation and always has a check-in.

Crimea: our MCC table knows the Crimea-only operators (250-32/33/60...), so the serving network
alone locates a device there in UA, narrowed to UA-43 or UA-40 (they serve both): the policy
restricts both, so such a device is in a restricted place either way. GPS gives the one
subdivision. Crimea's devices get the same GPS share as everyone (75 %): people there use
navigation and taxi apps like anywhere else. A Wi-Fi-only device there without GPS
(Russian-registered IP, Europe/Simferopol, ru_RU) is located in RU with no presence evidence,
and cannot be restricted: an expected miss, not hidden.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from itertools import accumulate
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from regionlock.domain.device import encode_public_key, luhn_check_digit
from regionlock.sim.catalog import DISTRIBUTORS, Catalog, build_catalog
from regionlock.sim.draws import Draws
from regionlock.sim.places import (
    GPS_JITTER_DEG,
    PLACES,
    RESTRICTED,
    VPN_EXIT_WEIGHTS,
    VPN_EXITS,
    City,
    Network,
    Place,
)


class Profile(StrEnum):
    """What a device really does during the simulated days."""

    RESIDENT = "resident"  # stays in its sales region's country
    ROAMER = "roamer"  # resident who travels to another allowed country (SIM roaming)
    DUAL_SIM = "dual_sim"  # two SIM slots, e.g. a local SIM plus a foreign one
    VPN_USER = "vpn_user"  # resident in an allowed country, IP exits elsewhere
    TRAVELLER = "traveller"  # visits a restricted place for 1-3 days, then comes home
    DIVERTED = "diverted"  # gray market: ends up used in a restricted place
    OFFLINE = "offline"  # never checks in during the scenario


@dataclass(frozen=True)
class FleetSpec:
    """How many devices, from which seed, over how many days."""

    devices: int = 100_000
    seed: int = 2021
    days: int = 7

    def __post_init__(self) -> None:
        if self.devices < 0:
            raise ValueError("a fleet cannot have a negative number of devices")
        if self.days < 1:
            raise ValueError("a scenario lasts at least one day")


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One simulated device: its import record and the ground truth of how it is used."""

    index: int
    imei: str
    serial: str
    model: str
    sku: str
    sales_region: str
    distributor: str
    batch: str
    manufactured: date
    shipped: date
    key_seed: bytes
    profile: Profile
    home: str
    restricted: str | None

    def public_key(self) -> str:
        """The raw Ed25519 public key of `key_seed`, base64url without padding."""
        key = Ed25519PrivateKey.from_private_bytes(self.key_seed).public_key()
        return encode_public_key(key.public_bytes_raw())


@dataclass(frozen=True, slots=True)
class DayPlan:
    """Where a device really is on one day (ground truth) and what its check-in sends."""

    country: str
    subdivision: str | None
    restricted: bool
    signals: dict[str, Any]


# --- the shares and routes of the scenario -----------------------------------------------------

_PROFILE_SHARES = (  # of the devices no leaky batch diverts
    (Profile.OFFLINE, 0.03),
    (Profile.TRAVELLER, 0.015),
    (Profile.ROAMER, 0.025),
    (Profile.VPN_USER, 0.025),
    (Profile.DUAL_SIM, 0.02),
    (Profile.RESIDENT, 0.885),
)
GPS_SHARE = 0.75
WIFI_ONLY_SHARE = 0.04
MISSED_DAY = 0.03
DIVERTED_LATE = 0.3  # first activated in the transit country, moved on day 1-3
DIVERTED_FOREIGN_SIM = 0.35
DIVERTED_VPN = 0.3

# Where devices sold under a region name are used.
_REGION_HOMES = {
    "EEA": {"DE": 26, "FR": 20, "IT": 17, "ES": 15, "PL": 9, "NL": 8, "SE": 5},
    "GLOBAL": {"US": 25, "GB": 15, "DE": 15, "FR": 10, "AE": 10, "IN": 10, "SA": 5, "NL": 5},
}
# Where each home's travellers to restricted places go.
_TRAVEL_TO = {
    "RU": {"UA-43": 0.7, "UA-40": 0.3},
    "TR": {"IR": 0.6, "SY": 0.4},
    "AE": {"IR": 0.6, "SD": 0.25, "SY": 0.15},
    "SA": {"SD": 0.6, "SY": 0.4},
    "LB": {"SY": 1.0},
    "US": {"CU": 0.8, "IR": 0.2},
    "CN": {"IR": 0.6, "CU": 0.4},
    "IN": {"IR": 0.7, "SD": 0.3},
    "BR": {"CU": 1.0},
    "PA": {"CU": 1.0},
    "SE": {"IR": 0.7, "CU": 0.3},
}
_TRAVEL_DEFAULT = {"IR": 0.45, "CU": 0.45, "SY": 0.1}  # the other European homes
# Where roamers go (any allowed place but their home).
_ROAM_TO = {
    "FR": 12, "ES": 12, "IT": 10, "DE": 8, "GB": 8, "US": 8, "TR": 8, "AE": 6,
    "NL": 5, "PL": 3, "SE": 2, "IN": 3, "CN": 2, "BR": 2, "SA": 2, "RU": 2,
}  # fmt: skip
# The foreign SIM of a dual-SIM user (migrant workers' and families' second country).
_SECOND_SIM = {"AE": "IN", "SA": "IN", "GB": "IN", "DE": "TR", "NL": "TR", "FR": "ES"}
_SECOND_SIM_FOREIGN = 0.6  # the others carry two SIMs of home (work and personal)
_ACCURACY_M = (5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 65, 100, 250)
_COARSE_FIX = 0.03  # a cell or Wi-Fi fix, 1.2-3 km

_DISTRIBUTOR_COUNTRY = {d.name: d.country for d in DISTRIBUTORS}


class _Weighted:
    """A weighted table for `Draws.weighted`, built once."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.items = tuple(weights)
        self.cum = tuple(accumulate(weights.values()))

    def pick(self, draws: Draws, exclude: str | None = None) -> str:
        """One key; `exclude` is redrawn (it must not be the only key)."""
        while True:
            item = draws.weighted(self.items, self.cum)
            if item != exclude:
                return item


_PROFILES = tuple(p for p, _ in _PROFILE_SHARES)
_PROFILE_CUM = tuple(accumulate(share for _, share in _PROFILE_SHARES))
_HOMES = {region: _Weighted(w) for region, w in _REGION_HOMES.items()}
_TRAVEL = {home: _Weighted(w) for home, w in _TRAVEL_TO.items()}
_TRAVEL_ANY = _Weighted(_TRAVEL_DEFAULT)
_ROAM = _Weighted(_ROAM_TO)
_VPN = _Weighted(VPN_EXIT_WEIGHTS)


# --- the fleet ---------------------------------------------------------------------------------


def generate_fleet(spec: FleetSpec) -> list[SimDevice]:
    """The devices of the fleet, in index order (keys are not computed: see `public_key`)."""
    catalog: Catalog = build_catalog(spec.seed)
    made = dict.fromkeys((b.model.code for b in catalog.batches), 0)  # devices per model so far
    fleet = []
    for index in range(spec.devices):
        draws = Draws("device", spec.seed, index)
        batch = catalog.pick(draws)
        model = batch.model
        n = made[model.code]
        made[model.code] = n + 1
        payload = model.imei_payload(n)
        manufactured = batch.made_from + timedelta(days=draws.below(batch.made_days))
        restricted: str | None = None
        if draws.chance(batch.divert_share):
            profile = Profile.DIVERTED
            weights = dict(batch.distributor.diverts_to)
            restricted = _Weighted(weights).pick(draws)
            home = PLACES[restricted].country
        else:
            region = batch.distributor.sales_region
            home = _HOMES[region].pick(draws) if region in _HOMES else region
            profile = draws.weighted(_PROFILES, _PROFILE_CUM)
            if profile is Profile.TRAVELLER:
                restricted = _TRAVEL.get(home, _TRAVEL_ANY).pick(draws)
        fleet.append(
            SimDevice(
                index=index,
                imei=payload + str(luhn_check_digit(payload)),
                # R, model, month letter, production number: unique per (model, number).
                serial=f"R{model.code}{'ABCDEFGHJKLM'[manufactured.month - 1]}{n + 300_000:07d}",
                model=model.name,
                sku=batch.sku,
                sales_region=batch.distributor.sales_region,
                distributor=batch.distributor.name,
                batch=batch.name,
                manufactured=manufactured,
                shipped=batch.shipped,
                key_seed=_key_seed(spec.seed, index),
                profile=profile,
                home=home,
                restricted=restricted,
            )
        )
    return fleet


def _key_seed(seed: int, index: int) -> bytes:
    """The device's Ed25519 private seed: a hash of (seed, index) under its own purpose."""
    text = f"regionlock-sim/ed25519-seed/v1/{seed}/{index}".encode("ascii")
    return hashlib.blake2b(text, digest_size=32).digest()


def summary(devices: Iterable[SimDevice]) -> dict[str, int]:
    """How many devices have each profile (every profile listed, in declaration order)."""
    counts = Counter(d.profile for d in devices)
    return {p.value: counts[p] for p in Profile}


CSV_COLUMNS = (
    "imei", "serial", "model", "sku", "sales_region", "distributor", "batch",
    "manufactured", "shipped", "public_key",
)  # fmt: skip


def csv_lines(devices: Iterable[SimDevice]) -> Iterator[str]:
    """The device import file (see services/device_import.py): a header, then one line each."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(row: Sequence[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    for d in devices:
        yield line(
            (
                d.imei,
                d.serial,
                d.model,
                d.sku,
                d.sales_region,
                d.distributor,
                d.batch,
                d.manufactured.isoformat(),
                d.shipped.isoformat(),
                d.public_key(),
            )
        )


# --- the days ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sim:
    """A SIM: its network and the place that issued it (where its data is routed)."""

    network: Network
    issuer: Place


@dataclass(frozen=True, slots=True)
class _Habits:
    """How a device is used all week, drawn from (seed, index) alone.

    On `away_days` the device is at `away` (a trip, or a diverted device's transit country)
    with `away_sims`; on the other days it is at `home` with `sims`.
    """

    gps: bool
    home: Place
    city: City
    sims: tuple[_Sim, ...]
    away: Place | None
    away_city: City | None
    away_days: range
    away_sims: tuple[_Sim, ...]
    vpn: str | None
    locale: str


def day_plan(device: SimDevice, day: int, spec: FleetSpec) -> DayPlan | None:
    """Where the device is on `day` (0-based) and its check-in signals; None: no check-in."""
    if not 0 <= day < spec.days:
        raise ValueError(f"day {day} is outside the scenario's {spec.days} days")
    if device.profile is Profile.OFFLINE:
        return None
    draws = Draws("day", spec.seed, device.index, day)
    if day > 0 and draws.chance(MISSED_DAY):
        return None
    habits = _habits(device, spec)
    if habits.away is not None and habits.away_city is not None and day in habits.away_days:
        place, city, sims = habits.away, habits.away_city, habits.away_sims
    else:
        place, city, sims = habits.home, habits.city, habits.sims

    signals: dict[str, Any] = {}
    if habits.vpn is not None:
        signals["ip"] = _address(VPN_EXITS[habits.vpn], draws)
    elif sims:
        signals["ip"] = _address(sims[0].issuer.ip_blocks, draws)  # routed via the SIM's home
    else:
        signals["ip"] = _address(place.ip_blocks, draws)  # Wi-Fi where it is
    if sims:
        signals["sim"] = [{"mcc": s.network.mcc, "mnc": s.network.mnc} for s in sims]
        # A SIM of this place attaches to its own network; any other roams on a local one.
        signals["network"] = [
            s.network.plmn if s.network in place.networks else draws.choice(place.networks).plmn
            for s in sims
        ]
    if habits.gps:
        coarse = draws.chance(_COARSE_FIX)
        signals["gps"] = {
            "lat": round(city.lat + draws.uniform(-GPS_JITTER_DEG, GPS_JITTER_DEG), 5),
            "lon": round(city.lon + draws.uniform(-GPS_JITTER_DEG, GPS_JITTER_DEG), 5),
            "accuracy_m": 1200 + draws.below(1800) if coarse else draws.choice(_ACCURACY_M),
        }
    signals["timezone"] = city.timezone
    signals["locale"] = habits.locale
    return DayPlan(place.country, place.subdivision, place.code in RESTRICTED, signals)


def expected_restricted_days(device: SimDevice, spec: FleetSpec) -> int:
    """On how many days the device checks in from a restricted place (ground truth)."""
    plans = (day_plan(device, day, spec) for day in range(spec.days))
    return sum(1 for plan in plans if plan is not None and plan.restricted)


def _address(blocks: Sequence[str], draws: Draws) -> str:
    """A host address (1-254) in one of the /24 blocks."""
    return f"{draws.choice(blocks)}.{1 + draws.below(254)}"


def _sim(place: Place, draws: Draws) -> _Sim:
    return _Sim(draws.choice(place.networks), place)


def _trip(draws: Draws, days: int, shortest: int, longest: int) -> range:
    """Consecutive days away: leave on day 1 at the earliest, back before the last day when
    the scenario is long enough (else cut short at its end)."""
    length = shortest + draws.below(longest - shortest + 1)
    last_start = days - 1 - length
    if last_start >= 1:
        start = 1 + draws.below(last_start)
        return range(start, start + length)
    return range(1, min(days, 1 + length))


def _habits(device: SimDevice, spec: FleetSpec) -> _Habits:
    draws = Draws("habits", spec.seed, device.index)
    gps = draws.chance(GPS_SHARE)
    wifi_only = draws.chance(WIFI_ONLY_SHARE) and device.profile not in (
        Profile.ROAMER,
        Profile.DUAL_SIM,
    )
    away: Place | None = None
    away_days = range(0)
    vpn: str | None = None
    sims: tuple[_Sim, ...]
    away_sims: tuple[_Sim, ...]
    if device.profile is Profile.DIVERTED:
        home = PLACES[device.restricted or ""]
        transit = PLACES[_DISTRIBUTOR_COUNTRY[device.distributor]]
        transit_sim = _sim(transit, draws)
        foreign = home.code != "KP" and draws.chance(DIVERTED_FOREIGN_SIM)
        sims = (transit_sim,) if foreign else (_sim(home, draws),)
        away_sims = (transit_sim,)
        if spec.days > 1 and draws.chance(DIVERTED_LATE):
            away, away_days = transit, range(min(1 + draws.below(3), spec.days - 1))
        if home.code != "KP" and draws.chance(DIVERTED_VPN):
            vpn = _VPN.pick(draws)
    else:
        home = PLACES[device.home]
        sims = (_sim(home, draws),)
        if device.profile is Profile.DUAL_SIM:
            foreign = device.home in _SECOND_SIM and draws.chance(_SECOND_SIM_FOREIGN)
            second = PLACES[_SECOND_SIM[device.home]] if foreign else home
            others = [n for n in second.networks if n != sims[0].network] or list(second.networks)
            sims += (_Sim(draws.choice(others), second),)
        elif device.profile is Profile.VPN_USER:
            vpn = _VPN.pick(draws, exclude=device.home)
        elif device.profile is Profile.ROAMER:
            away = PLACES[_ROAM.pick(draws, exclude=device.home)]
            away_days = _trip(draws, spec.days, 2, 5)
        elif device.profile is Profile.TRAVELLER:
            away = PLACES[device.restricted or ""]
            away_days = _trip(draws, spec.days, 1, 3)
        away_sims = sims
    return _Habits(
        gps=gps,
        home=home,
        city=draws.choice(home.cities),
        sims=() if wifi_only else sims,
        away=away,
        away_city=draws.choice(away.cities) if away is not None else None,
        away_days=away_days,
        away_sims=() if wifi_only else away_sims,
        vpn=vpn,
        locale=draws.choice(home.locales),
    )
