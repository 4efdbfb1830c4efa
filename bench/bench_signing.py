"""Verdict tokens signed and verified per second, beside raw Ed25519 on the same bytes.

Run: `make bench` (or `.venv/bin/python bench/bench_signing.py [--n N] [--rounds R]`). One core;
the cases take turns, best round kept.

Rows, each over the bytes of one realistic v1 verdict:
- our JWS layer (`jws.sign` / `jws.verify`: canonical JSON, base64url, strict parsing);
- the whole verdict step (`sign_verdict` with its claim checks / `verify_verdict` with the
  JWKS look-up and claim checks, what a device does);
- raw libsodium Ed25519 (PyNaCl) on the JWS signing input: the floor we are built on;
- raw OpenSSL Ed25519 (`cryptography`) on the same input, which we used before.

Then the check-in's own steps, per call, beside raw libsodium on the same bytes: reading a
check-in (realistic signals) by `peek_header` then `verify_checkin` (parsing twice) and by
`open_checkin` then `.verify` (parsing once, the service's path); answering it with
`verdict_claims` then `sign_verdict`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from nacl.bindings import crypto_sign, crypto_sign_open

from regionlock.domain.decision import Lease, Verdict
from regionlock.domain.policy import Action, OfflineAction
from regionlock.signing import jws
from regionlock.signing.keys import Keyring, SigningKey
from regionlock.signing.verdict import (
    VERDICT_TYP,
    CheckinRequest,
    open_checkin,
    sign_checkin,
    sign_verdict,
    verdict_claims,
    verify_checkin,
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

    def build_claims() -> dict[str, Any]:
        return verdict_claims(
            verdict,
            issuer="regionlock",
            device_id="dev_0001",
            country="IR",
            subdivision="IR-23",
            nonce="q7Hn2Zk4PwX9bT1cVd8sLm",
            counter=42,
            issued_at=NOW,
        )

    claims = build_claims()
    token = jws.sign(claims, key, VERDICT_TYP)
    signing_input = token.rsplit(".", 1)[0].encode("ascii")
    signature = jws.b64url_decode(token.rsplit(".", 1)[1])
    raw = key.public_bytes

    device = SigningKey.from_seed(bytes(range(32, 64)), created=NOW - timedelta(days=1))
    checkin = sign_checkin(
        CheckinRequest(
            "Xq3v9LkPz2TnW8rB4sYd1A",
            42,
            int(NOW.timestamp()),
            {
                "gps": {"lat": 35.69421, "lon": 51.38522, "accuracy_m": 12.0},
                "network": ["432-11"],
                "sim": ["432-11"],
            },
        ),
        device,
        "356938035643809",
    )
    checkin_input = checkin.rsplit(".", 1)[0].encode("ascii")
    checkin_signature = jws.b64url_decode(checkin.rsplit(".", 1)[1])
    device_raw = device.public_bytes

    def read_twice() -> object:
        kid = jws.peek_header(checkin)["kid"]
        return kid, verify_checkin(checkin, device_raw, now=NOW, window_s=300)

    def read_once() -> object:
        opened = open_checkin(checkin)
        return opened.header["kid"], opened.verify(device_raw, now=NOW, window_s=300)

    def answer() -> object:
        return sign_verdict(build_claims(), ring, NOW, max_lifetime=timedelta(days=366))

    assert read_twice() == read_once()
    sodium_secret = bytes(range(32)) + raw
    assert crypto_sign(signing_input, sodium_secret)[:64] == signature  # same bytes, same key
    openssl_public = key.public_key
    cases: dict[str, Callable[[], object]] = {
        "jws sign": lambda: jws.sign(claims, key, VERDICT_TYP),
        "jws verify": lambda: jws.verify(token, raw, expected_typ=VERDICT_TYP),
        "verdict sign": lambda: sign_verdict(claims, ring, NOW),
        "verdict verify": lambda: verify_verdict(token, jwks, now=NOW),
        "sodium sign": lambda: crypto_sign(signing_input, sodium_secret),
        "sodium verify": lambda: crypto_sign_open(signature + signing_input, raw),
        "openssl sign": lambda: key.private_key.sign(signing_input),
        "openssl verify": lambda: openssl_public.verify(signature, signing_input),
        "read: peek_header + verify_checkin": read_twice,
        "read: open_checkin + verify": read_once,
        "read: raw verify": lambda: crypto_sign_open(checkin_signature + checkin_input, device_raw),
        "answer: verdict_claims + sign_verdict": answer,
    }
    rate = best_rates(cases, n, args.rounds)
    rows = [
        ("`jws.sign` / `jws.verify`", rate["jws sign"], rate["jws verify"], ""),
        (
            "`sign_verdict` / `verify_verdict` (JWKS)",
            rate["verdict sign"],
            rate["verdict verify"],
            "",
        ),
        ("raw libsodium (PyNaCl) Ed25519", rate["sodium sign"], rate["sodium verify"], "baseline"),
        (
            "raw OpenSSL (`cryptography`) Ed25519",
            rate["openssl sign"],
            rate["openssl verify"],
            "not used for Ed25519 since 2026-11-28",
        ),
    ]
    base_sign, base_verify = rate["sodium sign"], rate["sodium verify"]

    print(
        f"Verdict token: {len(token)} characters; {n} calls per case, best of {args.rounds} "
        "interleaved rounds, one core.\n"
    )
    print("| implementation | sign /s | verify /s | sign vs raw | verify vs raw | note |")
    print("|---|---:|---:|---:|---:|---|")
    for name, sr, vr, note in rows:
        print(
            f"| {name} | {fmt(sr)} | {fmt(vr)} | {ratio(sr, base_sign)} | "
            f"{ratio(vr, base_verify)} | {note} |"
        )

    print(
        f"\nThe check-in's own steps: a {len(checkin)}-character check-in read, its verdict "
        "built and signed (same rounds). Overhead: time per call beyond the raw operation.\n"
    )
    print("| step | calls /s | vs raw | overhead | note |")
    print("|---|---:|---:|---:|---|")
    read_base, answer_base = rate["read: raw verify"], rate["sodium sign"]
    steps = [
        ("read: peek_header + verify_checkin", read_base, "parses twice"),
        ("read: open_checkin + verify", read_base, "parses once (the service's path)"),
        ("read: raw verify", read_base, "baseline: libsodium"),
        ("answer: verdict_claims + sign_verdict", answer_base, "claims checked, JSON, sign"),
        ("sodium sign", answer_base, "baseline: libsodium"),
    ]
    for name, base, note in steps:
        r = rate[name]
        print(f"| {name} | {fmt(r)} | {ratio(r, base)} | {overhead(r, base)} | {note} |")
    return 0


def fmt(rate: float) -> str:
    return "-" if rate != rate else f"{rate:,.0f} ({1e6 / rate:.1f} us)"


def ratio(rate: float, base: float) -> str:
    return "-" if rate != rate or base != base else f"{rate / base:.2f}"


def overhead(rate: float, base: float) -> str:
    return "-" if rate != rate or base != base else f"{1e6 / rate - 1e6 / base:+.1f} us"


if __name__ == "__main__":
    sys.exit(main())
