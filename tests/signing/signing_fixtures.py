"""Fixed keys, times and a verdict for the signing tests: everything deterministic.

Imported by the test modules here (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from regionlock.domain.decision import Lease, Verdict
from regionlock.domain.policy import Action, OfflineAction
from regionlock.signing.keys import Keyring, SigningKey
from regionlock.signing.verdict import verdict_claims

# The golden service key: its 32-byte seed is a hash of a fixed label, so anyone can rebuild it.
GOLDEN_SEED = hashlib.sha256(b"regionlock golden verdict key v1").digest()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(days=7)
MAX_LIFETIME = timedelta(days=8)  # the longest lease plus a day
DEVICE_ID = "dev_7f3a9c"
NONCE = "q7Hn2Zk4PwX9bT1cVd8sLm"


def make_verdict(issued_at: datetime = T0, action: Action = Action.LOCK) -> Verdict:
    return Verdict(
        action=action,
        reasons=("jurisdiction.restricted", "presence.established"),
        explanation="located in IR on 5 of the last 14 days",
        policy_id="gray-market-2021",
        policy_version="3",
        lease=Lease(
            expires=issued_at + LEASE,
            offline_action=OfflineAction.LOCK,
            offline_lock_after_days=30,
            offline_warn_days=7,
        ),
        # Non-ASCII on purpose: the golden bytes pin UTF-8 written as itself, not \u escapes.
        message="Dieses Gerät ist für diese Region nicht freigegeben.",
        language="de",
        contact="support@example.com",
    )


def make_claims(
    issued_at: datetime = T0, device_id: str = DEVICE_ID, nonce: str = NONCE
) -> dict[str, Any]:
    return verdict_claims(
        make_verdict(issued_at),
        issuer="regionlock-test",
        device_id=device_id,
        country="IR",
        subdivision="IR-23",
        nonce=nonce,
        counter=42,
        issued_at=issued_at,
    )


def golden_key() -> SigningKey:
    return SigningKey.from_seed(GOLDEN_SEED, created=T0 - timedelta(days=30))


def golden_keyring() -> Keyring:
    return Keyring([golden_key()])


def golden_jwks() -> dict[str, list[dict[str, str]]]:
    return golden_keyring().jwks(T0, MAX_LIFETIME)
