"""aiohttp beside httpx.AsyncClient on the fleet simulator's HTTP workload, measured in one run.

Run: `.venv/bin/python bench/bench_http_clients.py [--n N] [--rounds R] [--concurrency C]
[--body-bytes B]` (defaults 8000, 5, 16, 1024; about 3 minutes). Not part of `make bench`: it
starts a server.

What the simulator (`sim/driver.py`, behind `regionlock demo` and `regionlock simulate`) asks
of its HTTP client: C check-ins in flight at once (its default `--concurrency` is 16), each a
POST of a token of about a kilobyte (`application/jose`) over one pooled client limited to C
keep-alive connections, the JSON answer read and parsed. Here each client does exactly that
against an echo server that answers every POST with a JSON object carrying the body back.

The server is a raw ASGI app under uvicorn (uvloop and httptools, as `uvicorn[standard]`
installs them) in its own process, pinned to CPU 0. Each client runs in a fresh process of its
own, pinned to CPU 1, on the default asyncio loop as the simulator does (`asyncio.run`): a
warm-up of N/10 requests, then N measured. Each round runs both clients, the order alternating
from round to round, so that a drift in the machine's speed spreads over both.

Per client and round: requests per second, the client's CPU time per request (user + system,
its own process: the cost that competes with the agents' crypto in the simulator's process)
and the server's CPU time per request (to show whether the server or the client was the
limit). Then the medians over the rounds and the ratio httpx / aiohttp, round by round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

CLIENTS = ("aiohttp", "httpx")
SERVER_CPU = 0
CLIENT_CPU = 1


# --- the server ----------------------------------------------------------------------------


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST: {"token": <the body>} back as JSON; anything else: 200 with an empty object."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = json.dumps({"token": body.decode("ascii")}).encode() if body else b"{}"
    headers = [(b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(answer)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(echo_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the clients ---------------------------------------------------------------------------


_marks: list[tuple[float, float]] = []


def mark_phase() -> None:
    """Wall and CPU time (this process) at the end of a phase."""
    _marks.append((time.perf_counter(), time.process_time()))


async def drive_aiohttp(url: str, body: bytes, concurrency: int, counts: list[int]) -> int:
    """Sends sum(counts) POSTs, `counts` phase by phase; returns how many failed."""
    import aiohttp

    failures = 0
    async with aiohttp.ClientSession(
        base_url=url,
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=60),
    ) as session:

        async def worker(todo: list[int]) -> None:
            nonlocal failures
            while todo[0] > 0:
                todo[0] -= 1
                async with session.post(
                    "/v1/checkin", data=body, headers={"content-type": "application/jose"}
                ) as response:
                    reply = await response.json(content_type=None)
                    if response.status != 200 or len(reply["token"]) != len(body):
                        failures += 1

        for count in counts:
            todo = [count]
            await asyncio.gather(*(worker(todo) for _ in range(concurrency)))
            mark_phase()
    return failures


async def drive_httpx(url: str, body: bytes, concurrency: int, counts: list[int]) -> int:
    """Sends sum(counts) POSTs, `counts` phase by phase; returns how many failed."""
    import httpx

    failures = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker(todo: list[int]) -> None:
            nonlocal failures
            while todo[0] > 0:
                todo[0] -= 1
                response = await client.post(
                    "/v1/checkin", content=body, headers={"content-type": "application/jose"}
                )
                reply = response.json()
                if response.status_code != 200 or len(reply["token"]) != len(body):
                    failures += 1

        for count in counts:
            todo = [count]
            await asyncio.gather(*(worker(todo) for _ in range(concurrency)))
            mark_phase()
    return failures


def run_client(lib: str, url: str, n: int, concurrency: int, body_bytes: int) -> None:
    body = (b"eyJhbGciOiJFZERTQSJ9." * (body_bytes // 21 + 1))[:body_bytes]  # token-like ASCII
    drive = drive_aiohttp if lib == "aiohttp" else drive_httpx
    mark_phase()
    failures = asyncio.run(drive(url, body, concurrency, [max(n // 10, concurrency), n]))
    (_, _), (w1, c1), (w2, c2) = _marks
    print(json.dumps({"seconds": w2 - w1, "cpu_s": c2 - c1, "n": n, "failures": failures}))


# --- the run -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(pid, {cpu})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=8_000, help="measured requests per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16, help="as the simulator's default")
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument("--role", choices=["run", "server", *CLIENTS], default="run")
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        serve(args.port)
        return 0
    if args.role in CLIENTS:
        run_client(args.role, args.url, args.n, args.concurrency, args.body_bytes)
        return 0

    import aiohttp
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    me = [sys.executable, __file__]
    server = subprocess.Popen([*me, "--role", "server", "--port", str(port)])
    pin(server.pid, SERVER_CPU)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the echo server did not start") from None
                time.sleep(0.1)
        print(
            f"{args.n} POSTs of {args.body_bytes} B at concurrency {args.concurrency}, "
            f"{args.rounds} rounds; Python {sys.version.split()[0]}, aiohttp "
            f"{aiohttp.__version__}, httpx {httpx.__version__}; server pinned to CPU "
            f"{SERVER_CPU}, clients to CPU {CLIENT_CPU} ({os.cpu_count()} CPUs), "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        print(
            f"{'round':>5} {'client':>8} {'req/s':>8} {'client us/req':>14} {'server us/req':>14}"
        )
        results: dict[str, list[dict[str, float]]] = {lib: [] for lib in CLIENTS}
        for r in range(args.rounds):
            for lib in CLIENTS if r % 2 == 0 else CLIENTS[::-1]:
                common = ["--n", str(args.n), "--concurrency", str(args.concurrency)]
                common += ["--body-bytes", str(args.body_bytes), "--url", url]
                client = subprocess.Popen(
                    [*me, "--role", lib, *common], stdout=subprocess.PIPE, text=True
                )
                pin(client.pid, CLIENT_CPU)
                # The server's CPU over the whole client process, warm-up included: an upper
                # bound per measured request, enough to tell which side was the limit.
                before = cpu_seconds(server.pid)
                out, _ = client.communicate()
                served = cpu_seconds(server.pid) - before
                if client.returncode:
                    raise SystemExit(f"the {lib} client failed")
                got = json.loads(out)
                total = got["n"] + max(got["n"] // 10, args.concurrency)
                row = {
                    "rate": got["n"] / got["seconds"],
                    "client_us": got["cpu_s"] / got["n"] * 1e6,
                    "server_us": served / total * 1e6,
                    "failures": got["failures"],
                }
                results[lib].append(row)
                failed = f"  {got['failures']} failed" if got["failures"] else ""
                print(
                    f"{r + 1:>5} {lib:>8} {row['rate']:>8,.0f} {row['client_us']:>14,.0f} "
                    f"{row['server_us']:>14,.0f}{failed}"
                )
    finally:
        server.terminate()
        server.wait(timeout=10)

    print("\nmedians over the rounds")
    for lib in CLIENTS:
        rows = results[lib]
        print(
            f"{lib:>8}: {statistics.median(x['rate'] for x in rows):,.0f} req/s, "
            f"client {statistics.median(x['client_us'] for x in rows):,.0f} us/req, "
            f"server {statistics.median(x['server_us'] for x in rows):,.0f} us/req"
        )
    rate = [
        h["rate"] / a["rate"] for a, h in zip(results["aiohttp"], results["httpx"], strict=True)
    ]
    cpu = [
        h["client_us"] / a["client_us"]
        for a, h in zip(results["aiohttp"], results["httpx"], strict=True)
    ]
    print(
        f"httpx / aiohttp, round by round: req/s {statistics.median(rate):.2f} "
        f"[{min(rate):.2f}-{max(rate):.2f}], client CPU per request {statistics.median(cpu):.2f} "
        f"[{min(cpu):.2f}-{max(cpu):.2f}]"
    )
    return 1 if any(x["failures"] for rows in results.values() for x in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
