"""Check-ins with a small registry and with a large one: does the rate hold at 10M devices?

Run: `.venv/bin/python bench/bench_fleet_size.py [--registered 10000000] [--active 2000]
[--seconds 10]` (PostgreSQL: REGIONLOCK_BENCH_POSTGRES_URL, else REGIONLOCK_TEST_POSTGRES_URL,
else the local server; about 15 minutes at 10M on 2 cores). Not part of `make bench`.

1. A scratch PostgreSQL database, migrated; `--active` devices with Ed25519 keys made here,
   imported through `regionlock devices import` (COPY), and the gray-market-2021 policy.
2. The in-process check-in rate on it (bench_checkin.py's loop: the whole pipeline in groups
   of the check-in queue's size, pinned to CPU 1): the small registry.
3. The registry padded to `--registered` devices by one INSERT ... SELECT from
   generate_series, each padding device with its IMEI row and a stored state of a real
   device's size (so the table, its nine indexes and the IMEI index have a 10M fleet's
   size), then VACUUM ANALYZE.
4. The same loop again, the same active devices checking in (their counters go on): the
   large registry. The issue's target: at least 80 % of the small registry's rate.
5. The plans of the look-ups a check-in and an operator make (by id, by IMEI, by serial;
   the state row locked for update): each must be an index scan, never a sequential one.

With `--migrate-from VERSION` it instead pads a registry migrated only to that schema version
(a state of two weeks' check-ins each) and times `regionlock migrate` to the newest.

What it does not model: the check-in history and audit trail of a 10M fleet (the padding
devices have none), and devices beyond the service's record cache (200,000 records) checking
in; with `--active` above that, each check-in also reads its device row.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_checkin import COLD_STAGE, POLICY, WRITE_STAGE, Fleet, in_process, run_cli
from scratch import postgres_url, scratch_database

from regionlock.domain.device import Action, DeviceState
from regionlock.storage import Database, open_database
from regionlock.storage.devices import state_to_json
from regionlock.storage.migrate import migrate

TARGET = 0.8
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"

# One padding device per number g: an id, serial and IMEI of its own (never a real device's:
# ids start "pad", IMEIs "99"), a state as large as a device's after some check-ins.
PAD = """
INSERT INTO devices (id, serial, model, sku, sales_region, distributor, batch, tac,
                     manufactured, shipped, public_key, record_digest, created_at, state,
                     state_version, last_verdict, last_country, last_checkin_at,
                     last_subdivision, first_country, seen_in)
SELECT 'pad' || lpad(g::text, 12, '0'), 'SNP' || g, 'X' || (g %% 3 + 1), NULL, 'AE',
       'D' || (g %% 7), 'B' || (g %% 11), '99' || lpad((g %% 1000000)::text, 6, '0'),
       NULL, NULL, decode(repeat('00', 32), 'hex'), md5(g::text), 0, %(state)s, 1,
       'allow', 'AE', 0, 'AE-DU', 'AE', ',AE,'
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""
PAD_IMEIS = """
INSERT INTO device_imeis (imei, device_id, slot)
SELECT '99' || lpad(g::text, 13, '0'), 'pad' || lpad(g::text, 12, '0'), 0
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""
# The queries whose plans must stay on an index at this size (storage/devices.py).
LOOKUPS = {
    "device by id": "SELECT * FROM devices d WHERE d.id = 'pad000000777777' FOR UPDATE OF d",
    "device by IMEI": "SELECT d.* FROM devices d JOIN device_imeis i ON i.device_id = d.id"
    " WHERE i.imei = '990000000777777'",
    "device by serial": "SELECT * FROM devices WHERE serial = 'SNP777777'",
    "states locked for a group of check-ins": "SELECT id, state, state_version FROM devices"
    " WHERE id IN ('pad000000777777', 'pad000000123456') ORDER BY id FOR UPDATE",
    "state saved after a check-in": "UPDATE devices SET state = '{}', state_version ="
    " state_version + 1 WHERE id = 'pad000000777777' AND state_version = 1",
    "records of a group's devices, by id": "SELECT d.id, d.public_key FROM devices d"
    " WHERE d.id = ANY('{pad000000777777,pad000000123456}'::text[])",
    "records of a group's devices, by IMEI": "SELECT i.imei, d.id FROM devices d JOIN"
    " device_imeis i ON i.device_id = d.id"
    " WHERE i.imei = ANY('{990000000777777,990000000123456}'::text[])",
    "IMEIs of a group's devices": "SELECT device_id, slot, imei FROM device_imeis"
    " WHERE device_id = ANY('{pad000000777777,pad000000123456}'::text[])",
}


def pad(url: str, registered: int, active: int, state: str, chunk: int = 500_000) -> float:
    """Rows per second of padding the registry from `active` to `registered` devices."""
    import psycopg

    first, last = 1, registered - active
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        for lo in range(first, last + 1, chunk):
            hi = min(last, lo + chunk - 1)
            with conn.transaction():
                conn.execute(PAD, {"state": state, "first": lo, "last": hi})
                conn.execute(PAD_IMEIS, {"first": lo, "last": hi})
            done = hi - first + 1
            rate = done / (time.monotonic() - started)
            print(f"  padded {done:,} of {last:,} ({rate:,.0f} devices/s)", file=sys.stderr)
        conn.execute("VACUUM ANALYZE devices")
        conn.execute("VACUUM ANALYZE device_imeis")
    return (last - first + 1) / (time.monotonic() - started)


def typical_state() -> str:
    """A stored state as a device has it after two weeks of daily check-ins in Dubai."""
    seen = datetime(2026, 12, 1, 9, tzinfo=UTC)
    days = {(seen - timedelta(days=i)).date(): frozenset({"AE", "AE-DU"}) for i in range(14)}
    return state_to_json(
        DeviceState(
            last_verdict=Action.ALLOW,
            last_country="AE",
            last_subdivision="AE-DU",
            last_confidence=0.95,
            last_checkin_at=seen,
            first_country="AE",
            first_subdivision="AE-DU",
            first_seen_at=seen - timedelta(days=13),
            presence=days,
            counter=14,
            early_countries=frozenset({"AE"}),
        )
    )


def time_migration(server: str, registered: int, version: int) -> int:
    """`regionlock migrate` from schema `version` on a registry of `registered` devices."""
    with scratch_database(server) as url:
        db = Database(url)  # not open_database: that refuses a store not yet migrated
        migrate(db, upto=version)
        db.close()
        rate = pad(url, registered, 0, typical_state())
        started = time.monotonic()
        run_cli("migrate", "--db", url)
        took = time.monotonic() - started
    print(
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()},"
        f" {os.cpu_count()} CPUs, PostgreSQL: {registered:,} devices padded at {rate:,.0f}/s"
        f" onto schema version {version}, then `regionlock migrate` to the newest:"
        f" {took:,.1f} s ({took / 60:.1f} min)."
    )
    return 0


def plans(url: str) -> dict[str, str]:
    import psycopg

    out = {}
    with psycopg.connect(url) as conn:
        for name, sql in LOOKUPS.items():
            rows = conn.execute("EXPLAIN " + sql).fetchall()
            out[name] = " / ".join(r[0].strip() for r in rows)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registered", type=int, default=10_000_000)
    parser.add_argument("--active", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--migrate-from",
        type=int,
        default=None,
        metavar="VERSION",
        help="instead: time `regionlock migrate` from this schema version on a registry of"
        " --registered devices (at least 5: the padding fills columns added then)",
    )
    args = parser.parse_args()
    server = postgres_url() or DEFAULT_SERVER
    if args.migrate_from is not None:
        return time_migration(server, args.registered, args.migrate_from)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as d, scratch_database(server) as url:
        tmp = Path(d)
        run_cli("migrate", "--db", url)
        fleet = Fleet(args.active)
        fleet.csv(tmp / "fleet.csv")
        run_cli("devices", "import", str(tmp / "fleet.csv"), "--db", url, "--no-progress")
        run_cli("policy", "activate", str(POLICY), "--reason", "bench", "--db", url)
        small = in_process(url, fleet, args.seconds)
        print(f"  {args.active:,} devices: {small.rate:,.0f} check-ins/s", file=sys.stderr)
        db = open_database(url)
        with db.read() as tx:
            row = tx.one("SELECT state FROM devices WHERE state <> '{}' ORDER BY id LIMIT 1")
        db.close()
        state = str(row[0]) if row else "{}"
        pad_rate = pad(url, args.registered, args.active, state)
        big = in_process(url, fleet, args.seconds)
        print(f"  {args.registered:,} devices: {big.rate:,.0f} check-ins/s", file=sys.stderr)
        found = plans(url)
    ratio = big.rate / small.rate
    seq = [name for name, plan in found.items() if "Seq Scan" in plan]
    print(
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {(time.monotonic() - started) / 60:.1f}"
        f" min, Python {platform.python_version()}, {os.cpu_count()} CPUs, PostgreSQL, in"
        f" process (pinned to CPU 1), {args.active:,} devices checking in, {args.seconds:g} s"
        f" per run. Padding: {pad_rate:,.0f} devices/s (INSERT ... SELECT, nine indexes).\n"
    )
    print(
        "| registered devices | check-ins/s | us a check-in | write transaction us"
        " | us a check-in, no record in memory |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n, r in ((args.active, small), (args.registered, big)):
        write, cold = r.stages_us[WRITE_STAGE], r.stages_us[COLD_STAGE]
        print(f"| {n:,} | {r.rate:,.0f} | {1e6 / r.rate:,.0f} | {write:,.0f} | {cold:,.0f} |")
    mark = "✓" if ratio >= TARGET else "✗"
    print(f"\nLarge over small: {ratio:.2f} {mark} (target >= {TARGET}).")
    print(f"Errors: small {dict(small.errors) or 'none'}, large {dict(big.errors) or 'none'}.\n")
    print("| look-up at the large size | plan |")
    print("|---|---|")
    for name, plan in found.items():
        print(f"| {name} | {plan} |")
    print(f"\nSequential scans: {', '.join(seq) if seq else 'none'}.")
    return 1 if seq else 0


if __name__ == "__main__":
    sys.exit(main())
