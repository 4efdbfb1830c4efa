"""A full disk under a SQLite store, for the disk-full tests of the storage and API suites.

Two ways, each a real failure of SQLite's own code path, nothing mocked:

- `SmallFilesystem`: a tmpfs of a few megabytes mounted for the test, filled by a ballast file
  until the kernel answers ENOSPC, emptied by deleting it. Mounting needs CAP_SYS_ADMIN (root
  in this sandbox; not on a developer's machine), so `SmallFilesystem.mount` says whether it
  could, and the caller skips otherwise.
- `PageLimit`: SQLite's own cap on a database's size, `PRAGMA max_page_count`, set to the pages
  the database has: a write that needs one page more fails with SQLITE_FULL ("database or disk
  is full"). Possible everywhere. The pragma holds per connection, and `Database` keeps one per
  thread, so every connection the store has and every one it opens while full is capped.
"""

from __future__ import annotations

import errno
import os
import subprocess
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

from regionlock.storage import Database


class FullDisk(Protocol):
    """Space under the store that the test takes away and gives back."""

    def fill(self) -> None:
        """Leave no room for the store to grow."""
        ...

    def free(self) -> None:
        """Give the room back (the store is not told)."""
        ...


class SmallFilesystem:
    """A small tmpfs mounted at `where` for one test."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self._ballast = where / "ballast"

    @classmethod
    def mount(cls, where: Path, size: str = "4m") -> tuple[SmallFilesystem | None, str]:
        """The filesystem mounted at `where`, or None and why it could not be mounted here."""
        where.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"cannot run mount: {exc}"
        if done.returncode != 0:
            return None, f"cannot mount a tmpfs here: {done.stderr.strip()}"
        return cls(where), ""

    def fill(self) -> None:
        """Write the ballast until the kernel refuses a single page more."""
        fd = os.open(self._ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (1 << 20, 1 << 16, 1 << 12, 1):
                block = b"\0" * chunk
                with suppress(OSError):
                    while True:
                        os.write(fd, block)
        finally:
            os.close(fd)
        # Nothing is left: even a byte in a new page of a new file is refused.
        probe = self.where / "probe"
        try:
            probe.write_bytes(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        else:
            probe.unlink()
            raise AssertionError(f"{self.where} still has room after filling it")
        finally:
            with suppress(FileNotFoundError):
                probe.unlink()

    def free(self) -> None:
        self._ballast.unlink()

    def unmount(self) -> None:
        """Unmount (lazily, should a file still be open: it goes when closed)."""
        if subprocess.run(["umount", str(self.where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(self.where)], check=True, capture_output=True)


class PageLimit:
    """`PRAGMA max_page_count` at the database's current size, on every connection of `db`.

    A test-only hook: `db`'s connection factory is wrapped so that a connection opened while
    the limit holds (a thread new to the store) is capped as well.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._full = False
        self._unlimited: int | None = None
        opened = db._connect

        def connect() -> Any:
            conn = opened()
            if self._full:
                conn.execute("PRAGMA max_page_count = 1")  # raised to the current size
            return conn

        db._connect = connect  # type: ignore[method-assign]

    def _connections(self) -> list[Any]:
        return self._db.open_connections()

    def fill(self) -> None:
        """Cap every connection (call it while no write is running)."""
        row = self._db._conn().execute("PRAGMA max_page_count").fetchone()
        self._unlimited = int(row[0])
        # The flag first: a connection opened meanwhile is either capped by `connect` or
        # already in the registry that is capped next.
        self._full = True
        for conn in self._connections():
            # SQLite never sets it below the pages the database has: 1 means "exactly those".
            conn.execute("PRAGMA max_page_count = 1")

    def free(self) -> None:
        assert self._unlimited is not None, "fill() first"
        self._full = False
        for conn in self._connections():
            conn.execute(f"PRAGMA max_page_count = {self._unlimited}")
