"""Found by mutation testing (docs/test-quality.md): what `jws.py` and `verdict.py` say when
they refuse, the exact bytes a device signs, and the edges of the length and clock checks;
then the same for `unlock.py`, `keys.py` and `audit_head.py`, and for `appeal.py` and
`erasure.py`."""

from __future__ import annotations

import hmac
import json
import math
import re
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from signing_fixtures import (
    NONCE,
    T0,
    golden_jwks,
    golden_key,
    golden_keyring,
    make_claims,
    make_verdict,
)

from regionlock.domain.errors import InvalidInput
from regionlock.signing import jws
from regionlock.signing.appeal import (
    APPEAL_TYP,
    AppealRequest,
    InvalidAppeal,
    parse_appeal_payload,
    sign_appeal,
    verify_appeal,
)
from regionlock.signing.audit_head import (
    AUDIT_HEAD_TYP,
    audit_head_claims,
    sign_audit_head,
    tree_head_claims,
    verify_audit_head,
)
from regionlock.signing.erasure import (
    ERASURE_RECEIPT_TYP,
    erasure_receipt_claims,
    sign_erasure_receipt,
    verify_erasure_receipt,
)
from regionlock.signing.jws import MAX_SAFE_INTEGER, MAX_TOKEN_LENGTH, b64url_encode
from regionlock.signing.keys import Keyring, SigningKey
from regionlock.signing.unlock import (
    ed25519_public_to_x25519,
    ed25519_seed_to_x25519,
    new_challenge,
    normalize_challenge,
    normalize_code,
    service_secret,
    unlock_code,
)
from regionlock.signing.verdict import (
    VERDICT_TYP,
    CheckinRequest,
    ClockSkew,
    InvalidCheckin,
    UnknownKey,
    check_clock,
    parse_checkin_payload,
    sign_checkin,
    sign_verdict,
    verdict_claims,
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


# -- unlock.py, keys.py, audit_head.py (the second signing run) ---------------------------------

_P = 2**255 - 19


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (_P, "not a usable Ed25519 public key"),  # y = p: not a canonical encoding
        (_P + 5, "not a usable Ed25519 public key"),
        (1, "not a usable Ed25519 public key"),  # the neutral point: 1 - y has no inverse
    ],
)
def test_an_unusable_device_key_is_refused_for_unlock_codes(y: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        ed25519_public_to_x25519(y.to_bytes(32, "little"))


def test_a_device_key_of_the_wrong_length_is_refused_for_unlock_codes() -> None:
    with pytest.raises(ValueError, match=r"^an Ed25519 public key is 32 bytes$"):
        ed25519_public_to_x25519(bytes(31))


def test_the_montgomery_form_of_small_y_values() -> None:
    """u = (1 + y) / (1 - y) mod p: y = 2 gives u = -3, y = 0 gives u = 1."""
    assert ed25519_public_to_x25519((2).to_bytes(32, "little")) == (_P - 3).to_bytes(32, "little")
    assert ed25519_public_to_x25519(bytes(32)) == (1).to_bytes(32, "little")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"crv": "Ed448"}, "unsupported curve 'Ed448'"),
        ({"private_key": 7}, "private_key must be a base64url string"),
        ({"created": 1767225600}, "created must be an ISO 8601 timestamp string"),
        ({"created": "2026-01-30T12:00:00"}, "created must be timezone-aware"),
        ({"retired": "2027-01-30T12:00:00"}, "retired must be timezone-aware"),
        ({"retired": 5}, "retired must be an ISO 8601 timestamp string"),
        ({"kid": "other"}, "stored kid 'other' does not match the key ({kid})"),
    ],
)
def test_a_refused_stored_key_says_what_is_wrong(change: dict[str, Any], message: str) -> None:
    stored = golden_key().to_dict()
    with pytest.raises(ValueError) as info:
        SigningKey.from_dict({**stored, **change})
    assert str(info.value) == message.format(kid=stored["kid"])


def test_a_stored_key_keeps_its_times_in_utc_whatever_the_machines_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tehran")
    time.tzset()
    try:
        key = golden_key().retire(T0)
        stored = key.to_dict()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert stored["created"].endswith("Z") and stored["retired"].endswith("Z")
    assert SigningKey.from_dict(stored) == key


def test_a_rotation_leaves_the_keys_retired_before_it_alone() -> None:
    """A key retired at the first rotation keeps that date: moved to the second, it would stay
    published (and trusted) longer than any token it signed can live."""
    first, second = T0 + timedelta(days=1), T0 + timedelta(days=30)
    twice = Keyring.new(T0).rotate(first).rotate(second)
    assert [k.retired for k in twice.keys] == [first, second, None]


@pytest.mark.parametrize(
    ("seq", "at", "ok"),
    [
        (MAX_SAFE_INTEGER, 1, True),
        (MAX_SAFE_INTEGER + 1, 1, False),
        (-1, 1, False),
        (1.5, 1, False),
        (True, 1, False),
        (1, True, False),
    ],
)
def test_an_audit_head_counts_in_integers_from_0_to_2_to_the_53_minus_1(
    seq: Any, at: Any, ok: bool
) -> None:
    if ok:
        claims = audit_head_claims(seq, "a" * 64, at, T0)
        token = jws.sign(claims, golden_keyring().active, AUDIT_HEAD_TYP)
        assert verify_audit_head(token, golden_keyring())[1]["seq"] == seq
    else:
        with pytest.raises(ValueError, match=r"^not an audit head: claim"):
            audit_head_claims(seq, "a" * 64, at, T0)


def test_an_unlock_code_is_the_construction_docs_protocol_md_gives() -> None:
    """Recomputed here from the text (RFC 5869 HKDF by hand, HMAC-SHA256): a device that
    implements the document must read back the same code as the service."""
    device = SigningKey.from_seed(bytes(range(32)), created=T0)
    unlock_key = X25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
    shared = ed25519_seed_to_x25519(bytes(range(32))).exchange(unlock_key.public_key())
    prk = hmac.digest(bytes(32), shared, "sha256")  # salt none: HashLen zero bytes
    info = b"regionlock offline unlock v1 secret|" + device.public_bytes
    secret = hmac.digest(prk, info + b"\x01", "sha256")  # 32 bytes: one block
    mac = hmac.digest(secret, b"regionlock offline unlock v1 code|12345678", "sha256")
    digits = f"{int.from_bytes(mac[:8], 'big') % 10**10:010d}"
    assert service_secret(unlock_key, device.public_bytes) == secret
    assert unlock_code(secret, "1234-5678") == f"{digits[:5]}-{digits[5:]}"


def test_a_seed_of_the_wrong_length_is_refused_for_unlock_codes() -> None:
    with pytest.raises(ValueError, match=r"^an Ed25519 seed is 32 bytes$"):
        ed25519_seed_to_x25519(bytes(31))


def test_challenges_are_drawn_from_all_10_to_the_8() -> None:
    drawn = {new_challenge() for _ in range(200)}
    # 200 draws from 10**8 repeat with probability 2e-4; from a smaller range far more often.
    assert len(drawn) >= 199
    assert all(len(c) == 8 and c.isdigit() for c in drawn)
    assert max(int(c) for c in drawn) >= 10**7


H = "a" * 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, H, 1, datetime(2026, 1, 1)), "issued_at must be timezone-aware"),
        ((-1, H, 1, T0), "claims 'seq' and 'iat' must be integers from 0 to 2**53 - 1"),
        ((1, H, 1, datetime(1969, 1, 1, tzinfo=UTC)), "claims 'seq' and 'iat' must be"),
        ((0, H, None, T0), "the head of an empty trail has hash '' and at null"),
        ((0, "", 1, T0), "the head of an empty trail has hash '' and at null"),
        ((1, "A" * 64, 1, T0), "claim 'hash' must be 64 lowercase hex digits, 'at' an integer"),
        ((1, 5, 1, T0), "claim 'hash' must be 64 lowercase hex digits, 'at' an integer"),
        ((1, H, None, T0), "claim 'hash' must be 64 lowercase hex digits, 'at' an integer"),
    ],
)
def test_claims_that_are_no_audit_head_say_why(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError) as info:
        audit_head_claims(*args)
    expected = message if args[3].tzinfo is None else f"not an audit head: {message}"
    assert str(info.value).startswith(expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "an audit head has exactly the claims ['at', 'hash', 'iat', 'seq', 'ver']"),
        ({"ver": 2}, "a tree head has exactly the claims ['iat', 'root', 'size', 'ver']"),
        ({"ver": 3}, "audit head version 3; this code reads 1 and 2"),
        ({"ver": True}, "audit head version True; this code reads 1 and 2"),
    ],
)
def test_a_head_of_another_shape_or_version_is_refused(
    change: dict[str, Any], message: str
) -> None:
    claims = {**audit_head_claims(1, H, 1, T0), **change}
    with pytest.raises(ValueError, match=f"^not an audit head: {re.escape(message)}$"):
        sign_audit_head(claims, golden_keyring())
    token = jws.sign(claims, golden_keyring().active, AUDIT_HEAD_TYP)
    with pytest.raises(jws.MalformedToken, match=f"^{re.escape(message)}$"):
        verify_audit_head(token, golden_keyring())


def test_a_head_signed_by_a_key_the_store_lacks_says_which() -> None:
    stranger = Keyring.new(T0)
    token = sign_audit_head(audit_head_claims(1, H, 1, T0), stranger)
    with pytest.raises(UnknownKey) as info:
        verify_audit_head(token, golden_keyring())
    assert str(info.value) == (
        f"the audit head is signed by key {stranger.active.kid!r}, which this store lacks"
    )


def test_challenges_and_codes_read_back_with_spaces_and_say_their_shape() -> None:
    assert normalize_challenge(" 1234 5678 ") == "12345678"
    assert normalize_code("12345 67890") == "1234567890"
    with pytest.raises(InvalidInput, match=r"^an unlock code is 10 digits, like 12345-67890$"):
        normalize_code("1234")


def test_publication_is_judged_on_an_aware_time_only() -> None:
    retired = golden_key().retire(T0)
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        retired.is_published(datetime(2026, 1, 1), timedelta(days=1))


# -- appeal.py, erasure.py (docs/test-quality.md, "signing/appeal.py and signing/erasure.py") ----

APPEAL = {"nonce": NONCE, "iat": NOW_S, "contact": "a@example.com", "message": "I live here."}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1], "payload: must be a JSON object"),
        ({k: v for k, v in APPEAL.items() if k != "iat"}, "iat: missing"),
        ({**APPEAL, "counter": 1, "b": 2}, "payload: unknown field(s) ['b', 'counter']"),
        (
            {**APPEAL, "nonce": "short"},
            "nonce: must be 16 to 128 base64url characters (A-Z a-z 0-9 - _)",
        ),
        ({**APPEAL, "iat": 1.5}, "iat: must be whole seconds since the epoch (an integer)"),
        ({**APPEAL, "language": "<b>"}, "language: is not a language tag such as fa-IR"),
        ({**APPEAL, "contact": 5}, "contact: must be text"),
        ({**APPEAL, "contact": "a\x00b"}, "contact: contains a NUL character"),
        ({**APPEAL, "message": " \n "}, "message: is empty"),
        ({**APPEAL, "contact": "x" * 201}, "contact: is longer than 200 characters"),
        ({**APPEAL, "message": "x" * 2001}, "message: is longer than 2000 characters"),
    ],
)
def test_a_refused_appeal_names_its_field_and_the_rule(payload: Any, message: str) -> None:
    with pytest.raises(InvalidAppeal) as info:
        parse_appeal_payload(payload)
    assert str(info.value) == message
    assert info.value.field == message.split(":", 1)[0]


def test_an_appeal_holds_up_to_200_characters_of_contact_and_2000_of_message() -> None:
    request = parse_appeal_payload({**APPEAL, "contact": "c" * 200, "message": "m" * 2000})
    assert (len(request.contact), len(request.message)) == (200, 2000)


def _appeal_token(payload: bytes) -> jws.ParsedToken:
    header = {"alg": "EdDSA", "kid": "dev_1", "typ": APPEAL_TYP}
    return jws.parse_unverified(jws.sign_bytes(header, payload, golden_key()))


def test_an_appeal_payload_that_is_not_json_says_so() -> None:
    parts = _appeal_token(b"not json")
    with pytest.raises(jws.MalformedToken, match=r"^payload is not valid JSON: "):
        verify_appeal(parts, golden_key().public_key, now=T0)


def test_an_appeal_is_judged_on_the_clock_window_it_is_given() -> None:
    late = {**APPEAL, "iat": NOW_S - 100}
    parts = _appeal_token(jws.canonical_json(late))
    assert verify_appeal(parts, golden_key().public_key, now=T0).iat == NOW_S - 100
    with pytest.raises(ClockSkew, match=r"^iat is 100 s behind server time"):
        verify_appeal(parts, golden_key().public_key, now=T0, window_s=99)


def test_a_device_signs_its_appeal_as_compact_sorted_utf8_json() -> None:
    request = AppealRequest(NONCE, NOW_S, "a@example.com", "Je vis à Dubaï.", "fr-FR")
    token = sign_appeal(request, golden_key(), "dev_1")
    payload = jws.b64url_decode(token.split(".")[1])
    expected = (
        f'{{"contact":"a@example.com","iat":{NOW_S},"language":"fr-FR",'
        f'"message":"Je vis à Dubaï.","nonce":"{NONCE}"}}'
    )
    assert payload == expected.encode()


RID = "era_" + "a" * 26
HEX = "0" * 64


def _receipt(**changes: Any) -> dict[str, Any]:
    claims = erasure_receipt_claims(RID, HEX, {"checkins": 3}, 7, HEX, T0)
    return {**claims, **changes}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"extra": 1},
            "an erasure receipt has exactly the claims"
            " ['dev', 'hash', 'iat', 'removed', 'rid', 'seq', 'ver']",
        ),
        ({"ver": 2}, "erasure receipt version 2; this code reads 1"),
        ({"ver": True}, "erasure receipt version True; this code reads 1"),
        ({"rid": "era_short"}, "claim 'rid' must be 'era_' and 26 base32 characters"),
        ({"rid": 5}, "claim 'rid' must be 'era_' and 26 base32 characters"),
        ({"dev": "A" * 64}, "claim 'dev' must be 64 lowercase hex digits"),
        ({"hash": 5}, "claim 'hash' must be 64 lowercase hex digits"),
        ({"seq": 0}, "claims 'seq' (from 1) and 'iat' must be integers up to 2**53 - 1"),
        ({"seq": -1}, "claims 'seq' (from 1) and 'iat' must be integers up to 2**53 - 1"),
        ({"seq": 2**53}, "claims 'seq' (from 1) and 'iat' must be integers up to 2**53 - 1"),
        ({"iat": -1}, "claims 'seq' (from 1) and 'iat' must be integers up to 2**53 - 1"),
        ({"removed": [1]}, "claim 'removed' must map kinds to counts"),
        ({"removed": {"checkins": -1}}, "claim 'removed' must map kinds to counts"),
        ({"removed": {"checkins": True}}, "claim 'removed' must map kinds to counts"),
        ({"removed": {"checkins": 1.5}}, "claim 'removed' must map kinds to counts"),
    ],
)
def test_claims_that_are_no_erasure_receipt_say_why(changes: dict[str, Any], message: str) -> None:
    claims = _receipt(**changes)
    with pytest.raises(ValueError, match=f"^not an erasure receipt: {re.escape(message)}$"):
        sign_erasure_receipt(claims, golden_keyring())
    key = golden_keyring().active
    header = {"alg": "EdDSA", "kid": key.kid, "typ": ERASURE_RECEIPT_TYP}
    token = jws.sign_bytes(header, json.dumps(claims).encode(), key)  # 2**53 and 1.5 as well
    with pytest.raises(jws.MalformedToken, match=f"^{re.escape(message)}$"):
        verify_erasure_receipt(token, golden_keyring())


def test_receipt_claims_are_built_from_an_aware_time_and_checked() -> None:
    with pytest.raises(ValueError, match=r"^issued_at must be timezone-aware$"):
        erasure_receipt_claims(RID, HEX, {}, 7, HEX, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match=r"^not an erasure receipt: claim 'rid' must be"):
        erasure_receipt_claims("era_x", HEX, {}, 7, HEX, T0)


def test_counts_reach_2_to_the_53_minus_1() -> None:
    claims = _receipt(seq=MAX_SAFE_INTEGER, removed={"checkins": MAX_SAFE_INTEGER})
    token = sign_erasure_receipt(claims, golden_keyring())
    assert verify_erasure_receipt(token, golden_keyring())[1] == claims


def test_a_receipt_must_say_it_is_one() -> None:
    token = jws.sign(_receipt(), golden_keyring().active, VERDICT_TYP)
    with pytest.raises(jws.WrongType):
        verify_erasure_receipt(token, golden_keyring())


def test_a_receipt_signed_by_a_key_the_store_lacks_says_which() -> None:
    stranger = Keyring.new(T0)
    token = sign_erasure_receipt(_receipt(), stranger)
    with pytest.raises(UnknownKey) as info:
        verify_erasure_receipt(token, golden_keyring())
    assert str(info.value) == (
        f"the receipt is signed by key {stranger.active.kid!r}, which this store lacks"
    )


# -- verdict.py's claims since 33687c7 (docs/test-quality.md, "regions.py, policy.py and ...") --


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"exemption": 5}, "claim 'exemption' must be an object"),
        ({"exemption": []}, "claim 'exemption' must be an object"),
        ({"exemption": {"until": -1}}, "claim 'until' must be an integer from 0 to 2**53 - 1"),
        ({"exemption": {"until": "2026-03-08"}}, "claim 'until' must be an integer from 0"),
        ({"reasons": [1]}, "claim 'reasons' must be a list of strings"),
    ],
)
def test_a_verdict_with_a_malformed_exemption_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    token = jws.sign({**make_claims(), **changes}, golden_key(), VERDICT_TYP)
    with pytest.raises(jws.MalformedToken, match=f"^{re.escape(message)}"):
        verify_verdict(token, golden_jwks(), now=T0)
    good = jws.sign({**make_claims(), "exemption": {"until": None}}, golden_key(), VERDICT_TYP)
    assert verify_verdict(good, golden_jwks(), now=T0)["exemption"] == {"until": None}


def _claims_of(verdict: Any, issued_at: datetime = T0) -> dict[str, Any]:
    return verdict_claims(
        verdict,
        issuer="i",
        device_id="d",
        country=None,
        subdivision=None,
        nonce=NONCE,
        counter=1,
        issued_at=issued_at,
    )


def test_an_exempt_verdict_carries_its_end_as_the_first_second_it_no_longer_holds() -> None:
    verdict = replace(make_verdict(), exempt=True, exempt_until=date(2026, 3, 8))
    assert _claims_of(verdict)["exemption"] == {
        "until": int(datetime(2026, 3, 8, tzinfo=UTC).timestamp())
    }
    forever = replace(verdict, exempt_until=None)
    assert _claims_of(forever)["exemption"] == {"until": None}
    assert "exemption" not in _claims_of(make_verdict())


def test_an_exemptions_end_is_midnight_utc_whatever_the_machines_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by mutation testing (verdict_claims__mutmut_73, _77): a naive datetime for the
    end day reads the same as UTC only on a machine whose time zone is UTC."""
    import time as clock

    monkeypatch.setenv("TZ", "Asia/Tehran")  # UTC+03:30: a naive midnight is 3.5 h early
    clock.tzset()
    try:
        verdict = replace(make_verdict(), exempt=True, exempt_until=date(2026, 3, 8))
        assert _claims_of(verdict)["exemption"] == {"until": 1772928000}  # 2026-03-08T00:00Z
    finally:
        monkeypatch.undo()
        clock.tzset()


def test_verdict_claims_name_a_naive_time_and_need_exp_after_iat() -> None:
    with pytest.raises(ValueError, match=r"^issued_at must be timezone-aware$"):
        _claims_of(make_verdict(), T0.replace(tzinfo=None))
    naive = make_verdict()
    naive = replace(naive, lease=replace(naive.lease, expires=T0.replace(tzinfo=None)))
    with pytest.raises(ValueError, match=r"^lease.expires must be timezone-aware$"):
        _claims_of(naive)
    ended = make_verdict()
    ended = replace(ended, lease=replace(ended.lease, expires=T0))
    with pytest.raises(
        ValueError, match=r"^cannot build a v1 verdict: claim 'exp' must be after 'iat'$"
    ):
        _claims_of(ended)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, H), "claims 'size' and 'iat' must be integers from 0 to 2**53 - 1"),
        ((2**53, H), "claims 'size' and 'iat' must be integers from 0 to 2**53 - 1"),
        ((True, H), "claims 'size' and 'iat' must be integers from 0 to 2**53 - 1"),
        ((1, "A" * 64), "claim 'root' must be 64 lowercase hex digits"),
        ((1, H[:-1]), "claim 'root' must be 64 lowercase hex digits"),
        ((1, 7), "claim 'root' must be 64 lowercase hex digits"),
    ],
)
def test_claims_that_are_no_tree_head_say_why(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"not a tree head: {message}")):
        tree_head_claims(*args, T0)


def test_a_tree_head_is_signed_and_read_back_with_exactly_its_claims() -> None:
    claims = tree_head_claims(2**53 - 1, H, T0)
    assert claims == {"ver": 2, "size": 2**53 - 1, "root": H, "iat": int(T0.timestamp())}
    token = sign_audit_head(claims, golden_keyring())
    assert verify_audit_head(token, golden_keyring())[1] == claims
    for change in ({"extra": 1}, {"ver": False}):
        forged = jws.sign({**claims, **change}, golden_keyring().active, AUDIT_HEAD_TYP)
        with pytest.raises(jws.MalformedToken):
            verify_audit_head(forged, golden_keyring())
