"""Backing up a SQLite store while the service writes, and restoring one.

Both go through SQLite's online backup API, never a plain file copy: a copy of a file in WAL
mode taken while it is written can miss committed transactions (they sit in `FILE-wal`) or
tear a page, and a copy over a database whose old `FILE-wal` is left behind gets that log
replayed onto it.

`backup_sqlite` reads one snapshot: it holds a read transaction on the store for the whole
copy, so the copy is the database as of one instant however many steps it takes (without it,
SQLite starts the copy over whenever another connection commits, which under a busy service
means never finishing). The service keeps writing meanwhile (WAL readers do not block
writers). The copy goes to a hidden temporary file beside FILE, is checked
(`PRAGMA quick_check`), synced, and only then named FILE: a crash leaves no half file.

`restore_sqlite` needs the store to itself: it refuses while a process holds the writer lock
(`FILE-writer`, see `db.py`) or has the database open at all (a running service between two
writes), and keeps everyone out while it works. It then copies the backup into the store in
one SQLite transaction: a crash part-way leaves a hot journal, which SQLite rolls back when
the store is next opened, so the store is either as it was or the backup, never half of each.
It writes into the database file rather than renaming a new one over it: a process that had
the old file open would go on using the old file, and its log (`FILE-wal`, found by name)
would then belong to the new one.

PostgreSQL stores are refused with a pointer to `pg_dump -Fc` and `pg_restore`
(docs/configuration.md, "Backup and restore").
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from regionlock.domain.errors import Conflict, DataUnavailable, InvalidInput, Unavailable
from regionlock.storage.db import DatabaseUrl
from regionlock.storage.migrate import available

# Pages copied per step of the backup API (4 MiB at SQLite's default page size): small enough
# for a progress bar to move, large enough that the steps cost nothing.
STEP_PAGES = 1024
# How long a backup waits for a lock on the store before giving up (a checkpoint truncating
# the log holds readers back briefly).
BUSY_TIMEOUT_S = 30.0
# A restore that finds the store busy refuses at once rather than wait for it.
RESTORE_BUSY_TIMEOUT_S = 1.0

Progress = Callable[[int, int], None]
"""Called after each step with (pages copied, pages in all)."""

PG_ADVICE = (
    "regionlock backup and restore copy SQLite stores only; back up PostgreSQL with its own"
    " tools: `pg_dump -Fc -f FILE.dump URL`, restored with `pg_restore --clean --if-exists"
    " -d URL FILE.dump` (docs/configuration.md, 'Backup and restore')"
)


class BackupExists(Conflict):
    """The backup's file exists already; nothing was written."""


class StoreInUse(Unavailable):
    """Another process has the store open or is writing to it; nothing was changed."""


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What a backup or restore copied."""

    pages: int
    bytes: int
    schema_version: int


def sqlite_path(url: str) -> Path:
    """The file of the SQLite store at `url`; InvalidInput (with pg_dump advice) otherwise."""
    parsed = DatabaseUrl.parse(url)
    if parsed.dialect != "sqlite":
        raise InvalidInput(PG_ADVICE)
    assert parsed.path is not None
    return parsed.path


def _schema_version(conn: sqlite3.Connection, what: str) -> int:
    """The regionlock schema version of an open database; InvalidInput if it is none."""
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{what} is not a regionlock database ({exc})") from None
    return int(row[0]) if row and row[0] is not None else 0


def _step_callback(progress: Progress | None, pages: list[int]) -> Callable[[int, int, int], None]:
    def step(_status: int, remaining: int, total: int) -> None:
        pages[0] = total
        if progress is not None:
            progress(total - remaining, total)

    return step


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, target: Path, *, overwrite: bool) -> None:
    """Give the finished `tmp` the name `target` in one step (no-clobber unless `overwrite`)."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails if target exists, even one created a moment ago
    except FileExistsError:
        raise BackupExists(f"{target} exists already; nothing was written") from None
    except OSError:  # a file system without hard links: check, then rename
        if target.exists():
            raise BackupExists(f"{target} exists already; nothing was written") from None
        os.replace(tmp, target)
        return
    tmp.unlink()


def backup_sqlite(
    url: str,
    target: Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    step_pages: int = STEP_PAGES,
) -> CopyReport:
    """Copy the SQLite store at `url` to the file `target`, consistent as of one instant,
    while other processes go on writing. `target` is a single self-contained file (rollback
    journal mode, no `-wal`), readable only by its owner: it holds the service's private keys.
    BackupExists if `target` exists and not `overwrite`; nothing is left behind on failure."""
    source = sqlite_path(url)
    if not source.is_file():
        raise DataUnavailable(f"no database at {source}")
    if target.exists() and not overwrite:
        raise BackupExists(f"{target} exists already; nothing was written")
    if target.exists() and target.resolve() == source.resolve():
        raise InvalidInput(f"{target} is the database itself")
    directory = target.parent if str(target.parent) else Path()
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".partial")
    os.close(fd)  # mode 0600: a backup holds the private signing and unlock keys
    tmp = Path(name)
    pages = [0]
    try:
        src = sqlite3.connect(source, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        try:
            # One snapshot for every step: a read transaction held across the whole copy.
            src.execute("BEGIN")
            version = _schema_version(src, str(source))
            dst = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(dst, pages=step_pages, progress=_step_callback(progress, pages))
                src.execute("COMMIT")
                # The copy carries the store's WAL flag; a backup is one file on its own.
                dst.execute("PRAGMA journal_mode=DELETE")
                check = dst.execute("PRAGMA quick_check").fetchone()
                if check is None or check[0] != "ok":
                    raise DataUnavailable(f"the copy of {source} failed its check: {check}")
            finally:
                dst.close()
        finally:
            src.close()
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        _publish(tmp, target, overwrite=overwrite)
        _fsync_dir(directory)
    except sqlite3.DatabaseError as exc:
        raise DataUnavailable(f"cannot back up {source}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return CopyReport(pages[0], target.stat().st_size, version)


@contextlib.contextmanager
def _writer_lock_now(path: Path) -> Iterator[None]:
    """The store's cross-process writer lock (`FILE-writer`, as `Database` takes it), taken
    without waiting: StoreInUse if a process is writing."""
    lock_path = path.with_name(path.name + "-writer")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreInUse(
                f"a process is writing to {path} (it holds {lock_path}): stop the service"
                " and every other regionlock command on this store, then restore"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _open_exclusively(path: Path) -> sqlite3.Connection:
    """A connection that has `path` to itself, or StoreInUse. Leaving WAL mode needs every
    other connection closed; EXCLUSIVE locking mode then keeps the lock after each
    transaction, so nobody opens the store until this connection is closed."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=RESTORE_BUSY_TIMEOUT_S)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        # Leaving WAL also replays what a crashed process left in FILE-wal and removes it, so
        # no old log can be applied to the restored database.
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
        if mode is None or str(mode[0]).lower() != "delete":
            raise sqlite3.OperationalError("database is locked")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreInUse(
                f"another process has {path} open (a running service?): stop it, then restore"
            ) from None
        raise DataUnavailable(f"cannot open {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DataUnavailable(
            f"{path} cannot be read as a SQLite database ({exc}): move it aside and restore"
            " into its place"
        ) from None
    return conn


def restore_sqlite(
    backup: Path,
    url: str,
    *,
    progress: Progress | None = None,
    step_pages: int = STEP_PAGES,
) -> CopyReport:
    """Replace the SQLite store at `url` with the backup file `backup`, in one transaction.
    StoreInUse while another process has the store open; InvalidInput if `backup` is not a
    sound regionlock database this version can use. The backup file is only read."""
    path = sqlite_path(url)
    if not backup.is_file():
        raise InvalidInput(f"no backup file at {backup}")
    if path.exists() and backup.resolve() == path.resolve():
        raise InvalidInput(f"{backup} is the database itself")
    pages = [0]
    try:
        src = sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"cannot read {backup}: {exc}") from None
    try:
        try:
            check = src.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InvalidInput(f"{backup} is not a SQLite database ({exc})") from None
        if check is None or check[0] != "ok":
            raise InvalidInput(f"{backup} is damaged: {check}")
        version = _schema_version(src, str(backup))
        known = len(available("sqlite"))
        if version > known:
            raise InvalidInput(
                f"{backup} is at schema version {version}, newer than this regionlock knows"
                f" ({known}): restore it with the regionlock that made it"
            )
        if path.parent != Path():
            path.parent.mkdir(parents=True, exist_ok=True)
        with _writer_lock_now(path):
            live = _open_exclusively(path)
            try:
                src.backup(live, pages=step_pages, progress=_step_callback(progress, pages))
            except sqlite3.DatabaseError as exc:
                raise DataUnavailable(f"cannot restore into {path}: {exc}") from None
            finally:
                live.close()
    finally:
        src.close()
    return CopyReport(pages[0], path.stat().st_size, version)
