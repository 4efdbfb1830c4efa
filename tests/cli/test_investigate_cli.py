"""`regionlock investigate`: the commands over a planted fleet, JSON and table, and bad input
refused with exit status 2 and a clear message."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from investigation_fleet import planted_store

from regionlock.cli.main import cli


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return planted_store(f"sqlite:///{tmp_path_factory.mktemp('inv') / 'fleet.db'}")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_leaks_json_is_an_array_of_rows_strongest_first(url: str) -> None:
    code, out = run("investigate", "leaks", "--by", "batch", "--json", "--db", url)
    assert code == 0, out
    rows = json.loads(out)
    assert rows[0]["group"] == "D25-B0" and rows[0]["flagged"] is True
    assert set(rows[0]) >= {
        "group", "devices", "seen", "restricted", "share", "expected", "p_value", "q_value",
        "flagged",
    }  # fmt: skip
    assert {r["group"] for r in rows if r["flagged"]} >= {"D25-B0", "D08-B0", "D05-B0"}


def test_leaks_table_says_the_window_and_the_places(url: str) -> None:
    code, out = run("investigate", "leaks", "--by", "distributor", "--country", "IR", "--db", url)
    assert code == 0, out
    assert "Restricted places: IR" in out
    assert "more than 3 day(s) within 14 days" in out
    d25 = next(line for line in out.splitlines() if line.startswith("D25 "))
    assert d25.endswith("YES")


def test_ranges_and_flows(url: str) -> None:
    code, out = run("investigate", "ranges", "--batch", "D25-B0", "--json", "--db", url)
    assert code == 0, out
    rows = json.loads(out)
    assert rows and {"first", "last", "devices", "restricted", "p_value"} <= set(rows[0])
    code, out = run("investigate", "flows", "--json", "--db", url)
    assert code == 0, out
    assert any(f["destination"] == "IR" and f["restricted"] for f in json.loads(out))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("leaks", "--by", "colour"), "Invalid value for '--by'"),
        (("leaks", "--since", "2026-12-01", "--until", "2026-11-01"), "is before --since"),
        (("leaks", "--country", "XX"), "not a known ISO 3166-1"),
        (("ranges", "--batch", "NOPE"), "no registered device is in batch 'NOPE'"),
    ],
)
def test_bad_input_is_refused_clearly(url: str, args: tuple[str, ...], message: str) -> None:
    code, out = run("investigate", *args, "--db", url)
    assert code == 2, out
    assert message in out
    assert "Traceback" not in out


def test_an_empty_window_prints_a_note(url: str) -> None:
    code, out = run("investigate", "leaks", "--since", "2030-01-01", "--db", url)
    assert code == 0, out
    assert "Note: no check-ins in the window: nothing to count" in out
