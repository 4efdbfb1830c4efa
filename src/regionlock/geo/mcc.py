"""Mobile network identity (MCC, MNC) -> countries, offline, from the ITU E.212 list.

The table is the shipped `regionlock/data/mcc.csv`, built by `scripts/prepare_mcc.py` (source,
licence and refresh steps in `data/README-mcc.md`). Its columns:

    mcc,mnc,countries,subdivisions,tags,note

A row with an empty `mnc` is what the MCC alone says: one ISO 3166-1 alpha-2 code, several when
the MCC is shared by several territories (340, 362, 647, 310-316, ...), none for codes that are
not a country (901 international networks, 001 and 999 test/private use). A row with an `mnc`
exists only where that network says more than its MCC: it narrows a shared MCC to some of its
territories, or records a network used outside its MCC's territory (Digicel on 338-05 across the
Caribbean, Russian networks in occupied Crimea). Any other MNC adds nothing to its MCC.

Lookups are two dict reads; the shipped table is parsed once per process.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from regionlock.domain.errors import DataUnavailable
from regionlock.domain.reading import SignalKind, SignalReading
from regionlock.domain.signals import Plmn

__all__ = ["MccEntry", "MccTable"]

_HEADER = ("mcc", "mnc", "countries", "subdivisions", "tags", "note")
_MCC_RE = re.compile(r"^[0-9]{3}$")
_MNC_RE = re.compile(r"^[0-9]{2,3}$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_SUBDIVISION_RE = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
_TAG_RE = re.compile(r"^[a-z][a-z_-]*$")


@dataclass(frozen=True, slots=True)
class MccEntry:
    """One row of the table: where an MCC (or an MCC-MNC pair) points, and what it is."""

    countries: tuple[str, ...]
    subdivisions: tuple[str, ...]
    tags: tuple[str, ...]
    note: str

    def where(self) -> str:
        """Where this row points, as text: `GG, JE` or `UA (UA-40, UA-43)`."""
        text = ", ".join(self.countries)
        if self.subdivisions:
            text += f" ({', '.join(self.subdivisions)})"
        return text


class MccTable:
    """The MCC/MNC -> countries table. Immutable once built; share one instance freely."""

    __slots__ = ("_mccs", "_mncs", "source")

    def __init__(
        self,
        mccs: Mapping[str, MccEntry],
        mncs: Mapping[tuple[str, str], MccEntry],
        source: str = "",
    ) -> None:
        self._mccs: dict[str, MccEntry] = dict(mccs)
        self._mncs: dict[tuple[str, str], MccEntry] = dict(mncs)
        self.source = source

    @classmethod
    def load(cls, path: Path | None = None) -> MccTable:
        """The table in `path`, or the packaged one (parsed once, then shared) when None.

        Raises DataUnavailable when the file is missing, unreadable or malformed.
        """
        if path is None:
            return _packaged_table()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataUnavailable(f"MCC table {path} cannot be read: {exc}") from None
        return cls.from_csv(text, str(path))

    @classmethod
    def from_csv(cls, text: str, source: str = "<text>") -> MccTable:
        """Parse the CSV form described in the module docstring."""
        rows = csv.reader(io.StringIO(text))
        header = next(rows, None)
        if header is None or tuple(header) != _HEADER:
            raise DataUnavailable(f"MCC table {source}: header is {header}, expected {_HEADER}")
        mccs: dict[str, MccEntry] = {}
        mncs: dict[tuple[str, str], MccEntry] = {}
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            mcc, mnc, entry = _parse_row(row, f"MCC table {source}, line {line}")
            if mnc:
                if (mcc, mnc) in mncs:
                    raise DataUnavailable(f"MCC table {source}, line {line}: {mcc}-{mnc} twice")
                mncs[(mcc, mnc)] = entry
            else:
                if mcc in mccs:
                    raise DataUnavailable(f"MCC table {source}, line {line}: MCC {mcc} twice")
                mccs[mcc] = entry
        orphans = sorted(f"{mcc}-{mnc}" for mcc, mnc in mncs if mcc not in mccs)
        if orphans:
            raise DataUnavailable(f"MCC table {source}: MNC rows without an MCC row: {orphans}")
        if not mccs:
            raise DataUnavailable(f"MCC table {source} has no rows")
        return cls(mccs, mncs, source)

    def __len__(self) -> int:
        """How many MCCs the table knows (assigned ones and the special codes)."""
        return len(self._mccs)

    def entry(self, mcc: str, mnc: str | None = None) -> MccEntry | None:
        """The row for an MCC, or for an MCC-MNC pair when that pair has one of its own."""
        if mnc is not None:
            return self._mncs.get((mcc, mnc))
        return self._mccs.get(mcc)

    def resolve(self, plmn: Plmn, kind: SignalKind, slot: int) -> SignalReading:
        """What a SIM's or serving network's PLMN says about the device's country.

        An MCC that is well-formed but not assigned gives no country (not an error); syntax was
        already checked by `regionlock.domain.signals.parse_plmn`.
        """
        base = self._mccs.get(plmn.mcc)
        if base is None:
            return SignalReading(
                kind,
                str(plmn),
                (),
                f"MCC {plmn.mcc} is not assigned in ITU E.212",
                slot=slot,
                tags=("unassigned",),
            )
        note = _mcc_sentence(plmn.mcc, base)
        found = base
        if plmn.mnc is not None:
            narrowed = self._mncs.get((plmn.mcc, plmn.mnc))
            if narrowed is not None:
                found = narrowed
                note += f"; MNC {plmn.mnc} is {narrowed.where()}: {narrowed.note}"
            elif len(base.countries) > 1:
                note += f"; MNC {plmn.mnc} does not narrow it down"
        return SignalReading(
            kind,
            str(plmn),
            found.countries,
            note,
            subdivision=found.subdivisions[0] if len(found.subdivisions) == 1 else None,
            slot=slot,
            tags=tuple(sorted(set(base.tags) | set(found.tags))),
            subdivisions=found.subdivisions if len(found.subdivisions) > 1 else (),
        )


def _mcc_sentence(mcc: str, entry: MccEntry) -> str:
    if len(entry.countries) > 1:
        return f"MCC {mcc} is shared by {', '.join(entry.countries)} ({entry.note})"
    return f"MCC {mcc} is {entry.note}"


def _split(field: str, pattern: re.Pattern[str], what: str, where: str) -> tuple[str, ...]:
    if not field:
        return ()
    items = field.split(";")
    for item in items:
        if not pattern.match(item):
            raise DataUnavailable(f"{where}: {item!r} is not a valid {what}")
    return tuple(sorted(set(items)))


def _parse_row(row: list[str], where: str) -> tuple[str, str, MccEntry]:
    if len(row) != len(_HEADER):
        raise DataUnavailable(f"{where}: {len(row)} fields, expected {len(_HEADER)}")
    mcc, mnc, countries, subdivisions, tags, note = row
    if not _MCC_RE.match(mcc):
        raise DataUnavailable(f"{where}: MCC {mcc!r} is not three digits")
    if mnc and not _MNC_RE.match(mnc):
        raise DataUnavailable(f"{where}: MNC {mnc!r} is not two or three digits")
    if not note.strip():
        raise DataUnavailable(f"{where}: empty note")
    entry = MccEntry(
        countries=_split(countries, _COUNTRY_RE, "ISO 3166-1 alpha-2 code", where),
        subdivisions=_split(subdivisions, _SUBDIVISION_RE, "ISO 3166-2 code", where),
        tags=_split(tags, _TAG_RE, "tag", where),
        note=note.strip(),
    )
    if mnc and not entry.countries:
        raise DataUnavailable(f"{where}: an MNC row must name at least one country")
    return mcc, mnc, entry


@functools.cache
def _packaged_table() -> MccTable:
    resource = resources.files("regionlock").joinpath("data").joinpath("mcc.csv")
    try:
        text = resource.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataUnavailable(f"packaged MCC table cannot be read: {exc}") from None
    return MccTable.from_csv(text, "regionlock/data/mcc.csv")
