"""Named sales regions: groups of ISO 3166-1 codes that policies and devices refer to by name.

Membership as of 2026 (EU: 27 member states since 2020-02-01; EEA: EU + Iceland, Liechtenstein,
Norway). A sales region may also be a single ISO country code, or GLOBAL (no restriction).
"""

from __future__ import annotations

import re
from collections.abc import Collection

EU = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    }
)
EEA = EU | {"IS", "LI", "NO"}
GLOBAL = "GLOBAL"

REGIONS: dict[str, frozenset[str]] = {"EU": EU, "EEA": EEA}


def expand(name: str, known_countries: frozenset[str] | set[str]) -> frozenset[str] | None:
    """The countries a region name stands for; None when the name is unknown."""
    upper = name.upper()
    if upper in REGIONS:
        return REGIONS[upper]
    if upper in known_countries:
        return frozenset({upper})
    return None


# -- place codes, as operators write them ------------------------------------------------------

ALPHA2 = re.compile(r"[A-Z]{2}")
SUBDIVISION = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}")


def country_problem(code: str, known: Collection[str] | None) -> str | None:
    """What is wrong with `code` (upper case) as an ISO 3166-1 alpha-2 country, or None;
    `known`: the codes that exist (None: the form alone is checked)."""
    if not ALPHA2.fullmatch(code):
        return "expected an ISO 3166-1 alpha-2 country code (e.g. IR)"
    if known is not None and code not in known:
        return "not a known ISO 3166-1 alpha-2 code"
    return None


def subdivision_problem(code: str, known: Collection[str] | None) -> str | None:
    """What is wrong with `code` (upper case) as an ISO 3166-2 subdivision, or None; its
    country must be in `known` (None: the form alone is checked)."""
    if not SUBDIVISION.fullmatch(code):
        return "expected an ISO 3166-2 code (e.g. UA-43)"
    if known is not None and code[:2] not in known:
        return f"{code[:2]} is not a known country"
    return None
