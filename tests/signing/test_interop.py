"""Our tokens, checked by two JOSE libraries the service does not use (PyJWT and joserfc).

Each library gets only what a device would have: the token and the published JWKS. And the
other way round: check-ins that those libraries sign are accepted by our strict verifier, so
device firmware can be written with any standard JOSE library.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from joserfc import jws as jose_jws
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError as JoseBadSignature
from joserfc.jwk import KeySet, OKPKey
from signing_fixtures import (
    DEVICE_ID,
    MAX_LIFETIME,
    NONCE,
    T0,
    golden_jwks,
    golden_keyring,
    make_claims,
)

from regionlock.signing import jws
from regionlock.signing.keys import Keyring, SigningKey
from regionlock.signing.verdict import (
    CHECKIN_TYP,
    VERDICT_TYP,
    TokenExpired,
    sign_verdict,
    verify_checkin,
    verify_verdict,
)

GOLDEN = (Path(__file__).parent / "golden" / "verdict-v1.txt").read_text(encoding="ascii").strip()

# joserfc warns that RFC 9864 deprecates "EdDSA" in favour of "Ed25519"; v1 keeps "EdDSA".
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")


def fresh_token() -> tuple[str, dict[str, Any], Keyring]:
    """A token issued now (wall clock), so the libraries' own exp/iat checks run for real."""
    now = datetime.now(UTC).replace(microsecond=0)
    ring = Keyring([SigningKey.generate(now - timedelta(days=3))]).rotate(now - timedelta(days=1))
    claims = make_claims(issued_at=now)
    return sign_verdict(claims, ring, now), claims, ring


# -- PyJWT -------------------------------------------------------------------------------------


def pyjwt_key(jwks: dict[str, Any], token: str) -> pyjwt.PyJWK:
    kid = pyjwt.get_unverified_header(token)["kid"]
    return pyjwt.PyJWKSet.from_dict(jwks)[kid]


def test_pyjwt_verifies_a_fresh_verdict_with_every_check() -> None:
    token, claims, ring = fresh_token()
    jwks = ring.jwks(datetime.now(UTC), MAX_LIFETIME)
    assert len(jwks["keys"]) == 2  # the retired key is still there; the kid picks the right one
    decoded = pyjwt.decode_complete(
        token,
        key=pyjwt_key(jwks, token),
        algorithms=["EdDSA"],
        issuer="regionlock-test",
        subject=DEVICE_ID,
        options={"require": ["exp", "iat", "sub", "iss"]},
    )
    assert decoded["header"] == {"alg": "EdDSA", "kid": ring.active.kid, "typ": VERDICT_TYP}
    assert decoded["payload"] == claims


def test_pyjwt_verifies_the_golden_token() -> None:
    decoded = pyjwt.decode(
        GOLDEN,
        key=pyjwt_key(golden_jwks(), GOLDEN),
        algorithms=["EdDSA"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert decoded == make_claims()


def test_pyjwt_rejects_a_tampered_verdict() -> None:
    head, _, sig = GOLDEN.split(".")
    claims = {**make_claims(), "verdict": "allow"}
    forged = jws.b64url_encode(jws.canonical_json(claims))
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(
            f"{head}.{forged}.{sig}",
            key=pyjwt_key(golden_jwks(), GOLDEN),
            algorithms=["EdDSA"],
            options={"verify_exp": False},
        )


def test_pyjwt_expiry_agrees_with_ours() -> None:
    now = datetime.now(UTC)
    issued = now - timedelta(days=7, seconds=61)  # lease of 7 days, past our 60 s leeway
    ring = Keyring([SigningKey.generate(issued - timedelta(days=1))])
    token = sign_verdict(make_claims(issued_at=issued), ring, issued)
    jwks = ring.jwks(now, MAX_LIFETIME)
    with pytest.raises(pyjwt.ExpiredSignatureError):
        pyjwt.decode(token, key=pyjwt_key(jwks, token), algorithms=["EdDSA"], leeway=60)
    with pytest.raises(TokenExpired):
        verify_verdict(token, jwks, now=now)


# -- joserfc -----------------------------------------------------------------------------------


def test_joserfc_verifies_a_fresh_verdict_with_every_check() -> None:
    token, claims, ring = fresh_token()
    keys = KeySet.import_key_set(ring.jwks(datetime.now(UTC), MAX_LIFETIME))  # type: ignore[arg-type]
    decoded = jose_jwt.decode(token, keys, algorithms=["EdDSA"])
    assert decoded.header == {"alg": "EdDSA", "kid": ring.active.kid, "typ": VERDICT_TYP}
    assert decoded.claims == claims
    registry = jose_jwt.JWTClaimsRegistry(
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True, "value": DEVICE_ID},
        nonce={"essential": True, "value": NONCE},
    )
    registry.validate(decoded.claims)


def test_joserfc_verifies_the_golden_token_at_its_time() -> None:
    keys = KeySet.import_key_set(golden_jwks())  # type: ignore[arg-type]
    decoded = jose_jwt.decode(GOLDEN, keys, algorithms=["EdDSA"])
    assert decoded.claims == make_claims()
    at = int(T0.timestamp()) + 3600
    jose_jwt.JWTClaimsRegistry(now=at, exp={"essential": True}).validate(decoded.claims)
    late = jose_jwt.JWTClaimsRegistry(now=at + 8 * 86400, exp={"essential": True})
    with pytest.raises(Exception, match="expired"):
        late.validate(decoded.claims)


def test_joserfc_rejects_a_tampered_verdict() -> None:
    head, _, sig = GOLDEN.split(".")
    forged = jws.b64url_encode(jws.canonical_json({**make_claims(), "sub": "dev_other"}))
    keys = KeySet.import_key_set(golden_jwks())  # type: ignore[arg-type]
    with pytest.raises(JoseBadSignature):
        jose_jws.deserialize_compact(f"{head}.{forged}.{sig}", keys, algorithms=["EdDSA"])


# -- the other way: check-ins made by the libraries --------------------------------------------


def device() -> SigningKey:
    return SigningKey.from_seed(b"\x07" * 32, created=T0)


def checkin_payload() -> dict[str, Any]:
    signals = {"gps": {"lat": 35.6892, "lon": 51.389}, "sim": ["432-11"]}
    return {"nonce": NONCE, "counter": 3, "iat": int(T0.timestamp()), "signals": signals}


def test_a_checkin_signed_with_pyjwt_is_accepted() -> None:
    token = pyjwt.encode(
        checkin_payload(),
        device().private_key,
        algorithm="EdDSA",
        headers={"kid": DEVICE_ID, "typ": CHECKIN_TYP},
    )
    assert jws.peek_header(token)["kid"] == DEVICE_ID
    request = verify_checkin(token, device().public_bytes, now=T0)
    assert request.to_payload() == checkin_payload()


def test_a_checkin_signed_with_joserfc_is_accepted() -> None:
    jwk = {**device().public_jwk(), "d": device().to_dict()["private_key"]}
    key = OKPKey.import_key(jwk)
    header = {"alg": "EdDSA", "kid": DEVICE_ID, "typ": CHECKIN_TYP}
    token = jose_jws.serialize_compact(
        header, json.dumps(checkin_payload()), key, algorithms=["EdDSA"]
    )
    request = verify_checkin(token, device().public_bytes, now=T0)
    assert request.to_payload() == checkin_payload()


def test_our_verdict_jwks_is_what_the_libraries_import() -> None:
    # Both libraries read every published member without complaint and agree on the key.
    jwk = golden_keyring().active.public_jwk()
    assert pyjwt.PyJWK(jwk).key_id == jwk["kid"]
    assert OKPKey.import_key(jwk).thumbprint() == jwk["kid"]  # type: ignore[arg-type]
