"""Location throughput beside the raw look-ups it is built on, all measured in one run.

Run: `make bench` (or `.venv/bin/python bench/bench_locate.py [--n N]`).

Inputs are seeded: half uniform random positions over the inhabited latitudes, half jittered
around border towns (where the point-in-polygon work happens), and random public IPs.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

BORDER_TOWNS = [
    (36.7184, 37.1212),
    (40.1210, 124.3950),
    (40.1006, 124.3984),
    (39.3920, 44.3860),
    (38.4290, 48.8720),
    (44.9521, 34.1024),
    (48.0159, 37.8028),
    (57.7780, 26.0470),
    (32.5149, -117.0382),
    (25.2048, 55.2708),
    (33.8938, 35.5018),
    (31.3547, 34.3088),
    (49.0069, 8.4037),
    (47.5596, 7.5886),
    (50.8503, 4.3517),
    (43.7384, 7.4246),
]


def positions(n: int, rnd: random.Random) -> list[tuple[float, float]]:
    out = []
    for i in range(n):
        if i % 2:
            lat, lon = rnd.choice(BORDER_TOWNS)
            out.append((lat + rnd.uniform(-0.2, 0.2), lon + rnd.uniform(-0.2, 0.2)))
        else:
            out.append((rnd.uniform(-55, 70), rnd.uniform(-180, 180)))
    return out


def public_ips(n: int, rnd: random.Random) -> list[str]:
    out = []
    while len(out) < n:
        a = rnd.randint(1, 223)
        if a in (10, 100, 127, 169, 172, 192, 198, 203):
            continue
        out.append(f"{a}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}")
    return out


def rate(fn: Callable[[], Any], items: int, repeat: int = 3) -> float:
    """Best-of-`repeat` items per second."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return items / best


def load_probe() -> dict[str, float]:
    """Load time and resident memory of a fresh process that loads the resolver."""
    code = (
        "import time, resource, json; t = time.perf_counter();"
        "from regionlock.geo import default_locator; default_locator();"
        "print(json.dumps({'load_s': time.perf_counter() - t,"
        " 'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="items per measurement")
    args = parser.parse_args()
    n = args.n

    import iptocc

    from regionlock.domain.signals import parse_signals
    from regionlock.geo import default_locator
    from regionlock.services.batch_locate import locate_lines

    probe = load_probe()
    locator = default_locator()
    rnd = random.Random(2021)
    pos = positions(n, rnd)
    ips = public_ips(n, rnd)
    lats = [p[0] for p in pos]
    lons = [p[1] for p in pos]
    b = locator.boundaries

    gps_only = [parse_signals({"gps": {"lat": a, "lon": o}}) for a, o in pos]
    ip_only = [parse_signals({"ip": ip}) for ip in ips]
    all_raw = [
        {
            "ip": ip,
            "sim": ["432-11"],
            "network": ["432-11", "286-01"],
            "gps": {"lat": a, "lon": o, "accuracy_m": 20},
            "timezone": "Asia/Tehran",
            "locale": "fa_IR",
        }
        for (a, o), ip in zip(pos, ips, strict=True)
    ]
    all_sig = [parse_signals(x) for x in all_raw]
    lines = [json.dumps({"id": i, **x}) for i, x in enumerate(all_raw)]

    raw_gps_call = rate(lambda: [b.lookup(a, o) for a, o in pos], n)
    raw_gps_batch = rate(lambda: b.lookup_many(lats, lons), n)
    raw_ip_call = rate(lambda: [iptocc.country_code(ip) for ip in ips], n)
    raw_ip_batch = rate(lambda: iptocc.country_code(ips), n)
    mcc, tz = locator.mcc, locator.timezones
    plmn = all_sig[0].network[0]
    from regionlock.domain.reading import SignalKind

    raw_small = rate(
        lambda: [
            (mcc.resolve(plmn, SignalKind.NETWORK, 1), tz.resolve("Asia/Tehran")) for _ in range(n)
        ],
        n,
    )

    def combined(*rates: float) -> float:
        return 1.0 / sum(1.0 / r for r in rates)

    # Raw cost of everything an all-signal device needs: GPS + IP + 3 MCC + tz/locale look-ups.
    raw_all_call = combined(raw_gps_call, raw_ip_call, raw_small, raw_small)
    raw_all_batch = combined(raw_gps_batch, raw_ip_batch, raw_small, raw_small)

    rows = [
        ("GPS only", gps_only, raw_gps_call, raw_gps_batch, "Boundaries.lookup(_many)"),
        ("IP only", ip_only, raw_ip_call, raw_ip_batch, "iptocc.country_code"),
        ("all signals", all_sig, raw_all_call, raw_all_batch, "sum of the raw look-ups"),
    ]
    print(f"# Location benchmark (n={n}, Python {sys.version.split()[0]})\n")
    print(
        f"Resolver load: {probe['load_s']:.2f} s in a fresh process, "
        f"peak RSS {probe['rss_mb']:.0f} MB (targets: < 2 s, < 500 MB)\n"
    )
    print("| input | mode | locate /s | raw look-up /s | ratio | raw look-up |")
    print("|---|---|---:|---:|---:|---|")
    for name, sigs, raw_call, raw_batch, what in rows:
        per_call = rate(lambda sigs=sigs: [locator.locate(s) for s in sigs], n)
        batch = rate(lambda sigs=sigs: locator.locate_many(sigs), n)
        print(
            f"| {name} | per call | {per_call:,.0f} | {raw_call:,.0f} | "
            f"{per_call / raw_call:.2f} | {what} |"
        )
        print(
            f"| {name} | batch | {batch:,.0f} | {raw_batch:,.0f} | "
            f"{batch / raw_batch:.2f} | {what} (batch) |"
        )
    jsonl = rate(lambda: sum(1 for _ in locate_lines(lines, locator)), n, repeat=2)
    print(
        f"| all signals | JSON Lines in/out | {jsonl:,.0f} | {raw_all_batch:,.0f} | "
        f"{jsonl / raw_all_batch:.2f} | parse + locate + serialise |"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nBenchmark process peak RSS: {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
