"""Compact JWS (RFC 7515) with EdDSA over Ed25519 (RFC 8037): libsodium (PyNaCl) signs and
verifies, `cryptography`'s key objects are accepted, orjson writes the canonical JSON.

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
produces, so another implementation can reproduce it; golden tests pin the bytes. orjson
writes it (with sorted keys), about ten times faster than the standard library's encoder
(24 against 2.6 us a verdict); on this subset both write the same bytes, which
tests/signing/test_jws.py checks over every code point.
"""

from __future__ import annotations

import binascii
import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

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
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD_B64 = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE_B64 = bytes.maketrans(b"+/", b"-_")
# The characters that may end a canonical encoding, by the length of its last group: two
# characters carry 12 bits for one byte (the low 4 unused), three carry 18 for two bytes (the
# low 2 unused); unused bits must be zero. A full group of four has none.
_CLEAN_ENDINGS = {
    2: frozenset(c for i, c in enumerate(_B64URL_ALPHABET) if i % 16 == 0),
    3: frozenset(c for i, c in enumerate(_B64URL_ALPHABET) if i % 4 == 0),
}


class TokenError(RegionlockError):
    """A token that must not be trusted. Never carries a verdict."""


class MalformedToken(TokenError):
    """Not a well-formed compact JWS of the expected shape (segments, base64url, JSON)."""


class BadSignature(TokenError):
    """The signature does not match the signing input under the given key."""


class WrongAlgorithm(TokenError):
    """The header names an algorithm other than EdDSA (`none`, `HS256`, `RS256`, ...)."""


class WrongType(TokenError):
    """The header's `typ` is not the one this token is being read as."""


# -- encodings ---------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    encoded = binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE_B64)
    return encoded.rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict inverse of `b64url_encode`: no padding, no other alphabet, canonical trailing bits.

    Raises ValueError on anything else, so one byte string has exactly one text form.
    """
    last_group = len(text) % 4 if _B64URL.fullmatch(text) else 1
    if last_group == 1:
        raise ValueError("not unpadded base64url")
    # Equivalent to re-encoding the result and comparing, without encoding it.
    if last_group and text[-1] not in _CLEAN_ENDINGS[last_group]:
        raise ValueError("non-canonical base64url (stray trailing bits)")
    padded = text + "=" * (-len(text) % 4)
    try:
        return binascii.a2b_base64(padded.encode("ascii").translate(_TO_STANDARD_B64))
    except binascii.Error as exc:  # pragma: no cover - the pattern above rules this out
        raise ValueError("not unpadded base64url") from exc


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of `value` (see the module docstring). ValueError if unsupported."""
    _check_canonical(value, "$")
    return _encode_checked(value)


# The reference encoding, for what orjson leaves to it (keys that subclass `str`, unpaired
# surrogates, nesting deeper than its 254 levels): the same bytes, or the same error, as
# before orjson wrote canonical JSON.
_CANONICAL_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _encode_checked(value: Any) -> bytes:
    """The canonical bytes of a value already known to hold only canonical members."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        pass
    try:
        return _CANONICAL_ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text with unpaired surrogates cannot be signed") from exc


class _NotCanonical(Exception):
    """A member with no canonical form; `where` grows as the walk unwinds (`.key`, `[i]`)."""

    def __init__(self, what: str) -> None:
        self.where = ""
        self.what = what


def _check_canonical(value: Any, path: str) -> None:
    """ValueError naming the first member (from `path`) that has no canonical form. The walk
    builds no member paths while all is well: a path is put together only for the error."""
    try:
        _walk_canonical(value)
    except _NotCanonical as exc:
        raise ValueError(f"{path}{exc.where}: {exc.what}") from None


def _walk_canonical(value: Any) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise _NotCanonical(f"integer {value} is outside +-(2**53 - 1)")
        return
    if isinstance(value, float):
        raise _NotCanonical("floats have no canonical form here; use integers or strings")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotCanonical(f"object keys must be strings, got {key!r}")
            try:
                _walk_canonical(item)
            except _NotCanonical as exc:
                exc.where = f".{key}{exc.where}"
                raise
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            try:
                _walk_canonical(item)
            except _NotCanonical as exc:
                exc.where = f"[{i}]{exc.where}"
                raise
        return
    raise _NotCanonical(f"{type(value).__name__} is not a JSON value")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # some key came twice: name the first repeat
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate member {key!r}")
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder for every call (what `json.loads` with these options would build each time).
_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
)


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """Strictly parse `data` as a UTF-8 JSON object (no duplicate members, no NaN, no BOM);
    MalformedToken, naming `what`, otherwise."""
    try:
        text = data.decode("utf-8")
        if text.startswith("\ufeff"):  # as `json.loads` refuses it, before decoding
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        obj = _STRICT_DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedToken(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedToken(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


# -- parsing -----------------------------------------------------------------------------------


class ParsedToken(NamedTuple):
    """A compact JWS parsed by `parse_unverified`: nothing in it is authenticated yet."""

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


def _parse(token: str | bytes, expected_typ: str | None) -> ParsedToken:
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
    header = json_object(_segment(segments[0], "header"), "header")
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
        check_type(header.get("typ"), expected_typ)
    payload = _segment(segments[1], "payload")
    signature = _segment(segments[2], "signature")
    if len(signature) != SIGNATURE_LENGTH:
        raise MalformedToken(
            f"an Ed25519 signature is {SIGNATURE_LENGTH} bytes, got {len(signature)}"
        )
    signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")
    return ParsedToken(signing_input, header, payload, signature)


def check_type(typ: Any, expected_typ: str) -> None:
    """WrongType unless the header's `typ` value (a string or None) names `expected_typ`."""
    if typ is None or _media_type(typ) != _media_type(expected_typ):
        raise WrongType(f"token type {_shown(typ)} where {expected_typ!r} is expected")


def parse_unverified(token: str | bytes) -> ParsedToken:
    """Every strict check `verify` makes before the key is needed (segments, base64url, header,
    signature length), but not `typ` and NOT the signature: the parse-once half of verifying.

    Finish with `check_type` and `check_signature`; the header picks the key, nothing else
    in it may be acted on before then.
    """
    return _parse(token, None)


def peek_header(token: str | bytes, *, expected_typ: str | None = None) -> dict[str, Any]:
    """The protected header, parsed as strictly as `verify` does, WITHOUT checking the signature.

    For choosing the key (`kid`) before verifying; never act on anything else it says. To
    verify afterwards without parsing again, keep the `parse_unverified` result instead (for a
    check-in, `regionlock.signing.open_checkin`).
    """
    return _parse(token, expected_typ).header


# -- signing and verifying ---------------------------------------------------------------------


def sign_bytes(header: Mapping[str, Any], payload: bytes, key: SigningKey) -> str:
    """Compact JWS of raw `payload` bytes under `header` (serialised canonically)."""
    if header.get("alg") != ALGORITHM:
        raise ValueError(f"the header must say alg {ALGORITHM!r}")
    return _signed(b64url_encode(canonical_json(dict(header))), payload, key)


def _signed(header_segment: str, payload: bytes, key: SigningKey) -> str:
    signing_input = f"{header_segment}.{b64url_encode(payload)}"
    signature = key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


@functools.lru_cache(maxsize=64)
def _standard_header_segment(kid: str, typ: str) -> str:
    # A service signs under a handful of (kid, typ) pairs: serialise each header once.
    return b64url_encode(canonical_json({"alg": ALGORITHM, "kid": kid, "typ": typ}))


def _header_segment(kid: str, typ: str) -> str:
    if type(kid) is str and type(typ) is str:
        return _standard_header_segment(kid, typ)
    return b64url_encode(canonical_json({"alg": ALGORITHM, "kid": kid, "typ": typ}))


def sign(payload: Mapping[str, Any], key: SigningKey, typ: str) -> str:
    """Compact JWS of a JSON object; header exactly `{"alg":"EdDSA","kid":...,"typ":...}`."""
    kid = key.kid
    body = canonical_json(dict(payload))
    return _signed(_header_segment(kid, typ), body, key)


def sign_checked(payload: Mapping[str, Any], key: SigningKey, typ: str) -> str:
    """As `sign`, for a payload whose caller has already checked every member to have a
    canonical form (strings, booleans, null, integers within +-(2**53 - 1), lists, and objects
    with string keys: a verdict's claims after `_check_claims`). The same bytes as `sign`;
    it only skips the second walk over the members (about 10 us a verdict on the check-in
    path). Text with unpaired surrogates is still refused (ValueError)."""
    return _signed(_header_segment(key.kid, typ), _encode_checked(payload), key)


def _raw_public_key(key: bytes | Ed25519PublicKey) -> bytes:
    raw = key.public_bytes_raw() if isinstance(key, Ed25519PublicKey) else key
    if len(raw) != PUBLIC_KEY_LENGTH:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_LENGTH} bytes, got {len(raw)}")
    return raw


KeyResolver = Callable[[Mapping[str, Any]], bytes | Ed25519PublicKey]


def check_signature(parts: ParsedToken, public_key: bytes | Ed25519PublicKey) -> None:
    """BadSignature unless `parts` is signed by `public_key` (raw 32 bytes or a loaded key)."""
    # libsodium, not OpenSSL: twice as fast here (bench/bench_signing.py), and stricter, as
    # RFC 8032 allows: it also refuses small-order and non-canonical keys and R values.
    try:
        crypto_sign_open(parts.signature + parts.signing_input, _raw_public_key(public_key))
    except BadSignatureError as exc:
        raise BadSignature("signature does not verify with this key") from exc


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
    check_signature(parts, public_key(parts.header) if callable(public_key) else public_key)
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
    return header, json_object(payload, "payload")
