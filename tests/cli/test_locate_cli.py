"""`regionlock locate`: one device, and JSON Lines batches with bad lines in them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from click.testing import CliRunner

from regionlock.cli.main import cli
from regionlock.geo import Locator
from regionlock.services.batch_locate import CHUNK, BatchStats, locate_lines


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_single_device_prints_the_estimate() -> None:
    code, out, _ = run(
        "locate",
        "--ip",
        "2.144.0.1",
        "--sim",
        "432-11",
        "--network",
        "432-11",
        "--lat",
        "35.7",
        "--lon",
        "51.4",
        "--tz",
        "Asia/Tehran",
    )
    assert code == 0
    data = json.loads(out)
    assert data["country"] == "IR"
    assert data["subdivision"] == "IR-23"
    assert data["explanation"].startswith("Located in Iran (IR), IR-23")
    assert {e["signal"] for e in data["evidence"]} == {"gps", "network", "sim", "ip", "timezone"}


def test_single_device_bad_value_is_a_clear_error() -> None:
    code, _, err = run("locate", "--lat", "91", "--lon", "0")
    assert code != 0
    assert "latitude 91 is outside [-90, 90]" in err


BATCH = [
    {"id": "tehran", "ip": "2.144.0.1", "network": [{"mcc": "432", "mnc": "11"}]},
    {"id": "bad-lat", "gps": {"lat": 91, "lon": 0}},
    "this is not json",
    {"id": "bad-mcc", "sim": [{"mcc": "4x2", "mnc": "11"}]},
    {"id": "bad-ip", "ip": "999.1.1.1"},
    {"id": "bad-tz", "timezone": "Asia/Atlantis"},
    {"ip": "8.8.8.8"},
    {"id": 7, "gps": {"lat": 40.1006, "lon": 124.3984}},
]


def batch_text() -> str:
    return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in BATCH) + "\n"


def test_batch_keeps_order_and_reports_each_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "devices.jsonl"
    path.write_text(batch_text())
    code, out, err = run("locate", "--input", str(path))
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(BATCH)
    assert rows[0]["id"] == "tehran" and rows[0]["country"] == "IR"
    assert rows[1] == {
        "id": "bad-lat",
        "line": 2,
        "error": "gps.lat: latitude 91 is outside [-90, 90]",
    }
    assert rows[2]["id"] is None and "not valid JSON" in rows[2]["error"]
    assert rows[3]["id"] == "bad-mcc" and "MCC '4x2' is not three digits" in rows[3]["error"]
    assert rows[4]["id"] == "bad-ip" and "'999.1.1.1' is not a valid" in rows[4]["error"]
    assert rows[5]["id"] == "bad-tz" and "'Asia/Atlantis' is not a time zone" in rows[5]["error"]
    assert rows[6]["line"] == 7 and 'missing "id"' in rows[6]["error"]
    assert rows[7]["id"] == 7 and rows[7]["country"] == "KP"
    for row in rows:
        if "error" in row:
            assert "country" not in row  # nothing is guessed from invalid input
    assert code == 1
    assert "located 2 device(s), 6 error(s)" in err


def test_batch_from_stdin() -> None:
    code, out, err = run("locate", "--input", "-", stdin=json.dumps(BATCH[0]) + "\n")
    assert code == 0
    assert json.loads(out)["country"] == "IR"
    assert "1 device(s), 0 error(s)" in err


def test_batch_streams_without_reading_ahead(locator: Locator) -> None:
    """Output for the first chunk comes out before the input is read much further."""
    read = 0

    def source() -> Iterator[str]:
        nonlocal read
        for i in range(CHUNK * 3):
            read += 1
            yield json.dumps({"id": i, "network": ["432-11"]})

    stats = BatchStats()
    out = locate_lines(source(), locator, stats=stats)
    first = json.loads(next(out))
    assert first["id"] == 0 and first["country"] == "IR"
    assert read == CHUNK  # exactly one chunk was read to answer the first line
    assert sum(1 for _ in out) == CHUNK * 3 - 1
    assert stats.lines == CHUNK * 3 and stats.errors == 0


def test_input_and_signal_options_do_not_mix(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("")
    code, _, err = run("locate", "--input", str(path), "--ip", "8.8.8.8")
    assert code == 2
    assert "cannot be combined" in err
