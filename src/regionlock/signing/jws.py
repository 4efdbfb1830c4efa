"""Compact JWS (RFC 7515) with EdDSA over Ed25519 (RFC 8037), built on `cryptography` alone.

Only what regionlock's wire formats need, and strict about it:

- one algorithm, `EdDSA` with an Ed25519 key; `none`, HMAC and everything else is refused
  before any key is touched, so an attacker cannot choose how a token is checked;
- compact serialisation only: exactly three base64url segments, no padding, canonical
  encoding (no stray trailing bits), a non-empty JSON-object payload;
- no `crit`, no unencoded payloads (`b64` must be absent or true); keys are never taken from
  the token (`jwk`, `jku`, `x5u`, `x5c` are ignored): the caller supplies the key.

**Canonical JSON.** Every token the service signs is serialised by `canonical_json`: object
members sorted by key (Unicode code point), separators `,` and `:` with no whitespace, UTF-8
with non-ASCII characters written as themselves (only `"`, `\\` and control characters are
escaped, control characters as `\\b \\f \\n \\r \\t` or lowercase `\\u00xx`), no floats and
integers within +-(2**53 - 1). On that subset the output is byte for byte what RFC 8785 (JCS)
produces, so another implementation can reproduce it; golden tests pin the bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from regionlock.domain.errors import RegionlockError

if TYPE_CHECKING:
    from regionlock.signing.keys import SigningKey

ALGORITHM = "EdDSA"
SIGNATURE_LENGTH = 64
PUBLIC_KEY_LENGTH = 32
# Far above any check-in or verdict (a few hundred bytes to a few KiB); bounds the work an
# unauthenticated request can cause before its signature is checked.
MAX_TOKEN_LENGTH = 64 * 1024
MAX_SAFE_INTEGER = 2**53 - 1

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(RegionlockError):
    """A token that must not be trusted. Never carries a verdict."""

    status = 401
    type_slug = "invalid-token"


class MalformedToken(TokenError):
    """Not a well-formed compact JWS of the expected shape (segments, base64url, JSON)."""

    type_slug = "malformed-token"


class BadSignature(TokenError):
    """The signature does not match the signing input under the given key."""

    type_slug = "bad-signature"


class WrongAlgorithm(TokenError):
    """The header names an algorithm other than EdDSA (`none`, `HS256`, `RS256`, ...)."""

    type_slug = "wrong-algorithm"


class WrongType(TokenError):
    """The header's `typ` is not the one this token is being read as."""

    type_slug = "wrong-type"


# -- encodings ---------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict inverse of `b64url_encode`: no padding, no other alphabet, canonical trailing bits.

    Raises ValueError on anything else, so one byte string has exactly one text form.
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:  # pragma: no cover - the pattern above rules this out
        raise ValueError("not unpadded base64url") from exc
    if b64url_encode(data) != text:
        raise ValueError("non-canonical base64url (stray trailing bits)")
    return data


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of `value` (see the module docstring). ValueError if unsupported."""
    _check_canonical(value, "$")
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text with unpaired surrogates cannot be signed") from exc


def _check_canonical(value: Any, path: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: integer {value} is outside +-(2**53 - 1)")
        return
    if isinstance(value, float):
        raise ValueError(f"{path}: floats have no canonical form here; use integers or strings")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: object keys must be strings, got {key!r}")
            _check_canonical(item, f"{path}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_canonical(item, f"{path}[{i}]")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate member {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedToken(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedToken(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


# -- parsing -----------------------------------------------------------------------------------


class _Parts(NamedTuple):
    signing_input: bytes
    header: dict[str, Any]
    payload: bytes
    signature: bytes


def _media_type(value: str) -> str:
    # RFC 7515 4.1.9: media types compare case-insensitively, "application/" may be omitted.
    value = value.lower()
    return value if "/" in value else "application/" + value


def _shown(value: Any) -> str:
    # Error messages reach the client; quote what the token said, but not at any length.
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _segment(text: str, name: str) -> bytes:
    if not text:
        raise MalformedToken(f"empty {name} segment")
    try:
        return b64url_decode(text)
    except ValueError as exc:
        raise MalformedToken(f"{name} segment: {exc}") from exc


def _parse(token: str | bytes, expected_typ: str | None) -> _Parts:
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError as exc:
            raise MalformedToken("token is not ASCII") from exc
    if not isinstance(token, str):
        raise MalformedToken(f"token must be text, got {type(token).__name__}")
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedToken(f"token longer than {MAX_TOKEN_LENGTH} characters")
    segments = token.split(".")
    if len(segments) != 3:
        raise MalformedToken(
            f"a compact JWS has exactly 3 dot-separated segments, got {len(segments)}"
        )
    # The header first: a token naming another algorithm is refused as such, whatever follows.
    header = _json_object(_segment(segments[0], "header"), "header")
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise WrongAlgorithm(f"algorithm {_shown(alg)} is not accepted; only {ALGORITHM!r} is")
    if "crit" in header:
        raise MalformedToken("critical header parameters ('crit') are not supported")
    if header.get("b64", True) is not True:
        raise MalformedToken("unencoded payloads ('b64') are not supported")
    for name in ("kid", "typ"):
        if name in header and not isinstance(header[name], str):
            raise MalformedToken(f"header {name!r} must be a string")
    if expected_typ is not None:
        typ = header.get("typ")
        if typ is None or _media_type(typ) != _media_type(expected_typ):
            raise WrongType(f"token type {_shown(typ)} where {expected_typ!r} is expected")
    payload = _segment(segments[1], "payload")
    signature = _segment(segments[2], "signature")
    if len(signature) != SIGNATURE_LENGTH:
        raise MalformedToken(
            f"an Ed25519 signature is {SIGNATURE_LENGTH} bytes, got {len(signature)}"
        )
    signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")
    return _Parts(signing_input, header, payload, signature)


def peek_header(token: str | bytes, *, expected_typ: str | None = None) -> dict[str, Any]:
    """The protected header, parsed as strictly as `verify` does, WITHOUT checking the signature.

    For choosing the key (`kid`) before verifying; never act on anything else it says.
    """
    return _parse(token, expected_typ).header


# -- signing and verifying ---------------------------------------------------------------------


def sign_bytes(header: Mapping[str, Any], payload: bytes, key: SigningKey) -> str:
    """Compact JWS of raw `payload` bytes under `header` (serialised canonically)."""
    if header.get("alg") != ALGORITHM:
        raise ValueError(f"the header must say alg {ALGORITHM!r}")
    signing_input = f"{b64url_encode(canonical_json(dict(header)))}.{b64url_encode(payload)}"
    signature = key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


def sign(payload: Mapping[str, Any], key: SigningKey, typ: str) -> str:
    """Compact JWS of a JSON object; header exactly `{"alg":"EdDSA","kid":...,"typ":...}`."""
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": typ}
    return sign_bytes(header, canonical_json(dict(payload)), key)


def _public_key(key: bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    if len(key) != PUBLIC_KEY_LENGTH:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_LENGTH} bytes, got {len(key)}")
    return Ed25519PublicKey.from_public_bytes(key)


KeyResolver = Callable[[Mapping[str, Any]], bytes | Ed25519PublicKey]


def verify_bytes(
    token: str | bytes,
    public_key: bytes | Ed25519PublicKey | KeyResolver,
    *,
    expected_typ: str | None,
) -> tuple[dict[str, Any], bytes]:
    """Check a compact JWS strictly; return its header and raw payload bytes.

    `public_key` is the raw 32-byte Ed25519 key, a loaded one, or a function that picks the
    key from the strictly parsed (still unverified) header, e.g. by `kid`; it may raise.
    """
    parts = _parse(token, expected_typ)
    key = public_key(parts.header) if callable(public_key) else public_key
    try:
        _public_key(key).verify(parts.signature, parts.signing_input)
    except InvalidSignature as exc:
        raise BadSignature("signature does not verify with this key") from exc
    return parts.header, parts.payload


def verify(
    token: str | bytes,
    public_key: bytes | Ed25519PublicKey | KeyResolver,
    *,
    expected_typ: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a compact JWS strictly; return its header and its JSON-object payload.

    `public_key` as for `verify_bytes`. With `expected_typ`, the header's `typ` must name that
    type. The payload is parsed only after the signature holds.
    """
    header, payload = verify_bytes(token, public_key, expected_typ=expected_typ)
    return header, _json_object(payload, "payload")
