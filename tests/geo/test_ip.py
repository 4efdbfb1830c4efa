"""IP -> country resolution on real data: RIR delegation data (iptocc), plus MaxMind and
IP2Location files written here for each test."""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from regionlock.domain.errors import DataUnavailable, InvalidInput, InvalidSignal
from regionlock.domain.reading import SignalKind
from regionlock.geo.ip import (
    Ip2LocationSource,
    IpAddress,
    IpCountrySource,
    IpResolver,
    MaxMindSource,
    RirSource,
    country_name,
    load_ip_source,
    special_range,
)

try:  # tests/geo is a plain directory on sys.path ...
    from ip2location_writer import Range, write_db1
except ImportError:  # ... or part of a tests package
    from .ip2location_writer import Range, write_db1  # type: ignore[no-redef]


class SpySource:
    """Wraps a real source and records every address that reaches it."""

    def __init__(self, inner: IpCountrySource) -> None:
        self.inner = inner
        self.name = inner.name
        self.seen: list[IpAddress] = []
        self.batches: list[list[IpAddress]] = []

    def country(self, address: IpAddress) -> str | None:
        self.seen.append(address)
        return self.inner.country(address)

    def countries(self, addresses: Sequence[IpAddress]) -> list[str | None]:
        self.batches.append(list(addresses))
        self.seen.extend(addresses)
        return self.inner.countries(addresses)


class FixedSource:
    """Answers every look-up with one fixed value, to exercise code validation."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.name = "Fixed"

    def country(self, address: IpAddress) -> str | None:
        return self.answer  # type: ignore[return-value]

    def countries(self, addresses: Sequence[IpAddress]) -> list[str | None]:
        return [self.country(a) for a in addresses]


# ---------------------------------------------------------------------------------------------
# RIR delegation data (the default source)
# ---------------------------------------------------------------------------------------------


def test_default_resolver_uses_rir_data_for_ipv4() -> None:
    reading = IpResolver().resolve("2.144.0.1")
    assert reading.kind is SignalKind.IP
    assert reading.value == "2.144.0.1"
    assert reading.countries == ("IR",)
    assert reading.note == "2.144.0.1 is registered to Iran (IR) in RIR delegation data"


# Independent knowledge of these allocations: 2001:200::/32 is the WIDE Project's (Japan's
# research backbone, one of APNIC's first IPv6 allocations); 2001:da8::/32 is CERNET, the China
# Education and Research Network; 2001:638::/32 is DFN, the German research network (RIPE NCC);
# 2001:4860::/32 is Google's ARIN allocation, home of the 2001:4860:4860::8888 resolver.
@pytest.mark.parametrize(
    ("ip", "code", "name"),
    [
        ("2001:200::1", "JP", "Japan"),
        ("2001:da8::1", "CN", "China"),
        ("2001:638::1", "DE", "Germany"),
        ("2001:4860:4860::8888", "US", "United States"),
    ],
)
def test_rir_ipv6_national_allocations(ip: str, code: str, name: str) -> None:
    reading = IpResolver(RirSource()).resolve(ip)
    assert reading.countries == (code,)
    assert reading.note == f"{ip} is registered to {name} ({code}) in RIR delegation data"


def test_rir_source_single_and_batch_agree() -> None:
    source = RirSource()
    addresses: list[IpAddress] = [
        ipaddress.IPv4Address("2.144.0.1"),
        ipaddress.IPv6Address("2001:200::1"),
        ipaddress.IPv4Address("8.8.8.8"),
    ]
    assert source.countries(addresses) == ["IR", "JP", "US"]
    assert [source.country(a) for a in addresses] == ["IR", "JP", "US"]
    assert source.countries([]) == []
    assert source.name == "RIR delegation"


def test_rir_source_ignores_ipv6_zone() -> None:
    # iptocc itself answers None for "2001:200::1%eth0"; the zone must be dropped before.
    assert RirSource().country(ipaddress.IPv6Address("2001:200::1%eth0")) == "JP"
    reading = IpResolver().resolve("2001:200::1%eth0")
    assert reading.value == "2001:200::1%eth0"
    assert reading.countries == ("JP",)


def test_input_is_canonicalised() -> None:
    resolver = IpResolver()
    assert resolver.resolve(" 2.144.0.1 ").value == "2.144.0.1"
    reading = resolver.resolve("2001:0200:0000:0000::0001")
    assert reading.value == "2001:200::1"
    assert reading.countries == ("JP",)


def test_regional_rir_code_is_not_a_country() -> None:
    # 139.191.0.0/16 belongs to the European Commission; RIPE NCC lists it under "EU".
    assert RirSource().country(ipaddress.IPv4Address("139.191.1.1")) == "EU"
    reading = IpResolver().resolve("139.191.1.1")
    assert reading.countries == ()
    assert reading.note == (
        "139.191.1.1: RIR delegation data names Europe as a whole (EU), not a country"
    )


@pytest.mark.parametrize("bad", ["999.1.1.1", "2.144.0", "not an ip", "", "1.2.3.4/24", 42, None])
def test_invalid_addresses_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidSignal) as info:
        IpResolver().resolve(bad)  # type: ignore[arg-type]
    assert info.value.signal == "ip"


def test_resolve_many_names_the_bad_entry() -> None:
    with pytest.raises(InvalidSignal) as info:
        IpResolver().resolve_many(["2.144.0.1", "2.144.0.999"])
    assert info.value.signal == "ip[1]"
    assert "2.144.0.999" in info.value.message


def test_resolve_many_batches_only_public_addresses() -> None:
    spy = SpySource(RirSource())
    resolver = IpResolver(spy)
    ips = ["10.0.0.1", "2.144.0.1", "fe80::1", "2001:200::1", "::ffff:2.144.0.1", "192.0.2.5"]
    readings = resolver.resolve_many(ips)

    assert [r.countries for r in readings] == [(), ("IR",), (), ("JP",), ("IR",), ()]
    assert [r.value for r in readings] == [
        "10.0.0.1",
        "2.144.0.1",
        "fe80::1",
        "2001:200::1",
        "::ffff:290:1",
        "192.0.2.5",
    ]
    # One batch call holding only the public addresses (the mapped one as its IPv4 address).
    assert spy.batches == [
        [
            ipaddress.IPv4Address("2.144.0.1"),
            ipaddress.IPv6Address("2001:200::1"),
            ipaddress.IPv4Address("2.144.0.1"),
        ]
    ]
    # Batch and single look-ups tell the same story.
    assert readings == [IpResolver().resolve(ip) for ip in ips]


def test_resolve_many_with_nothing_to_look_up() -> None:
    spy = SpySource(RirSource())
    assert IpResolver(spy).resolve_many([]) == []
    readings = IpResolver(spy).resolve_many(["127.0.0.1", "::1"])
    assert [r.countries for r in readings] == [(), ()]
    assert spy.batches == []


def test_resolve_many_rejects_a_short_answer() -> None:
    class ShortSource(FixedSource):
        def countries(self, addresses: Sequence[IpAddress]) -> list[str | None]:
            return ["IR"]

    with pytest.raises(DataUnavailable, match="answered 1 of 2"):
        IpResolver(ShortSource("IR")).resolve_many(["2.144.0.1", "8.8.8.8"])


@pytest.mark.parametrize(
    "ip", ["2.144.0.1", "8.8.8.8", "10.1.2.3", "100.64.0.1", "0.0.0.0", "255.255.255.255"]
)
def test_canonical_ipv4_shortcut_agrees_with_the_general_path(ip: str) -> None:
    # Padded text is not canonical, so it goes the long way (parse_ip, then ipaddress).
    resolver = IpResolver()
    assert resolver.resolve_many([ip, f" {ip} "]) == [resolver.resolve(f" {ip} ")] * 2


def test_a_rir_source_subclass_answers_for_itself() -> None:
    class Relabelled(RirSource):
        def countries(self, addresses: Sequence[IpAddress]) -> list[str | None]:
            return ["DE" for _ in addresses]

    assert IpResolver(Relabelled()).resolve_many(["2.144.0.1"])[0].countries == ("DE",)


def test_notes_follow_the_source_name() -> None:
    source = FixedSource("IR")
    resolver = IpResolver(source)
    before = resolver.resolve_many(["2.144.0.1"])[0]
    source.name = "Renamed"
    after = resolver.resolve_many(["2.144.0.1"])[0]
    assert before.note == "2.144.0.1 is located in Iran (IR) according to Fixed data"
    assert after.note == "2.144.0.1 is located in Iran (IR) according to Renamed data"


# ---------------------------------------------------------------------------------------------
# Special-purpose addresses never reach the source
# ---------------------------------------------------------------------------------------------

RESERVED = [
    # (address, text the note must contain)
    ("10.1.2.3", "private address in 10.0.0.0/8 (RFC 1918)"),
    ("172.16.0.1", "private address in 172.16.0.0/12 (RFC 1918)"),
    ("172.31.255.254", "private address in 172.16.0.0/12 (RFC 1918)"),
    ("192.168.1.1", "private address in 192.168.0.0/16 (RFC 1918)"),
    ("fd12:3456:789a::1", "unique local (private) address in fc00::/7"),
    ("fc00::1", "unique local (private) address in fc00::/7"),
    ("127.0.0.1", "loopback address in 127.0.0.0/8"),
    ("127.255.255.254", "loopback address in 127.0.0.0/8"),
    ("::1", "loopback address in ::1/128"),
    ("169.254.10.20", "link-local address in 169.254.0.0/16"),
    ("fe80::1", "link-local address in fe80::/10"),
    ("fe80::1%eth0", "link-local address in fe80::/10"),
    ("100.64.0.1", "carrier-grade NAT shared address in 100.64.0.0/10 (RFC 6598)"),
    ("100.127.255.254", "carrier-grade NAT shared address in 100.64.0.0/10"),
    ("224.0.0.251", "multicast address in 224.0.0.0/4"),
    ("239.255.255.250", "multicast address in 224.0.0.0/4"),
    ("233.252.0.1", "documentation multicast address (MCAST-TEST-NET) in 233.252.0.0/24"),
    ("ff02::1", "multicast address in ff00::/8"),
    ("192.0.2.1", "documentation address (TEST-NET-1) in 192.0.2.0/24 (RFC 5737)"),
    ("198.51.100.7", "documentation address (TEST-NET-2) in 198.51.100.0/24"),
    ("203.0.113.9", "documentation address (TEST-NET-3) in 203.0.113.0/24"),
    ("2001:db8::1", "documentation address in 2001:db8::/32 (RFC 3849)"),
    ("3fff::1", "documentation address in 3fff::/20 (RFC 9637)"),
    ("198.18.0.1", "benchmarking address in 198.18.0.0/15 (RFC 2544)"),
    ("198.19.255.255", "benchmarking address in 198.18.0.0/15"),
    ("2001:2::1", "benchmarking address in 2001:2::/48"),
    ("0.1.2.3", "'this network' address in 0.0.0.0/8"),
    ("0.0.0.0", "unspecified address in 0.0.0.0/32"),
    ("::", "unspecified address in ::/128"),
    ("240.0.0.1", "reserved address (former class E) in 240.0.0.0/4"),
    ("254.1.2.3", "reserved address (former class E) in 240.0.0.0/4"),
    ("255.255.255.255", "limited broadcast address in 255.255.255.255/32"),
    # 6to4 and Teredo embed IPv4 addresses (here a public Iranian one), but stay unknown.
    ("2002:290:1::1", "6to4 tunnel address in 2002::/16 (RFC 3056)"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo tunnel address in 2001::/32 (RFC 4380)"),
    ("2001:0:290:1::1", "Teredo tunnel address in 2001::/32"),
    ("192.88.99.1", "deprecated 6to4 relay anycast address in 192.88.99.0/24"),
    # Translation prefixes: local-use NAT64 is unknown; well-known NAT64 and IPv4-mapped
    # addresses are judged by the IPv4 address inside.
    ("64:ff9b:1::290:1", "local-use IPv4/IPv6 translation address in 64:ff9b:1::/48"),
    ("::ffff:192.168.1.1", "IPv4-mapped form of 192.168.1.1; private address in 192.168.0.0/16"),
    ("64:ff9b::10.0.0.1", "NAT64 form of 10.0.0.1; private address in 10.0.0.0/8"),
    ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1; loopback address"),
    # Other IANA special-purpose ranges.
    ("192.0.0.1", "DS-Lite service continuity address in 192.0.0.0/29"),
    ("192.0.0.9", "PCP anycast address in 192.0.0.9/32"),
    ("192.0.0.170", "NAT64/DNS64 discovery address in 192.0.0.170/31"),
    ("192.0.0.200", "IETF protocol assignment in 192.0.0.0/24"),
    ("192.31.196.1", "AS112 anycast address in 192.31.196.0/24"),
    ("192.175.48.1", "AS112 direct delegation anycast address in 192.175.48.0/24"),
    ("192.52.193.1", "AMT anycast address in 192.52.193.0/24"),
    ("100::1", "discard-only address in 100::/64"),
    ("2001:1::1", "PCP anycast address in 2001:1::1/128"),
    ("2001:3::1", "AMT anycast address in 2001:3::/32"),
    ("2001:4:112::1", "AS112 anycast address in 2001:4:112::/48"),
    ("2001:20::1", "ORCHIDv2 identifier in 2001:20::/28"),
    ("2001:1f0::1", "IETF protocol assignment in 2001::/23"),
    ("2620:4f:8000::1", "AS112 direct delegation anycast address in 2620:4f:8000::/48"),
    ("5f00::1", "SRv6 segment identifier in 5f00::/16"),
    ("fec0::1", "deprecated site-local address in fec0::/10"),
    ("::1.2.3.4", "deprecated IPv4-compatible address in ::/96"),
    ("4000::1", "outside the global unicast space 2000::/3"),
    ("e000::1", "outside the global unicast space 2000::/3"),
]


@pytest.mark.parametrize(("ip", "expected"), RESERVED, ids=[ip for ip, _ in RESERVED])
def test_special_purpose_addresses_are_unknown(ip: str, expected: str) -> None:
    spy = SpySource(RirSource())
    resolver = IpResolver(spy)
    reading = resolver.resolve(ip)
    assert reading.kind is SignalKind.IP
    assert reading.value == str(ipaddress.ip_address(ip))
    assert reading.countries == ()
    assert expected in reading.note
    assert reading.note.endswith(": says nothing about location")
    [batched] = resolver.resolve_many([ip])
    assert batched == reading
    assert spy.seen == []  # never passed to the source


def test_private_note_reads_as_documented() -> None:
    reading = IpResolver().resolve("192.168.0.10")
    assert reading.note == (
        "private address in 192.168.0.0/16 (RFC 1918): says nothing about location"
    )


def test_special_range_helper() -> None:
    assert special_range(ipaddress.IPv4Address("2.144.0.1")) is None
    assert special_range(ipaddress.IPv6Address("2001:200::1")) is None
    assert special_range(ipaddress.IPv6Address("::ffff:2.144.0.1")) is None
    private = special_range(ipaddress.IPv6Address("::ffff:10.0.0.1"))
    assert private is not None and "RFC 1918" in private
    # The helper agrees with the resolver on every special-purpose case above.
    for ip, _ in RESERVED:
        address = ipaddress.ip_address(ip)
        assert special_range(address) is not None, ip


@pytest.mark.parametrize(
    ("ip", "form"),
    [("::ffff:2.144.0.1", "IPv4-mapped"), ("64:ff9b::2.144.0.1", "NAT64")],
)
def test_embedded_public_ipv4_is_resolved(ip: str, form: str) -> None:
    spy = SpySource(RirSource())
    reading = IpResolver(spy).resolve(ip)
    canonical = str(ipaddress.ip_address(ip))
    assert reading.value == canonical
    assert reading.countries == ("IR",)
    assert reading.note == (
        f"{canonical} ({form} form of 2.144.0.1) is registered to Iran (IR) in RIR delegation data"
    )
    assert spy.seen == [ipaddress.IPv4Address("2.144.0.1")]


# ---------------------------------------------------------------------------------------------
# Validation of what a source answers
# ---------------------------------------------------------------------------------------------


def test_uk_is_read_as_gb() -> None:
    reading = IpResolver(FixedSource("UK")).resolve("2.144.0.1")
    assert reading.countries == ("GB",)
    assert reading.note == (
        "2.144.0.1 is located in United Kingdom (GB) (given as UK) according to Fixed data"
    )


@pytest.mark.parametrize("code", ["EU", "AP"])
def test_regional_codes_are_unknown(code: str) -> None:
    reading = IpResolver(FixedSource(code)).resolve("8.8.8.8")
    assert reading.countries == ()
    assert reading.note.startswith("8.8.8.8: Fixed data names ")
    assert reading.note.endswith(f"({code}), not a country")


@pytest.mark.parametrize("code", ["ir", "IRN", "I", "-", "", "1R", 42, "Ir"])
def test_malformed_codes_are_unknown(code: object) -> None:
    reading = IpResolver(FixedSource(code)).resolve("8.8.8.8")
    assert reading.countries == ()
    assert reading.note == (
        f"8.8.8.8: Fixed data gives {code!r}, which is not an ISO 3166-1 country code"
    )


def test_missing_answer_is_unknown() -> None:
    reading = IpResolver(FixedSource(None)).resolve("2001:200::1")
    assert reading.countries == ()
    assert reading.note == "2001:200::1: not in Fixed data"


def test_country_names() -> None:
    assert country_name("IR") == "Iran"
    assert country_name("GB") == "United Kingdom"
    assert country_name("XK") == "Kosovo"  # not in the tz table; a user-assigned code
    assert country_name("QQ") == "QQ"  # unknown: the code stands in


# ---------------------------------------------------------------------------------------------
# MaxMind
# ---------------------------------------------------------------------------------------------


def write_mmdb(path: Path, database_type: str = "GeoLite2-Country", ip_version: int = 6) -> Path:
    writer = MMDBWriter(
        ip_version=ip_version,
        database_type=database_type,
        ipv4_compatible=ip_version == 6,
        languages=["en"],
        description="regionlock test data",
    )

    def country(code: str) -> dict[str, object]:
        return {"iso_code": code, "names": {"en": code}}

    writer.insert_network(
        IPSet(["2.144.0.0/14"]),
        {"country": country("IR"), "registered_country": country("IR")},
    )
    # Used in one country, registered in another: the country of use wins.
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"country": country("GB"), "registered_country": country("US")},
    )
    # Only the registered country is known (as for some anycast or satellite blocks).
    writer.insert_network(IPSet(["5.5.5.0/24"]), {"registered_country": country("DE")})
    # A record without any country at all.
    writer.insert_network(IPSet(["6.6.6.0/24"]), {"continent": {"code": "EU"}})
    # A non-ISO code in the data.
    writer.insert_network(IPSet(["7.7.7.0/24"]), {"country": country("UK")})
    # A malformed country code falls back to the registered country.
    writer.insert_network(
        IPSet(["9.9.9.0/24"]),
        {"country": {"iso_code": "usa"}, "registered_country": country("US")},
    )
    if ip_version == 6:
        writer.insert_network(IPSet(["2001:200::/32"]), {"country": country("JP")})
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def mmdb(tmp_path: Path) -> Path:
    return write_mmdb(tmp_path / "GeoLite2-Country.mmdb")


def test_maxmind_source_lookups(mmdb: Path) -> None:
    with MaxMindSource(mmdb) as source:
        assert source.name == "MaxMind GeoLite2-Country"
        v4, v6 = ipaddress.IPv4Address, ipaddress.IPv6Address
        assert source.country(v4("2.144.0.1")) == "IR"
        assert source.country(v4("81.2.69.160")) == "GB"
        assert source.country(v4("5.5.5.5")) == "DE"  # registered_country fallback
        assert source.country(v4("6.6.6.6")) is None  # no country in the record
        assert source.country(v4("9.9.9.9")) == "US"  # malformed country -> registered
        assert source.country(v4("1.1.1.1")) is None  # not in the data
        assert source.country(v6("2001:200::1")) == "JP"
        assert source.country(v6("2001:201::1")) is None
        assert source.countries([v4("2.144.0.1"), v4("1.1.1.1"), v6("2001:200::1")]) == [
            "IR",
            None,
            "JP",
        ]


def test_maxmind_through_resolver(mmdb: Path) -> None:
    resolver = IpResolver(MaxMindSource(mmdb))
    assert resolver.resolve("2.144.0.1").note == (
        "2.144.0.1 is located in Iran (IR) according to MaxMind GeoLite2-Country data"
    )
    readings = resolver.resolve_many(
        ["81.2.69.160", "1.1.1.1", "7.7.7.7", "10.0.0.1", "2001:200::5"]
    )
    assert [r.countries for r in readings] == [("GB",), (), ("GB",), (), ("JP",)]
    assert readings[1].note == "1.1.1.1: not in MaxMind GeoLite2-Country data"
    assert "(given as UK)" in readings[2].note
    assert "RFC 1918" in readings[3].note


def test_maxmind_city_database_is_accepted(tmp_path: Path) -> None:
    source = MaxMindSource(write_mmdb(tmp_path / "city.mmdb", database_type="GeoIP2-City"))
    assert source.name == "MaxMind GeoIP2-City"
    assert source.country(ipaddress.IPv4Address("2.147.255.255")) == "IR"


def test_maxmind_ipv4_only_database(tmp_path: Path) -> None:
    source = MaxMindSource(write_mmdb(tmp_path / "v4.mmdb", ip_version=4))
    assert source.country(ipaddress.IPv4Address("2.144.0.1")) == "IR"
    assert source.country(ipaddress.IPv6Address("2001:200::1")) is None
    reading = IpResolver(source).resolve("2001:200::1")
    assert reading.countries == ()
    assert reading.note == "2001:200::1: not in MaxMind GeoLite2-Country data"


def test_maxmind_rejects_non_country_database(tmp_path: Path) -> None:
    path = write_mmdb(tmp_path / "asn.mmdb", database_type="GeoLite2-ASN")
    with pytest.raises(DataUnavailable, match="Country or City") as info:
        MaxMindSource(path)
    assert str(path) in info.value.message


def test_maxmind_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.mmdb"
    with pytest.raises(DataUnavailable, match="does not exist") as info:
        MaxMindSource(path)
    assert str(path) in info.value.message


def test_maxmind_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailable, match="not a regular file"):
        MaxMindSource(tmp_path)


@pytest.mark.parametrize("damage", ["empty", "text", "truncated"])
def test_maxmind_corrupt_file(tmp_path: Path, mmdb: Path, damage: str) -> None:
    path = tmp_path / "broken.mmdb"
    data = mmdb.read_bytes()
    contents = {
        "empty": b"",
        "text": b"this is not a MaxMind database\n" * 50,
        "truncated": data[: len(data) // 2],
    }[damage]
    path.write_bytes(contents)
    with pytest.raises(DataUnavailable) as info:
        MaxMindSource(path)
    assert str(path) in info.value.message
    assert "cannot be read" in info.value.message


def test_maxmind_closed_source_fails_loudly(mmdb: Path) -> None:
    source = MaxMindSource(mmdb)
    source.close()
    with pytest.raises(DataUnavailable, match=re.escape(str(mmdb))):
        source.country(ipaddress.IPv4Address("2.144.0.1"))


# ---------------------------------------------------------------------------------------------
# IP2Location
# ---------------------------------------------------------------------------------------------

V4_RANGES = [
    Range("2.144.0.0", "2.147.255.255", "IR", "Iran (Islamic Republic of)"),
    Range("81.2.69.0", "81.2.69.255", "GB", "United Kingdom of Great Britain"),
    Range("200.0.0.0", "255.255.255.255", "BR", "Brazil"),  # runs to the very last address
]
V6_RANGES = [
    Range("2001:200::", "2001:200:ffff:ffff:ffff:ffff:ffff:ffff", "JP", "Japan"),
    Range("2a00::", "2a00:0:0:ffff:ffff:ffff:ffff:ffff", "ir", "lower-case code"),
]


@pytest.mark.parametrize("with_index", [True, False], ids=["indexed", "no-index"])
def test_ip2location_source_lookups(tmp_path: Path, with_index: bool) -> None:
    path = write_db1(
        tmp_path / "IP2LOCATION-LITE-DB1.BIN", V4_RANGES, V6_RANGES, with_index=with_index
    )
    v4, v6 = ipaddress.IPv4Address, ipaddress.IPv6Address
    with Ip2LocationSource(path) as source:
        assert source.name == "IP2Location DB1"
        assert source.country(v4("2.144.0.0")) == "IR"  # first address of the range
        assert source.country(v4("2.147.255.255")) == "IR"  # last address of the range
        assert source.country(v4("2.148.0.0")) is None  # "-" just after it
        assert source.country(v4("2.143.255.255")) is None  # "-" just before it
        assert source.country(v4("81.2.69.160")) == "GB"
        assert source.country(v4("0.0.0.1")) is None
        assert source.country(v4("255.255.255.254")) == "BR"
        assert source.country(v6("2001:200::1")) == "JP"
        assert source.country(v6("2001:201::1")) is None
        assert source.country(v6("2a00::1")) is None  # "ir" is not an ISO code
        assert source.countries([v4("2.144.0.1"), v6("2001:200::1"), v4("9.9.9.9")]) == [
            "IR",
            "JP",
            None,
        ]


def test_ip2location_through_resolver(tmp_path: Path) -> None:
    path = write_db1(tmp_path / "db1.bin", V4_RANGES, V6_RANGES)
    resolver = IpResolver(load_ip_source(f"ip2location:{path}"))
    reading = resolver.resolve("2.144.0.1")
    assert reading.countries == ("IR",)
    assert reading.note == "2.144.0.1 is located in Iran (IR) according to IP2Location DB1 data"
    readings = resolver.resolve_many(["2001:200::1", "9.9.9.9", "192.168.1.1", "::ffff:2.144.0.1"])
    assert [r.countries for r in readings] == [("JP",), (), (), ("IR",)]
    assert readings[1].note == "9.9.9.9: not in IP2Location DB1 data"


def test_ip2location_ipv4_only_file(tmp_path: Path) -> None:
    source = Ip2LocationSource(write_db1(tmp_path / "v4.BIN", V4_RANGES, None))
    assert source.country(ipaddress.IPv4Address("2.144.0.1")) == "IR"
    # The library answers "IPV6 ADDRESS MISSING IN IPV4 BIN" here; that is not a country.
    assert source.country(ipaddress.IPv6Address("2001:200::1")) is None


def test_ip2location_is_safe_across_threads(tmp_path: Path) -> None:
    source = Ip2LocationSource(write_db1(tmp_path / "db1.BIN", V4_RANGES, V6_RANGES))
    cases: list[tuple[IpAddress, str | None]] = [
        (ipaddress.IPv4Address("2.144.0.1"), "IR"),
        (ipaddress.IPv4Address("81.2.69.1"), "GB"),
        (ipaddress.IPv6Address("2001:200::1"), "JP"),
        (ipaddress.IPv4Address("9.9.9.9"), None),
    ]
    wrong: list[tuple[IpAddress, str | None]] = []

    def work() -> None:
        for _ in range(300):
            for address, expected in cases:
                got = source.country(address)
                if got != expected:
                    wrong.append((address, got))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_ip2location_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "IP2LOCATION-LITE-DB1.BIN"
    with pytest.raises(DataUnavailable, match="does not exist") as info:
        Ip2LocationSource(path)
    assert str(path) in info.value.message


@pytest.mark.parametrize("damage", ["empty", "short", "text", "truncated", "bad-type"])
def test_ip2location_corrupt_file(tmp_path: Path, damage: str) -> None:
    good = write_db1(tmp_path / "good.BIN", V4_RANGES, V6_RANGES).read_bytes()
    contents = {
        "empty": b"",
        "short": good[:20],
        "text": b"this is not an IP2Location database\n" * 50,
        "truncated": good[: len(good) // 2],
        "bad-type": bytes([99]) + good[1:],
    }[damage]
    path = tmp_path / "broken.BIN"
    path.write_bytes(contents)
    with pytest.raises(DataUnavailable) as info:
        Ip2LocationSource(path)
    assert str(path) in info.value.message


def test_ip2location_rejects_other_products(tmp_path: Path) -> None:
    # Product code 2 is IP2Proxy; the IP2Location library refuses it for recent builds.
    path = write_db1(tmp_path / "proxy.BIN", V4_RANGES, product_code=2)
    with pytest.raises(DataUnavailable, match="cannot be read") as info:
        Ip2LocationSource(path)
    assert str(path) in info.value.message


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [None, "rir", "RIR", " rir "])
def test_load_default_source(spec: str | None) -> None:
    source = load_ip_source(spec)
    assert isinstance(source, RirSource)
    assert source.country(ipaddress.IPv4Address("2.144.0.1")) == "IR"


def test_load_file_sources(tmp_path: Path, mmdb: Path) -> None:
    maxmind = load_ip_source(f"maxmind:{mmdb}")
    assert isinstance(maxmind, MaxMindSource)
    assert maxmind.path == mmdb
    bin_path = write_db1(tmp_path / "db1.BIN", V4_RANGES)
    ip2location = load_ip_source(f"IP2Location:{bin_path}")
    assert isinstance(ip2location, Ip2LocationSource)
    assert ip2location.country(ipaddress.IPv4Address("81.2.69.1")) == "GB"


@pytest.mark.parametrize("spec", ["", "geoip:/x.mmdb", "maxmind:", "ip2location:  ", "rir:x", "x"])
def test_load_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_ip_source(spec)
    assert not isinstance(info.value, DataUnavailable)
    assert "maxmind:/path/file.mmdb" in info.value.message


@pytest.mark.parametrize("kind", ["maxmind", "ip2location"])
def test_load_missing_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "nope.db"
    with pytest.raises(DataUnavailable, match="does not exist") as info:
        load_ip_source(f"{kind}:{path}")
    assert str(path) in info.value.message
