"""Streaming parse of a device import file (CSV) into registry records and row problems.

The file has a header row naming at least `imei, serial, model, sales_region, distributor,
batch, public_key`, and optionally `imei2, sku, manufactured, shipped` (dates as YYYY-MM-DD).
Columns may come in any order; a column the format does not know is an error, so a misspelt
optional column is never silently ignored.

`parse_device_csv` yields, row by row, a `DeviceRecord` or an `ImportProblem` naming the line
and everything wrong with it (separated by "; "). One bad row never stops the rest. Rows are
read lazily from any iterable of lines, so memory does not grow with the file, except for the
duplicate check below.

Duplicates within the file: a row whose IMEIs were all seen before with the same data is an
idempotent repeat and is skipped; a row sharing an IMEI with an earlier row that has different
data is a problem naming that earlier line (the earlier row stands: it was already yielded).
To tell the two apart, every accepted IMEI is remembered as one dict entry, IMEI (as an int) ->
64 bits of the record's fingerprint packed with its line number (one int): about 115 bytes per
IMEI in CPython (measured), 115 MB for a million single-IMEI rows. Parsing costs about 20 us
per row on this machine. Duplicates against devices already in the registry are for the storage
layer to judge (`DeviceRecord.fingerprint` helps).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Literal

from regionlock.domain.device import (
    DeviceRecord,
    Imei,
    parse_imei,
    parse_public_key,
    parse_sales_region,
)
from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import text_problem

REQUIRED_COLUMNS = ("imei", "serial", "model", "sales_region", "distributor", "batch", "public_key")
OPTIONAL_COLUMNS = ("imei2", "sku", "manufactured", "shipped")
_TEXT_COLUMNS = ("serial", "model", "distributor", "batch", "sku")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """A row that was not imported: its first line in the file (the header is line 1), and why."""

    line: int
    message: str


@dataclass
class ImportStats:
    """Counts kept while parsing, for progress and the final summary."""

    rows: int = 0  # data rows read (blank lines are not rows)
    records: int = 0  # records yielded
    duplicates: int = 0  # identical repeats skipped
    problems: int = 0  # problems yielded


def parse_device_csv(
    lines: Iterable[str],
    *,
    known_countries: Collection[str],
    id_key: bytes,
    stats: ImportStats | None = None,
) -> Iterator[DeviceRecord | ImportProblem]:
    """Records and problems, in file order (see `parse_device_rows` for the details)."""
    for _, item in parse_device_rows(
        lines, known_countries=known_countries, id_key=id_key, stats=stats
    ):
        yield item


def parse_device_rows(
    lines: Iterable[str],
    *,
    known_countries: Collection[str],
    id_key: bytes,
    stats: ImportStats | None = None,
) -> Iterator[tuple[int, DeviceRecord | ImportProblem]]:
    """(line, record or problem), in file order, from the lines of an import file.

    `lines` should come from a file opened with `newline=""` (as the csv module asks), so a
    quoted field may span lines. A header that cannot be used raises `InvalidInput` before
    anything is yielded: no row of such a file could be read correctly.
    """
    stats = stats if stats is not None else ImportStats()
    reader = csv.reader(iter(lines), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput("the file is empty; expected a header row") from None
    except csv.Error as exc:
        raise InvalidInput(f"line 1: the header row is not valid CSV ({exc})") from None
    columns = _columns(header)
    layout = (len(columns), tuple(columns.get(name) for name in _FIELDS))
    seen = _SeenImeis()

    line = reader.line_num
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num
            stats.rows += 1
            stats.problems += 1
            yield start, ImportProblem(start, f"not valid CSV ({exc})")
            continue
        line = reader.line_num
        if not "".join(row).strip():
            continue
        stats.rows += 1
        result = _record(row, layout, start, known_countries, id_key)
        if isinstance(result, ImportProblem):
            stats.problems += 1
            yield start, result
            continue
        outcome = seen.remember(result, start)
        if outcome == "new":
            stats.records += 1
            yield start, result
        elif outcome == "repeat":
            stats.duplicates += 1
        else:
            stats.problems += 1
            yield start, outcome


def _columns(header: list[str]) -> dict[str, int]:
    """Column name -> position, or `InvalidInput` naming every problem with the header."""
    names = [cell.strip().lower() for cell in header]
    if names:
        # A UTF-8 byte order mark read as text; what follows it is stripped like every name.
        names[0] = names[0].removeprefix("\ufeff").strip()
    problems = []
    positions: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            problems.append(f"column {i + 1} has no name")
        elif name in positions:
            problems.append(f"column {name!r} appears twice")
        else:
            positions[name] = i
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    unknown = [n for n in positions if n not in known]
    if unknown:
        problems.append(
            f"unknown column(s) {', '.join(unknown)}; the optional ones are "
            f"{', '.join(OPTIONAL_COLUMNS)}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in positions]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if problems:
        raise InvalidInput("line 1: header: " + "; ".join(problems))
    return positions


# The fields of a record, in the order `_record` unpacks them.
_FIELDS = (
    "imei",
    "imei2",
    "serial",
    "model",
    "sku",
    "sales_region",
    "distributor",
    "batch",
    "manufactured",
    "shipped",
    "public_key",
)


def _record(
    row: list[str],
    layout: tuple[int, tuple[int | None, ...]],
    line: int,
    known_countries: Collection[str],
    id_key: bytes,
) -> DeviceRecord | ImportProblem:
    """One row's record, or everything wrong with it. `layout`: the header's number of
    columns, and where each of `_FIELDS` is (None: not in this file, read as empty)."""
    size, positions = layout
    if len(row) != size:
        return ImportProblem(line, f"{len(row)} fields, but the header names {size}")
    (
        imei_text,
        imei2_text,
        serial,
        model,
        sku,
        region_text,
        distributor,
        batch,
        made_text,
        shipped_text,
        key_text,
    ) = [row[i].strip() if i is not None else "" for i in positions]
    errors: list[str] = []
    for name, value in (
        ("serial", serial),
        ("model", model),
        ("distributor", distributor),
        ("batch", batch),
    ):
        if not value:
            errors.append(f"{name} is empty")
    # The csv module passes NUL on (since Python 3.11) and lines handed in as text may hold
    # lone surrogates: neither can be stored (PostgreSQL refuses NUL; a surrogate made the
    # record's fingerprint raise UnicodeEncodeError, ending the whole import), so the row is
    # refused. One look at all the free text; which column only when something is wrong.
    if text_problem(serial + model + distributor + batch + sku) is not None:
        for name, value in zip(
            _TEXT_COLUMNS, (serial, model, distributor, batch, sku), strict=True
        ):
            problem = text_problem(value)
            if problem is not None:
                errors.append(f"{name} {problem}")
    imei: Imei | None = None
    imei2: Imei | None = None
    region: str | None = None
    key: bytes | None = None
    manufactured: date | None = None
    shipped: date | None = None
    try:
        imei = parse_imei(imei_text)
    except InvalidInput as exc:
        errors.append(exc.message)
    if imei2_text:
        try:
            imei2 = parse_imei(imei2_text)
        except InvalidInput as exc:
            errors.append(exc.message)
    try:
        region = parse_sales_region(region_text, known_countries)
    except InvalidInput as exc:
        errors.append(exc.message)
    try:
        key = parse_public_key(key_text)
    except InvalidInput as exc:
        errors.append(exc.message)
    try:
        manufactured = _date(made_text, "manufactured")
    except InvalidInput as exc:
        errors.append(exc.message)
    try:
        shipped = _date(shipped_text, "shipped")
    except InvalidInput as exc:
        errors.append(exc.message)
    if imei is not None and imei2 is not None and imei == imei2:
        errors.append(f"imei2 {imei2} repeats imei")
    if manufactured is not None and shipped is not None and shipped < manufactured:
        errors.append(
            f"shipped {shipped.isoformat()} is before manufactured {manufactured.isoformat()}"
        )
    if errors or imei is None or region is None or key is None:
        return ImportProblem(line, "; ".join(errors))
    return DeviceRecord.create(
        imeis=(imei,) if imei2 is None else (imei, imei2),
        id_key=id_key,
        serial=serial,
        model=model,
        sales_region=region,
        distributor=distributor,
        batch=batch,
        public_key=key,
        sku=sku or None,
        manufactured=manufactured,
        shipped=shipped,
    )


def _date(text: str, name: str) -> date | None:
    if not text:
        return None
    if _DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise InvalidInput(f"{name} {text!r}: not a date (expected YYYY-MM-DD)")


class _SeenImeis:
    """The IMEIs of the rows accepted so far, with a digest of each row's data and its line.

    One dict entry per IMEI: the IMEI as an int -> one int packing 64 bits of the record's
    fingerprint above the line number. Ints rather than strings, bytes and tuples because
    they are the smallest objects CPython has that hold these values.
    """

    _LINE_BITS = 32

    def __init__(self) -> None:
        self._seen: dict[int, int] = {}

    def remember(self, record: DeviceRecord, line: int) -> Literal["new", "repeat"] | ImportProblem:
        """ "new" (and remembered), "repeat" (same data as before) or the conflict found."""
        digest = int.from_bytes(record.fingerprint()[:8], "big")
        keys = [int(i.digits) for i in record.imeis]
        for imei, key in zip(record.imeis, keys, strict=True):
            packed = self._seen.get(key)
            if packed is not None and packed >> self._LINE_BITS != digest:
                first = packed & ((1 << self._LINE_BITS) - 1)
                return ImportProblem(
                    line, f"IMEI {imei} is also on line {first} with different data"
                )
        if keys[0] in self._seen:
            # Same fingerprint, hence the same IMEIs: every one of them was seen with this data.
            return "repeat"
        packed = digest << self._LINE_BITS | min(line, (1 << self._LINE_BITS) - 1)
        for key in keys:
            self._seen[key] = packed
        return "new"
