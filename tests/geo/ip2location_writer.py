"""Write small IP2Location DB1 (country) BIN files for tests.

The layout is the one the `IP2Location` reader library parses (IP2Location/database.py):

* A header; all multi-byte numbers are little-endian and every "address" is a 1-based file
  position. Byte 0 is the edition (1 = DB1), byte 1 the number of 4-byte columns per IPv4 row
  (2 for DB1: IP_FROM and COUNTRY), bytes 2-4 the build date (year - 2000, month, day), then
  uint32 IPv4 row count, IPv4 rows address, IPv6 row count, IPv6 rows address, IPv4 index
  address, IPv6 index address, and the bytes product code (1 = IP2Location), licence code and
  database size. Real files pad the header to 64 bytes; so does this writer.
* Optional indexes: 65,536 pairs of uint32 row numbers (first row, last row) per family, keyed by
  the top 16 bits of the address, that narrow the reader's binary search.
* IPv4 rows: uint32 IP_FROM then uint32 pointer to the country strings. A row covers
  [its IP_FROM, the next row's IP_FROM), so one extra closing row follows the counted ones.
* IPv6 rows: the same with a 128-bit IP_FROM (four little-endian uint32, low word first).
* Country strings: the pointer is the 0-based offset of a length-prefixed short code; the reader
  takes the long name, also length-prefixed, 3 bytes further on.

Ranges not given to the writer are filled with "-", as IP2Location does for unallocated space.
"""

from __future__ import annotations

import bisect
import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HEADER_SIZE = 64
INDEX_ENTRIES = 1 << 16
UNKNOWN = ("-", "-")


@dataclass(frozen=True)
class Range:
    """Addresses first..last (inclusive, same family) belong to `code` / `name`."""

    first: str
    last: str
    code: str
    name: str


def _rows(ranges: Iterable[Range], version: int) -> list[tuple[int, tuple[str, str]]]:
    """Sorted (start, (code, name)) rows covering the whole family, gaps filled with "-"."""
    bits = 32 if version == 4 else 128
    spans = []
    family = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    for r in ranges:
        low, high = ipaddress.ip_address(r.first), ipaddress.ip_address(r.last)
        if low.version != version or high.version != version or int(high) < int(low):
            raise ValueError(f"bad IPv{version} range {r}")
        spans.append((int(low), int(high), (r.code, r.name)))
    spans.sort()
    rows: list[tuple[int, tuple[str, str]]] = []
    cursor = 0
    for first, last, label in spans:
        if first < cursor:
            raise ValueError(f"overlapping ranges at {family(first)}")
        if first > cursor:
            rows.append((cursor, UNKNOWN))
        rows.append((first, label))
        cursor = last + 1
    top = (1 << bits) - 1
    if cursor <= top:
        rows.append((cursor, UNKNOWN))
    return rows


def _index(starts: Sequence[int], bits: int) -> bytes:
    """For each top-16-bit bucket, the rows holding its first and its last address."""
    shift = bits - 16
    out = bytearray()
    for bucket in range(INDEX_ENTRIES):
        low_address = bucket << shift
        high_address = low_address | ((1 << shift) - 1)
        low = bisect.bisect_right(starts, low_address) - 1
        high = bisect.bisect_right(starts, high_address) - 1
        out += struct.pack("<II", low, high)
    return bytes(out)


def write_db1(
    path: Path,
    ipv4: Iterable[Range] = (),
    ipv6: Iterable[Range] | None = None,
    *,
    with_index: bool = True,
    date: tuple[int, int, int] = (2025, 6, 1),
    product_code: int = 1,
) -> Path:
    """Write a DB1 BIN file; `ipv6=None` makes an IPv4-only file (no IPv6 rows at all)."""
    v4_rows = _rows(ipv4, 4)
    v6_rows = _rows(ipv6, 6) if ipv6 is not None else []

    columns = 2
    v4_width = columns * 4
    v6_width = columns * 4 + 12
    # Rows counted in the header exclude the closing row; it only bounds the last real row.
    # The reader looks up the family's very last address as "last minus one", so the closing
    # row can start at that last address.
    v4_closing = (0xFFFFFFFF, UNKNOWN)
    v6_closing = ((1 << 128) - 1, UNKNOWN)
    v4_all = [*v4_rows, v4_closing]
    v6_all = [*v6_rows, v6_closing] if v6_rows else []

    position = HEADER_SIZE  # 0-based offset of the next section
    v4_index_at = v6_index_at = 0
    if with_index:
        v4_index_at, position = position, position + INDEX_ENTRIES * 8
        if v6_rows:
            v6_index_at, position = position, position + INDEX_ENTRIES * 8
    v4_at, position = position, position + len(v4_all) * v4_width
    v6_at, position = position, position + len(v6_all) * v6_width
    strings_at = position

    strings = bytearray()
    pointers: dict[tuple[str, str], int] = {}
    for _, label in [*v4_all, *v6_all]:
        if label in pointers:
            continue
        code, name = (part.encode("latin-1") for part in label)
        if len(code) > 2 or len(name) > 255:
            raise ValueError(f"label {label} does not fit the DB1 string slots")
        pointers[label] = strings_at + len(strings)
        # The short code sits in a fixed 3-byte slot; the long name follows it.
        strings += bytes([len(code)]) + code.ljust(2, b"\0") + bytes([len(name)]) + name

    body = bytearray()
    if with_index:
        body += _index([start for start, _ in v4_rows], 32)
        if v6_rows:
            body += _index([start for start, _ in v6_rows], 128)
    for start, label in v4_all:
        body += struct.pack("<II", start, pointers[label])
    for start, label in v6_all:
        body += start.to_bytes(16, "little") + struct.pack("<I", pointers[label])
    body += strings

    year, month, day = date
    header = struct.pack(
        "<BBBBBIIIIIIBBB",
        1,  # DB1
        columns,
        year - 2000,
        month,
        day,
        len(v4_rows),
        v4_at + 1,
        len(v6_rows),
        v6_at + 1 if v6_rows else 0,
        v4_index_at + 1 if with_index else 0,
        v6_index_at + 1 if v6_index_at else 0,
        product_code,
        0,  # licence code
        1,  # database size (MB, informational)
    ).ljust(HEADER_SIZE, b"\0")
    path.write_bytes(header + bytes(body))
    return path
