"""Signed wire formats: Ed25519 keys and keyring, strict compact JWS, the v1 verdict and check-in.

No I/O: keys are values the storage layer persists (`SigningKey.to_dict`), tokens are strings.
docs/protocol.md specifies what devices see.
"""

from regionlock.signing.jws import (
    BadSignature,
    MalformedToken,
    TokenError,
    WrongAlgorithm,
    WrongType,
    peek_header,
    sign,
    verify,
)
from regionlock.signing.keys import Keyring, NoSigningKey, SigningKey
from regionlock.signing.verdict import (
    CHECKIN_TYP,
    VERDICT_TYP,
    VERDICT_VERSION,
    CheckinRequest,
    ClaimMismatch,
    ClockSkew,
    InvalidCheckin,
    ReplayedNonce,
    StaleCounter,
    TokenExpired,
    TokenNotYetValid,
    UnknownKey,
    UnsupportedVersion,
    parse_checkin_payload,
    sign_checkin,
    sign_verdict,
    verdict_claims,
    verdict_response,
    verify_checkin,
    verify_verdict,
)

__all__ = [
    "CHECKIN_TYP",
    "VERDICT_TYP",
    "VERDICT_VERSION",
    "BadSignature",
    "CheckinRequest",
    "ClaimMismatch",
    "ClockSkew",
    "InvalidCheckin",
    "Keyring",
    "MalformedToken",
    "NoSigningKey",
    "ReplayedNonce",
    "SigningKey",
    "StaleCounter",
    "TokenError",
    "TokenExpired",
    "TokenNotYetValid",
    "UnknownKey",
    "UnsupportedVersion",
    "WrongAlgorithm",
    "WrongType",
    "parse_checkin_payload",
    "peek_header",
    "sign",
    "sign_checkin",
    "sign_verdict",
    "verdict_claims",
    "verdict_response",
    "verify",
    "verify_checkin",
    "verify_verdict",
]
