"""`regionlock serve`: the check-in service and operator API over HTTP (uvicorn)."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from contextlib import ExitStack
from typing import Any

import click

from regionlock import logs
from regionlock.settings import Settings
from regionlock.storage import open_database


@click.command()
@click.option("--host", help="Listen address (default 127.0.0.1; env REGIONLOCK_HOST).")
@click.option("--port", type=int, help="Port (default 8000; env REGIONLOCK_PORT).")
@click.option("--workers", type=int, help="Worker processes (default 1; env REGIONLOCK_WORKERS).")
@click.option("--db", "db_url", help="Database URL (env REGIONLOCK_DATABASE_URL).")
def serve(host: str | None, port: int | None, workers: int | None, db_url: str | None) -> None:
    """Run the service. SQLite is migrated on start; PostgreSQL needs `regionlock migrate`."""
    import uvicorn

    overrides = {"HOST": host, "PORT": port, "WORKERS": workers, "DATABASE_URL": db_url}
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"REGIONLOCK_{name}"] = str(value)  # workers read settings from env
    settings = Settings.from_env()
    open_database(settings.database_url).close()  # migrate SQLite / check PostgreSQL now
    check_listen(settings.host, settings.port)  # before the banner: a taken port says so
    if settings.simulated_clock:
        click.secho(
            "warning: simulated clock (REGIONLOCK_SIMULATED_CLOCK): an admin key can move this "
            "service's time forward with PUT /v1/clock. For demos and tests only.",
            fg="yellow",
            err=True,
        )
    said = (
        f"regionlock serving on http://{settings.host}:{settings.port} "
        f"({settings.database_url}); API docs at /docs, console at /console/"
    )
    click.echo(logs.banner(settings, said), err=True)
    with ExitStack() as cleanup:
        if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its metrics into files here and a scrape of any worker sums
            # them (api/metrics.py); set before the workers start and import the client.
            folder = cleanup.enter_context(
                tempfile.TemporaryDirectory(prefix="regionlock-metrics-")
            )
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        _run(uvicorn, settings)


def _run(uvicorn: Any, settings: Settings) -> None:
    uvicorn.run(
        "regionlock.api.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="warning",
        factory=False,
        # REGIONLOCK_TRUSTED_PROXIES alone decides whose X-Forwarded-For is believed
        # (api/device.py, peer_address). uvicorn's own default would rewrite the peer from
        # that header for any client on 127.0.0.1, before regionlock sees it.
        proxy_headers=False,
    )


def check_listen(host: str, port: int) -> None:
    """Refuse, naming the port, when `host`:`port` cannot be listened on.

    Each address `host` resolves to is bound as uvicorn binds it (SO_REUSEADDR; IPv6 only
    for IPv6) and released at once. Otherwise the banner would claim a service that uvicorn
    then fails to start. A port taken in the instant between this check and uvicorn's own
    bind still stops uvicorn with a non-zero status.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise click.ClickException(
                        f"port {port} on {host} is taken by another process: stop it, or "
                        "choose another --port (env REGIONLOCK_PORT)"
                    ) from None
                raise click.ClickException(
                    f"cannot listen on {host}:{port}: {exc.strerror}"
                ) from None
