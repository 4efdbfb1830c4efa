"""`regionlock serve`: the check-in service and operator API over HTTP (uvicorn)."""

from __future__ import annotations

import os

import click

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
    if settings.simulated_clock:
        click.secho(
            "warning: simulated clock (REGIONLOCK_SIMULATED_CLOCK): an admin key can move this "
            "service's time forward with PUT /v1/clock. For demos and tests only.",
            fg="yellow",
            err=True,
        )
    click.echo(
        f"regionlock serving on http://{settings.host}:{settings.port} "
        f"({settings.database_url}); API docs at /docs",
        err=True,
    )
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
