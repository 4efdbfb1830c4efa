"""The console's pages at fleet scale, beside the login page measured in the same run.

`.venv/bin/python bench/bench_console.py [--devices N] [--per-device K] [--keep DIR] [--n R]`:
builds (or reuses, with --keep) a SQLite store of N devices (default 1,000,000; one in seven
last seen locked in Iran, one in eleven warned) with K check-ins each (default 2) through
bench_investigate_export.py's fixture, snapshots 90 days for the overview, then serves the
app in this process (Starlette's test client: the whole ASGI stack, no socket) and times R
renders of each page (default 20) for a signed-in viewer: median and 95th percentile in ms,
and the median's ratio to the login page (a template with no store read, the baseline).

The target (issue 15): every page under 200 ms with a 1,000,000-device registry.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_investigate_export import sqlite_fixture
from fastapi.testclient import TestClient

from regionlock.api.app import create_app
from regionlock.services.overview import BACKFILL_DAYS
from regionlock.settings import Settings
from regionlock.storage import open_stores
from regionlock.storage.apikeys import Role
from regionlock.storage.overview import DayCount, FleetCount


def vary(path: Path) -> None:
    """Give the fixture's fleet locked and warned devices, as a real one after a block."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE devices SET last_verdict = CASE WHEN rowid % 7 = 0 THEN 'lock'"
        " WHEN rowid % 11 = 0 THEN 'warn' ELSE 'allow' END,"
        " last_country = CASE WHEN rowid % 7 = 0 THEN 'IR' ELSE 'AE' END,"
        " last_subdivision = CASE WHEN rowid % 7 = 0 THEN 'IR-23' ELSE 'AE-DU' END"
    )
    conn.commit()
    conn.close()


REAL_IMEI = "356938035643809"  # a valid IMEI (the fixture's own are not: bulk rows)


def add_real_device(url: str) -> str:
    """One device imported as an operator would, with the check-ins of a fixture device: the
    fixture's bulk ids and IMEIs are not well-formed, so the device pages read this one."""
    from regionlock.domain.device import encode_public_key
    from regionlock.services.registry import Registry
    from regionlock.signing import SigningKey

    stores = open_stores(url)
    try:
        key = SigningKey.generate(datetime.now(UTC)).private_key.public_key()
        csv = (
            "imei,serial,model,sales_region,distributor,batch,public_key\n"
            f"{REAL_IMEI},SNREAL,X1,AE,D7,B1,{encode_public_key(key.public_bytes_raw())}\n"
        )
        Registry.of(stores).import_csv(
            csv.splitlines(keepends=True), actor="bench", source="b.csv", now=datetime.now(UTC)
        )
        found = stores.devices.get(REAL_IMEI)
        assert found is not None
        with stores.db.write() as tx:
            tx.execute(
                "INSERT INTO checkins (device_id, at, counter, nonce, country, subdivision,"
                " confidence, flags, signal_kinds, verdict, reasons, policy_id, policy_version,"
                " subdivision_candidates) SELECT ?, at, counter, 'real' || nonce, country,"
                " subdivision, confidence, flags, signal_kinds, verdict, reasons, policy_id,"
                " policy_version, subdivision_candidates FROM checkins WHERE device_id IN"
                " (SELECT device_id FROM checkins LIMIT 1)",
                (found.record.id,),
            )
        return found.record.id
    finally:
        stores.close()


def snapshot_days(url: str, days: int, today: date) -> None:
    """Past days as the service would have snapshotted them (the counts of today)."""
    stores = open_stores(url)
    try:
        now = stores.overview.fleet()
        counts = [FleetCount(c.country, c.subdivision, c.verdict or "none", c.devices) for c in now]
        for i in range(days, 0, -1):
            day = today - timedelta(days=i)
            stores.overview.save_day(DayCount(day, counts, 1_000_000 - i * 1000), at=0)
    finally:
        stores.close()


def timed(client: TestClient, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(url)
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--per-device", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        store = where / f"console-{args.devices}x{args.per_device}.db"
        url = f"sqlite:///{store}"
        if not store.exists():
            t = time.perf_counter()
            sqlite_fixture(store, args.devices, args.per_device)
            vary(store)
            add_real_device(url)
            # Every day the service would fill in, so that its background job has nothing
            # to count while pages are timed (counting one day here: about 1 s).
            snapshot_days(url, BACKFILL_DAYS, datetime.now(UTC).date())
            print(f"fixture: {time.perf_counter() - t:.1f} s", flush=True)
        stores = open_stores(url)
        with stores.db.write() as tx:
            _, token = stores.apikeys.create(tx, name="bench", role=Role.VIEWER, at=0)
        stores.close()
        app = create_app(Settings(database_url=url))
        with TestClient(app) as client:
            r = client.post("/console/login", data={"api_key": token}, follow_redirects=False)
            assert r.status_code == 303
            middle = args.devices // 2
            pages = {
                "login (baseline)": "/console/login",
                "overview": "/console/",
                "overview, a past day": f"/console/?day={date.today() - timedelta(days=3)}",
                "devices, first page": "/console/devices",
                "devices, locked in IR": "/console/devices?verdict=lock&country=IR",
                "devices, by IMEI": f"/console/devices?q={REAL_IMEI}",
                "devices, by serial": f"/console/devices?q=SN{middle}",
                "a device": f"/console/devices/{REAL_IMEI}",
                "audit, latest": "/console/audit",
                "audit, one action": "/console/audit?action=device.lock",
                "campaigns": "/console/campaigns",
                "policies": "/console/policies",
                "appeals": "/console/appeals",
                "investigations (the last ranking)": "/console/investigations",
            }
            body = client.get("/console/").text
            assert re.search(r'id="total">[\d,]+<', body)
            results = {}
            t = time.perf_counter()
            timed(client, "/console/investigations", 1)
            first_ranking = time.perf_counter() - t
            for name, page in pages.items():
                timed(client, page, 2)  # warm: templates compiled, caches filled
                results[name] = timed(client, page, args.n)
        # The overview's count itself, as the first page after start (or a TTL of 0) waits
        # for it; other pages are served the last count (REGIONLOCK_CONSOLE_OVERVIEW_TTL_S).
        uncached = create_app(Settings(database_url=url, console_overview_ttl_s=0))
        with TestClient(uncached) as client:
            r = client.post("/console/login", data={"api_key": token}, follow_redirects=False)
            assert r.status_code == 303
            timed(client, "/console/", 2)
            results["overview, counted (TTL 0)"] = timed(client, "/console/", args.n)
        base = statistics.median(results["login (baseline)"])
        print(
            f"{args.devices:,} devices, {args.devices * args.per_device:,} check-ins;"
            f" {args.n} renders a page"
        )
        print(f"{'page':28} {'median ms':>10} {'p95 ms':>8} {'x login':>8}")
        worst = 0.0
        for name, ms in results.items():
            med = statistics.median(ms)
            p95 = statistics.quantiles(ms, n=20)[-1] if len(ms) >= 2 else ms[0]
            worst = max(worst, p95) if name != "login (baseline)" else worst
            print(f"{name:28} {med:10.1f} {p95:8.1f} {med / base:8.1f}")
        print(f"slowest page's p95: {worst:.0f} ms (target: under 200 ms)")
    print(
        f"the first ranking after a start (the DuckDB cache built, every check-in read):"
        f" {first_ranking:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
