"""The signed erasure receipt: the service's statement "I erased the device whose id has this
SHA-256, at this time, and recorded it as audit entry `seq` with hash `hash`" (docs/privacy.md).

A compact JWS (`regionlock.signing.jws`) signed by the service's current signing key, with its
own `typ`, `regionlock-erasure-receipt+jwt`: a device requires the verdict's `typ` and
`verify_erasure_receipt` requires this one, so a receipt never passes as a verdict (nor as an
audit head), nor they as a receipt, although one key signs all three.

Claims, version 1, all required, no others:

- `ver`: 1;
- `rid`: the receipt's id ("era_" and 26 base32 characters), also in the audit entry;
- `dev`: SHA-256 of the erased device id, 64 lowercase hex digits (the id itself is gone from
  the store; whoever holds it can check the receipt is about that device);
- `removed`: what was removed or rewritten, by kind (`checkins`, `imeis`, `audit_redacted`,
  ...), each a count;
- `seq`, `hash`: the audit entry recording the erasure, and its hash;
- `iat`: when the erasure was made and signed, seconds since the epoch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from regionlock.signing import jws
from regionlock.signing.jws import MAX_SAFE_INTEGER, MalformedToken
from regionlock.signing.keys import Keyring
from regionlock.signing.verdict import UnknownKey

ERASURE_RECEIPT_TYP = "regionlock-erasure-receipt+jwt"
ERASURE_RECEIPT_VERSION = 1
ERASURE_RECEIPT_CLAIMS = frozenset({"ver", "rid", "dev", "removed", "seq", "hash", "iat"})
_HASH = re.compile(r"[0-9a-f]{64}")
_RID = re.compile(r"era_[a-z2-7]{26}")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SAFE_INTEGER


def _check(claims: Mapping[str, Any]) -> None:
    """MalformedToken unless `claims` are exactly version-1 erasure receipt claims."""
    if set(claims) != ERASURE_RECEIPT_CLAIMS:
        raise MalformedToken(
            f"an erasure receipt has exactly the claims {sorted(ERASURE_RECEIPT_CLAIMS)}"
        )
    ver = claims["ver"]
    if isinstance(ver, bool) or ver != ERASURE_RECEIPT_VERSION:
        raise MalformedToken(f"erasure receipt version {ver!r}; this code reads 1")
    if not isinstance(claims["rid"], str) or not _RID.fullmatch(claims["rid"]):
        raise MalformedToken("claim 'rid' must be 'era_' and 26 base32 characters")
    for name in ("dev", "hash"):
        if not isinstance(claims[name], str) or not _HASH.fullmatch(claims[name]):
            raise MalformedToken(f"claim {name!r} must be 64 lowercase hex digits")
    if not _count(claims["seq"]) or not claims["seq"] or not _count(claims["iat"]):
        raise MalformedToken("claims 'seq' (from 1) and 'iat' must be integers up to 2**53 - 1")
    removed = claims["removed"]
    if not isinstance(removed, dict) or not all(
        isinstance(k, str) and _count(v) for k, v in removed.items()
    ):
        raise MalformedToken("claim 'removed' must map kinds to counts")


def erasure_receipt_claims(
    rid: str,
    device_digest: str,
    removed: Mapping[str, int],
    seq: int,
    digest: str,
    issued_at: datetime,
) -> dict[str, Any]:
    """The claims of the receipt for erasure `rid` of the device whose id hashes to
    `device_digest`, recorded as audit entry `seq` with hash `digest`."""
    if issued_at.utcoffset() is None:
        raise ValueError("issued_at must be timezone-aware")
    claims = {
        "ver": ERASURE_RECEIPT_VERSION,
        "rid": rid,
        "dev": device_digest,
        "removed": dict(removed),
        "seq": seq,
        "hash": digest,
        "iat": int(issued_at.timestamp()),
    }
    try:
        _check(claims)
    except MalformedToken as exc:
        raise ValueError(f"not an erasure receipt: {exc.message}") from exc
    return claims


def sign_erasure_receipt(claims: Mapping[str, Any], keyring: Keyring) -> str:
    """The receipt token: `claims` signed by the keyring's active key."""
    try:
        _check(claims)
    except MalformedToken as exc:
        raise ValueError(f"not an erasure receipt: {exc.message}") from exc
    return jws.sign(claims, keyring.active, ERASURE_RECEIPT_TYP)


def verify_erasure_receipt(token: str | bytes, keyring: Keyring) -> tuple[str, dict[str, Any]]:
    """Check a receipt: `typ`, the signature by the keyring's key (retired or not) that its
    `kid` names, the claims. Returns the `kid` and the claims; raises a TokenError."""

    def key_for(header: Mapping[str, Any]) -> Ed25519PublicKey:
        kid = header.get("kid")
        key = keyring.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnknownKey(f"the receipt is signed by key {kid!r}, which this store lacks")
        return key.public_key

    header, claims = jws.verify(token, key_for, expected_typ=ERASURE_RECEIPT_TYP)
    _check(claims)
    return str(header["kid"]), claims
