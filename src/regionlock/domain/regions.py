"""Named sales regions: groups of ISO 3166-1 codes that policies and devices refer to by name.

Membership as of 2026 (EU: 27 member states since 2020-02-01; EEA: EU + Iceland, Liechtenstein,
Norway). A sales region may also be a single ISO country code, or GLOBAL (no restriction).
"""

from __future__ import annotations

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
