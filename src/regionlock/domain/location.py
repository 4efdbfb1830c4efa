"""Fusion: from resolved signal readings to one `LocationEstimate`.

The rules, in full (docs/location.md explains them with examples):

* Each reading votes for the countries it points to with its kind's weight (`WEIGHTS`); a reading
  that points to n countries gives each weight/n. GPS weight shrinks as the fix gets less precise,
  and a position offshore or in a disputed area counts less.
* Several readings of one kind (SIM slots) do not add up: per country, the kind's strongest vote
  counts. Two SIMs from one country are not twice the evidence.
* The country with the highest score wins. A tie at the top gives no country: we never pick one.
  Time zone and locale are hints: when nothing else points anywhere, there is no country.
* confidence = support x agreement, where support = 1 - prod(1 - w) over the votes for the winner
  (how much independent evidence backs it) and agreement = winner's score / all scores (how much
  of the evidence it explains). Left out of "all scores": votes that roaming explains (a foreign
  SIM served in the winning country, its home-routed IP), an IP elsewhere when GPS or the
  serving network place the phone in the winning country (a VPN exit), and the other countries
  of a reading that also names the winner (a shared code is ambiguity, not conflict). Adding an
  agreeing signal raises both, so it never lowers the confidence; the order of inputs changes
  nothing.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from regionlock.domain.reading import SignalKind, SignalReading

# Evidence of presence: GPS and the serving network are strong, the SIM's home country and the IP
# are weak (travel, VPNs, home-routed roaming data), time zone and locale are hints only.
WEIGHTS: Mapping[SignalKind, float] = {
    SignalKind.GPS: 0.90,
    SignalKind.NETWORK: 0.80,
    SignalKind.SIM: 0.35,
    SignalKind.IP: 0.30,
    SignalKind.TIMEZONE: 0.15,
    SignalKind.LOCALE: 0.05,
}
PRESENCE_KINDS = frozenset({SignalKind.GPS, SignalKind.NETWORK})
HINT_KINDS = frozenset({SignalKind.TIMEZONE, SignalKind.LOCALE})
LOW_CONFIDENCE = 0.5

# Flags, stable identifiers read by the policy engine.
VPN_SUSPECTED = "vpn_suspected"
ROAMING = "roaming"
SIGNALS_DISAGREE = "signals_disagree"
LOW_CONFIDENCE_FLAG = "low_confidence"
DISPUTED_TERRITORY = "disputed_territory"
NO_SIGNALS = "no_signals"
HOME_ROUTED_IP = "home_routed_ip"
HINTS_ONLY = "hints_only"
NO_PRESENCE_EVIDENCE = "no_presence_evidence"


def reading_weight(reading: SignalReading) -> float:
    """The weight one reading carries, before it is split among its countries."""
    weight = WEIGHTS[reading.kind]
    if reading.kind is SignalKind.GPS:
        acc = reading.accuracy_m
        if acc is not None and acc > 1_000:
            # A 5 km circle can straddle a border; a 50 km one says little about which side.
            weight *= 0.75 if acc <= 10_000 else 0.4
        if "offshore" in reading.tags:
            weight *= 0.6
    return weight


class Evidence(NamedTuple):
    """One reading as it entered the fusion: what it said, its weight and whether it agreed."""

    reading: SignalReading
    weight: float
    agrees: bool | None  # None when the reading points nowhere (unknown) or nothing won

    def to_json(self) -> dict[str, Any]:
        r = self.reading
        out: dict[str, Any] = {"signal": r.kind.value}
        if r.slot is not None:
            out["slot"] = r.slot
        out["value"] = r.value
        out["countries"] = list(r.countries)
        if r.subdivision is not None:
            out["subdivision"] = r.subdivision
        elif r.subdivisions:
            out["subdivisions"] = list(r.subdivisions)
        out["weight"] = round(self.weight, 4)
        out["agrees"] = self.agrees
        out["note"] = r.note
        if r.tags:
            out["tags"] = list(r.tags)
        return out


class LocationEstimate(NamedTuple):
    """Where a device is, how sure we are, and the evidence a person can check."""

    country: str | None
    subdivision: str | None
    confidence: float
    evidence: tuple[Evidence, ...]
    flags: tuple[str, ...]
    scores: Mapping[str, float] = MappingProxyType({})
    # When the evidence narrows the place to several subdivisions but not to one (a network
    # that serves only Crimea and Sevastopol), those candidates; `subdivision` is then None.
    subdivisions: tuple[str, ...] = ()

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def signal_kinds(self) -> tuple[str, ...]:
        """Which kinds of signal were present: all that is kept of them after the decision."""
        seen: dict[str, None] = {}
        for e in self.evidence:
            seen.setdefault(e.reading.kind.value, None)
        return tuple(seen)

    def to_json(self) -> dict[str, Any]:
        out = self.summary_json()
        out["evidence"] = [e.to_json() for e in self.evidence]  # last: batch output relies on it
        return out

    def summary_json(self) -> dict[str, Any]:
        """`to_json` without the evidence."""
        out: dict[str, Any] = {
            "country": self.country,
            "subdivision": self.subdivision,
            "confidence": self.confidence,
            "flags": list(self.flags),
        }
        if self.subdivisions:
            out["subdivision_candidates"] = list(self.subdivisions)
        return out


_KIND_ORDER = {kind: i for i, kind in enumerate(SignalKind)}


def _sort_key(r: SignalReading) -> tuple[int, int, str, str]:
    return (_KIND_ORDER[r.kind], r.slot or 0, r.value, ",".join(r.countries))


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What fusion concludes from the skeleton of a device's readings."""

    country: str | None
    subdivision: str | None
    subdivisions: tuple[str, ...]  # candidates when there are several (subdivision is None)
    confidence: float
    flags: tuple[str, ...]
    scores: Mapping[str, float]
    weights: tuple[float, ...]
    agrees: tuple[bool | None, ...]


_Skeleton = tuple[
    SignalKind,
    tuple[str, ...],
    str | None,
    int | None,
    float | None,
    tuple[str, ...],
    tuple[str, ...],
]


def _skeleton(r: SignalReading) -> _Skeleton:
    """The parts of a reading fusion depends on: no value, no note, accuracy as its class."""
    acc = r.accuracy_m
    if acc is not None:
        acc = None if acc <= 1_000 else (5_000.0 if acc <= 10_000 else 50_000.0)
    return (r.kind, r.countries, r.subdivision, r.slot, acc, r.tags, r.subdivisions)


def fuse(readings: Iterable[SignalReading]) -> LocationEstimate:
    """Combine resolved readings into one estimate (pure and deterministic)."""
    ordered = list(readings)
    if len(ordered) > 1:
        ordered.sort(key=_sort_key)
    return fuse_ordered(ordered)


class SharedReading:
    """A reading that many devices share, resolved once: a fleet has few distinct MCCs, time
    zones and locales. Fusion works out its skeleton once, and its evidence once per winning
    country, instead of once per device."""

    __slots__ = ("_evidence", "reading", "skeleton")

    def __init__(self, reading: SignalReading) -> None:
        self.reading = reading
        self.skeleton = _skeleton(reading)
        # Weight and agreement depend only on the reading and the winning country, so the
        # evidence is the same for every device with the same winner. At most one entry per
        # country code (and None).
        self._evidence: dict[str | None, Evidence] = {}

    def _evidence_in(self, out: _Outcome, at: int) -> Evidence:
        """This reading's evidence in an outcome where it is at position `at`."""
        found = self._evidence.get(out.country)
        if found is None:
            found = Evidence(self.reading, out.weights[at], out.agrees[at])
            self._evidence[out.country] = found
        return found


_NO_SIGNALS_ESTIMATE = LocationEstimate(None, None, 0.0, (), (NO_SIGNALS, LOW_CONFIDENCE_FLAG))


def fuse_ordered(parts: Sequence[SignalReading | SharedReading]) -> LocationEstimate:
    """`fuse` for readings that are already in fusion order, some of them shared.

    The result is exactly `fuse` of all the readings; this skips the sort, and the per-device
    work on shared readings. The caller guarantees the order: ascending `_sort_key`, which
    holds when readings are made kind by kind (`SignalKind` order) and slot by slot, at most
    one per kind and slot. `Locator` does so; anything else should call `fuse`.
    """
    # Plain loops, not comprehensions: this runs once per device, and a batch spends more
    # here than in any look-up but the GPS one.
    skeletons = []
    for part in parts:
        skeletons.append(part.skeleton if isinstance(part, SharedReading) else _skeleton(part))
    if not skeletons:
        return _NO_SIGNALS_ESTIMATE
    # Devices in one place send readings that differ only in their raw values; the conclusion
    # depends on the skeleton alone, so it is computed once per distinct skeleton.
    out = _fuse_skeleton(tuple(skeletons))
    weights, agrees = out.weights, out.agrees
    evidence = []
    for at, part in enumerate(parts):
        if isinstance(part, SharedReading):
            evidence.append(part._evidence_in(out, at))
        else:
            evidence.append(Evidence(part, weights[at], agrees[at]))
    return LocationEstimate(
        out.country,
        out.subdivision,
        out.confidence,
        tuple(evidence),
        out.flags,
        out.scores,
        out.subdivisions,
    )


@functools.lru_cache(maxsize=65_536)
def _fuse_skeleton(skeletons: tuple[_Skeleton, ...]) -> _Outcome:
    ordered = [
        SignalReading(kind, "", countries, "", sub, slot, acc, tags, subs)
        for kind, countries, sub, slot, acc, tags, subs in skeletons
    ]
    # Per kind and country, the strongest vote.
    votes: dict[SignalKind, dict[str, float]] = defaultdict(dict)
    for r in ordered:
        if not r.countries:
            continue
        share = reading_weight(r) / len(r.countries)
        for c in r.countries:
            votes[r.kind][c] = max(votes[r.kind].get(c, 0.0), share)

    scores: dict[str, float] = defaultdict(float)
    for per_country in votes.values():
        for c, w in per_country.items():
            scores[c] += w
    total = sum(scores.values())

    country: str | None = None
    confidence = 0.0
    flags: set[str] = set()
    if scores and all(kind in HINT_KINDS for kind in votes):
        # A time zone or a locale is a setting, not a whereabouts: alone it names no country.
        flags.add(HINTS_ONLY)
    elif scores:
        best = max(scores.values())
        leaders = sorted(c for c, s in scores.items() if abs(s - best) < 1e-9)
        if len(leaders) == 1:
            country = leaders[0]
            miss = 1.0
            for per_country in votes.values():
                miss *= 1.0 - per_country.get(country, 0.0)
            counted = (
                total
                - _explained_weight(ordered, votes, country)
                - _ambiguous_weight(ordered, votes, country)
            )
            confidence = round((1.0 - miss) * (best / counted), 4)
            if not any(country in votes.get(k, {}) for k in PRESENCE_KINDS):
                flags.add(NO_PRESENCE_EVIDENCE)
        else:
            flags.add(SIGNALS_DISAGREE)

    flags |= _conflict_flags(ordered, country)
    if any("disputed" in r.tags for r in ordered if country in r.countries):
        flags.add(DISPUTED_TERRITORY)
    if confidence < LOW_CONFIDENCE:
        flags.add(LOW_CONFIDENCE_FLAG)
    subdivision, candidates = _subdivision(ordered, country)
    return _Outcome(
        country,
        subdivision,
        candidates,
        confidence,
        tuple(sorted(flags)),
        MappingProxyType(dict(sorted(scores.items()))),
        tuple(reading_weight(r) for r in ordered),
        tuple(
            None if not r.countries or country is None else country in r.countries for r in ordered
        ),
    )


def _explained_weight(
    readings: list[SignalReading], votes: Mapping[SignalKind, Mapping[str, float]], country: str
) -> float:
    """Votes for elsewhere that are explained, and so do not count against the winner.

    A SIM roaming on a network of the winning country says where its owner is from, not where
    the phone is; an IP in that same home country is roaming data routed home. And when a
    serving network of the winning country serves the phone, and no GPS or network reading
    names the IP's country, an IP elsewhere says where its traffic leaves (a VPN, a proxy),
    not where the phone is: it is flagged (`vpn_suspected`) but is no evidence against it.
    Last, a GPS fix in a place another state administers (tagged `administered:XX`) explains an
    IP of that state: it is what the place's providers use.
    None of these is evidence against the place the phone is being served in.
    """
    serving: dict[int | None, set[str]] = defaultdict(set)
    network_backed = False
    measured: set[str] = set()  # every country a GPS or network reading names
    # A GPS fix in a place another state administers (tag "administered:RU" in Crimea): that
    # state's address space is what the place's providers use, so such an IP is expected there.
    administrators = _administrators(readings, country)
    for r in readings:
        if r.kind is SignalKind.NETWORK:
            serving[r.slot] |= set(r.countries)
            network_backed = network_backed or country in r.countries
        if r.kind in PRESENCE_KINDS:
            measured |= set(r.countries)
    homes: set[str] = set()
    for r in readings:
        if (
            r.kind is SignalKind.SIM
            and r.countries
            and country not in r.countries
            and country in serving.get(r.slot, set())
        ):
            homes |= set(r.countries)
    explained = sum(votes.get(SignalKind.SIM, {}).get(c, 0.0) for c in homes)
    for r in readings:
        if r.kind is not SignalKind.IP or not r.countries or country in r.countries:
            continue
        # A VPN exit: the phone is served by a network of the winning country, and no GPS or
        # network reading names the IP's country (near a border, where a fix or a cell may
        # lie across it, the IP stays evidence; so it does for a Wi-Fi-only phone).
        vpn_exit = network_backed and not measured & set(r.countries)
        if (homes and set(r.countries) <= homes) or vpn_exit or set(r.countries) <= administrators:
            explained += sum(votes.get(SignalKind.IP, {}).get(c, 0.0) for c in r.countries)
            break
    return explained


def _administrators(readings: list[SignalReading], country: str) -> set[str]:
    """States administering the place a GPS fix of the winner lies in (tag "administered:RU"
    in Crimea): their address space is what the place's providers use."""
    return {
        t.split(":", 1)[1]
        for r in readings
        if r.kind is SignalKind.GPS and country in r.countries
        for t in r.tags
        if t.startswith("administered:")
    }


def _ambiguous_weight(
    readings: list[SignalReading], votes: Mapping[SignalKind, Mapping[str, float]], country: str
) -> float:
    """Votes for elsewhere that only share a reading with the winner: ambiguity, not conflict.

    A network code assigned to the US and the US Virgin Islands votes for both; when the US
    wins, its vote for the islands says the code is shared, not that the phone is elsewhere. So
    a network's or SIM's vote for another country is left out when every reading of that kind
    naming that country also names the winner. (GPS in a disputed area and time zones used in
    several countries keep their split.)
    """
    ambiguous = 0.0
    for kind, per_country in votes.items():
        if kind not in (SignalKind.NETWORK, SignalKind.SIM):
            continue  # a disputed GPS fix or a shared zone stays a split, never a guess
        named = [r.countries for r in readings if r.kind is kind and r.countries]
        for other, weight in per_country.items():
            if other != country and all(country in cs for cs in named if other in cs):
                ambiguous += weight
    return ambiguous


def _subdivision(
    readings: list[SignalReading], country: str | None
) -> tuple[str | None, tuple[str, ...]]:
    """The subdivision the presence readings (GPS, serving network) agree on; or candidates.

    The strongest agreeing presence reading gives the candidates (one subdivision, or several
    for a network serving several). Weaker presence readings narrow them when they all agree
    on a subset (a GPS fix weakened offshore in Crimea and a network serving Crimea and
    Sevastopol give UA-43); one naming a subdivision outside them is a conflict, and then
    nothing is named. A SIM says where it was issued, not where the phone is: never used.
    """
    if country is None:
        return None, ()
    named = [
        r
        for r in readings
        if r.kind in PRESENCE_KINDS and (r.subdivision or r.subdivisions) and country in r.countries
    ]
    if not named:
        return None, ()

    def place(r: SignalReading) -> frozenset[str]:
        return frozenset((r.subdivision,) if r.subdivision else r.subdivisions)

    top = max(reading_weight(r) for r in named)
    strongest = {place(r) for r in named if reading_weight(r) == top}
    if len(strongest) != 1:
        return None, ()
    candidates = strongest.pop()
    narrowed = candidates
    for r in named:
        other = place(r)
        if not other & candidates:
            return None, ()  # a presence reading places it elsewhere: name nothing
        narrowed &= other
    if not narrowed:
        narrowed = candidates  # weaker readings disagree among the candidates: keep them all
    if len(narrowed) == 1:
        return next(iter(narrowed)), ()
    return None, tuple(sorted(narrowed))


def _conflict_flags(readings: list[SignalReading], country: str | None) -> set[str]:
    flags: set[str] = set()
    by_kind: dict[SignalKind, list[SignalReading]] = defaultdict(list)
    for r in readings:
        if r.countries:
            by_kind[r.kind].append(r)

    # Roaming: a slot whose SIM's home country is not the country of the network serving it.
    sims = {r.slot: set(r.countries) for r in by_kind[SignalKind.SIM]}
    nets = {r.slot: set(r.countries) for r in by_kind[SignalKind.NETWORK]}
    roaming_homes: set[str] = set()
    for slot, home in sims.items():
        serving = nets.get(slot)
        if serving is not None and not home & serving:
            flags.add(ROAMING)
            roaming_homes |= home

    if country is None:
        return flags
    presence_backed = any(country in r.countries for k in PRESENCE_KINDS for r in by_kind[k])
    disagree = False
    administrators = _administrators(readings, country)
    for r in by_kind[SignalKind.IP]:
        if country in r.countries or set(r.countries) <= administrators:
            continue  # agrees, or the address space the place's providers use
        if roaming_homes & set(r.countries):
            # Roaming data is routed home: the IP of a roaming phone is its home country's.
            flags.add(HOME_ROUTED_IP)
        elif presence_backed:
            flags.add(VPN_SUSPECTED)
        else:
            disagree = True
    for kind in (SignalKind.GPS, SignalKind.NETWORK, SignalKind.SIM):
        for r in by_kind[kind]:
            if country in r.countries:
                continue
            if kind is SignalKind.SIM and set(r.countries) & roaming_homes:
                continue  # explained by roaming
            disagree = True
    if disagree:
        flags.add(SIGNALS_DISAGREE)
    return flags


def explain(estimate: LocationEstimate, name: Callable[[str], str]) -> str:
    """One paragraph a support agent can read to a customer."""

    def label(code: str) -> str:
        return f"{name(code)} ({code})"

    if estimate.country is None:
        head = "Location unknown"
        if SIGNALS_DISAGREE in estimate.flags:
            head += ": the signals point to different countries equally"
        elif NO_SIGNALS in estimate.flags:
            head += ": no signals were given"
        else:
            head += ": no signal could be placed in a country"
    else:
        where = label(estimate.country)
        if estimate.subdivision:
            where += f", {estimate.subdivision}"
        head = f"Located in {where} with confidence {estimate.confidence:.2f}"
    parts = []
    for e in estimate.evidence:
        r = e.reading
        slot = f" (slot {r.slot})" if r.slot is not None else ""
        if not r.countries:
            verdict = "says nothing"
        elif e.agrees:
            verdict = "agrees"
        elif e.agrees is False:
            verdict = "points elsewhere"
        else:
            verdict = "is undecided"
        parts.append(f"{r.kind.value}{slot} {r.value}: {r.note} [{verdict}, weight {e.weight:.2f}]")
    text = head + "."
    if parts:
        text += " " + "; ".join(parts) + "."
    if estimate.flags:
        text += " Flags: " + ", ".join(estimate.flags) + "."
    return text
