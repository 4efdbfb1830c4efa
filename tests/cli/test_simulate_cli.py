"""`regionlock simulate`: its default fleet is the README's, and its help says what size costs."""

from __future__ import annotations

import re
from pathlib import Path

import click

from regionlock.cli.simulate import simulate

README = Path(__file__).resolve().parents[2] / "README.md"


def devices_option() -> click.Option:
    (option,) = (p for p in simulate.params if p.name == "devices")
    assert isinstance(option, click.Option)
    return option


def test_the_default_fleet_is_the_one_the_readme_runs() -> None:
    shown = re.findall(r"regionlock simulate .*--devices (\d+)", README.read_text())
    assert shown, "the README no longer shows a simulate command"
    assert {int(n) for n in shown} == {devices_option().default} == {10_000}


def test_the_help_says_how_long_a_fleet_takes() -> None:
    text = devices_option().help or ""
    assert "min per 10,000 phones" in text and "2-core" in text
