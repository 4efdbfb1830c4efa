"""Per-request overhead of candidate ASGI frameworks and servers for the check-in service.

Run: `.venv/bin/python bench/bench_frameworks.py` (7 minutes on an idle machine, at most about
10 when other work shares it).
Needs the optional packages fastapi, starlette, litestar, uvicorn, httptools, uvloop and
granian in the venv (not project dependencies: this script is a one-off decision aid, which is
why `bench/run.py` does not call it) and the `wrk` load generator (`apt-get install -y wrk`).
Whatever is missing is skipped and named in the output.

Every candidate serves the same two endpoints:

- `GET /health` returns `{"ok": true}` (the "trivial endpoint" of issue 4);
- `POST /echo` takes a ~600-byte compact JWS (`Content-Type: application/jose`), splits it,
  base64url-decodes the payload segment, `json.loads` it and answers a ~300-byte JSON object
  shaped like a verdict: a JWS parse without the crypto. Each framework is written the way the
  service would use it (FastAPI: a typed `Annotated[..., Depends(...)]` dependency and a Pydantic
  response model; Litestar: `Provide` and a msgspec Struct; Starlette: `JSONResponse`); the
  raw ASGI callable is the baseline that every ratio refers to, measured in the same run on
  the same server with the same number of workers.

Load: `wrk` (a separate C process, HTTP/1.1 keep-alive) with 64 connections, a 2 s warm-up
that is thrown away, then 10 s measured. The machine has 2 cores, so the load generator
competes with the server: with one worker the server is pinned to CPU 1 and wrk to CPU 0
(`taskset`); with two workers nothing is pinned (the workers and wrk share both cores, so those
figures understate what two workers give behind a remote load balancer). Read the figures as
relative. The CPU columns give the share of one core used by the server (all its processes),
by wrk, and by everything else on the machine while measuring: other sessions share it, so the
script waits (within a budget) for the machine to be idle before each configuration, redoes a
measurement that others disturbed, and marks a row that stayed disturbed.

Two more FastAPI variants are defined but not run by default (`--frameworks "FastAPI lean"`,
`"FastAPI mounted"`): the answer serialised by hand, and the hot route as a plain Starlette route
inside the FastAPI app; they show where FastAPI's per-request cost goes.

Results go to stdout as a Markdown table and into `bench/frameworks-2026-11.md` between the
`results` markers (prose outside the markers is kept; `--no-write` skips this).
"""

import argparse
import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MD_PATH = HERE / "frameworks-2026-11.md"
START_MARK = "<!-- results:start (written by bench_frameworks.py) -->"
END_MARK = "<!-- results:end -->"

# --------------------------------------------------------------------------------------------
# The work every endpoint does (shared by all candidates so only the framework differs)
# --------------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def make_jws() -> bytes:
    """A compact JWS of about 600 bytes, shaped like a device check-in (fake signature)."""
    header = {"alg": "EdDSA", "kid": "dev-7c1f4e2a9b3d5f60"}
    payload = {
        "nonce": "q3Zr8TnW0bYx2KcLm5VpAe",
        "counter": 18234,
        "iat": 1795000000,
        "signals": {
            "ip": "2.144.0.1",
            "sim": [{"mcc": "262", "mnc": "01"}],
            "network": ["262-01", "262-02"],
            "gps": {"lat": 52.5200, "lon": 13.4050, "accuracy_m": 20},
            "timezone": "Europe/Berlin",
            "locale": "de_DE",
        },
        "device": {"model": "RL-X200", "sku": "RL-X200-EU-128", "firmware": "2026.10.3+b41027"},
    }
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(payload, separators=(",", ":")).encode())
    )
    signature = hashlib.sha512(signing_input.encode()).digest()  # 64 bytes, like Ed25519
    return (signing_input + "." + b64url(signature)).encode("ascii")


FAKE_TOKEN = "eyJhbGciOiJFZERTQSIsImtpZCI6InNydi0xIn0." + "p" * 16 + "." + "s" * 43


def parse_claims(body: bytes) -> dict[str, Any]:
    """Split a compact JWS and decode its payload: the non-crypto part of a verification."""
    parts = body.split(b".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    claims: dict[str, Any] = json.loads(b64url_decode(parts[1]))
    return claims


def verdict_fields(claims: dict[str, Any]) -> dict[str, Any]:
    """The ~300-byte answer (as plain data) built from the decoded claims."""
    return {
        "token": FAKE_TOKEN,
        "sub": "dev-7c1f4e2a9b3d5f60",
        "verdict": "allow",
        "reasons": [],
        "policy": "2026-11-01",
        "location": {"country": "DE", "subdivision": "DE-BE"},
        "nonce": claims["nonce"],
        "iat": claims["iat"],
        "exp": claims["iat"] + 86400,
    }


# --------------------------------------------------------------------------------------------
# The candidates (factories, so that importing this module for the raw app stays cheap)
# --------------------------------------------------------------------------------------------


def make_raw() -> Any:
    """Plain ASGI callable: the floor that any framework adds its overhead to."""
    json_headers = [(b"content-type", b"application/json")]
    health_body = b'{"ok":true}'
    not_found = b'{"detail":"not found"}'

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path, method = scope["path"], scope["method"]
        status = 200
        if path == "/health" and method == "GET":
            body = health_body
        elif path == "/echo" and method == "POST":
            chunks = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            claims = parse_claims(b"".join(chunks))
            body = json.dumps(verdict_fields(claims), separators=(",", ":")).encode()
        else:
            status, body = 404, not_found
        headers = [*json_headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def make_starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def echo(request: Request) -> JSONResponse:
        claims = parse_claims(await request.body())
        return JSONResponse(verdict_fields(claims))

    return Starlette(
        routes=[Route("/health", health), Route("/echo", echo, methods=["POST"])],
    )


def make_fastapi() -> Any:
    from typing import Annotated

    from fastapi import Depends, FastAPI, Request
    from pydantic import BaseModel

    class Location(BaseModel):
        country: str
        subdivision: str | None

    class Verdict(BaseModel):
        token: str
        sub: str
        verdict: str
        reasons: list[str]
        policy: str
        location: Location
        nonce: str
        iat: int
        exp: int

    async def jws_claims(request: Request) -> dict[str, Any]:
        return parse_claims(await request.body())

    Claims = Annotated[dict[str, Any], Depends(jws_claims)]

    app = FastAPI(title="bench")

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/echo")
    async def echo(claims: Claims) -> Verdict:
        return Verdict(**verdict_fields(claims))

    return app


def make_fastapi_lean() -> Any:
    """FastAPI with the hot route kept lean: same DI, answer serialised by hand.

    The response model stays in the OpenAPI description (`responses=`) but is not used to
    validate and encode each answer. Not in the default run; select it with --frameworks."""
    from typing import Annotated

    from fastapi import Depends, FastAPI, Request, Response
    from pydantic import BaseModel

    class Location(BaseModel):
        country: str
        subdivision: str | None

    class Verdict(BaseModel):
        token: str
        sub: str
        verdict: str
        reasons: list[str]
        policy: str
        location: Location
        nonce: str
        iat: int
        exp: int

    async def jws_claims(request: Request) -> dict[str, Any]:
        return parse_claims(await request.body())

    Claims = Annotated[dict[str, Any], Depends(jws_claims)]

    app = FastAPI(title="bench")

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/echo", response_class=Response, responses={200: {"model": Verdict}})
    async def echo(claims: Claims) -> Response:
        body = json.dumps(verdict_fields(claims), separators=(",", ":")).encode()
        return Response(body, media_type="application/json")

    return app


def make_fastapi_mounted() -> Any:
    """FastAPI app whose hot route is a plain Starlette route (no FastAPI DI or validation).

    The escape hatch if the check-in path must shed FastAPI's per-request cost while the
    admin API keeps it. Not in the default run; select it with --frameworks."""
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    app = FastAPI(title="bench")

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    async def echo(request: Request) -> Response:
        claims = parse_claims(await request.body())
        body = json.dumps(verdict_fields(claims), separators=(",", ":")).encode()
        return Response(body, media_type="application/json")

    app.add_route("/echo", echo, methods=["POST"])
    return app


def make_litestar() -> Any:
    import msgspec
    from litestar import Litestar, Request, get, post
    from litestar.di import Provide

    class Location(msgspec.Struct):
        country: str
        subdivision: str | None

    class Verdict(msgspec.Struct):
        token: str
        sub: str
        verdict: str
        reasons: list[str]
        policy: str
        location: Location
        nonce: str
        iat: int
        exp: int

    async def jws_claims(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
        return parse_claims(await request.body())

    @get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @post("/echo", status_code=200, dependencies={"claims": Provide(jws_claims)})
    async def echo(claims: dict[str, Any]) -> Verdict:
        fields = verdict_fields(claims)
        fields["location"] = Location(**fields["location"])
        return Verdict(**fields)

    return Litestar(route_handlers=[health, echo], debug=False)


@dataclass(frozen=True)
class Framework:
    name: str
    factory: str
    needs: tuple[str, ...]
    openapi_path: str | None
    default: bool = True


FRAMEWORKS = [
    Framework("raw ASGI", "make_raw", (), None),
    Framework("Starlette", "make_starlette", ("starlette",), None),
    Framework("FastAPI", "make_fastapi", ("fastapi", "pydantic"), "/openapi.json"),
    Framework("Litestar", "make_litestar", ("litestar", "msgspec"), "/schema/openapi.json"),
    Framework("FastAPI lean", "make_fastapi_lean", ("fastapi",), "/openapi.json", False),
    Framework("FastAPI mounted", "make_fastapi_mounted", ("fastapi",), "/openapi.json", False),
]

# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def server_command(server: str, factory: str, port: int, workers: int) -> list[str]:
    target = f"bench_frameworks:{factory}"
    bindir = Path(sys.executable).parent
    if server == "uvicorn":
        return [
            str(bindir / "uvicorn"),
            target,
            "--factory",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--workers={workers}",
            "--http=" + ("httptools" if have("httptools") else "h11"),
            "--loop=" + ("uvloop" if have("uvloop") else "asyncio"),
            "--no-access-log",
            "--log-level=warning",
            "--lifespan=on",
        ]
    return [
        str(bindir / "granian"),
        target,
        "--factory",
        "--interface=asgi",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--workers={workers}",
        "--loop=" + ("uvloop" if have("uvloop") else "asyncio"),
        "--http=1",
        "--no-ws",
        "--log-level=warning",
    ]


def server_label(server: str) -> str:
    if server == "uvicorn":
        http = "httptools" if have("httptools") else "h11"
        loop = "uvloop" if have("uvloop") else "asyncio"
        return f"uvicorn ({http}, {loop})"
    return "granian (" + ("uvloop" if have("uvloop") else "asyncio") + ")"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(url: str, data: bytes | None = None, ctype: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if ctype:
        request.add_header("Content-Type", ctype)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            if http(base + "/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not answer /health in time")


def group_stats(pgid: int) -> list[list[str]]:
    """/proc/PID/stat fields (after the command name) of the live processes of a group."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        # state(0) ppid(1) pgrp(2) ... utime(11) stime(12)
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(fields)
    return found


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) of every live process in a process group."""
    ticks = sum(int(f[11]) + int(f[12]) for f in group_stats(pgid))
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores, steal included) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit: float, threshold: float = 0.15) -> tuple[float, float]:
    """Wait (at most `limit` s) until the machine is idle: other sessions share it.

    Returns (seconds waited, load in cores seen last)."""
    started = time.monotonic()
    while True:
        busy0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(0.5)
        load = (machine_busy_seconds() - busy0) / (time.monotonic() - t0)
        waited = time.monotonic() - started
        if load < threshold or waited >= limit:
            return waited, load
        time.sleep(1.0)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server this script started: its own process group, by id."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    # workers that outlive their parent (should not happen) are in the same group
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and group_stats(proc.pid):
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Load generation with wrk
# --------------------------------------------------------------------------------------------

WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50":%.1f,"p99":%.1f,"max":%.1f,'
    .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_script(directory: Path, body: bytes | None) -> Path:
    lines = []
    if body is not None:
        lines += [
            'wrk.method = "POST"',
            f"wrk.body = {json.dumps(body.decode('ascii'))}",
            'wrk.headers["Content-Type"] = "application/jose"',
        ]
    path = directory / ("post.lua" if body is not None else "get.lua")
    path.write_text("\n".join(lines) + WRK_DONE)
    return path


@dataclass
class Measure:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float  # share of one core
    client_cpu: float
    other_cpu: float  # everything else on the machine (other sessions' work, kernel threads)


def run_wrk(
    url: str, script: Path, seconds: int, connections: int, pin: str | None
) -> dict[str, Any]:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout=5s",
        f"-s{script}",
        url,
    ]
    if pin is not None:
        cmd = ["taskset", "-c", pin, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    if not match:
        raise RuntimeError("wrk gave no summary:\n" + out)
    result: dict[str, Any] = json.loads(match.group(1))
    return result


DISTURBED = 0.25  # others' CPU (share of one core) above which a measurement is redone


@dataclass
class Retries:
    left: int
    used: int = 0


def measure(
    url: str,
    script: Path,
    pgid: int,
    warmup: int,
    seconds: int,
    connections: int,
    pin: str | None,
    retries: Retries,
) -> Measure:
    """Warm up, then measure; redo it (within the run's budget) if others used the CPU."""
    run_wrk(url, script, warmup, connections, pin)
    best = measure_once(url, script, pgid, seconds, connections, pin)
    while best.other_cpu > DISTURBED and retries.left > 0:
        retries.left -= 1
        retries.used += 1
        wait_quiet(10)
        again = measure_once(url, script, pgid, seconds, connections, pin)
        if again.other_cpu < best.other_cpu:
            best = again
    return best


def measure_once(
    url: str, script: Path, pgid: int, seconds: int, connections: int, pin: str | None
) -> Measure:
    cpu0 = group_cpu_seconds(pgid)
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = machine_busy_seconds()
    wall0 = time.monotonic()
    r = run_wrk(url, script, seconds, connections, pin)
    wall = time.monotonic() - wall0
    busy1 = machine_busy_seconds()
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = group_cpu_seconds(pgid)
    client = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    server = cpu1 - cpu0
    other = max(0.0, (busy1 - busy0) - server - client)
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return Measure(
        rps=r["requests"] / (r["duration_us"] / 1e6),
        p50_ms=r["p50"] / 1000,
        p99_ms=r["p99"] / 1000,
        errors=errors,
        server_cpu=server / wall,
        client_cpu=client / wall,
        other_cpu=other / wall,
    )


# --------------------------------------------------------------------------------------------
# One configuration: start, check, measure both endpoints, stop
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    framework: str
    server: str
    workers: int
    health: Measure | None = None
    echo: Measure | None = None
    echo_bytes: int = 0
    openapi: str = ""
    error: str = ""


def check_app(base: str, fw: Framework, jws: bytes, row: Row) -> None:
    status, body = http(base + "/health")
    if status != 200 or json.loads(body) != {"ok": True}:
        raise RuntimeError(f"/health answered {status} {body[:80]!r}")
    status, body = http(base + "/echo", jws, "application/jose")
    answer = json.loads(body)
    expected = verdict_fields(parse_claims(jws))
    if status != 200 or answer != expected:
        raise RuntimeError(f"/echo answered {status} {body[:120]!r}")
    row.echo_bytes = len(body)
    if fw.openapi_path:
        status, body = http(base + fw.openapi_path)
        doc = json.loads(body)
        row.openapi = f"{doc.get('openapi', '?')}, {len(doc.get('paths', {}))} paths"
    else:
        row.openapi = "none built in"


def run_config(
    fw: Framework,
    server: str,
    workers: int,
    args: argparse.Namespace,
    scripts: dict[str, Path],
    retries: Retries,
) -> Row:
    row = Row(fw.name, server, workers)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = server_command(server, fw.factory, port, workers)
    server_pin = "1" if workers == 1 else None
    client_pin = "0" if workers == 1 else None
    if server_pin is not None:
        cmd = ["taskset", "-c", server_pin, *cmd]
    env = dict(os.environ, PYTHONPATH=str(HERE), PYTHONDONTWRITEBYTECODE="1")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_ready(base, proc)
            if workers > 1:
                time.sleep(1.5)  # let every worker finish importing before the warm-up
            check_app(base, fw, scripts["jws"].read_bytes(), row)
            common = (
                proc.pid,
                args.warmup,
                args.duration,
                args.connections,
                client_pin,
                retries,
            )
            row.health = measure(base + "/health", scripts["get"], *common)
            row.echo = measure(base + "/echo", scripts["post"], *common)
            if proc.poll() is not None:
                raise RuntimeError(f"server died during the run (status {proc.returncode})")
        except Exception as exc:  # keep going with the other candidates, and say why
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
            row.error = f"{type(exc).__name__}: {exc}" + (f" [{' / '.join(tail)}]" if tail else "")
        finally:
            stop(proc)
    return row


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def results_table(rows: list[Row]) -> str:
    base = {
        (r.server, r.workers): r for r in rows if r.framework == "raw ASGI" and r.echo and r.health
    }
    out = [
        "| framework | server | workers | GET /health req/s | p50 / p99 ms | vs raw "
        "| POST /echo req/s | p50 / p99 ms | vs raw | echo / health | server CPU | wrk CPU "
        "| others' CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.error or not r.health or not r.echo:
            out.append(
                f"| {r.framework} | {server_label(r.server)} | {r.workers} | failed: "
                f"{r.error.replace('|', '/')} | | | | | | | | | |"
            )
            continue
        raw = base.get((r.server, r.workers))
        h_ratio = f"{r.health.rps / raw.health.rps:.2f}" if raw and raw.health else "-"
        e_ratio = f"{r.echo.rps / raw.echo.rps:.2f}" if raw and raw.echo else "-"
        errs = r.health.errors + r.echo.errors
        mark = " !" if max(r.health.other_cpu, r.echo.other_cpu) > DISTURBED else ""
        flag = f" ({errs} errors)" if errs else ""
        out.append(
            f"| {r.framework} | {server_label(r.server)} | {r.workers} "
            f"| {fmt_rate(r.health.rps)} | {r.health.p50_ms:.1f} / {r.health.p99_ms:.1f} "
            f"| {h_ratio} "
            f"| {fmt_rate(r.echo.rps)}{flag} | {r.echo.p50_ms:.1f} / {r.echo.p99_ms:.1f} "
            f"| {e_ratio} | {r.echo.rps / r.health.rps:.2f} "
            f"| {r.echo.server_cpu:.0%} | {r.echo.client_cpu:.0%} "
            f"| {max(r.health.other_cpu, r.echo.other_cpu):.0%}{mark} |"
        )
    return "\n".join(out)


def machine_description() -> str:
    info: dict[str, str] = {}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    cpu = (
        f"{info.get('Model name', '?')}, {info.get('CPU(s)', '?')} CPUs "
        f"({info.get('Core(s) per socket', '?')} cores x {info.get('Thread(s) per core', '?')} "
        f"thread), L2 {info.get('L2 cache', '?')}, L3 {info.get('L3 cache', '?')}, "
        f"hypervisor {info.get('Hypervisor vendor', 'none')}"
    )
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    dists = [
        "fastapi",
        "starlette",
        "litestar",
        "pydantic",
        "pydantic-core",
        "msgspec",
        "uvicorn",
        "httptools",
        "uvloop",
        "granian",
    ]
    versions = ", ".join(f"{d} {version(d)}" for d in dists)
    return "\n".join(
        [
            f"- CPU (`lscpu`): {cpu}; {mem}",
            f"- OS: {platform.system()} {platform.release()}, {platform.libc_ver()[0]} "
            f"{platform.libc_ver()[1]}",
            f"- Python {platform.python_version()} ({platform.python_implementation()})",
            f"- Packages: {versions}",
            f"- Load generator: {wrk[0].strip() if wrk else 'wrk'}",
        ]
    )


def write_markdown(text: str) -> None:
    block = f"{START_MARK}\n{text}\n{END_MARK}"
    if MD_PATH.exists():
        current = MD_PATH.read_text()
        if START_MARK in current and END_MARK in current:
            head, _, rest = current.partition(START_MARK)
            _, _, tail = rest.partition(END_MARK)
            MD_PATH.write_text(head + block + tail)
            return
        MD_PATH.write_text(current.rstrip("\n") + "\n\n" + block + "\n")
        return
    MD_PATH.write_text("# ASGI frameworks and servers (2026-11)\n\n" + block + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds measured (10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up (2)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", default="1,2", help="comma-separated (1,2)")
    parser.add_argument("--servers", default="uvicorn,granian")
    parser.add_argument(
        "--frameworks",
        default=",".join(f.name for f in FRAMEWORKS if f.default),
        help="names, comma-separated (also: " + ", ".join(f.name for f in FRAMEWORKS) + ")",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20,
        help="before each configuration, wait up to this many seconds for the machine to be idle",
    )
    parser.add_argument(
        "--quiet-budget", type=float, default=60, help="total seconds of such waiting (60)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=6,
        help="measurements that may be redone in all when other work disturbed them (6)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update the .md file")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print("wrk is not installed: `apt-get install -y wrk`", file=sys.stderr)
        return 2
    skipped: list[str] = []
    wanted = {n.strip().lower() for n in args.frameworks.split(",")}
    frameworks = []
    for fw in FRAMEWORKS:
        if fw.name.lower() not in wanted:
            continue
        missing = [m for m in fw.needs if not have(m)]
        if missing:
            skipped.append(f"{fw.name} (missing {', '.join(missing)})")
        else:
            frameworks.append(fw)
    servers = []
    for server in (s.strip() for s in args.servers.split(",")):
        if have(server) and (Path(sys.executable).parent / server).exists():
            servers.append(server)
        else:
            skipped.append(f"{server} (not installed)")
    workers_list = [int(w) for w in args.workers.split(",")]

    jws = make_jws()
    sample_answer = json.dumps(verdict_fields(parse_claims(jws)), separators=(",", ":"))
    total = len(frameworks) * len(servers) * len(workers_list)
    est = total * (2 * (args.warmup + args.duration) + 2)
    worst = est + args.quiet_budget + args.retries * (args.duration + 10)
    print(
        f"{total} configurations, {est / 60:.0f} to {worst / 60:.0f} min (more when other work "
        f"shares the machine); request body {len(jws)} bytes, "
        f"answer ~{len(sample_answer)} bytes, {args.connections} connections, "
        f"{args.warmup} s warm-up + {args.duration} s per endpoint",
        flush=True,
    )
    if skipped:
        print("skipped: " + "; ".join(skipped), flush=True)

    rows: list[Row] = []
    started = time.monotonic()
    waited_total = 0.0
    retries = Retries(args.retries)
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        scripts = {
            "get": wrk_script(tmpdir, None),
            "post": wrk_script(tmpdir, jws),
            "jws": tmpdir / "body.jws",
        }
        scripts["jws"].write_bytes(jws)
        for server in servers:
            for workers in workers_list:
                for fw in frameworks:
                    limit = min(args.quiet_wait, max(0.0, args.quiet_budget - waited_total))
                    waited, load = wait_quiet(limit)
                    waited_total += waited
                    if load >= 0.15:
                        print(f"  (machine busy: {load:.0%} of a core used by others)", flush=True)
                    row = run_config(fw, server, workers, args, scripts, retries)
                    rows.append(row)
                    if row.error:
                        print(f"  {fw.name:9} {server:8} w={workers}: FAILED {row.error}")
                    else:
                        assert row.health and row.echo
                        print(
                            f"  {fw.name:9} {server:8} w={workers}: "
                            f"health {row.health.rps:8,.0f}/s p99 {row.health.p99_ms:5.1f} ms"
                            f" | echo {row.echo.rps:8,.0f}/s p99 {row.echo.p99_ms:5.1f} ms"
                            f" | others' CPU "
                            f"{max(row.health.other_cpu, row.echo.other_cpu):.0%}"
                            f" | OpenAPI: {row.openapi}",
                            flush=True,
                        )
    elapsed = time.monotonic() - started

    table = results_table(rows)
    openapi = sorted({(r.framework, r.openapi) for r in rows if r.openapi})
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    pinning = (
        "1 worker: server pinned to CPU 1, wrk to CPU 0 (`taskset`); "
        "2 workers: nothing pinned, server and wrk share both cores"
    )
    report = "\n".join(
        [
            f"Run {stamp}, {elapsed / 60:.1f} min: `{' '.join(['python', *sys.argv])}`. "
            f"wrk, 1 thread, {args.connections} connections, HTTP/1.1 keep-alive, "
            f"{args.warmup} s warm-up then {args.duration} s per endpoint; {pinning}. "
            f"Request body {len(jws)} bytes (`application/jose`), answer "
            f"~{len(sample_answer)} bytes. 'vs raw': requests/s over the raw ASGI callable "
            "on the same server and workers in this run; 'echo / health': the check-in-like "
            "endpoint over the trivial one of the same server; CPU columns: share of one core "
            "during the measured POST /echo run (server: all its processes; others': the rest "
            "of the machine, i.e. other sessions' work, the worse of the two endpoints' runs; "
            "rows where it is high were disturbed). Before each configuration the script "
            f"waited up to {args.quiet_wait:.0f} s for the machine to be idle "
            f"({waited_total:.0f} s waited in all), and a measurement during which others "
            f"used more than {DISTURBED:.0%} of a core was redone once the machine was idle "
            f"again, keeping the cleaner run ({retries.used} redone, budget {args.retries}); "
            "a row marked ! was still disturbed.",
            "",
            table,
            "",
            "OpenAPI document served: "
            + "; ".join(f"{name}: {what}" for name, what in openapi)
            + ".",
            "",
            "Machine:",
            "",
            machine_description(),
        ]
        + (["", "Skipped: " + "; ".join(skipped) + "."] if skipped else [])
    )
    print()
    print(report)
    if not args.no_write:
        write_markdown(report)
        print(f"\nwritten to {MD_PATH.relative_to(HERE.parent)}")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
