"""A scratch PostgreSQL database for a benchmark: created, handed over, dropped."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager


def postgres_url() -> str | None:
    """The server to benchmark on: REGIONLOCK_BENCH_POSTGRES_URL, else the tests' one."""
    return os.environ.get("REGIONLOCK_BENCH_POSTGRES_URL") or os.environ.get(
        "REGIONLOCK_TEST_POSTGRES_URL"
    )


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """The URL of a database of its own on `server`, dropped afterwards."""
    import psycopg

    name = f"regionlock_bench_{os.getpid()}_{secrets.token_hex(3)}"  # several in one run
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
