"""One URL picks the backend: `sqlite:///path/to/file.db` (default) or `postgresql://...`.

`Database` hides the two drivers behind one small surface: transactions as context managers,
SQL written once with `?` placeholders (rewritten to `%s` for psycopg), rows as tuples. The
storage roles (devices, audit, policies, ...) are written against it once and pass the same
conformance suite on both backends.

SQLite discipline: WAL journal, readers in parallel on their own connections, and one writer
at a time - a thread lock and an OS file lock (`flock` on `FILE-writer`) around `BEGIN
IMMEDIATE`, so writers of this process and of other worker processes queue. A writer waiting
for another process tries the file lock every 0.5-2 ms, where SQLite's busy handler sleeps 1, 2,
5, 10, ... up to 100 ms between tries (which made the tail latency of several workers).
PostgreSQL: a connection per thread from a small pool; row locks (`SELECT ... FOR UPDATE`) give
per-device serialisation where SQLite's single writer gives it for free.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import logging
import os
import re
import secrets
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import urlparse

from regionlock.domain.errors import DataUnavailable, InvalidInput

Dialect = Literal["sqlite", "postgresql"]


def epoch_ms(t: datetime) -> int:
    """How the store keeps times: UTC epoch milliseconds."""
    return int(t.timestamp() * 1000)


def epoch_ms_of_day(day: date) -> int:
    """The stored time (UTC epoch milliseconds) at which a UTC day begins."""
    return (day - date(1970, 1, 1)).days * 86_400_000


def from_epoch_ms(ms: int | None) -> datetime | None:
    """A stored time (UTC epoch milliseconds) as a UTC datetime; None stays None."""
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, UTC)


_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_id(prefix: str, n: int = 12) -> str:
    """A fresh random id: `prefix` and `n` base32 characters (5 bits each)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(n))


DEFAULT_URL = "sqlite:///regionlock.db"
# How long a client should wait before trying again while the store is unreachable.
STORE_RETRY_AFTER_S = 5
# How long connecting to PostgreSQL may take before the store counts as unreachable.
PG_CONNECT_TIMEOUT_S = 5


class StoreUnavailable(DataUnavailable):
    """The store cannot be reached or cannot take the work right now (a server restarting or
    failing over, a killed connection, a full disk, a writer lock held too long). Nothing of
    the failed unit of work was kept; the same request may succeed later."""

    retry_after_s = STORE_RETRY_AFTER_S


class StoreConflict(StoreUnavailable):
    """The unit of work lost a conflict with a concurrent one: PostgreSQL chose it as a
    deadlock's victim, found a serialisation failure, or a lock it would wait for only briefly
    (`lock_timeout`) was held. Nothing of it was kept; running it again at once usually
    succeeds, which is what the callers that can (the check-in path) do before answering 503."""

    retry_after_s = 1


# SQLSTATEs of a lost conflict (deadlock_detected, serialization_failure, lock_not_available).
_PG_CONFLICTS = frozenset({"40P01", "40001", "55P03"})


def _driver_errors(dialect: Dialect) -> tuple[type[BaseException], ...]:
    """The driver's errors that may mean "the store is unavailable" (`_is_outage` decides)."""
    if dialect == "sqlite":
        return (sqlite3.OperationalError,)
    import psycopg

    return (psycopg.OperationalError, psycopg.InterfaceError)


# SQLite's primary result codes for a store that cannot take the work now, as opposed to a
# statement that is wrong (https://www.sqlite.org/rescode.html).
_SQLITE_OUTAGE = {
    5,  # SQLITE_BUSY
    6,  # SQLITE_LOCKED
    7,  # SQLITE_NOMEM
    8,  # SQLITE_READONLY
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
}


def _is_outage(exc: BaseException) -> bool:
    """Whether a driver error means the store is unavailable (lost or refused connection, a
    full disk, a lock held too long, a server-side failure of the operation) rather than a
    defect in the statement, which stays an internal error."""
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is None or code & 0xFF in _SQLITE_OUTAGE  # None: our writer lock's timeout
    return True


def _brief(exc: BaseException) -> str:
    """The driver's message on one line, bounded (a message that grows with every retry
    must not grow the log)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:200] + "..."


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed database URL."""

    dialect: Dialect
    url: str
    path: Path | None = None  # SQLite file

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        parts = urlparse(url)
        if parts.scheme == "sqlite":
            # sqlite:///relative.db, sqlite:////absolute/path.db, sqlite:///:memory: is refused:
            # several connections must see one database.
            raw = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
            if not raw or raw == ":memory:":
                raise InvalidInput(
                    f"database URL {url!r}: give a file, e.g. sqlite:///regionlock.db"
                )
            return cls("sqlite", url, Path(raw))
        if parts.scheme in ("postgresql", "postgres"):
            return cls("postgresql", url)
        raise InvalidInput(
            f"database URL {url!r}: expected sqlite:///FILE or postgresql://USER@HOST/DB"
        )


T = TypeVar("T")


class Pending(Generic[T]):
    """A result to come: what a store sent without waiting (`Transaction.send`), worked out on
    first `get()`, which waits for the statements behind it (and on PostgreSQL for all sent
    before them: one round trip for the lot). Errors, the store's own or the driver's, are
    raised there. On SQLite the statements have run already; only the working out waits."""

    __slots__ = ("_done", "_get", "_value")

    def __init__(self, get: Callable[[], T]) -> None:
        self._get: Callable[[], T] | None = get
        self._done = False

    def get(self) -> T:
        if not self._done:
            assert self._get is not None
            self._value = self._get()
            self._done, self._get = True, None
        return self._value


class Sent:
    """One statement sent by `Transaction.send`: its rows or row count, waited for when
    first asked for."""

    __slots__ = ("_cursor", "_index", "_rows", "_tx")

    def __init__(self, tx: Transaction, cursor: Any, index: int, rows: list[Any] | None) -> None:
        self._tx, self._cursor, self._index, self._rows = tx, cursor, index, rows

    def rows(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            self._rows = self._cursor.fetchall()
            self._tx._answered(self._index)
        return [tuple(r) for r in self._rows]

    def one(self) -> tuple[Any, ...] | None:
        rows = self.rows()
        return rows[0] if rows else None

    def rowcount(self) -> int:
        if self._cursor is None:  # nothing was sent (no rows)
            return 0
        self._tx._wait_for(self._index)
        return int(self._cursor.rowcount or 0)


class Transaction:
    """A unit of work: `execute`, `one`, `all`; committed on exit, rolled back on error.

    In a pipelined transaction (`Database.write(pipelined=True)`, PostgreSQL's pipeline mode)
    `send` does not wait for the server: statements sent one after the other travel together,
    and the server's answers come back on the first read of any of them. `execute`, `one` and
    `all` still wait, as everywhere. Elsewhere `send` runs the statement at once."""

    def __init__(self, conn: Any, dialect: Dialect, pipeline: Any = None) -> None:
        self._conn = conn
        self.dialect = dialect
        self._pipeline = pipeline  # psycopg's Pipeline while pipelined
        self._sent = 0  # statements sent in this transaction
        self._answered_upto = 0  # the last one whose answer (and every earlier one's) is in

    @property
    def pipelined(self) -> bool:
        """Whether `send` leaves statements unanswered until something is read."""
        return self._pipeline is not None

    def _count(self) -> int:
        self._sent += 1
        return self._sent

    def _answered(self, index: int) -> None:
        # The server answers in order: an answer read means every earlier one is in too.
        self._answered_upto = max(self._answered_upto, index)

    def _wait_for(self, index: int) -> None:
        """Wait until statement `index` is answered (a row count is known only then)."""
        if self._pipeline is not None and index > self._answered_upto:
            self._pipeline.sync()
            self._answered_upto = self._sent

    def send(self, sql: str, params: Sequence[Any] = (), *, arrays: bool = False) -> Sent:
        """Run `sql` without waiting for it when pipelined; `arrays` as for `execute`."""
        cur = self._run(sql, params, arrays)
        return Sent(self, cur, self._count(), None if self._pipeline is not None else _rows(cur))

    def send_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> Sent:
        """`executemany` without waiting for it when pipelined."""
        if not rows:
            return Sent(self, None, self._count(), [])
        cur = self._conn.cursor()
        cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        return Sent(self, cur, self._count(), [])

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else _to_pyformat(sql)

    def _run(self, sql: str, params: Sequence[Any], arrays: bool) -> Any:
        """The driver's cursor of `sql` run (sent, when pipelined); `arrays` as for `execute`."""
        if arrays and self.dialect == "postgresql":
            return self._conn.execute(_to_pyformat(sql, "%b"), tuple(params), prepare=False)
        return self._conn.execute(self._sql(sql), tuple(params))

    def execute(self, sql: str, params: Sequence[Any] = (), *, arrays: bool = False) -> int:
        """Run `sql`; the rows it changed. `arrays`: a PostgreSQL statement whose parameters
        carry many rows as arrays (`unnest(?::text[], ...)`). They go in binary (in text,
        psycopg escapes every element in Python: 15 ms instead of 1 ms for 1,000 JSON texts),
        and the statement is planned for these very values every time, never with a cached
        generic plan (which guesses the arrays' size and may scan a whole table)."""
        cur = self._run(sql, params, arrays)
        self._wait_for(self._count())
        return int(cur.rowcount or 0)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run `sql` once per row (one prepared statement; one round trip on PostgreSQL,
        which pipelines it); returns the rows changed in all."""
        if not rows:
            return 0
        cur = self._conn.cursor()
        cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        self._wait_for(self._count())
        return int(cur.rowcount or 0)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._conn.execute(self._sql(sql), tuple(params)).fetchone()
        self._answered(self._count())
        return tuple(row) if row is not None else None

    def all(
        self, sql: str, params: Sequence[Any] = (), *, arrays: bool = False
    ) -> list[tuple[Any, ...]]:
        """The rows of a query; `arrays` as for `execute`."""
        cur = self._run(sql, params, arrays)
        rows = [tuple(r) for r in cur.fetchall()]
        self._answered(self._count())
        return rows

    def copy_out(self, sql: str, params: Sequence[Any] = ()) -> Iterator[bytes]:
        """PostgreSQL only: the bytes of `COPY (sql) TO STDOUT (FORMAT csv, NULL '\\N')`, in
        blocks as the server sends them (bulk exports: no row becomes a Python object)."""
        if self.dialect != "postgresql":
            raise ValueError("COPY is PostgreSQL's")
        self._no_copy_in_pipeline()
        copy_sql = f"COPY ({_to_pyformat(sql)}) TO STDOUT (FORMAT csv, NULL '\\N')"
        with self._conn.cursor().copy(copy_sql, tuple(params)) as copy:
            for block in copy:
                yield bytes(block)

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert `rows` into `table`: PostgreSQL's COPY FROM STDIN (one stream, no statement
        per row: bulk imports), SQLite's executemany of one prepared INSERT."""
        if not rows:
            return
        names = ", ".join(columns)
        if self.dialect == "postgresql":
            self._no_copy_in_pipeline()
            with self._conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        self._conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)

    def _no_copy_in_pipeline(self) -> None:
        if self._pipeline is not None:
            raise RuntimeError("COPY cannot run in a pipelined transaction")

    def script(self, sql: str) -> None:
        """Run several statements (migrations)."""
        if self.dialect == "sqlite":
            for statement in _statements(sql):
                self._conn.execute(statement)
        else:
            self._conn.execute(sql)


def _rows(cursor: Any) -> list[Any]:
    """A finished statement's rows (none for one that returns no rows)."""
    return cursor.fetchall() if cursor.description is not None else []


class Transactions(Protocol):
    """Where a service's units of work come from: every change and its audit entry are
    written in one `write()` transaction, which commits on exit and rolls back on error."""

    def write(self, *, pipelined: bool = False) -> AbstractContextManager[Transaction]:
        """A read-write transaction (one writer at a time on SQLite); `pipelined`: see
        `Transaction`."""
        ...

    def read(self, *, pipelined: bool = False) -> AbstractContextManager[Transaction]:
        """A read-only snapshot; `pipelined`: see `Transaction`."""
        ...


_QMARK = re.compile(r"\?")


def _to_pyformat(sql: str, placeholder: str = "%s") -> str:
    # Our SQL never has a literal '?' or '%' inside strings; keep it that way (checked here).
    if "%" in sql:
        raise ValueError("SQL for the portable layer must not contain '%'")
    return _QMARK.sub(placeholder, sql)


def _statements(sql: str) -> list[str]:
    """Split a migration into statements with sqlite3's own notion of a complete statement."""
    out: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending!r}")
    return out


# SQLite's WAL: checkpointed every 0.1 s by a thread of its own (small, quick copies, so that
# most finish between two commits and the log can restart); the file is cut back to
# this size when it restarts, and a checkpoint that finds it larger restarts it.
CHECKPOINT_INTERVAL_S = 0.1
WAL_SIZE_LIMIT = 64 * 1024 * 1024
# A RESTART checkpoint holds the writers: it runs only when what is left to copy is at most
# this share of the limit (else a reader on an older snapshot holds the log back), and waits
# at most this long for readers to move on before it lets the writers go until a next round.
RESTART_BACKLOG = 0.125
RESTART_WAIT_S = 0.05
# Past this size a restart is tried even with a backlog (readers that share SQLite's few
# reader slots can keep one at an old position without any single long reader).
WAL_HARD_LIMIT = 4 * WAL_SIZE_LIMIT
# How long a writer waits for another process's write (SQLite's busy timeout, as before).
WRITER_LOCK_TIMEOUT_S = 30.0
# The `PRAGMA synchronous` levels a store may run at (REGIONLOCK_SQLITE_SYNCHRONOUS).
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL")

log = logging.getLogger(__name__)


def _is_data_error(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.DataError)


def _open_beside(path: Path, suffix: str, flags: int) -> int:
    """A descriptor of the lock file `FILE<suffix>` beside the database, made if need be with
    the database's mode, as SQLite makes `-wal` and `-shm`."""
    fd = os.open(path.with_name(path.name + suffix), flags | os.O_CREAT, 0o600)
    with suppress(OSError):
        os.fchmod(fd, path.stat().st_mode & 0o666)
    return fd


def _syncfs(fd: int) -> None:
    """Write out the dirty data of the file system that holds `fd`'s file (Linux `syncfs`);
    elsewhere nothing: it only moves work out of a pause."""
    call = getattr(_libc(), "syncfs", None)
    if call is not None and call(fd) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"syncfs: {os.strerror(errno)}")


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _pg_ready(conn: Any) -> bool:
    """Whether a PostgreSQL connection can start a new unit of work: open, not broken, idle,
    out of pipeline mode, and with nothing from the server waiting to be read. An idle
    connection is sent something unasked almost only when the server is ending it (a restart,
    a failover, `pg_terminate_backend`): the driver would find out only by failing the next
    statement, so a connection with bytes waiting is not reused (one poll, about 2 us)."""
    from psycopg import pq

    if conn.closed or conn.broken:
        return False
    info = conn.info
    if not (
        info.transaction_status == pq.TransactionStatus.IDLE
        and info.pipeline_status == pq.PipelineStatus.OFF
    ):
        return False
    waiting = select.poll()
    waiting.register(conn.fileno(), select.POLLIN)
    return not waiting.poll(0)


class _Checkpointer:
    """Copies SQLite's write-ahead log back into the database file on its own thread.

    SQLite does this by default inside a COMMIT once the log passes 1,000 pages: that commit
    then copies megabytes and syncs the file while holding the writer lock, and every check-in
    of its group waits (bench/README.md: +50 % check-ins/s with it moved out). Here a PASSIVE
    checkpoint, which never waits for readers or writers, runs every `CHECKPOINT_INTERVAL_S`
    on a connection of its own (sqlite3 releases the GIL meanwhile). Should the log still pass
    `WAL_SIZE_LIMIT` (a checkpoint starved by readers, or steady writes landing during each
    copy), a RESTART checkpoint under the writers' own locks lets the next write start it
    over, cut back to that size, so it stays bounded; a PASSIVE one just before it, outside
    the locks, leaves it only what was committed meanwhile to copy.

    One process at a time checkpoints a database: the one holding the `FILE-checkpoint` lock,
    taken at its first round that finds it free and kept until it stops (then another
    process's next round takes it over). With several workers on one file, each running its
    own checkpointer, every one of them used to restart the same full log in turn, each a
    pause of every writer (bench/README.md, "Checkpoints: one process, and the copy outside
    the pause").
    """

    def __init__(
        self,
        path: Path,
        exclusive: Callable[[], AbstractContextManager[None]],
        observe: Callable[[float], None] | None = None,
    ) -> None:
        """`observe(seconds)` is told of each round's wall-clock time (the node's metrics)."""
        self._path = path
        self._exclusive = exclusive
        self._observe = observe
        self.restarts = 0  # checkpoints run past WAL_SIZE_LIMIT (tests)
        self._wal = path.with_name(path.name + "-wal")
        self._lock_fd: int | None = None  # open while this process is the database's checkpointer
        self._stuck: int | None = None  # frames copied when a restart last gave up on readers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        # A RESTART checkpoint waits for readers on older snapshots, polled by `round`
        # rather than by SQLite's busy handler.
        conn.execute("PRAGMA busy_timeout=0")
        warned = False
        try:
            while not self._stop.wait(CHECKPOINT_INTERVAL_S):
                try:
                    if self.leading():
                        started = time.perf_counter()
                        self.round(conn)
                        if self._observe is not None:
                            self._observe(time.perf_counter() - started)
                    warned = False
                except (sqlite3.Error, OSError) as exc:  # tried again next round
                    if not warned:
                        log.warning("SQLite checkpoint of %s failed: %s", self._path, exc)
                        warned = True
        finally:
            conn.close()
            self._release()

    def leading(self) -> bool:
        """Whether this process checkpoints the database: it holds, or now takes, the
        `FILE-checkpoint` lock (never waiting for it)."""
        if self._lock_fd is not None:
            return True
        fd = _open_beside(self._path, "-checkpoint", os.O_RDONLY)  # flock needs no more
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process's checkpointer has it
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # and with it the lock

    def round(self, conn: sqlite3.Connection) -> None:
        """One checkpoint on `conn`: PASSIVE; past the limit, then RESTART under the locks,
        unless a reader holds the log back."""
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        try:
            size = self._wal.stat().st_size
        except FileNotFoundError:  # no log yet, or just truncated away
            size = 0
        if size <= WAL_SIZE_LIMIT:
            return
        # A checkpoint that does not reach the log's end (readers on older snapshots, or a
        # commit meanwhile: nearly always under load) does not sync the database file, so
        # the one that does inherits every page copied since: 7-24 ms of writeback inside
        # the pause. Synced here first, outside the locks, that pause is the last copy's.
        # Through the file system (`syncfs` on the lock file beside it), never through a
        # descriptor of the database file: closing one would drop every POSIX lock SQLite
        # holds on it in this process, and another process could then delete the live log.
        if self._lock_fd is not None:
            _syncfs(self._lock_fd)
        _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames < 0:  # not in WAL mode, or another connection is checkpointing
            return
        if self._stuck is not None:
            if frames >= self._stuck and copied <= self._stuck:
                return  # the readers a restart gave up on are still there: no pause for them
            self._stuck = None
        # What is left is what was committed since, unless a reader on an older snapshot
        # (a backup, an export) holds the copy back: a restart would wait for it with the
        # writers held, so it waits for a later round instead, and the log grows while that
        # reader needs it - up to `WAL_HARD_LIMIT`, where a restart is tried all the same.
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        behind = (frames - copied) * page > WAL_SIZE_LIMIT * RESTART_BACKLOG
        if behind and size <= WAL_HARD_LIMIT:
            return
        # Holding the writers' own locks: they wait there and go on the moment it is done.
        # Left to SQLite's busy handler, a writer that met this checkpoint slept 1, 2, 5, 10,
        # 15, 20 ms... and got in tens of ms after it ended. RESTART, not TRUNCATE: the next
        # write starts the log over and cuts it to `journal_size_limit`, with no truncation
        # and sync inside the pause (p99 of check-ins 54.5 ms -> 20-22 ms, bench/README.md).
        # Readers still on older snapshots (a check-in's, a few ms) are polled every half
        # millisecond, not left to SQLite's busy handler and its growing sleeps. Readers that
        # outlast `RESTART_WAIT_S` are long ones: no restart is tried again (and no writer
        # held for it) until a checkpoint copies past where this one stopped.
        with self._exclusive():
            deadline = time.monotonic() + RESTART_WAIT_S
            while True:
                busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                if not busy:
                    break
                if time.monotonic() >= deadline:
                    self._stuck = copied
                    return
                time.sleep(0.0005)
        self.restarts += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Database:
    """Connections and transactions for one database URL."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        schema: str | None = None,
        sqlite_synchronous: str = "NORMAL",
    ) -> None:
        self.url = DatabaseUrl.parse(url)
        if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise InvalidInput(
                f"SQLite synchronous {sqlite_synchronous!r}: expected one of"
                f" {', '.join(SQLITE_SYNCHRONOUS)}"
            )
        # What a COMMIT waits for on SQLite (docs/configuration.md, "Durability"): NORMAL syncs
        # the log at checkpoints only, FULL at every commit.
        self.sqlite_synchronous = sqlite_synchronous
        self.dialect: Dialect = self.url.dialect
        self.schema = schema  # PostgreSQL only: tests isolate themselves in a schema
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer_fd: int | None = None  # SQLite: the cross-process writer lock's file
        # Every connection opened, by id, with the thread it belongs to: closed by `close`,
        # and once its thread has ended, by the next `_connect` (threads come and go: the
        # server's worker threads end after 10 s idle, an import's writers with the file).
        self._connections: dict[int, tuple[threading.Thread, Any]] = {}
        self._registry_lock = threading.Lock()
        self._checkpointer: _Checkpointer | None = None  # SQLite, from the first write on
        # Told the wall-clock seconds of each of SQLite's checkpoints (the node's metrics).
        self.on_checkpoint: Callable[[float], None] | None = None

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> Any:
        conn: Any
        if self.dialect == "sqlite":
            assert self.url.path is not None
            if self.url.path.parent != Path():
                self.url.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.url.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.sqlite_synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            # No COMMIT copies the WAL back into the database: `_Checkpointer` does, apart.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        else:
            import psycopg

            conn = psycopg.connect(
                self.url.url, autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT_S
            )
            if self.schema:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                conn.execute(f'SET search_path TO "{self.schema}"')
        with self._registry_lock:
            orphans = [c for t, c in self._connections.values() if not t.is_alive()]
            for orphan in orphans:
                del self._connections[id(orphan)]
            self._connections[id(conn)] = (threading.current_thread(), conn)
        for orphan in orphans:
            with suppress(Exception):  # closing is best effort
                orphan.close()
        return conn

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self.dialect == "postgresql" and not _pg_ready(conn):
            # The server went away (restart, failover, a killed backend), or a failure left
            # the connection mid-transaction or mid-pipeline ("ACTIVE, pipeline ABORTED"):
            # the operation that found out has failed; this one gets a new connection.
            self._discard(conn)
            conn = None
        if conn is None:
            try:
                conn = self._local.conn = self._connect()
            except _driver_errors(self.dialect) as exc:
                if not _is_outage(exc):
                    raise
                raise StoreUnavailable(f"cannot connect to the store: {_brief(exc)}") from None
        return conn

    def open_connections(self) -> list[Any]:
        """The driver connections open now, whatever thread holds them (diagnostics, tests)."""
        with self._registry_lock:
            return [conn for _, conn in self._connections.values()]

    def _discard(self, conn: Any) -> None:
        """Forget this thread's connection and close it (best effort)."""
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._registry_lock:
            self._connections.pop(id(conn), None)
        with suppress(Exception):
            conn.close()

    @contextmanager
    def _unavailable_on_driver_errors(self, conn: Any) -> Iterator[None]:
        """Driver errors that mean an outage leave as StoreUnavailable, text PostgreSQL cannot
        store as InvalidInput; a PostgreSQL connection left unusable is replaced, never reused."""
        try:
            yield
        except _driver_errors(self.dialect) as exc:
            if self.dialect == "postgresql" and not _pg_ready(conn):
                self._discard(conn)
            if not _is_outage(exc):
                raise
            if getattr(exc, "sqlstate", None) in _PG_CONFLICTS:
                log.info("transaction conflict: %s", _brief(exc))
                raise StoreConflict(f"a concurrent transaction conflicted: {_brief(exc)}") from None
            log.warning("store unavailable: %s", _brief(exc))
            raise StoreUnavailable(f"the store is unavailable: {_brief(exc)}") from None
        except Exception as exc:
            # The last line of defence for text that input validation should have refused:
            # PostgreSQL cannot store NUL, and says so as a data error.
            if self.dialect == "postgresql" and "NUL" in str(exc) and _is_data_error(exc):
                if not _pg_ready(conn):
                    self._discard(conn)
                raise InvalidInput("text may not contain NUL characters") from None
            raise

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers a trivial query."""
        with self.read() as tx:
            tx.one("SELECT 1")

    def close(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        with self._registry_lock:
            for _, conn in self._connections.values():
                with suppress(Exception):  # closing is best effort
                    conn.close()
            self._connections.clear()
        self._local = threading.local()
        fd, self._writer_fd = self._writer_fd, None
        if fd is not None:
            os.close(fd)

    def is_unique_violation(self, exc: BaseException) -> bool:
        """Whether `exc` is this backend's "duplicate key" error."""
        if self.dialect == "sqlite":
            return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)
        import psycopg

        return isinstance(exc, psycopg.errors.UniqueViolation)

    def scrub(self, tables: Sequence[str]) -> None:
        """Make deleted rows unrecoverable from the database files as far as the backend can
        (an erasure, docs/privacy.md). Runs outside any transaction. SQLite: VACUUM rebuilds
        the file from live rows only (no free page keeps an old record), then the write-ahead
        log, which still holds old page images, is copied back and truncated. PostgreSQL:
        VACUUM of `tables` prunes dead row versions (what it cannot reach: docs/privacy.md)."""
        conn = self._conn()
        with self._unavailable_on_driver_errors(conn):
            if self.dialect == "postgresql":
                for table in tables:
                    conn.execute(f"VACUUM {table}")
                return
            with self._exclusive_writer():
                conn.execute("VACUUM")
                for _ in range(50):  # readers still on the old log: wait for them, 5 s at most
                    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    if not busy:
                        return
                    time.sleep(0.1)
        raise StoreUnavailable(
            "the write-ahead log could not be emptied (readers held it for 5 s): erase again"
            " to finish scrubbing"
        )

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def write(self, *, pipelined: bool = False) -> Iterator[Transaction]:
        """A read-write transaction. On SQLite, one at a time in this process. A store that
        cannot be reached or fails under it raises StoreUnavailable; nothing is kept.
        `pipelined` (PostgreSQL): `Transaction.send` does not wait, and BEGIN travels with the
        first statement; no COPY inside."""
        conn = self._conn()
        with self._unavailable_on_driver_errors(conn):
            if self.dialect == "sqlite":
                if self._checkpointer is None:
                    self._start_checkpointer()
                with self._exclusive_writer():
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield Transaction(conn, "sqlite")
                    except BaseException:
                        with suppress(sqlite3.Error):  # SQLite may have rolled back already
                            conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
            elif pipelined:
                with _pg_pipelined(conn, commit_in_pipeline=False) as tx:
                    yield tx
            else:
                with conn.transaction():
                    yield Transaction(conn, "postgresql")

    def _start_checkpointer(self) -> None:
        with self._registry_lock:
            if self._checkpointer is None:
                assert self.url.path is not None
                self._checkpointer = _Checkpointer(
                    self.url.path, self._exclusive_writer, self._observe_checkpoint
                )

    def _observe_checkpoint(self, seconds: float) -> None:
        if self.on_checkpoint is not None:
            try:
                self.on_checkpoint(seconds)
            except Exception:  # counting must never stop the checkpoints
                log.exception("the checkpoint's observer failed")

    @contextmanager
    def _exclusive_writer(self) -> Iterator[None]:
        """SQLite's writer, this process's and the other processes': what a write, the
        scrub's VACUUM and the checkpointer's restart hold."""
        with self._write_lock, self._writer_file_lock():
            yield

    @contextmanager
    def _writer_file_lock(self) -> Iterator[None]:
        """The SQLite writer's lock across processes (held with `_write_lock`)."""
        fd = self._writer_fd
        if fd is None:
            assert self.url.path is not None
            fd = self._writer_fd = _open_beside(self.url.path, "-writer", os.O_RDWR)
        # Blocking would wait forever behind a stuck process; SQLite's own wait is bounded by
        # its busy timeout, so this one is too. Polled every millisecond or two (not SQLite's
        # growing sleeps), it still hands over almost as soon as the lock is free.
        deadline = time.monotonic() + WRITER_LOCK_TIMEOUT_S
        pause = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError(
                        f"database is locked: another process has been writing for over"
                        f" {WRITER_LOCK_TIMEOUT_S:g} s ({self.url.path}-writer)"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)
        try:
            yield
        finally:
            with suppress(OSError):  # closed by `close()` meanwhile, which released it too
                fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def read(self, *, pipelined: bool = False) -> Iterator[Transaction]:
        """A read-only snapshot (readers never wait for the writer); `pipelined` as for
        `write`."""
        conn = self._conn()
        with self._unavailable_on_driver_errors(conn):
            if self.dialect == "sqlite":
                conn.execute("BEGIN")
                try:
                    yield Transaction(conn, "sqlite")
                except BaseException:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            elif pipelined:
                with _pg_pipelined(conn, commit_in_pipeline=True) as tx:
                    yield tx
            else:
                with conn.transaction():
                    yield Transaction(conn, "postgresql")


@contextmanager
def _pg_pipelined(conn: Any, *, commit_in_pipeline: bool) -> Iterator[Transaction]:
    """A PostgreSQL transaction in psycopg's pipeline mode (the connection is in autocommit:
    BEGIN, COMMIT and ROLLBACK are ours). BEGIN travels with the first statements. Leaving
    the pipeline reads every answer not read yet, and raises the first error among them.

    `commit_in_pipeline` (a read-only transaction): COMMIT travels with that last exchange.
    Otherwise COMMIT is sent once every answer is in and none failed, and its answer is the
    last exchange: a connection lost after it cannot fail a transaction that was kept. (psycopg's
    own `transaction()` inside a pipeline syncs once more after the COMMIT, and BEGIN alone.)
    Any failure, the caller's or the server's, rolls back; a connection that cannot is left
    for `_pg_ready` to replace."""
    from psycopg import pq

    try:
        with conn.pipeline() as pipeline:
            conn.execute("BEGIN")
            yield Transaction(conn, "postgresql", pipeline)
            if commit_in_pipeline:
                conn.execute("COMMIT")
    except BaseException:
        if not conn.closed and conn.info.transaction_status != pq.TransactionStatus.IDLE:
            with suppress(Exception):  # a lost connection is replaced by `_conn`
                conn.execute("ROLLBACK")
        raise
    if not commit_in_pipeline:
        if conn.info.transaction_status != pq.TransactionStatus.INTRANS:
            # A statement failed and its error was caught inside: COMMIT would answer
            # ROLLBACK and say nothing. Nothing is kept, and the caller is told.
            with suppress(Exception):
                conn.execute("ROLLBACK")
            raise RuntimeError("a statement of this transaction failed: nothing was kept")
        conn.execute("COMMIT")
