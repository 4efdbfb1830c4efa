"""A lock campaign over the whole fleet: dry run, create (frozen targets), apply; beside the raw
rate of the same number of row updates without the campaign machinery.

Run: `.venv/bin/python bench/bench_campaign.py [--n 1000000] [--store sqlite|postgresql|both]`
(`make bench` runs it with a smaller fleet). PostgreSQL comes from REGIONLOCK_BENCH_POSTGRES_URL
or REGIONLOCK_TEST_POSTGRES_URL (a scratch database is created and dropped).

Per store:
- register N devices through the device store (not timed: it is the fixture);
- dry run over the whole fleet (counted in the store), peak Python memory by tracemalloc;
- create: the target set frozen, one row per device;
- apply: the runner, chunk by chunk: every device's state changed, one audit entry each, the
  targets marked, one transaction per chunk;
- baseline: the same number of `UPDATE devices SET state = ...` statements, in transactions of
  the same size, with the state JSON prepared beforehand: what storing the change costs with
  no reading, no decision, no audit and no checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from scratch import postgres_url, scratch_database

from regionlock.domain.campaign import CampaignAction, Selection
from regionlock.domain.device import DeviceRecord, DeviceState, ManualLock, parse_imei
from regionlock.services.campaigns import CHUNK, Campaigns
from regionlock.storage import Database, Stores
from regionlock.storage.devices import state_to_json
from regionlock.storage.migrate import migrate

NOW = datetime(2026, 12, 1, tzinfo=UTC)
KEY = bytes(32)


def imei(n: int) -> str:
    body = f"35{n:012d}"
    total = 0
    for i, ch in enumerate(body):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def register(db: Database, n: int) -> None:
    stores = Stores.on(db)
    id_key = stores.devices.device_id_key()
    step = 5000
    for start in range(0, n, step):
        records = [
            DeviceRecord.create(
                imeis=(parse_imei(imei(i)),),
                id_key=id_key,
                serial=f"S{i}",
                model="X1",
                sales_region=("AE", "EU", "GLOBAL")[i % 3],
                distributor=f"D{i % 7}",
                batch=f"B{i % 50}",
                public_key=KEY,
            )
            for i in range(start, min(n, start + step))
        ]
        with db.write() as tx:
            stores.devices.import_batch(tx, records, at=0)


def baseline(db: Database, n: int, chunk: int) -> float:
    """Seconds to store N prepared states, `chunk` per transaction (then put back)."""
    with db.read() as tx:
        ids = [str(r[0]) for r in tx.all("SELECT id FROM devices ORDER BY id")]
    lock = ManualLock("baseline", "bench", NOW, campaign="cmp_baseline")
    text = state_to_json(DeviceState(manual_lock=lock))
    t = time.perf_counter()
    for i in range(0, n, chunk):
        with db.write() as tx:
            tx.executemany(
                "UPDATE devices SET state = ?, state_version = state_version + 1 WHERE id = ?",
                [(text, d) for d in ids[i : i + chunk]],
            )
    seconds = time.perf_counter() - t
    with db.write() as tx:
        tx.execute("UPDATE devices SET state = '{}'")
    return seconds


def one_store(url: str, n: int, chunk: int) -> dict[str, float]:
    db = Database(url)
    migrate(db)
    t = time.perf_counter()
    register(db, n)
    print(f"  registered {n:,} devices in {time.perf_counter() - t:.1f} s (fixture, not judged)")
    raw = baseline(db, n, chunk)
    svc = Campaigns.of(Stores.on(db))
    everything = Selection.parse([])
    tracemalloc.start()
    t = time.perf_counter()
    preview = svc.dry_run(everything)
    dry = time.perf_counter() - t
    dry_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    assert preview.devices == n, preview.devices
    t = time.perf_counter()
    c = svc.create(
        name="bench",
        action=CampaignAction.LOCK,
        reason="bench",
        selection=everything,
        actor="bench",
        now=NOW,
    )
    created = time.perf_counter() - t
    create_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    svc.start(c.id, actor="bench", now=NOW)
    t = time.perf_counter()
    report = svc.run(c.id, owner="bench", chunk=chunk)
    applied = time.perf_counter() - t
    assert report.stopped == "done" and report.applied == n, report
    db.close()
    return {
        "dry": dry,
        "dry_peak_mb": dry_peak / 1e6,
        "create": created,
        "create_peak_mb": create_peak / 1e6,
        "apply": applied,
        "raw": raw,
    }


def report(name: str, n: int, r: dict[str, float]) -> None:
    print(
        f"  dry run   {r['dry']:7.2f} s  ({n / r['dry']:>10,.0f} devices/s,"
        f" peak {r['dry_peak_mb']:.1f} MB Python)"
    )
    print(
        f"  create    {r['create']:7.2f} s  ({n / r['create']:>10,.0f} devices/s,"
        f" peak {r['create_peak_mb']:.1f} MB Python)"
    )
    print(f"  apply     {r['apply']:7.2f} s  ({n / r['apply']:>10,.0f} devices/s)")
    print(f"  raw       {r['raw']:7.2f} s  ({n / r['raw']:>10,.0f} row updates/s)")
    print(f"  {name}: apply takes {r['apply'] / r['raw']:.1f}x the raw updates")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=CHUNK)
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    pg = postgres_url()
    print(f"campaign over {args.n:,} devices, chunks of {args.chunk}")
    if args.store in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            print("SQLite")
            report(
                "SQLite", args.n, one_store(f"sqlite:///{Path(tmp) / 'b.db'}", args.n, args.chunk)
            )
    if args.store in ("postgresql", "both"):
        if not pg:
            print("PostgreSQL: skipped (set REGIONLOCK_BENCH_POSTGRES_URL)")
            return 0
        with scratch_database(pg) as url:
            print("PostgreSQL")
            report("PostgreSQL", args.n, one_store(url, args.n, args.chunk))
    return 0


if __name__ == "__main__":
    sys.exit(main())
