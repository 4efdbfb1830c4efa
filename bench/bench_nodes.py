"""Several service nodes on one PostgreSQL: does throughput add up? (issue 16, "Several nodes")

Run: `.venv/bin/python bench/bench_nodes.py [--nodes 1,2,3] [--node-cpu 0.3] [--seconds 8]
[--rounds 3]` (about 4 minutes). Needs `wrk`, a PostgreSQL server that `--pg-admin-url` can
create databases on, and the right to make CPU cgroups (root; cgroup v1 or v2). Not part of
`make bench`.

Why this shape: on one machine, nodes compete for its cores with each other, with the load
generator and with PostgreSQL, so two nodes flat out on two cores measure the machine, not the
design (bench_checkin.py's 2-worker rows show that: PostgreSQL's backends take 40 % of a core
beside the workers). Separate hosts each bring their own CPU. This benchmark gives each node a
CPU budget of its own, as a small host would have: every `regionlock serve` node (1 worker, its
own port, sharing nothing with the others but the database) runs in a CPU cgroup capped at
`--node-cpu` of one core (CFS quota over a 10 ms period). With the nodes' budgets, PostgreSQL
and the load generators still inside this machine's two cores, the nodes are the bottleneck,
and the question is the design's: does a second node bring a second node's worth of check-ins,
or does something shared (a lock, the audit trail's heads, the database) hold it back?

Each round, for each node count in turn (the order alternates between rounds):
1. the nodes start, and each joins its own cgroup once it answers; idle-priority processes
   keep every CPU awake (`Ballast`: on this VM a half-idle machine makes a lone node look
   slower; `--no-ballast` leaves them out);
2. each node gets its own wrk (1 thread, `--concurrency` keep-alive connections), sending
   check-in tokens signed beforehand for its own share of the fleet: device i goes to node
   i mod k, so each device's counters reach one node, in order (the same check-in sent to two
   nodes at once is test_two_nodes.py's subject);
3. a warm-up that is thrown away (one check-in of every device of the node's share, so that
   its records are in the node's memory), then `--seconds` measured, all wrks at once.

Reported per node count (medians over rounds): check-ins a second in all and per node; the
scaling, rate(k) / (k x rate(1)) from each round's own runs, 1.0 meaning perfectly additive;
the nodes' CPU over their budgets, and the share of their CFS periods in which they were
throttled (both near 1: the budgets, not the database, set the rate); CPU per check-in of
the nodes and of PostgreSQL's backends (read once the nodes have finished what was in flight,
over the rows stored meanwhile); the share of the busy database backends, sampled every
20 ms, that were waiting on a heavyweight lock (nodes serialising on a shared row would show
there: device rows cannot, as each device talks to one node); the machine's busy share, the
ballast's left out (near 2 cores: the machine, not the nodes, set the rate, and the report
says so); the worst node's p99 from wrk. That p99 is a closed loop's: by Little's law, 32
connections at about 320 answers a second wait about 100 ms on average, whatever the service
does; bench_latency.py measures latency.

Checks: every answer is a 200 (others are counted and the row flagged), and the store holds as
many more check-in rows as there were 200s, up to the requests in flight when the wrks stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bench_checkin as bc

PERIOD_US = 10_000  # CFS period: short, so that a throttled node waits at most this long
WARMUP_MAX_S = 120.0  # the warm-up ends once every device has checked in, long before this
WRK = ["wrk", "-t1", "--timeout", "30s"]
SCALING_TARGET = 0.9  # two nodes bring at least 1.8 times one node's check-ins


# -- CPU budgets ---------------------------------------------------------------------------------


class CpuBudget:
    """A CPU cgroup capped at `share` of one core, made for the block and removed after it.
    A node joins it once it answers: its start (loading the location data) is not measured,
    and would take minutes at a small budget."""

    V1 = Path("/sys/fs/cgroup/cpu")
    V2 = Path("/sys/fs/cgroup")

    def __init__(self, name: str, share: float) -> None:
        self.share = share
        v2 = (self.V2 / "cgroup.controllers").exists()
        self.path = (self.V2 if v2 else self.V1) / name
        self.v2 = v2

    def __enter__(self) -> CpuBudget:
        quota = int(self.share * PERIOD_US)
        try:
            self.path.mkdir(exist_ok=True)
            if self.v2:
                with contextlib.suppress(OSError):  # the controller may be enabled already
                    (self.V2 / "cgroup.subtree_control").write_text("+cpu")
                (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.path.rmdir()
            raise SystemExit(
                f"cannot make a CPU cgroup at {self.path} ({exc}): run as root on a machine"
                " with a writable cgroup file system, or with --node-cpu 0 (nodes uncapped,"
                " sharing the machine's cores: that measures the machine, not the design)"
            ) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()  # fails while a process is still inside: see sweep()

    @classmethod
    def sweep(cls) -> None:
        """Remove the empty groups that earlier runs of this benchmark left behind."""
        for root in (cls.V1, cls.V2):
            for group in root.glob("regionlock-bench-node-*") if root.is_dir() else []:
                with contextlib.suppress(OSError):
                    group.rmdir()

    def admit(self, root: int) -> None:
        """Put a process and everything it has started into the group."""
        for pid in _tree(root):
            with contextlib.suppress(ProcessLookupError):
                (self.path / "cgroup.procs").write_text(str(pid))

    def throttled(self) -> tuple[int, int]:
        """(periods, throttled periods) so far."""
        stat = dict(
            line.split()
            for line in (self.path / "cpu.stat").read_text().splitlines()
            if line.strip()
        )
        return int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))


class Ballast:
    """Processes that spin at idle priority (SCHED_IDLE: they run only when nothing else wants
    a CPU), one a CPU, inside the block. Without them, one node alone, the machine half idle,
    spent 1,093 us of CPU a check-in against 899 for each of two nodes side by side
    (2026-12-08 03:55 UTC), which read as 1.21 of perfect scaling; with them, 933 and 878 us
    (1.03). Why a half-idle VM makes a node cost more CPU was not separated (a guess: virtual
    CPUs that halt and wake, and caches cooled meanwhile). Kept busy in every run, the runs
    compare the nodes rather than how idle the machine was."""

    CODE = "import os\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True: pass"

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Ballast:
        for _ in range(os.cpu_count() or 1):
            self.procs.append(subprocess.Popen([sys.executable, "-c", self.CODE]))
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()

    def cpu(self) -> float:
        """CPU seconds the ballast has used so far."""
        return bc.pids_cpu([proc.pid for proc in self.procs])


class NoBudget:
    """--node-cpu 0: nodes run uncapped."""

    def admit(self, root: int) -> None:
        pass

    def __enter__(self) -> NoBudget:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def throttled(self) -> tuple[int, int]:
        return 0, 0


def _budget(share: float, j: int) -> CpuBudget | NoBudget:
    return CpuBudget(f"regionlock-bench-node-{os.getpid()}-{j}", share) if share > 0 else NoBudget()


def _tree(root: int) -> list[int]:
    """`root` and its live descendants."""
    parents = {pid: bc._parent(pid) for pid in bc._pids()}
    out, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        out.append(pid)
        frontier.extend(p for p, parent in parents.items() if parent == pid)
    return out


# -- one run of k nodes --------------------------------------------------------------------------


@dataclass
class Run:
    nodes: int
    rate: float  # 200s a second, all nodes
    per_node: list[float]
    p99_ms: list[float]
    throttled: float  # share of the nodes' CFS periods in which they were throttled
    used: float  # the nodes' CPU over their budgets, in the measured window
    node_us: float  # the nodes' CPU per check-in answered 200
    db_us: float  # PostgreSQL's backends' CPU per check-in
    lock_waits: float  # share of busy backend samples waiting on a heavyweight lock
    locks: Counter[str]  # those samples by the kind of lock
    waiting: Counter[str]  # and by the statement that waited (its start)
    busy: float  # the machine's busy share, in cores, the ballast's left out
    errors: dict[str, int]
    stored_ok: bool
    stored_note: str


def one_run(
    store: bc.Store, k: int, args: argparse.Namespace, tmp: Path, lua: Path, rnd: int
) -> Run:
    fleet = store.fleet
    shares = [range(j, fleet.n, k) for j in range(k)]
    per_node_rate = 2500.0 if args.node_cpu <= 0 else 2500.0 * args.node_cpu + 200
    bc.wait_for_quiet(args.quiet_wait)
    with contextlib.ExitStack() as stack:
        ballast = stack.enter_context(Ballast()) if args.ballast else None
        budgets = [_budget(args.node_cpu, j) for j in range(k)]
        for budget in budgets:
            stack.enter_context(budget)
        servers = [stack.enter_context(bc.Server(store.url, 1, None)) for j in range(k)]
        for budget, server in zip(budgets, servers, strict=True):
            assert server.proc is not None
            budget.admit(server.proc.pid)
        for j, server in enumerate(servers):  # each node answers before the load starts
            status, body = server.post_checkin(fleet.tokens(1, shares[j])[0])
            if status != 200:
                raise SystemExit(f"smoke check-in on node {j} failed: {status} {body}")
        # The warm-up: one check-in of every device of the node's share, so that each node
        # has its devices' records in memory, as a node that has run a while has.
        warm = [
            bc.write_tokens(tmp / f"warm-{j}.txt", fleet.tokens(len(shares[j]), shares[j]))
            for j in range(k)
        ]
        measured = [
            bc.write_tokens(
                tmp / f"run-{j}.txt",
                fleet.tokens(int(per_node_rate * args.seconds * 1.5), shares[j]),
            )
            for j in range(k)
        ]
        warmed = _warm_up(servers, warm, sum(map(len, shares)), store.url, args.concurrency, lua)
        # Counted after the warm-up: the stored check is of the measured run (and of warm-up
        # check-ins still in flight when its wrks stopped).
        before = bc.count_checkins(store.url)
        pids = bc.postgres_backends(args.pg_admin_url, store.url)
        roots = [s.proc.pid for s in servers if s.proc is not None]
        n0 = [bc.tree_cpu(pid) for pid in roots]
        d0, b0, t0 = bc.pids_cpu(pids), bc.machine_busy(), time.monotonic()
        spun0 = ballast.cpu() if ballast else 0.0
        th0 = [b.throttled() for b in budgets]
        with LockWaits(args.pg_admin_url, store.url) as waits:
            loads = _parallel_wrk(servers, measured, args.seconds, args.concurrency, lua)
        # The CPU is read once the nodes have finished what was in flight when the wrks
        # stopped, and divided by the rows stored meanwhile: those check-ins' CPU and count
        # both fall inside the window.
        after = _settled_count(store.url)
        n1 = [bc.tree_cpu(pid) for pid in roots]
        now_pids = bc.postgres_backends(args.pg_admin_url, store.url)
        d1, b1, wall = bc.pids_cpu(pids), bc.machine_busy(), time.monotonic() - t0
        born = [pid for pid in now_pids if pid not in pids]  # all their CPU is the window's
        d1 += bc.pids_cpu(born)
        spun = (ballast.cpu() if ballast else 0.0) - spun0
        th1 = [b.throttled() for b in budgets]
    answered = sum(load.statuses.get("200", 0) for load in loads)
    stored = after - before
    extra = stored - answered
    stored_ok = 0 <= extra <= k * args.concurrency  # in flight when the run's wrks stopped
    errors: dict[str, int] = {}
    for load in loads:
        for kind, n in load.errors().items():
            errors[kind] = errors.get(kind, 0) + n
    if not warmed:
        errors["warm-up not finished"] = errors.get("warm-up not finished", 0) + 1
    if any(load.exhausted for load in loads):
        errors["tokens ran out"] = errors.get("tokens ran out", 0) + 1
    if any(pid not in now_pids for pid in pids):
        errors["a backend exited (its CPU uncounted)"] = 1
    periods = sum(b[0] - a[0] for a, b in zip(th0, th1, strict=True))
    throttled = sum(b[1] - a[1] for a, b in zip(th0, th1, strict=True))
    rates = [load.statuses.get("200", 0) / load.seconds for load in loads]
    total = sum(rates)
    run = Run(
        nodes=k,
        rate=total,
        per_node=rates,
        p99_ms=[load.p99_ms for load in loads],
        throttled=throttled / periods if periods else float("nan"),
        used=(sum(n1) - sum(n0)) / (k * args.node_cpu * wall) if args.node_cpu > 0 else 0.0,
        node_us=(sum(n1) - sum(n0)) / stored * 1e6 if stored else float("nan"),
        db_us=(d1 - d0) / stored * 1e6 if stored else float("nan"),
        lock_waits=waits.share(),
        locks=waits.locks(),
        waiting=waits.waiting,
        busy=(b1 - b0 - spun) / wall,
        errors=errors,
        stored_ok=stored_ok,
        stored_note=f"{stored:,} rows stored for {answered:,} 200s ({extra} more)",
    )
    print(
        f"  round {rnd}, {k} node(s): {total:,.0f} check-ins/s"
        f" ({', '.join(f'{r:,.0f}' for r in rates)}), budget used {run.used:.0%},"
        f" lock waits {run.lock_waits:.1%} {dict(run.locks)}, machine {run.busy:.2f} cores,"
        f" {run.stored_note}",
        file=sys.stderr,
    )
    return run


def _settled_count(url: str, quiet_s: float = 0.3, most_s: float = 10.0) -> int:
    """The store's check-in count once it has stopped growing for `quiet_s`."""
    last, since = bc.count_checkins(url), time.monotonic()
    deadline = since + most_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = bc.count_checkins(url)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


class LockWaits:
    """Samples, every 20 ms inside the block, what the bench database's busy backends wait
    on (pg_stat_activity): the share waiting on a heavyweight lock (a row, a transaction) is
    what nodes serialising on something shared would show."""

    def __init__(self, admin_url: str, url: str) -> None:
        self.admin_url, self.name = admin_url, url.rsplit("/", 1)[1]
        self.seen: Counter[str] = Counter()
        self.waiting: Counter[str] = Counter()  # the statements waiting on a lock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psycopg

        query = (
            "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), left(query, 60)"
            " FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
        )
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self._stop.wait(0.02):
                for kind, statement in conn.execute(query, (self.name,)).fetchall():
                    self.seen[kind] += 1
                    if kind.startswith("Lock:"):
                        self.waiting[" ".join(statement.split())] += 1

    def locks(self) -> Counter[str]:
        """Samples waiting on each kind of heavyweight lock (`extend`: a table or index
        growing by a page; `transactionid` and `tuple`: a row another transaction holds)."""
        return Counter(
            {k.split(":", 1)[1]: n for k, n in self.seen.items() if k.startswith("Lock:")}
        )

    def share(self) -> float:
        busy = sum(self.seen.values())
        return sum(self.locks().values()) / busy if busy else 0.0


class _Received:
    def __init__(self, url: str) -> None:
        self.url = url
        self.count = 0


@contextlib.contextmanager
def _receiver(wanted: bool) -> Iterator[_Received | None]:
    """With `wanted`: an HTTP receiver on a free local port that answers every POST with 200
    and counts them, and nodes allowed to send to it; else None."""
    if not wanted:
        yield None
        return
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    port = bc.free_port()
    got = _Received(f"http://127.0.0.1:{port}/hook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.count += 1
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    os.environ["REGIONLOCK_WEBHOOK_ALLOW_PRIVATE"] = "true"  # the nodes inherit it
    try:
        yield got
    finally:
        server.shutdown()
        os.environ.pop("REGIONLOCK_WEBHOOK_ALLOW_PRIVATE", None)


def _warm_up(
    servers: list[bc.Server], tokens: list[Path], rows: int, url: str, concurrency: int, lua: Path
) -> bool:
    """Each node's wrk sends its warm-up tokens until the store holds `rows` more check-ins
    (wrk 4.1 does not stop when a script's tokens run out), then is stopped. False if that
    took longer than WARMUP_MAX_S."""
    start = bc.count_checkins(url)
    wrk = [*WRK, f"-c{concurrency}", f"-d{WARMUP_MAX_S:g}s", "-s", str(lua)]
    procs = [
        subprocess.Popen(
            [*wrk, server.base, "--", "checkin", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for server, path in zip(servers, tokens, strict=True)
    ]
    deadline = time.monotonic() + WARMUP_MAX_S
    try:
        while time.monotonic() < deadline:
            # wrk builds one request at start that it never sends: a token a node unused.
            if bc.count_checkins(url) - start >= rows - len(servers):
                return True
            time.sleep(0.25)
        return False
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)  # wrk stops at once and prints its summary
        for proc in procs:
            proc.wait()


def _parallel_wrk(
    servers: list[bc.Server], tokens: list[Path], seconds: float, concurrency: int, lua: Path
) -> list[bc.Load]:
    """One wrk per node, all at once, each sending its own node's tokens."""
    loads: list[bc.Load | None] = [None] * len(servers)
    failures: list[BaseException] = []

    def go(j: int) -> None:
        try:
            loads[j] = bc.run_wrk(servers[j], "checkin", seconds, concurrency, lua, None, tokens[j])
        except BaseException as exc:  # re-raised on the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=go, args=(j,)) for j in range(len(servers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return [load for load in loads if load is not None]


# -- the report ----------------------------------------------------------------------------------


def _scaling(by: dict[int, list[Run]], k: int) -> list[float]:
    """Each round's rate of k nodes over k times the same round's one node: the VM's speed
    drifts between rounds, so a round is compared only with itself."""
    ones = by.get(1, [])
    return [r.rate / (k * one.rate) for r, one in zip(by[k], ones, strict=False) if one.rate]


def report(runs: list[Run], args: argparse.Namespace, meta: str) -> str:
    counts = sorted({r.nodes for r in runs})
    med = statistics.median
    by = {k: [r for r in runs if r.nodes == k] for k in counts}
    cap = f"{args.node_cpu:g} of a core each" if args.node_cpu > 0 else "uncapped"
    lines = [
        f"## Several nodes on one PostgreSQL (`bench_nodes.py`), nodes {cap}",
        "",
        meta,
        "",
        "| nodes | check-ins/s in all | per node | scaling | budget used | throttled"
        " | node CPU/check-in | PostgreSQL CPU/check-in | lock waits | machine busy"
        " | worst node's p99 | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for k in counts:
        rs = by[k]
        rate = med(r.rate for r in rs)
        ratios = _scaling(by, k)
        scaling = (
            f"{med(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if k > 1 and ratios else "-"
        )
        errors: dict[str, int] = {}
        for r in rs:
            for kind, n in r.errors.items():
                errors[kind] = errors.get(kind, 0) + n
        p99 = med(max(r.p99_ms) for r in rs)
        lines.append(
            f"| {k} | {rate:,.0f} | {rate / k:,.0f} | {scaling} | {med(r.used for r in rs):.0%} |"
            f" {med(r.throttled for r in rs):.0%} | {med(r.node_us for r in rs):,.0f} us |"
            f" {med(r.db_us for r in rs):,.0f} us | {med(r.lock_waits for r in rs):.1%} |"
            f" {med(r.busy for r in rs):.2f} cores |"
            f" {p99:.1f} ms | {', '.join(f'{n} {e}' for e, n in errors.items()) or 'none'} |"
        )
    lines.append("")
    for k in counts:
        ratios = _scaling(by, k)
        if k > 1 and ratios:
            verdict = "adds up" if med(ratios) >= SCALING_TARGET else "DOES NOT add up"
            lines.append(
                f"- {k} nodes: {med(ratios):.2f} of {k} times one node's rate, median of"
                f" {len(ratios)} rounds side by side: throughput {verdict}"
                f" (at least {SCALING_TARGET:g} counts)."
            )
    for k in counts:
        kinds: Counter[str] = sum((r.locks for r in by[k]), Counter())
        if kinds:
            statements: Counter[str] = sum((r.waiting for r in by[k]), Counter())
            lines.append(
                f"- Lock waits with {k} node(s), by kind (samples, all rounds): "
                + ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
                + "; by statement: "
                + "; ".join(f"`{q}...` {n}" for q, n in statements.most_common(3))
                + "."
            )
    busy_limit = 0.9 * (os.cpu_count() or 2)
    saturated = [r for r in runs if r.busy >= busy_limit]
    if saturated:
        lines.append(
            f"- {len(saturated)} run(s) kept the machine at least {busy_limit:.1f} cores busy:"
            " there the machine, not the nodes' budgets, set the rate."
        )
    db = med(r.db_us for r in runs)
    lines.append(
        f"- PostgreSQL's backends spent {db:,.0f} us of CPU a check-in (median of all runs):"
        f" one core of the database's backends serves about {1e6 / db:,.0f} check-ins a second"
        " on this machine (its WAL writer, checkpointer and autovacuum not counted)."
    )
    bad = [r for r in runs if not r.stored_ok]
    lines.append(
        "- Stored check: "
        + (
            "every run stored its 200s, and no more than were in flight - ok"
            if not bad
            else "MISMATCH: " + "; ".join(r.stored_note for r in bad)
        )
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="1,2,3", help="node counts, comma-separated")
    parser.add_argument(
        "--node-cpu",
        type=float,
        default=0.3,
        help="each node's CPU budget, a share of one core (default 0.3; 0: uncapped)",
    )
    parser.add_argument(
        "--no-ballast",
        dest="ballast",
        action="store_false",
        help="leave idle CPUs idle (see Ballast: on a VM, that makes a lone node look slower)",
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="register a webhook endpoint for every event, on a receiver in this process, so"
        " that each node's outbox runs as it does in production",
    )
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument(
        "--rounds", type=int, default=4, help="an even number balances a drift (default 4)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections per node")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="before each run, wait up to this long for a nearly idle second (0 to skip)",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=bc.pg_admin_url(),
        help="a PostgreSQL database to connect to for CREATE/DROP DATABASE",
    )
    args = parser.parse_args()
    counts = sorted({int(k) for k in args.nodes.split(",")})
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    if min(counts) < 1 or args.rounds < 1:
        print("--nodes and --rounds must be at least 1", file=sys.stderr)
        return 2
    if 0 < args.node_cpu < 0.1:
        print("--node-cpu below 0.1 of a core is too small a slice to mean much", file=sys.stderr)
        return 2
    if args.node_cpu > 0:
        CpuBudget.sweep()
    if args.devices < 8 * args.concurrency * max(counts):
        print(
            f"--devices {args.devices} is too few for {max(counts)} nodes of"
            f" {args.concurrency} connections: a device's next token could overtake its last",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    load_before = os.getloadavg()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as d:
        tmp = Path(d)
        lua = tmp / "checkin.lua"
        lua.write_text(bc.WRK_LUA)
        with bc.ready_store("postgresql", args, tmp) as store, _receiver(args.webhook) as got:
            if got is not None:
                bc.run_cli("webhook", "add", "--url", got.url, "--events", "*", "--db", store.url)
            for rnd in range(args.rounds):
                order = counts if rnd % 2 == 0 else counts[::-1]
                for k in order:
                    runs.append(one_run(store, k, args, tmp, lua, rnd))
    # Rounds in the order run; report() pairs each node count's i-th run with one node's i-th.
    load_after = os.getloadavg()
    hooked = (
        f" A webhook endpoint for every event, on a local receiver: {got.count:,} deliveries."
        if got is not None
        else ""
    )
    meta = (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {(time.monotonic() - started) / 60:.1f}"
        f" min, Python {platform.python_version()}, {os.cpu_count()} CPUs:"
        f" {args.devices} devices, each node 1 worker with {args.concurrency} wrk connections"
        f" (its own wrk, 1 thread), a warm-up of one check-in a device then {args.seconds:g} s,"
        f" {args.rounds} rounds (node counts in turn, the order alternating), medians."
        f" PostgreSQL and the wrks unpinned and uncapped on the same machine."
        f" Load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)."
        f"{hooked}"
    )
    print(report(runs, args, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
