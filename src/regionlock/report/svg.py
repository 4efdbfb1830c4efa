"""Charts as inline SVG: the map of where restricted devices are established, bars of a
group's share against what the background explains, and where a batch's suspicious runs lie.

Every function returns SVG text with its values escaped, ready to sit inside an HTML page;
nothing refers to an outside resource.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from regionlock.geo.worldmap import Run, WorldMap

# A sequential palette (light to dark red) for counts; sea, land and borders in greys.
SHADES = ("#fcbba1", "#fc9272", "#fb6a4a", "#de2d26", "#a50f15")
LAND = "#d9d9d9"
BORDER = "#ffffff"
SEA = "#f4f8fb"


def _path(runs: Sequence[Run]) -> str:
    return "".join(f"M{x0} {row}h{x1 - x0}v1h{x0 - x1}z" for row, x0, x1 in runs)


def shade(value: int, top: int, *, linear: bool = False) -> str:
    """The palette step for `value` out of `top`, on a logarithmic scale (counts of places
    span orders of magnitude), or a linear one (shares, in percent)."""
    if top <= 1:
        return SHADES[-1]
    if linear:
        step = max(value, 0) / top * (len(SHADES) - 1)
    else:
        step = math.log(max(value, 1)) / math.log(top) * (len(SHADES) - 1)
    return SHADES[min(len(SHADES) - 1, max(0, round(step)))]


def world_svg(
    world: WorldMap,
    counts: Mapping[str, int],
    names: Mapping[str, str],
    *,
    title: str,
    unit: str = " device(s)",
    top: int | None = None,
    linear: bool = False,
) -> str:
    """The world with each place of `counts` (a country, IR, or a subdivision, UA-43) shaded
    by its count out of `top` (the largest count by default); a subdivision is drawn over its
    country. Each shaded place has a tooltip: its name, code, count and `unit`."""
    w, h = world.width, world.height
    top = max(counts.values(), default=0) if top is None else top
    shaded = [run for code in counts for run in world.runs(code)]
    x, y, vw, vh = _frame(shaded, w, h)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{x} {y} {vw} {vh}" role="img"'
        f' class="map" aria-labelledby="map-title">',
        f'<title id="map-title">{escape(title)}</title>',
        f'<rect width="{w}" height="{h}" fill="{SEA}"/>',
        f'<path fill="{LAND}" d="{_path(world.land())}"/>',
    ]
    # Countries first, then subdivisions on top of them.
    for code in sorted(counts, key=lambda c: ("-" in c, c)):
        runs = world.runs(code)
        if not runs:
            continue
        label = f"{names.get(code, code)} ({code}): {counts[code]:,}{unit}"
        parts.append(
            f'<path fill="{shade(counts[code], top, linear=linear)}" d="{_path(runs)}">'
            f"<title>{escape(label)}</title></path>"
        )
    borders = "".join(f"M{x1} {y1}L{x2} {y2}" for x1, y1, x2, y2 in world.borders())
    parts.append(f'<path fill="none" stroke="{BORDER}" stroke-width="0.4" d="{borders}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _frame(runs: Sequence[Run], width: int, height: int) -> tuple[int, int, int, int]:
    """The part of the map to show: the shaded places with a margin as wide again on each
    side, at least a quarter of the world's width, in the world's 2:1 proportions (the whole
    world when nothing is shaded)."""
    if not runs:
        return 0, 0, width, height
    top, bottom = min(r[0] for r in runs), max(r[0] for r in runs) + 1
    left, right = min(r[1] for r in runs), max(r[2] for r in runs)
    vw = min(width, max(width // 4, 3 * (right - left), 2 * 3 * (bottom - top)))
    vh = vw // 2
    x = min(max((left + right) // 2 - vw // 2, 0), width - vw)
    y = min(max((top + bottom) // 2 - vh // 2, 0), height - vh)
    return x, y, vw, vh


def legend_svg(top: int, *, unit: str = "", linear: bool = False) -> str:
    """The palette steps that counts from 1 to `top` take, each with the least count that
    takes it (`shade`'s own answer, found by bisection: shades grow with the count)."""
    if top < 1:
        return ""
    cells: list[str] = []
    for colour in SHADES:
        step = SHADES.index(colour)
        lo, hi = 1, top
        while lo < hi:  # the least count whose step is at least this one
            mid = (lo + hi) // 2
            if SHADES.index(shade(mid, top, linear=linear)) >= step:
                hi = mid
            else:
                lo = mid + 1
        if shade(lo, top, linear=linear) != colour:
            continue  # no count takes this step
        x = len(cells) * 70
        cells.append(
            f'<rect x="{x}" y="0" width="70" height="12" fill="{colour}"/>'
            f'<text x="{x + 2}" y="26">{lo:,}{unit}+</text>'
        )
    width = 70 * len(cells)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 30" width="{width}"'
        f' height="30" class="legend"'
        f' role="img" aria-label="devices per place">{"".join(cells)}</svg>'
    )


def share_bar_svg(share: float, expected_share: float, scale: float) -> str:
    """A group's share (bar) against the share the background explains (tick), both on a
    0..`scale` axis."""
    width, height = 120, 14
    scale = scale if scale > 0 else 1.0

    def x(v: float) -> float:
        return round(min(max(v / scale, 0.0), 1.0) * width, 1)

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' class="bar" role="img" aria-label="share {share:.1%}, expected {expected_share:.1%}">'
        f'<rect width="{width}" height="{height}" fill="#f0f0f0"/>'
        f'<rect width="{x(share)}" height="{height}" fill="#de2d26"/>'
        f'<rect x="{max(x(expected_share) - 1, 0)}" width="2" height="{height}" fill="#252525"/>'
        "</svg>"
    )


def runs_strip_svg(devices: int, runs: Sequence[tuple[int, int]]) -> str:
    """A batch in IMEI order, with its suspicious runs (1-based first and last positions)."""
    width, height = 600, 18
    if devices < 1:
        return ""

    def x(position: float) -> float:
        return round(position / devices * width, 1)

    marks = "".join(
        f'<rect x="{x(first - 1)}" width="{max(x(last) - x(first - 1), 1)}" height="{height}"'
        f' fill="#de2d26"><title>positions {first}-{last}</title></rect>'
        for first, last in runs
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="strip"'
        f' role="img" aria-label="runs in the batch">'
        f'<rect width="{width}" height="{height}" fill="#f0f0f0"/>{marks}</svg>'
    )


def daily_bars_svg(days: Sequence[tuple[str, int]], *, label: str) -> str:
    """One bar per day (`(YYYY-MM-DD, count)`, oldest first), each with its day and count as
    a tooltip; the largest count is written at the top."""
    if not days:
        return ""
    top = max(n for _, n in days) or 1
    bar, gap, height = 12, 2, 60
    width = len(days) * (bar + gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height + 14}"'
        f' width="{width}" height="{height + 14}" class="bars" role="img"'
        f' aria-label="{escape(label)}">',
        f'<text x="0" y="10" font-size="10">{top:,}</text>',
    ]
    for i, (day, n) in enumerate(days):
        h = round(n / top * (height - 12))
        parts.append(
            f'<rect x="{i * (bar + gap)}" y="{height + 14 - h}" width="{bar}" height="{h}"'
            f' fill="{SHADES[2]}"><title>{escape(day)}: {n:,}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)
