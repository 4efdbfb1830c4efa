"""`regionlock backup FILE` and `regionlock restore FILE`: SQLite stores, with progress.

PostgreSQL stores are refused with a pointer to `pg_dump -Fc` / `pg_restore`; the procedure
for both backends is in docs/configuration.md, "Backup and restore".
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from tqdm import tqdm

from regionlock.cli.store import db_option
from regionlock.domain.errors import Conflict
from regionlock.storage.backup import (
    BackupExists,
    Progress,
    backup_sqlite,
    restore_sqlite,
    sqlite_path,
)

progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr (default: when stderr is a terminal).",
)


@contextmanager
def page_bar(desc: str, show: bool | None) -> Iterator[Progress]:
    """A progress bar over pages copied, fed by the copy's progress callback."""
    bar = tqdm(
        total=None,
        unit="page",
        unit_scale=True,
        desc=desc,
        file=sys.stderr,
        disable=not (sys.stderr.isatty() if show is None else show),
        dynamic_ncols=True,
    )

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


def mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@progress_option
@db_option
def backup(file: Path, force: bool, progress: bool | None, db_url: str) -> None:
    """Copy the SQLite store to FILE, consistent as of one instant, while the service runs.

    FILE is one self-contained SQLite file, readable by its owner only: it holds the
    service's private keys. An existing FILE is kept unless --force. PostgreSQL: use
    pg_dump -Fc (docs/configuration.md, "Backup and restore").
    """
    with page_bar("backup", progress) as bar:
        try:
            report = backup_sqlite(db_url, file, overwrite=force, progress=bar)
        except BackupExists:
            raise Conflict(
                f"{file} exists: give --force to replace it (nothing was written)"
            ) from None
    click.echo(
        f"backed up {sqlite_path(db_url)} to {file}: {report.pages} pages,"
        f" {mib(report.bytes)}, schema version {report.schema_version}"
    )


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@progress_option
@db_option
def restore(file: Path, progress: bool | None, db_url: str) -> None:
    """Replace the SQLite store with the backup FILE (made by `regionlock backup`).

    Stop the service first: this refuses while any other process has the store open. The
    store becomes the backup in one transaction (a crash leaves it as it was). Everything
    done after the backup is undone, revocations and key rotations included: see
    docs/configuration.md, "Backup and restore". PostgreSQL: use pg_restore.
    """
    with page_bar("restore", progress) as bar:
        report = restore_sqlite(file, db_url, progress=bar)
    click.echo(
        f"restored {sqlite_path(db_url)} from {file}: {report.pages} pages,"
        f" {mib(report.bytes)}, schema version {report.schema_version};"
        " run `regionlock audit verify`"
    )
