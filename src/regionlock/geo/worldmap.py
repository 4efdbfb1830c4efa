"""A world map for reports and the console, drawn from the boundary grid the locator uses.

The boundary file (geo/boundaries.py) holds country and subdivision labels on a 4096 x 2048
grid. Reduced by a whole factor (4 by default: 1024 x 512 cells of ~0.35 degrees), each layer
becomes a small label grid, and a region is then the runs of consecutive cells in each row that
carry its label: enough for an SVG map of a few hundred kilobytes, with every island and small
subdivision (Crimea is about 9 x 5 cells) still visible. Nothing is downloaded and no map
library is needed.

A reduced cell takes the label of the full cells it covers, the centre ones first; land wins
over sea, so small islands survive. Where a reduced cell covers only border cells ("mixed" in
the file), its centre is looked up in the exact polygons. Where two claims overlap (Crimea in
Russia's and Ukraine's polygons) the subdivision's ISO 3166-2 code settles the country, as the
locator does.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from regionlock.geo.boundaries import MIXED, Boundaries, _Layer

Run = tuple[int, int, int]  # (row from the top, first column, column after the last)


@dataclass(frozen=True, slots=True)
class WorldMap:
    """Label grids of countries and subdivisions, row 0 at the top (90 degrees north)."""

    width: int
    height: int
    countries: npt.NDArray[np.int32]  # index into country_labels + 1; 0 is sea
    country_labels: tuple[str, ...]
    subdivisions: npt.NDArray[np.int32]
    subdivision_labels: tuple[str, ...]
    subdivision_names: dict[str, str]
    # What a page draws again and again, worked out once (a console renders a map per view).
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def runs(self, code: str) -> list[Run]:
        """The cells of one country (IR) or subdivision (UA-43), as runs per row."""
        layer = "subdivisions" if "-" in code else "countries"
        by_code = self._cache.get(layer)
        if by_code is None:
            grid, labels = (
                (self.subdivisions, self.subdivision_labels)
                if layer == "subdivisions"
                else (self.countries, self.country_labels)
            )
            by_code = self._cache[layer] = _runs_by_label(grid, labels)
        return list(by_code.get(code, ()))

    def land(self) -> list[Run]:
        """Every cell of any country."""
        if "land" not in self._cache:
            self._cache["land"] = _runs(self.countries != 0)
        return list(self._cache["land"])

    def borders(self) -> list[tuple[int, int, int, int]]:
        if "borders" not in self._cache:
            self._cache["borders"] = self._borders()
        return list(self._cache["borders"])

    def _borders(self) -> list[tuple[int, int, int, int]]:
        """Segments (x1, y1, x2, y2) in cell units where two countries meet, merged along
        their length: vertical ones between neighbours in a row, horizontal ones between
        neighbours in a column."""
        g = self.countries
        out: list[tuple[int, int, int, int]] = []
        vertical = (g[:, 1:] != g[:, :-1]) & (g[:, 1:] != 0) & (g[:, :-1] != 0)
        for x, (start, stop) in _column_runs(vertical):
            out.append((x + 1, start, x + 1, stop))
        horizontal = (g[1:, :] != g[:-1, :]) & (g[1:, :] != 0) & (g[:-1, :] != 0)
        for row, x0, x1 in _runs(horizontal):
            out.append((x0, row + 1, x1, row + 1))
        return out

    def label_at(self, code: str) -> tuple[float, float] | None:
        """Where to write a region's name: the centre of its cells (x, y in cell units)."""
        runs = self.runs(code)
        if not runs:
            return None
        weight = sum(x1 - x0 for _, x0, x1 in runs)
        x = sum((x0 + x1) / 2 * (x1 - x0) for _, x0, x1 in runs) / weight
        y = sum((row + 0.5) * (x1 - x0) for row, x0, x1 in runs) / weight
        return x, y


def _runs(mask: npt.NDArray[np.bool_]) -> list[Run]:
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, stops = np.nonzero(edges == -1)
    return list(zip(rows.tolist(), starts.tolist(), stops.tolist(), strict=True))


def _runs_by_label(grid: npt.NDArray[np.int32], labels: tuple[str, ...]) -> dict[str, list[Run]]:
    """Every label's runs per row in one pass over the grid: where the value changes along a
    row, a run of the value before the change ends."""
    padded = np.zeros((grid.shape[0], grid.shape[1] + 2), dtype=grid.dtype)
    padded[:, 1:-1] = grid
    change = padded[:, 1:] != padded[:, :-1]
    rows, cols = np.nonzero(change)
    out: dict[str, list[Run]] = {}
    # Consecutive change points in a row bound a run of one value (0: sea, skipped).
    same_row = rows[1:] == rows[:-1]
    starts, stops, row_of = cols[:-1][same_row], cols[1:][same_row], rows[:-1][same_row]
    values = grid[row_of, starts]
    for row, x0, x1, value in zip(
        row_of.tolist(), starts.tolist(), stops.tolist(), values.tolist(), strict=True
    ):
        if value:
            out.setdefault(labels[value - 1], []).append((row, x0, x1))
    return out


def _column_runs(mask: npt.NDArray[np.bool_]) -> Iterable[tuple[int, tuple[int, int]]]:
    for x, start, stop in _runs(mask.T):
        yield x, (start, stop)


def _reduce(layer: _Layer, factor: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
    """The reduced grid (south row first, as in the file) and where only border cells were."""
    ny, nx = layer.grid.shape
    blocks = (
        layer.grid.reshape(ny // factor, factor, nx // factor, factor)
        .transpose(0, 2, 1, 3)
        .reshape(ny // factor, nx // factor, factor * factor)
    )
    centre = (factor - 1) / 2
    order = np.argsort(
        [(i // factor - centre) ** 2 + (i % factor - centre) ** 2 for i in range(factor**2)],
        kind="stable",
    )
    blocks = blocks[:, :, order]
    real = (blocks != 0) & (blocks != MIXED)
    first = np.take_along_axis(blocks, real.argmax(axis=2)[..., None], 2)[..., 0]
    has_real = real.any(axis=2)
    reduced = np.where(has_real, first, 0).astype(np.int32)
    mixed_only = ~has_real & (blocks == MIXED).any(axis=2)
    return reduced, mixed_only


def _settle_mixed(
    boundaries: Boundaries,
    countries: npt.NDArray[np.int32],
    country_mixed: npt.NDArray[np.bool_],
    subdivisions: npt.NDArray[np.int32],
    subdivision_mixed: npt.NDArray[np.bool_],
    cell: float,
) -> None:
    """Label the reduced cells that covered only border cells, from their centres."""
    c_labels, a_labels = boundaries.countries.labels, boundaries.admin1.labels
    c_index = {label: i + 1 for i, label in enumerate(c_labels)}
    a_index = {label: i + 1 for i, label in enumerate(a_labels)}
    ys, xs = np.nonzero(country_mixed | subdivision_mixed)
    lats = (-90.0 + (ys + 0.5) * cell).astype(np.float64)
    lons = (-180.0 + (xs + 0.5) * cell).astype(np.float64)
    found_c, _ = boundaries.countries.lookup(lats, lons)
    found_a, _ = boundaries.admin1.lookup(lats, lons)
    for y, x, cs, subs in zip(ys.tolist(), xs.tolist(), found_c, found_a, strict=True):
        if subdivision_mixed[y, x] and subs:
            subdivisions[y, x] = a_index[subs[0]]
        if not country_mixed[y, x] or not cs:
            continue
        if len(cs) > 1:  # overlapping claims: the subdivision's ISO 3166-2 code decides
            iso = [c for c in cs if any(s.startswith(c + "-") for s in subs)]
            cs = tuple(iso) or cs
        countries[y, x] = c_index[cs[0]]


@functools.lru_cache(maxsize=2)
def world_map(factor: int = 4, boundaries: Boundaries | None = None) -> WorldMap:
    """The map at 1/`factor` of the boundary grid's resolution (built once per process:
    about 0.3 s after the boundary file is loaded)."""
    b = boundaries or Boundaries()
    countries, country_mixed = _reduce(b.countries, factor)
    subdivisions, subdivision_mixed = _reduce(b.admin1, factor)
    _settle_mixed(
        b,
        countries,
        country_mixed,
        subdivisions,
        subdivision_mixed,
        b.countries.cell * factor,
    )
    return WorldMap(
        width=countries.shape[1],
        height=countries.shape[0],
        countries=np.ascontiguousarray(countries[::-1]),
        country_labels=tuple(b.countries.labels),
        subdivisions=np.ascontiguousarray(subdivisions[::-1]),
        subdivision_labels=tuple(b.admin1.labels),
        subdivision_names=dict(b.subdivision_names),
    )
