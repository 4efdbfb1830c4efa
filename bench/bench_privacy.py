"""Retention and erasure at fleet scale (docs/privacy.md).

Run: `.venv/bin/python bench/bench_privacy.py [--devices 10000] [--rows 1000000]
[--store sqlite|postgresql|both]`. PostgreSQL comes from REGIONLOCK_BENCH_POSTGRES_URL or
REGIONLOCK_TEST_POSTGRES_URL (a scratch database is created and dropped).

Per store:
- register the devices and write the check-in rows, spread over 360 days, each device's days
  of presence in its state (not timed: the fixture);
- retention at 180 days: half the rows are older; chunks of 5,000, each one transaction that
  reads the rows, folds their days of presence into the states (here nothing to add, as in
  production) and deletes them;
- erasure of one device: the transaction, then the scrub (SQLite: VACUUM of the whole file and
  a truncating checkpoint; PostgreSQL: VACUUM of the tables touched).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_campaign import imei, register
from scratch import postgres_url, scratch_database

from regionlock.services.privacy import Privacy
from regionlock.storage import Database, Stores
from regionlock.storage.db import epoch_ms
from regionlock.storage.migrate import migrate

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def write_checkins(db: Database, devices: int, rows: int) -> None:
    with db.read() as tx:
        ids = [str(r[0]) for r in tx.all("SELECT id FROM devices ORDER BY id")]
    flags, kinds, reasons = json.dumps([]), json.dumps(["gps", "network"]), json.dumps([])
    step = 20_000
    for start in range(0, rows, step):
        batch = []
        for n in range(start, min(rows, start + step)):
            at = NOW - timedelta(days=360 * (1 - n / rows))  # ids rise with time, as live
            batch.append(
                (ids[n % devices], epoch_ms(at), n, f"n{n}", "AE", "AE-DU", 0.9, flags, kinds,
                 "allow", reasons, "p", "1")
            )  # fmt: skip
        with db.write() as tx:
            tx.executemany(
                "INSERT INTO checkins (device_id, at, counter, nonce, country, subdivision,"
                " confidence, flags, signal_kinds, verdict, reasons, policy_id, policy_version)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )


def one_store(url: str, devices: int, rows: int) -> None:
    db = Database(url)
    migrate(db)
    t = time.perf_counter()
    register(db, devices)
    write_checkins(db, devices, rows)
    print(f"  fixture: {devices:,} devices, {rows:,} check-ins in {time.perf_counter() - t:.1f} s")
    privacy = Privacy.of(Stores.on(db))
    t = time.perf_counter()
    report = privacy.run_retention(days=180, now=NOW)
    s = time.perf_counter() - t
    print(
        f"  retention: {report.deleted:,} rows deleted in {s:.1f} s"
        f" ({report.deleted / s:,.0f} rows/s), {report.devices_folded} states folded"
    )
    t = time.perf_counter()
    done = privacy.erase(imei(1), reason="bench", actor="bench", now=NOW)
    s = time.perf_counter() - t
    print(f"  erasure of one device with its scrub: {s:.2f} s ({done.claims['removed']})")
    db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args()
    if args.store in ("sqlite", "both"):
        print("sqlite")
        with tempfile.TemporaryDirectory() as d:
            one_store(f"sqlite:///{Path(d) / 'bench.db'}", args.devices, args.rows)
    if args.store in ("postgresql", "both"):
        server = postgres_url()
        if server is None:
            print("postgresql: skipped (no REGIONLOCK_BENCH_POSTGRES_URL)", file=sys.stderr)
            return
        print("postgresql")
        with scratch_database(server) as url:
            one_store(url, args.devices, args.rows)


if __name__ == "__main__":
    main()
