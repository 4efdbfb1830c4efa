"""GPS position -> country and ISO 3166-2 subdivision, from the shipped boundary grid.

The data file (built by scripts/prepare_boundaries.py, sources in data/README.md) holds two
layers, countries (OpenStreetMap, 100 m) and subdivisions (Natural Earth 10m admin-1). Each is a
4096 x 2048 grid of ~9.8 km cells: a cell touched by one region stores it; a cell where regions
meet ("mixed") keeps the exact clipped polygons, which an STRtree answers for. Most points are
settled by one array read; border points by a point-in-polygon test at full resolution.
"""

from __future__ import annotations

import json
import lzma
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely import GeometryType

from regionlock.domain.errors import DataUnavailable

MIXED = 0xFFFF
# Where the country data draws one region inside another's polygon and it is not a dispute:
# dependent territories with their own ISO 3166-1 code, and enclaves whose hole the source left
# out (Lesotho in South Africa; Busingen (DE) and Campione (IT) in Switzerland; Gibraltar in
# Spain's polygon). (inner, outer): where both contain a point, the inner code is the answer.
_TERRITORIES = {
    "FR": "GF GP MQ RE YT NC PF TF PM BL MF WF",
    "US": "PR VI GU AS MP UM",
    "NL": "AW CW SX BQ",
    "NO": "SJ BV",
    "AU": "CX CC NF HM",
    "CN": "HK MO",
    "DK": "GL FO",
    "GB": "GG JE IM GI BM KY VG TC AI MS FK GS SH PN IO",
    "FI": "AX",
    "ZA": "LS",
    "IT": "SM VA",
    "CH": "DE IT",
    "ES": "GI",
    "KG": "UZ TJ",  # Shohimardon, Sokh (UZ) and Vorukh (TJ) exclaves
    "UZ": "TJ",  # Sarvak (TJ) exclave
}
INSIDE: frozenset[tuple[str, str]] = frozenset(
    (inner, outer) for outer, inners in _TERRITORIES.items() for inner in inners.split()
)
# A point in a mixed cell that falls in no polygon is at sea (or on a lake, or in a gap of the
# data); within this distance of land we name the nearest land's country, flagged "offshore".
OFFSHORE_MAX_DEG = 0.05
# Subdivisions under another state's de facto administration, whose Internet access runs
# through that state's address space: a Crimean provider's IP is registered in Russia. Russia
# has administered Crimea (UA-43) and Sevastopol (UA-40) since its 2014 annexation, which UN
# General Assembly resolution 68/262 (27 March 2014) does not recognise. Only whole
# subdivisions: the occupied parts of other oblasts cannot be told apart by position here.
DE_FACTO_ADMINISTRATION = {"UA-43": "RU", "UA-40": "RU"}


@dataclass(frozen=True, slots=True)
class GpsMatch:
    """Where a position falls: candidate countries (several = disputed), subdivision, tags."""

    countries: tuple[str, ...]
    subdivision: str | None
    tags: tuple[str, ...]


def _unpack(blob: Any) -> npt.NDArray[np.int32]:
    """Inverse of the prepare script's `packed`: lzma, then bytes back into int32 order."""
    raw = np.frombuffer(lzma.decompress(blob.tobytes()), dtype=np.uint8)
    return raw.reshape(4, -1).T.copy().view("<i4").ravel()


class _Layer:
    """One layer of the boundary file: a grid of cells, and polygons for the mixed ones."""

    def __init__(self, arrays: Any, prefix: str, nx: int, ny: int, scale: int) -> None:
        def arr(name: str) -> Any:
            return arrays[f"{prefix}_{name}"]

        self.labels: list[str] = json.loads(arr("labels").tobytes())
        # What each grid value says, as the tuple a look-up answers (0 and MIXED: nothing yet),
        # built once: a batch then allocates no tuple per point.
        self._found: list[tuple[str, ...]] = [()] + [(label,) for label in self.labels]
        self.nx, self.ny = nx, ny
        self.cell = 360.0 / nx
        grid = np.frombuffer(lzma.decompress(arr("grid").tobytes()), dtype=np.uint16)
        self.grid = grid.reshape(ny, nx)
        dx, dy = _unpack(arr("dx")), _unpack(arr("dy"))
        coords = np.empty((len(dx), 2), dtype=np.float64)
        coords[:, 0] = np.cumsum(dx, dtype=np.int64) / scale
        coords[:, 1] = np.cumsum(dy, dtype=np.int64) / scale
        ring_offsets = np.concatenate(([0], np.cumsum(_unpack(arr("ring_sizes")))))
        poly_offsets = np.concatenate(([0], np.cumsum(_unpack(arr("poly_sizes")))))
        self.pieces = shapely.from_ragged_array(
            GeometryType.POLYGON, coords, (ring_offsets, poly_offsets)
        )
        shapely.prepare(self.pieces)
        self.piece_label = _unpack(arr("piece_label"))
        self.tree = shapely.STRtree(self.pieces)

    def cells(self, lats: npt.NDArray[np.float64], lons: npt.NDArray[np.float64]) -> Any:
        ix = np.clip(((lons + 180.0) / self.cell).astype(np.int64), 0, self.nx - 1)
        iy = np.clip(((lats + 90.0) / self.cell).astype(np.int64), 0, self.ny - 1)
        return self.grid[iy, ix]

    def cell_code(self, lat: float, lon: float) -> int:
        """The grid value at one point (0 nothing, MIXED, else label index + 1), no numpy."""
        ix = min(max(int((lon + 180.0) / self.cell), 0), self.nx - 1)
        iy = min(max(int((lat + 90.0) / self.cell), 0), self.ny - 1)
        return int(self.grid[iy, ix])

    def lookup(
        self, lats: npt.NDArray[np.float64], lons: npt.NDArray[np.float64]
    ) -> tuple[list[tuple[str, ...]], npt.NDArray[np.bool_]]:
        """Labels containing each point, and which points fell in a mixed cell but no polygon."""
        codes = self.cells(lats, lons)
        by_code = self._found
        out: list[tuple[str, ...]] = [() if c == MIXED else by_code[c] for c in codes.tolist()]
        missed = np.zeros(len(out), dtype=bool)
        mixed = np.flatnonzero(codes == MIXED)
        if len(mixed):
            xs, ys = lons[mixed], lats[mixed]
            # Bounding-box candidates from the tree, then exact tests on prepared polygons.
            hit_point, hit_piece = self.tree.query(shapely.points(xs, ys))
            # intersects, not contains: a point on a cell edge lies on its pieces' boundary.
            inside = shapely.intersects_xy(self.pieces[hit_piece], xs[hit_point], ys[hit_point])
            found: dict[int, set[str]] = {}
            for p, piece in zip(
                hit_point[inside].tolist(), hit_piece[inside].tolist(), strict=True
            ):
                found.setdefault(p, set()).add(self.labels[self.piece_label[piece]])
            for j, i in enumerate(mixed.tolist()):
                labels = found.get(j)
                if labels:
                    out[i] = tuple(sorted(labels))
                else:
                    missed[i] = True
        return out, missed

    def nearest(
        self, lat: float, lon: float, max_deg: float, prefix: str | None = None
    ) -> tuple[str, ...]:
        """Labels of the nearest polygons within max_deg (several when equally near, as where
        two claims overlap); optionally only codes starting with `prefix`."""
        point = shapely.points(lon, lat)
        idx = self.tree.query(point, predicate="dwithin", distance=max_deg)
        found: dict[str, float] = {}
        for piece in idx.tolist():
            label = self.labels[self.piece_label[piece]]
            if prefix is not None and not label.startswith(prefix):
                continue
            d = float(shapely.distance(self.pieces[piece], point))
            found[label] = min(d, found.get(label, d))
        if not found:
            return ()
        best = min(found.values())
        return tuple(sorted(label for label, d in found.items() if d <= best + 1e-9))


class Boundaries:
    """Countries and subdivisions of the world, for point look-ups."""

    def __init__(self, path: Path | None = None) -> None:
        source = path or Path(str(resources.files("regionlock").joinpath("data/boundaries.npz")))
        try:
            with np.load(source, allow_pickle=False) as arrays:
                meta = json.loads(arrays["meta"].tobytes())
                nx, ny = meta["grid"]
                self.countries = _Layer(arrays, "country", nx, ny, meta["scale"])
                self.admin1 = _Layer(arrays, "admin1", nx, ny, meta["scale"])
        except (OSError, KeyError, ValueError, lzma.LZMAError) as exc:
            raise DataUnavailable(f"boundary data {source} is missing or corrupt: {exc}") from exc
        self.meta = meta
        self.subdivision_names: dict[str, str] = meta["admin1_names"]

    def lookup_many(self, lats: Sequence[float], lons: Sequence[float]) -> list[GpsMatch]:
        """Resolve many positions at once (vectorised); same answers as one at a time."""
        la = np.asarray(lats, dtype=np.float64)
        lo = np.asarray(lons, dtype=np.float64)
        countries, missed = self.countries.lookup(la, lo)
        subs, _ = self.admin1.lookup(la, lo)
        out: list[GpsMatch] = []
        for i, found in enumerate(countries):
            tags: list[str] = []
            if not found and missed[i]:
                found = self.countries.nearest(float(la[i]), float(lo[i]), OFFSHORE_MAX_DEG)
                if found:
                    tags.append("offshore")
            out.append(self._settle(found, subs[i], float(la[i]), float(lo[i]), tags))
        return out

    def lookup(self, lat: float, lon: float) -> GpsMatch:
        """One position. Most points sit in cells a single region covers: answered directly."""
        c = self.countries.cell_code(lat, lon)
        a = self.admin1.cell_code(lat, lon)
        if c not in (0, MIXED) and a not in (0, MIXED):
            sub = (self.admin1.labels[a - 1],)
            return self._settle((self.countries.labels[c - 1],), sub, lat, lon, [])
        return self.lookup_many([lat], [lon])[0]

    def _settle(
        self,
        countries: tuple[str, ...],
        subs: tuple[str, ...],
        lat: float,
        lon: float,
        tags: list[str],
    ) -> GpsMatch:
        match = self._place(countries, subs, lat, lon, tags)
        administrator = DE_FACTO_ADMINISTRATION.get(match.subdivision or "")
        if administrator is None:
            return match
        return GpsMatch(
            match.countries, match.subdivision, (*match.tags, f"administered:{administrator}")
        )

    def _place(
        self,
        countries: tuple[str, ...],
        subs: tuple[str, ...],
        lat: float,
        lon: float,
        tags: list[str],
    ) -> GpsMatch:
        if not countries:
            return GpsMatch((), None, tuple(tags))
        if len(countries) > 1:
            outer = {o for i, o in INSIDE if i in countries}
            countries = tuple(c for c in countries if c not in outer)
        if len(countries) > 1:
            tags.append("disputed")
            # Overlapping claims (e.g. Crimea in both RU and UA in OpenStreetMap): the ISO 3166
            # view, which sanctions law uses, is the subdivision code's country.
            iso_view = {s[:2] for s in subs} & set(countries)
            if len(iso_view) == 1:
                (country,) = iso_view
                named = [s for s in subs if s.startswith(country + "-")]
                return GpsMatch((country,), named[0] if len(named) == 1 else None, tuple(tags))
            return GpsMatch(countries, None, tuple(tags))
        country = countries[0]
        if country in subs:
            # An area the subdivision data leaves unnamed (no current ISO 3166-2 code).
            return GpsMatch(countries, None, tuple(tags))
        own = [s for s in subs if s.startswith(country + "-")]
        if len(own) == 1:
            return GpsMatch(countries, own[0], tuple(tags))
        # The subdivision layer is coarser than the country layer: near a border or a coast the
        # point can fall outside every subdivision of its own country. Take the nearest one.
        near = self.admin1.nearest(lat, lon, 0.1, prefix=country + "-")
        return GpsMatch(countries, near[0] if len(near) == 1 else None, tuple(tags))
