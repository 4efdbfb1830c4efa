"""How fast a check-in can be in CPython: the pipeline beside a bare skeleton of it.

Run: `.venv/bin/python bench/bench_checkin_floor.py [--devices N] [--seconds S] [--rounds R]
[--no-http]` (defaults 2000, 4, 4; about 6 minutes). SQLite only. Needs `wrk` for the HTTP
part (`apt-get install -y wrk`). Not part of `make bench`.

Issue 16 asks for at most 150 us a check-in in process, which was 2.73 times the raw
libsodium verify and sign on the machine where it was set, and over HTTP at least 0.2 times
the rate of a bare Starlette endpoint. This benchmark asks how much of that any Python
implementation on this storage could meet. The skeleton does the least a check-in needs,
with the same libraries, tables and statements:

- it checks the token's header (alg, typ, no crit), decodes header and payload as strict
  base64url and strict JSON (no duplicate members, `jws.json_object`), verifies the
  signature with libsodium under the device's key from a dict, and checks the claims' types
  and the clock window;
- it refuses a replay or an older counter from one read of the group's device states and
  one of its used nonces (the pipeline's two statements), and a nonce used twice in a group;
- it "locates" the device by its serving network's MCC alone (a dict) and decides allow or
  lock by the country alone (a set);
- it writes the group in one transaction: the pipeline's own UPDATE of `devices` (its row
  count checked), INSERT into `checkins` and INSERT into `audit` (each entry's content
  digest and chain hash exactly as the product computes them, so the product's
  `verify` finds the trail intact), and the shard head;
- it signs a verdict with the claims of a real answer with the same verdict, and answers.

What it leaves out is the product: location fusion with GPS, boundaries and conflicts, the
dated policy with exemptions, travellers' grace and history, manual locks and appeals, the
device state's history, messages in the owner's language, rate limits, and judging a group
ahead outside the writer's lock. Its figure is therefore a floor for a check-in on this
storage in Python, not a design. Before timing, `check_skeleton` checks the parts its figure
rests on (its docstring says which): answers a device accepts, replays and forgeries
refused, one row and one audit entry each, a trail the product verifies.

In process, each round runs the skeleton and the pipeline (`CheckinService.check_in_many`,
groups of the queue's size), which first alternating by round, on separate copies of the same
store, each on fresh tokens, then the raw verify and sign (the machine's yardstick). Over
HTTP, each round serves the bare app, the skeleton (through Starlette, as the bare app is,
groups run on the event loop) and `regionlock serve` in turn, the order turning by round.
The report gives medians over rounds.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import sqlite3
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
from nacl.exceptions import CryptoError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_checkin as bc

from regionlock.services.checkin import MAX_TOKEN_LIFETIME, CheckinCall, CheckinService
from regionlock.services.checkin_queue import MAX_GROUP
from regionlock.signing import (
    CHECKIN_TYP,
    VERDICT_TYP,
    CheckinRequest,
    Keyring,
    sign_checkin,
    verify_verdict,
)
from regionlock.signing.jws import TokenError, b64url_decode, b64url_encode, json_object
from regionlock.storage import Database, Stores, open_database
from regionlock.storage.audit import _INSERT_ENTRIES
from regionlock.storage.checkins import _INSERT as _INSERT_CHECKIN
from regionlock.storage.devices import _SAVE_STATE

# The places of the bench fleet (bench_checkin.PLACES) by mobile country code.
COUNTRY_OF_MCC = {"432": "IR", "424": "AE", "262": "DE", "286": "TR", "404": "IN", "405": "IN"}
LOCKED = frozenset({"IR", "SY", "CU", "KP", "SD"})
WINDOW_S = 300


def _sha256_canonical(value: Any) -> str:
    """SHA-256 of canonical JSON (sorted members, no spaces, UTF-8): the audit's hashed form,
    which orjson writes byte for byte for these entries (no floats below 1e-4)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class Skeleton:
    """The least a check-in needs, on a store of the pipeline's schema (module docstring)."""

    db: Database
    devices: dict[str, tuple[str, bytes]]  # kid (IMEI) -> (device id, public key)
    ring: Keyring
    templates: dict[str, dict[str, Any]]  # verdict -> a real answer's claims with it
    header: str = ""

    def __post_init__(self) -> None:
        head = {"alg": "EdDSA", "kid": self.ring.active.kid, "typ": VERDICT_TYP}
        self.header = b64url_encode(orjson.dumps(head))

    def _open(self, token: str | bytes, now_s: int) -> tuple[str, dict[str, Any]] | None:
        """The device id and claims of a check-in token, or None if it must be refused: the
        header checked (alg, typ, no crit), strict base64url and JSON (no duplicate members),
        the signature verified under the device's key, the claims' types and clock window."""
        try:
            text = token if isinstance(token, str) else token.decode("ascii")
            head, payload, signature = text.split(".")
            header = json_object(b64url_decode(head), "header")
            if header.get("alg") != "EdDSA" or header.get("typ") != CHECKIN_TYP:
                return None
            if "crit" in header:
                return None
            device_id, public = self.devices[header["kid"]]
            crypto_sign_open(b64url_decode(signature) + f"{head}.{payload}".encode(), public)
            claims = json_object(b64url_decode(payload), "payload")
        except (ValueError, KeyError, TypeError, TokenError, CryptoError):
            return None
        counter, nonce, iat = claims.get("counter"), claims.get("nonce"), claims.get("iat")
        if type(counter) is not int or type(iat) is not int or not isinstance(nonce, str):
            return None
        if not 0 <= counter < 2**53 or abs(iat - now_s) > WINDOW_S:
            return None
        signals = claims.get("signals")
        network = signals.get("network", []) if isinstance(signals, dict) else None
        if not isinstance(network, list) or not all(isinstance(x, str) for x in network):
            return None
        return device_id, claims

    def group(self, tokens: Sequence[str | bytes], now: datetime) -> list[dict[str, Any] | None]:
        """One group of check-ins: each one's answer, None where it was refused."""
        now_s, now_ms = int(now.timestamp()), int(now.timestamp() * 1000)
        out: list[dict[str, Any] | None] = [None] * len(tokens)
        opened = []
        for n, token in enumerate(tokens):
            found = self._open(token, now_s)
            if found is not None:
                opened.append((n, *found))
        if not opened:
            return out
        ids = sorted({d for _, d, _ in opened})
        pairs = sorted({(d, c["nonce"]) for _, d, c in opened})
        with self.db.read() as tx:
            marks = ", ".join("?" * len(ids))
            states = {
                r[0]: (orjson.loads(r[1]) if r[1] else {}, r[2])
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
        saves: dict[str, tuple[Any, ...]] = {}
        checkins, entries, accepted = [], [], []
        for n, device_id, claims in opened:
            state, version = states[device_id]
            counter, nonce = claims["counter"], claims["nonce"]
            if (device_id, nonce) in seen or counter <= state.get("counter", 0):
                continue
            seen.add((device_id, nonce))
            network = claims["signals"].get("network") or [""]
            country = COUNTRY_OF_MCC.get(network[0][:3], "")
            verdict = "lock" if country in LOCKED else "allow"
            reasons = f"{verdict}.{country}"
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
                 verdict, f'["{reasons}"]', "gray-market", "1", None)
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
            entries.append((device_id, reasons, details))
            accepted.append((n, device_id, claims, verdict, country))
        if not accepted:
            return out
        # Salts, content digests and stored details before the write, as the pipeline's
        # `prepare_entries` does them when it judges a group; entry hashes inside it.
        salts = os.urandom(16 * len(entries)).hex()
        prepared = []
        for k, (device_id, reason, details) in enumerate(entries):
            actor, salt = f"device:{device_id}", salts[32 * k : 32 * k + 32]
            content = _sha256_canonical(
                ["regionlock/audit-content/v2", salt, actor, device_id, reason, details]
            )
            text = orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode()
            prepared.append((device_id, reason, actor, salt, content, text))
        with self.db.write() as tx:
            changed = tx.executemany(_SAVE_STATE, list(saves.values()))
            if changed != len(saves):
                raise RuntimeError("a device changed while its check-in was judged")
            tx.executemany(_INSERT_CHECKIN, checkins)
            row = tx.one("SELECT COALESCE(MAX(seq), 0) FROM audit")
            head = tx.one("SELECT hash FROM audit_shards WHERE shard = 0")
            if row is None or head is None:
                raise RuntimeError("the store has no audit shard 0")
            seq, prev = int(row[0]), str(head[0])
            audits = []
            for device_id, reason, actor, salt, content, text in prepared:
                seq += 1
                digest = _sha256_canonical(
                    ["regionlock/audit-entry/v3", seq, 0, now_ms, "checkin.verdict", content, prev]
                )
                audits.append(
                    (seq, now_ms, actor, "checkin.verdict", device_id, reason, text, prev, digest,
                     content, salt, 0, 3)
                )  # fmt: skip
                prev = digest
            tx.executemany(_INSERT_ENTRIES, audits)
            tx.execute("UPDATE audit_shards SET seq = ?, hash = ? WHERE shard = 0", (seq, prev))
        key = self.ring.active
        for n, device_id, claims, verdict, country in accepted:
            body = dict(self.templates[verdict])
            body.update(
                sub=device_id,
                nonce=claims["nonce"],
                counter=claims["counter"],
                iat=now_s,
                location={"country": country, "subdivision": None},
            )
            signing_input = (
                f"{self.header}.{b64url_encode(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))}"
            )
            body["token"] = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
            out[n] = body
        return out


def skeleton_on(url: str, devices: int, templates: dict[str, dict[str, Any]]) -> Skeleton:
    """A skeleton on the store at `url`, whose fleet is the bench's first `devices` IMEIs."""
    db = open_database(url)
    stores = Stores.on(db)
    records = stores.devices.records([bc.imei(i) for i in range(devices)])
    keys = {k: (r.id, bytes(r.public_key)) for k, r in records.items()}
    return Skeleton(db, keys, stores.keys.keyring(datetime.now(UTC)), templates)


def check_skeleton(skeleton: Skeleton, fleet: bc.Fleet, jwks: dict[str, Any]) -> None:
    """Before any timing, the parts of the skeleton its figure rests on: it answers a
    check-in with a verdict that a device agent accepts (`verify_verdict`) against the
    service's published keys (`jwks`); refuses the same token again, an older counter, a used
    nonce with a newer counter (alone and twice in one group) and a forged signature; stores
    one check-in row and one audit entry per answer; and leaves an audit trail that the
    product's own `verify` finds intact."""
    stores = Stores.on(skeleton.db)
    with skeleton.db.read() as tx:
        before = tx.one("SELECT (SELECT COUNT(*) FROM checkins), (SELECT COUNT(*) FROM audit)")
    # One device's tokens (the fleet hands them out round-robin, counters rising).
    dev = fleet.cursor
    old, token = fleet.tokens(fleet.n)[0], fleet.tokens(fleet.n)[0]
    now = datetime.now(UTC)
    (answer,) = skeleton.group([token], now)
    assert answer is not None, "the skeleton refused a valid check-in"
    nonce = json_object(b64url_decode(token.split(".")[1]), "payload")["nonce"]
    device_id = skeleton.devices[bc.imei(dev)][0]
    verify_verdict(answer["token"], jwks, now=now, expected_sub=device_id, expected_nonce=nonce)
    assert skeleton.group([token], now) == [None], "the skeleton took a replay"
    assert skeleton.group([old], now) == [None], "the skeleton took an older counter"
    used = nonce
    base, iat = fleet.counters[dev], int(now.timestamp())
    fleet.counters[dev] += 3  # the fleet's own tokens stay ahead of these three

    def signed(nonce: str, counter: int) -> str:
        request = CheckinRequest(nonce, counter, iat, fleet.signals(dev))
        return sign_checkin(request, fleet.keys[dev], bc.imei(dev))

    assert skeleton.group([signed(used, base + 1)], now) == [None], "it took a used nonce"
    first, second = skeleton.group([signed("n" * 22, base + 2), signed("n" * 22, base + 3)], now)
    assert first is not None and second is None, "it took one nonce twice in a group"
    head, payload, signature = fleet.tokens(fleet.n)[0].split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    assert skeleton.group([forged], now) == [None], "the skeleton took a forged signature"
    with skeleton.db.read() as tx:
        after = tx.one("SELECT (SELECT COUNT(*) FROM checkins), (SELECT COUNT(*) FROM audit)")
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2), (before, after)  # type: ignore[index]
    report = stores.audit.verify()
    assert report.ok, report


# The skeleton served over HTTP by the same uvicorn, through Starlette as the bare app is:
# check-ins that arrive together run as one group on the event loop, after the requests
# read in the same turn.
SKELETON_APP = """
import asyncio, json, os, sys
from datetime import UTC, datetime

import orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

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
    for (_, future), answer in zip(group, skeleton.group([t for t, _ in group], datetime.now(UTC))):
        future.set_result(answer)


async def checkin(request):
    body = await request.body()
    future = asyncio.get_running_loop().create_future()
    if not pending:
        asyncio.get_running_loop().call_soon(drain)
    pending.append((body, future))
    answer = await future
    if answer is None:
        return Response(b'{"refused":true}', status_code=409, media_type="application/json")
    return Response(orjson.dumps(answer), media_type="application/json")


async def health(request):
    return Response(b'{"ok":true}', media_type="application/json")


app = Starlette(routes=[Route("/v1/checkin", checkin, methods=["POST"]), Route("/health", health)])
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
    url: str,
    twin: str,
    fleet: bc.Fleet,
    templates: dict[str, dict[str, Any]],
    rounds: int,
    seconds: float,
) -> list[tuple[float, ...]]:
    """Per round, pinned to CPU 1, us a check-in: the skeleton, the pipeline, the yardstick,
    and the skeleton's and the pipeline's write transactions. Which of the two runs first
    alternates by round; every check-in of both must be answered."""
    db, service = bc.open_service(url)
    skeleton = skeleton_on(twin, fleet.n, templates)
    pipe_writes, sk_writes = bc.timed_writes(db), bc.timed_writes(skeleton.db)
    with_skeleton = lambda g, now: sum(x is not None for x in skeleton.group(g, now))  # noqa: E731
    with_pipeline = pipeline_group(service)
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    rows: list[tuple[float, ...]] = []
    try:
        size = int(seconds * 8000)  # more than either can use: a run ends on time
        for r in range(rounds):
            sk_writes[0] = pipe_writes[0] = 0.0
            timed: dict[str, tuple[float, int, int]] = {}
            for name in ("skeleton", "pipeline") if r % 2 == 0 else ("pipeline", "skeleton"):
                fn = with_skeleton if name == "skeleton" else with_pipeline
                timed[name] = _, ok, n = run(fn, fleet.tokens(size), seconds)
                if ok != n:
                    raise SystemExit(f"{name}: {n - ok} of {n} check-ins refused")
            (sk_us, _, sk_n), (pipe_us, _, pipe_n) = timed["skeleton"], timed["pipeline"]
            raw = bc.raw_crypto(service, fleet.tokens(500), templates["lock"])
            unit = raw[bc.RAW_VERIFY] + raw[bc.RAW_SIGN]
            sk_w, pipe_w = sk_writes[0] / sk_n * 1e6, pipe_writes[0] / pipe_n * 1e6
            rows.append((sk_us, pipe_us, unit, sk_w, pipe_w))
            print(
                f"  in process, round {r + 1}: skeleton {sk_us:.0f} us (write {sk_w:.0f}),"
                f" pipeline {pipe_us:.0f} us (write {pipe_w:.0f}), raw verify + sign"
                f" {unit:.0f} us",
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
    templates: dict[str, dict[str, Any]],
    body_bytes: int,
    args: argparse.Namespace,
    tmp: Path,
) -> list[dict[str, float]]:
    """Requests/s of the bare app, the skeleton and `regionlock serve`, by round: each served
    by uvicorn with 1 worker pinned to CPU 1 and loaded by wrk on CPU 0 with 64 connections,
    one after the other, the order turning by round."""
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
        FLOOR_CLAIMS=json.dumps(templates),
    )
    names = ["bare", "skeleton", "pipeline"]
    rows = []
    for r in range(args.rounds):
        rates: dict[str, float] = {}
        for name in names[r % 3 :] + names[: r % 3]:
            if name == "pipeline":
                server = bc.Server(url, 1, "1")
            else:
                where = bare_dir if name == "bare" else skeleton_dir
                server = bc.Server(url, 1, "1", bare=where, body_bytes=body_bytes)
            bc.wait_for_quiet(args.quiet_wait)
            warm = bc.write_tokens(tmp / "warm.txt", fleet.tokens(6000 * 2))
            tokens = bc.write_tokens(tmp / "run.txt", fleet.tokens(int(6000 * args.seconds)))
            mode = "cycle" if name == "bare" else "checkin"
            with server:
                bc.run_wrk(server, mode, 2, 64, lua, "0", warm)
                load = bc.run_wrk(server, mode, args.seconds, 64, lua, "0", tokens)
            if load.exhausted or set(load.statuses) != {"200"}:
                raise SystemExit(f"{name}: {load.statuses}, ran out: {load.exhausted}")
            rates[name] = load.rate
        print(
            f"  over HTTP, round {r + 1}: bare {rates['bare']:,.0f}/s, skeleton"
            f" {rates['skeleton']:,.0f}/s, pipeline {rates['pipeline']:,.0f}/s",
            file=sys.stderr,
        )
        rows.append(rates)
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
            # The service's signing key first, so that the copy signs with it too (the first
            # verdict would make one); then a consistent copy (SQLite's backup API).
            db, _ = bc.open_service(store.url)
            ring = Stores.on(db).keys.keyring(datetime.now(UTC))
            jwks = ring.jwks(datetime.now(UTC), MAX_TOKEN_LIFETIME)
            db.close()
            twin = tmp / "skeleton.db"
            with (
                sqlite3.connect(store.url.removeprefix("sqlite:///")) as source,
                sqlite3.connect(twin) as copy,
            ):
                source.backup(copy)
            # Real answers to sign the skeleton's from: Tehran's device 0 is locked, Berlin's
            # device 3 allowed (bench_checkin.PLACES).
            db, service = bc.open_service(store.url)
            tokens = store.fleet.tokens(4)
            answers = [
                service.check_in(tokens[i], peer_ip=None, now=datetime.now(UTC)) for i in (0, 3)
            ]
            db.close()
            templates = {
                a["verdict"]: {k: v for k, v in a.items() if k != "token"} for a in answers
            }
            if set(templates) != {"allow", "lock"}:
                raise SystemExit(f"expected a lock and an allow, got {sorted(templates)}")
            body_bytes = len(orjson.dumps(answers[1]))  # an allow, as most answers are
            twin_url = f"sqlite:///{twin}"
            skeleton = skeleton_on(twin_url, store.fleet.n, templates)
            if skeleton.ring.active.kid != ring.active.kid:
                raise SystemExit("the skeleton's copy does not sign with the service's key")
            check_skeleton(skeleton, store.fleet, jwks)
            skeleton.db.close()
            bc.wait_for_quiet(args.quiet_wait)
            fleet, rounds = store.fleet, args.rounds
            local = in_process(store.url, twin_url, fleet, templates, rounds, args.seconds)
            http = (
                []
                if args.no_http
                else over_http(store.url, twin_url, fleet, templates, body_bytes, args, tmp)
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
        bare = med(x["bare"] for x in http)
        print(f"| bare Starlette (bench_checkin's BARE_APP) | {bare:,.0f} | 1.00 |")
        for key, name in (
            ("skeleton", "skeleton (Starlette, groups on the event loop)"),
            ("pipeline", "`regionlock serve`"),
        ):
            rate, ratio = med(x[key] for x in http), med(x[key] / x["bare"] for x in http)
            print(f"| {name} | {rate:,.0f} | {ratio:.2f} |")
        print(f"| issue 16's target | | {bc.TARGET_RATIO:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
