"""The signed audit head: the service's statement "my audit trail ends at entry `seq`, whose hash
is `hash`", made for someone outside the database to keep (docs/audit.md).

A compact JWS (`regionlock.signing.jws`) signed by the service's current signing key, with its
own `typ`, `regionlock-audit-head+jwt`. A device reading a verdict requires the verdict's
`typ` and `verify_audit_head` requires this one, so a head never passes as a verdict, nor a
verdict as a head, although one key signs both.

Claims, version 1, all required, no others:

- `ver`: 1;
- `seq`: the last entry's number (0 for an empty trail);
- `hash`: that entry's hash, 64 lowercase hex digits ("" for seq 0);
- `at`: that entry's time, UTC epoch milliseconds (null for seq 0);
- `iat`: when the head was signed, seconds since the epoch.

Version 2, the tree head (docs/audit.md, "Shards and the tree"), all required, no others:

- `ver`: 2;
- `size`: the number of leaves (sealed entries) of the audit trail's Merkle tree;
- `root`: its RFC 9162 root hash, 64 lowercase hex digits (SHA-256 of "" for size 0);
- `iat`: as above.

A version-1 head kept before the tree still verifies against the trail (`audit verify
--against`); heads signed now are version 2.
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

AUDIT_HEAD_TYP = "regionlock-audit-head+jwt"
AUDIT_HEAD_VERSION = 1
AUDIT_HEAD_CLAIMS = frozenset({"ver", "seq", "hash", "at", "iat"})
TREE_HEAD_VERSION = 2
TREE_HEAD_CLAIMS = frozenset({"ver", "size", "root", "iat"})
_HASH = re.compile(r"[0-9a-f]{64}")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SAFE_INTEGER


def _check(claims: Mapping[str, Any]) -> None:
    """MalformedToken unless `claims` are exactly version-1 or version-2 audit head claims."""
    if claims.get("ver") == TREE_HEAD_VERSION and not isinstance(claims.get("ver"), bool):
        if set(claims) != TREE_HEAD_CLAIMS:
            raise MalformedToken(f"a tree head has exactly the claims {sorted(TREE_HEAD_CLAIMS)}")
        if not _count(claims["size"]) or not _count(claims["iat"]):
            raise MalformedToken("claims 'size' and 'iat' must be integers from 0 to 2**53 - 1")
        if not (isinstance(claims["root"], str) and _HASH.fullmatch(claims["root"])):
            raise MalformedToken("claim 'root' must be 64 lowercase hex digits")
        return
    if set(claims) != AUDIT_HEAD_CLAIMS:
        raise MalformedToken(f"an audit head has exactly the claims {sorted(AUDIT_HEAD_CLAIMS)}")
    ver = claims["ver"]
    if isinstance(ver, bool) or ver != AUDIT_HEAD_VERSION:
        raise MalformedToken(
            f"audit head version {ver!r}; this code reads {AUDIT_HEAD_VERSION} and"
            f" {TREE_HEAD_VERSION}"
        )
    seq, digest, at = claims["seq"], claims["hash"], claims["at"]
    if not _count(seq) or not _count(claims["iat"]):
        raise MalformedToken("claims 'seq' and 'iat' must be integers from 0 to 2**53 - 1")
    if seq == 0:
        if digest != "" or at is not None:
            raise MalformedToken("the head of an empty trail has hash '' and at null")
    elif not (isinstance(digest, str) and _HASH.fullmatch(digest)) or not _count(at):
        raise MalformedToken("claim 'hash' must be 64 lowercase hex digits, 'at' an integer")


def _stated(what: str, issued_at: datetime, **fields: Any) -> dict[str, Any]:
    """`fields` with `iat`, checked to be the claims of `what`; ValueError if they are not."""
    if issued_at.utcoffset() is None:
        raise ValueError("issued_at must be timezone-aware")
    claims = {**fields, "iat": int(issued_at.timestamp())}
    try:
        _check(claims)
    except MalformedToken as exc:
        raise ValueError(f"not {what}: {exc.message}") from exc
    return claims


def audit_head_claims(seq: int, digest: str, at: int | None, issued_at: datetime) -> dict[str, Any]:
    """The claims stating that the trail ends at entry `seq` with hash `digest`, time `at`."""
    return _stated("an audit head", issued_at, ver=AUDIT_HEAD_VERSION, seq=seq, hash=digest, at=at)


def tree_head_claims(size: int, root: str, issued_at: datetime) -> dict[str, Any]:
    """The claims stating that the audit trail's tree of `size` leaves has root `root` (hex)."""
    return _stated("a tree head", issued_at, ver=TREE_HEAD_VERSION, size=size, root=root)


def sign_audit_head(claims: Mapping[str, Any], keyring: Keyring) -> str:
    """The audit head token: `claims` signed by the keyring's active key."""
    try:
        _check(claims)
    except MalformedToken as exc:
        raise ValueError(f"not an audit head: {exc.message}") from exc
    return jws.sign(claims, keyring.active, AUDIT_HEAD_TYP)


def verify_audit_head(token: str | bytes, keyring: Keyring) -> tuple[str, dict[str, Any]]:
    """Check an audit head token: `typ`, the signature by the keyring's key (retired or not)
    that its `kid` names, the claims. Returns the `kid` and the claims; raises a TokenError."""

    def key_for(header: Mapping[str, Any]) -> Ed25519PublicKey:
        kid = header.get("kid")
        key = keyring.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnknownKey(f"the audit head is signed by key {kid!r}, which this store lacks")
        return key.public_key

    header, claims = jws.verify(token, key_for, expected_typ=AUDIT_HEAD_TYP)
    _check(claims)
    return str(header["kid"]), claims
