"""`regionlock demo`: the README's main job.

Until the check-in service exists (issues 4 and 5) the demo shows the location resolver on the
cases that matter for a region lock: devices in sanctioned places, travellers, VPN users and
border towns. Later issues change what this runs, not how it is started.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from regionlock.domain.signals import parse_signals
from regionlock.geo.locator import Locator

SCENARIOS: list[tuple[str, dict[str, Any]]] = [
    (
        "Phone in Tehran, Iranian SIM",
        {
            "ip": "2.144.0.1",
            "sim": ["432-11"],
            "network": ["432-11"],
            "gps": {"lat": 35.6892, "lon": 51.389, "accuracy_m": 15},
            "timezone": "Asia/Tehran",
            "locale": "fa_IR",
        },
    ),
    (
        "French tourist roaming in Iran (data routed home)",
        {
            "ip": "90.0.0.1",
            "sim": ["208-01"],
            "network": ["432-11"],
            "gps": {"lat": 29.6100, "lon": 52.5311, "accuracy_m": 30},
            "timezone": "Asia/Tehran",
            "locale": "fr_FR",
        },
    ),
    (
        "Berlin user behind a VPN exit in Iran",
        {
            "ip": "2.144.0.1",
            "sim": ["262-01"],
            "network": ["262-01"],
            "gps": {"lat": 52.52, "lon": 13.405, "accuracy_m": 10},
            "timezone": "Europe/Berlin",
            "locale": "de_DE",
        },
    ),
    (
        "Kilis, Turkey, 3 km from the Syrian border",
        {"network": ["286-01"], "gps": {"lat": 36.7184, "lon": 37.1212, "accuracy_m": 25}},
    ),
    (
        "Dandong, China, across the Yalu from Sinuiju",
        {"network": ["460-00"], "gps": {"lat": 40.1290, "lon": 124.3940, "accuracy_m": 25}},
    ),
    ("Sinuiju, North Korea", {"gps": {"lat": 40.1006, "lon": 124.3984, "accuracy_m": 25}}),
    (
        "Simferopol, Crimea",
        {
            "network": ["250-60"],
            "gps": {"lat": 44.9521, "lon": 34.1024, "accuracy_m": 20},
            "timezone": "Europe/Simferopol",
        },
    ),
    (
        "Kyiv",
        {
            "network": ["255-01"],
            "gps": {"lat": 50.4501, "lon": 30.5234},
            "timezone": "Europe/Kyiv",
            "locale": "uk_UA",
        },
    ),
    (
        "Dual-SIM in Khartoum, one Emirati SIM roaming",
        {
            "sim": ["634-01", "424-02"],
            "network": ["634-01", "634-01"],
            "gps": {"lat": 15.5007, "lon": 32.5599},
            "timezone": "Africa/Khartoum",
        },
    ),
    ("Only a private IP and a locale", {"ip": "192.168.1.20", "locale": "en_US"}),
]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the estimates as JSON Lines.")
def demo(as_json: bool) -> None:
    """Show the offline location resolver on border, roaming and VPN cases."""
    started = time.perf_counter()
    locator = Locator()
    load = time.perf_counter() - started
    if not as_json:
        click.secho("regionlock: where is this device?", bold=True)
        click.echo(
            f"Reference data loaded in {load:.2f} s: IP {locator.info.ip_source}; "
            f"tz {locator.info.tz_version}; {locator.info.boundaries}\n"
        )
    for title, raw in SCENARIOS:
        estimate = locator.locate(parse_signals(raw))
        if as_json:
            click.echo(json.dumps({"scenario": title, **estimate.to_json()}))
            continue
        where = estimate.country or "unknown"
        if estimate.subdivision:
            where += f" / {estimate.subdivision}"
        flags = ", ".join(estimate.flags) or "-"
        click.secho(f"{title}", bold=True)
        click.echo(f"  -> {where}  confidence {estimate.confidence:.2f}  flags: {flags}")
        click.echo(f"  {locator.explain(estimate)}\n")
    if not as_json:
        click.echo("Try it yourself:  .venv/bin/regionlock locate --help")
