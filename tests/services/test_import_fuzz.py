"""Whatever an import file holds, `parse_device_rows` answers each row with a record or an
`ImportProblem` for that row, and a header it cannot use with `InvalidInput` before any row:
one bad row never sinks the rows after it, and no exception of another kind escapes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fuzz_inputs import texts
from hypothesis import given, settings
from hypothesis import strategies as st

from regionlock.domain.device import DeviceRecord, luhn_check_digit
from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import text_problem
from regionlock.services.device_import import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    ImportProblem,
    ImportStats,
    parse_device_rows,
)
from regionlock.signing.jws import b64url_encode

FUZZ = settings(max_examples=200, deadline=None)
ID_KEY = b"import-fuzz-key-0123456789abcdef"
COUNTRIES = frozenset({"DE", "FR", "GB", "US"})
COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
KEYS = [
    b64url_encode(
        Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32).public_key().public_bytes_raw()
    )
    for seed in range(1, 6)
]

Item = DeviceRecord | ImportProblem


def parse(text: str) -> tuple[list[tuple[int, Item]], ImportStats]:
    """Every (line, item) of `text`, read as the command line reads a file."""
    stats = ImportStats()
    rows = parse_device_rows(
        io.StringIO(text, newline=""), known_countries=COUNTRIES, id_key=ID_KEY, stats=stats
    )
    return list(rows), stats


def check_items(items: list[tuple[int, Item]], stats: ImportStats) -> None:
    """What every parse promises, whatever the file."""
    lines = [line for line, _ in items]
    assert lines == sorted(lines) and all(line >= 2 for line in lines)
    for line, item in items:
        assert isinstance(item, DeviceRecord | ImportProblem), item
        if isinstance(item, ImportProblem):
            assert item.line == line and item.message
        else:  # everything a record holds can be stored (PostgreSQL refuses NUL) and shown
            for text in (item.serial, item.model, item.distributor, item.batch, item.sku or ""):
                assert text_problem(text) is None, text
    assert stats.rows == stats.records + stats.duplicates + stats.problems
    assert stats.records + stats.problems == len(items)


def csv_line(cells: Iterable[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)  # "\r\n": the writer then quotes a lone "\r"
    return out.getvalue()


def physical_lines(text: str) -> int:
    return len(io.StringIO(text, newline="").readlines())


# -- rows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoodRow:
    """A valid row, and what its record must hold."""

    imei: str
    cells: dict[str, str]

    def line(self, columns: tuple[str, ...]) -> str:
        return csv_line(self.cells.get(c, "") for c in columns)


def _imei(payload: int) -> str:
    digits = str(payload)
    return digits + str(luhn_check_digit(digits))


# Text a real file could hold in a free-text column: any printable character, separators
# and quotes (which the writer quotes), a line break inside a quoted cell.
_free_text = st.text(
    st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from(',"\n\r\t '),
    min_size=1,
    max_size=10,
).filter(str.strip)


@st.composite
def good_rows(draw: st.DrawFn, payload: int) -> GoodRow:
    imei = _imei(payload)
    made, shipped = sorted(draw(st.lists(st.dates(), min_size=2, max_size=2)))
    cells = {
        "imei": draw(st.sampled_from([imei, f" {imei} ", f"{imei[:2]}-{imei[2:8]}-{imei[8:]}"])),
        "serial": draw(_free_text),
        "model": draw(_free_text),
        "sales_region": draw(st.sampled_from(["DE", "fr", " GB ", "EU", "GLOBAL", "eea"])),
        "distributor": draw(_free_text),
        "batch": draw(_free_text),
        "public_key": draw(st.sampled_from(KEYS)),
        "sku": draw(st.just("") | _free_text),
        "manufactured": draw(st.sampled_from(["", made.isoformat()])),
        "shipped": draw(st.sampled_from(["", shipped.isoformat()])),
    }
    return GoodRow(imei, cells)


# Rows that are no device: any cells (NUL, surrogates, other digits, too few or too many),
# written as CSV; or a raw line without quotes (so it cannot open a field that runs on into
# the next rows), some of it longer than the csv module's field limit.
_bad_rows = (
    st.lists(texts(12), max_size=12).map(csv_line)
    | st.text(st.characters(exclude_categories=(), exclude_characters='"'), max_size=60).map(
        lambda t: t + "\n"
    )
    | st.sampled_from(["x" * 140_000 + "\n", ",,,,,,\n", "\x00\n", '"a"b\n', "\ufeff\n"])
)


@st.composite
def files(draw: st.DrawFn) -> tuple[str, tuple[str, ...], list[GoodRow | str]]:
    columns = tuple(draw(st.permutations(COLUMNS)))
    payloads = draw(st.lists(st.integers(10**13, 10**14 - 1), unique=True, min_size=1, max_size=5))
    rows: list[GoodRow | str] = [draw(good_rows(p)) for p in payloads]
    rows += draw(st.lists(_bad_rows, min_size=1, max_size=5))
    rows = draw(st.permutations(rows))
    text = csv_line(columns) + "".join(
        r.line(columns) if isinstance(r, GoodRow) else r for r in rows
    )
    return text, columns, rows


@FUZZ
@given(files())
def test_a_bad_row_never_sinks_the_good_ones(file: tuple[str, tuple[str, ...], list[Any]]) -> None:
    text, columns, rows = file
    items, stats = parse(text)
    check_items(items, stats)
    found = dict(items)
    line = 2
    for row in rows:
        chunk = row.line(columns) if isinstance(row, GoodRow) else row
        n = physical_lines(chunk)
        if isinstance(row, GoodRow):
            record = found.get(line)
            assert isinstance(record, DeviceRecord), (line, record)
            assert record.imeis[0].digits == row.imei
            assert record.serial == row.cells["serial"].strip()
            assert record.sku == (row.cells["sku"].strip() or None)
        else:
            assert not any(isinstance(found.get(i), DeviceRecord) for i in range(line, line + n))
        line += n


# -- any text at all ---------------------------------------------------------------------------

_header_cells = st.lists(
    st.sampled_from([*COLUMNS, "IMEI", " serial ", "\ufeffimei", "imei2 ", "colour", ""])
    | texts(8),
    max_size=13,
)
_headers = (
    st.permutations(COLUMNS).map(csv_line)
    | _header_cells.map(csv_line)
    | texts(40).map(lambda t: t + "\n")
)
_lines = st.lists(
    _bad_rows | texts(40).map(lambda t: t + "\n") | st.sampled_from(['"\n', 'a,"b\n', '"\r']),
    max_size=6,
)


@FUZZ
@given(_headers, _lines)
def test_any_file_gives_rows_or_a_header_problem(header: str, lines: list[str]) -> None:
    try:
        items, stats = parse(header + "".join(lines))
    except InvalidInput as exc:
        assert exc.message
        return
    check_items(items, stats)


@FUZZ
@given(st.permutations(COLUMNS), st.lists(st.sampled_from(["upper", "pad", "bom"]), max_size=3))
def test_a_header_naming_every_column_is_used(columns: list[str], changes: list[str]) -> None:
    if "upper" in changes:
        columns = [c.upper() for c in columns]
    if "pad" in changes:
        columns = [f" {c}\t" for c in columns]
    header = csv_line(columns)
    if "bom" in changes:
        header = "\ufeff" + header
    items, _ = parse(header + f"490154203237518,S,M,DE,D,B,{KEYS[0]},,,,\n")
    assert len(items) == 1


@pytest.mark.parametrize("text", ["S\x00N", "SN\ud800", "\udfff"])
@pytest.mark.parametrize("column", ["serial", "model", "distributor", "batch", "sku"])
def test_text_that_cannot_be_stored_is_that_rows_problem(column: str, text: str) -> None:
    """The csv module passes NUL on (Python 3.11 stopped refusing it), and text handed in by a
    caller may hold lone surrogates: that row is refused, not stored, and the next one is read."""
    header = (*REQUIRED_COLUMNS, "sku")
    good = dict(
        zip(header, ["490154203237518", "S", "M", "DE", "D", "B", KEYS[0], ""], strict=True)
    )
    bad = {**good, "imei": "352099001761481", column: text}
    items, stats = parse(
        csv_line(header) + csv_line(map(bad.get, header)) + csv_line(good.values())
    )
    check_items(items, stats)
    assert [type(item) for _, item in items] == [ImportProblem, DeviceRecord]
    assert column in items[0][1].message
