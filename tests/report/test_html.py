"""The report's HTML from findings' JSON: every value escaped, charts inline, and the parts
that an analyst reads (flagged rows, ranges, notes) where they belong."""

from __future__ import annotations

from typing import Any

import pytest

from regionlock.geo.worldmap import WorldMap, world_map
from regionlock.report.html import render_html
from regionlock.report.svg import legend_svg, shade, share_bar_svg, world_svg

EVIL = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def world() -> WorldMap:
    return world_map()


def _row(group: str, seen: int, restricted: int, flagged: bool) -> dict[str, Any]:
    return {
        "group": group,
        "devices": seen,
        "seen": seen,
        "restricted": restricted,
        "share": restricted / seen,
        "expected": seen * 0.005,
        "p_value": 1e-9 if flagged else 0.5,
        "q_value": 1e-8 if flagged else 0.9,
        "shrunk": restricted / seen,
        "wilson_low": 0.0,
        "flagged": flagged,
    }


def findings(group: str = "B-1") -> dict[str, Any]:
    return {
        "made_at": "2026-12-06T00:00:00Z",
        "code_version": "0.1.0",
        "code_sha256": "c" * 64,
        "snapshot_sha256": "a" * 64,
        "scope": {
            "places": ["IR", "UA-43"],
            "rule": "first activated there",
            "since": None,
            "until": "2026-12-05",
            "checkins": 1234,
            "policy": "p@1",
        },
        "leaks": {
            "batch": [_row(group, 150, 40, True), _row("B-2", 150, 1, False)],
            "distributor": [_row("D", 300, 41, False)],
        },
        "leaks_omitted": {"batch": 0, "distributor": 0},
        "flows": [
            {
                "sales_region": "AE",
                "destination": "IR",
                "restricted": True,
                "devices": 41,
                "share": 0.14,
                "median_days_to_arrival": 3.0,
                "p90_days_to_arrival": 9.5,
            }
        ],
        "ranges": [
            {
                "batch": group,
                "devices": 150,
                "restricted": 40,
                "note": None,
                "rows": [
                    {
                        "first": "356938030000062",
                        "last": "356938030000252",
                        "devices": 20,
                        "restricted": 15,
                        "p_value": 0.001,
                        "llr": 12.0,
                        "first_position": 6,
                        "last_position": 25,
                    }
                ],
            }
        ],
        "places": [
            {"country": "IR", "subdivision": "IR-07", "devices": 30},
            {"country": "IR", "subdivision": None, "devices": 5},
            {"country": "UA", "subdivision": "UA-43", "devices": 6},
            {"country": "UA", "subdivision": None, "devices": 2},
        ],
        "notes": [],
    }


def test_values_from_the_data_are_escaped(world: WorldMap) -> None:
    data = findings(EVIL)
    data["notes"] = [EVIL]
    data["case"] = {
        "id": "case_abcdefgh",
        "title": EVIL,
        "status": "open",
        "opened_at": "2026-12-06T00:00:00+00:00",
        "opened_by": EVIL,
        "closed_at": None,
        "closed_by": None,
        "outcome": None,
        "campaigns": [],
        "history": [
            {"seq": 1, "at": "t", "actor": EVIL, "kind": "note", "text": EVIL, "campaign": None}
        ],
    }
    page = render_html(data, world)
    assert "<script" not in page
    assert page.count("&lt;script&gt;") >= 6


def test_the_page_holds_the_question_rankings_ranges_and_reproduction(world: WorldMap) -> None:
    page = render_html(findings(), world)
    assert "1,234 check-ins" in page and "the first check-in to 2026-12-05" in page
    assert '<tr class="flagged"><td>B-1</td>' in page
    assert 'By batch: <span class="flag">1 of 2 flagged</span>: B-1.' in page
    assert "none of 1 flagged" in page  # by distributor
    assert "356938030000062" in page and "6-25" in page
    assert "a" * 64 in page and "c" * 64 in page
    # A subdivision that is itself restricted is shown as such; elsewhere, its country.
    assert "<code>UA-43</code></td><td>6</td>" in page
    assert "<code>IR</code></td><td>35</td>" in page
    # A country restricted only in part, with no subdivision known: listed, not drawn.
    assert "<td>Ukraine, the subdivision not known</td>" in page
    assert "Ukraine (UA" not in page
    assert "Findings made 2026-12-06 00:00 UTC" in page
    assert 'id="case"' not in page  # no case given


def test_the_map_shades_each_place_by_its_count(world: WorldMap) -> None:
    svg = world_svg(world, {"IR": 100, "UA-43": 1}, {"IR": "Iran"}, title="t")
    assert "<title>Iran (IR): 100 device(s)</title>" in svg
    assert "<title>UA-43 (UA-43): 1 device(s)</title>" in svg
    assert shade(100, 100) == "#a50f15" and shade(1, 100) == "#fcbba1"
    # Framed on the places, not the whole world; the whole world when nothing is shaded.
    assert 'viewBox="0 0 1024 512"' not in svg
    assert 'viewBox="0 0 1024 512"' in world_svg(world, {}, {}, title="t")


def test_small_charts() -> None:
    assert "share 25.0%, expected 1.0%" in share_bar_svg(0.25, 0.01, 0.5)
    assert 'width="60.0"' in share_bar_svg(0.25, 0.01, 0.5)  # half of the 120 wide axis
    assert legend_svg(0) == ""
    assert legend_svg(1).count("<rect") == 1 and "1+" in legend_svg(1)
    assert legend_svg(2).count("<rect") == 2  # 1 takes the lightest step, 2 the darkest
    assert legend_svg(10_000).count("<rect") == 5
    # Each step is labelled with the least count that takes it.
    legend = legend_svg(84)
    for start in (1, 2, 6, 16, 49):
        assert f">{start:,}+<" in legend
        assert shade(start, 84) != shade(start - 1, 84) or start == 1
