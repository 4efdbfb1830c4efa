"""Build src/regionlock/data/mcc.csv, the offline MCC/MNC -> country table.

Run from the project root:  .venv/bin/python scripts/prepare_mcc.py  [--offline]

Source: the npm package `mcc-mnc-list` (pinned below), a JSON transcription of Wikipedia's
"Mobile country code" and "Mobile Network Codes in ITU region Nxx" pages, which in turn follow
ITU-T Recommendation E.212 and the ITU Operational Bulletin. The tarball is fetched with
`npm pack` into .prep-cache/ (gitignored) and its SHA-1 checked against the pinned one.

What the script writes (one row per line, `;` separates several codes in a field):

    mcc,mnc,countries,subdivisions,tags,note

* A row with an empty `mnc` is the MCC-level assignment: the ISO 3166-1 alpha-2 codes of every
  territory whose networks use that MCC as a matter of course (several when the MCC is shared).
  `countries` is empty for codes that are not a country (901 international, 001 test, ...).
* A row with an `mnc` exists only where that MNC points somewhere else than its MCC row: it
  narrows a shared MCC (340-08 -> BL, MF), or records a documented use outside the MCC's own
  territory (338-050 Digicel in BM and TC, 250-32 in Crimea).
* `subdivisions` holds ISO 3166-2 codes when an MNC is confined to named subdivisions; `tags`
  holds qualifiers for the fusion ("disputed", "international", "test").
* `note` is a short description: the territory name on MCC rows, the network on MNC rows.

Every judgement that is not a mechanical reading of the source sits in the explicit tables below
(`MCC_OVERRIDES`, `MCC_SUPPLEMENT`, `MNC_OVERRIDES`, `NO_DERIVED_MNC_ROWS`), each with its reason.
The result is checked against fixed facts (sanctioned countries' MCCs), the shared reference file
../shared/reference/telecom-and-timezones.csv when present, and the ITU E.212 list of assigned
MCCs as known to the author (`ITU_ASSIGNED`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycountry

SOURCE_PACKAGE = "mcc-mnc-list"
SOURCE_VERSION = "1.1.11"
SOURCE_SHA1 = (
    "f1256aab7ce7422f1d827701d5ae5a11443be4b2"  # `npm view mcc-mnc-list@1.1.11 dist.shasum`
)
SOURCE_MEMBER = "package/mcc-mnc-list.json"

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".prep-cache"
OUTPUT = ROOT / "src" / "regionlock" / "data" / "mcc.csv"
REFERENCE = ROOT.parent / "shared" / "reference" / "telecom-and-timezones.csv"

HEADER = ("mcc", "mnc", "countries", "subdivisions", "tags", "note")
MCC_RE = re.compile(r"^[0-9]{3}$")
MNC_RE = re.compile(r"^[0-9]{2,3}$")

# Codes that ISO 3166-1 has not assigned but that this project uses on purpose.
USER_ASSIGNED = {"XK": "Kosovo"}


@dataclass(frozen=True)
class Entry:
    countries: tuple[str, ...]
    note: str
    subdivisions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


def entry(countries: str, note: str, subdivisions: str = "", tags: str = "") -> Entry:
    """Shorthand for the tables: space-separated codes."""
    return Entry(
        tuple(sorted(countries.split())),
        note,
        tuple(sorted(subdivisions.split())),
        tuple(sorted(tags.split())),
    )


# --- MCC level -------------------------------------------------------------------------------
# The source files each network under one country section, so an MCC's "home" is read from it as
# the country most of its networks are listed under. These MCCs need more than that.
US_AND_TERRITORIES = "US AS GU MP PR VI"
MCC_OVERRIDES: dict[str, Entry] = {
    # Ofcom administers 234 for the UK and the Crown Dependencies; their island networks (Sure,
    # JT, Airtel-Vodafone, Manx Telecom) hold 234 MNCs. 235 is used in Great Britain only.
    "234": entry("GB GG IM JE", "the United Kingdom, Guernsey, Jersey and the Isle of Man"),
    # Telenor and Telia serve Longyearbyen (Svalbard, ISO SJ) under Norway's MCC.
    "242": entry("NO SJ", "Norway with Svalbard"),
    # Åland (ISO AX) is served under Finland's MCC; Ålcom (244-14) covers only Åland.
    "244": entry("AX FI", "Finland with Åland"),
    # Abkhazia's networks use 289, which ITU has not assigned. ISO 3166 places Abkhazia in
    # Georgia (subdivision GE-AB); the source's code "GE-AB" is not an ISO 3166-1 code.
    "289": entry(
        "GE",
        "Abkhazia, Georgia (used without an ITU E.212 assignment)",
        "GE-AB",
        "disputed",
    ),
    # E.212 gives 310-316 to the United States; its territories' networks (Guam, Northern Mariana
    # Islands, Puerto Rico, US Virgin Islands, American Samoa) hold MNCs under them.
    **{
        str(mcc): entry(US_AND_TERRITORIES, "the United States and its territories")
        for mcc in range(310, 317)
    },
    # "French Antilles": Guadeloupe, Martinique, Saint Barthélemy, Saint Martin; French Guiana's
    # networks use 340 too (742 is assigned to French Guiana but barely used).
    "340": entry("BL GF GP MF MQ", "the French Antilles and French Guiana"),
    # Former Netherlands Antilles: Bonaire/Sint Eustatius/Saba, Curaçao, Sint Maarten.
    "362": entry("BQ CW SX", "the former Netherlands Antilles"),
    # Palestinian networks (Jawwal, Ooredoo Palestine) use Israel's MCC; Israeli networks also
    # cover much of the West Bank. The Golan Heights (ISO: Syria) are not modelled, see README.
    "425": entry("IL PS", "Israel and Palestine"),
    # Australia's MCC also serves Christmas Island, the Cocos (Keeling) Islands and, through
    # Norfolk Telecom (505-10), Norfolk Island.
    "505": entry(
        "AU CC CX NF",
        "Australia with Christmas Island, the Cocos (Keeling) Islands and Norfolk Island",
    ),
    # Moroccan networks serve Western Sahara (ISO EH), which has no MCC of its own.
    "604": entry("EH MA", "Morocco and Western Sahara"),
    # "French Departments and Territories in the Indian Ocean": Réunion and Mayotte.
    "647": entry("RE YT", "Réunion and Mayotte"),
    # Codes that are not countries.
    "001": entry("", "for test networks, not a country", tags="test"),
    "901": entry("", "for international networks, not a country", tags="international"),
    "902": entry("", "for international networks, not a country", tags="international"),
    "991": entry(
        "", "for trials of new international services, not a country", tags="international"
    ),
    # Sure's network on Diego Garcia uses 995 without an ITU assignment (995-01 below).
    "995": entry("", "not assigned in ITU E.212"),
    "999": entry("", "for internal use in private networks, not a country", tags="test"),
}

# Assigned in the ITU E.212 list but with no network listed in the source, so absent from it.
MCC_SUPPLEMENT: dict[str, Entry] = {
    "225": entry("VA", "Vatican City"),
    "332": entry("VI", "the United States Virgin Islands"),
    "406": entry("IN", "India"),
    "430": entry("AE", "the United Arab Emirates (Abu Dhabi)"),
    "431": entry("AE", "the United Arab Emirates (Dubai)"),
    "461": entry("CN", "China"),
}

# Nicer MCC-level names than the source's section titles (after dropping "(...)" qualifiers).
NAME_OVERRIDES: dict[str, str] = {
    "235": "the United Kingdom",
    "250": "Russia",
    "204": "the Netherlands",
    "272": "Ireland",
    "302": "Canada",
    "424": "the United Arab Emirates",
}

# The ITU E.212 list of assigned MCCs (geographic and international), as known to the author
# from the Complement to E.212 / Operational Bulletin. Used only as a check below.
_ITU_ASSIGNED_TEXT = """
    202 204 206 208 212 213 214 216 218 219 220 221 222 225 226 228 230 231 232 234 235 238 240
    242 244 246 247 248 250 255 257 259 260 262 266 268 270 272 274 276 278 280 282 283 284 286
    288 290 292 293 294 295 297
    302 308 310 311 312 313 314 315 316 330 332 334 338 340 342 344 346 348 350 352 354 356 358
    360 362 363 364 365 366 368 370 372 374 376
    400 401 402 404 405 406 410 412 413 414 415 416 417 418 419 420 421 422 424 425 426 427 428
    429 430 431 432 434 436 437 438 440 441 450 452 454 455 456 457 460 461 466 467 470 472
    502 505 510 514 515 520 525 528 530 536 537 539 540 541 542 543 544 545 546 547 548 549 550
    551 552 553 554 555
    602 603 604 605 606 607 608 609 610 611 612 613 614 615 616 617 618 619 620 621 622 623 624
    625 626 627 628 629 630 631 632 633 634 635 636 637 638 639 640 641 642 643 645 646 647 648
    649 650 651 652 653 654 655 657 658 659
    702 704 706 708 710 712 714 716 722 724 730 732 734 736 738 740 742 744 746 748 750
    901 902 991
"""
ITU_ASSIGNED = frozenset(_ITU_ASSIGNED_TEXT.split())
# In the table on purpose though not in ITU_ASSIGNED: test/private codes and unofficial use.
NOT_ITU_BUT_KEPT = frozenset({"001", "999", "289", "995"})

# Names read more naturally with an article: "MCC 364 is the Bahamas".
WITH_ARTICLE = frozenset(
    {
        "Bahamas", "British Virgin Islands", "Cayman Islands", "Central African Republic",
        "Comoros", "Cook Islands", "Czech Republic", "Democratic Republic of the Congo",
        "Dominican Republic", "Falkland Islands", "Faroe Islands", "Federated States of Micronesia",
        "Gambia", "Maldives", "Marshall Islands", "Philippines", "Seychelles", "Solomon Islands",
        "Turks and Caicos Islands",
    }
)  # fmt: skip

# --- MNC level -------------------------------------------------------------------------------
# The source's United States table repeats every 310-316 MNC, the territories' own networks
# included (IT&E and Docomo Pacific in Guam, Viya in the US Virgin Islands, ...). So when a
# network is also listed under a territory, "US" is dropped from it, except for the nationwide
# carriers below whose networks do run both on the mainland and in the listed territories.
US_MCCS = frozenset(str(mcc) for mcc in range(310, 317))
US_NATIONWIDE = frozenset(
    {
        ("310", "120"),  # Sprint, now T-Mobile (also US Virgin Islands)
        ("310", "260"),  # T-Mobile (also Puerto Rico, US Virgin Islands)
        ("310", "280"),  # AT&T, former Centennial (mainland and Puerto Rico)
        ("310", "410"),  # AT&T (also US Virgin Islands, now Liberty)
    }
)

# For these MCCs the source lists the home country's networks under the home country only, while
# the MCC is shared (Svalbard, Åland, Western Sahara, the West Bank): reading "NO"/"FI"/"MA"/"IL"
# as a narrowing would be wrong. Only MNC_OVERRIDES apply there.
NO_DERIVED_MNC_ROWS = frozenset({"242", "244", "425", "604"})

CRIMEA = "UA-40 UA-43"  # Sevastopol, Autonomous Republic of Crimea
MNC_OVERRIDES: dict[tuple[str, str], Entry | None] = {
    # Crown Dependency networks also appear in the source's UK table (with "Guernsey, Jersey" or
    # "Isle of Man" in the notes); the licence and the network are the island's.
    ("234", "03"): entry("GG JE", "Airtel-Vodafone (Guernsey and Jersey)"),
    ("234", "28"): entry("JE", "Marathon Telecom (licence in Jersey, no network built)"),
    ("234", "36"): entry("IM", "Sure (Isle of Man)"),
    ("234", "50"): entry("GG JE", "JT (Guernsey and Jersey)"),
    ("234", "55"): entry("GG JE", "Sure (Guernsey and Jersey)"),
    ("234", "58"): entry("IM", "Manx Telecom (Isle of Man)"),
    ("234", "73"): entry("IM", "Bluewave Communications (Isle of Man)"),
    ("244", "14"): entry("AX", "Ålcom, coverage only in Åland"),
    # Networks on Russia's and Ukraine's MCCs that run only in the parts of Ukraine Russia
    # occupies. The source files some under "RU"; ISO 3166 places these areas in Ukraine.
    ("250", "32"): entry("UA", "Win Mobile, used only in occupied Crimea", CRIMEA, "disputed"),
    ("250", "33"): entry("UA", "Sevmobile, used only in occupied Crimea", CRIMEA, "disputed"),
    ("250", "34"): entry("UA", "Krymtelekom, used only in occupied Crimea", CRIMEA, "disputed"),
    ("250", "60"): entry("UA", "Volna mobile, used only in occupied Crimea", CRIMEA, "disputed"),
    ("250", "61"): entry("UA", "Intertelecom, used only in occupied Crimea", CRIMEA, "disputed"),
    ("250", "96"): entry(
        "UA",
        "+7Telecom, used only in the occupied parts of Zaporizhzhia and Kherson oblasts",
        "UA-23 UA-65",
        "disputed",
    ),
    ("250", "97"): entry(
        "UA", "Phoenix, used only in the occupied part of Donetsk oblast", "UA-14", "disputed"
    ),
    ("255", "98"): entry(
        "UA",
        "MKS (ex-Lugacom), used only in the occupied part of Luhansk oblast",
        "UA-09",
        "disputed",
    ),
    ("255", "99"): entry(
        "UA",
        "Phoenix and MKS, used only in the occupied parts of Donetsk and Luhansk oblasts",
        "UA-09 UA-14",
        "disputed",
    ),
    # Interdnestrcom serves Transnistria (ISO 3166-2 MD-SN), also on Ukraine's MCC without an
    # assignment. The source files 255-00 under Moldova, which is right; we add the subdivision.
    ("255", "00"): entry(
        "MD", "Interdnestrcom, Transnistria (used without assignment)", "MD-SN", "disputed"
    ),
    ("259", "15"): entry("MD", "Interdnestrcom, Transnistria", "MD-SN", "disputed"),
    # Karabakh Telecom served Nagorno-Karabakh on Armenia's MCC; ISO 3166 places it in
    # Azerbaijan. The source files it under Armenia (author's knowledge, not the source).
    ("283", "04"): entry(
        "AZ", "Karabakh Telecom, Nagorno-Karabakh (on Armenia's MCC)", tags="disputed"
    ),
    # 340: the source files every 340 network under all five territories; its notes say where
    # each one actually runs.
    ("340", "02"): entry("GF GP MQ", "SFR Caraïbe (Guadeloupe, Martinique, French Guiana)"),
    ("340", "03"): entry("BL MF", "FLOW (Saint Barthélemy, Saint Martin)"),
    ("340", "08"): entry("BL MF", "Dauphin Telecom (Saint Barthélemy, Saint Martin)"),
    ("340", "10"): entry("GP", "Guadeloupe Téléphone Mobile"),
    ("340", "11"): entry("GF", "Guyane Téléphone Mobile"),
    ("340", "12"): entry("MQ", "Martinique Téléphone Mobile"),
    # 362: likewise, from the source's notes.
    ("362", "31"): entry("BQ", "Eutel (Sint Eustatius)"),
    ("362", "51"): entry("SX", "Telcell (Sint Maarten)"),
    ("362", "59"): entry("BQ SX", "FLOW (Bonaire, Saba, Sint Eustatius, Sint Maarten)"),
    ("362", "60"): entry("BQ SX", "FLOW (Bonaire, Saba, Sint Eustatius, Sint Maarten)"),
    ("362", "68"): entry("CW", "Digicel (Curaçao)"),
    ("362", "69"): entry("CW", "Digicel (Curaçao)"),
    ("362", "76"): entry("BQ", "Digicel (Bonaire)"),
    ("362", "78"): entry("BQ", "Telbo (Bonaire)"),
    ("362", "91"): entry("CW", "FLOW (Curaçao)"),
    # The Palestinian networks run in the West Bank and Gaza; the source lists them under Israel
    # as well as Palestine, which would make them look like they cover both.
    ("425", "05"): entry("PS", "Jawwal"),
    ("425", "06"): entry("PS", "Ooredoo Palestine"),
    # The source lists Norfolk Telecom under Australia too.
    ("505", "10"): entry("NF", "Norfolk Telecom"),
    # 647: from the source's notes; Zeop (647-04) is a Réunion operator (author's knowledge).
    ("647", "01"): entry("YT", "Maoré Mobile (Mayotte)"),
    ("647", "02"): entry("YT", "Only (Mayotte)"),
    ("647", "03"): entry("RE", "Free (Réunion)"),
    ("647", "04"): entry("RE", "Zeop (Réunion)"),
    # Uses outside the MCC's own territory that the source records only in its notes column.
    ("208", "10"): entry("FR MC", "SFR, also used in Monaco"),
    ("208", "20"): entry("FR MC", "Bouygues Telecom, also used in Monaco"),
    ("228", "01"): entry("CH LI", "Swisscom, also used in Liechtenstein"),
    ("274", "02"): entry("FO IS", "Vodafone Iceland, also used by Nema in the Faroe Islands"),
    ("310", "59"): entry("BM", "Cellular One (Bermuda)"),
    ("338", "050"): entry("BM TC", "Digicel (Bermuda and Turks and Caicos)"),
    ("338", "05"): entry("GD JM KY LC MS", "Digicel, used on several Caribbean islands"),
    ("542", "02"): entry("FJ NR", "Digicel Fiji, also used by Digicel Nauru"),
    ("995", "01"): entry("IO", "Sure (Diego Garcia)"),
}


# --- fetching --------------------------------------------------------------------------------
def fetch(offline: bool) -> list[dict[str, Any]]:
    """The source records, from the cached tarball (fetched with `npm pack` when missing)."""
    CACHE.mkdir(exist_ok=True)
    tarball = CACHE / f"{SOURCE_PACKAGE}-{SOURCE_VERSION}.tgz"
    if not tarball.exists():
        if offline:
            sys.exit(f"{tarball} is missing and --offline was given")
        subprocess.run(
            [
                "npm",
                "pack",
                "--silent",
                f"{SOURCE_PACKAGE}@{SOURCE_VERSION}",
                "--pack-destination",
                str(CACHE),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    digest = hashlib.sha1(tarball.read_bytes()).hexdigest()
    if digest != SOURCE_SHA1:
        sys.exit(f"{tarball}: SHA-1 {digest} is not the pinned {SOURCE_SHA1}")
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(SOURCE_MEMBER)
        if member is None:
            sys.exit(f"{tarball} has no {SOURCE_MEMBER}")
        records: list[dict[str, Any]] = json.load(member)
    return records


# --- building --------------------------------------------------------------------------------
def valid_country(code: str) -> bool:
    return code in USER_ASSIGNED or pycountry.countries.get(alpha_2=code) is not None


def source_codes(raw: str | None) -> tuple[str, ...]:
    """The source's country field ("FR", "BL/GF/GP/MF/MQ", "GE-AB", null) as alpha-2 codes."""
    if not raw:
        return ()
    codes = []
    for part in raw.split("/"):
        code = part.strip().split("-")[0]  # "GE-AB" (Abkhazia) -> GE; 289 carries GE-AB itself
        if not valid_country(code):
            raise SystemExit(f"source country code {raw!r} is not ISO 3166-1 alpha-2")
        codes.append(code)
    return tuple(sorted(set(codes)))


def short_name(name: str | None) -> str:
    """ "Guernsey (United Kingdom)" -> "Guernsey"."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", name or "").strip()


def network_name(records: list[dict[str, Any]]) -> str:
    for key in ("brand", "operator"):
        for r in records:
            value = (r.get(key) or "").strip()
            if value:
                return " ".join(value.split())
    return "unnamed network"


def build(records: list[dict[str, Any]]) -> tuple[dict[str, Entry], dict[tuple[str, str], Entry]]:
    by_mcc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    skipped: list[str] = []
    for r in records:
        mcc, mnc = r.get("mcc") or "", r.get("mnc") or ""
        if not MCC_RE.match(mcc) or not MNC_RE.match(mnc):
            skipped.append(f"{mcc}-{mnc} ({r.get('operator')})")
            continue
        by_mcc[mcc].append(r)
    print(f"skipped {len(skipped)} source rows with a malformed MCC/MNC: {', '.join(skipped)}")

    mccs: dict[str, Entry] = {}
    for mcc, rows in sorted(by_mcc.items()):
        if mcc in MCC_OVERRIDES:
            mccs[mcc] = MCC_OVERRIDES[mcc]
            continue
        votes = Counter(code for r in rows for code in source_codes(r.get("countryCode")))
        if not votes:
            raise SystemExit(f"MCC {mcc} has no country in the source and no override")
        ranked = votes.most_common()
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            raise SystemExit(f"MCC {mcc}: no single home country in {dict(votes)}; add override")
        home = ranked[0][0]
        name = NAME_OVERRIDES.get(mcc) or next(
            short_name(r.get("countryName")) for r in rows if home in source_codes(r["countryCode"])
        )
        mccs[mcc] = Entry((home,), f"the {name}" if name in WITH_ARTICLE else name)
    for mcc, value in {**MCC_OVERRIDES, **MCC_SUPPLEMENT}.items():
        mccs.setdefault(mcc, value)

    mncs: dict[tuple[str, str], Entry] = {}
    for mcc, rows in sorted(by_mcc.items()):
        if mcc in NO_DERIVED_MNC_ROWS or not mccs[mcc].countries:
            continue
        per_mnc: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            per_mnc[r["mnc"]].append(r)
        for mnc, group in sorted(per_mnc.items()):
            found = {c for r in group for c in source_codes(r.get("countryCode"))}
            if mcc in US_MCCS and len(found) > 1 and (mcc, mnc) not in US_NATIONWIDE:
                found.discard("US")
            codes = tuple(sorted(found))
            if codes and codes != mccs[mcc].countries:
                mncs[(mcc, mnc)] = Entry(codes, network_name(group))

    known = {(mcc, r["mnc"]) for mcc, rows in by_mcc.items() for r in rows}
    for key, value in MNC_OVERRIDES.items():
        if key not in known:
            print(f"warning: override {key[0]}-{key[1]} is not in the source any more")
        if value is None:
            mncs.pop(key, None)
        elif value.countries == mccs[key[0]].countries and not value.subdivisions:
            mncs.pop(key, None)  # says nothing the MCC row does not
        else:
            mncs[key] = value
    return mccs, mncs


# --- checking --------------------------------------------------------------------------------
# Facts this table must keep, whatever the source says (sanctions-relevant MCCs and specials).
FACTS: dict[str, tuple[str, ...]] = {
    "432": ("IR",),
    "417": ("SY",),
    "368": ("CU",),
    "467": ("KP",),
    "634": ("SD",),
    "659": ("SS",),
    "255": ("UA",),
    "250": ("RU",),
    "221": ("XK",),
    "001": (),
    "901": (),
    "999": (),
}


def check(mccs: dict[str, Entry], mncs: dict[tuple[str, str], Entry]) -> list[str]:
    problems = []
    for mcc, want in FACTS.items():
        got = mccs[mcc].countries if mcc in mccs else None
        if got != want:
            problems.append(f"MCC {mcc}: expected {want}, built {got}")
    if REFERENCE.exists():
        with REFERENCE.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                for mcc in row["mcc_list"].split(";"):
                    got = mccs[mcc].countries if mcc in mccs else ()
                    if row["iso2"] not in got:
                        problems.append(f"reference: {row['iso2']} {mcc}, built {got}")
    else:
        print(f"note: {REFERENCE} not found, reference check skipped")
    missing = ITU_ASSIGNED - mccs.keys()
    extra = mccs.keys() - ITU_ASSIGNED - NOT_ITU_BUT_KEPT
    if missing:
        problems.append(f"ITU-assigned MCCs missing: {sorted(missing)}")
    if extra:
        problems.append(f"MCCs not in the ITU list and not explained: {sorted(extra)}")
    entries: Iterable[tuple[str, Entry]] = [
        *mccs.items(),
        *((f"{k[0]}-{k[1]}", v) for k, v in mncs.items()),
    ]
    for key, e in entries:
        for code in e.countries:
            if not valid_country(code):
                problems.append(f"{key}: {code} is not an ISO 3166-1 alpha-2 code")
        for sub in e.subdivisions:
            found = pycountry.subdivisions.get(code=sub)
            if found is None or sub.split("-")[0] not in e.countries:
                problems.append(f"{key}: subdivision {sub} unknown or not in {e.countries}")
        if not e.note or "\n" in e.note:
            problems.append(f"{key}: note must be one non-empty line: {e.note!r}")
    for (mcc, _), e in mncs.items():
        if not mccs[mcc].countries:
            continue
        if not set(e.countries) <= set(mccs[mcc].countries):
            print(f"  outside its MCC: {mcc} {e.countries} vs {mccs[mcc].countries}: {e.note}")
    return problems


# --- writing ---------------------------------------------------------------------------------
def render(mccs: dict[str, Entry], mncs: dict[tuple[str, str], Entry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    rows = [((mcc, ""), e) for mcc, e in mccs.items()] + list(mncs.items())
    for (mcc, mnc), e in sorted(rows, key=lambda item: item[0]):
        writer.writerow(
            (mcc, mnc, ";".join(e.countries), ";".join(e.subdivisions), ";".join(e.tags), e.note)
        )
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="use only .prep-cache/")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    records = fetch(args.offline)
    print(f"{SOURCE_PACKAGE}@{SOURCE_VERSION}: {len(records)} source records")
    mccs, mncs = build(records)
    problems = check(mccs, mncs)
    if problems:
        for p in problems:
            print("error:", p, file=sys.stderr)
        sys.exit(1)
    text = render(mccs, mncs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"wrote {shown}: {len(mccs)} MCC rows, {len(mncs)} MNC rows, {len(text.encode())} bytes")


if __name__ == "__main__":
    main()
