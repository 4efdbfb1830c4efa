"""What one signal says about a device's whereabouts, once resolved against reference data."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class SignalKind(StrEnum):
    """The kinds of location signal, strongest evidence of presence first."""

    GPS = "gps"
    NETWORK = "network"
    SIM = "sim"
    IP = "ip"
    TIMEZONE = "timezone"
    LOCALE = "locale"


class SignalReading(NamedTuple):
    """One signal resolved: the countries it points to (empty = unknown) and why.

    `countries` holds ISO 3166-1 alpha-2 codes. More than one means the signal cannot tell them
    apart (an MCC shared by several territories, a time zone used in several countries, a point
    in a disputed area). `note` is a short human-readable account of the look-up.

    A NamedTuple rather than a frozen dataclass: equally immutable, and three times cheaper to
    build, which matters at a million readings a batch (bench/README.md).
    """

    kind: SignalKind
    value: str
    countries: tuple[str, ...]
    note: str
    subdivision: str | None = None
    slot: int | None = None
    # Kind-specific qualifiers the fusion may use (e.g. GPS accuracy, "at_sea", "disputed").
    accuracy_m: float | None = None
    tags: tuple[str, ...] = ()
    # Candidates when the signal narrows the place to several subdivisions but not to one (a
    # network serving only Crimea and Sevastopol); `subdivision` is then None.
    subdivisions: tuple[str, ...] = ()
