"""Policy decisions per second on one core, beside the location look-up they follow.

Run: `make bench` (or `.venv/bin/python bench/bench_policy.py [--n N]`). The policy includes
every regime preset (us-ofac, eu, uk) plus the 2021 company block; devices are located first
(from seeded signals around restricted and ordinary places), then decided with a presence
history, so the figure is the cost of `decide` alone. Target: cheaper than the look-up.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PLACES = [
    (35.69, 51.39, "432-11"),
    (33.51, 36.28, "417-01"),
    (15.50, 32.56, "634-01"),
    (23.11, -82.37, "368-01"),
    (39.04, 125.76, "467-05"),
    (44.95, 34.10, "250-60"),
    (50.45, 30.52, "255-01"),
    (52.52, 13.40, "262-01"),
    (48.86, 2.35, "208-01"),
    (41.01, 28.98, "286-01"),
    (25.20, 55.27, "424-02"),
    (40.71, -74.01, "310-260"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()

    from regionlock.domain.decision import decide
    from regionlock.domain.policy import DeviceFacts
    from regionlock.domain.signals import parse_signals
    from regionlock.geo import default_locator
    from regionlock.policies import parse_policy
    from regionlock.services.policy_tools import history_for

    text = """
[policy]
id = "bench-all-presets"
version = "1"
[[restriction]]
id = "company"
action = "lock"
from = 2021-09-15
jurisdictions = ["IR", "SY", "CU", "KP", "SD", "UA-43", "UA-40"]
[restriction.presence]
min_days = 3
window_days = 14
"""
    for preset in ("us-ofac", "eu", "uk"):
        text += f'[[restriction]]\nid = "{preset}"\naction = "lock"\nregimes = ["{preset}"]\n'
    policy = parse_policy(text, "bench")
    locator = default_locator()
    rnd = random.Random(7)
    signals = []
    for _ in range(args.n):
        lat, lon, plmn = rnd.choice(PLACES)
        signals.append(
            parse_signals(
                {
                    "gps": {
                        "lat": lat + rnd.uniform(-0.05, 0.05),
                        "lon": lon + rnd.uniform(-0.05, 0.05),
                    },
                    "network": [plmn],
                    "sim": [plmn],
                    "ip": f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.1.1",
                }
            )
        )
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    t = time.perf_counter()
    located = [locator.locate(s) for s in signals]
    locate_s = (time.perf_counter() - t) / args.n
    inputs = [
        (DeviceFacts(f"d{i}"), e, history_for(e, i % 6, now.date())) for i, e in enumerate(located)
    ]
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        verdicts = [decide(d, e, h, policy, now) for d, e, h in inputs]
        best = min(best, time.perf_counter() - t)
    decide_s = best / args.n
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.action.value] = counts.get(v.action.value, 0) + 1
    rules = sum(len(r.jurisdictions) for r in policy.restrictions)
    print(
        f"# Policy benchmark (n={args.n}, {len(policy.restrictions)} rules, "
        f"{rules} dated jurisdictions)\n"
    )
    print("| step | per device | per second | ratio to look-up |")
    print("|---|---:|---:|---:|")
    print(
        f"| locate (all signals, per call) | {locate_s * 1e6:.1f} us | {1 / locate_s:,.0f} | 1.00 |"
    )
    print(f"| decide | {decide_s * 1e6:.1f} us | {1 / decide_s:,.0f} | {decide_s / locate_s:.2f} |")
    print(
        f"\nverdicts: {counts} (target: decide costs less than the look-up: "
        f"{'met' if decide_s < locate_s else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
