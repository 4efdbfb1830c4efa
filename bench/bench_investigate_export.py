"""How the check-ins and the registry get from the store into DuckDB (issue 13): each way of
moving the rows, timed, with its peak memory; then DuckDB's raw scan of the rows once loaded.

Run: `.venv/bin/python bench/bench_investigate_export.py [--devices 1000000] [--per-device 10]
[--store sqlite|postgresql|both] [--keep DIR]`. PostgreSQL comes from
REGIONLOCK_BENCH_POSTGRES_URL or REGIONLOCK_TEST_POSTGRES_URL (a scratch database is created
and dropped). `--keep DIR` keeps the SQLite fixture there and reuses it on the next run.

The fixture is written straight in SQL (a recursive CTE on SQLite, generate_series on
PostgreSQL) into the migrated schema: N devices (batches of 1,000; a tenth with two IMEIs; a
state JSON with a first activation and a week of presence) and `per-device` check-ins each.

Each candidate runs in a process of its own (peak RSS is that process's `ru_maxrss`), loads
the check-ins into a DuckDB file with the typed table of `storage/analytics.py` (JSON lists
parsed by DuckDB), in chunks of `CHUNK_ROWS`:
- sqlite-appender: sqlite3 cursor -> `DuckDBPyConnection.appender(...).append_rows`
- sqlite-numpy: sqlite3 cursor -> columns -> a dict of NumPy arrays, read by DuckDB
- sqlite-csv: sqlite3 cursor -> `csv.writer` -> a temporary file -> `read_csv`
- sqlite-executemany: sqlite3 cursor -> `executemany(INSERT ...)` (first 20,000 rows only)
- pg-copy-csv: `COPY (SELECT ...) TO STDOUT (FORMAT csv)` -> a temporary file -> `read_csv`
- pg-appender, pg-numpy: a server-side psycopg cursor instead of the sqlite3 one
Then `storage/analytics.py` itself into a new file: `load` (everything: the check-ins as
pg-copy-csv on PostgreSQL and as keyset chunks into the appender on SQLite, the devices and
IMEIs through the appender), `refresh` (nothing changed), `refresh-devices` (one device's state
version bumped beforehand, untimed: every device read again), and `scan`: on the loaded file,
a count by batch over check-ins joined with devices.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from scratch import postgres_url, scratch_database

from regionlock.storage import Database
from regionlock.storage.analytics import (
    _CHECKINS_FROM_STAGE,
    _CHECKINS_STAGE,
    _CHECKINS_TABLE,
    CHECKIN_COLUMNS,
    CHUNK_ROWS,
)
from regionlock.storage.migrate import migrate

STATE = (
    '{"first_country":"AE","first_seen_at":"2026-11-01T09:00:00+00:00",'
    '"first_subdivision":null,"last_country":"AE","presence":{"2026-11-01":["AE"],'
    '"2026-11-02":["AE"],"2026-11-03":["AE","AE-DU"],"2026-11-04":["AE"],'
    '"2026-11-05":["AE"],"2026-11-06":["AE"],"2026-11-07":["AE"]}}'
)


def sqlite_fixture(path: Path, devices: int, per_device: int) -> None:
    import sqlite3

    db = Database(f"sqlite:///{path}")
    migrate(db)
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(f"""
    BEGIN;
    WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {devices - 1})
    INSERT INTO devices (id, serial, model, sku, sales_region, distributor, batch, tac,
        manufactured, shipped, public_key, record_digest, created_at, state, state_version,
        last_verdict, last_country, last_checkin_at, first_country, seen_in)
    SELECT printf('dev_%024d', i), 'SN' || i, 'M' || (i % 20), NULL, 'AE', 'D' || (i / 20000),
        'B' || (i / 1000), '35693803', '2026-10-01', NULL, zeroblob(32), '', 0, '{STATE}', 7,
        'allow', 'AE', 1764000000000, 'AE', ',AE,'
    FROM s;
    WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {devices - 1})
    INSERT INTO device_imeis (imei, device_id, slot)
    SELECT printf('35%013d', i * 2 + k.slot), printf('dev_%024d', i), k.slot
    FROM s, (SELECT 0 AS slot UNION ALL SELECT 1) AS k WHERE k.slot = 0 OR i % 10 = 0;
    WITH RECURSIVE s(i) AS (
        SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {devices * per_device - 1})
    INSERT INTO checkins (device_id, at, counter, nonce, country, subdivision, confidence,
        flags, signal_kinds, verdict, reasons, policy_id, policy_version,
        subdivision_candidates)
    SELECT printf('dev_%024d', i / {per_device}), 1764000000000 + i * 60000, i % {per_device},
        'n' || i, CASE WHEN i % 7 = 0 THEN 'IR' ELSE 'AE' END,
        CASE WHEN i % 3 = 0 THEN NULL ELSE 'AE-DU' END, 0.9,
        CASE WHEN i % 11 = 0 THEN '["vpn"]' ELSE '[]' END, '["cell","ip"]',
        CASE WHEN i % 7 = 0 THEN 'warn' ELSE 'allow' END, '["policy.allowed"]',
        'gray-market', '2021.1', NULL
    FROM s;
    COMMIT;
    """)
    conn.close()


def pg_fixture(url: str, devices: int, per_device: int) -> None:
    import psycopg

    db = Database(url)
    migrate(db)
    db.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"""
        INSERT INTO devices (id, serial, model, sku, sales_region, distributor, batch, tac,
            manufactured, shipped, public_key, record_digest, created_at, state, state_version,
            last_verdict, last_country, last_checkin_at, first_country, seen_in)
        SELECT 'dev_' || lpad(i::text, 24, '0'), 'SN' || i, 'M' || (i % 20), NULL, 'AE',
            'D' || (i / 20000), 'B' || (i / 1000), '35693803', '2026-10-01', NULL,
            '\\x00'::bytea, '', 0, '{STATE}', 7, 'allow', 'AE', 1764000000000, 'AE', ',AE,'
        FROM generate_series(0, {devices - 1}) AS i""")
        conn.execute(f"""
        INSERT INTO device_imeis (imei, device_id, slot)
        SELECT '35' || lpad((i * 2 + k)::text, 13, '0'), 'dev_' || lpad(i::text, 24, '0'), k
        FROM generate_series(0, {devices - 1}) AS i, generate_series(0, 1) AS k
        WHERE k = 0 OR i % 10 = 0""")
        conn.execute(f"""
        INSERT INTO checkins (device_id, at, counter, nonce, country, subdivision, confidence,
            flags, signal_kinds, verdict, reasons, policy_id, policy_version,
            subdivision_candidates)
        SELECT 'dev_' || lpad((i / {per_device})::text, 24, '0'), 1764000000000 + i * 60000,
            i % {per_device}, 'n' || i, CASE WHEN i % 7 = 0 THEN 'IR' ELSE 'AE' END,
            CASE WHEN i % 3 = 0 THEN NULL ELSE 'AE-DU' END, 0.9,
            CASE WHEN i % 11 = 0 THEN '["vpn"]' ELSE '[]' END, '["cell","ip"]',
            CASE WHEN i % 7 = 0 THEN 'warn' ELSE 'allow' END, '["policy.allowed"]',
            'gray-market', '2021.1', NULL
        FROM generate_series(0::bigint, {devices * per_device - 1}) AS i""")
        conn.execute("VACUUM ANALYZE")


# --- candidates (each run in a process of its own) ------------------------------------------


def _duck(out: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(out))
    con.execute("SET threads = 2")
    con.execute("SET memory_limit = '1GB'")
    con.execute(_CHECKINS_TABLE)
    con.execute(f"CREATE TEMP TABLE stage ({_CHECKINS_STAGE})")
    return con


def _stage_to_table(con: duckdb.DuckDBPyConnection, stage: str = "stage") -> None:
    con.execute(_CHECKINS_FROM_STAGE.format(stage=stage))
    if stage == "stage":
        con.execute("DELETE FROM stage")


def _source_cursor(url: str) -> tuple[Any, Any]:
    """A cursor over every check-in, in id order (server-side on PostgreSQL)."""
    sql = f"SELECT {CHECKIN_COLUMNS} FROM checkins WHERE id > ? ORDER BY id"
    if url.startswith("sqlite"):
        import sqlite3

        lite = sqlite3.connect(url[len("sqlite:///") :])
        return lite, lite.execute(sql, (0,))
    import psycopg

    conn = psycopg.connect(url)
    cur = conn.cursor("export")
    cur.itersize = CHUNK_ROWS
    cur.execute(sql.replace("?", "%s"), (0,))
    return conn, cur


def run_appender(url: str, out: Path, limit: int) -> int:
    con = _duck(out)
    _, cur = _source_cursor(url)
    n = 0
    while rows := cur.fetchmany(CHUNK_ROWS):
        app = con.appender("stage")
        app.append_rows(rows)
        app.flush()
        _stage_to_table(con)
        n += len(rows)
    return n


_KINDS = [np.int64, object, np.int64] + [object] * 3 + [np.float64] + [object] * 6


def run_numpy(url: str, out: Path, limit: int) -> int:
    con = _duck(out)
    _, cur = _source_cursor(url)
    names = [c.split()[0] for c in _CHECKINS_STAGE.split(", ")]
    n = 0
    while rows := cur.fetchmany(CHUNK_ROWS):
        cols = zip(*rows, strict=True)
        chunk = {
            name: np.array(col, dtype=kind)
            for name, col, kind in zip(names, cols, _KINDS, strict=True)
        }
        con.register("chunk", chunk)
        _stage_to_table(con, "chunk")
        con.unregister("chunk")
        n += len(rows)
    return n


def _read_csv(con: duckdb.DuckDBPyConnection, path: str) -> None:
    columns = ", ".join(f"'{c.split()[0]}': '{c.split()[1]}'" for c in _CHECKINS_STAGE.split(", "))
    con.execute(
        f"INSERT INTO stage SELECT * FROM read_csv('{path}', header = false,"
        f" columns = {{{columns}}}, nullstr = '\\N', quote = '\"', escape = '\"')"
    )
    _stage_to_table(con)


def run_csv(url: str, out: Path, limit: int) -> int:
    con = _duck(out)
    _, cur = _source_cursor(url)
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "chunk.csv")
        while rows := cur.fetchmany(CHUNK_ROWS * 5):
            with open(path, "w", newline="", encoding="utf-8") as f:
                # None -> \N (DuckDB's nullstr), so that "" stays an empty string.
                w = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
                w.writerows([["\\N" if v is None else v for v in r] for r in rows])
            _read_csv(con, path)
            n += len(rows)
    return n


def run_executemany(url: str, out: Path, limit: int) -> int:
    con = _duck(out)
    _, cur = _source_cursor(url)
    rows = cur.fetchmany(limit)
    marks = ", ".join("?" * len(rows[0]))
    con.executemany(f"INSERT INTO stage VALUES ({marks})", rows)
    _stage_to_table(con)
    return len(rows)


def run_pg_copy_csv(url: str, out: Path, limit: int) -> int:
    import psycopg

    con = _duck(out)
    n = 0
    with psycopg.connect(url) as conn, tempfile.TemporaryDirectory() as tmp:
        high = conn.execute("SELECT COALESCE(max(id), 0) FROM checkins").fetchone()
        assert high is not None
        path = os.path.join(tmp, "chunk.csv")
        step = CHUNK_ROWS * 5
        for low in range(0, int(high[0]), step):
            sql = (
                f"SELECT {CHECKIN_COLUMNS} FROM checkins"
                f" WHERE id > {low} AND id <= {low + step} ORDER BY id"
            )
            with (
                open(path, "wb") as f,
                conn.cursor().copy(f"COPY ({sql}) TO STDOUT (FORMAT csv, NULL '\\N')") as copy,
            ):
                for block in copy:
                    f.write(block)
            _read_csv(con, path)
        n = con.execute("SELECT count(*) FROM checkins").fetchone()[0]  # type: ignore[index]
    return int(n)


def run_scan(url: str, out: Path, limit: int) -> int:
    """DuckDB's raw scan of the loaded rows: check-ins joined with devices, by batch."""
    con = duckdb.connect(str(out))
    con.execute("SET threads = 2")
    con.execute("SET memory_limit = '1GB'")
    rows = con.execute(
        "SELECT d.batch, count(*), count(DISTINCT c.device_id),"
        " count(*) FILTER (WHERE c.country = 'IR')"
        " FROM checkins c JOIN devices d ON d.id = c.device_id GROUP BY d.batch"
    ).fetchall()
    return len(rows)


CANDIDATES = {
    "sqlite-appender": run_appender,
    "sqlite-numpy": run_numpy,
    "sqlite-csv": run_csv,
    "sqlite-executemany": run_executemany,
    "pg-copy-csv": run_pg_copy_csv,
    "pg-appender": run_appender,
    "pg-numpy": run_numpy,
}


def child(name: str, url: str, out: Path, limit: int) -> None:
    t = time.perf_counter()
    if name == "scan":
        rows = run_scan(url, out, limit)
    elif name in ("load", "refresh", "refresh-devices"):
        from regionlock.storage import open_database
        from regionlock.storage.analytics import open_analytics

        db = open_database(url, migrate_sqlite=False)
        if name == "refresh-devices":
            with db.write() as tx:
                tx.execute(
                    "UPDATE devices SET state_version = state_version + 1 WHERE id = ?",
                    ("dev_" + "0" * 24,),
                )
            t = time.perf_counter()
        con = open_analytics(db, out)
        table = "checkins" if name == "load" else "devices"
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    else:
        rows = CANDIDATES[name](url, out, limit)
    seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "rss_mb": rss}))


def measure(name: str, url: str, out: Path, limit: int = 0) -> dict[str, Any]:
    if name not in ("scan", "refresh", "refresh-devices") and out.exists():
        out.with_name(out.name + ".wal").unlink(missing_ok=True)
        out.unlink()
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            name,
            "--url",
            url,
            "--out",
            str(out),
            "--limit",
            str(limit),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"  {name}: failed: {proc.stderr.strip().splitlines()[-1:]}")
        return {}
    r: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"  {name:20} {r['rows']:>11,} rows {r['seconds']:8.1f} s"
        f" {r['rows'] / r['seconds']:>11,.0f} rows/s  peak RSS {r['rss_mb']:6.0f} MB",
        flush=True,
    )
    return r


def bench_store(url: str, names: list[str], out: Path) -> None:
    for name in names:
        measure(name, url, out, limit=20_000 if name.endswith("executemany") else 0)
    # The module's load stays in `out` for the refreshes and the scan.
    measure("load", url, out)
    measure("refresh", url, out)
    measure("refresh-devices", url, out)
    measure("scan", url, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--per-device", type=int, default=10)
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--only", nargs="*", default=None, help="candidates to run")
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.out, args.limit)
        return 0
    n, per = args.devices, args.per_device
    print(f"{n:,} devices, {n * per:,} check-ins; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "analytics.duckdb"
        if args.store in ("sqlite", "both"):
            where = args.keep or Path(tmp)
            where.mkdir(parents=True, exist_ok=True)
            path = where / f"fixture-{n}-{per}.db"
            if not path.exists():
                t = time.perf_counter()
                sqlite_fixture(path, n, per)
                print(f"SQLite fixture: {time.perf_counter() - t:.0f} s")
            print(f"SQLite ({path.stat().st_size / 1e9:.1f} GB)")
            names = [c for c in CANDIDATES if c.startswith("sqlite")]
            bench_store(f"sqlite:///{path}", [c for c in names if c in (args.only or names)], out)
        if args.store in ("postgresql", "both"):
            pg = postgres_url()
            if not pg:
                print("PostgreSQL: skipped (set REGIONLOCK_BENCH_POSTGRES_URL)")
                return 0
            with scratch_database(pg) as url:
                t = time.perf_counter()
                pg_fixture(url, n, per)
                print(f"PostgreSQL (fixture: {time.perf_counter() - t:.0f} s)")
                names = [c for c in CANDIDATES if c.startswith("pg")]
                bench_store(url, [c for c in names if c in (args.only or names)], out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
