"""Regionlock's device-facing wire formats, version 1: the check-in request and the verdict token.

docs/protocol.md is the specification; this module is its reference implementation. The
service reads check-ins (`open_checkin`, which parses a token once for its `kid` and then
verifies it, or `verify_checkin`) and signs verdicts (`verdict_claims`, `sign_verdict`); a
device agent signs check-ins (`sign_checkin`) and checks verdicts offline from the published
JWKS (`verify_verdict`).

Both tokens are compact JWS with EdDSA (see `regionlock.signing.jws`); their `typ` headers
differ, so a signature made for one purpose never passes as the other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from regionlock.domain.decision import Verdict
from regionlock.domain.errors import Conflict, InvalidInput, RegionlockError
from regionlock.domain.policy import Action, OfflineAction
from regionlock.signing import jws
from regionlock.signing.jws import (
    ALGORITHM,
    MAX_SAFE_INTEGER,
    PUBLIC_KEY_LENGTH,
    MalformedToken,
    ParsedToken,
    TokenError,
    b64url_decode,
)
from regionlock.signing.keys import Keyring, SigningKey

VERDICT_TYP = "regionlock-verdict+jwt"
CHECKIN_TYP = "regionlock-checkin+jwt"
VERDICT_VERSION = 1
CLOCK_WINDOW_S = 300  # a check-in's iat may differ from server time by this much, either way
DEFAULT_LEEWAY_S = 60  # a device's tolerance for its own clock when checking iat and exp

NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
CHECKIN_FIELDS = ("nonce", "counter", "iat", "signals")
VERDICTS = frozenset(a.value for a in Action)
OFFLINE_ACTIONS = frozenset(a.value for a in OfflineAction)


# -- errors: verdicts, as a device sees them ---------------------------------------------------


class UnknownKey(TokenError):
    """The token's `kid` names no usable key in the JWKS (or no key is registered for it)."""


class UnsupportedVersion(TokenError):
    """A verdict whose `ver` this code does not implement."""


class TokenExpired(TokenError):
    """The verdict's `exp` has passed (beyond the leeway)."""


class TokenNotYetValid(TokenError):
    """The verdict's `iat` lies in the future (beyond the leeway): a clock is wrong."""


class ClaimMismatch(TokenError):
    """A claim differs from what the device expects (`sub`, `nonce`, `iss`)."""

    def __init__(self, claim: str, message: str) -> None:
        super().__init__(f"{claim}: {message}")
        self.claim = claim


# -- errors: check-ins, as the service answers them (RFC 9457 problem types) --------------------


class InvalidCheckin(InvalidInput):
    """A correctly signed check-in whose payload breaks the v1 contract."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ClockSkew(RegionlockError):
    """The check-in's `iat` is too far from server time to be taken as fresh."""

    def __init__(self, message: str, server_time: int) -> None:
        super().__init__(message)
        self.server_time = server_time


class ReplayedNonce(Conflict):
    """The device has used this nonce before. Raised by the service, which remembers nonces."""


class StaleCounter(Conflict):
    """The check-in's counter is not above the last one accepted. Raised by the service."""


# -- helpers -----------------------------------------------------------------------------------


def _seconds(value: datetime, name: str) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    # An aware datetime's timestamp is that of its UTC instant (no astimezone needed).
    return int(value.timestamp())


def _is_count(value: Any) -> bool:
    # JSON integers that every platform reads exactly; bool is an int in Python, not here.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SAFE_INTEGER


def _object(claims: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = claims.get(name)
    if not isinstance(value, Mapping):
        raise MalformedToken(f"claim {name!r} must be an object")
    return value


def _text(obj: Mapping[str, Any], name: str, *, nullable: bool = False) -> None:
    value = obj.get(name)
    if isinstance(value, str) or (nullable and name in obj and value is None):
        return
    kind = "a string or null" if nullable else "a string"
    raise MalformedToken(f"claim {name!r} must be {kind}")


def _count(obj: Mapping[str, Any], name: str) -> int:
    value: Any = obj.get(name)
    if not _is_count(value):
        raise MalformedToken(f"claim {name!r} must be an integer from 0 to 2**53 - 1")
    return int(value)


def _check_claims(claims: Mapping[str, Any]) -> None:
    """Version-1 claims, as a device reads them. Claims it does not know are ignored."""
    ver = claims.get("ver")
    if isinstance(ver, bool) or ver != VERDICT_VERSION:
        raise UnsupportedVersion(f"verdict version {ver!r}; this code reads {VERDICT_VERSION}")
    for name in ("iss", "sub", "message", "contact", "nonce"):
        _text(claims, name)
    if "lang" in claims:  # added within v1: verdicts from older services lack it
        _text(claims, "lang")
    # Only text is looked up: `in` on a frozenset hashes, and a JSON list or object is
    # unhashable (a TypeError, where the device must see a refused token).
    verdict = claims.get("verdict")
    if not isinstance(verdict, str) or verdict not in VERDICTS:
        raise MalformedToken(f"claim 'verdict' must be one of {sorted(VERDICTS)}")
    reasons = claims.get("reasons")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise MalformedToken("claim 'reasons' must be a list of strings")
    policy = _object(claims, "policy")
    _text(policy, "id")
    _text(policy, "version")
    location = _object(claims, "location")
    _text(location, "country", nullable=True)
    _text(location, "subdivision", nullable=True)
    _count(claims, "counter")
    iat = _count(claims, "iat")
    if _count(claims, "exp") <= iat:
        raise MalformedToken("claim 'exp' must be after 'iat'")
    offline = _object(claims, "offline")
    offline_action = offline.get("action")
    if not isinstance(offline_action, str) or offline_action not in OFFLINE_ACTIONS:
        raise MalformedToken(f"claim 'offline.action' must be one of {sorted(OFFLINE_ACTIONS)}")
    _count(offline, "lock_after_days")
    _count(offline, "warn_days")
    if "exemption" in claims:  # added within v1: only an exempted device's verdicts carry it
        exemption = _object(claims, "exemption")
        until = exemption.get("until")
        if until is not None:
            _count(exemption, "until")


# -- verdicts: the service side ----------------------------------------------------------------


def verdict_claims(
    verdict: Verdict,
    *,
    issuer: str,
    device_id: str,
    country: str | None,
    subdivision: str | None,
    nonce: str,
    counter: int,
    issued_at: datetime,
) -> dict[str, Any]:
    """The v1 claims for `verdict`, answering the check-in that carried `nonce` and `counter`.

    `exp` is the lease end; times are whole seconds since the epoch (rounded down).
    """
    lease = verdict.lease
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": device_id,
        "verdict": verdict.action.value,
        "reasons": list(verdict.reasons),
        "message": verdict.message,
        "lang": verdict.language,
        "contact": verdict.contact,
        "policy": {"id": verdict.policy_id, "version": verdict.policy_version},
        "location": {"country": country, "subdivision": subdivision},
        "nonce": nonce,
        "counter": counter,
        "iat": _seconds(issued_at, "issued_at"),
        "exp": _seconds(lease.expires, "lease.expires"),
        "offline": {
            "action": lease.offline_action.value,
            "lock_after_days": lease.offline_lock_after_days,
            "warn_days": lease.offline_warn_days,
        },
        "ver": VERDICT_VERSION,
    }
    if verdict.exempt:
        until = verdict.exempt_until
        claims["exemption"] = {
            # The first second it no longer holds (00:00 UTC of its end day), or null: for good.
            "until": None
            if until is None
            else int(datetime(until.year, until.month, until.day, tzinfo=UTC).timestamp()),
        }
    try:
        _check_claims(claims)
    except TokenError as exc:
        raise ValueError(f"cannot build a v1 verdict: {exc.message}") from exc
    return claims


def sign_verdict(
    claims: Mapping[str, Any],
    keyring: Keyring,
    now: datetime,
    *,
    max_lifetime: timedelta | None = None,
) -> str:
    """The verdict token: `claims` signed by the keyring's active key.

    Refuses (ValueError) claims a device would reject: not v1, already expired, issued in the
    future, or, with `max_lifetime`, living longer than the keyring keeps retired keys published.
    """
    try:
        _check_claims(claims)
    except TokenError as exc:
        raise ValueError(f"not a v1 verdict: {exc.message}") from exc
    _check_times(claims, now, max_lifetime)
    return jws.sign(claims, keyring.active, VERDICT_TYP)


def _check_times(claims: Mapping[str, Any], now: datetime, max_lifetime: timedelta | None) -> None:
    now_s = _seconds(now, "now")
    if claims["exp"] <= now_s:
        raise ValueError("the verdict has already expired")
    if claims["iat"] > now_s + DEFAULT_LEEWAY_S:
        raise ValueError("the verdict's iat lies in the future")
    if max_lifetime is not None and claims["exp"] - claims["iat"] > max_lifetime.total_seconds():
        raise ValueError(f"the verdict lives longer than {max_lifetime}")


class Answering(TypedDict):
    """What a verdict answers (`verdict_claims`' keywords)."""

    issuer: str
    device_id: str
    country: str | None
    subdivision: str | None
    nonce: str
    counter: int
    issued_at: datetime


def issue_verdict(
    verdict: Verdict,
    *,
    keyring: Keyring,
    max_lifetime: timedelta | None = None,
    **answering: Unpack[Answering],
) -> tuple[str, dict[str, Any]]:
    """`verdict_claims` and `sign_verdict` at `issued_at` in one step: the token and its
    claims, the same bytes as the two calls give. The claims are checked once (the service
    builds every member itself, so the canonical-form walk of `jws.sign` is not repeated)."""
    claims = verdict_claims(verdict, **answering)
    _check_times(claims, answering["issued_at"], max_lifetime)
    return jws.sign_checked(claims, keyring.active, VERDICT_TYP), claims


def verdict_response(token: str, claims: Mapping[str, Any]) -> dict[str, Any]:
    """The check-in response body: the token, and its claims mirrored for readability."""
    return {"token": token, **claims}


# -- verdicts: the device side -----------------------------------------------------------------


def _key_from_jwks(jwks: Mapping[str, Any], kid: str) -> Ed25519PublicKey:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise UnknownKey("the JWKS has no 'keys' list")
    matches = [k for k in keys if isinstance(k, Mapping) and k.get("kid") == kid]
    if not matches:
        raise UnknownKey(f"no key {kid!r} in the JWKS")
    if len(matches) > 1:
        raise UnknownKey(f"the JWKS names {len(matches)} keys {kid!r}")
    jwk = matches[0]
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise UnknownKey(f"key {kid!r} is not an Ed25519 key")
    ops = jwk.get("key_ops", ["verify"])
    if (
        jwk.get("alg", ALGORITHM) != ALGORITHM
        or jwk.get("use", "sig") != "sig"
        or (not isinstance(ops, list) or "verify" not in ops)
    ):
        raise UnknownKey(f"key {kid!r} is not published for {ALGORITHM} signatures")
    x = jwk.get("x")
    try:
        raw = b64url_decode(x) if isinstance(x, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != PUBLIC_KEY_LENGTH:
        raise UnknownKey(f"key {kid!r} has no valid 'x' ({PUBLIC_KEY_LENGTH} bytes, base64url)")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_verdict(
    token: str | bytes,
    jwks: Mapping[str, Any],
    *,
    now: datetime,
    expected_sub: str | None = None,
    expected_nonce: str | None = None,
    expected_iss: str | None = None,
    leeway_s: int = DEFAULT_LEEWAY_S,
) -> dict[str, Any]:
    """What a device agent does with a verdict: every check, in order; returns the claims.

    The key comes from `jwks` by the header's `kid`; then the signature and `typ`, the v1
    claims, `exp` and `iat` against `now` (each with `leeway_s`), and, when given, `sub`,
    `nonce` (the one the device sent) and `iss`. Raises a `TokenError` subclass.
    """
    if leeway_s < 0:
        raise ValueError("leeway_s must not be negative")

    def key_for(header: Mapping[str, Any]) -> Ed25519PublicKey:
        kid = header.get("kid")
        if kid is None:
            raise UnknownKey("the verdict's header names no key ('kid')")
        return _key_from_jwks(jwks, kid)

    _, claims = jws.verify(token, key_for, expected_typ=VERDICT_TYP)
    _check_claims(claims)
    now_s = _seconds(now, "now")
    if now_s >= claims["exp"] + leeway_s:
        raise TokenExpired(f"the verdict expired at {claims['exp']} (now {now_s})")
    if claims["iat"] > now_s + leeway_s:
        raise TokenNotYetValid(f"the verdict is issued at {claims['iat']}, after now ({now_s})")
    for name, expected in (("sub", expected_sub), ("nonce", expected_nonce), ("iss", expected_iss)):
        if expected is not None and claims[name] != expected:
            raise ClaimMismatch(name, f"the verdict says {claims[name]!r}, expected {expected!r}")
    return claims


# -- check-ins ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckinRequest:
    """A device's check-in payload, validated (signals still raw: see `parse_signals`)."""

    nonce: str
    counter: int
    iat: int
    signals: Mapping[str, Any]

    def to_payload(self) -> dict[str, Any]:
        """The JSON payload a device signs."""
        return {
            "nonce": self.nonce,
            "counter": self.counter,
            "iat": self.iat,
            "signals": dict(self.signals),
        }


def parse_checkin_payload(payload: Any) -> CheckinRequest:
    """Validate a v1 check-in payload; `InvalidCheckin` names the first field that is wrong.

    The members are exactly `nonce`, `counter`, `iat` and `signals`; `signals` is the batch
    shape of `regionlock locate` without `id`, its contents validated by the caller with
    `regionlock.domain.signals.parse_signals` (after filling in `ip` from the peer address).
    """
    if not isinstance(payload, Mapping):
        raise InvalidCheckin("payload", "must be a JSON object")
    for name in CHECKIN_FIELDS:
        if name not in payload:
            raise InvalidCheckin(name, "missing")
    # A dict holding every field and no more members than that has no other.
    if type(payload) is not dict or len(payload) != len(CHECKIN_FIELDS):
        unknown = sorted(set(payload) - set(CHECKIN_FIELDS))
        if unknown:
            raise InvalidCheckin("payload", f"unknown field(s) {unknown}")
    nonce = payload["nonce"]
    if not isinstance(nonce, str) or not NONCE_PATTERN.fullmatch(nonce):
        raise InvalidCheckin("nonce", "must be 16 to 128 base64url characters (A-Z a-z 0-9 - _)")
    counter = payload["counter"]
    if not _is_count(counter):
        raise InvalidCheckin("counter", "must be an integer from 0 to 2**53 - 1")
    iat = payload["iat"]
    if not _is_count(iat):
        raise InvalidCheckin("iat", "must be whole seconds since the epoch (an integer)")
    signals = payload["signals"]
    if not isinstance(signals, Mapping):
        raise InvalidCheckin("signals", "must be a JSON object")
    if "id" in signals:
        # The batch format's `id` has no place here: the token's `kid` names the device.
        raise InvalidCheckin(
            "signals", "'id' is not a check-in signal; the header's kid names the device"
        )
    return CheckinRequest(nonce=nonce, counter=counter, iat=iat, signals=signals)


def check_clock(request: CheckinRequest, now: datetime, *, window_s: int = CLOCK_WINDOW_S) -> None:
    """Refuse (`ClockSkew`) a check-in whose `iat` is more than `window_s` from `now`."""
    now_s = _seconds(now, "now")
    skew = request.iat - now_s
    if abs(skew) > window_s:
        side = "ahead of" if skew > 0 else "behind"
        raise ClockSkew(
            f"iat is {abs(skew)} s {side} server time ({now_s}); at most {window_s} s is accepted",
            server_time=now_s,
        )


def verify_checkin(
    token: str | bytes,
    public_key: bytes | Ed25519PublicKey | jws.KeyResolver,
    *,
    now: datetime,
    window_s: int = CLOCK_WINDOW_S,
) -> CheckinRequest:
    """The stateless half of reading a check-in: signature, `typ`, payload contract, clock.

    `public_key` is the device's registered key, or a function finding it from the header's
    `kid` (raising the service's unknown-device error when there is none), which spares a
    second parse after `peek_header` (as does `open_checkin`, which also lets the caller look
    the device up between parsing and verifying). The nonce and counter rules need the
    device's state and are the caller's (`ReplayedNonce`, `StaleCounter`).
    """
    _, payload = jws.verify(token, public_key, expected_typ=CHECKIN_TYP)
    request = parse_checkin_payload(payload)
    check_clock(request, now, window_s=window_s)
    return request


class OpenedCheckin:
    """A check-in token parsed once, strictly, its signature NOT yet checked (`open_checkin`).

    Read `header["kid"]` to find the device, then `verify` with its key: together exactly
    `peek_header` followed by `verify_checkin`, same checks, same errors, without parsing twice.
    """

    __slots__ = ("_parts", "_typ")

    def __init__(self, parts: ParsedToken) -> None:
        self._parts = parts
        # Kept apart from `header`, which the caller may change: the type checked is the token's.
        self._typ = parts.header.get("typ")

    @property
    def header(self) -> dict[str, Any]:
        """The protected header, strictly parsed but unauthenticated: use it to pick the key."""
        return self._parts.header

    def verify(
        self,
        public_key: bytes | Ed25519PublicKey,
        *,
        now: datetime,
        window_s: int = CLOCK_WINDOW_S,
    ) -> CheckinRequest:
        """What `verify_checkin` checks, in the same order: `typ`, signature, payload, clock.

        `public_key` is the device's raw 32-byte key or a loaded one (which a caller may keep
        between check-ins). The nonce and counter rules remain the caller's.
        """
        jws.check_type(self._typ, CHECKIN_TYP)
        jws.check_signature(self._parts, public_key)
        request = parse_checkin_payload(jws.json_object(self._parts.payload, "payload"))
        check_clock(request, now, window_s=window_s)
        return request


def open_checkin(token: str | bytes) -> OpenedCheckin:
    """Parse a check-in token once, as strictly as `verify_checkin` does, before its key is known.

    Raises what `peek_header` raises (`MalformedToken`, `WrongAlgorithm`); `typ` and the
    signature are checked by `OpenedCheckin.verify`.
    """
    return OpenedCheckin(jws.parse_unverified(token))


def sign_checkin(request: CheckinRequest, key: SigningKey, device_kid: str) -> str:
    """A check-in token as a device makes it (reference agent, tests).

    The payload is compact JSON but not held to the canonical form: signals carry decimal
    coordinates, and the service verifies the bytes it receives, never a re-serialisation.
    """
    header = {"alg": ALGORITHM, "kid": device_kid, "typ": CHECKIN_TYP}
    payload = json.dumps(
        request.to_payload(),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return jws.sign_bytes(header, payload.encode("utf-8"), key)
