"""English country names for ISO 3166-1 alpha-2 codes, from the tz database's iso3166.tab."""

from __future__ import annotations

from functools import cache
from importlib import resources

# iso3166.tab keeps short, informal names in places ("Britain (UK)"); users read these in notes.
_OVERRIDES = {"GB": "United Kingdom", "XK": "Kosovo"}


@cache
def country_names() -> dict[str, str]:
    """Every ISO 3166-1 alpha-2 code tzdata knows, with its English name (XK added)."""
    text = resources.files("tzdata").joinpath("zoneinfo", "iso3166.tab").read_text("utf-8")
    names: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            code, _, name = line.partition("\t")
            names[code] = name.strip()
    names.update(_OVERRIDES)
    return names


def country_name(code: str) -> str:
    """An English name for a code (the code itself when unknown)."""
    return country_names().get(code, code)
