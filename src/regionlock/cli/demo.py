"""`regionlock demo`: the README's main job, the whole gray-market story on SQLite.

It starts the real service (`regionlock serve`, with a simulated clock), registers a synthetic
fleet, activates a policy modelled on the 2021 block, runs a simulated week of check-ins with a
reference agent per device, shows what happened, locks the stock of the leaked batches with a
campaign (as the maker's investigation would), lifts the block, and shows the devices that
unlock at their next check-in and who keeps the others locked: the law or the campaign. Then it
leaves the service running (Ctrl-C stops it) and says where to look; `--no-serve` stops it
instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
import httpx

from regionlock.cli.simulate import next_morning, tell
from regionlock.clock import SimulatedClock
from regionlock.policies import example_policy_text
from regionlock.services.access import Access
from regionlock.services.overview import Overview
from regionlock.sim.driver import FleetDriver
from regionlock.sim.fleet import FleetSpec, generate_fleet
from regionlock.storage import DatabaseUrl, open_stores
from regionlock.storage.apikeys import Role

MARKER = ".regionlock-demo"
REPORT = "investigation-report.html"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_service(db_url: str, host: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`regionlock serve` in a child process with a simulated clock; waits until it answers."""
    env = {**os.environ, "REGIONLOCK_SIMULATED_CLOCK": "true", "REGIONLOCK_WORKERS": "1"}
    env.pop("REGIONLOCK_ENVIRONMENT", None)  # a simulated clock is refused in production
    command = [sys.executable, "-m", "regionlock.cli.main", "serve"]
    command += ["--host", host, "--port", str(port), "--db", db_url]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    url = f"http://{host}:{port}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(
                f"the service exited at start (status {process.returncode}); see {log}:\n"
                + log.read_text(errors="replace")[-2000:]
            )
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise click.ClickException(f"the service did not answer within 60 s; see {log}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_service(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@click.command()
@click.option("--devices", default=3000, show_default=True, help="Fleet size.")
@click.option("--days", default=7, show_default=True, help="Simulated days under the block.")
@click.option("--seed", default=2021, show_default=True, help="Scenario seed (reproducible).")
@click.option(
    "--dir",
    "workdir",
    default="regionlock-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo keeps its database, API key and logs (recreated on each run).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, help="Taken? A free one is used.")
@click.option("--concurrency", default=16, show_default=True, help="Devices in flight at once.")
@click.option("--no-serve", is_flag=True, help="Stop the service when the story ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def demo(
    devices: int,
    days: int,
    seed: int,
    workdir: str,
    host: str,
    port: int,
    concurrency: int,
    no_serve: bool,
    as_json: bool,
) -> None:
    """The gray-market story: block a fleet's diverted phones, spare travellers, lift it."""
    if devices < 1 or days < 1:
        raise click.BadParameter("--devices and --days must be at least 1")
    say: Callable[..., None] = (lambda *a, **k: None) if as_json else click.secho
    root = Path(workdir)
    marker = root / MARKER
    if root.exists() and any(root.iterdir()) and not marker.exists():
        raise click.ClickException(
            f"{root} exists and is not a regionlock demo directory; choose another --dir"
        )
    if root.exists():
        shutil.rmtree(root)  # the demo's own directory (it has the marker): a fresh story
    root.mkdir(parents=True)
    marker.write_text("Made by `regionlock demo`, which deletes and recreates this directory.\n")
    db_path = (root / "regionlock.db").resolve()
    db_url = f"sqlite:///{db_path}"
    stores = open_stores(db_url)
    try:
        _, admin = Access.of(stores).create_apikey(
            name="demo admin", role=Role.ADMIN, actor="demo", now=datetime.now(UTC)
        )
    finally:
        stores.close()
    key_file = root / "admin-key.txt"
    key_file.write_text(admin + "\n")
    key_file.chmod(0o600)
    if not _port_free(host, port):
        chosen = _free_port(host)
        say(f"port {port} is taken; using {chosen}", fg="yellow", err=True)
        port = chosen
    url = f"http://{host}:{port}"

    say("regionlock demo: the 2021 gray-market block, replayed", bold=True)
    started = time.perf_counter()
    service = start_service(db_url, host, port, root / "service.log")
    # `kill` (SIGTERM) stops the demo like Ctrl-C does: the service with it, never orphaned.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        say(f"service up at {url} (SQLite {db_path}, simulated clock)")
        spec = FleetSpec(devices=devices, seed=seed, days=days + 1)
        fleet = generate_fleet(spec)
        clock = SimulatedClock(datetime.now(UTC))
        driver = FleetDriver(url, admin, fleet, spec, clock=clock, concurrency=concurrency)
        result = tell(
            driver,
            block_policy=example_policy_text("gray-market-2021"),
            lifted_policy=example_policy_text("gray-market-2021-lifted"),
            start=next_morning(datetime.now(UTC)),
            as_json=as_json,
        )
        _snapshot_days(db_url, clock.now())
        report: Path | None = None
        if result.investigation and result.investigation.case_id:
            report = root / REPORT
            _write_report(url, admin, result.investigation.case_id, report)
        if no_serve:
            stop_service(service)  # before the closing text, which then names only what remains
        if not as_json:
            elapsed = time.perf_counter() - started
            _where_next(url, db_url, key_file, fleet[0].imei, elapsed, report, serving=not no_serve)
        if no_serve:
            return
        say(f"\nThe service is still running at {url}. Ctrl-C stops it.", bold=True)
        try:
            service.wait()
        except KeyboardInterrupt:
            say("\nstopping the service")
    finally:
        stop_service(service)


def _snapshot_days(db_url: str, now: datetime) -> None:
    """The story's days as the console's time slider shows them: the service snapshots each
    ended day once a day (services/overview.py), and the simulated week ended in seconds."""
    stores = open_stores(db_url)
    try:
        Overview.of(stores).snapshot_missing(now)
    finally:
        stores.close()


def _write_report(url: str, admin: str, case_id: str, path: Path) -> None:
    """The case's investigation report, as the service renders it, next to the database."""
    answer = httpx.get(
        f"{url}/v1/investigations/report.html",
        params={"case": case_id},
        headers={"authorization": f"Bearer {admin}"},
        timeout=120,
    )
    if answer.status_code != 200:
        raise click.ClickException(f"the report: {answer.status_code} {answer.text[:300]}")
    path.write_text(answer.text, encoding="utf-8")


def _command() -> str:
    """How to call regionlock from this shell: by name if it is on PATH, else by its path."""
    if shutil.which("regionlock"):
        return "regionlock"
    script = Path(sys.executable).parent / "regionlock"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _where_next(
    url: str,
    db_url: str,
    key_file: Path,
    imei: str,
    elapsed: float,
    report: Path | None,
    *,
    serving: bool,
) -> None:
    """The closing text: where to look next, at what still exists once the story ends."""
    db = f"--db {db_url}"
    rl = _command()
    store: tuple[str, ...] = (
        f"  one device      {rl} device show {imei} {db}",
        f"  audit trail     {rl} audit verify {db}",
        f"  locked phones   {rl} devices list --verdict lock {db}",
    )
    if report is not None:
        store = (f"  the case report {report}   (a browser opens it offline)", *store)
    docs = (
        "  docs            docs/demo.md, docs/console.md, docs/investigations.md, docs/agent.md,"
        " docs/protocol.md"
    )
    lines: tuple[str, ...]
    if serving:
        lines = (
            f"  the console     {url}/console/   (log in with the admin key in {key_file})",
            f"  API docs        {url}/docs",
            f"  verdict keys    {url}/.well-known/jwks.json",
            *store,
            f'  its check-ins   curl -H "Authorization: Bearer $(cat {key_file})" '
            f"{url}/v1/devices/{imei}/checkins",
            f"  a device of     {rl} agent init --url {url} --imei 356938035643809",
            "  your own        (then devices import, agent checkin ...: docs/agent.md)",
            docs,
        )
    else:  # --no-serve: the service is gone, its database and the CLI remain
        lines = (
            f"  the database    {DatabaseUrl.parse(db_url).path}  (the service is stopped)",
            *store,
            f"  serve it again  {rl} serve {db}",
            f"                  (the console at /console/, API docs at /docs; admin key in"
            f" {key_file})",
            docs,
        )
    click.secho(f"\nStory told in {elapsed:.0f} s. Where to look next:", bold=True)
    for line in lines:
        click.echo(line)
