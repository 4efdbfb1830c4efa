"""Check-ins on a history partitioned by day against one partitioned by month.

Run: `.venv/bin/python bench/bench_partitions.py [--seconds 6] [--rounds 3]` (PostgreSQL:
REGIONLOCK_BENCH_POSTGRES_URL, else REGIONLOCK_TEST_POSTGRES_URL, else the local server; about
three minutes). Not part of `make bench`.

`REGIONLOCK_CHECKIN_PARTITIONS=day` is for fleets whose month of check-ins outgrows memory
(docs/operating.md, "Partitions"). What it costs is the number of partitions: 180 days of
retention and 14 days prepared ahead keep 195, where months keep about 9. This measures that
cost, not the gain at scale (which needs billions of rows):

1. Two scratch databases, migrated, each with the same 2,000 devices (Ed25519 keys made here,
   imported through `regionlock devices import`) and the gray-market-2021 policy. One gets
   month partitions from 180 days ago to two months ahead (9), the other day partitions
   over the same span to 14 days ahead (195).
2. In rounds, alternating which goes first: the in-process check-in rate on each
   (bench_checkin.py's loop: the whole pipeline in groups of the check-in queue's size, pinned
   to CPU 1), and the time of one device's recent history (`recent`, the console's device
   page and the owner's export), which reads every partition's index.
3. Medians of the rounds, and day over month.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_checkin import POLICY, Fleet, imei, in_process, run_cli
from scratch import postgres_url, scratch_database

from regionlock.storage import Database, open_database
from regionlock.storage.checkins import SqlCheckinStore, partitions
from regionlock.storage.migrate import migrate

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
HISTORY_DAYS = 180


def prepared(url: str, period: str, now: datetime) -> int:
    """Migrate, then partitions from HISTORY_DAYS ago to the period's usual horizon ahead;
    how many partitions the history has."""
    db = Database(url)
    try:
        migrate(db)
        store = SqlCheckinStore(db)
        since = now - timedelta(days=HISTORY_DAYS)
        ahead = (HISTORY_DAYS + 14) if period == "day" else (HISTORY_DAYS // 30 + 2)
        store.prepare_partitions(since, period=period, ahead=ahead)
        with db.read() as tx:
            return len(partitions(tx))
    finally:
        db.close()


def recent_ms(url: str, n: int = 200) -> float:
    """The median time of the first device's recent history, in ms."""
    db = open_database(url)
    try:
        store = SqlCheckinStore(db)
        with db.read() as tx:
            found = tx.one("SELECT device_id FROM device_imeis WHERE imei = ?", (imei(0),))
        assert found is not None
        device_id = str(found[0])
        times = []
        for _ in range(n):
            t = time.perf_counter()
            store.recent(device_id, limit=20)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000
    finally:
        db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = postgres_url() or DEFAULT_SERVER
    started, load = time.time(), os.getloadavg()
    now = datetime.now(UTC)
    fleet = Fleet(args.devices)
    rates: dict[str, list[float]] = {"month": [], "day": []}
    recents: dict[str, list[float]] = {"month": [], "day": []}
    with tempfile.TemporaryDirectory(prefix="bench-partitions-") as tmp, ExitStack() as stack:
        csv = Path(tmp) / "devices.csv"
        fleet.csv(csv)
        urls, counts = {}, {}
        for period in ("month", "day"):
            url = stack.enter_context(scratch_database(server))
            counts[period] = prepared(url, period, now)
            run_cli("devices", "import", str(csv), "--db", url, "--no-progress")
            run_cli("policy", "activate", str(POLICY), "--reason", "bench", "--db", url)
            urls[period] = url
            print(f"  {period}: {counts[period]} partitions", file=sys.stderr)
        for r in range(args.rounds):
            for period in ("month", "day") if r % 2 == 0 else ("day", "month"):
                # The same devices check in on both stores: each store has its own counters,
                # and the fleet's tokens count up across both (a higher counter is fine).
                run = in_process(urls[period], fleet, args.seconds)
                rates[period].append(run.rate)
                recents[period].append(recent_ms(urls[period]))
                print(
                    f"  round {r + 1} {period}: {run.rate:,.0f} check-ins/s,"
                    f" recent {recents[period][-1]:.2f} ms",
                    file=sys.stderr,
                )
    print(
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))},"
        f" {(time.time() - started) / 60:.1f} min, Python {platform.python_version()},"
        f" {os.cpu_count()} CPUs, {args.devices:,} devices, {args.rounds} rounds of"
        f" {args.seconds:g} s. Load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}.\n"
    )
    print("| history by | partitions | check-ins/s (median) | recent history, ms (median) |")
    print("|---|---:|---:|---:|")
    for period in ("month", "day"):
        print(
            f"| {period} | {counts[period]} | {statistics.median(rates[period]):,.0f} |"
            f" {statistics.median(recents[period]):.2f} |"
        )
    rate = statistics.median(rates["day"]) / statistics.median(rates["month"])
    slower = statistics.median(recents["day"]) / statistics.median(recents["month"])
    print(f"\nDay over month: check-in rate {rate:.2f}, recent history {slower:.1f}x the time.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
