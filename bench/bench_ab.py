"""Two service settings (or two versions of the code) side by side: check-ins/s of each, and
their ratio, from short HTTP runs taken in turn.

Run: `.venv/bin/python bench/bench_ab.py --a ENV --b ENV [--backend sqlite|postgresql]
[--workers N] [--rounds R] [--pin-postgres]`, where ENV is `NAME=VALUE,...` added to the
environment of server A or B, e.g. `--a REGIONLOCK_CHECKIN_THREADS=1 --b
REGIONLOCK_CHECKIN_THREADS=2`. To compare code, put a worktree of the older commit first on
one server's PYTHONPATH: `--a PYTHONPATH=/tmp/old/src`. Needs `wrk`, as bench_checkin.py does.

Why: this VM's speed drifts by a quarter within minutes, so one run of each setting, minutes
apart, says little about a change of 10 %. Here both servers run at once on one store (an
idle server costs nothing), and each round measures A and B back to back, in alternating
order, for `--seconds` each after a one-second warm-up; the ratio B / A is taken per round and
the median over rounds is printed, with every round's figures. Check-in tokens are signed
before each run, as in bench_checkin.py (whose store, fleet, servers and wrk script this
uses), for 4,000 devices.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import bench_checkin as bc

DEVICES = 4000
# Tokens signed for a run: more than any setting answers on this VM (about 5,000/s at most).
TOKENS_PER_S = 6000


def parse_env(spec: str) -> dict[str, str]:
    """`NAME=VALUE,...` as a dict (an empty spec: nothing added)."""
    out = {}
    for item in filter(None, spec.split(",")):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"expected NAME=VALUE, got {item!r}")
        out[name] = value
    return out


@contextlib.contextmanager
def server_with(
    env: dict[str, str], url: str, workers: int, pin: str | None
) -> Iterator[bc.Server]:
    """A `regionlock serve` whose environment has `env` added."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        server = bc.Server(url, workers, pin).__enter__()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield server
    finally:
        server.__exit__(None, None, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", default="", help="server A's added environment, NAME=VALUE,...")
    parser.add_argument("--b", default="", help="server B's added environment, NAME=VALUE,...")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds a run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--pin-postgres",
        action="store_true",
        help="PostgreSQL's server on CPU 0, the service on CPU 1 (use with --workers 1)",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=bc.pg_admin_url(),
    )
    args = parser.parse_args()
    envs = {"A": parse_env(args.a), "B": parse_env(args.b)}
    setup = argparse.Namespace(devices=DEVICES, pg_admin_url=args.pg_admin_url)
    pin_server, pin_wrk = ("1", "0") if args.workers == 1 else (None, None)
    rates: dict[str, list[float]] = {"A": [], "B": []}
    p99s: dict[str, list[float]] = {"A": [], "B": []}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        store = stack.enter_context(bc.ready_store(args.backend, setup, tmp))
        lua = tmp / "bench.lua"
        lua.write_text(bc.WRK_LUA)
        servers = {
            name: stack.enter_context(server_with(env, store.url, args.workers, pin_server))
            for name, env in envs.items()
        }
        if args.pin_postgres:
            stack.enter_context(bc.postgres_on_cpu(args.pg_admin_url, 0))
        for r in range(args.rounds):
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                server = servers[name]
                warm = bc.write_tokens(tmp / "warm.txt", store.fleet.tokens(TOKENS_PER_S))
                bc.run_wrk(server, "checkin", 1, args.concurrency, lua, pin_wrk, warm)
                tokens = store.fleet.tokens(int(TOKENS_PER_S * args.seconds))
                run = bc.write_tokens(tmp / "run.txt", tokens)
                load = bc.run_wrk(
                    server, "checkin", args.seconds, args.concurrency, lua, pin_wrk, run
                )
                if load.exhausted:
                    raise SystemExit("wrk ran out of tokens: raise TOKENS_PER_S")
                errors = load.errors()
                rates[name].append(load.rate)
                p99s[name].append(load.p99_ms)
                print(
                    f"round {r + 1} {name}: {load.rate:,.0f} check-ins/s, p99"
                    f" {load.p99_ms:.1f} ms, server CPU {load.server_cpu:.0%}"
                    + (f", errors {dict(errors)}" if errors else ""),
                    file=sys.stderr,
                )
    ratios = [b / a for a, b in zip(rates["A"], rates["B"], strict=True)]
    pinned = ", PostgreSQL pinned" if args.pin_postgres else ""
    print(
        f"{args.backend}, {args.workers} worker(s){pinned},"
        f" {args.rounds} rounds of {args.seconds:g} s; A = {args.a or '(defaults)'},"
        f" B = {args.b or '(defaults)'}"
    )
    for name in ("A", "B"):
        print(
            f"  {name}: median {statistics.median(rates[name]):,.0f} check-ins/s"
            f" (range {min(rates[name]):,.0f}-{max(rates[name]):,.0f}), median p99"
            f" {statistics.median(p99s[name]):.1f} ms"
        )
    print(
        f"  B / A by round: {', '.join(f'{x:.2f}' for x in ratios)};"
        f" median {statistics.median(ratios):.2f}, B faster in"
        f" {sum(x > 1 for x in ratios)} of {len(ratios)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
