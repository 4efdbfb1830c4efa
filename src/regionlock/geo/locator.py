"""The location resolver: every signal resolved offline, then fused into a `LocationEstimate`."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from regionlock.domain.errors import InvalidInput
from regionlock.domain.location import LocationEstimate, explain, fuse
from regionlock.domain.reading import SignalKind, SignalReading
from regionlock.domain.signals import GpsFix, Signals
from regionlock.geo.boundaries import Boundaries, GpsMatch
from regionlock.geo.ip import IpResolver, load_ip_source
from regionlock.geo.mcc import MccTable
from regionlock.geo.tz import LocaleResolver, TimezoneResolver, TzTables


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
        self._memo_table: dict[Hashable, SignalReading] = {}
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
        gps_index = [i for i, s in enumerate(batch) if s.gps is not None]
        gps_matches: dict[int, GpsMatch] = {}
        if gps_index:
            fixes = [f for f in (batch[i].gps for i in gps_index) if f is not None]
            matches = self.boundaries.lookup_many([f.lat for f in fixes], [f.lon for f in fixes])
            gps_matches = dict(zip(gps_index, matches, strict=True))
        ip_index = [i for i, s in enumerate(batch) if s.ip is not None]
        ip_readings: dict[int, SignalReading] = {}
        if ip_index:
            ips = [batch[i].ip or "" for i in ip_index]
            ip_readings = dict(zip(ip_index, self.ip.resolve_many(ips), strict=True))
        out: list[LocationEstimate | InvalidInput] = []
        for i, s in enumerate(batch):
            try:
                out.append(fuse(self._readings(s, gps_matches.get(i), ip_readings.get(i))))
            except InvalidInput as exc:
                out.append(exc)
        return out

    def _readings(
        self, s: Signals, gps: GpsMatch | None, ip: SignalReading | None
    ) -> list[SignalReading]:
        out: list[SignalReading] = []
        if s.gps is not None and gps is not None:
            out.append(self._gps_reading(s.gps, gps))
        for slot, plmn in enumerate(s.network, start=1):
            out.append(
                self._memo(
                    (SignalKind.NETWORK, plmn, slot),
                    self.mcc.resolve,
                    plmn,
                    SignalKind.NETWORK,
                    slot,
                )
            )
        for slot, plmn in enumerate(s.sim, start=1):
            out.append(
                self._memo(
                    (SignalKind.SIM, plmn, slot), self.mcc.resolve, plmn, SignalKind.SIM, slot
                )
            )
        if ip is not None:
            out.append(ip)
        if s.timezone is not None:
            out.append(
                self._memo((SignalKind.TIMEZONE, s.timezone), self.timezones.resolve, s.timezone)
            )
        if s.locale is not None:
            out.append(self._memo((SignalKind.LOCALE, s.locale), self.locales.resolve, s.locale))
        return out

    def _memo(
        self, key: Hashable, resolve: Callable[..., SignalReading], *args: Any
    ) -> SignalReading:
        """MCCs, zones and locales repeat across a fleet; their readings are immutable values,
        resolved once and shared. Bounded: the memo starts afresh past 100,000 entries."""
        found = self._memo_table.get(key)
        if found is None:
            found = resolve(*args)  # raises InvalidSignal for a bad value: never memoised
            if len(self._memo_table) >= 100_000:
                self._memo_table.clear()
            self._memo_table[key] = found
        return found

    def _gps_reading(self, fix: GpsFix, match: GpsMatch) -> SignalReading:
        key = (match.countries, match.subdivision, match.tags)  # tuples hash in C; faster
        note = self._gps_notes.get(key)
        if note is None:
            note = self._gps_notes[key] = self._gps_note(match)
        return SignalReading(
            SignalKind.GPS,
            str(fix),
            match.countries,
            note,
            subdivision=match.subdivision,
            accuracy_m=fix.accuracy_m,
            tags=match.tags,
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
