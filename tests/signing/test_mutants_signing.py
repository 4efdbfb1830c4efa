"""Found by mutation testing (docs/test-quality.md): what `jws.py` and `verdict.py` say when
they refuse, the exact bytes a device signs, and the edges of the length and clock checks."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from signing_fixtures import NONCE, T0, golden_jwks, golden_key, golden_keyring, make_claims

from regionlock.signing import jws
from regionlock.signing.jws import MAX_TOKEN_LENGTH, b64url_encode
from regionlock.signing.verdict import (
    VERDICT_TYP,
    CheckinRequest,
    ClockSkew,
    InvalidCheckin,
    check_clock,
    parse_checkin_payload,
    sign_checkin,
    sign_verdict,
    verify_verdict,
)

NOW_S = int(T0.timestamp())


def _segments(header: dict[str, Any], payload: bytes = b'{"a":1}') -> str:
    return f"{b64url_encode(jws.canonical_json(header))}.{b64url_encode(payload)}.{'A' * 86}"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("é.b.c".encode(), "token is not ASCII"),
        (42, "token must be text, got int"),
        ("!.b.c", "header segment: not unpadded base64url"),
        (f"{b64url_encode(b'[1]')}.b.c", "header must be a JSON object, got list"),
        (_segments({"alg": "EdDSA", "crit": ["x"]}), "critical header parameters ('crit')"),
        (_segments({"alg": "EdDSA", "b64": False}), "unencoded payloads ('b64')"),
        (_segments({"alg": "EdDSA"}).replace(".", ".!", 1), "payload segment: not unpadded"),
        (_segments({"alg": "EdDSA"})[:-86] + "!", "signature segment: not unpadded"),
        (_segments({"alg": "EdDSA"})[:-2], "an Ed25519 signature is 64 bytes, got 63"),
    ],
)
def test_a_refused_token_says_which_part_is_wrong(token: Any, message: str) -> None:
    with pytest.raises(jws.TokenError) as caught:
        jws.peek_header(token)
    assert str(caught.value).startswith(message)


def test_a_token_of_exactly_the_maximum_length_is_not_refused_for_its_length() -> None:
    with pytest.raises(jws.MalformedToken, match="exactly 3 dot-separated segments, got 1"):
        jws.peek_header("A" * MAX_TOKEN_LENGTH)
    with pytest.raises(jws.MalformedToken, match="longer than"):
        jws.peek_header("A" * (MAX_TOKEN_LENGTH + 1))


@pytest.mark.parametrize(
    ("alg", "shown"),
    [
        ("a" * 38, repr("a" * 38)),  # 40 characters quoted: shown whole
        ("a" * 39, repr("a" * 39)[:37] + "..."),  # 41: cut to 37 and marked
    ],
)
def test_what_the_token_said_is_quoted_up_to_40_characters(alg: str, shown: str) -> None:
    with pytest.raises(jws.WrongAlgorithm) as caught:
        jws.peek_header(_segments({"alg": alg}))
    assert str(caught.value) == f"algorithm {shown} is not accepted; only 'EdDSA' is"
    with pytest.raises(jws.WrongType) as wrong:
        jws.check_type(alg, "x+jwt")
    assert str(wrong.value) == f"token type {shown} where 'x+jwt' is expected"


def test_signing_and_key_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"^the header must say alg 'EdDSA'"):
        jws.sign_bytes({"alg": "none"}, b"{}", golden_key())
    with pytest.raises(ValueError, match=r"^an Ed25519 public key is 32 bytes, got 3"):
        jws.check_signature(jws.parse_unverified(_segments({"alg": "EdDSA"})), b"abc")
    with pytest.raises(jws.BadSignature, match=r"^signature does not verify with this key"):
        jws.check_signature(jws.parse_unverified(_segments({"alg": "EdDSA"})), bytes(32 * [9]))


def _verdict(now: datetime = T0) -> str:
    return sign_verdict(make_claims(), golden_keyring(), now)


def test_a_device_is_told_why_a_verdict_is_refused() -> None:
    tok = _verdict()
    with pytest.raises(ValueError, match=r"^leeway_s must not be negative"):
        verify_verdict(tok, golden_jwks(), now=T0, leeway_s=-1)
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        verify_verdict(tok, golden_jwks(), now=T0.replace(tzinfo=None))
    with pytest.raises(jws.TokenError, match=r"^the JWKS has no 'keys' list"):
        verify_verdict(tok, {}, now=T0)
    no_kid = jws.sign_bytes(
        {"alg": "EdDSA", "typ": VERDICT_TYP}, jws.canonical_json(make_claims()), golden_key()
    )
    with pytest.raises(jws.TokenError, match=r"^the verdict's header names no key \('kid'\)"):
        verify_verdict(no_kid, golden_jwks(), now=T0)
    exp = make_claims()["exp"]
    with pytest.raises(jws.TokenError, match=f"the verdict expired at {exp} \\(now {exp + 60}\\)"):
        verify_verdict(tok, golden_jwks(), now=T0 + timedelta(days=7, seconds=60))
    early = T0 - timedelta(seconds=61)
    with pytest.raises(jws.TokenError, match=f"issued at {NOW_S}, after now \\({NOW_S - 61}\\)"):
        verify_verdict(tok, golden_jwks(), now=early)
    with pytest.raises(jws.TokenError, match="sub: the verdict says 'dev_7f3a9c', expected 'x'"):
        verify_verdict(tok, golden_jwks(), now=T0, expected_sub="x")


def _payload(**changes: Any) -> dict[str, Any]:
    return {"nonce": NONCE, "counter": 1, "iat": NOW_S, "signals": {}} | changes


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "payload: must be a JSON object"),
        (_payload(extra=1), "payload: unknown field(s) ['extra']"),
        (
            _payload(nonce="short"),
            "nonce: must be 16 to 128 base64url characters (A-Z a-z 0-9 - _)",
        ),
        (_payload(counter=-1), "counter: must be an integer from 0 to 2**53 - 1"),
        (_payload(iat=1.5), "iat: must be whole seconds since the epoch (an integer)"),
        (_payload(signals=[]), "signals: must be a JSON object"),
        (
            _payload(signals={"id": "x"}),
            "signals: 'id' is not a check-in signal; the header's kid names the device",
        ),
    ],
)
def test_a_refused_check_in_names_its_field_and_the_rule(payload: Any, message: str) -> None:
    # These texts are the `detail` of the problem the device receives.
    with pytest.raises(InvalidCheckin) as caught:
        parse_checkin_payload(payload)
    assert str(caught.value) == message
    assert caught.value.field == message.split(":")[0]


@pytest.mark.parametrize(("skew", "side"), [(1, "ahead of"), (-1, "behind")])
def test_clock_skew_says_which_way(skew: int, side: str) -> None:
    request = parse_checkin_payload(_payload(iat=NOW_S + skew))
    with pytest.raises(ClockSkew) as caught:
        check_clock(request, T0, window_s=0)
    assert str(caught.value) == f"iat is 1 s {side} server time ({NOW_S}); at most 0 s is accepted"
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        check_clock(request, T0.replace(tzinfo=None))


def test_a_device_signs_compact_sorted_utf8_json() -> None:
    request = CheckinRequest(
        nonce=NONCE, counter=7, iat=NOW_S, signals={"wifi": "Café", "cell": {"mcc": 432}}
    )
    tok = sign_checkin(request, golden_key(), "dev_1")
    payload = jws.b64url_decode(tok.split(".")[1])
    signals = '{"cell":{"mcc":432},"wifi":"Café"}'
    expected = f'{{"counter":7,"iat":{NOW_S},"nonce":"{NONCE}","signals":{signals}}}'
    assert payload == expected.encode()


def test_a_device_refuses_to_sign_nan() -> None:
    request = CheckinRequest(nonce=NONCE, counter=7, iat=NOW_S, signals={"lat": math.nan})
    with pytest.raises(ValueError, match="Out of range float"):
        sign_checkin(request, golden_key(), "dev_1")
