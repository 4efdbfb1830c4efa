"""The MCC/MNC resolver, on the shipped table (real ITU E.212 data, see data/README-mcc.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from regionlock.domain.errors import DataUnavailable
from regionlock.domain.reading import SignalKind, SignalReading
from regionlock.domain.signals import Plmn, parse_plmn
from regionlock.geo.mcc import MccTable

US_SET = ("AS", "GU", "MP", "PR", "US", "VI")


@pytest.fixture(scope="module")
def table() -> MccTable:
    return MccTable.load()


def look(table: MccTable, text: str, kind: SignalKind = SignalKind.NETWORK) -> SignalReading:
    return table.resolve(parse_plmn(text, "network"), kind, 1)


# --- the countries a region lock most often has to recognise -------------------------------------


@pytest.mark.parametrize(
    ("mcc", "country", "name"),
    [
        ("432", "IR", "Iran"),
        ("417", "SY", "Syria"),
        ("368", "CU", "Cuba"),
        ("467", "KP", "North Korea"),
        ("634", "SD", "Sudan"),
        ("659", "SS", "South Sudan"),
        ("255", "UA", "Ukraine"),
        ("250", "RU", "Russia"),
    ],
)
def test_sanctions_relevant_mccs_name_exactly_one_country(
    table: MccTable, mcc: str, country: str, name: str
) -> None:
    reading = look(table, mcc)
    assert reading.countries == (country,)
    assert reading.note == f"MCC {mcc} is {name}"
    assert reading.subdivision is None
    assert reading.tags == ()


@pytest.mark.parametrize(
    ("text", "country"),
    [("432-11", "IR"), ("432-35", "IR"), ("417-01", "SY"), ("368-01", "CU"), ("634-07", "SD")],
)
def test_an_mnc_on_a_single_country_mcc_keeps_that_country(
    table: MccTable, text: str, country: str
) -> None:
    reading = look(table, text)
    assert reading.countries == (country,)
    # Nothing about the MNC is said when it adds nothing.
    assert "MNC" not in reading.note


def test_north_korea_three_digit_mnc(table: MccTable) -> None:
    assert look(table, "467-193").countries == ("KP",)
    assert look(table, "467-05").countries == ("KP",)


# The jurisdictions that matter most, as the team's reference notes give them (ITU E.212 via
# Wireshark's packet-e212.c), copied here so the test does not depend on files outside the repo.
REFERENCE_MCCS = {
    "368": "CU",
    "432": "IR",
    "467": "KP",
    "417": "SY",
    "634": "SD",
    "659": "SS",
    "255": "UA",
    "250": "RU",
}


@pytest.mark.parametrize(("mcc", "country"), sorted(REFERENCE_MCCS.items()))
def test_agrees_with_the_reference_notes(table: MccTable, mcc: str, country: str) -> None:
    assert look(table, mcc).countries == (country,)


# --- the reading itself --------------------------------------------------------------------------


def test_reading_carries_kind_value_and_slot(table: MccTable) -> None:
    reading = table.resolve(Plmn("432", "35"), SignalKind.SIM, 2)
    assert reading.kind is SignalKind.SIM
    assert reading.value == "432-35"
    assert reading.slot == 2
    assert reading.countries == ("IR",)

    bare = table.resolve(Plmn("432"), SignalKind.NETWORK, 1)
    assert bare.kind is SignalKind.NETWORK
    assert bare.value == "432"
    assert bare.slot == 1


# --- shared MCCs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mcc", "countries"),
    [
        ("340", ("BL", "GF", "GP", "MF", "MQ")),
        ("362", ("BQ", "CW", "SX")),
        ("647", ("RE", "YT")),
        ("234", ("GB", "GG", "IM", "JE")),
        ("425", ("IL", "PS")),
        ("505", ("AU", "CC", "CX", "NF")),
        *((str(mcc), US_SET) for mcc in range(310, 317)),
    ],
)
def test_shared_mcc_alone_names_every_territory(
    table: MccTable, mcc: str, countries: tuple[str, ...]
) -> None:
    reading = look(table, mcc)
    assert reading.countries == countries
    assert reading.note.startswith(f"MCC {mcc} is shared by {', '.join(countries)} (")


@pytest.mark.parametrize(
    ("text", "countries"),
    [
        ("340-08", ("BL", "MF")),  # Dauphin Telecom: Saint Barthélemy, Saint Martin
        ("340-11", ("GF",)),
        ("340-02", ("GF", "GP", "MQ")),
        ("362-51", ("SX",)),  # Telcell, Sint Maarten
        ("362-91", ("CW",)),
        ("362-78", ("BQ",)),
        ("647-01", ("YT",)),  # Maoré Mobile
        ("647-03", ("RE",)),  # Free Réunion
        ("234-58", ("IM",)),  # Manx Telecom
        ("234-50", ("GG", "JE")),  # JT
        ("234-30", ("GB",)),  # EE
        ("425-05", ("PS",)),  # Jawwal
        ("425-06", ("PS",)),  # Ooredoo Palestine
        ("505-10", ("NF",)),  # Norfolk Telecom
        ("505-01", ("AU", "CC", "CX")),  # Telstra
        ("244-14", ("AX",)),  # Ålcom
    ],
)
def test_an_mnc_narrows_a_shared_mcc(
    table: MccTable, text: str, countries: tuple[str, ...]
) -> None:
    reading = look(table, text)
    assert reading.countries == countries
    mcc, mnc = text.split("-")
    assert f"; MNC {mnc} is {', '.join(countries)}: " in reading.note
    assert reading.note.startswith(f"MCC {mcc} is shared by ")


def test_narrowing_note_reads_as_a_sentence(table: MccTable) -> None:
    assert look(table, "340-08").note == (
        "MCC 340 is shared by BL, GF, GP, MF, MQ (the French Antilles and French Guiana); "
        "MNC 08 is BL, MF: Dauphin Telecom (Saint Barthélemy, Saint Martin)"
    )


@pytest.mark.parametrize(
    ("text", "countries"),
    [
        ("340-01", ("BL", "GF", "GP", "MF", "MQ")),  # Orange Caraïbe runs in all five
        ("647-10", ("RE", "YT")),  # SFR Réunion runs in both
        ("425-01", ("IL", "PS")),  # Israeli networks also cover the West Bank
        ("362-99", ("BQ", "CW", "SX")),  # not a listed network
    ],
)
def test_an_mnc_that_covers_the_whole_shared_mcc_does_not_narrow(
    table: MccTable, text: str, countries: tuple[str, ...]
) -> None:
    reading = look(table, text)
    assert reading.countries == countries
    assert reading.note.endswith(f"; MNC {text.split('-')[1]} does not narrow it down")


# --- three-digit MNCs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "countries"),
    [
        ("310-260", ("PR", "US", "VI")),  # T-Mobile: mainland, Puerto Rico, US Virgin Islands
        ("310-410", ("US", "VI")),  # AT&T
        ("311-480", ("US",)),  # Verizon
        ("310-370", ("GU", "MP")),  # Docomo Pacific
        ("310-032", ("GU",)),  # IT&E, Guam
        ("311-780", ("AS",)),  # ASTCA, American Samoa
        ("313-790", ("PR",)),  # Liberty Puerto Rico
        ("311-470", ("VI",)),  # Viya
    ],
)
def test_three_digit_mncs_under_the_us_mccs(
    table: MccTable, text: str, countries: tuple[str, ...]
) -> None:
    reading = look(table, text)
    assert reading.value == text
    assert reading.countries == countries


def test_two_and_three_digit_mncs_are_different_networks(table: MccTable) -> None:
    # 338-05 and 338-050 are both Digicel, used on different islands.
    assert look(table, "338-05").countries == ("GD", "JM", "KY", "LC", "MS")
    assert look(table, "338-050").countries == ("BM", "TC")
    # 310-59 (CellOne Bermuda) is listed; 310-059 is not, so only the MCC speaks.
    assert look(table, "310-59").countries == ("BM",)
    assert look(table, "310-059").countries == US_SET
    assert look(table, "310059").countries == US_SET  # "310059" parses as 310 + MNC 059


def test_an_unlisted_mnc_on_a_single_country_mcc_still_gives_the_country(
    table: MccTable,
) -> None:
    reading = look(table, "432-999")
    assert reading.countries == ("IR",)
    assert reading.note == "MCC 432 is Iran"


# --- codes that are not countries ----------------------------------------------------------------


@pytest.mark.parametrize("text", ["901", "901-12", "901-18", "901-999"])
def test_901_is_international_not_a_country(table: MccTable, text: str) -> None:
    reading = look(table, text)
    assert reading.countries == ()
    assert reading.note == "MCC 901 is for international networks, not a country"
    assert "international" in reading.tags


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("001-01", "MCC 001 is for test networks, not a country"),
        ("999-99", "MCC 999 is for internal use in private networks, not a country"),
    ],
)
def test_test_and_private_codes_are_no_country(table: MccTable, text: str, note: str) -> None:
    reading = look(table, text)
    assert reading.countries == ()
    assert reading.note == note
    assert "test" in reading.tags


@pytest.mark.parametrize("text", ["300", "000", "123-45", "899-999", "803"])
def test_unassigned_mcc_is_unknown_not_an_error(table: MccTable, text: str) -> None:
    reading = look(table, text)
    mcc = text.split("-")[0]
    assert reading.countries == ()
    assert reading.note == f"MCC {mcc} is not assigned in ITU E.212"
    assert reading.tags == ("unassigned",)


def test_995_is_unassigned_but_its_diego_garcia_network_is_known(table: MccTable) -> None:
    assert look(table, "995").countries == ()
    assert look(table, "995").note == "MCC 995 is not assigned in ITU E.212"
    assert look(table, "995-01").countries == ("IO",)


# --- contested and occupied areas ----------------------------------------------------------------


def test_crimean_networks_on_russias_mcc_point_to_ukraine(table: MccTable) -> None:
    reading = look(table, "250-32")
    assert reading.countries == ("UA",)
    assert reading.tags == ("disputed",)
    assert reading.subdivision is None  # Crimea and Sevastopol: two subdivisions
    assert "(UA-40, UA-43)" in reading.note
    assert reading.note.startswith("MCC 250 is Russia; MNC 32 is UA")
    # An ordinary Russian network is still Russia.
    assert look(table, "250-01").countries == ("RU",)


def test_occupied_donetsk_network_names_its_oblast(table: MccTable) -> None:
    reading = look(table, "250-97")
    assert reading.countries == ("UA",)
    assert reading.subdivision == "UA-14"
    assert "disputed" in reading.tags


def test_transnistria_on_ukraines_mcc_is_moldova(table: MccTable) -> None:
    reading = look(table, "255-00")
    assert reading.countries == ("MD",)
    assert reading.subdivision == "MD-SN"
    assert look(table, "255-01").countries == ("UA",)


def test_abkhazia_is_georgia_with_a_subdivision(table: MccTable) -> None:
    for text in ("289", "289-67"):
        reading = look(table, text)
        assert reading.countries == ("GE",)
        assert reading.subdivision == "GE-AB"
        assert reading.tags == ("disputed",)


def test_kosovo_uses_xk(table: MccTable) -> None:
    assert look(table, "221-01").countries == ("XK",)
    assert look(table, "221").note == "MCC 221 is Kosovo"


# --- the table as a whole ------------------------------------------------------------------------


def _iso_codes() -> set[str]:
    text = resources.files("tzdata").joinpath("zoneinfo", "iso3166.tab").read_text("utf-8")
    return {line.split("\t")[0] for line in text.splitlines() if line and line[0] != "#"}


def test_every_code_is_iso_3166_and_every_answer_is_sorted(table: MccTable) -> None:
    iso = _iso_codes() | {"XK"}
    assigned = 0
    for n in range(1000):
        mcc = f"{n:03d}"
        reading = table.resolve(Plmn(mcc), SignalKind.NETWORK, 1)
        assert list(reading.countries) == sorted(set(reading.countries)), mcc
        assert set(reading.countries) <= iso, mcc
        assert reading.note.startswith(f"MCC {mcc} is "), mcc
        assigned += table.entry(mcc) is not None
    # About 240 MCCs are assigned in E.212, plus the special codes.
    assert 230 <= assigned == len(table) <= 260


def test_packaged_table_is_loaded_once_and_kept_small() -> None:
    assert MccTable.load() is MccTable.load()
    data = resources.files("regionlock").joinpath("data").joinpath("mcc.csv").read_bytes()
    assert len(data) < 100_000


def test_loading_an_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "mcc.csv"
    path.write_text(
        "mcc,mnc,countries,subdivisions,tags,note\n"
        "432,,IR,,,Iran\n"
        "340,,BL;GF;GP;MF;MQ,,,the French Antilles and French Guiana\n"
        "340,08,MF;BL,,,Dauphin Telecom\n",
        encoding="utf-8",
    )
    table = MccTable.load(path)
    assert len(table) == 2
    assert table.resolve(Plmn("340", "08"), SignalKind.SIM, 1).countries == ("BL", "MF")
    assert table.resolve(Plmn("417"), SignalKind.SIM, 1).countries == ()


def test_a_missing_file_is_data_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailable, match="cannot be read"):
        MccTable.load(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("mcc,countries\n432,IR\n", "header"),
        ("mcc,mnc,countries,subdivisions,tags,note\n43,,IR,,,Iran\n", "not three digits"),
        ("mcc,mnc,countries,subdivisions,tags,note\n432,,Iran,,,Iran\n", "alpha-2"),
        ("mcc,mnc,countries,subdivisions,tags,note\n432,,IR,,,Iran\n432,,IR,,,Iran\n", "twice"),
        ("mcc,mnc,countries,subdivisions,tags,note\n432,11,IR,,,MCI\n", "without an MCC row"),
        ("mcc,mnc,countries,subdivisions,tags,note\n432,,IR,,\n", "fields"),
    ],
)
def test_a_malformed_table_is_rejected(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "mcc.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataUnavailable, match=message):
        MccTable.load(path)
