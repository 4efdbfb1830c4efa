"""`regionlock demo`: the README's main job.

Until the check-in service exists (issues 4 and 5) the demo shows the location resolver and the
policy engine on the cases that matter for a region lock: devices in sanctioned places,
travellers, VPN users and border towns, under the 2021 block and after it was lifted. Later
issues change what this runs, not how it is started.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import click

from regionlock.domain.decision import decide
from regionlock.domain.policy import DeviceFacts
from regionlock.domain.signals import parse_signals
from regionlock.geo.locator import Locator
from regionlock.policies import example_policy
from regionlock.services.policy_tools import history_for, verdict_json

# (title, signals, earlier days seen there)
SCENARIOS: list[tuple[str, dict[str, Any], int]] = [
    (
        "Phone in Tehran, Iranian SIM, in use for weeks",
        {
            "ip": "2.144.0.1",
            "sim": ["432-11"],
            "network": ["432-11"],
            "gps": {"lat": 35.6892, "lon": 51.389, "accuracy_m": 15},
            "timezone": "Asia/Tehran",
            "locale": "fa_IR",
        },
        20,
    ),
    (
        "French tourist roaming in Iran, day 2 (data routed home)",
        {
            "ip": "90.0.0.1",
            "sim": ["208-01"],
            "network": ["432-11"],
            "gps": {"lat": 29.6100, "lon": 52.5311, "accuracy_m": 30},
            "timezone": "Asia/Tehran",
            "locale": "fr_FR",
        },
        1,
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
        30,
    ),
    (
        "Kilis, Turkey, 3 km from the Syrian border",
        {"network": ["286-01"], "gps": {"lat": 36.7184, "lon": 37.1212, "accuracy_m": 25}},
        30,
    ),
    (
        "Dandong, China, across the Yalu from Sinuiju",
        {"network": ["460-00"], "gps": {"lat": 40.1290, "lon": 124.3940, "accuracy_m": 25}},
        30,
    ),
    (
        "Sinuiju, North Korea",
        {"network": ["467-05"], "gps": {"lat": 40.1006, "lon": 124.3984, "accuracy_m": 25}},
        30,
    ),
    (
        "Simferopol, Crimea, Crimean operator",
        {
            "network": ["250-60"],
            "gps": {"lat": 44.9521, "lon": 34.1024, "accuracy_m": 20},
            "timezone": "Europe/Simferopol",
        },
        30,
    ),
    (
        "Kyiv",
        {
            "network": ["255-01"],
            "gps": {"lat": 50.4501, "lon": 30.5234},
            "timezone": "Europe/Kyiv",
            "locale": "uk_UA",
        },
        30,
    ),
    (
        "Dual-SIM in Khartoum, one Emirati SIM roaming",
        {
            "sim": ["634-01", "424-02"],
            "network": ["634-01", "634-01"],
            "gps": {"lat": 15.5007, "lon": 32.5599},
            "timezone": "Africa/Khartoum",
        },
        30,
    ),
    ("Only a private IP and a locale", {"ip": "192.168.1.20", "locale": "fa_IR"}, 30),
]

COLOURS = {"allow": "green", "warn": "yellow", "lock": "red"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON Lines.")
def demo(as_json: bool) -> None:
    """Locate border, roaming and VPN cases and decide them under the 2021 block and after."""
    started = time.perf_counter()
    locator = Locator()
    block = example_policy("gray-market-2021")
    lifted = example_policy("gray-market-2021-lifted")
    load = time.perf_counter() - started
    now = datetime.now(UTC)
    if not as_json:
        click.secho("regionlock: where is this device, and may it run there?", bold=True)
        click.echo(
            f"Reference data loaded in {load:.2f} s: IP {locator.info.ip_source}; "
            f"tz {locator.info.tz_version}; {locator.info.boundaries}"
        )
        click.echo(
            f"Policies: {block.id} {block.version} (the 2021 block), then "
            f"{lifted.version} (block lifted, US law remains). As of {now.date()}.\n"
        )
    for title, raw, days in SCENARIOS:
        where = locator.locate(parse_signals(raw))
        history = history_for(where, days, now.date())
        device = DeviceFacts("demo")
        during = decide(device, where, history, block, now)
        after = decide(device, where, history, lifted, now)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "scenario": title,
                        "location": where.to_json(),
                        "block": verdict_json(during),
                        "lifted": verdict_json(after),
                    }
                )
            )
            continue
        place = where.country or "unknown"
        if where.subdivision:
            place += f" / {where.subdivision}"
        flags = ", ".join(where.flags) or "-"
        click.secho(title, bold=True)
        click.echo(f"  located: {place}  confidence {where.confidence:.2f}  flags: {flags}")
        for label, v in (("2021 block", during), ("lifted", after)):
            click.echo(f"  {label:>10}: ", nl=False)
            click.secho(f"{v.action.value:<5}", fg=COLOURS[v.action.value], bold=True, nl=False)
            click.echo(f"  {', '.join(v.reasons)}")
        click.echo(f"  why: {during.explanation}\n")
    if not as_json:
        click.echo(
            "Next: .venv/bin/regionlock locate --help | policy explain --help | "
            "policy simulate --help; docs/location.md, docs/policy.md"
        )
