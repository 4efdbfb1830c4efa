"""`regionlock locate`: where is this device (or each device of a JSON Lines file)?"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

import click
from tqdm import tqdm

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


def signal_options(f: Any) -> Any:
    """The signal options shared by `locate` and (later) `policy explain`."""
    options = [
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
    for option in reversed(options):
        f = option(f)
    return f


def signals_from_options(
    ip: str | None,
    sim: tuple[str, ...],
    network: tuple[str, ...],
    lat: float | None,
    lon: float | None,
    accuracy: float | None,
    timezone: str | None,
    locale: str | None,
) -> Signals:
    """Build validated Signals from the command-line options (InvalidInput on bad values)."""
    gps: GpsFix | None = None
    if (lat is None) != (lon is None):
        raise InvalidInput("--lat and --lon go together")
    if lat is not None and lon is not None:
        raw: dict[str, Any] = {"lat": lat, "lon": lon}
        if accuracy is not None:
            raw["accuracy_m"] = accuracy
        gps = parse_gps(raw)
    elif accuracy is not None:
        raise InvalidInput("--accuracy needs --lat and --lon")
    return Signals(
        ip=parse_ip(ip) if ip is not None else None,
        sim=parse_plmns(list(sim), "sim"),
        network=parse_plmns(list(network), "network"),
        gps=gps,
        timezone=parse_timezone(timezone) if timezone is not None else None,
        locale=parse_locale(locale) if locale is not None else None,
    )


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
    ip: str | None,
    sim: tuple[str, ...],
    network: tuple[str, ...],
    lat: float | None,
    lon: float | None,
    accuracy: float | None,
    timezone: str | None,
    locale: str | None,
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
        if any(v for v in (ip, sim, network, lat, lon, accuracy, timezone, locale)):
            raise click.UsageError("--input cannot be combined with signal options")
        _batch(input_path, Locator(ip_source=ip_db), bool(explain), progress)
        return
    signals = signals_from_options(ip, sim, network, lat, lon, accuracy, timezone, locale)
    locator = Locator(ip_source=ip_db)
    estimate = locator.locate(signals)
    out = estimate.to_json()
    if explain is not False:
        out["explanation"] = locator.explain(estimate)
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


def _batch(path: str, locator: Locator, explain: bool, progress: bool | None) -> None:
    stream: IO[str]
    total: int | None = None
    if path == "-":
        stream = sys.stdin
    else:
        stream = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
        total = os.fstat(stream.fileno()).st_size
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc="locating",
        file=sys.stderr,
        disable=not show,
        dynamic_ncols=True,
    )
    stats = BatchStats()
    out = sys.stdout
    try:
        for record in locate_lines(
            stream,
            locator,
            stats=stats,
            explain=explain,
            on_line=lambda line: bar.update(len(line.encode("utf-8"))),
        ):
            out.write(record)
            out.write("\n")
    finally:
        bar.close()
        if stream is not sys.stdin:
            stream.close()
        out.flush()
    click.echo(f"located {stats.lines - stats.errors} device(s), {stats.errors} error(s)", err=True)
    if stats.errors:
        sys.exit(1)
