"""`investigate leaks --by batch` at fleet scale, beside DuckDB's raw scan of the same rows.

`.venv/bin/python bench/bench_investigate.py [--devices N] [--per-device K] [--keep DIR]`:
builds (or reuses, with --keep) the SQLite store of bench_investigate_export.py (1,000,000
devices in batches of 1,000, 10 check-ins each, one in seven in Iran), then times, each in
this process:
- cold: the first investigation, exporting the store into a new DuckDB cache file;
- warm: `leaks --by batch --country IR` again (the cache refreshed: nothing new), the
  question the issue benchmarks, through the service as the command runs it;
- the baseline, measured in the same run on the same cache: DuckDB's raw scan (check-ins
  joined with devices, grouped by batch), and the ratio warm / raw scan.
Peak RSS is the process's `ru_maxrss` after each step (it only grows).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
from bench_investigate_export import sqlite_fixture

from regionlock.services.investigations import Investigations, parse_question
from regionlock.storage import open_stores
from regionlock.storage.analytics import AnalyticsSource

RAW_SCAN = (
    "SELECT d.batch, count(*), count(DISTINCT c.device_id),"
    " count(*) FILTER (WHERE c.country = 'IR')"
    " FROM checkins c JOIN devices d ON d.id = c.device_id GROUP BY d.batch"
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--per-device", type=int, default=10)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-investigate-") as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        store = where / f"fleet-{args.devices}x{args.per_device}.db"
        if not store.exists():
            t = time.perf_counter()
            sqlite_fixture(store, args.devices, args.per_device)
            print(f"fixture: {time.perf_counter() - t:.1f} s", flush=True)
        cache = Path(tmp) / "investigate.duckdb"
        stores = open_stores(f"sqlite:///{store}")
        try:
            source = AnalyticsSource(stores.db, cache)
            service = Investigations(source, stores.policies)
            question = parse_question(["IR"])
            t = time.perf_counter()
            cold = service.leaks("batch", question)
            cold_s = time.perf_counter() - t
            print(f"cold (export + leaks): {cold_s:.1f} s, peak RSS {rss_mb():,.0f} MB", flush=True)
            times = []
            for _ in range(3):
                t = time.perf_counter()
                warm = service.leaks("batch", question)
                times.append(time.perf_counter() - t)
            warm_s = sorted(times)[1]
            print(
                f"warm (refresh + leaks), median of 3: {warm_s:.2f} s, peak RSS {rss_mb():,.0f} MB"
            )
            con = duckdb.connect(str(cache))
            con.execute("SET memory_limit = '1GB'")
            scans = []
            for _ in range(3):
                t = time.perf_counter()
                con.execute(RAW_SCAN).fetchall()
                scans.append(time.perf_counter() - t)
            con.close()
            scan_s = sorted(scans)[1]
            print(f"raw scan, median of 3: {scan_s:.2f} s")
            print(f"ratio warm / raw scan: {warm_s / scan_s:.1f}x")
            flagged = sum(r.flagged for r in warm.rows)
            print(
                f"groups: {len(warm.rows)}, flagged: {flagged},"
                f" same as cold: {warm.rows == cold.rows}"
            )
        finally:
            stores.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
