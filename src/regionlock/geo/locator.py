"""The location resolver: every signal resolved offline, then fused into a `LocationEstimate`."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from regionlock.domain.errors import InvalidInput
from regionlock.domain.location import LocationEstimate, SharedReading, explain, fuse_ordered
from regionlock.domain.reading import SignalKind, SignalReading
from regionlock.domain.signals import GpsFix, Signals
from regionlock.geo.boundaries import Boundaries, GpsMatch
from regionlock.geo.ip import IpResolver, load_ip_source
from regionlock.geo.mcc import MccTable
from regionlock.geo.tz import LocaleResolver, TimezoneResolver, TzTables

_NETWORK, _SIM = SignalKind.NETWORK, SignalKind.SIM


@dataclass(frozen=True, slots=True)
class LocatorInfo:
    """What data a locator runs on, for logs, `--version` and audit records."""

    ip_source: str
    tz_version: str
    boundaries: str
    load_seconds: float


class Locator:
    """Holds the loaded reference data; `locate` and `locate_many` do no I/O."""

    def __init__(
        self,
        *,
        ip_source: str | None = None,
        boundaries: Boundaries | None = None,
        mcc: MccTable | None = None,
        tz: TzTables | None = None,
    ) -> None:
        started = time.perf_counter()
        self.boundaries = boundaries or Boundaries()
        self.mcc = mcc or MccTable.load()
        self.tz_tables = tz or TzTables.load()
        source = load_ip_source(ip_source)
        self.ip = IpResolver(source)
        self.timezones = TimezoneResolver(self.tz_tables)
        self._memo_table: dict[Hashable, SharedReading] = {}
        # Notes depend only on the match (a few thousand distinct ones): format each once.
        self._gps_notes: dict[tuple[tuple[str, ...], str | None, tuple[str, ...]], str] = {}
        self.locales = LocaleResolver(self.tz_tables)
        self.info = LocatorInfo(
            ip_source=source.name,
            tz_version=self.tz_tables.version,
            boundaries=", ".join(f"{k}: {v}" for k, v in self.boundaries.meta["sources"].items()),
            load_seconds=time.perf_counter() - started,
        )

    def country_name(self, code: str) -> str:
        return self.tz_tables.country_name(code)

    def explain(self, estimate: LocationEstimate) -> str:
        return explain(estimate, self.country_name)

    def locate(self, signals: Signals) -> LocationEstimate:
        """Resolve and fuse one device's signals. Raises InvalidSignal for an unknown zone etc."""
        return self.locate_many([signals])[0]

    def locate_many(self, batch: Sequence[Signals]) -> list[LocationEstimate]:
        """Resolve many devices at once; raises the first device's InvalidSignal, if any."""
        out: list[LocationEstimate] = []
        for result in self.locate_each(batch):
            if isinstance(result, InvalidInput):
                raise result
            out.append(result)
        return out

    def locate_each(self, batch: Sequence[Signals]) -> list[LocationEstimate | InvalidInput]:
        """Resolve many devices at once, GPS and IP look-ups vectorised across the batch.

        A device with an invalid signal (an unknown time zone, say) gets its error in its place;
        the others are located as usual.
        """
        gps_matches = self._gps_matches(batch)
        ip_readings = self._ip_readings(batch)
        out: list[LocationEstimate | InvalidInput] = []
        for s, match, ip in zip(batch, gps_matches, ip_readings, strict=True):
            gps = None if s.gps is None or match is None else self._gps_reading(s.gps, match)
            try:
                out.append(fuse_ordered(self._parts(s, gps, ip)))
            except InvalidInput as exc:
                out.append(exc)
        return out

    def _parts(
        self, s: Signals, gps: SignalReading | None, ip: SignalReading | None
    ) -> list[SignalReading | SharedReading]:
        """The device's readings made kind by kind in SignalKind order (GPS, network and SIM
        slot by slot, IP, time zone, locale): already in fusion order, so `fuse_ordered` needs
        no sort. Raises InvalidSignal for an unknown zone etc."""
        parts: list[SignalReading | SharedReading] = [] if gps is None else [gps]
        resolve = self.mcc.resolve
        for slot, plmn in enumerate(s.network, start=1):
            parts.append(self._memo((_NETWORK, plmn, slot), resolve, plmn, _NETWORK, slot))
        for slot, plmn in enumerate(s.sim, start=1):
            parts.append(self._memo((_SIM, plmn, slot), resolve, plmn, _SIM, slot))
        if ip is not None:
            parts.append(ip)
        if s.timezone is not None:
            parts.append(
                self._memo((SignalKind.TIMEZONE, s.timezone), self.timezones.resolve, s.timezone)
            )
        if s.locale is not None:
            parts.append(self._memo((SignalKind.LOCALE, s.locale), self.locales.resolve, s.locale))
        return parts

    def _gps_matches(self, batch: Sequence[Signals]) -> list[GpsMatch | None]:
        """Each device's GPS match (None without a fix), in one vectorised look-up."""
        matches: list[GpsMatch | None] = [None] * len(batch)
        index = [i for i, s in enumerate(batch) if s.gps is not None]
        fixes = [f for f in (batch[i].gps for i in index) if f is not None]
        if len(fixes) == 1:
            # One point (a single `locate`): the scalar look-up answers most land points from
            # the grid alone, without numpy's per-call overhead; same answers either way.
            matches[index[0]] = self.boundaries.lookup(fixes[0].lat, fixes[0].lon)
        elif fixes:
            found = self.boundaries.lookup_many([f.lat for f in fixes], [f.lon for f in fixes])
            for i, match in zip(index, found, strict=True):
                matches[i] = match
        return matches

    def _ip_readings(self, batch: Sequence[Signals]) -> list[SignalReading | None]:
        """Each device's IP reading (None without an address), in one batch call to the source."""
        readings: list[SignalReading | None] = [None] * len(batch)
        index = [i for i, s in enumerate(batch) if s.ip is not None]
        if index:
            found = self.ip.resolve_many([batch[i].ip or "" for i in index])
            for i, reading in zip(index, found, strict=True):
                readings[i] = reading
        return readings

    def _memo(
        self, key: Hashable, resolve: Callable[..., SignalReading], *args: Any
    ) -> SharedReading:
        """MCCs, zones and locales repeat across a fleet; their readings are immutable values,
        resolved once and shared, and fusion's work on each is shared too (`SharedReading`).
        Bounded: the memo starts afresh past 100,000 entries."""
        found = self._memo_table.get(key)
        if found is None:
            # raises InvalidSignal for a bad value: never memoised
            found = SharedReading(resolve(*args))
            if len(self._memo_table) >= 100_000:
                self._memo_table.clear()
            self._memo_table[key] = found
        return found

    def _gps_reading(self, fix: GpsFix, match: GpsMatch) -> SignalReading:
        key = (match.countries, match.subdivision, match.tags)  # tuples hash in C; faster
        note = self._gps_notes.get(key)
        if note is None:
            note = self._gps_notes[key] = self._gps_note(match)
        # Positional: keywords cost a third more, once per device.
        return SignalReading(
            SignalKind.GPS,
            str(fix),
            match.countries,
            note,
            match.subdivision,  # subdivision
            None,  # slot
            fix.accuracy_m,
            match.tags,
        )

    def _gps_note(self, match: GpsMatch) -> str:
        if not match.countries:
            note = "no country's land here (open sea, or outside the boundary data)"
        elif len(match.countries) > 1:
            note = "in an area claimed by " + " and ".join(match.countries)
        else:
            (code,) = match.countries
            note = f"lies in {self.country_name(code)}"
            if match.subdivision:
                sub_name = self.boundaries.subdivision_names.get(match.subdivision, "")
                note += f", {match.subdivision} {sub_name}".rstrip()
            if "disputed" in match.tags:
                note += " (disputed; ISO 3166 assigns it here)"
            if "offshore" in match.tags:
                note += " (offshore: nearest land)"
        return note
