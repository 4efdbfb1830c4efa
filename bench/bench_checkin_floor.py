"""How fast a check-in can be in CPython: the pipeline beside a bare skeleton of it.

Run: `.venv/bin/python bench/bench_checkin_floor.py [--devices N] [--seconds S] [--rounds R]`
(defaults 2000, 4, 4; about 3 minutes). SQLite only, in process, pinned to CPU 1.

Issue 16 asks for at most 150 us a check-in in process, which was 2.73 times the raw
libsodium verify and sign on the machine where it was set. This benchmark asks how much of
that any Python implementation on this storage could meet. The skeleton does the least a
check-in needs, with the same libraries and the same tables and statements:

- it splits the token, decodes the header and payload (orjson, with no duplicate-key check),
  and verifies the signature with libsodium under the device's key from a dict;
- it checks the clock window, the counter and the nonce against one read of the group's
  device states and one of its used nonces (the pipeline's two statements);
- it "locates" the device by its serving network's MCC alone (a dict) and decides allow or
  lock by the country alone (a set);
- it writes the group in one transaction: the pipeline's own UPDATE of `devices`, INSERT into
  `checkins` and INSERT into `audit` (each entry's content digest and chain hash, SHA-256 over
  canonical JSON, as the pipeline hashes), and the shard head;
- it signs a verdict with the same claims as a real answer, and encodes the answer.

What it leaves out is the product: location fusion with GPS, boundaries and conflicts, the
dated policy with exemptions, travellers' grace and history, manual locks and appeals, the
device state's history, messages in the owner's language, rate limits, judging a group ahead
outside the writer's lock, and every error path. Its figure is therefore a floor for a
check-in on this storage in Python, not a design.

Each round runs the skeleton and then the pipeline (`CheckinService.check_in_many`, groups of
the queue's size) on separate copies of the same store, each on fresh tokens for its run, then
the raw verify and sign (the machine's yardstick). The report gives medians over rounds, in us
and in yardstick units.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from nacl.bindings import crypto_sign_open

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_checkin as bc

from regionlock.services.checkin import CheckinCall, CheckinService
from regionlock.services.checkin_queue import MAX_GROUP
from regionlock.signing import Keyring
from regionlock.storage import Database

# The places of the bench fleet (bench_checkin.PLACES) by mobile country code.
COUNTRY_OF_MCC = {"432": "IR", "424": "AE", "262": "DE", "286": "TR", "404": "IN", "405": "IN"}
LOCKED = frozenset({"IR", "SY", "CU", "KP", "SD"})
WINDOW_S = 300
_SAVE = (
    "UPDATE devices SET state = ?, state_version = state_version + 1, last_verdict = ?,"
    " last_country = ?, last_checkin_at = ?, last_subdivision = ?, first_country = ?,"
    " seen_in = ? WHERE id = ? AND state_version = ?"
)
_INSERT_CHECKIN = (
    "INSERT INTO checkins (device_id, at, counter, nonce, country, subdivision, confidence,"
    " flags, signal_kinds, verdict, reasons, policy_id, policy_version, subdivision_candidates)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_AUDIT = (
    "INSERT INTO audit (seq, at, actor, action, subject, reason, details, prev_hash, hash,"
    " content_digest, salt, shard, fmt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _b64d(part: bytes) -> bytes:
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


def _b64e(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


@dataclass
class Skeleton:
    """The least a check-in needs, on a store of the pipeline's schema (module docstring)."""

    db: Database
    devices: dict[str, tuple[str, bytes]]  # kid (IMEI) -> (device id, public key)
    ring: Keyring
    claims: dict[str, Any]  # a real answer's verdict claims: the shape of what is signed
    seq: int = 0
    prev: str = ""

    def __post_init__(self) -> None:
        with self.db.read() as tx:
            row = tx.one("SELECT COALESCE(MAX(seq), 0) FROM audit")
            head = tx.one("SELECT hash FROM audit_shards WHERE shard = 0")
        self.seq = int(row[0]) if row else 0
        self.prev = str(head[0]) if head else "0" * 64

    def group(self, tokens: Sequence[str | bytes], now: datetime) -> list[bytes | None]:
        """One group of check-ins: each one's answer body, None where it was refused."""
        now_s, now_ms = int(now.timestamp()), int(now.timestamp() * 1000)
        opened = []
        for n, token in enumerate(tokens):
            raw = token.encode("ascii") if isinstance(token, str) else token
            head, payload, signature = raw.split(b".")
            kid = orjson.loads(_b64d(head))["kid"]
            device_id, public = self.devices[kid]
            crypto_sign_open(_b64d(signature) + head + b"." + payload, public)
            claims = orjson.loads(_b64d(payload))
            if abs(claims["iat"] - now_s) > WINDOW_S:
                continue
            opened.append((n, device_id, claims))
        ids = sorted({d for _, d, _ in opened})
        pairs = sorted({(d, c["nonce"]) for _, d, c in opened})
        with self.db.read() as tx:
            marks = ", ".join("?" * len(ids))
            states = {
                r[0]: (orjson.loads(r[1]) if r[1] else {"counter": 0}, r[2])
                for r in tx.all(
                    f"SELECT id, state, state_version FROM devices WHERE id IN ({marks})", ids
                )
            }
            values = ", ".join(["(?, ?)"] * len(pairs))
            seen = set(
                tx.all(
                    f"SELECT c.device_id, c.nonce FROM (VALUES {values}) AS v JOIN checkins"
                    " AS c ON c.device_id = v.column1 AND c.nonce = v.column2",
                    [x for pair in pairs for x in pair],
                )
            )
        saves, checkins, audits, answers = {}, [], [], []
        for n, device_id, claims in opened:
            state, version = states[device_id]
            counter, nonce = claims["counter"], claims["nonce"]
            if (device_id, nonce) in seen or counter <= state.get("counter", 0):
                continue
            seen.add((device_id, nonce))
            country = COUNTRY_OF_MCC.get(claims["signals"]["network"][0][:3], "")
            verdict = "lock" if country in LOCKED else "allow"
            reasons = f'["{verdict}.{country}"]'
            state = {"counter": counter, "last_verdict": verdict, "country": country}
            states[device_id] = (state, version)
            saves[device_id] = (
                orjson.dumps(state, option=orjson.OPT_SORT_KEYS).decode(),
                verdict,
                country,
                now_ms,
                None,
                country,
                f",{country},",
                device_id,
                version,
            )
            checkins.append(
                (device_id, now_ms, counter, nonce, country, None, 0.9, "[]", '["gps"]',
                 verdict, reasons, "gray-market", "1", None)
            )  # fmt: skip
            details = {
                "verdict": verdict,
                "previous": None,
                "country": country,
                "subdivision": None,
                "confidence": 0.9,
                "flags": [],
                "signals": ["gps", "network", "sim"],
                "policy": "gray-market@1",
                "counter": counter,
            }
            text = orjson.dumps(details, option=orjson.OPT_SORT_KEYS)
            salt = os.urandom(16).hex()
            content = hashlib.sha256(salt.encode() + text).hexdigest()
            self.seq += 1
            digest = hashlib.sha256(
                f"{self.seq}|0|{now_ms}|checkin.verdict|{content}|{self.prev}".encode()
            ).hexdigest()
            audits.append(
                (self.seq, now_ms, f"device:{device_id}", "checkin.verdict", device_id,
                 reasons, text.decode(), self.prev, digest, content, salt, 0, 3)
            )  # fmt: skip
            self.prev = digest
            answers.append((n, device_id, claims, verdict, country))
        with self.db.write() as tx:
            tx.executemany(_SAVE, list(saves.values()))
            tx.executemany(_INSERT_CHECKIN, checkins)
            tx.executemany(_INSERT_AUDIT, audits)
            tx.execute(
                "UPDATE audit_shards SET seq = ?, hash = ? WHERE shard = 0", (self.seq, self.prev)
            )
        key, kid = self.ring.active, self.ring.active.kid
        header = _b64e(orjson.dumps({"alg": "EdDSA", "kid": kid, "typ": "regionlock-verdict+jwt"}))
        out: list[bytes | None] = [None] * len(tokens)
        for n, device_id, claims, verdict, country in answers:
            body = dict(self.claims)
            body.update(
                sub=device_id,
                verdict=verdict,
                country=country,
                nonce=claims["nonce"],
                counter=claims["counter"],
                iat=now_s,
            )
            signing_input = header + b"." + _b64e(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
            token = signing_input + b"." + _b64e(key.sign(signing_input))
            body["token"] = token.decode()
            out[n] = orjson.dumps(body)
        return out


def skeleton_on(url: str, devices: int, claims: dict[str, Any]) -> Skeleton:
    """A skeleton on the store at `url`, whose fleet is the bench's first `devices` IMEIs."""
    db, service = bc.open_service(url)
    records, _ = service._records_of(bc.imei(i) for i in range(devices))
    keys = {k: (r.id, bytes(r.public_key)) for k, r in records.items()}
    return Skeleton(db, keys, service._keyring(None, datetime.now(UTC)), claims)


def check_skeleton(skeleton: Skeleton, fleet: bc.Fleet, verify_key: Any) -> None:
    """Before any timing: the skeleton does what its figure claims. It answers a check-in
    with a verdict that verifies under the service's key, refuses the same token again and a
    counter that went back, fails on a forged signature, and stores one check-in row and one
    audit entry per answer."""
    with skeleton.db.read() as tx:
        rows_before = tx.one("SELECT (SELECT COUNT(*) FROM checkins), (SELECT COUNT(*) FROM audit)")
    # The same device twice (the fleet hands out tokens round-robin): `token` after `old`.
    old, token = fleet.tokens(fleet.n)[0], fleet.tokens(fleet.n)[0]
    now = datetime.now(UTC)
    (answer,) = skeleton.group([token], now)
    assert answer is not None, "the skeleton refused a valid check-in"
    signing_input, _, signature = orjson.loads(answer)["token"].rpartition(".")
    verify_key.verify(_b64d(signature.encode()), signing_input.encode())
    assert skeleton.group([token], now) == [None], "the skeleton took a replay"
    assert skeleton.group([old], now) == [None], "the skeleton took an older counter"
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    try:
        skeleton.group([forged], now)
    except Exception as exc:  # libsodium's BadSignatureError
        assert "signature" in str(exc).lower(), exc
    else:
        raise AssertionError("the skeleton took a forged signature")
    with skeleton.db.read() as tx:
        rows_after = tx.one("SELECT (SELECT COUNT(*) FROM checkins), (SELECT COUNT(*) FROM audit)")
    assert rows_before is not None and rows_after is not None
    assert (rows_after[0] - rows_before[0], rows_after[1] - rows_before[1]) == (1, 1), (
        rows_before,
        rows_after,
    )


# The skeleton served over HTTP by the same uvicorn as the bare app: check-ins that arrive
# together are run as one group on the event loop, after the requests read in the same turn.
SKELETON_APP = """
import asyncio, json, os, sys
from datetime import UTC, datetime
sys.path.insert(0, os.environ["FLOOR_BENCH_DIR"])
import bench_checkin_floor as floor

skeleton = floor.skeleton_on(
    os.environ["FLOOR_DB"], int(os.environ["FLOOR_DEVICES"]), json.loads(os.environ["FLOOR_CLAIMS"])
)
pending = []


def drain():
    group = pending[: floor.MAX_GROUP]
    del pending[: floor.MAX_GROUP]
    if pending:
        asyncio.get_running_loop().call_soon(drain)
    for (_, future), body in zip(group, skeleton.group([t for t, _ in group], datetime.now(UTC))):
        future.set_result(body)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] != "/v1/checkin":  # /health, which the bench polls until it answers
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    if not pending:
        loop.call_soon(drain)
    pending.append((b"".join(chunks), future))
    body = await future
    status = 200 if body is not None else 409
    body = body or b"{}"
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


def run(fn: Any, tokens: list[str], seconds: float) -> tuple[float, int, int]:
    """`fn(group, now)` over `tokens` in groups of the queue's size, for `seconds` at most:
    us a check-in, the answers given and the check-ins run."""
    gc.collect()
    answered, done = 0, 0
    t = time.perf_counter()
    deadline = t + seconds
    for i in range(0, len(tokens), MAX_GROUP):
        group = tokens[i : i + MAX_GROUP]
        answered += fn(group, datetime.now(UTC))
        done += len(group)
        if time.perf_counter() >= deadline:
            break
    return (time.perf_counter() - t) / done * 1e6, answered, done


def pipeline_group(service: CheckinService) -> Any:
    def fn(group: list[str], now: datetime) -> int:
        calls = [CheckinCall(token, None, now) for token in group]
        return sum(1 for out in service.check_in_many(calls) if not isinstance(out, Exception))

    return fn


def in_process(
    url: str, twin: str, fleet: bc.Fleet, claims: dict[str, Any], rounds: int, seconds: float
) -> list[tuple[float, ...]]:
    """Per round, pinned to CPU 1, us a check-in: the skeleton, the pipeline, the yardstick,
    and the skeleton's and the pipeline's write transactions."""
    db, service = bc.open_service(url)
    skeleton = skeleton_on(twin, fleet.n, claims)
    pipe_writes, sk_writes = bc.timed_writes(db), bc.timed_writes(skeleton.db)
    with_skeleton = lambda g, now: sum(x is not None for x in skeleton.group(g, now))  # noqa: E731
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    rows: list[tuple[float, ...]] = []
    try:
        size = int(seconds * 8000)  # more than either can use: a run ends on time
        for r in range(rounds):
            sk_writes[0] = pipe_writes[0] = 0.0
            sk_us, sk_ok, sk_n = run(with_skeleton, fleet.tokens(size), seconds)
            pipe_us, pipe_ok, pipe_n = run(pipeline_group(service), fleet.tokens(size), seconds)
            raw = bc.raw_crypto(service, fleet.tokens(500), claims)
            unit = raw[bc.RAW_VERIFY] + raw[bc.RAW_SIGN]
            sk_w, pipe_w = sk_writes[0] / sk_n * 1e6, pipe_writes[0] / pipe_n * 1e6
            rows.append((sk_us, pipe_us, unit, sk_w, pipe_w))
            print(
                f"  in process, round {r + 1}: skeleton {sk_us:.0f} us ({sk_ok} answered; write"
                f" {sk_w:.0f}), pipeline {pipe_us:.0f} us ({pipe_ok} answered; write"
                f" {pipe_w:.0f}), raw verify + sign {unit:.0f} us",
                file=sys.stderr,
            )
    finally:
        os.sched_setaffinity(0, old)
        db.close()
        skeleton.db.close()
    return rows


def over_http(
    url: str,
    twin: str,
    fleet: bc.Fleet,
    claims: dict[str, Any],
    args: argparse.Namespace,
    tmp: Path,
) -> list[tuple[float, float, float]]:
    """(bare, skeleton, pipeline) requests/s by round: each served by uvicorn with 1 worker
    pinned to CPU 1, loaded by wrk on CPU 0 with 64 connections, one after the other."""
    lua = tmp / "checkin.lua"
    lua.write_text(bc.WRK_LUA)
    bare_dir, skeleton_dir = tmp / "bare", tmp / "skeleton"
    for d, text in ((bare_dir, bc.BARE_APP), (skeleton_dir, SKELETON_APP)):
        d.mkdir(exist_ok=True)
        (d / "bare_app.py").write_text(text)
    os.environ.update(
        FLOOR_BENCH_DIR=str(Path(__file__).resolve().parent),
        FLOOR_DB=twin,
        FLOOR_DEVICES=str(fleet.n),
        FLOOR_CLAIMS=json.dumps(claims),
    )
    size = len(json.dumps({**claims, "token": "x" * 400}, separators=(",", ":")))
    rows = []
    for r in range(args.rounds):
        rates = []
        for name, server in (
            ("bare", bc.Server(url, 1, "1", bare=bare_dir, body_bytes=size)),
            ("skeleton", bc.Server(url, 1, "1", bare=skeleton_dir, body_bytes=size)),
            ("pipeline", bc.Server(url, 1, "1")),
        ):
            bc.wait_for_quiet(args.quiet_wait)
            warm = bc.write_tokens(tmp / "warm.txt", fleet.tokens(6000 * 2))
            tokens = bc.write_tokens(tmp / "run.txt", fleet.tokens(int(6000 * args.seconds)))
            mode = "cycle" if name == "bare" else "checkin"
            with server:
                bc.run_wrk(server, mode, 2, 64, lua, "0", warm)
                load = bc.run_wrk(server, mode, args.seconds, 64, lua, "0", tokens)
            if load.exhausted or set(load.statuses) != {"200"}:
                raise SystemExit(f"{name}: {load.statuses}, ran out: {load.exhausted}")
            rates.append(load.rate)
        print(
            f"  over HTTP, round {r + 1}: bare {rates[0]:,.0f}/s, skeleton {rates[1]:,.0f}/s,"
            f" pipeline {rates[2]:,.0f}/s",
            file=sys.stderr,
        )
        rows.append((rates[0], rates[1], rates[2]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quiet-wait", type=float, default=10.0)
    parser.add_argument("--no-http", action="store_true", help="in process only")
    args = parser.parse_args()
    if not args.no_http and shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk (or --no-http)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as d:
        tmp = Path(d)
        store_args = argparse.Namespace(devices=args.devices, pg_admin_url="")
        with bc.ready_store("sqlite", store_args, tmp) as store:
            twin = tmp / "skeleton.db"
            shutil.copy(store.url.removeprefix("sqlite:///"), twin)
            db, service = bc.open_service(store.url)
            first = service.check_in(store.fleet.tokens(1)[0], peer_ip=None, now=datetime.now(UTC))
            db.close()
            claims = {k: v for k, v in first.items() if k != "token"}
            twin_url = f"sqlite:///{twin}"
            skeleton = skeleton_on(twin_url, store.fleet.n, claims)
            check_skeleton(skeleton, store.fleet, skeleton.ring.active.public_key)
            skeleton.db.close()
            bc.wait_for_quiet(args.quiet_wait)
            local = in_process(store.url, twin_url, store.fleet, claims, args.rounds, args.seconds)
            http = (
                []
                if args.no_http
                else over_http(store.url, twin_url, store.fleet, claims, args, tmp)
            )
    med = statistics.median
    sk, pipe, unit, sk_w, pipe_w = (med(x[i] for x in local) for i in range(5))
    sk_units, pipe_units = med(x[0] / x[2] for x in local), med(x[1] / x[2] for x in local)
    target = bc.TARGET_INPROC_FLOORS
    print(
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {args.devices}"
        f" devices, groups of {MAX_GROUP}, {args.rounds} rounds of {args.seconds:g} s each,"
        " medians over rounds.\n\nIn process (pinned to CPU 1):\n"
    )
    print("| | us a check-in | raw verify + sign units | of which the write transaction, us |")
    print("|---|---:|---:|---:|")
    print(f"| raw libsodium verify + sign (the yardstick) | {unit:.0f} | 1.00 | |")
    print(f"| skeleton (module docstring) | {sk:.0f} | {sk_units:.2f} | {sk_w:.0f} |")
    print(
        f"| pipeline (`CheckinService.check_in_many`) | {pipe:.0f} | {pipe_units:.2f} |"
        f" {pipe_w:.0f} |"
    )
    print(f"| issue 16's target | | {target:.2f} | |")
    print(
        f"\nPipeline / skeleton: {med(x[1] / x[0] for x in local):.2f}. The target leaves"
        f" {target - sk_units:.2f} units above the skeleton; the pipeline uses"
        f" {pipe_units - sk_units:.2f}."
    )
    if http:
        print("\nOver HTTP (uvicorn, 1 worker on CPU 1, wrk on CPU 0, 64 connections):\n")
        print("| | requests/s | / bare |")
        print("|---|---:|---:|")
        bare = med(x[0] for x in http)
        print(f"| bare Starlette (bench_checkin's BARE_APP) | {bare:,.0f} | 1.00 |")
        for i, name in ((1, "skeleton, groups on the event loop"), (2, "`regionlock serve`")):
            rate, ratio = med(x[i] for x in http), med(x[i] / x[0] for x in http)
            print(f"| {name} | {rate:,.0f} | {ratio:.2f} |")
        print(f"| issue 16's target | | {bc.TARGET_RATIO:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
