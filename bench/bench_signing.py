"""Verdict tokens signed and verified per second, beside raw Ed25519 on the same bytes.

Run: `make bench` (or `.venv/bin/python bench/bench_signing.py [--n N] [--rounds R]`). One core;
the cases take turns, best round kept.

Rows, each over the bytes of one realistic v1 verdict:
- our JWS layer (`jws.sign` / `jws.verify`: canonical JSON, base64url, strict parsing);
- the whole verdict step (`sign_verdict` with its claim checks / `verify_verdict` with the
  JWKS look-up and claim checks, what a device does);
- raw `cryptography` Ed25519 on the JWS signing input (the floor we are built on);
- raw PyNaCl (libsodium) on the same input, when installed (`pip install pynacl`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from regionlock.domain.decision import Lease, Verdict
from regionlock.domain.policy import Action, OfflineAction
from regionlock.signing import jws
from regionlock.signing.keys import Keyring, SigningKey
from regionlock.signing.verdict import (
    VERDICT_TYP,
    sign_verdict,
    verdict_claims,
    verify_verdict,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def best_rates(cases: dict[str, Callable[[], object]], n: int, rounds: int) -> dict[str, float]:
    """Calls per second of each case, best of `rounds`; cases take turns within each round so
    that load from other processes spreads over all of them rather than biasing one."""
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, fn in cases.items():
            t = time.perf_counter()
            for _ in range(n):
                fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return {name: n / seconds for name, seconds in best.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4_000, help="calls per case per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.n

    key = SigningKey.from_seed(bytes(range(32)), created=NOW - timedelta(days=1))
    ring = Keyring([key])
    jwks = ring.jwks(NOW, timedelta(days=8))
    verdict = Verdict(
        action=Action.WARN,
        reasons=("jurisdiction.restricted", "presence.grace"),
        explanation="",
        policy_id="gray-market-2021",
        policy_version="3",
        lease=Lease(NOW + timedelta(days=7), OfflineAction.WARN, 30, 7),
        message="This device is not licensed for use in this region.",
        contact="support@example.com",
    )
    claims = verdict_claims(
        verdict,
        issuer="regionlock",
        device_id="dev_0001",
        country="IR",
        subdivision="IR-23",
        nonce="q7Hn2Zk4PwX9bT1cVd8sLm",
        counter=42,
        issued_at=NOW,
    )
    token = jws.sign(claims, key, VERDICT_TYP)
    signing_input = token.rsplit(".", 1)[0].encode("ascii")
    signature = jws.b64url_decode(token.rsplit(".", 1)[1])
    public_key = key.public_key
    raw = key.public_bytes

    cases: dict[str, Callable[[], object]] = {
        "jws sign": lambda: jws.sign(claims, key, VERDICT_TYP),
        "jws verify": lambda: jws.verify(token, raw, expected_typ=VERDICT_TYP),
        "jws verify loaded": lambda: jws.verify(token, public_key, expected_typ=VERDICT_TYP),
        "verdict sign": lambda: sign_verdict(claims, ring, NOW),
        "verdict verify": lambda: verify_verdict(token, jwks, now=NOW),
        "raw sign": lambda: key.private_key.sign(signing_input),
        "raw verify": lambda: public_key.verify(signature, signing_input),
    }
    nacl_note = ""
    try:
        import nacl.signing
    except ImportError:
        nacl_note = "not installed (`pip install pynacl`)"
    else:
        nacl_key = nacl.signing.SigningKey(bytes(range(32)))
        nacl_verify = nacl_key.verify_key
        assert nacl_key.sign(signing_input).signature == signature  # same bytes, same signature
        cases["nacl sign"] = lambda: nacl_key.sign(signing_input)
        cases["nacl verify"] = lambda: nacl_verify.verify(signing_input, signature)
    rate = best_rates(cases, n, args.rounds)
    nan = float("nan")
    rows = [
        ("`jws.sign` / `jws.verify` (raw key bytes)", rate["jws sign"], rate["jws verify"], ""),
        ("`jws.verify` (key object reused)", nan, rate["jws verify loaded"], ""),
        (
            "`sign_verdict` / `verify_verdict` (JWKS)",
            rate["verdict sign"],
            rate["verdict verify"],
            "",
        ),
        ("raw `cryptography` Ed25519", rate["raw sign"], rate["raw verify"], "baseline"),
        (
            "raw PyNaCl (libsodium) Ed25519",
            rate.get("nacl sign", nan),
            rate.get("nacl verify", nan),
            nacl_note,
        ),
    ]
    base_sign, base_verify = rate["raw sign"], rate["raw verify"]

    print(
        f"Verdict token: {len(token)} characters; {n} calls per case, best of {args.rounds} "
        "interleaved rounds, one core.\n"
    )
    print("| implementation | sign /s | verify /s | sign vs raw | verify vs raw | note |")
    print("|---|---:|---:|---:|---:|---|")
    for name, s, v, note in rows:
        print(
            f"| {name} | {fmt(s)} | {fmt(v)} | {ratio(s, base_sign)} | "
            f"{ratio(v, base_verify)} | {note} |"
        )
    return 0


def fmt(rate: float) -> str:
    return "-" if rate != rate else f"{rate:,.0f} ({1e6 / rate:.1f} us)"


def ratio(rate: float, base: float) -> str:
    return "-" if rate != rate else f"{rate / base:.2f}"


if __name__ == "__main__":
    sys.exit(main())
