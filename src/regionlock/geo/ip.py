"""Offline IP address -> country look-ups.

Three interchangeable sources answer "which country is this public address in?":

* `RirSource` (the default) asks the `iptocc` package, which embeds the delegation files of the
  five Regional Internet Registries. It says which country an address block was *registered* to,
  which is not always where it is used.
* `MaxMindSource` reads a GeoIP2 / GeoLite2 Country or City `.mmdb` file.
* `Ip2LocationSource` reads an IP2Location `.BIN` file (DB1 or any richer edition).

`IpResolver` sits in front of a source. It turns an address into a `SignalReading`, and it keeps
every address that carries no location meaning (private, loopback, link-local, CGNAT, multicast,
documentation, benchmarking, 6to4, Teredo and the other IANA special-purpose ranges) away from
the source: those resolve to "unknown" with a note naming the range. IPv4-mapped addresses
(::ffff:0:0/96) and the well-known NAT64 prefix (64:ff9b::/96) are resolved through the IPv4
address they embed, since that is the address the device really used.

Codes coming back from a source are checked before use: only two upper-case letters count, the
registry pseudo-codes "EU" and "AP" (a whole region, not a country) become "unknown", and the
non-ISO "UK" is read as "GB".
"""

from __future__ import annotations

import ipaddress
import os
import re
import string
import struct
import threading
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Protocol, Self, TypeAlias

import IP2Location
import iptocc
import maxminddb

from regionlock.domain.errors import DataUnavailable, InvalidInput, InvalidSignal
from regionlock.domain.reading import SignalKind, SignalReading
from regionlock.domain.signals import ipv4_number, parse_ip
from regionlock.geo.countries import country_name

__all__ = [
    "Ip2LocationSource",
    "IpAddress",
    "IpCountrySource",
    "IpResolver",
    "MaxMindSource",
    "RirSource",
    "country_name",
    "load_ip_source",
    "special_range",
]

IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

_ISO_CODE = re.compile(r"[A-Z]{2}")
# The same test as `_ISO_CODE.fullmatch`, as one set look-up: it runs for every answer a source
# gives, and a regex match costs more than the RIR look-up itself.
_ISO_SHAPED = frozenset(a + b for a in string.ascii_uppercase for b in string.ascii_uppercase)

# Two-letter codes that look like countries but are not one.
_NOT_A_COUNTRY = {
    "EU": "Europe as a whole (EU)",
    "AP": "the Asia-Pacific region as a whole (AP)",
    "ZZ": "the unknown-country placeholder ZZ",
    "XX": "the unknown-country placeholder XX",
}
# Codes some data sets use in place of the ISO 3166-1 one.
_NON_ISO_ALIASES = {"UK": "GB"}
# Names where the tz database's wording reads badly inside a sentence.
# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


class IpCountrySource(Protocol):
    """Anything that maps a public IP address to the ISO code of one country (or None)."""

    name: str

    def country(self, address: IpAddress) -> str | None:
        """The country code of `address`, or None when the data does not cover it."""
        ...

    def countries(self, addresses: Sequence[IpAddress]) -> list[str | None]:
        """`country` for every address, in order (one call for a whole batch)."""
        ...


def _iso_or_none(raw: object) -> str | None:
    """`raw` when it is shaped like an ISO 3166-1 alpha-2 code, otherwise None."""
    if isinstance(raw, str) and raw in _ISO_SHAPED:
        return raw
    return None


def _address_text(address: IpAddress) -> str:
    """The address as text for a look-up library, without any IPv6 zone (%eth0).

    IPv6 addresses are written out in full (2001:0200:0000:...), which every parser accepts and
    which costs about a fifth of what `str()` spends on zero-compression.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    digits = f"{int(address):032x}"
    return ":".join([digits[i : i + 4] for i in range(0, 32, 4)])


# Registry data says where a block is registered, not where it is used; notes say so. Wrappers
# (caches, spies) that keep this name keep that wording.
_RIR_NAME = "RIR delegation"


class RirSource:
    """Registry delegation data (ARIN, RIPE NCC, APNIC, LACNIC, AFRINIC) via `iptocc`."""

    def __init__(self) -> None:
        self.name = _RIR_NAME

    def country(self, address: IpAddress) -> str | None:
        return _iso_or_none(iptocc.country_code(_address_text(address)))

    def countries(self, addresses: Sequence[IpAddress]) -> list[str | None]:
        return self.countries_of_text([_address_text(a) for a in addresses])

    def countries_of_text(self, texts: Sequence[str]) -> list[str | None]:
        """`countries` for addresses already written out (canonical or full form, no zone)."""
        if not texts:
            return []
        return [_iso_or_none(code) for code in iptocc.country_code(list(texts))]

    def close(self) -> None:
        """Nothing to release: the data lives inside the iptocc extension."""

    def __repr__(self) -> str:
        return "RirSource()"


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise DataUnavailable(f"{what} {path} does not exist")
    if not path.is_file():
        raise DataUnavailable(f"{what} {path} is not a regular file")


class _FileSource:
    """What the file-backed sources share: one look-up per address, closing, a context."""

    path: Path

    def country(self, address: IpAddress) -> str | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def countries(self, addresses: Sequence[IpAddress]) -> list[str | None]:
        return [self.country(address) for address in addresses]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class MaxMindSource(_FileSource):
    """A MaxMind DB (GeoIP2 / GeoLite2 Country or City) file.

    The answer is the record's `country.iso_code` (where the address is used) and, when that is
    absent, `registered_country.iso_code` (where the block is registered).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        what = "MaxMind database"
        _require_file(self.path, what)
        try:
            reader = maxminddb.open_database(str(self.path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise DataUnavailable(
                f"{what} {self.path} cannot be read (not a valid .mmdb file?): {exc}"
            ) from exc
        metadata = reader.metadata()
        database_type = str(metadata.database_type)
        lowered = database_type.lower()
        if "country" not in lowered and "city" not in lowered:
            reader.close()
            raise DataUnavailable(
                f"{what} {self.path} is a {database_type!r} database; a Country or City "
                "database is needed"
            )
        self._reader = reader
        self._ip_version = int(metadata.ip_version)
        self.database_type = database_type
        self.name = f"MaxMind {database_type}"

    def country(self, address: IpAddress) -> str | None:
        if address.version == 6 and self._ip_version == 4:
            return None  # an IPv4-only database knows nothing about IPv6 addresses
        try:
            record = self._reader.get(_address_text(address))
        except maxminddb.InvalidDatabaseError as exc:
            raise DataUnavailable(f"MaxMind database {self.path} is corrupt: {exc}") from exc
        except ValueError as exc:  # e.g. the reader was closed
            raise DataUnavailable(f"MaxMind database {self.path} cannot be read: {exc}") from exc
        if not isinstance(record, dict):
            return None
        for key in ("country", "registered_country"):
            part = record.get(key)
            if isinstance(part, dict):
                code = _iso_or_none(part.get("iso_code"))
                if code is not None:
                    return code
        return None

    def close(self) -> None:
        self._reader.close()


# Header of an IP2Location BIN file, as the IP2Location library reads it (little-endian):
# type, column count, year, month, day, IPv4 row count, IPv4 rows offset, IPv6 row count,
# IPv6 rows offset, IPv4 index offset, IPv6 index offset, product code, licence, size.
# Offsets are 1-based file positions.
_BIN_HEADER = struct.Struct("<BBBBBIIIIIIBBB")
_BIN_MAX_TYPE = 26  # DB1 .. DB26


class Ip2LocationSource(_FileSource):
    """An IP2Location BIN file, DB1 (country only) or any higher edition.

    The IP2Location reader seeks and reads one shared file handle, so look-ups are serialised
    with a lock; a source can be shared between threads.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        what = "IP2Location database"
        _require_file(self.path, what)
        db_type = self._check_header(what)
        try:
            database: Any = IP2Location.IP2Location(str(self.path), "FILE_IO")
        except (OSError, ValueError, struct.error) as exc:
            raise DataUnavailable(f"{what} {self.path} cannot be read: {exc}") from exc
        self._db = database
        self._lock = threading.Lock()
        self.db_type = db_type
        self.name = f"IP2Location DB{db_type}"

    def _check_header(self, what: str) -> int:
        """Reject files the library would misread silently; return the DB edition number."""
        try:
            size = self.path.stat().st_size
            with self.path.open("rb") as handle:
                header = handle.read(_BIN_HEADER.size)
        except OSError as exc:
            raise DataUnavailable(f"{what} {self.path} cannot be read: {exc}") from exc
        if len(header) < _BIN_HEADER.size:
            raise DataUnavailable(f"{what} {self.path} is too short to be a BIN file")
        (db_type, columns, _y, month, day, v4_count, v4_addr, v6_count, v6_addr, *_rest) = (
            _BIN_HEADER.unpack(header)
        )
        problems = []
        if not 1 <= db_type <= _BIN_MAX_TYPE:
            problems.append(f"unknown database type {db_type}")
        if columns < 2:
            problems.append(f"{columns} columns per row (at least 2 expected)")
        if not (1 <= month <= 12 and 1 <= day <= 31):
            problems.append("an impossible build date")
        if v4_count == 0 and v6_count == 0:
            problems.append("no IPv4 or IPv6 rows")
        for count, addr, width, family in (
            (v4_count, v4_addr, columns * 4, "IPv4"),
            (v6_count, v6_addr, columns * 4 + 12, "IPv6"),
        ):
            if count and (addr < 1 or addr - 1 + count * width > size):
                problems.append(f"{family} rows that run past the end of the file")
        if problems:
            raise DataUnavailable(
                f"{what} {self.path} is not a valid IP2Location BIN file: " + "; ".join(problems)
            )
        return int(db_type)

    def country(self, address: IpAddress) -> str | None:
        with self._lock:
            try:
                record: Any = self._db.get_all(_address_text(address))
            except (OSError, ValueError, struct.error, IndexError, AttributeError) as exc:
                raise DataUnavailable(
                    f"IP2Location database {self.path} cannot be read: {exc}"
                ) from exc
        if record is None:
            return None
        # "-" marks unallocated space; the library also puts messages such as
        # "INVALID IP ADDRESS" in this field. Neither is a country.
        return _iso_or_none(record.country_short)

    def close(self) -> None:
        with self._lock:
            self._db.close()


_SPEC_HELP = "expected 'rir', 'maxmind:/path/file.mmdb' or 'ip2location:/path/file.BIN'"


def load_ip_source(spec: str | None) -> IpCountrySource:
    """Build a source from its configuration text; None means the RIR default."""
    if spec is None:
        return RirSource()
    kind, colon, location = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "rir" and not colon:
        return RirSource()
    if kind in ("maxmind", "ip2location") and colon:
        location = location.strip()
        if not location:
            raise InvalidInput(f"IP data source {spec!r} names no file; {_SPEC_HELP}")
        if kind == "maxmind":
            return MaxMindSource(location)
        return Ip2LocationSource(location)
    raise InvalidInput(f"unknown IP data source {spec!r}; {_SPEC_HELP}")


# --------------------------------------------------------------------------------------------
# Addresses that say nothing about location (IANA special-purpose registries, RFC 6890)
# --------------------------------------------------------------------------------------------

_V4_SPECIAL = (
    ("0.0.0.0/8", "'this network' address", "RFC 791"),
    ("0.0.0.0/32", "unspecified address", "RFC 1122"),
    ("10.0.0.0/8", "private address", "RFC 1918"),
    ("100.64.0.0/10", "carrier-grade NAT shared address", "RFC 6598"),
    ("127.0.0.0/8", "loopback address", "RFC 1122"),
    ("169.254.0.0/16", "link-local address", "RFC 3927"),
    ("172.16.0.0/12", "private address", "RFC 1918"),
    ("192.0.0.0/24", "IETF protocol assignment", "RFC 6890"),
    ("192.0.0.0/29", "DS-Lite service continuity address", "RFC 7335"),
    ("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
    ("192.0.0.9/32", "PCP anycast address", "RFC 7723"),
    ("192.0.0.10/32", "TURN anycast address", "RFC 8155"),
    ("192.0.0.170/31", "NAT64/DNS64 discovery address", "RFC 7050"),
    ("192.0.2.0/24", "documentation address (TEST-NET-1)", "RFC 5737"),
    ("192.31.196.0/24", "AS112 anycast address", "RFC 7535"),
    ("192.52.193.0/24", "AMT anycast address", "RFC 7450"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast address", "RFC 7526"),
    ("192.168.0.0/16", "private address", "RFC 1918"),
    ("192.175.48.0/24", "AS112 direct delegation anycast address", "RFC 7534"),
    ("198.18.0.0/15", "benchmarking address", "RFC 2544"),
    ("198.51.100.0/24", "documentation address (TEST-NET-2)", "RFC 5737"),
    ("203.0.113.0/24", "documentation address (TEST-NET-3)", "RFC 5737"),
    ("224.0.0.0/4", "multicast address", "RFC 5771"),
    ("233.252.0.0/24", "documentation multicast address (MCAST-TEST-NET)", "RFC 6676"),
    ("240.0.0.0/4", "reserved address (former class E)", "RFC 1112"),
    ("255.255.255.255/32", "limited broadcast address", "RFC 919"),
)

_V6_SPECIAL = (
    ("::/128", "unspecified address", "RFC 4291"),
    ("::1/128", "loopback address", "RFC 4291"),
    ("::/96", "deprecated IPv4-compatible address", "RFC 4291"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation address", "RFC 8215"),
    ("100::/64", "discard-only address", "RFC 6666"),
    ("100:0:0:1::/64", "dummy address", "RFC 9780"),
    ("2001::/23", "IETF protocol assignment", "RFC 2928"),
    ("2001::/32", "Teredo tunnel address", "RFC 4380"),
    ("2001:1::1/128", "PCP anycast address", "RFC 7723"),
    ("2001:1::2/128", "TURN anycast address", "RFC 8155"),
    ("2001:1::3/128", "DNS-SD service registration anycast address", "RFC 9665"),
    ("2001:2::/48", "benchmarking address", "RFC 5180"),
    ("2001:3::/32", "AMT anycast address", "RFC 7450"),
    ("2001:4:112::/48", "AS112 anycast address", "RFC 7535"),
    ("2001:10::/28", "deprecated ORCHID identifier", "RFC 4843"),
    ("2001:20::/28", "ORCHIDv2 identifier", "RFC 7343"),
    ("2001:30::/28", "drone remote ID entity tag", "RFC 9374"),
    ("2001:db8::/32", "documentation address", "RFC 3849"),
    ("2002::/16", "6to4 tunnel address", "RFC 3056"),
    ("2620:4f:8000::/48", "AS112 direct delegation anycast address", "RFC 7534"),
    ("3fff::/20", "documentation address", "RFC 9637"),
    ("5f00::/16", "SRv6 segment identifier", "RFC 9602"),
    ("fc00::/7", "unique local (private) address", "RFC 4193"),
    ("fe80::/10", "link-local address", "RFC 4291"),
    ("fec0::/10", "deprecated site-local address", "RFC 3879"),
    ("ff00::/8", "multicast address", "RFC 4291"),
)
# Everything else outside 2000::/3 has never been handed out for global unicast; the longer
# prefixes above take precedence inside these.
_V6_OUTSIDE_UNICAST = ("::/3", "4000::/2", "8000::/1")
_V6_UNALLOCATED = "address outside the global unicast space 2000::/3 (RFC 4291)"

_IPV4_MAPPED = int(ipaddress.IPv6Address("::ffff:0:0")) >> 32
_NAT64_WELL_KNOWN = int(ipaddress.IPv6Address("64:ff9b::")) >> 32
_NOTHING = "says nothing about location"


class _RangeTable:
    """Most-specific-prefix look-up over nested networks, flattened for one bisection.

    The networks are cut into disjoint intervals, each labelled with the longest prefix that
    covers it (or None), so a look-up is a single `bisect` however many ranges there are.
    """

    def __init__(self, entries: Iterable[tuple[str, str]], bits: int) -> None:
        # strict parsing: a typo in the tables fails at import, not at look-up time
        networks = [(ipaddress.ip_network(cidr), text) for cidr, text in entries]
        spans = [
            (int(net.network_address), int(net.broadcast_address), net.prefixlen, text)
            for net, text in networks
        ]
        cuts = {0} | {first for first, _, _, _ in spans} | {last + 1 for _, last, _, _ in spans}
        self._starts: list[int] = []
        self._texts: list[str | None] = []
        for cut in sorted(c for c in cuts if c < 1 << bits):
            covering = [
                (length, text) for first, last, length, text in spans if first <= cut <= last
            ]
            text = max(covering, key=lambda item: item[0])[1] if covering else None
            if self._texts and self._texts[-1] == text:
                continue
            self._starts.append(cut)
            self._texts.append(text)

    def find(self, number: int) -> str | None:
        return self._texts[bisect_right(self._starts, number) - 1]


def _described(entries: Iterable[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return [(cidr, f"{label} in {cidr} ({reference})") for cidr, label, reference in entries]


_V4_TABLE = _RangeTable(_described(_V4_SPECIAL), 32)
_V6_TABLE = _RangeTable(
    _described(_V6_SPECIAL) + [(cidr, _V6_UNALLOCATED) for cidr in _V6_OUTSIDE_UNICAST], 128
)


def special_range(address: IpAddress) -> str | None:
    """Describe the special-purpose range `address` belongs to, or None for a public address.

    IPv4-mapped and NAT64 (64:ff9b::/96) addresses are judged by the IPv4 address they embed.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return _V4_TABLE.find(int(address))
    number = int(address)
    if number >> 32 in (_IPV4_MAPPED, _NAT64_WELL_KNOWN):
        return _V4_TABLE.find(number & 0xFFFFFFFF)
    return _V6_TABLE.find(number)


# --------------------------------------------------------------------------------------------
# Resolver
# --------------------------------------------------------------------------------------------


class _Plan(NamedTuple):
    """What to do with one address: settle it now (`lookup` None) or ask the source."""

    value: str  # canonical text, the reading's `value`
    subject: str  # how notes name the address
    lookup: IpAddress | None  # what the source is asked about
    note: str = ""  # the whole note when `lookup` is None
    text: str = ""  # `lookup` as text, when it was at hand already


def _plan(ip: object) -> _Plan:
    """Validate `ip` (InvalidSignal when it is not an address) and decide what to do with it."""
    if isinstance(ip, str):
        number = ipv4_number(ip)
        if number is not None:
            # Canonical IPv4 text, what `Signals.ip` almost always holds: valid as it stands,
            # so the two `ipaddress` parses below (~4 us) are skipped.
            found = _V4_TABLE.find(number)
            if found is not None:
                return _Plan(ip, ip, None, f"{found}: {_NOTHING}")
            return _Plan(ip, ip, ipaddress.IPv4Address(number), "", ip)
    canonical = parse_ip(ip)
    address = ipaddress.ip_address(canonical)
    if isinstance(address, ipaddress.IPv4Address):
        found = _V4_TABLE.find(int(address))
        if found is not None:
            return _Plan(canonical, canonical, None, f"{found}: {_NOTHING}")
        return _Plan(canonical, canonical, address)

    number = int(address)
    prefix = number >> 32
    if prefix in (_IPV4_MAPPED, _NAT64_WELL_KNOWN):
        embedded = ipaddress.IPv4Address(number & 0xFFFFFFFF)
        form = "IPv4-mapped" if prefix == _IPV4_MAPPED else "NAT64"
        found = _V4_TABLE.find(int(embedded))
        if found is not None:
            note = f"{form} form of {embedded}; {found}: {_NOTHING}"
            return _Plan(canonical, canonical, None, note)
        return _Plan(canonical, f"{canonical} ({form} form of {embedded})", embedded)

    found = _V6_TABLE.find(number)
    if found is not None:
        return _Plan(canonical, canonical, None, f"{found}: {_NOTHING}")
    lookup = ipaddress.IPv6Address(number) if address.scope_id else address
    return _Plan(canonical, canonical, lookup)


class IpResolver:
    """Resolve IP addresses to countries through one `IpCountrySource`."""

    def __init__(self, source: IpCountrySource | None = None) -> None:
        self.source: IpCountrySource = source if source is not None else RirSource()
        self._answers: dict[tuple[str, str | None], tuple[tuple[str, ...], str]] = {}

    def resolve(self, ip: str) -> SignalReading:
        plan = _plan(ip)
        if plan.lookup is None:
            return self._unknown(plan.value, plan.note)
        return self._reading(plan, self.source.country(plan.lookup))

    def resolve_many(self, ips: Sequence[str]) -> list[SignalReading]:
        """Like `resolve` for each address, with one batch call to the source."""
        plans = []
        for index, ip in enumerate(ips):
            try:
                plans.append(_plan(ip))
            except InvalidSignal as exc:
                raise InvalidSignal(f"ip[{index}]", exc.message.removeprefix("ip: ")) from None
        lookups = [plan for plan in plans if plan.lookup is not None]
        codes = self._countries(lookups) if lookups else []
        if len(codes) != len(lookups):
            raise DataUnavailable(
                f"{self.source.name} answered {len(codes)} of {len(lookups)} look-ups"
            )
        answers = iter(codes)
        return [
            self._reading(plan, next(answers))
            if plan.lookup is not None
            else self._unknown(plan.value, plan.note)
            for plan in plans
        ]

    def _countries(self, plans: list[_Plan]) -> list[str | None]:
        """The source's answers for plans that need a look-up, in one batch call."""
        source = self.source
        if type(source) is RirSource:  # exactly: a subclass may answer `countries` its own way
            # iptocc takes text, and IPv4 plans hold it already: writing each address out again
            # would cost ten times the look-up itself.
            return source.countries_of_text(
                [
                    plan.text or _address_text(plan.lookup)
                    for plan in plans
                    if plan.lookup is not None
                ]
            )
        return source.countries([plan.lookup for plan in plans if plan.lookup is not None])

    @staticmethod
    def _unknown(value: str, note: str) -> SignalReading:
        return SignalReading(kind=SignalKind.IP, value=value, countries=(), note=note)

    def _reading(self, plan: _Plan, code: object) -> SignalReading:
        # Sources answer with a few hundred distinct codes: what a code means, and the wording
        # after the address, are worked out once per code and source name, then shared.
        if code is not None and type(code) is not str:
            countries, rest = self._answer(code)  # a malformed answer: rare, not memoised
        else:
            key = (self.source.name, code)
            found = self._answers.get(key)
            if found is None:
                if len(self._answers) >= 4096:  # bounded, for a source full of odd strings
                    self._answers.clear()
                found = self._answers[key] = self._answer(code)
            countries, rest = found
        return SignalReading(SignalKind.IP, plan.value, countries, plan.subject + rest)

    def _answer(self, code: object) -> tuple[tuple[str, ...], str]:
        """The countries a source's answer names, and the note's words after the address."""
        data = f"{self.source.name} data"
        if code is None:
            return (), f": not in {data}"
        if not isinstance(code, str) or not _ISO_CODE.fullmatch(code):
            return (), f": {data} gives {code!r}, which is not an ISO 3166-1 country code"
        if code in _NOT_A_COUNTRY:
            return (), f": {data} names {_NOT_A_COUNTRY[code]}, not a country"
        given = ""
        if code in _NON_ISO_ALIASES:
            given, code = f" (given as {code})", _NON_ISO_ALIASES[code]
        place = f"{country_name(code)} ({code}){given}"
        if self.source.name == _RIR_NAME:
            return (code,), f" is registered to {place} in {data}"
        return (code,), f" is located in {place} according to {data}"
