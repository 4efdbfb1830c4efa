"""`regionlock devices import` beside the database's own floor for the same rows.

Run: `.venv/bin/python bench/bench_import.py [--n 200000] [--backend sqlite|postgresql|both]
[--writers 1,2]`
(PostgreSQL: REGIONLOCK_BENCH_POSTGRES_URL, else REGIONLOCK_TEST_POSTGRES_URL, else the local
server). About a minute at the default size; `--n 10000000` is issue 16's target (10 million
devices in under 10 minutes) and takes about 20 minutes with its baseline. Not part of
`make bench`.

1. A CSV file of N devices, as a maker's factory export would look: every column the format
   has, one device in three with a second IMEI, IMEIs in production order (one TAC, rising
   serial numbers), a fresh Ed25519-sized random key each, 40 sales regions, dates. Made
   before any timing.
2. For each backend, a fresh migrated store, then `regionlock devices import FILE
   --no-progress` in a process of its own, timed from start to exit (parsing and checking
   every row, the HMAC device id, the in-file duplicate check, the store's look-ups and
   writes, the final audit entry): **the first load**. Then the same file again: **the
   re-import**, every row "unchanged". `--writers 1,2` imports once per writer count (the
   CLI's `--writers`: connections writing batches while the next is parsed), each into a
   fresh store, for a paired comparison in one run.
3. The baseline, in the same run: a second fresh store, and the same devices' rows written
   into the same tables with the same indexes, in the same batches of 1,000, by the plainest
   means each database has (PostgreSQL: COPY FROM STDIN of each batch; SQLite: one prepared
   INSERT run over each batch). Each line is only cut at its commas, with a made-up id and
   digest (a few us a row; no checks, no HMAC): that is about what the database alone costs
   to take these rows. The ratio import / baseline is how much the import adds.

The target is the issue's: 10,000,000 devices in under 600 s, 60 us a row. A run smaller than
that prints the rate and what 10M would take at it, which only holds if the rate holds as the
tables grow: run `--n 10000000` to know.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path

from scratch import postgres_url, scratch_database

from regionlock.domain.device import luhn_check_digit
from regionlock.storage import Database, open_database
from regionlock.storage.migrate import migrate

CLI = [sys.executable, "-m", "regionlock.cli.main"]
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_ROWS = 10_000_000
TARGET_S = 600.0
BATCH = 1000
# fmt: off
REGIONS = (
    "AE", "SA", "QA", "KW", "OM", "BH", "EG", "JO", "TR", "DE",
    "FR", "IT", "ES", "NL", "BE", "PL", "SE", "AT", "CH", "GB",
    "IE", "PT", "GR", "CZ", "RO", "HU", "IN", "PK", "BD", "LK",
    "NG", "KE", "ZA", "MA", "TN", "US", "CA", "MX", "BR", "EU",
)
# fmt: on
HEADER = (
    "imei,imei2,serial,model,sku,sales_region,distributor,batch,manufactured,shipped,public_key"
)
DEVICE_COLUMNS = (
    "id, serial, model, sku, sales_region, distributor, batch, tac, manufactured, shipped,"
    " public_key, record_digest, created_at"
)


def imei(n: int) -> str:
    body = f"35391{n:09d}"
    return body + str(luhn_check_digit(body))


def write_file(path: Path, n: int) -> None:
    """N devices as described in the module docstring (seeded: the same file every run)."""
    rng = random.Random(16)
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER + "\n")
        lines = []
        for i in range(n):
            first, second = (imei(2 * i), imei(2 * i + 1) if i % 3 == 0 else "")
            key = urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode()
            day = 1 + i % 28
            lines.append(
                f"{first},{second},SN{i:010d},Phone {i % 5 + 1},SKU-{i % 40},"
                f"{REGIONS[i % len(REGIONS)]},Distributor {i % 23},B{i // 50_000:04d},"
                f"2026-03-{day:02d},2026-04-{day:02d},{key}\n"
            )
            if len(lines) == 10_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


Rows = list[tuple[object, ...]]


def baseline_batches(path: Path) -> Iterator[tuple[Rows, Rows]]:
    """The file's devices as rows of `devices` and `device_imeis`, in batches: each line cut
    at its commas, with a made-up id (a hash of the IMEI) and digest (module docstring, 3)."""
    devices: Rows = []
    imeis: Rows = []
    with path.open(encoding="utf-8") as f:
        next(f)
        for n, line in enumerate(f):
            c = line.rstrip("\n").split(",")
            # Spread over the key space as the import's HMAC ids are: every insert into the
            # primary key's index lands at a random place, as it does for the import.
            device_id = "dev_" + blake2b(c[0].encode(), digest_size=12).hexdigest()
            devices.append(
                (device_id, c[2], c[3], c[4], c[5], c[6], c[7], c[0][:8], c[8], c[9],
                 c[10].encode(), f"{n:032x}", 0)
            )  # fmt: skip
            imeis.append((c[0], device_id, 1))
            if c[1]:
                imeis.append((c[1], device_id, 2))
            if len(devices) == BATCH:
                yield devices, imeis
                devices, imeis = [], []
    if devices:
        yield devices, imeis


def raw_load(url: str, path: Path) -> float:
    """Seconds to write the file's rows, a transaction per batch (module docstring, 3)."""
    db = open_database(url)
    try:
        t = time.perf_counter()
        for devices, imeis in baseline_batches(path):
            with db.write() as tx:
                tx.insert_many("devices", DEVICE_COLUMNS.split(", "), devices)
                tx.insert_many("device_imeis", ("imei", "device_id", "slot"), imeis)
        return time.perf_counter() - t
    finally:
        db.close()


@dataclass
class Timed:
    seconds: float
    said: str
    cpu_s: float  # the import process's user + system time
    peak_mb: float  # its peak resident memory


def timed_import(url: str, path: Path, writers: int | None) -> Timed:
    """The CLI import of `path` in a process of its own: wall time, its CPU and peak memory."""
    more = [] if writers is None else ["--writers", str(writers)]
    with tempfile.TemporaryFile("w+") as out:
        t = time.perf_counter()
        child = subprocess.Popen(
            [*CLI, "devices", "import", str(path), "--no-progress", *more, "--db", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - t
        out.seek(0)
        said = out.read().strip()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"the import failed:\n{said}")
    return Timed(elapsed, said, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


@contextmanager
def fresh_store(backend: str, tmp: Path, tag: str, server: str) -> Iterator[str]:
    """A migrated, empty store that exists only inside the block."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp / f'{tag}.db'}"
        migrated(url)
        yield url
        return
    with scratch_database(server) as url:
        migrated(url)
        yield url


def migrated(url: str) -> None:
    db = Database(url)
    try:
        migrate(db)
    finally:
        db.close()


@dataclass
class Result:
    backend: str
    writers: int | None
    first: Timed
    again: Timed | None
    raw_s: float


def run_backend(
    backend: str, path: Path, tmp: Path, server: str, reimport: bool, writers: list[int | None]
) -> list[Result]:
    """An import into a fresh store for each writer count, then the baseline once."""
    done: list[tuple[int | None, Timed, Timed | None]] = []
    for count in writers:
        tag = f"{backend}, {count or 'default'} writer(s)"
        with fresh_store(backend, tmp, "import", server) as url:
            first = timed_import(url, path, count)
            print(f"  {tag}: first load {first.seconds:.1f} s ({first.said})", file=sys.stderr)
            again = None
            if reimport:
                again = timed_import(url, path, count)
                print(f"  {tag}: re-import {again.seconds:.1f} s ({again.said})", file=sys.stderr)
        done.append((count, first, again))
    with fresh_store(backend, tmp, "raw", server) as url:
        raw = raw_load(url, path)
        print(f"  {backend}: baseline {raw:.1f} s", file=sys.stderr)
    return [Result(backend, count, first, again, raw) for count, first, again in done]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--reimport",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="import the file a second time, every row unchanged (default: yes)",
    )
    parser.add_argument(
        "--file", type=Path, help="import this file (made by an earlier run) instead of a new one"
    )
    parser.add_argument(
        "--writers",
        default="",
        help="comma-separated writer counts to import with, each into a fresh store"
        " (e.g. 1,2; default: the CLI's own default)",
    )
    args = parser.parse_args()
    writers: list[int | None] = [int(w) for w in args.writers.split(",") if w.strip()] or [None]
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    server = postgres_url() or DEFAULT_SERVER
    started = time.time()
    load = os.getloadavg()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        if args.file is not None:
            path = args.file
            with path.open("rb") as f:
                args.n = sum(1 for _ in f) - 1
        else:
            path = tmp / "devices.csv"
            write_file(path, args.n)
        size = path.stat().st_size
        print(
            f"  file: {args.n:,} devices, {size / 1e6:.0f} MB ({time.perf_counter() - t:.1f} s)",
            file=sys.stderr,
        )
        for backend in backends:
            results += run_backend(backend, path, tmp, server, args.reimport, writers)
    print(
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"{(time.time() - started) / 60:.1f} min, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs: {args.n:,} devices ({size / 1e6:.0f} MB of CSV). Load average "
        f"before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}.\n"
    )
    print(
        "| backend | writers | first load | us a row | 10M at this rate | import's CPU"
        " | peak memory | re-import | baseline (rows only) | first load / baseline |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        first = r.first.seconds
        per_row = first / args.n
        projected = per_row * TARGET_ROWS
        mark = "✓" if projected <= TARGET_S else "✗"
        again = f"{r.again.seconds:.1f} s" if r.again is not None else "not run"
        print(
            f"| {r.backend} | {r.writers or 'default'} | {first:.1f} s | {per_row * 1e6:.0f} | "
            f"{projected / 60:.1f} min "
            f"{mark} | {r.first.cpu_s:.1f} s ({r.first.cpu_s / first:.0%} of a core) | "
            f"{r.first.peak_mb:,.0f} MB | {again} | {r.raw_s:.1f} s | "
            f"{first / r.raw_s:.2f} |"
        )
    print(
        f"\nTarget: {TARGET_ROWS:,} devices in under {TARGET_S / 60:.0f} min "
        f"({TARGET_S / TARGET_ROWS * 1e6:.0f} us a row). "
        + (
            "Measured at that size."
            if args.n >= TARGET_ROWS
            else "Projected from a smaller run: holds only if the rate holds as tables grow."
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
