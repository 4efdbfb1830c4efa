"""`regionlock investigate report`: one self-contained HTML file (or the same content as JSON)
over a planted fleet; every number reproducible from the snapshot it names; a case's report
shows the findings the case kept."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from databases import database_url
from investigation_fleet import planted_store

from regionlock.cli.main import cli


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as env, database_url(request.param, folder) as url:
        env.setenv("XDG_CACHE_HOME", str(folder))  # PostgreSQL's analytics cache: not in ~
        yield planted_store(url)


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.output


class _Resources(HTMLParser):
    """Every attribute, style and script of a page that could fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching: list[str] = []
        self.tags: Counter[str] = Counter()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        if tag in ("script", "link", "img", "iframe", "object", "embed", "image", "use"):
            self.fetching.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "data", "poster", "action"):
                self.fetching.append(f"{tag} {name}={value}")
            if name == "style" and value and "url(" in value:
                self.fetching.append(f"{tag} style={value}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_html_report_is_self_contained_and_holds_every_part(url: str, tmp_path: Path) -> None:
    out, snapshot = tmp_path / "report.html", tmp_path / "fleet.csv"
    code, output = run(
        "investigate", "report", "--out", str(out), "--snapshot", str(snapshot), "--db", url
    )
    assert code == 0, output
    page = out.read_text()
    parser = _Resources()
    parser.feed(page)
    assert parser.fetching == []
    assert "url(" not in page and "@import" not in page
    text = " ".join(" ".join(parser.text).split())
    # The question and its window; the ranking with its flagged batches; flows; ranges; map.
    assert "Iran (IR)" in text or "Iran, Islamic Republic of (IR)" in text
    assert "Data window the first check-in to the last check-in" in text
    for batch in ("D25-B0", "D08-B0", "D05-B0"):
        assert f"Batch {batch}:" in text  # its ranges
    assert "By batch: 3 of" in text and "flagged" in text
    assert 'id="flows"' in page and 'id="ranges"' in page and 'id="methods"' in page
    assert parser.tags["svg"] >= 5 and 'class="map"' in page
    # The snapshot named in the report is the file written beside it.
    digest = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    assert digest in text
    assert out.stat().st_mode & 0o044  # an ordinary file others may read, not mkstemp's 0600


def test_the_json_holds_the_same_content_and_the_snapshot_reproduces_its_counts(
    url: str, tmp_path: Path
) -> None:
    out, snapshot = tmp_path / "report.json", tmp_path / "fleet.csv"
    code, output = run(
        "investigate",
        "report",
        "--json",
        "--out",
        str(out),
        "--snapshot",
        str(snapshot),
        "--db",
        url,
    )
    assert code == 0, output
    data = json.loads(out.read_text())
    assert data["snapshot_sha256"] == hashlib.sha256(snapshot.read_bytes()).hexdigest()
    assert len(data["code_sha256"]) == 64 and data["code_version"]
    assert set(data["leaks"]) == {"distributor", "batch", "model", "sales_region"}
    flagged = {r["group"] for r in data["leaks"]["batch"] if r["flagged"]}
    assert flagged == {"D25-B0", "D08-B0", "D05-B0"}
    assert [r["batch"] for r in data["ranges"]] == [
        r["group"] for r in data["leaks"]["batch"] if r["flagged"]
    ]
    # The planted leaks are spread through their batches (no carton): each range says so.
    for r in data["ranges"]:
        assert r["rows"] and r["rows"][0]["p_value"] >= 0.05
        assert "no run is significant at 5%" in r["note"]
    # Every count of every ranking, recomputed from the snapshot alone.
    with snapshot.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for by, ranking in data["leaks"].items():
        devices = Counter(r[by] for r in rows)
        seen = Counter(r[by] for r in rows if r["seen"] == "true")
        restricted = Counter(r[by] for r in rows if r["restricted"] == "true")
        for r in ranking:
            got = (r["devices"], r["seen"], r["restricted"])
            assert got == (devices[r["group"]], seen[r["group"]], restricted[r["group"]])
    places = Counter(
        (r["place_country"], r["place_subdivision"] or None)
        for r in rows
        if r["restricted"] == "true"
    )
    assert {(p["country"], p["subdivision"]): p["devices"] for p in data["places"]} == places


def test_a_cases_report_shows_the_findings_it_kept_and_its_story(url: str, tmp_path: Path) -> None:
    findings = tmp_path / "findings.json"
    assert run("investigate", "report", "--json", "--out", str(findings), "--db", url)[0] == 0
    code, out = run(
        "case", "open", "--title", "D25 stock in Iran", "--findings", str(findings), "--db", url
    )
    assert code == 0, out
    case_id = out.strip().splitlines()[-1]
    assert run("case", "note", case_id, "carton 3 of D25-B0 traced", "--db", url)[0] == 0
    assert run("case", "close", case_id, "--outcome", "block lifted", "--db", url)[0] == 0

    page_path = tmp_path / "case.html"
    code, out = run(
        "investigate", "report", "--case", case_id, "--out", str(page_path), "--db", url
    )
    assert code == 0, out
    parser = _Resources()
    parser.feed(page_path.read_text())
    text = " ".join(" ".join(parser.text).split())
    kept = json.loads(findings.read_text())
    assert kept["snapshot_sha256"] in text
    made = datetime.fromisoformat(kept["made_at"].replace("Z", "+00:00"))
    assert f"Findings made {made:%Y-%m-%d %H:%M} UTC" in text  # as they were, not made again
    assert "D25 stock in Iran" in text and "block lifted" in text
    assert "carton 3 of D25-B0 traced" in text
    # The case's JSON report: the kept findings, and the case without them.
    code, out = run("investigate", "report", "--case", case_id, "--json", "--out", "-", "--db", url)
    assert code == 0, out
    data = json.loads(out)
    assert data["made_at"] == kept["made_at"] and data["leaks"] == kept["leaks"]
    assert data["case"]["id"] == case_id and "findings" not in data["case"]
    assert [e["kind"] for e in data["case"]["history"]] == ["open", "findings", "note", "close"]
    # The kept findings fix the question.
    code, out = run(
        "investigate", "report", "--case", case_id, "--country", "IR", "--out", "-", "--db", url
    )
    assert code != 0 and "keeps the findings it was decided on" in out


def test_a_case_without_findings_gets_todays_and_says_so(url: str) -> None:
    code, out = run("case", "open", "--title", "a hunch", "--db", url)
    assert code == 0, out
    case_id = out.strip().splitlines()[-1]
    code, out = run("investigate", "report", "--case", case_id, "--json", "--out", "-", "--db", url)
    assert code == 0, out
    data = json.loads(out)
    assert any(f"case {case_id} kept no findings snapshot" in n for n in data["notes"])
    assert data["case"]["title"] == "a hunch"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--case", "case_nosuchxx"), "no case"),
        (("--since", "2026-12-01", "--until", "2026-11-01"), "before"),
        (("--country", "XX"), "XX"),
    ],
)
def test_bad_questions_are_refused_and_nothing_is_written(
    url: str, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "report.html"
    code, output = run("investigate", "report", *args, "--out", str(out), "--db", url)
    assert code != 0 and message in output, output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_unwritable_place_is_a_clear_error(url: str, tmp_path: Path) -> None:
    code, output = run(
        "investigate", "report", "--out", str(tmp_path / "no" / "such" / "r.html"), "--db", url
    )
    assert code != 0 and "cannot write" in output, output


def test_case_open_investigate_keeps_the_findings_as_they_stand(url: str) -> None:
    code, out = run("case", "open", "--title", "this week", "--investigate", "--json", "--db", url)
    assert code == 0, out
    case = json.loads(out)
    kept = case["findings"]
    assert {r["group"] for r in kept["leaks"]["batch"] if r["flagged"]} == {
        "D25-B0",
        "D08-B0",
        "D05-B0",
    }
    # The kept rows: the first 100 of each ranking and every flagged one, and how many went.
    assert len(kept["leaks"]["batch"]) + kept["leaks_omitted"]["batch"] == 31
    code, out = run("investigate", "report", "--json", "--out", "-", "--db", url)
    assert json.loads(out)["snapshot_sha256"] == kept["snapshot_sha256"]  # same data, same digest
    code, out = run(
        "case", "open", "--title", "t", "--investigate", "--findings", "-", "--db", url, input="{}"
    )
    assert code != 0 and "not both" in out
