"""The v1 verdict token (building, signing, verifying as a device) and the check-in contract."""

from __future__ import annotations

import json
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

from regionlock.domain.errors import InvalidInput, RegionlockError
from regionlock.signing import jws
from regionlock.signing.jws import BadSignature, MalformedToken, TokenError, WrongType
from regionlock.signing.keys import SigningKey
from regionlock.signing.verdict import (
    CHECKIN_TYP,
    VERDICT_TYP,
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
    check_clock,
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
    ],
)
def test_malformed_claims_are_refused_by_the_device(change: dict[str, Any]) -> None:
    # Signed directly: sign_verdict itself refuses these (and canonical JSON refuses 1.5).
    payload = json.dumps({**make_claims(), **change}).encode()
    header = {"alg": "EdDSA", "kid": golden_key().kid, "typ": VERDICT_TYP}
    with pytest.raises(MalformedToken):
        device_verify(jws.sign_bytes(header, payload, golden_key()))


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
        assert issubclass(cls, TokenError) and cls.status == 401


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


def test_checkin_problem_types() -> None:
    expected = {
        InvalidCheckin: (422, "invalid-checkin"),
        ClockSkew: (401, "clock-skew"),
        ReplayedNonce: (409, "replayed-nonce"),
        StaleCounter: (409, "stale-counter"),
    }
    for cls, (status, slug) in expected.items():
        assert issubclass(cls, RegionlockError)
        assert (cls.status, cls.type_slug) == (status, slug)
    assert issubclass(InvalidCheckin, InvalidInput)
