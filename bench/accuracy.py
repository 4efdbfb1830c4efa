"""Accuracy of Boundaries.lookup_many against an independent labelled set (GeoNames places).

Run: .venv/bin/python bench/accuracy.py [--markdown FILE] [--data CSV_GZ]

The set (bench/data/accuracy-points.csv.gz, built by scripts/build_accuracy_set.py, see
bench/data/README.md) labels each place with the GeoNames country, and Ukrainian places with an
ISO 3166-2 code. Each answer falls in one class:
- correct: one country, the label's;
- wrong: one country, another one, and no labelling convention explains it;
- unknown: no country (sea, lake, or a gap in the data);
- disputed: several countries, left unresolved;
- convention: one country that differs from the label where GeoNames and OpenStreetMap follow
  different conventions for a disputed territory (table CONVENTIONS). Not counted as errors;
  accuracy is correct / (points - convention).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from regionlock.geo.boundaries import Boundaries, GpsMatch

DATA = Path(__file__).resolve().parent / "data" / "accuracy-points.csv.gz"

# Where GeoNames (the label) and OpenStreetMap (our answer) knowingly disagree. Each entry is
# (label, answer) -> (lat_min, lat_max, lon_min, lon_max, why): the disagreement counts as a
# convention only inside that box around the disputed territory; elsewhere it is an error.
CONVENTIONS: dict[tuple[str, str], tuple[float, float, float, float, str]] = {
    # Crimea and Sevastopol: Ukraine in GeoNames and ISO 3166; Russia in parts of OSM.
    ("UA", "RU"): (44.3, 46.3, 32.4, 36.7, "Crimea"),
    # Western Sahara: GeoNames splits places between EH and MA; OSM draws one EH/MA line.
    ("EH", "MA"): (20.7, 28.0, -17.2, -8.6, "Western Sahara"),
    ("MA", "EH"): (20.7, 28.0, -17.2, -8.6, "Western Sahara"),
    # Kosovo: some GeoNames places there still carry RS.
    ("RS", "XK"): (41.8, 43.3, 20.0, 21.9, "Kosovo"),
    # Abkhazia and South Ossetia: Georgia in GeoNames; OSM may follow the line of control.
    ("GE", "RU"): (41.9, 43.6, 39.9, 44.6, "Abkhazia / South Ossetia"),
    # Northern Cyprus: Cyprus in GeoNames and ISO 3166; OSM keeps Cyprus but marks the north.
    ("CY", "TR"): (34.9, 35.8, 32.2, 34.7, "Northern Cyprus"),
    # Kashmir, Aksai Chin, Arunachal Pradesh: administered vs claimed.
    ("IN", "PK"): (32.2, 37.1, 72.5, 80.4, "Kashmir"),
    ("PK", "IN"): (32.2, 37.1, 72.5, 80.4, "Kashmir"),
    ("IN", "CN"): (26.5, 36.0, 77.0, 97.5, "Aksai Chin / Arunachal Pradesh"),
    ("CN", "IN"): (26.5, 36.0, 77.0, 97.5, "Aksai Chin / Arunachal Pradesh"),
    # Golan Heights and the West Bank / East Jerusalem.
    ("SY", "IL"): (32.6, 33.4, 35.6, 36.0, "Golan Heights"),
    ("PS", "IL"): (31.3, 32.6, 34.8, 35.6, "West Bank / East Jerusalem"),
    ("IL", "PS"): (31.3, 32.6, 34.8, 35.6, "West Bank / East Jerusalem"),
}

FOCUS_SUBDIVISIONS = ["UA-43", "UA-40", "UA-14", "UA-09", "UA-65", "UA-23"]
SANCTIONS_NOTE = "within 25 km of a land border of IR, SY, CU, KP or SD, or of Crimea"


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    lon: float
    country: str
    subdivision: str
    border_km: float
    name: str
    border_pair: str
    sanctions_km: float | None


def load(path: Path) -> list[Point]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return [
            Point(
                float(r["lat"]),
                float(r["lon"]),
                r["country"],
                r["subdivision"],
                float(r["border_km"]),
                r["name"],
                r["border_pair"],
                float(r["sanctions_km"]) if r["sanctions_km"] else None,
            )
            for r in csv.DictReader(f)
        ]


def convention(p: Point, answer: str) -> str | None:
    rule = CONVENTIONS.get((p.country, answer))
    if rule is None:
        return None
    lat0, lat1, lon0, lon1, why = rule
    return why if lat0 <= p.lat <= lat1 and lon0 <= p.lon <= lon1 else None


def classify(p: Point, m: GpsMatch) -> str:
    if not m.countries:
        return "unknown"
    if len(m.countries) > 1:
        return "disputed"
    if m.countries[0] == p.country:
        return "correct"
    return "convention" if convention(p, m.countries[0]) else "wrong"


CLASSES = ["correct", "wrong", "unknown", "disputed", "convention"]


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.2f}%" if b else "-"


def answer_text(m: GpsMatch) -> str:
    text = "/".join(m.countries) or "-"
    return text + (f" ({', '.join(m.tags)})" if m.tags else "")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["None."]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def country_section(points: list[Point], classes: list[str]) -> list[str]:
    groups: list[tuple[str, Callable[[Point], bool]]] = [
        ("all points (border-heavy, see below)", lambda p: True),
        ("more than 25 km from a land border", lambda p: p.border_km > 25),
        ("within 25 km of a land border", lambda p: p.border_km <= 25),
        ("within 5 km of a land border", lambda p: p.border_km <= 5),
        ("within 1 km of a land border", lambda p: p.border_km <= 1),
        ("sanctions borders", lambda p: p.sanctions_km is not None),
        ("labelled UA", lambda p: p.country == "UA"),
    ]
    rows = []
    for title, keep in groups:
        count = Counter(c for p, c in zip(points, classes, strict=True) if keep(p))
        n = sum(count.values())
        scored = n - count["convention"]
        rows.append(
            [title, str(n), pct(count["correct"], scored)]
            + [f"{count[c]} ({pct(count[c], n)})" for c in CLASSES]
        )
    return [
        "## Country",
        "",
        "Accuracy = correct / (points - convention differences).",
        f'"Sanctions borders": {SANCTIONS_NOTE}. Distances are to Natural Earth 10m admin-0 '
        "borders, which differ from OSM's by up to ~1 km, so the 1 km group is fuzzy.",
        "",
        *table(["group", "points", "accuracy", *CLASSES], rows),
    ]


def subdivision_section(points: list[Point], matches: list[GpsMatch]) -> list[str]:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    wrong_as: dict[str, Counter[str]] = defaultdict(Counter)
    for p, m in zip(points, matches, strict=True):
        if not p.subdivision:
            continue
        if m.subdivision == p.subdivision:
            outcome = "correct"
        elif m.subdivision is None:
            outcome = "none"
        else:
            outcome = "wrong"
            wrong_as[p.subdivision][m.subdivision] += 1
        for key in ("all UA", p.subdivision):
            per[key][outcome] += 1
    rows = []
    others = Counter[str]()
    for code, count in per.items():
        if code != "all UA" and code not in FOCUS_SUBDIVISIONS:
            others.update(count)
    for key, count in [
        ("all UA", per["all UA"]),
        *((c, per[c]) for c in FOCUS_SUBDIVISIONS),
        ("other UA", others),
    ]:
        n = sum(count.values())
        top = ", ".join(f"{s} {k}" for s, k in wrong_as[key].most_common(3)) if key in per else ""
        rows.append(
            [key, str(n), pct(count["correct"], n), str(count["wrong"]), str(count["none"]), top]
        )
    return [
        "## Ukrainian subdivisions (ISO 3166-2)",
        "",
        *table(["label", "points", "accuracy", "wrong", "no subdivision", "wrong as"], rows),
    ]


def details_section(points: list[Point], matches: list[GpsMatch], classes: list[str]) -> list[str]:
    triples = list(zip(points, matches, classes, strict=True))
    out: list[str] = []

    conv: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for p, m, c in triples:
        if c == "convention":
            conv[(str(convention(p, m.countries[0])), p.country, m.countries[0])].append(p.name)
    out += ["## Convention differences (not counted as errors)", ""]
    rows = [[w, a, b, str(len(v)), ", ".join(v[:4])] for (w, a, b), v in sorted(conv.items())]
    out += table(["territory", "label", "answer", "points", "examples"], rows)

    for cls, title in (("disputed", "Unresolved disputed answers"), ("unknown", "Unknown answers")):
        pairs = Counter(
            (p.country, "/".join(m.countries) or "-", p.border_pair)
            for p, m, c in triples
            if c == cls
        )
        out += ["", f"## {title} by label and nearest border (top 10)", ""]
        rows = [[a, b, pair, str(k)] for (a, b, pair), k in pairs.most_common(10)]
        out += table(["label", "answer", "nearest border", "points"], rows)

    by_border = Counter(p.border_pair for p, _, c in triples if c == "wrong")
    out += ["", "## Wrong countries by nearest land border (top 10)", ""]
    rows = [[pair, str(k)] for pair, k in by_border.most_common(10)]
    out += table(["nearest border", "wrong"], rows)

    wrong = [(p, m) for p, m, c in triples if c == "wrong"]
    worst = sorted(wrong, key=lambda t: -t[0].border_km)[:15]
    out += ["", "## 15 worst wrong countries (farthest from a land border)", ""]
    rows = [
        [
            p.name,
            f"{p.lat:.4f}, {p.lon:.4f}",
            p.country + (f" {p.subdivision}" if p.subdivision else ""),
            answer_text(m),
            f"{p.border_km:.2f}",
            p.border_pair,
        ]
        for p, m in worst
    ]
    out += table(["name", "lat, lon", "label", "answer", "border_km", "nearest border"], rows)
    return out


def timed(b: Boundaries, points: list[Point]) -> tuple[list[GpsMatch], float]:
    t0 = time.perf_counter()
    matches = b.lookup_many([p.lat for p in points], [p.lon for p in points])
    return matches, time.perf_counter() - t0


def rate_row(what: str, n: int, seconds: float) -> list[str]:
    return [what, str(n), f"{seconds:.2f}", f"{n / seconds:,.0f}" if seconds > 0 else "-"]


def report(path: Path) -> str:
    points = load(path)
    t0 = time.perf_counter()
    b = Boundaries()
    load_s = time.perf_counter() - t0
    matches, all_s = timed(b, points)
    border = [p for p in points if p.border_km <= 5]
    _, border_s = timed(b, border)
    classes = [classify(p, m) for p, m in zip(points, matches, strict=True)]

    sources = b.meta.get("sources", {})
    lines = [
        "# regionlock GPS accuracy report",
        "",
        f"Labelled set: {path.name}, {len(points)} GeoNames places (CC BY 4.0): every place within "
        "25 km of a land border, every Ukrainian place, and a random sample of the rest "
        "(bench/data/README.md).",
        f"Boundary data: {'; '.join(f'{k}: {v}' for k, v in sorted(sources.items()))}; "
        f"prepared {b.meta.get('prepared', '?')}.",
        "",
        "## Throughput",
        "",
        *table(
            ["what", "points", "seconds", "points/s"],
            [
                ["Boundaries() load", "-", f"{load_s:.2f}", "-"],
                rate_row("lookup_many, all points", len(points), all_s),
                rate_row("lookup_many, within 5 km of a border", len(border), border_s),
            ],
        ),
        "",
        *country_section(points, classes),
        "",
        *subdivision_section(points, matches),
        "",
        *details_section(points, matches, classes),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    parser.add_argument("--data", type=Path, default=DATA, help="labelled set (csv.gz)")
    args = parser.parse_args(argv)
    text = report(args.data)
    print(text, end="")
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
