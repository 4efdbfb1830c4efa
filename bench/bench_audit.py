"""The audit trail at scale (issue 16, docs/audit.md "Shards and the tree"): appends from many
writers on PostgreSQL, sharded as shipped beside the one-row serialisation they replaced,
measured in the same run; then sealing, proofs and verification.

Run: `.venv/bin/python bench/bench_audit.py [--writers 8] [--seconds 8] [--group 16]
[--entries 200000]` (about a minute). Needs a PostgreSQL server (REGIONLOCK_BENCH_POSTGRES_URL
or REGIONLOCK_TEST_POSTGRES_URL); SQLite has one writer, so shards change nothing there and
only its sealing and verification are measured.

1. Appends. `--writers` processes (no shared GIL) each loop for `--seconds`: one transaction
   appends `--group` entries (a check-in group's entries) and commits, as the check-in path
   does. "one row" is the same code with every transaction first locking one shared row until
   its commit, which is what the old `audit_head` row did. Both modes run on fresh databases,
   alternating, twice each; the table gives entries a second and the sharded/one-row ratio.
2. Sealing `--entries` entries into the tree (entries a second), an inclusion and a
   consistency proof at that size (ms each), and a full `verify` (entries a second), on
   PostgreSQL and SQLite.
3. Hashing a check-in's entry (content digest, stored details, entry hash), as appends do,
   beside the same work by the standard library's encoder alone (what every hash is defined
   by, and what appends used before 2026-12-07), in turn, best of 7 each.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import platform
import sys
import tempfile
import time
from pathlib import Path

from scratch import postgres_url, scratch_database

from regionlock.storage import Database
from regionlock.storage import audit as audit_module
from regionlock.storage.audit import NewEntry, SqlAuditStore, entry_hash_v3, prepare_entries
from regionlock.storage.migrate import migrate


def _writer(
    url: str,
    one_row: bool,
    seconds: float,
    group: int,
    out: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    db = Database(url)
    audit = SqlAuditStore(db)
    entries = [
        NewEntry(1_700_000_000_000 + i, "device:dev_x", "checkin.verdict", "dev_x", "", {"v": 1})
        for i in range(group)
    ]
    done = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        with db.write() as tx:
            if one_row:
                tx.one("SELECT one FROM bench_one_row WHERE one = 1 FOR UPDATE")
            audit.append_many(tx, entries)
        done += group
    db.close()
    out.put(done)


def appends(server: str, one_row: bool, writers: int, seconds: float, group: int) -> float:
    with scratch_database(server) as url:
        db = Database(url)
        migrate(db)
        with db.write() as tx:
            tx.execute("CREATE TABLE bench_one_row (one INTEGER PRIMARY KEY)")
            tx.execute("INSERT INTO bench_one_row VALUES (1)")
        db.close()
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_writer, args=(url, one_row, seconds, group, out))
            for _ in range(writers)
        ]
        for p in procs:
            p.start()
        total = sum(out.get() for _ in procs)
        for p in procs:
            p.join()
        db = Database(url)
        assert SqlAuditStore(db).verify().ok
        db.close()
    return total / seconds


def fill(db: Database, n: int) -> None:
    audit = SqlAuditStore(db)
    batch = [
        NewEntry(1_700_000_000_000 + i, "device:dev_x", "checkin.verdict", "dev_x", "", {"v": 1})
        for i in range(1000)
    ]
    for _ in range(n // 1000):
        with db.write() as tx:
            audit.append_many(tx, batch)


def tree_figures(db: Database, n: int) -> dict[str, float]:
    audit = SqlAuditStore(db)
    fill(db, n)
    t = time.perf_counter()
    upto = audit.settled()
    while True:
        with db.write() as tx:
            before, after = audit.seal(tx, upto=upto, limit=50_000)
        if after.size == before.size or after.sealed_seq >= upto:
            break
    seal_s = time.perf_counter() - t
    t = time.perf_counter()
    for seq in range(1, n, max(1, n // 50)):
        assert audit.inclusion_proof(seq, n) is not None
    inclusion_ms = (time.perf_counter() - t) / 50 * 1000
    t = time.perf_counter()
    for old in range(1, n, max(1, n // 50)):
        audit.consistency_proof(old, n)
    consistency_ms = (time.perf_counter() - t) / 50 * 1000
    t = time.perf_counter()
    assert audit.verify().ok
    verify_s = time.perf_counter() - t
    return {
        "seal /s": n / seal_s,
        "inclusion proof ms": inclusion_ms,
        "consistency proof ms": consistency_ms,
        "verify /s": n / verify_s,
    }


# A check-in's audit details, as services/checkin.py writes them.
CHECKIN_DETAILS = {
    "verdict": "allow",
    "previous": "allow",
    "country": "AE",
    "subdivision": "AE-DU",
    "confidence": 0.93,
    "flags": [],
    "signals": ["gps", "network", "sim", "ip"],
    "policy": "gray-market-2021@3",
    "counter": 12345,
}


def _hashed_by_stdlib(value: object) -> str:
    return hashlib.sha256(audit_module._HASHED_FORM.encode(value).encode("utf-8")).hexdigest()


def hashing_figures(n: int = 64, rounds: int = 300) -> dict[str, float]:
    """Microseconds an entry: a group of `n` check-ins' entries prepared and chained, by the
    appends' code and by the standard library alone (the same digests: asserted)."""
    entries = [
        NewEntry(
            1_700_000_000_000,
            f"device:d{i}",
            "checkin.verdict",
            f"d{i}",
            "",
            dict(CHECKIN_DETAILS, counter=i),
        )
        for i in range(n)
    ]

    def shipped() -> list[str]:
        prev, out = "", []
        for i, p in enumerate(prepare_entries(entries)):
            prev = entry_hash_v3(i, 0, p.entry.at, p.entry.action, p.content, prev)
            out.append(prev)
        return out

    def stdlib() -> list[str]:
        prev, out = "", []
        for i, e in enumerate(entries):
            salt = "00" * 16
            content = _hashed_by_stdlib(
                ["regionlock/audit-content/v2", salt, e.actor, e.subject, e.reason, e.details]
            )
            audit_module._STORED_DETAILS.encode(e.details)
            prev = _hashed_by_stdlib(
                ["regionlock/audit-entry/v3", i, 0, e.at, e.action, content, prev]
            )
            out.append(prev)
        return out

    # The same digests for the same salts (prepare_entries draws its own: compare one entry).
    e = entries[0]
    assert audit_module.content_digest("00" * 16, e.actor, e.subject, e.reason, e.details) == (
        _hashed_by_stdlib(
            ["regionlock/audit-content/v2", "00" * 16, e.actor, e.subject, e.reason, e.details]
        )
    )
    best = {"shipped": float("inf"), "standard library": float("inf")}
    for _ in range(7):
        for name, fn in (("shipped", shipped), ("standard library", stdlib)):
            t = time.perf_counter()
            for _ in range(rounds):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t) / rounds / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--group", type=int, default=16)
    parser.add_argument("--entries", type=int, default=200_000)
    args = parser.parse_args()
    server = postgres_url()
    print(f"# {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}")
    if server is not None:
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(2):
            for one_row in (True, False):
                rates[one_row].append(
                    appends(server, one_row, args.writers, args.seconds, args.group)
                )
        best = {mode: max(r) for mode, r in rates.items()}
        print(f"\nappends, {args.writers} writers, groups of {args.group}, PostgreSQL")
        print("| mode | entries/s (each run) | best |")
        print("|---|---|---:|")
        for one_row, label in ((True, "one row (before)"), (False, "16 shards (now)")):
            runs = ", ".join(f"{r:,.0f}" for r in rates[one_row])
            print(f"| {label} | {runs} | {best[one_row]:,.0f} |")
        print(f"ratio shards / one row: {best[False] / best[True]:.2f}")
    else:
        print("no PostgreSQL server configured: appends not measured")

    print(f"\nthe tree, {args.entries:,} entries")
    rows = []
    if server is not None:
        with scratch_database(server) as url:
            db = Database(url)
            migrate(db)
            rows.append(("PostgreSQL", tree_figures(db, args.entries)))
            db.close()
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{Path(folder) / 'bench.db'}")
        migrate(db)
        rows.append(("SQLite", tree_figures(db, args.entries)))
        db.close()
    names = list(rows[0][1])
    print("| store | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for store, figures in rows:
        print(f"| {store} | " + " | ".join(f"{figures[k]:,.1f}" for k in names) + " |")

    hashing = hashing_figures()
    print("\nhashing a check-in's entry, us (best of 7, groups of 64)")
    print("| encoder | us an entry |")
    print("|---|---:|")
    for name, us in hashing.items():
        print(f"| {name} | {us:.2f} |")
    print(
        f"ratio standard library / shipped: {hashing['standard library'] / hashing['shipped']:.2f}"
    )


if __name__ == "__main__":
    main()
