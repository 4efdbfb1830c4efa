"""What a device tells us about where it is, validated.

`parse_signals` turns the JSON shape used by check-ins and by `regionlock locate --input` into a
`Signals` value, or raises `InvalidSignal` naming the bad field. Nothing here guesses: a value that
does not parse is an error, never a country.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regionlock.domain.errors import InvalidSignal
from regionlock.domain.inputs import short_int, text_problem

_MCC_RE = re.compile(r"^[0-9]{3}$")
_MNC_RE = re.compile(r"^[0-9]{2,3}$")
_PLMN_TEXT_RE = re.compile(r"^([0-9]{3})[-/ ]?([0-9]{2,3})?$")
_TZ_RE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
# BCP 47 (en-US, zh-Hant-TW, es-419) or POSIX (fa_IR, fa_IR.UTF-8, sr_RS@latin).
_LOCALE_RE = re.compile(
    r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*(\.[A-Za-z0-9\-]+)?(@[A-Za-z0-9]+)?$"
)
# Exactly the text `ipaddress` accepts as an IPv4 address: four ASCII decimal octets of at most
# 255, no leading zeros. Such text is also exactly what `str()` of the address gives back, so it
# is valid and canonical as it stands; matching it costs a tenth of the parse-and-format round
# trip through `ipaddress`, which dominated batches of IPv4 signals.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_CANONICAL = re.compile(r"\.".join([_OCTET] * 4))

KNOWN_FIELDS = frozenset({"id", "ip", "sim", "network", "gps", "timezone", "locale"})
_PLMN_KEYS = frozenset({"mcc", "mnc"})
_GPS_KEYS = frozenset({"lat", "lon", "accuracy_m"})


@dataclass(frozen=True, slots=True)
class Plmn:
    """A mobile network identity: MCC (3 digits) and, when known, MNC (2 or 3 digits)."""

    mcc: str
    mnc: str | None = None

    def __str__(self) -> str:
        return f"{self.mcc}-{self.mnc}" if self.mnc is not None else self.mcc


@dataclass(frozen=True, slots=True)
class GpsFix:
    """A satellite position in WGS 84 degrees, with the reported accuracy radius in metres."""

    lat: float
    lon: float
    accuracy_m: float | None = None

    def __str__(self) -> str:
        acc = f" ±{self.accuracy_m:g} m" if self.accuracy_m is not None else ""
        return f"{self.lat:.4f},{self.lon:.4f}{acc}"


@dataclass(frozen=True, slots=True)
class Signals:
    """Every location signal of one device; any subset may be absent.

    `sim` and `network` hold one entry per SIM slot, in slot order (slot 1 first); a slot with no
    SIM or no registered network is simply not listed.
    """

    ip: str | None = None
    sim: tuple[Plmn, ...] = ()
    network: tuple[Plmn, ...] = ()
    gps: GpsFix | None = None
    timezone: str | None = None
    locale: str | None = None

    def kinds(self) -> tuple[str, ...]:
        """Which kinds of signal were present (kept after raw values are dropped)."""
        present = []
        if self.gps is not None:
            present.append("gps")
        if self.network:
            present.append("network")
        if self.sim:
            present.append("sim")
        if self.ip is not None:
            present.append("ip")
        if self.timezone is not None:
            present.append("timezone")
        if self.locale is not None:
            present.append("locale")
        return tuple(present)


def _shown(value: object) -> str:
    """`value` quoted for a message. `repr` raises on an integer of over 4,300 digits (which a
    caller, if not JSON, can pass) and recurses as deep as lists and objects nest."""
    if isinstance(value, int) and not isinstance(value, bool):
        return short_int(value)
    try:
        return repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__} too large to show"


def ipv4_number(text: str) -> int | None:
    """The 32-bit value of `text` when it is an IPv4 address in canonical form, else None.

    None says nothing about validity: " 8.8.8.8", "::1" and "x" all give None.
    """
    if _IPV4_CANONICAL.fullmatch(text) is None:
        return None
    # inet_aton alone is lax (it takes "1.2", "0x7f.1", octal); here it only converts text the
    # pattern has accepted, in C, at a fifth of the cost of splitting and converting in Python.
    return int.from_bytes(socket.inet_aton(text), "big")


def parse_ip(value: object) -> str:
    """Validate an IPv4 or IPv6 address and return its canonical text."""
    if not isinstance(value, str):
        raise InvalidSignal("ip", f"expected a string, got {type(value).__name__}")
    text = value.strip()
    if _IPV4_CANONICAL.fullmatch(text):
        return text  # the common case, already canonical (see _IPV4_CANONICAL)
    # `ipaddress` takes any text after "%" as an IPv6 zone, NUL and lone surrogates too:
    # such an address could be neither stored nor written out as UTF-8.
    if text_problem(text) is not None:
        raise InvalidSignal("ip", f"{value!r} is not a valid IPv4 or IPv6 address")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidSignal("ip", f"{value!r} is not a valid IPv4 or IPv6 address") from None


# A fleet reports a few thousand distinct PLMNs at most, each in millions of signals: every
# distinct text is parsed once, and equal PLMNs share one (immutable) object, which the
# locator's look-ups by PLMN then compare by identity. Bounded: starts afresh when full.
_PLMN_TEXTS: dict[str, Plmn] = {}
_PLMNS: dict[tuple[str, str | None], Plmn] = {}
_PLMN_MEMO_SIZE = 4096


def _plmn(mcc: str, mnc: str | None) -> Plmn:
    found = _PLMNS.get((mcc, mnc))
    if found is None:
        if len(_PLMNS) >= _PLMN_MEMO_SIZE:
            _PLMNS.clear()
        found = _PLMNS[(mcc, mnc)] = Plmn(mcc, mnc)
    return found


def parse_plmn(value: object, field: str) -> Plmn:
    """Accept {"mcc": "432", "mnc": "11"} or the text forms "432-11", "43211", "432"."""
    if isinstance(value, str):
        found = _PLMN_TEXTS.get(value)
        if found is not None:
            return found
    if isinstance(value, Mapping):
        if not _PLMN_KEYS.issuperset(value):
            unknown = set(value) - _PLMN_KEYS
            raise InvalidSignal(field, f"unknown key(s) {sorted(unknown)}; expected mcc and mnc")
        mcc, mnc = value.get("mcc"), value.get("mnc")
        # Only 0-999 is written out: formatting an integer of over 4,300 digits raises.
        if isinstance(mcc, int) and not isinstance(mcc, bool) and 0 <= mcc <= 999:
            mcc = f"{mcc:03d}"
        # fullmatch: `$` also matches before a final newline, so `match` took "432\n".
        if not isinstance(mcc, str) or not _MCC_RE.fullmatch(mcc):
            raise InvalidSignal(field, f"MCC {_shown(mcc)} is not three digits")
        if mnc is not None and (not isinstance(mnc, str) or not _MNC_RE.fullmatch(mnc)):
            raise InvalidSignal(
                field, f"MNC {_shown(mnc)} is not two or three digits (as a string)"
            )
        return _plmn(mcc, mnc)
    if isinstance(value, str):
        m = _PLMN_TEXT_RE.match(value.strip())
        if not m:
            raise InvalidSignal(field, f"{value!r} is not an MCC-MNC pair such as 432-11")
        plmn = _plmn(m.group(1), m.group(2))
        if len(_PLMN_TEXTS) >= _PLMN_MEMO_SIZE:
            _PLMN_TEXTS.clear()
        _PLMN_TEXTS[value] = plmn
        return plmn
    raise InvalidSignal(field, f"expected an object with mcc/mnc, got {type(value).__name__}")


def parse_plmns(value: object, field: str) -> tuple[Plmn, ...]:
    """A list of PLMNs, one per SIM slot (a single object or string is one slot)."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        # The memo first: naming the field costs more than finding a known text.
        found = _PLMN_TEXTS.get(item) if isinstance(item, str) else None
        out.append(found if found is not None else parse_plmn(item, f"{field}[{i}]"))
    return tuple(out)


# No coordinate or accuracy is anywhere near this; past it an integer is refused before it is
# converted (float() of a 400-digit integer overflows).
_NUMBER_LIMIT = 10**9


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSignal(field, f"expected a number, got {type(value).__name__}")
    if isinstance(value, int) and not -_NUMBER_LIMIT <= value <= _NUMBER_LIMIT:
        raise InvalidSignal(field, f"{short_int(value)} is out of range")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidSignal(field, f"{value!r} is not a finite number")
    return number


def parse_gps(value: object) -> GpsFix:
    """Validate {"lat": .., "lon": .., "accuracy_m": ..}; ranges are checked, not clamped."""
    if not isinstance(value, Mapping):
        raise InvalidSignal("gps", "expected an object with lat, lon and optional accuracy_m")
    if not _GPS_KEYS.issuperset(value):
        unknown = set(value) - _GPS_KEYS
        raise InvalidSignal("gps", f"unknown key(s) {sorted(unknown)}")
    if "lat" not in value or "lon" not in value:
        raise InvalidSignal("gps", "lat and lon are both required")
    lat = _number(value["lat"], "gps.lat")
    lon = _number(value["lon"], "gps.lon")
    if not -90.0 <= lat <= 90.0:
        raise InvalidSignal("gps.lat", f"latitude {lat:g} is outside [-90, 90]")
    if not -180.0 <= lon <= 180.0:
        raise InvalidSignal("gps.lon", f"longitude {lon:g} is outside [-180, 180]")
    accuracy = value.get("accuracy_m")
    acc: float | None = None
    if accuracy is not None:
        acc = _number(accuracy, "gps.accuracy_m")
        if acc < 0:
            raise InvalidSignal("gps.accuracy_m", f"accuracy {acc:g} m is negative")
    return GpsFix(lat, lon, acc)


def parse_timezone(value: object) -> str:
    """Syntax only; whether the zone exists is the time-zone resolver's call."""
    if not isinstance(value, str) or not _TZ_RE.match(value.strip()):
        raise InvalidSignal("timezone", f"{_shown(value)} is not an IANA time zone name")
    return value.strip()


def parse_locale(value: object) -> str:
    if not isinstance(value, str) or not _LOCALE_RE.match(value.strip()):
        raise InvalidSignal("locale", f"{_shown(value)} is not a locale such as fa_IR or en-US")
    return value.strip()


def parse_signals(obj: Mapping[str, Any]) -> Signals:
    """Validate one device's signals (the batch/check-in JSON shape). Unknown keys are errors."""
    if not KNOWN_FIELDS.issuperset(obj):
        unknown = set(obj) - KNOWN_FIELDS
        raise InvalidSignal("input", f"unknown field(s) {sorted(unknown)}")
    ip, gps, tz, locale = obj.get("ip"), obj.get("gps"), obj.get("timezone"), obj.get("locale")
    return Signals(
        ip=parse_ip(ip) if ip is not None else None,
        sim=parse_plmns(obj.get("sim"), "sim"),
        network=parse_plmns(obj.get("network"), "network"),
        gps=parse_gps(gps) if gps is not None else None,
        timezone=parse_timezone(tz) if tz is not None else None,
        locale=parse_locale(locale) if locale is not None else None,
    )
