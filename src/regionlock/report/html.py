"""The investigation report as one self-contained HTML file (`regionlock investigate report`).

It renders the findings' JSON (`Findings.to_json()`, or the snapshot a case kept), so the HTML
and `--json` hold the same content, and a case's report shows the findings it was decided on.
Everything is inline: the styles, the charts (SVG), the map; nothing is fetched when it opens.
Every value from the data is escaped (Jinja2's autoescape): batch and distributor names come
from uploaded CSVs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import jinja2
from markupsafe import Markup

from regionlock.geo.countries import country_name
from regionlock.geo.worldmap import WorldMap
from regionlock.report.svg import legend_svg, runs_strip_svg, share_bar_svg, world_svg

GROUPINGS = ("distributor", "batch", "model", "sales_region")
SHOWN_ROWS = 25  # per ranking, besides every flagged row


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("regionlock", "report/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v, digits=1: f"{v * 100:.{digits}f} %"
    env.filters["num"] = lambda v: f"{v:,}"
    env.filters["p"] = _p_value
    env.filters["when"] = _when
    return env


def _p_value(v: float) -> str:
    if v >= 0.001:
        return f"{v:.3f}"
    return f"{v:.1e}"


def _place_key(row: Mapping[str, Any], restricted: Sequence[str]) -> str:
    """A place as the map draws it: a restricted subdivision as itself, else its country.
    A country that is not restricted as a whole (UA, where only some oblasts are) keeps a
    code of its own, `UA?`: a device placed there without a subdivision, drawn nowhere."""
    sub, country = row.get("subdivision"), str(row["country"])
    if sub and sub in restricted:
        return str(sub)
    return country if country in restricted else f"{country}?"


def _place_name(code: str, subdivision_names: Mapping[str, str]) -> str:
    if code.endswith("?"):
        return f"{country_name(code[:-1])}, the subdivision not known"
    if "-" in code:
        return subdivision_names.get(code, code)
    return country_name(code)


def _when(value: str | None) -> str:
    """An ISO 8601 time as people read it, in UTC to the minute."""
    if not value:
        return ""
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ranking(by: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    shown = [r for i, r in enumerate(rows) if r["flagged"] or i < SHOWN_ROWS]
    scale = max((max(r["share"], _expected_share(r)) for r in shown), default=0.0)
    return {
        "by": by,
        "total": len(rows),
        "flagged": [r["group"] for r in rows if r["flagged"]],
        "rows": [
            {**r, "bar": Markup(share_bar_svg(r["share"], _expected_share(r), scale))}
            for r in shown
        ],
        "hidden": len(rows) - len(shown),
    }


def _expected_share(row: Mapping[str, Any]) -> float:
    return float(row["expected"]) / row["seen"] if row["seen"] else 0.0


def view(report: Mapping[str, Any], world: WorldMap) -> dict[str, Any]:
    """What the template shows, from the findings' JSON (and the case, under "case")."""
    scope = report["scope"]
    restricted = list(scope["places"])
    counts: dict[str, int] = {}
    for row in report["places"]:
        key = _place_key(row, restricted)
        counts[key] = counts.get(key, 0) + int(row["devices"])
    names = {code: _place_name(code, world.subdivision_names) for code in counts}
    places = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    leaks = report["leaks"]
    rankings = [_ranking(by, leaks[by]) for by in GROUPINGS if by in leaks]
    ranges = [
        {**r, "strip": Markup(runs_strip_svg(r["devices"], _positions(r["rows"])))}
        for r in report["ranges"]
    ]
    return {
        "report": report,
        "scope": scope,
        "case": report.get("case"),
        "restricted": [(code, _place_name(code, world.subdivision_names)) for code in restricted],
        "map": Markup(
            world_svg(world, counts, names, title="Where restricted devices are established")
        ),
        "legend": Markup(legend_svg(max(counts.values(), default=0))),
        "places": [(code, names[code], n) for code, n in places],
        "restricted_total": sum(counts.values()),
        "rankings": rankings,
        "flows": report["flows"],
        "ranges": ranges,
    }


def _positions(rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    return [(int(r["first_position"]), int(r["last_position"])) for r in rows]


def render_html(report: Mapping[str, Any], world: WorldMap) -> str:
    """The report page. `report`: `Findings.to_json()`, optionally with the case's JSON
    (`Case.to_json(events)`) under "case"."""
    template = _environment().get_template("report.html.j2")
    return template.render(**view(report, world))
