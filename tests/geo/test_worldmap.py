"""The report's world map, drawn from the boundary grid: places where they are, Crimea drawn
as the ISO view has it, nothing lost at sea."""

from __future__ import annotations

import pytest

from regionlock.geo.boundaries import Boundaries
from regionlock.geo.worldmap import WorldMap, world_map


@pytest.fixture(scope="module")
def world() -> WorldMap:
    return world_map()


def _cell(world: WorldMap, lat: float, lon: float) -> tuple[int, int]:
    """(row from the top, column) of a position."""
    return int((90 - lat) / 180 * world.height), int((lon + 180) / 360 * world.width)


def _covers(world: WorldMap, code: str, lat: float, lon: float) -> bool:
    row, x = _cell(world, lat, lon)
    return any(r == row and x0 <= x < x1 for r, x0, x1 in world.runs(code))


def test_places_are_where_they_are(world: WorldMap) -> None:
    assert (world.width, world.height) == (1024, 512)
    assert _covers(world, "IR", 35.69, 51.39)  # Tehran
    assert _covers(world, "CU", 23.11, -82.37)  # Havana
    assert _covers(world, "KP", 39.03, 125.75)  # Pyongyang
    assert not _covers(world, "IR", 48.86, 2.35)  # Paris is not in Iran
    assert _covers(world, "FR", 48.86, 2.35)


def test_crimea_is_drawn_as_a_subdivision_of_ukraine(world: WorldMap) -> None:
    assert _covers(world, "UA-43", 44.95, 34.10)  # Simferopol
    assert _covers(world, "UA", 44.95, 34.10)  # the ISO 3166 view, not Russia's polygon
    assert not _covers(world, "RU", 44.95, 34.10)
    assert _covers(world, "UA-40", 44.6, 33.52)  # Sevastopol
    assert len(world.runs("UA-43")) >= 4  # about 9 x 5 cells: visible on the map


def test_runs_agree_with_the_locator_at_cell_centres(world: WorldMap) -> None:
    """Away from borders, a reduced cell says what the exact look-up says at its centre."""
    boundaries = Boundaries()
    cell = 360 / world.width
    checked = disagree = 0
    for row in range(40, world.height - 40, 23):
        for x in range(0, world.width, 17):
            value = int(world.countries[row, x])
            neighbours = world.countries[row - 1 : row + 2, max(x - 1, 0) : x + 2]
            if (neighbours != value).any():
                continue  # near a border or a coast: reduced cells may differ
            lat, lon = 90 - (row + 0.5) * cell, -180 + (x + 0.5) * cell
            found = boundaries.lookup(lat, lon).countries
            expected = world.country_labels[value - 1] if value else None
            checked += 1
            disagree += (expected not in found) if expected else bool(found)
    assert checked > 500
    assert disagree <= checked // 100  # enclaves smaller than a cell, at most


def test_unknown_codes_draw_nothing_and_an_unknown_region_has_no_label(world: WorldMap) -> None:
    assert world.runs("XX") == [] and world.runs("ZZ-99") == []
    assert world.label_at("XX") is None
    x, y = world.label_at("IR") or (0, 0)
    assert _cell(world, 32.4, 53.7) == pytest.approx((y, x), abs=6)  # Iran's middle


def test_land_and_borders(world: WorldMap) -> None:
    land = sum(x1 - x0 for _, x0, x1 in world.land())
    assert 0.2 < land / (world.width * world.height) < 0.4  # about 29 % of a plate carree
    # Every border segment lies between two countries' cells.
    for x1, y1, x2, y2 in world.borders()[:2000]:
        assert x1 == x2 or y1 == y2
