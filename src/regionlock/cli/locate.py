"""`regionlock locate`: where is this device (or each device of a JSON Lines file)?"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import click

from regionlock.cli.progress import input_lines
from regionlock.domain.errors import InvalidInput
from regionlock.domain.signals import (
    GpsFix,
    Signals,
    parse_gps,
    parse_ip,
    parse_locale,
    parse_plmns,
    parse_timezone,
)
from regionlock.geo.locator import Locator
from regionlock.services.batch_locate import BatchStats, locate_lines


@dataclass(frozen=True)
class SignalOptions:
    """The signal options of one command line, before validation."""

    ip: str | None
    sim: tuple[str, ...]
    network: tuple[str, ...]
    lat: float | None
    lon: float | None
    accuracy: float | None
    timezone: str | None
    locale: str | None

    def given(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def signals(self) -> Signals:
        """Validated Signals (InvalidInput on bad values, naming the option)."""
        gps: GpsFix | None = None
        if (self.lat is None) != (self.lon is None):
            raise InvalidInput("--lat and --lon go together")
        if self.lat is not None and self.lon is not None:
            raw: dict[str, Any] = {"lat": self.lat, "lon": self.lon}
            if self.accuracy is not None:
                raw["accuracy_m"] = self.accuracy
            gps = parse_gps(raw)
        elif self.accuracy is not None:
            raise InvalidInput("--accuracy needs --lat and --lon")
        return Signals(
            ip=parse_ip(self.ip) if self.ip is not None else None,
            sim=parse_plmns(list(self.sim), "sim"),
            network=parse_plmns(list(self.network), "network"),
            gps=gps,
            timezone=parse_timezone(self.timezone) if self.timezone is not None else None,
            locale=parse_locale(self.locale) if self.locale is not None else None,
        )

    def wire(self) -> dict[str, Any]:
        """The signals as a check-in carries them (validated first: nothing invalid is sent)."""
        self.signals()
        out: dict[str, Any] = {}
        if self.ip is not None:
            out["ip"] = self.ip
        if self.sim:
            out["sim"] = list(self.sim)
        if self.network:
            out["network"] = list(self.network)
        if self.lat is not None and self.lon is not None:
            out["gps"] = {"lat": self.lat, "lon": self.lon}
            if self.accuracy is not None:
                out["gps"]["accuracy_m"] = self.accuracy
        if self.timezone is not None:
            out["timezone"] = self.timezone
        if self.locale is not None:
            out["locale"] = self.locale
        return out


_SIGNAL_OPTIONS = [
    click.option("--ip", help="IPv4 or IPv6 address the device was seen from."),
    click.option(
        "--sim",
        multiple=True,
        metavar="MCC-MNC",
        help="SIM home network, one per slot in slot order (repeatable).",
    ),
    click.option(
        "--network",
        multiple=True,
        metavar="MCC-MNC",
        help="Serving network, one per slot in slot order (repeatable).",
    ),
    click.option("--lat", type=float, help="GPS latitude in degrees (WGS 84)."),
    click.option("--lon", type=float, help="GPS longitude in degrees (WGS 84)."),
    click.option("--accuracy", type=float, metavar="METRES", help="GPS accuracy radius."),
    click.option("--tz", "timezone", help="IANA time zone, e.g. Asia/Tehran."),
    click.option("--locale", help="Device locale, e.g. fa_IR or en-US."),
]


def signal_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the signal options to a command; it receives them as one `opts: SignalOptions`."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {field.name: kwargs.pop(field.name) for field in fields(SignalOptions)}
        return f(*args, opts=SignalOptions(**values), **kwargs)

    command: Callable[..., Any] = wrapper
    for option in reversed(_SIGNAL_OPTIONS):
        command = option(command)
    return command


@click.command()
@signal_options
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="JSON Lines file of devices ('-' for stdin); writes JSON Lines to stdout.",
)
@click.option(
    "--explain/--no-explain",
    default=None,
    help="Add a human-readable explanation (default: on for one device, off in batch).",
)
@click.option(
    "--ip-db",
    envvar="REGIONLOCK_IP_DB",
    metavar="SPEC",
    help="IP data: 'rir' (default), 'maxmind:FILE.mmdb' or 'ip2location:FILE.BIN'.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
def locate(
    opts: SignalOptions,
    input_path: str | None,
    explain: bool | None,
    ip_db: str | None,
    progress: bool | None,
) -> None:
    """Locate a device offline from its signals and print the estimate as JSON.

    \b
    One device:  regionlock locate --ip 2.144.0.1 --sim 432-11 --network 432-11 \\
                     --lat 35.7 --lon 51.4 --tz Asia/Tehran
    Many:        regionlock locate --input devices.jsonl > located.jsonl

    In batch mode every input line gets exactly one output line, in order; a bad line gets
    {"id": ..., "line": N, "error": "..."} and the batch goes on. The exit status is 1 when
    any line had an error, 0 otherwise.
    """
    if input_path is not None:
        if opts.given():
            raise click.UsageError("--input cannot be combined with signal options")
        _batch(input_path, Locator(ip_source=ip_db), bool(explain), progress)
        return
    signals = opts.signals()
    locator = Locator(ip_source=ip_db)
    estimate = locator.locate(signals)
    out = estimate.to_json()
    if explain is not False:
        out["explanation"] = locator.explain(estimate)
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


def _batch(path: str, locator: Locator, explain: bool, progress: bool | None) -> None:
    stats = BatchStats()
    out = sys.stdout
    try:
        with input_lines(path, "locating", progress) as lines:
            for record in locate_lines(lines, locator, stats=stats, explain=explain):
                out.write(record)
                out.write("\n")
    finally:
        out.flush()
    click.echo(f"located {stats.lines - stats.errors} device(s), {stats.errors} error(s)", err=True)
    if stats.errors:
        sys.exit(1)
