"""The device registry, as values: IMEIs, public keys, sales regions, a device and its state.

Everything here is pure: parsing raises `InvalidInput` with a message a person can act on, and
`DeviceState.after_checkin` returns a new state instead of changing one. Storage and the check-in
service build on these values; nothing here reads a file or a clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import TypeVar

from regionlock.domain import regions
from regionlock.domain.decision import PresenceHistory, Verdict, join_candidates
from regionlock.domain.errors import InvalidInput
from regionlock.domain.location import LOW_CONFIDENCE_FLAG, NO_PRESENCE_EVIDENCE, LocationEstimate
from regionlock.domain.policy import Action, DeviceFacts, Policy

# --- IMEI ------------------------------------------------------------------------------------

IMEI_DIGITS = 15
TAC_DIGITS = 8
_DIGITS = frozenset("0123456789")  # ASCII only: str.isdigit() would also accept "٣" or "³"
_IMEI_CHARS = _DIGITS | frozenset(" -")  # digits and the separators people group them with


def luhn_check_digit(payload: str) -> int:
    """The Luhn check digit of an IMEI's first 14 digits (TAC and serial number).

    The check digit is the 15th digit of an IMEI and is computed over the 14 before it. Walking
    from the rightmost of those 14 digits to the left, every other digit is doubled, starting with
    the rightmost one (so, counting from the left, digits 2, 4, ..., 14 are doubled); a doubled
    value above 9 contributes the sum of its two digits, which is the same as subtracting 9.
    The doubled and the untouched digits are summed, and the check digit is whatever brings that
    sum up to the next multiple of ten: `(10 - sum % 10) % 10`.

    For 49015420323751: the doubled digits 9 1 4 0 2 7 1 become 9 2 8 0 4 5 2 (sum 30), the others
    4 0 5 2 3 3 5 sum to 22; 30 + 22 = 52, so the check digit is 8 (IMEI 490154203237518).
    Because doubling maps 0-9 onto 0-9 one to one, any single mistyped digit changes the sum and
    is caught, as is any swap of two adjacent digits except 09 and 90.
    """
    if len(payload) != IMEI_DIGITS - 1 or not _DIGITS.issuperset(payload):
        raise ValueError("the Luhn payload of an IMEI is 14 ASCII digits")
    # Digits 2, 4, ..., 14 (counted from the left) are the doubled ones.
    total = sum(map(int, payload[::2])) + sum(_DOUBLED[int(ch)] for ch in payload[1::2])
    return (10 - total % 10) % 10


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # 2d, minus 9 when above 9


def _imei_problem(digits: str) -> str | None:
    """What is wrong with 15 ASCII digits as an IMEI, or None."""
    expected = luhn_check_digit(digits[:-1])
    if int(digits[-1]) != expected:
        return f"IMEI {digits}: check digit should be {expected}"
    if digits == "0" * IMEI_DIGITS:
        # Devices report the all-zero IMEI when none has been written to them. It passes the Luhn
        # check, but every unprovisioned device shares it, so it cannot name one device; and as
        # ids derive from the first IMEI, all such rows would collapse into a single device.
        return f"IMEI {digits}: the all-zero placeholder of unprovisioned devices is not an IMEI"
    return None


@dataclass(frozen=True, slots=True)
class Imei:
    """A valid IMEI: 15 ASCII digits with a correct Luhn check digit.

    Constructing one validates it, so an `Imei` read back from storage is as trustworthy as one
    just parsed. Use `parse_imei` for text typed by people (it accepts spaces and dashes).
    """

    digits: str

    def __post_init__(self) -> None:
        if len(self.digits) != IMEI_DIGITS or not _DIGITS.issuperset(self.digits):
            raise InvalidInput(f"IMEI {_shown(self.digits)}: expected {IMEI_DIGITS} digits")
        problem = _imei_problem(self.digits)
        if problem is not None:
            raise InvalidInput(problem)

    @property
    def tac(self) -> str:
        """Type Allocation Code: the first 8 digits, naming the make and model."""
        return self.digits[:TAC_DIGITS]

    @property
    def serial_number(self) -> str:
        """The 6 digits after the TAC that the manufacturer assigns per unit."""
        return self.digits[TAC_DIGITS : IMEI_DIGITS - 1]

    def __str__(self) -> str:
        return self.digits


def _shown(text: str) -> str:
    """Text quoted for an error message, cut short so a runaway field cannot flood a report."""
    return repr(text) if len(text) <= 40 else repr(text[:37]) + "..."


def parse_imei(text: str) -> Imei:
    """An IMEI from text: 15 digits, optionally grouped with spaces or dashes, nothing else.

    Raises `InvalidInput` naming the problem, e.g. "IMEI 490154203237519: check digit should be 8".
    """
    stripped = text.strip()
    if not stripped:
        raise InvalidInput("IMEI is empty")
    if not _IMEI_CHARS.issuperset(stripped):
        ch = next(ch for ch in stripped if ch not in _IMEI_CHARS)
        raise InvalidInput(
            f"IMEI {_shown(text)}: {ch!r} is not allowed (an IMEI is {IMEI_DIGITS} digits, "
            "optionally grouped with spaces or dashes)"
        )
    if stripped[0] not in _DIGITS or stripped[-1] not in _DIGITS:
        raise InvalidInput(f"IMEI {_shown(text)}: must start and end with a digit")
    digits = stripped.replace(" ", "").replace("-", "")
    n = len(digits)
    if n == IMEI_DIGITS - 1:
        raise InvalidInput(
            f"IMEI {_shown(text)}: 14 digits, expected 15 (is the check digit, "
            f"{luhn_check_digit(digits)}, missing?)"
        )
    if n == IMEI_DIGITS + 1:
        raise InvalidInput(
            f"IMEI {_shown(text)}: 16 digits, expected 15 (an IMEISV, with a software version, is "
            "not an IMEI)"
        )
    if n != IMEI_DIGITS:
        raise InvalidInput(f"IMEI {_shown(text)}: {n} digits, expected {IMEI_DIGITS}")
    return Imei(digits)


# --- Ed25519 public keys -----------------------------------------------------------------------

ED25519_KEY_BYTES = 32
_KEY_CHARS = 43  # 32 bytes in base64url without padding: ceil(32 * 8 / 6)
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_BASE64URL = frozenset(_B64URL_ALPHABET)
_B64URL_INDEX = {ch: i for i, ch in enumerate(_B64URL_ALPHABET)}
_HEX = frozenset("0123456789abcdefABCDEF")
_P = 2**255 - 19
# The y coordinates (little-endian, sign bit cleared) of the points of small order on
# edwards25519, including the two non-canonical encodings p and p+1 of 0 and 1. The two order-8
# values solve d*y^4 + 2*y^2 - 1 = 0; libsodium rejects the same list.
_SMALL_ORDER_Y = frozenset(
    y.to_bytes(ED25519_KEY_BYTES, "little")
    for y in (
        0,  # (sqrt(-1), 0), order 4
        1,  # the neutral element, order 1
        _P - 1,  # (0, -1), order 2
        _P,  # 0 again, not reduced
        _P + 1,  # 1 again, not reduced
        0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826,  # order 8
        0x7A03AC9277FDC74EC6CC392CFA53202A0F67100D760B3CBA4FD84D3D706A17C7,  # order 8
    )
)


def parse_public_key(text: str) -> bytes:
    """The 32 raw bytes of an Ed25519 public key written as base64url without padding.

    The text must be the canonical 43-character encoding. Whether the bytes are a point on the
    curve is not checked: `cryptography`'s `Ed25519PublicKey.from_public_bytes` accepts any 32
    bytes, and a key that is no point only means every signature under it fails. Points of small
    order are refused, because OpenSSL's verification accepts signatures that anyone can make
    under them (the identity point accepts R = identity, S = 0 for every message).
    """
    stripped = text.strip()
    if not stripped:
        raise InvalidInput("public key is empty")
    if "=" in stripped:
        raise InvalidInput(
            f"public key: remove the '=' padding (expected base64url without padding, "
            f"{_KEY_CHARS} characters)"
        )
    if "+" in stripped or "/" in stripped:
        raise InvalidInput(
            "public key: '+' and '/' belong to standard base64, expected base64url (which uses "
            "'-' and '_')"
        )
    if not _BASE64URL.issuperset(stripped):
        i, ch = next((i, ch) for i, ch in enumerate(stripped, 1) if ch not in _BASE64URL)
        raise InvalidInput(f"public key: {ch!r} at position {i} is not a base64url character")
    n = len(stripped)
    if n != _KEY_CHARS:
        hint = ""
        if n == 2 * ED25519_KEY_BYTES and _HEX.issuperset(stripped):
            hint = ", and this looks like hex, not base64url"
        elif n % 4 == 1:
            hint = f", and {n} base64url characters cannot encode whole bytes"
        else:
            hint = f", and {n} base64url characters encode {n * 6 // 8} bytes"
        raise InvalidInput(
            f"public key: {n} characters, expected {_KEY_CHARS} (an Ed25519 public key is "
            f"{ED25519_KEY_BYTES} bytes){hint}"
        )
    if _B64URL_INDEX[stripped[-1]] & 0b11:
        # 43 characters carry 258 bits: the last character's 2 spare bits must be zero, or two
        # spellings would name one key.
        raise InvalidInput(
            f"public key: the last character {stripped[-1]!r} has unused bits set, so this is "
            "not the canonical encoding of 32 bytes"
        )
    key = base64.urlsafe_b64decode(stripped + "=")
    if _masked_y(key) in _SMALL_ORDER_Y:
        raise InvalidInput(
            "public key: a point of small order (such as all zeros), under which anyone can "
            "forge signatures"
        )
    return key


def encode_public_key(key: bytes) -> str:
    """The base64url text (no padding) of raw key bytes; the inverse of `parse_public_key`."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def _masked_y(key: bytes) -> bytes:
    """The key's y coordinate: the encoding with the sign bit of x cleared."""
    return key[:-1] + bytes([key[-1] & 0x7F])


# --- sales regions -----------------------------------------------------------------------------

# Codes people write that ISO 3166-1 reserves but does not assign (the EU uses EL for Greece).
_RESERVED = {"UK": "GB (the United Kingdom)", "EL": "GR (Greece)"}


def parse_sales_region(text: str, known_countries: Collection[str]) -> str:
    """An ISO 3166-1 alpha-2 code from `known_countries`, or EU, EEA or GLOBAL, in upper case.

    The caller supplies the known codes (the domain reads no data files); pass a set, as bulk
    imports test membership once per row.
    """
    code = text.strip().upper()
    shown = _shown(text.strip())
    if not code:
        raise InvalidInput("sales region is empty")
    if code == regions.GLOBAL or code in regions.REGIONS or code in known_countries:
        return code
    if code in _RESERVED:
        raise InvalidInput(
            f"sales region {shown}: not an assigned ISO 3166-1 code, use {_RESERVED[code]}"
        )
    if len(code) == 2 and code.isascii() and code.isalpha():
        raise InvalidInput(f"sales region {shown}: not a known ISO 3166-1 alpha-2 code")
    if len(code) == 3 and code.isascii() and code.isalpha():
        raise InvalidInput(
            f"sales region {shown}: expected a two-letter ISO 3166-1 alpha-2 code "
            "(alpha-3 codes are not accepted)"
        )
    names = ", ".join([*sorted(regions.REGIONS), regions.GLOBAL])
    raise InvalidInput(
        f"sales region {shown}: expected an ISO 3166-1 alpha-2 code or one of {names}"
    )


# --- device ids --------------------------------------------------------------------------------

DEVICE_ID_PREFIX = "dev_"
MIN_ID_KEY_BYTES = 16
_ID_PURPOSE = b"regionlock/device-id/v1\x00"
_ID_BYTES = 15  # 120 bits: 24 base32 characters, no padding
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


# What `DeviceRecord.packed` returns: id, the IMEIs' digits comma-separated, serial, model,
# sales region, distributor, batch, public key, SKU, manufacture and shipping dates.
PackedRecord = tuple[str, str, str, str, str, str, str, bytes, str | None, date | None, date | None]
_RECORD_FIELDS = (
    "id",
    "imeis",
    "serial",
    "model",
    "sales_region",
    "distributor",
    "batch",
    "public_key",
    "sku",
    "manufactured",
    "shipped",
)


def unpack_record_unchecked(packed: PackedRecord) -> DeviceRecord:
    """The record `DeviceRecord.packed` made, rebuilt without checking it again (about 2 us
    against 5.3 us through the checks, once a check-in): it was checked when it was built.
    Only this process's own packed records may come here, never data from outside it (a
    shared cache, a file): `DeviceRecord` and `Imei` promise that constructing one checks it,
    and this is the one way round that."""
    record = object.__new__(DeviceRecord)
    put = object.__setattr__
    for name, value in zip(_RECORD_FIELDS, packed):  # noqa: B905 - a PackedRecord's length
        put(record, name, value)
    imeis = []
    for digits in packed[1].split(","):
        imei = object.__new__(Imei)
        put(imei, "digits", digits)
        imeis.append(imei)
    put(record, "imeis", tuple(imeis))
    return record


def device_id(imei: Imei, key: bytes) -> str:
    """The stable, opaque id of the device whose first IMEI is `imei`.

    "dev_" + lower-case base32 of HMAC-SHA256(key, purpose || IMEI), cut to 120 bits. It is a
    function of the IMEI, so importing the same device again yields the same id. It is keyed
    because an unkeyed hash would not hide the IMEI: with the TAC known, only a million serial
    numbers remain to try, which takes a laptop well under a second. `key` is a per-installation
    secret that must never change (changing it changes every id); if it leaks, ids become
    reversible to IMEIs, but nothing can be signed or forged with it. 120 bits keep the chance
    of any collision among a billion devices below 10^-17.
    """
    if len(key) < MIN_ID_KEY_BYTES:
        raise ValueError(f"the device id key must be at least {MIN_ID_KEY_BYTES} bytes")
    mac = hmac.digest(key, _ID_PURPOSE + imei.digits.encode("ascii"), "sha256")
    # RFC 4648 base32 in lower case, done by hand: the stdlib encoder is slow on Python 3.11.
    n = int.from_bytes(mac[:_ID_BYTES], "big")
    chars = [_BASE32[(n >> shift) & 31] for shift in range(_ID_BYTES * 8 - 5, -1, -5)]
    return DEVICE_ID_PREFIX + "".join(chars)


_DEVICE_KEY = re.compile(r"dev_[a-z2-7]{1,64}|[0-9]{1,20}")


def could_name_device(key: str) -> bool:
    """Whether `key` has the shape of a device id or an IMEI; anything else names no device
    and is answered as such without a look-up (a NUL or a 10 MB string never reaches a store)."""
    return _DEVICE_KEY.fullmatch(key) is not None


# --- the registry record -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """What the registry knows of a device from its import: identity, provenance and its key.

    The TAC is not stored separately: it is the first 8 digits of the first IMEI (`tac`), so it
    cannot disagree with it.
    """

    id: str
    imeis: tuple[Imei, ...]
    serial: str
    model: str
    sales_region: str
    distributor: str
    batch: str
    public_key: bytes
    sku: str | None = None
    manufactured: date | None = None
    shipped: date | None = None

    def __post_init__(self) -> None:
        # `unpack_record_unchecked` skips this: it may only check, never set a field.
        if not self.imeis:
            raise InvalidInput("a device has at least one IMEI")
        if len(set(self.imeis)) != len(self.imeis):
            raise InvalidInput("a device lists the same IMEI twice")
        if len(self.public_key) != ED25519_KEY_BYTES:
            raise InvalidInput(f"public key: {len(self.public_key)} bytes, expected 32")

    @classmethod
    def create(
        cls,
        *,
        imeis: tuple[Imei, ...],
        id_key: bytes,
        serial: str,
        model: str,
        sales_region: str,
        distributor: str,
        batch: str,
        public_key: bytes,
        sku: str | None = None,
        manufactured: date | None = None,
        shipped: date | None = None,
    ) -> DeviceRecord:
        """A record whose id is derived from its first IMEI (see `device_id`)."""
        if not imeis:
            raise InvalidInput("a device has at least one IMEI")
        return cls(
            id=device_id(imeis[0], id_key),
            imeis=imeis,
            serial=serial,
            model=model,
            sales_region=sales_region,
            distributor=distributor,
            batch=batch,
            public_key=public_key,
            sku=sku,
            manufactured=manufactured,
            shipped=shipped,
        )

    @property
    def tac(self) -> str:
        """The Type Allocation Code of the first IMEI."""
        return self.imeis[0].tac

    def packed(self) -> PackedRecord:
        """The record as a tuple of strings, bytes, dates and None (`unpack_record_unchecked`
        rebuilds it): what a cache of many records keeps. The garbage collector stops
        tracking such a tuple once it has seen it, where a record is three objects it walks
        at every full collection: 72-77 ms for 200,000 records (bench/README.md, "The tail in
        a closed loop")."""
        return (
            self.id,
            ",".join([i.digits for i in self.imeis]),  # no inner tuple: untracked at once
            self.serial,
            self.model,
            self.sales_region,
            self.distributor,
            self.batch,
            self.public_key,
            self.sku,
            self.manufactured,
            self.shipped,
        )

    def fingerprint(self) -> bytes:
        """A 16-byte digest of everything but the id: equal records, equal fingerprints.

        Used to tell an idempotent re-import (same data) from a conflicting one.
        """
        # Each field as "<length>:<text>" (None as "-"): unambiguous whatever the text holds.
        # Spelt out rather than looped: a bulk import computes this twice a row.
        imeis = ",".join([i.digits for i in self.imeis])
        serial, model, region = self.serial, self.model, self.sales_region
        distributor, batch, key = self.distributor, self.batch, self.public_key.hex()
        canonical = (
            f"{len(imeis)}:{imeis}{len(serial)}:{serial}{len(model)}:{model}"
            f"{_framed(self.sku)}{len(region)}:{region}{len(distributor)}:{distributor}"
            f"{len(batch)}:{batch}{_framed_date(self.manufactured)}"
            f"{_framed_date(self.shipped)}{len(key)}:{key}"
        )
        return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).digest()


def _framed(text: str | None) -> str:
    return "-" if text is None else f"{len(text)}:{text}"


def _framed_date(day: date | None) -> str:
    return "-" if day is None else _framed(day.isoformat())


# --- the device's state ------------------------------------------------------------------------

# Presence is kept at least this long, and at least as long as the longest presence window of
# the policy in force. Keeping less after a switch to a policy with longer windows can only
# make presence look shorter, which leads to grace, never to a lock.
PRESENCE_RETENTION_DAYS = 30


@dataclass(frozen=True, slots=True)
class ManualLock:
    """An operator's lock: it applies at the device's next check-in.

    `reason` is for the audit trail; `message` and `contact` are what the device shows its
    owner (a region's message would be wrong for, say, a phone reported stolen).
    `campaign`: the id of the bulk campaign that set it (None: an operator, by hand)."""

    reason: str
    actor: str
    at: datetime
    message: str | None = None
    contact: str | None = None
    campaign: str | None = None


@dataclass(frozen=True, slots=True)
class AppealAnswer:
    """Support's denial of the device's appeal (docs/appeals.md): while the device stays
    locked, its verdicts tell the owner the reason and whom to contact."""

    appeal: str
    reason: str
    contact: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ManualExemption:
    """An operator's exemption from every lock, until `until` (exclusive) or for good.
    `campaign`: the id of the bulk campaign that set it (None: an operator, by hand)."""

    reason: str
    actor: str
    until: date | None = None
    campaign: str | None = None

    def active(self, on: date) -> bool:
        return self.until is None or on < self.until


_K = TypeVar("_K", date, str)


def _frozen(items: Mapping[_K, object]) -> Mapping[_K, object]:
    # Keys are unique, so sorting the pairs sorts by key and never compares two values.
    return MappingProxyType(dict(sorted(items.items())) if len(items) > 1 else dict(items))


# How long after its first check-in a device that could not be placed yet may still be
# activated where it is first placed (DeviceState.may_activate).
ACTIVATION_WINDOW = timedelta(hours=72)


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the service has learnt of a device from its check-ins and from operators.

    No raw signals: places by day (`presence`, country and subdivision codes keyed by UTC date),
    the last and the first located check-in, warnings, manual lock and exemption, and the last
    accepted check-in counter. A new device starts as `DeviceState()`.
    """

    last_verdict: Action | None = None
    last_country: str | None = None
    last_subdivision: str | None = None
    last_subdivisions: tuple[str, ...] = ()  # candidates, when narrowed to several
    last_confidence: float | None = None
    last_checkin_at: datetime | None = None
    first_country: str | None = None
    first_subdivision: str | None = None
    first_seen_at: datetime | None = None
    presence: Mapping[date, frozenset[str]] = field(default_factory=dict)
    warned_since: Mapping[str, date] = field(default_factory=dict)
    manual_lock: ManualLock | None = None
    exemption: ManualExemption | None = None
    counter: int | None = None
    # Countries that check-ins before the first activation named without enough evidence to
    # count (an IP, a low-confidence fix): see `may_activate`.
    early_countries: frozenset[str] = frozenset()
    appeal_answer: AppealAnswer | None = None
    # The language the owner wrote an appeal in: it picks the verdicts' message when the device
    # reports no locale of its own (docs/policy.md, "Messages in the owner's language").
    owner_language: str | None = None

    def __post_init__(self) -> None:
        for name in ("last_checkin_at", "first_seen_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware (UTC)")
        # Read-only copies in a fixed order, so states compare and serialise predictably.
        object.__setattr__(self, "presence", _frozen(self.presence))
        object.__setattr__(self, "warned_since", _frozen(self.warned_since))

    def to_facts(self, record: DeviceRecord) -> DeviceFacts:
        """What the policy may know of this device: its record and where it was first activated."""
        return DeviceFacts(
            id=record.id,
            imeis=tuple(i.digits for i in record.imeis),
            model=record.model,
            sku=record.sku,
            sales_region=record.sales_region,
            distributor=record.distributor,
            batch=record.batch,
            first_country=self.first_country,
            first_subdivision=self.first_subdivision,
            first_seen=(
                self.first_seen_at.astimezone(UTC).date()
                if self.first_seen_at is not None
                else None
            ),
        )

    def history(self) -> PresenceHistory:
        """The presence summary `decide` reads."""
        return PresenceHistory(days=self.presence, warned_since=self.warned_since)

    @property
    def is_new(self) -> bool:
        """Whether the device has never checked in (its next check-in is its activation)."""
        return self.counter is None and self.first_seen_at is None

    def may_activate(self, location: LocationEstimate, at: datetime, min_confidence: float) -> bool:
        """Whether a check-in placing the device at `location` would be its first activation.

        The first check-in, or, when the first ones could not place it (set up over Wi-Fi, a
        low-confidence fix), the first that can, if it comes within ACTIVATION_WINDOW of the
        first check-in and nothing before named another country. A traveller whose uncertain
        check-ins at home named home is never "activated" abroad; a phone switched on over
        Wi-Fi before its SIM goes in is still activated where it is. Placing it takes presence
        evidence and the confidence a lock needs (`min_confidence`, the policy's): a first
        activation is kept for good and locks at once, so it must be as sure as a lock.
        """
        if self.first_country is not None or location.country is None:
            return False
        if not counts_as_presence(location) or location.confidence < min_confidence:
            return False
        if self.is_new:
            return True
        if self.first_seen_at is None or at - self.first_seen_at > ACTIVATION_WINDOW:
            return False
        return self.early_countries <= {location.country}

    def activation_place(self, location: LocationEstimate) -> tuple[str | None, str | None]:
        """Country and subdivision recorded for a first activation at `location`.

        The first check-in records its subdivision (or its candidates joined, "UA-40|UA-43").
        A later one records the country only: the early check-ins that could not place the
        device (an IP) did not say which part of the country it was in, and a Chisinau owner
        set up over Wi-Fi who drives into Transnistria must not be "activated" there.
        """
        if not self.is_new:
            return location.country, None
        if location.subdivision is None and location.subdivisions:
            return location.country, join_candidates(location.subdivisions)
        return location.country, location.subdivision

    def fold_presence(self, days: Mapping[date, frozenset[str]], oldest: date) -> DeviceState:
        """This state with `days` of presence (from check-in rows about to be deleted by
        retention) merged in, those from `oldest` on: what the policy reads survives the rows.
        Days already recorded gain only codes they lack; nothing else changes."""
        presence = dict(self.presence)
        for day, codes in days.items():
            if day >= oldest and codes and not codes <= presence.get(day, frozenset()):
                presence[day] = presence.get(day, frozenset()) | codes
        if presence == dict(self.presence):
            return self
        return replace(self, presence=presence)

    def accepts_counter(self, counter: int) -> bool:
        """Whether a check-in with this counter is new (strictly above the last accepted one)."""
        return self.counter is None or counter > self.counter

    def after_checkin(
        self,
        location: LocationEstimate,
        verdict: Verdict,
        *,
        at: datetime,
        counter: int,
        policy: Policy,
        retention_days: int = PRESENCE_RETENTION_DAYS,
    ) -> DeviceState:
        """The state after a check-in at `at` was located as `location` and decided as `verdict`.

        - The last check-in's verdict, place and confidence replace the previous ones (an
          unknown place is recorded as unknown).
        - Presence and first activation are recorded only from a location that counts as
          presence (`counts_as_presence`): a place named by IP or SIM alone, or with low
          confidence, must not become the first-activation country or a day of presence, as
          either can lead to a lock later.
        - The first activation is the first check-in, or the first that can place the device
          within ACTIVATION_WINDOW of it when nothing before named another country
          (`may_activate`); otherwise it stays unknown for good. Taking any later check-in
          would make a traveller's first confident check-in abroad its "first activation" in
          a restricted place, and lock it.
        - A lock rule held back to a warning (grace, evidence, escalation: `verdict.held_back`)
          starts that rule's warning clock (`warned_since`), unless it is already running.
        - Presence older than the retention window (the longer of `retention_days` and the
          policy's longest presence window) is dropped.
        """
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware (UTC)")
        if not self.accepts_counter(counter):
            raise ValueError(f"counter {counter} is not above the last accepted {self.counter}")
        if (verdict.policy_id, verdict.policy_version) != (policy.id, policy.version):
            raise ValueError("the verdict was decided under another policy than the one given")
        today = at.astimezone(UTC).date()

        first_country, first_subdivision, first_seen_at = (
            self.first_country,
            self.first_subdivision,
            self.first_seen_at,
        )
        presence = dict(self.presence)
        if counts_as_presence(location):
            codes = presence_codes(location)
            presence[today] = presence.get(today, frozenset()) | codes
            if self.may_activate(location, at, policy.min_lock_confidence):
                first_country, first_subdivision = self.activation_place(location)
        early = self.early_countries
        if first_country is None and location.country is not None:
            early = early | {location.country}
        if self.is_new:
            first_seen_at = at
        keep = max(retention_days, *(r.presence.window_days for r in policy.restrictions), 1)
        oldest = today - timedelta(days=keep - 1)
        presence = {d: codes for d, codes in presence.items() if d >= oldest}

        # Warning clocks belong to one stay: a check-in where no rule restricts the device ends
        # them, and a clock older than its rule's window is stale (a device returning months
        # later is warned afresh before any lock).
        warned_since = {} if verdict.reasons == ("policy.no_match",) else dict(self.warned_since)
        windows = {r.id: r.presence.window_days for r in policy.restrictions}
        for rule_id, since in list(warned_since.items()):
            if (today - since).days >= windows.get(rule_id, retention_days):
                del warned_since[rule_id]
        # `held_back` names every lock rule whose proposal was held back to a warning (grace,
        # evidence, escalation), the deciding one among them. Not `verdict.reasons`: they are
        # merged from every proposal, so an escalation of one rule would start a clock for
        # another that decided the verdict, even a warn rule, which has no warning clock.
        for held in verdict.held_back:
            warned_since.setdefault(held, today)

        return DeviceState(
            last_verdict=verdict.action,
            last_country=location.country,
            last_subdivision=location.subdivision,
            last_subdivisions=location.subdivisions,
            last_confidence=location.confidence,
            last_checkin_at=at,
            first_country=first_country,
            first_subdivision=first_subdivision,
            first_seen_at=first_seen_at,
            presence=presence,
            warned_since=warned_since,
            manual_lock=self.manual_lock,
            exemption=self.exemption,
            counter=counter,
            early_countries=early if first_country is None else frozenset(),
        )


def presence_codes(location: LocationEstimate) -> set[str]:
    """The codes a day of presence records: the country, and the subdivision or, when the place
    was narrowed to several, one code joining them (it must not count as a day in each)."""
    codes = {c for c in (location.country, location.subdivision) if c}
    if location.subdivision is None and location.subdivisions:
        codes.add(join_candidates(location.subdivisions))
    return codes


def checkin_presence(
    country: str | None, subdivision: str | None, candidates: Sequence[str], flags: Collection[str]
) -> frozenset[str]:
    """The codes a stored check-in (place and flags, no raw signal) adds to its day's presence:
    as `presence_codes` where `counts_as_presence` holds, else none."""
    if country is None or NO_PRESENCE_EVIDENCE in flags or LOW_CONFIDENCE_FLAG in flags:
        return frozenset()
    codes = {c for c in (country, subdivision) if c}
    if subdivision is None and candidates:
        codes.add(join_candidates(tuple(candidates)))
    return frozenset(codes)


def counts_as_presence(location: LocationEstimate) -> bool:
    """Whether a location is good enough to record as a day of presence or a first activation.

    A country, backed by GPS or a serving network (no `no_presence_evidence` flag), and not
    flagged `low_confidence`.
    """
    return (
        location.country is not None
        and not location.has(NO_PRESENCE_EVIDENCE)
        and not location.has(LOW_CONFIDENCE_FLAG)
    )
