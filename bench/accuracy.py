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

# Where GeoNames (the label) and OpenStreetMap (our answer) knowingly disagree about a disputed
# territory. (label, answer) -> (territory, where): the disagreement counts as a convention only
# for points labelled with one of the listed subdivisions, or inside the box (lat_min, lat_max,
# lon_min, lon_max) around the territory; anywhere else it is an error. Kosovo (XK), Abkhazia and
# South Ossetia (GE) and Northern Cyprus (CY) need no row: both sources label them alike.
CONVENTIONS: dict[tuple[str, str], tuple[str, frozenset[str] | tuple[float, ...]]] = {
    # Crimea and Sevastopol: Ukraine in GeoNames and ISO 3166; in Russia too in OSM.
    ("UA", "RU"): ("Crimea", frozenset({"UA-43", "UA-40"})),
    # Western Sahara: OSM overlaps EH and MA; GeoNames puts each place in one of them.
    ("EH", "MA"): ("Western Sahara", (20.7, 28.0, -17.2, -8.6)),
    ("MA", "EH"): ("Western Sahara", (20.7, 28.0, -17.2, -8.6)),
    # Kashmir: GeoNames labels some places across the line of control by the claimant.
    ("IN", "PK"): ("Kashmir", (32.9, 37.1, 73.2, 80.4)),
    ("PK", "IN"): ("Kashmir", (32.9, 37.1, 73.2, 80.4)),
    # Golan Heights: Syria in GeoNames; Israel in OSM.
    ("SY", "IL"): ("Golan Heights", (32.6, 33.4, 35.6, 36.0)),
    # West Bank: GeoNames labels Israeli settlements IL and East Jerusalem PS; OSM the reverse.
    ("IL", "PS"): ("West Bank / East Jerusalem", (31.3, 32.6, 34.85, 35.6)),
    ("PS", "IL"): ("West Bank / East Jerusalem", (31.3, 32.6, 34.85, 35.6)),
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
    """The disputed territory that explains this (label, answer) disagreement, if any."""
    rule = CONVENTIONS.get((p.country, answer))
    if rule is None:
        return None
    territory, where = rule
    if isinstance(where, frozenset):
        return territory if p.subdivision in where else None
    lat0, lat1, lon0, lon1 = where
    return territory if lat0 <= p.lat <= lat1 and lon0 <= p.lon <= lon1 else None


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


def country_section(points: list[Point], matches: list[GpsMatch], classes: list[str]) -> list[str]:
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
    settled = Counter(
        c
        for m, c in zip(matches, classes, strict=True)
        if "disputed" in m.tags and len(m.countries) == 1
    )
    return [
        "## Country",
        "",
        "Accuracy = correct / (points - convention differences).",
        f'"Sanctions borders": {SANCTIONS_NOTE}. Distances are to Natural Earth 10m admin-0 '
        "borders, which differ from OSM's by up to ~1 km, so the 1 km group is fuzzy.",
        "",
        *table(["group", "points", "accuracy", *CLASSES], rows),
        "",
        f'Overlaps settled to one country by the subdivision\'s country (tag "disputed", one '
        f"country): {sum(settled.values())} answers, "
        + ", ".join(f"{settled[c]} {c}" for c in CLASSES if settled[c])
        + ".",
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
            wrong_as["all UA"][f"{p.subdivision}->{m.subdivision}"] += 1
            if p.subdivision not in FOCUS_SUBDIVISIONS:
                wrong_as["other UA"][f"{p.subdivision}->{m.subdivision}"] += 1
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
        top = ", ".join(f"{s} {k}" for s, k in wrong_as[key].most_common(3))
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

    conv: dict[tuple[str, str, str], list[tuple[Point, GpsMatch]]] = defaultdict(list)
    for p, m, c in triples:
        if c == "convention":
            conv[(str(convention(p, m.countries[0])), p.country, m.countries[0])].append((p, m))
    out += ["## Convention differences (not counted as errors)", ""]
    rows = [
        [
            territory,
            label,
            answer,
            str(len(v)),
            ", ".join(sorted({t for _, m in v for t in m.tags})) or "-",
            f"{min(p.border_km for p, _ in v):.2f}",
            ", ".join(p.name for p, _ in v[:4]),
        ]
        for (territory, label, answer), v in sorted(conv.items())
    ]
    out += table(
        ["territory", "label", "answer", "points", "tags", "min border_km", "examples"], rows
    )

    for cls, title in (("disputed", "Unresolved disputed answers"), ("unknown", "Unknown answers")):
        pairs = Counter(
            (p.country, "/".join(m.countries) or "-", p.border_pair)
            for p, m, c in triples
            if c == cls
        )
        out += ["", f"## {title} by label and nearest border (top 10)", ""]
        rows = [[a, b, pair, str(k)] for (a, b, pair), k in pairs.most_common(10)]
        out += table(["label", "answer", "nearest border", "points"], rows)

    wrong = [(p, m) for p, m, c in triples if c == "wrong"]
    by_pair = Counter((p.country, m.countries[0], m.tags) for p, m in wrong)
    out += ["", "## Wrong countries by label and answer (top 15)", ""]
    rows = [[a, b, ", ".join(t) or "-", str(k)] for (a, b, t), k in by_pair.most_common(15)]
    out += table(["label", "answer", "tags", "points"], rows)

    by_border = Counter(p.border_pair for p, _ in wrong)
    out += ["", "## Wrong countries by nearest land border (top 10)", ""]
    rows = [[pair, str(k)] for pair, k in by_border.most_common(10)]
    out += table(["nearest border", "wrong"], rows)

    # Farthest from a border first; at most 3 per (label, answer), so one systematic error (a
    # whole territory answered as its sovereign) does not fill the list.
    worst: list[tuple[Point, GpsMatch]] = []
    seen: Counter[tuple[str, str]] = Counter()
    for p, m in sorted(wrong, key=lambda t: -t[0].border_km):
        key = (p.country, m.countries[0])
        if seen[key] < 3 and len(worst) < 15:
            seen[key] += 1
            worst.append((p, m))
    out += [
        "",
        "## 15 worst wrong countries (farthest from a land border, at most 3 per label/answer)",
        "",
    ]
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


def timed(b: Boundaries, points: list[Point], repeat: int = 3) -> tuple[list[GpsMatch], float]:
    """Answers and the best wall time of `repeat` calls of lookup_many."""
    lats, lons = [p.lat for p in points], [p.lon for p in points]
    best = float("inf")
    matches: list[GpsMatch] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        matches = b.lookup_many(lats, lons)
        best = min(best, time.perf_counter() - t0)
    return matches, best


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
            ["what", "points", "seconds (best of 3)", "points/s"],
            [
                ["Boundaries() load (once)", "-", f"{load_s:.2f}", "-"],
                rate_row("lookup_many, all points", len(points), all_s),
                rate_row("lookup_many, within 5 km of a border", len(border), border_s),
            ],
        ),
        "",
        *country_section(points, matches, classes),
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
