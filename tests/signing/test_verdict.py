"""The v1 verdict token (building, signing, verifying as a device) and the check-in contract."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from signing_fixtures import (
    DEVICE_ID,
    NONCE,
    T0,
    golden_jwks,
    golden_key,
    golden_keyring,
    make_claims,
    make_verdict,
)

from regionlock.domain.errors import Conflict, InvalidInput, RegionlockError
from regionlock.signing import jws
from regionlock.signing.jws import (
    BadSignature,
    MalformedToken,
    TokenError,
    WrongAlgorithm,
    WrongType,
)
from regionlock.signing.keys import SigningKey
from regionlock.signing.verdict import (
    CHECKIN_TYP,
    VERDICT_TYP,
    CheckinRequest,
    ClaimMismatch,
    ClockSkew,
    InvalidCheckin,
    OpenedCheckin,
    ReplayedNonce,
    StaleCounter,
    TokenExpired,
    TokenNotYetValid,
    UnknownKey,
    UnsupportedVersion,
    check_clock,
    open_checkin,
    parse_checkin_payload,
    sign_checkin,
    sign_verdict,
    verdict_claims,
    verdict_response,
    verify_checkin,
    verify_verdict,
)

EXP = int((T0 + timedelta(days=7)).timestamp())


def token(claims: dict[str, Any] | None = None, now: datetime = T0) -> str:
    return sign_verdict(claims or make_claims(), golden_keyring(), now)


def device_verify(tok: str, now: datetime = T0, **kwargs: Any) -> dict[str, Any]:
    return verify_verdict(tok, golden_jwks(), now=now, **kwargs)


# -- claims ------------------------------------------------------------------------------------


def test_claims_are_exactly_the_v1_set() -> None:
    assert make_claims() == {
        "iss": "regionlock-test",
        "sub": DEVICE_ID,
        "verdict": "lock",
        "reasons": ["jurisdiction.restricted", "presence.established"],
        "message": "Dieses Gerät ist für diese Region nicht freigegeben.",
        "lang": "de",
        "contact": "support@example.com",
        "policy": {"id": "gray-market-2021", "version": "3"},
        "location": {"country": "IR", "subdivision": "IR-23"},
        "nonce": NONCE,
        "counter": 42,
        "iat": int(T0.timestamp()),
        "exp": EXP,
        "offline": {"action": "lock", "lock_after_days": 30, "warn_days": 7},
        "ver": 1,
    }


def test_unknown_location_is_null() -> None:
    claims = verdict_claims(
        make_verdict(),
        issuer="s",
        device_id="d",
        country=None,
        subdivision=None,
        nonce=NONCE,
        counter=0,
        issued_at=T0,
    )
    assert claims["location"] == {"country": None, "subdivision": None}
    assert device_verify(token(claims))["location"] == {"country": None, "subdivision": None}


def test_claims_refuse_what_a_device_would_reject() -> None:
    with pytest.raises(ValueError):  # naive time
        make_claims(issued_at=datetime(2026, 3, 1))
    with pytest.raises(ValueError):  # lease ending before issue
        verdict_claims(
            make_verdict(T0 - timedelta(days=8)),
            issuer="s",
            device_id="d",
            country=None,
            subdivision=None,
            nonce=NONCE,
            counter=0,
            issued_at=T0,
        )
    with pytest.raises(ValueError):  # negative counter
        verdict_claims(
            make_verdict(),
            issuer="s",
            device_id="d",
            country=None,
            subdivision=None,
            nonce=NONCE,
            counter=-1,
            issued_at=T0,
        )


def test_sign_verdict_refuses_bad_claims() -> None:
    with pytest.raises(ValueError, match="version"):
        token({**make_claims(), "ver": 2})
    with pytest.raises(ValueError):
        token({**make_claims(), "verdict": "maybe"})
    with pytest.raises(ValueError, match="expired"):
        token(now=T0 + timedelta(days=7))
    with pytest.raises(ValueError, match="future"):
        token(now=T0 - timedelta(hours=1))
    with pytest.raises(ValueError, match="longer"):
        sign_verdict(make_claims(), golden_keyring(), T0, max_lifetime=timedelta(days=6))
    sign_verdict(make_claims(), golden_keyring(), T0, max_lifetime=timedelta(days=7))


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda c: c.update(ver=2), "version 2"),
        (lambda c: c.update(ver=True), "version True"),
        (lambda c: c.update(counter=42.0), "'counter' must be an integer"),
        (lambda c: c.update(counter=-1), "'counter' must be an integer"),
        (lambda c: c.update(exp=c["iat"]), "'exp' must be after 'iat'"),
        (lambda c: c.pop("nonce"), "'nonce' must be a string"),
        (lambda c: c.update(verdict="maybe"), "'verdict' must be one of"),
        (lambda c: c["reasons"].append(7), "'reasons' must be a list of strings"),
        (lambda c: c.update(reasons=tuple(c["reasons"])), "'reasons' must be a list of strings"),
        (lambda c: c["policy"].update(id=5), "'id' must be a string"),
        (lambda c: c["location"].update(country=1), "'country' must be a string or null"),
        (lambda c: c["offline"].update(action="explode"), "'offline.action' must be one of"),
        (lambda c: c["offline"].pop("warn_days"), "'warn_days' must be an integer"),
        (lambda c: c.update(extra=1.5), r"\$\.extra: floats"),
        (lambda c: c["policy"].update(extra=2**53), r"\$\.policy\.extra: integer"),
        (lambda c: c.update(message="\ud800"), "unpaired surrogates"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_claims_tampered_after_verdict_claims_are_refused(tamper: Any, match: str) -> None:
    # `verdict_claims` checked these claims; a change made afterwards, at any depth, is
    # checked again, in full, before anything is signed.
    claims = make_claims()
    tamper(claims)
    with pytest.raises(ValueError, match=match):
        sign_verdict(claims, golden_keyring(), T0)


def test_response_mirrors_the_claims() -> None:
    tok = token()
    assert verdict_response(tok, make_claims()) == {"token": tok, **make_claims()}


# -- verifying as a device ---------------------------------------------------------------------


def test_device_accepts_a_good_verdict() -> None:
    claims = device_verify(
        token(),
        expected_sub=DEVICE_ID,
        expected_nonce=NONCE,
        expected_iss="regionlock-test",
    )
    assert claims == make_claims()


def test_unknown_claims_are_ignored_within_v1() -> None:
    claims = {**make_claims(), "added_later": {"x": 1}}
    assert device_verify(token(claims))["added_later"] == {"x": 1}


def test_wrong_kid_is_an_unknown_key() -> None:
    other = SigningKey.from_seed(b"\x02" * 32, created=T0)
    tok = jws.sign(make_claims(), other, VERDICT_TYP)
    with pytest.raises(UnknownKey):
        device_verify(tok)


def test_kid_of_a_published_key_on_a_token_signed_by_another_is_a_bad_signature() -> None:
    other = SigningKey.from_seed(b"\x02" * 32, created=T0)
    head, body, _ = token().split(".")
    forged_sig = other.sign(f"{head}.{body}".encode())
    with pytest.raises(BadSignature):
        device_verify(f"{head}.{body}.{jws.b64url_encode(forged_sig)}")


def test_missing_kid_is_refused() -> None:
    tok = jws.sign_bytes(
        {"alg": "EdDSA", "typ": VERDICT_TYP}, jws.canonical_json(make_claims()), golden_key()
    )
    with pytest.raises(UnknownKey):
        device_verify(tok)


def test_wrong_typ_is_refused() -> None:
    with pytest.raises(WrongType):
        device_verify(jws.sign(make_claims(), golden_key(), "JWT"))


def test_a_checkin_signed_by_the_same_key_never_passes_as_a_verdict() -> None:
    # Purpose separation: the typ differs, so one signature cannot stand in for the other.
    request = CheckinRequest(nonce=NONCE, counter=1, iat=int(T0.timestamp()), signals={})
    checkin = sign_checkin(request, golden_key(), golden_key().kid)
    with pytest.raises(WrongType):
        device_verify(checkin)
    with pytest.raises(WrongType):
        verify_checkin(token(), golden_key().public_bytes, now=T0)


def test_expiry_with_leeway() -> None:
    tok = token()
    device_verify(tok, now=T0 + timedelta(days=7, seconds=59))
    with pytest.raises(TokenExpired):
        device_verify(tok, now=T0 + timedelta(days=7, seconds=60))
    device_verify(tok, now=T0 + timedelta(days=7) - timedelta(seconds=1), leeway_s=0)
    with pytest.raises(TokenExpired):
        device_verify(tok, now=T0 + timedelta(days=7), leeway_s=0)


def test_iat_in_the_future_is_refused() -> None:
    tok = token()
    device_verify(tok, now=T0 - timedelta(seconds=60))
    with pytest.raises(TokenNotYetValid):
        device_verify(tok, now=T0 - timedelta(seconds=61))


def test_expected_claims() -> None:
    with pytest.raises(ClaimMismatch) as nonce:
        device_verify(token(), expected_nonce="another-nonce-value")
    assert nonce.value.claim == "nonce"
    with pytest.raises(ClaimMismatch) as sub:
        device_verify(token(), expected_sub="dev_other")
    assert sub.value.claim == "sub"
    with pytest.raises(ClaimMismatch):
        device_verify(token(), expected_iss="someone-else")


def test_unsupported_version_is_refused() -> None:
    tok = jws.sign({**make_claims(), "ver": 2}, golden_key(), VERDICT_TYP)
    with pytest.raises(UnsupportedVersion):
        device_verify(tok)
    tok = jws.sign({**make_claims(), "ver": True}, golden_key(), VERDICT_TYP)
    with pytest.raises(UnsupportedVersion):
        device_verify(tok)


@pytest.mark.parametrize(
    "change",
    [
        {"verdict": "unlock"},
        {"reasons": "jurisdiction.restricted"},
        {"reasons": [1]},
        {"policy": {"id": "p"}},
        {"location": {"country": "IR"}},
        {"counter": -1},
        {"iat": "2026-03-01"},
        {"exp": int(T0.timestamp())},
        {"exp": 2**60},
        {"offline": {"action": "explode", "lock_after_days": 1, "warn_days": 1}},
        {"offline": {"action": "lock", "lock_after_days": 1.5, "warn_days": 1}},
        {"sub": None},
        {"message": 3},
        {"lang": None},
    ],
)
def test_malformed_claims_are_refused_by_the_device(change: dict[str, Any]) -> None:
    # Signed directly: sign_verdict itself refuses these (and canonical JSON refuses 1.5).
    payload = json.dumps({**make_claims(), **change}).encode()
    header = {"alg": "EdDSA", "kid": golden_key().kid, "typ": VERDICT_TYP}
    with pytest.raises(MalformedToken):
        device_verify(jws.sign_bytes(header, payload, golden_key()))


def test_a_verdict_without_lang_still_verifies() -> None:
    # `lang` came within v1: a verdict signed before it (or by an older service) has none.
    claims = make_claims()
    del claims["lang"]
    assert device_verify(token(claims)) == claims


@pytest.mark.parametrize(
    "entry",
    [
        {"kty": "EC", "crv": "P-256"},
        {"crv": "Ed448"},
        {"alg": "ES256"},
        {"use": "enc"},
        {"key_ops": ["sign"]},
        {"x": "short"},
        {"x": None},
    ],
)
def test_unusable_jwks_entries(entry: dict[str, Any]) -> None:
    jwk = {**golden_key().public_jwk(), **entry}
    with pytest.raises(UnknownKey):
        verify_verdict(token(), {"keys": [jwk]}, now=T0)


def test_jwks_without_optional_members_works_and_duplicates_do_not() -> None:
    jwk = golden_key().public_jwk()
    minimal = {k: jwk[k] for k in ("kty", "crv", "x", "kid")}
    verify_verdict(token(), {"keys": [minimal]}, now=T0)
    with pytest.raises(UnknownKey):
        verify_verdict(token(), {"keys": [jwk, jwk]}, now=T0)
    with pytest.raises(UnknownKey):
        verify_verdict(token(), {"kid": "x"}, now=T0)


def test_negative_leeway_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        device_verify(token(), leeway_s=-1)


def test_device_errors_are_token_errors() -> None:
    for cls in (UnknownKey, UnsupportedVersion, TokenExpired, TokenNotYetValid, ClaimMismatch):
        assert issubclass(cls, TokenError)


# -- check-ins ---------------------------------------------------------------------------------

IAT = int(T0.timestamp())
GOOD: dict[str, Any] = {
    "nonce": NONCE,
    "counter": 7,
    "iat": IAT,
    "signals": {"gps": {"lat": 35.7, "lon": 51.4}},
}


def test_parse_checkin_payload() -> None:
    request = parse_checkin_payload(GOOD)
    assert request == CheckinRequest(NONCE, 7, IAT, GOOD["signals"])
    assert request.to_payload() == GOOD
    parse_checkin_payload({**GOOD, "nonce": "A" * 16, "counter": 0, "signals": {}})
    parse_checkin_payload({**GOOD, "nonce": "-_" * 64})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nonce": "A" * 15}, "nonce"),
        ({"nonce": "A" * 129}, "nonce"),
        ({"nonce": "A" * 20 + "="}, "nonce"),
        ({"nonce": "A" * 20 + "+"}, "nonce"),
        ({"nonce": 12345678901234567890}, "nonce"),
        ({"counter": -1}, "counter"),
        ({"counter": 1.0}, "counter"),
        ({"counter": True}, "counter"),
        ({"counter": "7"}, "counter"),
        ({"counter": 2**53}, "counter"),
        ({"iat": 1.7e9}, "iat"),
        ({"iat": None}, "iat"),
        ({"signals": []}, "signals"),
        ({"signals": None}, "signals"),
        ({"signals": {"id": "d1"}}, "signals"),
        ({"extra": 1}, "payload"),
    ],
)
def test_checkin_payload_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidCheckin) as error:
        parse_checkin_payload({**GOOD, **change})
    assert error.value.field == field
    assert error.value.message.startswith(field + ":")


@pytest.mark.parametrize("missing", ["nonce", "counter", "iat", "signals"])
def test_missing_checkin_fields(missing: str) -> None:
    with pytest.raises(InvalidCheckin, match=f"{missing}: missing"):
        parse_checkin_payload({k: v for k, v in GOOD.items() if k != missing})


def test_checkin_payload_must_be_an_object() -> None:
    with pytest.raises(InvalidCheckin):
        parse_checkin_payload([GOOD])


def test_clock_window() -> None:
    request = parse_checkin_payload(GOOD)
    check_clock(request, T0 + timedelta(seconds=300))
    check_clock(request, T0 - timedelta(seconds=300))
    with pytest.raises(ClockSkew, match="behind") as late:
        check_clock(request, T0 + timedelta(seconds=301))
    assert late.value.server_time == IAT + 301
    with pytest.raises(ClockSkew, match="ahead"):
        check_clock(request, T0 - timedelta(seconds=301))
    check_clock(request, T0 + timedelta(seconds=30), window_s=30)


def test_verify_checkin() -> None:
    device = SigningKey.from_seed(b"\x05" * 32, created=T0)
    request = parse_checkin_payload(GOOD)
    tok = sign_checkin(request, device, DEVICE_ID)
    assert jws.peek_header(tok, expected_typ=CHECKIN_TYP) == {
        "alg": "EdDSA",
        "kid": DEVICE_ID,
        "typ": CHECKIN_TYP,
    }
    assert verify_checkin(tok, device.public_bytes, now=T0) == request
    registry = {DEVICE_ID: device.public_bytes}
    assert verify_checkin(tok, lambda h: registry[h["kid"]], now=T0) == request
    with pytest.raises(BadSignature):
        verify_checkin(tok, golden_key().public_bytes, now=T0)
    with pytest.raises(ClockSkew):
        verify_checkin(tok, device.public_bytes, now=T0 + timedelta(minutes=10))
    bad = jws.sign_bytes(
        {"alg": "EdDSA", "kid": DEVICE_ID, "typ": CHECKIN_TYP}, b'{"nonce":"x"}', device
    )
    with pytest.raises(InvalidCheckin):
        verify_checkin(bad, device.public_bytes, now=T0)


def test_checkin_errors_say_what_went_wrong() -> None:
    # Statuses and problem types are decided at the API edge (tests/api/test_problems.py).
    for cls in (InvalidCheckin, ClockSkew, ReplayedNonce, StaleCounter):
        assert issubclass(cls, RegionlockError)
    assert issubclass(InvalidCheckin, InvalidInput)
    assert issubclass(ReplayedNonce, Conflict) and issubclass(StaleCounter, Conflict)


# -- check-ins parsed once (`open_checkin`) ----------------------------------------------------

DEVICE = SigningKey.from_seed(b"\x05" * 32, created=T0)
CHECKIN_HEADER = {"alg": "EdDSA", "kid": DEVICE_ID, "typ": CHECKIN_TYP}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def device_token(
    header: dict[str, Any] | None = None,
    payload: bytes | None = None,
    key: SigningKey = DEVICE,
) -> str:
    """A check-in signed by `key` over any header and payload bytes, bypassing our checks."""
    head = b64(json.dumps(CHECKIN_HEADER if header is None else header).encode())
    body = b64(json.dumps(GOOD).encode() if payload is None else payload)
    return f"{head}.{body}.{b64(key.sign(f'{head}.{body}'.encode()))}"


def with_signature(token: str, change: Callable[[bytes], bytes]) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body}.{b64(change(jws.b64url_decode(sig)))}"


def hs256_with_the_public_key() -> str:
    head = b64(json.dumps({**CHECKIN_HEADER, "alg": "HS256"}).encode())
    body = b64(json.dumps(GOOD).encode())
    mac = hmac.new(DEVICE.public_bytes, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def flip(sig: bytes) -> bytes:
    return sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]


GOOD_TOKEN = device_token()
_HEAD, _BODY, _SIG = GOOD_TOKEN.split(".")
_DUPLICATE_ALG = b64(b'{"alg":"EdDSA","alg":"EdDSA"}')

# (token, the error, seconds from T0 at which it is checked)
CHECKIN_REJECTIONS: dict[str, tuple[str | bytes, type[Exception], int]] = {
    "another-key": (device_token(key=golden_key()), BadSignature, 0),
    "flipped-signature-bit": (with_signature(GOOD_TOKEN, flip), BadSignature, 0),
    "payload-swapped": (
        f"{_HEAD}.{b64(json.dumps({**GOOD, 'counter': 8}).encode())}.{_SIG}",
        BadSignature,
        0,
    ),
    "header-swapped": (
        f"{b64(json.dumps({**CHECKIN_HEADER, 'kid': 'dev_other'}).encode())}.{_BODY}.{_SIG}",
        BadSignature,
        0,
    ),
    "alg-none": (device_token({**CHECKIN_HEADER, "alg": "none"}), WrongAlgorithm, 0),
    "alg-none-unsigned": (
        f"{b64(json.dumps({'alg': 'none'}).encode())}.{_BODY}.",
        WrongAlgorithm,
        0,
    ),
    "alg-hs256-key-confusion": (hs256_with_the_public_key(), WrongAlgorithm, 0),
    "alg-missing": (device_token({"kid": DEVICE_ID, "typ": CHECKIN_TYP}), WrongAlgorithm, 0),
    "typ-verdict": (device_token({**CHECKIN_HEADER, "typ": VERDICT_TYP}), WrongType, 0),
    "typ-missing": (device_token({"alg": "EdDSA", "kid": DEVICE_ID}), WrongType, 0),
    "a-verdict": (
        sign_verdict(make_claims(), golden_keyring(), T0),
        WrongType,
        0,
    ),
    "crit": (device_token({**CHECKIN_HEADER, "crit": ["exp"]}), MalformedToken, 0),
    "b64-false": (device_token({**CHECKIN_HEADER, "b64": False}), MalformedToken, 0),
    "kid-not-string": (device_token({**CHECKIN_HEADER, "kid": 7}), MalformedToken, 0),
    "header-duplicate-member": (
        f"{_DUPLICATE_ALG}.{_BODY}.{_SIG}",
        MalformedToken,
        0,
    ),
    "payload-duplicate-member": (
        device_token(payload=b'{"nonce":"a","nonce":"b"}'),
        MalformedToken,
        0,
    ),
    "payload-nan": (device_token(payload=b'{"counter":NaN}'), MalformedToken, 0),
    "payload-bom": (device_token(payload=b"\xef\xbb\xbf{}"), MalformedToken, 0),
    "payload-not-utf8": (device_token(payload=b"\xff\xfe"), MalformedToken, 0),
    "payload-not-object": (device_token(payload=b"[]"), MalformedToken, 0),
    "two-segments": (f"{_HEAD}.{_BODY}", MalformedToken, 0),
    "four-segments": (f"{GOOD_TOKEN}.{_SIG}", MalformedToken, 0),
    "empty-payload": (f"{_HEAD}..{_SIG}", MalformedToken, 0),
    "padded-signature": (f"{GOOD_TOKEN}==", MalformedToken, 0),
    "standard-alphabet": (
        f"{_HEAD}.{_BODY}.{base64.b64encode(jws.b64url_decode(_SIG)).decode().rstrip('=')}",
        MalformedToken,
        0,
    ),
    "stray-trailing-bits": (
        GOOD_TOKEN[:-1] + {"A": "B", "Q": "R", "g": "h", "w": "x"}[GOOD_TOKEN[-1]],
        MalformedToken,
        0,
    ),
    "short-signature": (with_signature(GOOD_TOKEN, lambda s: s[:63]), MalformedToken, 0),
    "non-ascii": ("\u00e9" + GOOD_TOKEN, MalformedToken, 0),
    "non-ascii-bytes": ("\u00e9".encode() + GOOD_TOKEN.encode(), MalformedToken, 0),
    "oversized": ("a" * (jws.MAX_TOKEN_LENGTH + 1), MalformedToken, 0),
    "nonce-missing": (
        device_token(payload=json.dumps({k: v for k, v in GOOD.items() if k != "nonce"}).encode()),
        InvalidCheckin,
        0,
    ),
    "nonce-short": (
        device_token(payload=json.dumps({**GOOD, "nonce": "A" * 15}).encode()),
        InvalidCheckin,
        0,
    ),
    "counter-bool": (
        device_token(payload=json.dumps({**GOOD, "counter": True}).encode()),
        InvalidCheckin,
        0,
    ),
    "unknown-field": (
        device_token(payload=json.dumps({**GOOD, "extra": 1}).encode()),
        InvalidCheckin,
        0,
    ),
    "signals-id": (
        device_token(payload=json.dumps({**GOOD, "signals": {"id": "d"}}).encode()),
        InvalidCheckin,
        0,
    ),
    "clock-behind": (GOOD_TOKEN, ClockSkew, 301),
    "clock-ahead": (GOOD_TOKEN, ClockSkew, -301),
}


def _verify_checkin(token: str | bytes, key: Any, now: datetime, window_s: int) -> Any:
    return verify_checkin(token, key, now=now, window_s=window_s)


def _peek_then_verify(token: str | bytes, key: Any, now: datetime, window_s: int) -> Any:
    jws.peek_header(token)  # what the service did before open_checkin
    return verify_checkin(token, key, now=now, window_s=window_s)


def _open_checkin(token: str | bytes, key: Any, now: datetime, window_s: int) -> Any:
    return open_checkin(token).verify(key, now=now, window_s=window_s)


ENTRY_POINTS = {
    "verify_checkin": (_verify_checkin, False),
    "peek_header+verify_checkin": (_peek_then_verify, False),
    "open_checkin": (_open_checkin, False),
    "open_checkin-key-object": (_open_checkin, True),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", CHECKIN_REJECTIONS)
def test_checkin_rejections_on_every_entry_point(case: str, entry: str) -> None:
    token, error, seconds = CHECKIN_REJECTIONS[case]
    verify_with, loaded = ENTRY_POINTS[entry]
    key = DEVICE.public_key if loaded else DEVICE.public_bytes
    now = T0 + timedelta(seconds=seconds)
    with pytest.raises(error) as refused:
        verify_with(token, key, now, 300)
    # Same error, same words, as the one-shot verify_checkin.
    with pytest.raises(error) as expected:
        verify_checkin(token, DEVICE.public_bytes, now=now)
    assert type(refused.value) is type(expected.value)
    assert str(refused.value) == str(expected.value)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_checkin_accepted_on_every_entry_point(entry: str) -> None:
    verify_with, loaded = ENTRY_POINTS[entry]
    key = DEVICE.public_key if loaded else DEVICE.public_bytes
    request = parse_checkin_payload(GOOD)
    for token in (GOOD_TOKEN, GOOD_TOKEN.encode(), sign_checkin(request, DEVICE, DEVICE_ID)):
        assert verify_with(token, key, T0, 300) == request
        assert verify_with(token, key, T0 + timedelta(seconds=300), 300) == request
    assert verify_with(GOOD_TOKEN, key, T0 + timedelta(seconds=30), 30) == request
    with pytest.raises(ClockSkew):
        verify_with(GOOD_TOKEN, key, T0 + timedelta(seconds=31), 30)
    with pytest.raises(ValueError):  # a wrong-length key is the caller's error
        verify_with(GOOD_TOKEN, b"\0" * 31, T0, 300)


def test_open_checkin_gives_the_header_and_checks_nothing_more_yet() -> None:
    opened = open_checkin(with_signature(GOOD_TOKEN, flip))
    assert isinstance(opened, OpenedCheckin)
    assert opened.header == CHECKIN_HEADER == jws.peek_header(GOOD_TOKEN)
    with pytest.raises(BadSignature):
        opened.verify(DEVICE.public_key, now=T0)
    # The type is checked at verify, so a verdict opens (its kid finds no device) and fails there.
    verdict_opened = open_checkin(sign_verdict(make_claims(), golden_keyring(), T0))
    assert verdict_opened.header["typ"] == VERDICT_TYP
    with pytest.raises(WrongType):
        verdict_opened.verify(golden_key().public_key, now=T0)


def test_open_checkin_refuses_at_once_what_peek_header_refuses() -> None:
    for token, error, _ in CHECKIN_REJECTIONS.values():
        try:
            jws.peek_header(token)
        except TokenError as peeked:
            with pytest.raises(error) as opened:
                open_checkin(token)
            assert str(opened.value) == str(peeked)


def test_changing_the_opened_header_changes_nothing_checked() -> None:
    opened = open_checkin(device_token({**CHECKIN_HEADER, "typ": VERDICT_TYP}))
    opened.header["typ"] = CHECKIN_TYP
    with pytest.raises(WrongType):
        opened.verify(DEVICE.public_key, now=T0)
    good = open_checkin(GOOD_TOKEN)
    good.header["kid"] = "someone-else"
    request = parse_checkin_payload(GOOD)
    assert good.verify(DEVICE.public_key, now=T0) == request
    assert good.verify(DEVICE.public_bytes, now=T0) == request  # and again: no state
