"""Whatever a device or a network sends, the token parsers answer with a value or a
`RegionlockError` (a `TokenError`, `InvalidCheckin`, `InvalidSignal`, ...), never another
exception: anything else escaping the check-in path is a 500, and on a device a crash.

Tokens are signed for real where that matters, so the properties reach past the signature
into the header, payload and claims parsers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from fuzz_inputs import (
    deep_json_texts,
    deep_values,
    integers,
    json_bytes,
    json_like,
    signal_dicts,
    texts,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from signing_fixtures import T0, golden_jwks, golden_key, make_claims

from regionlock.domain.errors import RegionlockError
from regionlock.domain.signals import parse_signals
from regionlock.signing import jws
from regionlock.signing.jws import MAX_SAFE_INTEGER, TokenError, b64url_decode, b64url_encode
from regionlock.signing.keys import SigningKey
from regionlock.signing.verdict import (
    CHECKIN_TYP,
    NONCE_PATTERN,
    OFFLINE_ACTIONS,
    VERDICT_TYP,
    VERDICTS,
    CheckinRequest,
    UnknownKey,
    open_checkin,
    parse_checkin_payload,
    verify_checkin,
    verify_verdict,
)

_T = TypeVar("_T")
FUZZ = settings(max_examples=300, deadline=None)

DEVICE_KEY = SigningKey.from_seed(
    hashlib.sha256(b"regionlock fuzz device key").digest(), created=T0 - timedelta(days=1)
)
NOW = T0
NOW_S = int(T0.timestamp())


def outcome(call: Callable[[], _T]) -> _T | RegionlockError:
    """What `call` returns, or the RegionlockError it raised; any other exception fails."""
    try:
        return call()
    except RegionlockError as exc:
        assert isinstance(exc.message, str) and exc.message
        str(exc)  # and it can be shown
        return exc


def same_outcome(a: object, b: object) -> bool:
    if isinstance(a, RegionlockError) or isinstance(b, RegionlockError):
        return type(a) is type(b) and str(a) == str(b)
    return a == b


# -- tokens ------------------------------------------------------------------------------------

_segments = (
    st.binary(max_size=80).map(b64url_encode)
    | texts(12)
    | st.sampled_from(["", "=", "A", "AB", "AC", "ABC", "ABD", "AAAA", "AA==", "e30", "W10"])
)
_compact = st.lists(_segments, max_size=5).map(".".join)
_long = st.integers(jws.MAX_TOKEN_LENGTH - 2, jws.MAX_TOKEN_LENGTH + 2).map(
    lambda n: ("e30." + "A" * n)[:n]
)
tokens: st.SearchStrategy[Any] = (
    _compact
    | _compact.map(lambda t: t.encode("utf-8", "surrogatepass"))
    | texts(60)
    | st.binary(max_size=120)
    | _long
    | json_like(max_leaves=4)  # not even text: the API gives `str | bytes`, a caller may not
)


def _device_key_by_kid(header: Mapping[str, Any]) -> bytes:
    if header.get("kid") != DEVICE_KEY.kid:
        raise UnknownKey("no such device")
    return DEVICE_KEY.public_bytes


def every_reader(token: Any) -> None:
    """Hand `token` to every parser and verifier a token meets, service and device side."""
    outcome(lambda: jws.peek_header(token))
    outcome(lambda: jws.peek_header(token, expected_typ=CHECKIN_TYP))
    outcome(lambda: jws.parse_unverified(token))
    outcome(lambda: jws.verify(token, DEVICE_KEY.public_bytes, expected_typ=None))
    outcome(lambda: jws.verify(token, _device_key_by_kid, expected_typ=CHECKIN_TYP))
    outcome(lambda: jws.verify_bytes(token, DEVICE_KEY.public_key, expected_typ=None))
    outcome(lambda: verify_verdict(token, golden_jwks(), now=NOW))
    # The service's two ways of reading a check-in agree on every token.
    opened = outcome(lambda: open_checkin(token))
    if not isinstance(opened, RegionlockError):
        assert isinstance(opened.header, dict)
        via_open = outcome(lambda: opened.verify(DEVICE_KEY.public_bytes, now=NOW))
    else:
        via_open = opened
    # As documented: `open_checkin` + `verify` is `peek_header` + `verify_checkin`.
    via_verify = outcome(
        lambda: (
            jws.peek_header(token),
            verify_checkin(token, DEVICE_KEY.public_bytes, now=NOW),
        )[1]
    )
    assert same_outcome(via_open, via_verify), (via_open, via_verify)


@FUZZ
@given(tokens)
def test_any_token_is_refused_or_read(token: Any) -> None:
    every_reader(token)


# Header members that the parser looks at, with values of every type.
_algs = st.sampled_from(["EdDSA", "eddsa", "none", "HS256", "ES256", "EdDSA\x00", ""])
_typs = st.sampled_from(
    [CHECKIN_TYP, VERDICT_TYP, "application/" + CHECKIN_TYP, CHECKIN_TYP.upper(), "JWT", ""]
)
_headers = st.fixed_dictionaries(
    {},
    optional={
        "alg": _algs | json_like(max_leaves=4),
        "kid": st.just(DEVICE_KEY.kid) | texts() | json_like(max_leaves=4),
        "typ": _typs | texts() | json_like(max_leaves=4),
        "crit": json_like(max_leaves=4),
        "b64": st.booleans() | json_like(max_leaves=4),
        "jwk": json_like(max_leaves=4),
    },
) | st.dictionaries(texts(8), json_like(max_leaves=6), max_size=4)
_header_bytes = (
    st.builds(json_bytes, _headers, ascii_only=st.booleans()).filter(lambda b: b is not None)
    | st.sampled_from(
        [
            b'{"alg":"EdDSA","alg":"EdDSA"}',
            b'{"alg":NaN}',
            b'{"alg":"EdDSA","kid":' + b"9" * 5000 + b"}",
            b'\xef\xbb\xbf{"alg":"EdDSA"}',
            b'{"alg":"EdDSA","kid":"\\ud800","typ":"' + CHECKIN_TYP.encode() + b'"}',
            b'{"alg":"EdDSA","kid":"a\\u0000b"}',
            b'{"alg":"EdDSA"',
            b"[]",
            b"",
            b"\xff",
        ]
    )
    | deep_json_texts.map(lambda t: ('{"alg":"EdDSA","kid":' + t + "}").encode())
)
_payload_bytes = (
    st.binary(max_size=60)
    | st.builds(json_bytes, json_like(), ascii_only=st.booleans()).filter(lambda b: b is not None)
    | deep_json_texts.map(str.encode)
)


def signed(header: bytes, payload: bytes, key: SigningKey = DEVICE_KEY) -> str:
    """A compact JWS of exactly these header and payload bytes, correctly signed by `key`."""
    signing_input = f"{b64url_encode(header)}.{b64url_encode(payload)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


@FUZZ
@given(_header_bytes, _payload_bytes)
def test_any_header_signed_by_the_device_is_refused_or_read(header: bytes, payload: bytes) -> None:
    every_reader(signed(header, payload))


# -- check-in payloads -------------------------------------------------------------------------

_nonces = st.from_regex(NONCE_PATTERN, fullmatch=True) | texts(20) | json_like(max_leaves=3)
_counts = (
    st.integers(0, MAX_SAFE_INTEGER)
    | integers
    | st.floats()
    | st.booleans()
    | texts(4)
    | json_like(max_leaves=3)
)
_iats = st.integers(NOW_S - 400, NOW_S + 400) | _counts
_checkins = st.fixed_dictionaries(
    {"nonce": _nonces, "counter": _counts, "iat": _iats, "signals": signal_dicts},
    optional={"kid": texts(), "ver": json_like(max_leaves=3)},
)
_payloads: st.SearchStrategy[Any] = (
    _checkins
    | _checkins.flatmap(
        lambda c: st.sampled_from(sorted(c)).map(lambda k: {n: v for n, v in c.items() if n != k})
    )
    | _checkins.map(lambda c: {**c, "signals": {**c["signals"], "id": "d"}})
    | _checkins.flatmap(lambda c: deep_values.map(lambda d: {**c, "signals": {"timezone": d}}))
    | json_like()
)


def check_request(request: CheckinRequest) -> None:
    """What a CheckinRequest promises its users."""
    assert NONCE_PATTERN.fullmatch(request.nonce)
    for count in (request.counter, request.iat):
        assert type(count) is int and 0 <= count <= MAX_SAFE_INTEGER
    assert abs(request.iat - NOW_S) <= 300
    assert isinstance(request.signals, Mapping) and "id" not in request.signals


@FUZZ
@given(_payloads, st.booleans())
def test_any_signed_checkin_is_refused_or_read_to_the_signals(
    payload: Any, ascii_only: bool
) -> None:
    """The service's whole path for one token: open, verify, parse the payload, the signals."""
    data = json_bytes(payload, ascii_only=ascii_only)
    assume(data is not None)
    assert data is not None
    token = jws.sign_bytes(
        {"alg": "EdDSA", "kid": DEVICE_KEY.kid, "typ": CHECKIN_TYP}, data, DEVICE_KEY
    )
    request = outcome(lambda: open_checkin(token).verify(DEVICE_KEY.public_bytes, now=NOW))
    assert same_outcome(
        request, outcome(lambda: verify_checkin(token, DEVICE_KEY.public_key, now=NOW))
    )
    if isinstance(request, CheckinRequest):
        check_request(request)
        outcome(lambda: parse_signals(dict(request.signals)))


@FUZZ
@given(
    _payloads
    | st.dictionaries(
        st.one_of(texts(), integers, st.none(), st.booleans(), st.tuples()), json_like(), max_size=6
    )
    | deep_values
)
def test_any_value_as_a_checkin_payload_is_refused_or_read(payload: Any) -> None:
    request = outcome(lambda: parse_checkin_payload(payload))
    if isinstance(request, CheckinRequest):
        assert NONCE_PATTERN.fullmatch(request.nonce)


# -- verdicts, as a device reads them ----------------------------------------------------------

_CLAIM_PATHS = sorted(
    [(name,) for name in make_claims()]
    + [("policy", n) for n in make_claims()["policy"]]
    + [("location", n) for n in make_claims()["location"]]
    + [("offline", n) for n in make_claims()["offline"]]
    + [("extra",), ("policy", "extra")]
)
_DELETE = object()
_claim_values = (
    st.just(_DELETE)
    | st.sampled_from([*VERDICTS, *OFFLINE_ACTIONS, 1, True, 1.0, -1, NOW_S, 2**53])
    | integers
    | json_like(max_leaves=6)
    | deep_values
)


def mutated(claims: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    for path, value in changes:
        target: Any = claims
        for name in path[:-1]:
            if not isinstance(target.get(name), dict):
                target[name] = {}
            target = target[name]
        if value is _DELETE:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    return claims


@FUZZ
@given(
    st.lists(st.tuples(st.sampled_from(_CLAIM_PATHS), _claim_values), min_size=1, max_size=3),
    st.booleans(),
)
def test_any_signed_claims_are_refused_or_read_by_the_device(
    changes: list[tuple[tuple[str, ...], Any]], ascii_only: bool
) -> None:
    data = json_bytes(mutated(make_claims(), changes), ascii_only=ascii_only)
    assume(data is not None)
    assert data is not None
    key = golden_key()
    token = jws.sign_bytes({"alg": "EdDSA", "kid": key.kid, "typ": VERDICT_TYP}, data, key)
    claims = outcome(lambda: verify_verdict(token, golden_jwks(), now=NOW, expected_sub="x"))
    assert isinstance(claims, TokenError) or claims["sub"] == "x"
    claims = outcome(lambda: verify_verdict(token, golden_jwks(), now=NOW))
    if not isinstance(claims, dict):
        assert isinstance(claims, TokenError)  # the device side raises nothing broader
        return
    assert claims["verdict"] in VERDICTS and claims["offline"]["action"] in OFFLINE_ACTIONS
    assert claims["iat"] < claims["exp"]


_small_order_x = [bytes(32), (1).to_bytes(32, "little"), (2**255 - 20).to_bytes(32, "little")]
_jwk_values = (
    st.just(_DELETE)
    | st.sampled_from(["OKP", "Ed25519", "EdDSA", "sig", "enc", ["verify"], ["sign"], []])
    | st.binary(min_size=31, max_size=33).map(b64url_encode)
    | st.sampled_from(_small_order_x).map(b64url_encode)
    | json_like(max_leaves=4)
)
_jwk_members = st.sampled_from(["kty", "crv", "x", "kid", "use", "alg", "key_ops", "d"])


def _jwks_variant(changes: list[tuple[str, Any]], copies: int, extra: list[Any]) -> Any:
    jwk: dict[str, Any] = dict(golden_jwks()["keys"][0])
    for name, value in changes:
        if value is _DELETE:
            jwk.pop(name, None)
        else:
            jwk[name] = value
    return {"keys": [jwk] * copies + extra}


_jwks_documents = (
    st.builds(
        _jwks_variant,
        st.lists(st.tuples(_jwk_members, _jwk_values), max_size=3),
        st.integers(0, 2),
        st.lists(json_like(max_leaves=4), max_size=2),
    )
    | json_like(max_leaves=8)
    | st.dictionaries(st.just("keys"), json_like(max_leaves=8))
)


@FUZZ
@given(_jwks_documents)
def test_any_jwks_is_refused_or_used_by_the_device(jwks: Any) -> None:
    key = golden_key()
    token = jws.sign(make_claims(), key, VERDICT_TYP)
    claims = outcome(lambda: verify_verdict(token, jwks, now=NOW))
    assert isinstance(claims, (dict, TokenError))


# -- base64url -----------------------------------------------------------------------------------


@FUZZ
@given(texts(16) | st.binary(max_size=40).map(b64url_encode), st.binary(max_size=40))
def test_base64url_is_strict_and_canonical(text: str, data: bytes) -> None:
    """One byte string, one text: whatever decodes encodes back to the very same text."""
    assert b64url_decode(b64url_encode(data)) == data
    try:
        decoded = b64url_decode(text)
    except ValueError:  # its documented refusal, turned into MalformedToken by the parser
        return
    assert b64url_encode(decoded) == text
