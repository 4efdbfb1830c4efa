"""The shipped regime presets (data/regimes/*.toml): format, codes, dates and key history."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from importlib import resources
from typing import Any

import pytest

REGIME_IDS = ("us-ofac", "eu", "uk")

# Every code a preset may use, with its ISO 3166 name. Hard-coded on purpose: the presets
# must not depend on a country-code package, and a new code should be a deliberate edit here.
ISO_CODES = {
    "CU": "Cuba",
    "IR": "Iran (Islamic Republic of)",
    "KP": "Korea (Democratic People's Republic of)",
    "SD": "Sudan",
    "SY": "Syrian Arab Republic",
    "UA-09": "Luhanska oblast",
    "UA-14": "Donetska oblast",
    "UA-23": "Zaporizka oblast",
    "UA-40": "Sevastopol",
    "UA-43": "Avtonomna Respublika Krym",
    "UA-65": "Khersonska oblast",
}

EXPECTED_CODES = {
    "us-ofac": {"CU", "IR", "KP", "SY", "SD", "UA-43", "UA-40", "UA-14", "UA-09"},
    "eu": {"UA-43", "UA-40", "UA-14", "UA-09", "UA-65", "UA-23"},
    "uk": {"UA-43", "UA-40", "UA-14", "UA-09", "UA-65", "UA-23"},
}

# Subdivisions that are covered only in part (areas outside the Government of Ukraine's control).
PARTIAL = {"UA-14", "UA-09", "UA-65", "UA-23"}

ALPHA2 = re.compile(r"^[A-Z]{2}$")
SUBDIVISION = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")

REGIME_KEYS = {"id", "name", "authority", "reviewed", "url"}
REQUIRED_KEYS = {"code", "name", "from", "extent", "instrument", "source", "confidence"}
OPTIONAL_KEYS = {"until", "note"}
CONFIDENCE = {"high", "medium", "low"}


def load(regime_id: str) -> dict[str, Any]:
    path = resources.files("regionlock").joinpath(f"data/regimes/{regime_id}.toml")
    with path.open("rb") as fh:
        return tomllib.load(fh)


@pytest.fixture(scope="module")
def regimes() -> dict[str, dict[str, Any]]:
    return {regime_id: load(regime_id) for regime_id in REGIME_IDS}


def entry(regimes: dict[str, dict[str, Any]], regime_id: str, code: str) -> dict[str, Any]:
    matches = [j for j in regimes[regime_id]["jurisdiction"] if j["code"] == code]
    assert len(matches) == 1, f"{regime_id}: expected one entry for {code}, got {len(matches)}"
    return matches[0]


def in_force(jurisdiction: dict[str, Any], day: dt.date) -> bool:
    """The documented rule: `from` inclusive, `until` exclusive."""
    until = jurisdiction.get("until")
    return jurisdiction["from"] <= day and (until is None or day < until)


# --- the files and their [regime] table --------------------------------------------------------


def test_every_preset_file_in_the_package_is_known() -> None:
    folder = resources.files("regionlock").joinpath("data/regimes")
    stems = {p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")}
    assert stems == set(REGIME_IDS)


@pytest.mark.parametrize("regime_id", REGIME_IDS)
def test_id_matches_file_stem(regimes: dict[str, dict[str, Any]], regime_id: str) -> None:
    assert regimes[regime_id]["regime"]["id"] == regime_id


@pytest.mark.parametrize("regime_id", REGIME_IDS)
def test_regime_table_is_complete(regimes: dict[str, dict[str, Any]], regime_id: str) -> None:
    regime = regimes[regime_id]["regime"]
    assert set(regime) == REGIME_KEYS
    assert type(regime["reviewed"]) is dt.date  # a TOML local date, not a datetime or string
    assert regime["url"].startswith("https://")
    for key in ("name", "authority"):
        assert isinstance(regime[key], str) and regime[key].strip()


@pytest.mark.parametrize("regime_id", REGIME_IDS)
def test_jurisdiction_fields(regimes: dict[str, dict[str, Any]], regime_id: str) -> None:
    jurisdictions = regimes[regime_id]["jurisdiction"]
    assert jurisdictions
    for j in jurisdictions:
        missing = REQUIRED_KEYS - set(j)
        unknown = set(j) - REQUIRED_KEYS - OPTIONAL_KEYS
        assert not missing, f"{regime_id} {j.get('code')}: missing {missing}"
        assert not unknown, f"{regime_id} {j['code']}: unknown keys {unknown}"
        for key in ("code", "name", "instrument", "source", "note"):
            if key in j:
                assert isinstance(j[key], str) and j[key].strip(), f"{regime_id} {j['code']}.{key}"
        assert j["extent"] in {"whole", "part"}
        assert j["confidence"] in CONFIDENCE
        # Anything less than certain must say why.
        if j["confidence"] != "high":
            assert "note" in j, f"{regime_id} {j['code']}: {j['confidence']} without a note"


# --- codes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("regime_id", REGIME_IDS)
def test_codes_are_valid_iso_3166(regimes: dict[str, dict[str, Any]], regime_id: str) -> None:
    for j in regimes[regime_id]["jurisdiction"]:
        code = j["code"]
        assert ALPHA2.match(code) or SUBDIVISION.match(code), code
        assert code in ISO_CODES, f"{regime_id}: {code} is not a known ISO 3166 code"


@pytest.mark.parametrize("regime_id", REGIME_IDS)
def test_no_duplicate_codes(regimes: dict[str, dict[str, Any]], regime_id: str) -> None:
    codes = [j["code"] for j in regimes[regime_id]["jurisdiction"]]
    duplicates = {c for c in codes if codes.count(c) > 1}
    assert not duplicates


@pytest.mark.parametrize("regime_id", REGIME_IDS)
def test_expected_codes(regimes: dict[str, dict[str, Any]], regime_id: str) -> None:
    codes = {j["code"] for j in regimes[regime_id]["jurisdiction"]}
    assert codes == EXPECTED_CODES[regime_id]


@pytest.mark.parametrize("regime_id", ["eu", "uk"])
def test_eu_and_uk_have_no_country_wide_embargo(
    regimes: dict[str, dict[str, Any]], regime_id: str
) -> None:
    codes = {j["code"] for j in regimes[regime_id]["jurisdiction"]}
    assert not codes & {"IR", "KP", "SY", "CU", "SD"}
    assert all(code.startswith("UA-") for code in codes)


@pytest.mark.parametrize("regime_id", REGIME_IDS)
def test_extent_matches_the_area(regimes: dict[str, dict[str, Any]], regime_id: str) -> None:
    for j in regimes[regime_id]["jurisdiction"]:
        expected = "part" if j["code"] in PARTIAL else "whole"
        assert j["extent"] == expected, f"{regime_id} {j['code']}"


# --- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize("regime_id", REGIME_IDS)
def test_dates_are_local_dates_in_order(regimes: dict[str, dict[str, Any]], regime_id: str) -> None:
    reviewed = regimes[regime_id]["regime"]["reviewed"]
    for j in regimes[regime_id]["jurisdiction"]:
        assert type(j["from"]) is dt.date, f"{regime_id} {j['code']}: from"
        assert j["from"] <= reviewed, f"{regime_id} {j['code']}: starts after the review"
        if "until" in j:
            assert type(j["until"]) is dt.date, f"{regime_id} {j['code']}: until"
            assert j["from"] < j["until"], f"{regime_id} {j['code']}: from >= until"
            assert j["until"] <= reviewed, f"{regime_id} {j['code']}: ends after the review"


# --- key historical facts -----------------------------------------------------------------------


def test_us_sudan_ended_2017_10_12(regimes: dict[str, dict[str, Any]]) -> None:
    sudan = entry(regimes, "us-ofac", "SD")
    assert sudan["until"] == dt.date(2017, 10, 12)
    assert in_force(sudan, dt.date(2017, 10, 11))
    assert not in_force(sudan, dt.date(2017, 10, 12))


def test_us_syria_2011_08_17_to_2025_07_01(regimes: dict[str, dict[str, Any]]) -> None:
    syria = entry(regimes, "us-ofac", "SY")
    assert syria["from"] == dt.date(2011, 8, 17)
    assert syria["until"] == dt.date(2025, 7, 1)
    assert "14312" in syria["instrument"]
    assert not in_force(syria, dt.date(2011, 8, 16))
    assert in_force(syria, dt.date(2011, 8, 17))
    assert in_force(syria, dt.date(2025, 6, 30))
    assert not in_force(syria, dt.date(2025, 7, 1))


def test_us_iran_cuba_north_korea_in_force(regimes: dict[str, dict[str, Any]]) -> None:
    reviewed = regimes["us-ofac"]["regime"]["reviewed"]
    for code in ("IR", "CU", "KP"):
        country = entry(regimes, "us-ofac", code)
        assert "until" not in country, code
        assert in_force(country, reviewed), code


def test_us_crimea_and_covered_regions(regimes: dict[str, dict[str, Any]]) -> None:
    for code in ("UA-43", "UA-40"):
        assert entry(regimes, "us-ofac", code)["from"] == dt.date(2014, 12, 19)
    for code in ("UA-14", "UA-09"):
        assert entry(regimes, "us-ofac", code)["from"] == dt.date(2022, 2, 21)


def test_eu_crimea_from_2014_06_25(regimes: dict[str, dict[str, Any]]) -> None:
    for code in ("UA-43", "UA-40"):
        crimea = entry(regimes, "eu", code)
        assert crimea["from"] == dt.date(2014, 6, 25)
        assert "692/2014" in crimea["instrument"]
        assert not in_force(crimea, dt.date(2014, 6, 24))


def test_uk_crimea_from_2020_12_31(regimes: dict[str, dict[str, Any]]) -> None:
    for code in ("UA-43", "UA-40"):
        crimea = entry(regimes, "uk", code)
        assert crimea["from"] == dt.date(2020, 12, 31)
        assert "2019/855" in crimea["instrument"]


def test_later_ukrainian_regions_start_after_crimea(regimes: dict[str, dict[str, Any]]) -> None:
    for regime_id in REGIME_IDS:
        crimea = entry(regimes, regime_id, "UA-43")["from"]
        for j in regimes[regime_id]["jurisdiction"]:
            if j["code"] in PARTIAL:
                assert j["from"] > crimea, f"{regime_id} {j['code']}"
