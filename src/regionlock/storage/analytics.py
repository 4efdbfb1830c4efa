"""The check-ins and the registry in DuckDB, for investigations (issue 13).

DuckDB reads neither store directly here: its sqlite and postgres extensions are downloaded on
first use, and nothing is downloaded at run time. So the rows are exported: streamed out of the
store in chunks and appended to a DuckDB database, which then answers the aggregations
(bench/README.md, "Investigations: the data path": how each way of moving them was measured).
From SQLite the rows pass through Python into DuckDB's appender; from PostgreSQL the check-ins
come as `COPY ... TO STDOUT` CSV, through a temporary file, without becoming Python objects.

Tables, both dialects alike (times are UTC, as naive TIMESTAMPs):
- `checkins`: id, device_id, checkin_at (the store's `at`, a keyword in DuckDB), country,
  subdivision, subdivision_candidates (list), confidence, flags, signal_kinds, verdict,
  reasons (lists), policy_id, policy_version.
- `devices`: the registry (id, serial, model, sku, sales_region, distributor, batch,
  manufactured, shipped, imeis as a list in slot order) and the state's first activation
  (first_country, first_subdivision). Nothing else of the state: where a device is, and since
  when, investigations read from its check-ins.

Refresh rule for a cache file (`path`): check-ins are only ever appended, with increasing ids,
so a refresh appends those above the highest id loaded, then compares the count with the
store's; any difference (a PostgreSQL transaction that committed an id below the highest one
after the last refresh, a store restored from a backup) reloads them all. Device states change
in place, but of a state only the first activation is kept here, and it is set once, never
changed (`DeviceState.may_activate`), and records never change once imported: so the devices
are read anew, all of them, whenever their count or the number with a first activation
differs from the last refresh; otherwise they are not read at all (a live fleet's check-ins
change neither).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb

from regionlock.domain.errors import DataUnavailable
from regionlock.storage.db import Database, Transaction

# Rows per chunk streamed out of the store: memory stays flat, progress moves. A PostgreSQL
# chunk goes through a temporary CSV file (~150 bytes a row), not through Python objects.
CHUNK_ROWS = 200_000
COPY_ROWS = 1_000_000

Progress = Callable[[str, int, int], None]
"""Called as rows arrive: (table, rows loaded so far, rows in all)."""

CHECKIN_COLUMNS = (
    "id, device_id, at, country, subdivision, subdivision_candidates, confidence, flags,"
    " signal_kinds, verdict, reasons, policy_id, policy_version"
)
# As the store keeps them, in the order of CHECKIN_COLUMNS (the stage's types).
_CHECKINS_STAGE = (
    "id BIGINT, device_id VARCHAR, checkin_at BIGINT, country VARCHAR, subdivision VARCHAR,"
    " subdivision_candidates VARCHAR, confidence DOUBLE, flags VARCHAR, signal_kinds VARCHAR,"
    " verdict VARCHAR, reasons VARCHAR, policy_id VARCHAR, policy_version VARCHAR"
)
# The same, as read_csv's `columns` struct.
_CSV_COLUMNS = ", ".join(
    f"'{name}': '{kind}'" for name, kind in (c.split() for c in _CHECKINS_STAGE.split(", "))
)
_CHECKINS_TABLE = """
CREATE TABLE IF NOT EXISTS checkins (
    id BIGINT NOT NULL,
    device_id VARCHAR NOT NULL,
    checkin_at TIMESTAMP NOT NULL,
    country VARCHAR,
    subdivision VARCHAR,
    subdivision_candidates VARCHAR[] NOT NULL,
    confidence DOUBLE NOT NULL,
    flags VARCHAR[] NOT NULL,
    signal_kinds VARCHAR[] NOT NULL,
    verdict VARCHAR NOT NULL,
    reasons VARCHAR[] NOT NULL,
    policy_id VARCHAR,
    policy_version VARCHAR
)"""
# From the stage's text to typed columns; JSON lists parsed by DuckDB, not in Python.
_CHECKINS_FROM_STAGE = """
INSERT INTO checkins SELECT
    id, device_id, epoch_ms(checkin_at), country, subdivision,
    CASE WHEN subdivision_candidates IS NULL THEN []::VARCHAR[]
         ELSE string_split(subdivision_candidates, '|') END,
    confidence,
    from_json(flags, '["VARCHAR"]'), from_json(signal_kinds, '["VARCHAR"]'),
    verdict, from_json(reasons, '["VARCHAR"]'), policy_id, policy_version
FROM {stage}"""

# The state's first subdivision, by dialect (first_country is a column, kept in step with the
# state by every save: storage/devices.py).
_FIRST = {
    "sqlite": "json_extract(state, '$.first_subdivision')",
    "postgresql": "state::jsonb ->> 'first_subdivision'",
}
_DEVICES_STAGE = (
    "id VARCHAR, serial VARCHAR, model VARCHAR, sku VARCHAR, sales_region VARCHAR,"
    " distributor VARCHAR, batch VARCHAR, manufactured VARCHAR, shipped VARCHAR,"
    " first_country VARCHAR, first_subdivision VARCHAR"
)
_IMEIS_STAGE = "device_id VARCHAR, imei VARCHAR, slot BIGINT"
_DEVICES_TABLE = """
CREATE OR REPLACE TABLE devices AS SELECT
    d.id, d.serial, d.model, d.sku, d.sales_region, d.distributor, d.batch,
    CAST(d.manufactured AS DATE) AS manufactured, CAST(d.shipped AS DATE) AS shipped,
    COALESCE(i.imeis, []::VARCHAR[]) AS imeis,
    d.first_country, d.first_subdivision
FROM devices_stage AS d
LEFT JOIN (
    SELECT device_id, list(imei ORDER BY slot) AS imeis FROM imeis_stage GROUP BY device_id
) AS i ON i.device_id = d.id
ORDER BY d.id"""


# Which store the tables came from, and the devices' count and how many had a first activation
# when `devices` was built (NULL: not built yet).
_STATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS export_source (source VARCHAR, format INTEGER,"
    " devices BIGINT, activated BIGINT)"
)
# Bumped when the tables above change: a cache file of another format is loaded anew.
FORMAT = 2


def checkins_select() -> str:
    """The store's check-ins with ids in (?, ?], in id order, at most ? of them."""
    return f"SELECT {CHECKIN_COLUMNS} FROM checkins WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"


def devices_select(dialect: str) -> str:
    """The store's devices after id ?, in id order, at most ? of them."""
    return (
        "SELECT id, serial, model, sku, sales_region, distributor, batch, manufactured,"
        f" shipped, first_country, {_FIRST[dialect]} FROM devices WHERE id > ? ORDER BY id LIMIT ?"
    )


IMEIS_SELECT = "SELECT device_id, imei, slot FROM device_imeis WHERE imei > ? ORDER BY imei LIMIT ?"


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a refresh did: check-ins appended (`reloaded`: all of them, anew), devices read
    (0 when none had changed)."""

    checkins: int
    devices: int
    reloaded: bool


def open_analytics(
    db: Database,
    path: Path | None = None,
    *,
    progress: Progress | None = None,
    memory_limit: str = "1GB",
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose `checkins` and `devices` hold the store's rows, refreshed
    now: in memory, or in the cache file `path` (created if missing; see the module's refresh
    rule). `memory_limit` bounds DuckDB's own memory (it spills to disk beyond it)."""
    con = duckdb.connect(str(path) if path is not None else ":memory:")
    try:
        con.execute(f"SET memory_limit = '{memory_limit}'")
        refresh(db, con, progress=progress)
    except BaseException:
        con.close()
        raise
    return con


def refresh(
    db: Database, con: duckdb.DuckDBPyConnection, *, progress: Progress | None = None
) -> Loaded:
    """Bring `con`'s tables up to date with the store (the module's refresh rule)."""
    source = _source_name(db)
    con.execute(_STATE_TABLE)
    con.execute(_CHECKINS_TABLE)
    known = con.execute("SELECT source, format FROM export_source").fetchall()
    if known != [(source, FORMAT)]:
        _drop(con)
        con.execute("DELETE FROM export_source")
        con.execute("INSERT INTO export_source VALUES (?, ?, NULL, NULL)", [source, FORMAT])
    with db.read() as tx:
        high, total = _count(tx)
    have_high, have = _loaded(con)
    reloaded = have_high > high or have > total
    if reloaded:  # the store lost rows (restored from a backup): start again
        con.execute("DELETE FROM checkins")
        have_high, have = 0, 0
    appended = _load_checkins(db, con, have_high, high, have, total, progress)
    if _loaded(con)[1] != total:
        # An id below the highest one committed after it was read (PostgreSQL hands ids out
        # at insert, not at commit): the prefix is not whole, so read everything again.
        con.execute("DELETE FROM checkins")
        appended = _load_checkins(db, con, 0, high, 0, total, progress)
        reloaded = True
    with db.read() as tx:
        row = tx.one("SELECT count(*), count(first_country) FROM devices")
    assert row is not None
    count, activated = int(row[0]), int(row[1])
    devices = 0
    have_devices = con.execute("SELECT devices, activated FROM export_source").fetchall()
    if have_devices != [(count, activated)]:
        devices = _load_devices(db, con, count, progress)
        con.execute("UPDATE export_source SET devices = ?, activated = ?", [count, activated])
    return Loaded(appended, devices, reloaded)


def _source_name(db: Database) -> str:
    """Which store a cache file was loaded from (no password: the URL's host and path)."""
    if db.url.path is not None:
        return f"sqlite:{db.url.path.resolve()}"
    parts = urlparse(db.url.url)
    return f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}#{db.schema or ''}"


def _drop(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE IF EXISTS checkins")
    con.execute("DROP TABLE IF EXISTS devices")
    con.execute(_CHECKINS_TABLE)


def _count(tx: Transaction) -> tuple[int, int]:
    row = tx.one("SELECT COALESCE(max(id), 0), count(*) FROM checkins")
    assert row is not None
    return int(row[0]), int(row[1])


def _loaded(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    row = con.execute("SELECT COALESCE(max(id), 0), count(*) FROM checkins").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _load_checkins(
    db: Database,
    con: duckdb.DuckDBPyConnection,
    after: int,
    high: int,
    have: int,
    total: int,
    progress: Progress | None,
) -> int:
    """Append the store's check-ins with ids in (after, high], a chunk per read transaction
    (a long read would hold SQLite's log back from its checkpoints)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE checkins_stage ({_CHECKINS_STAGE})")
    done = 0
    with tempfile.TemporaryDirectory(prefix="regionlock-export-") as tmp:
        chunk = Path(tmp) / "checkins.csv"
        while True:
            if db.dialect == "postgresql":
                rows = _copy_chunk(db, con, chunk, after, high)
            else:
                rows = _append_chunk(db, con, after, high)
            if not rows:
                break
            after = _stage_high(con)
            con.execute(_CHECKINS_FROM_STAGE.format(stage="checkins_stage"))
            con.execute("DELETE FROM checkins_stage")
            done += rows
            if progress is not None:
                progress("checkins", have + done, total)
    con.execute("DROP TABLE checkins_stage")
    return done


def _append_chunk(db: Database, con: duckdb.DuckDBPyConnection, after: int, high: int) -> int:
    """SQLite: a chunk of rows through Python, into DuckDB's appender."""
    with db.read() as tx:
        rows = tx.all(checkins_select(), (after, high, CHUNK_ROWS))
    if rows:
        _append(con, "checkins_stage", rows)
    return len(rows)


def _copy_chunk(
    db: Database, con: duckdb.DuckDBPyConnection, path: Path, after: int, high: int
) -> int:
    """PostgreSQL: a chunk as COPY's CSV, written to `path` in blocks, read by DuckDB (1.5x
    as fast as the rows through Python: bench/README.md)."""
    with db.read() as tx, path.open("wb") as out:
        for block in tx.copy_out(checkins_select(), (after, high, COPY_ROWS)):
            out.write(block)
    con.execute(
        f"INSERT INTO checkins_stage SELECT * FROM read_csv(?, header = false, columns = {{"
        f"{_CSV_COLUMNS}}}, auto_detect = false, delim = ',', nullstr = '\\N',"
        " quote = '\"', escape = '\"', allow_quoted_nulls = false)",
        [str(path)],
    )
    row = con.execute("SELECT count(*) FROM checkins_stage").fetchone()
    return int(row[0]) if row else 0


def _stage_high(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT max(id) FROM checkins_stage").fetchone()
    assert row is not None
    return int(row[0])


def _load_devices(
    db: Database, con: duckdb.DuckDBPyConnection, total: int, progress: Progress | None
) -> int:
    """Read every device and IMEI anew (states change in place) and build `devices`."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE devices_stage ({_DEVICES_STAGE})")
    con.execute(f"CREATE OR REPLACE TEMP TABLE imeis_stage ({_IMEIS_STAGE})")
    done = 0
    for table, sql, key in (
        ("devices_stage", devices_select(db.dialect), 0),
        ("imeis_stage", IMEIS_SELECT, 1),
    ):
        after = ""
        while True:
            with db.read() as tx:
                rows = tx.all(sql, (after, CHUNK_ROWS))
            if not rows:
                break
            _append(con, table, rows)
            after = str(rows[-1][key])
            if table == "devices_stage":
                done += len(rows)
                if progress is not None:
                    progress("devices", done, total)
    con.execute(_DEVICES_TABLE)
    con.execute("DROP TABLE devices_stage")
    con.execute("DROP TABLE imeis_stage")
    return done


def _append(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[Any, ...]]) -> None:
    appender = con.appender(table)
    appender.append_rows(rows)
    appender.flush()


# How long to wait for another process's investigation to release the cache file (DuckDB lets
# one process at a time open a database file for writing).
LOCK_WAIT_S = 30.0


class AnalyticsSource:
    """Where investigations get their DuckDB tables: the store `db`, exported into the cache
    file `cache` (None: into memory, read in full every time). Built once with the stores."""

    def __init__(self, db: Database, cache: Path | None, *, memory_limit: str = "1GB") -> None:
        self.db = db
        self.cache = cache
        self.memory_limit = memory_limit

    @contextmanager
    def open(self, progress: Progress | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection whose tables are up to date with the store; closed on exit. Another
        process holding the cache file is waited for up to LOCK_WAIT_S, then Unavailable."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                if self.cache is not None:
                    self.cache.parent.mkdir(parents=True, exist_ok=True)
                con = open_analytics(
                    self.db, self.cache, progress=progress, memory_limit=self.memory_limit
                )
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise DataUnavailable(f"investigation cache {self.cache}: {exc}") from exc
                if time.monotonic() > deadline:
                    raise DataUnavailable(
                        f"investigation cache {self.cache} is in use by another process; "
                        "retry when its investigation has finished"
                    ) from exc
                time.sleep(0.2)
        try:
            yield con
        finally:
            con.close()

    def discard(self) -> bool:
        """Delete the cache file (and its log), e.g. after an erasure: it holds copies of the
        registry and the check-ins, and the next investigation rebuilds it. Whether there was
        one. A process that has it open keeps its copy until it closes it."""
        if self.cache is None:
            return False
        found = False
        for path in (self.cache, self.cache.with_name(self.cache.name + ".wal")):
            try:
                path.unlink()
                found = True
            except FileNotFoundError:
                pass
        return found


def default_cache(db: Database) -> Path:
    """The cache file beside a SQLite store (`<store>.investigate.duckdb`); for PostgreSQL,
    under the user's cache directory ($XDG_CACHE_HOME, else ~/.cache), one per database."""
    if db.url.path is not None:
        return db.url.path.with_name(db.url.path.name + ".investigate.duckdb")
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(_source_name(db).encode()).hexdigest()[:16]
    return base / "regionlock" / f"investigate-{key}.duckdb"
