"""The verdict token's exact bytes, pinned: device firmware depends on every one of them.

A change here is a wire-format change. If it is intended, regenerate the golden file with
`REGIONLOCK_UPDATE_GOLDEN=1 .venv/bin/pytest tests/signing/test_verdict_golden.py`, say why in
the commit, and check docs/protocol.md still describes what is produced.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from signing_fixtures import (
    GOLDEN_SEED,
    MAX_LIFETIME,
    NONCE,
    T0,
    golden_jwks,
    golden_keyring,
    make_claims,
    make_verdict,
)

from regionlock.signing.jws import b64url_decode, b64url_encode
from regionlock.signing.verdict import (
    DEFAULT_LEEWAY_S,
    issue_verdict,
    sign_verdict,
    verify_verdict,
)

GOLDEN = Path(__file__).parent / "golden" / "verdict-v1.txt"

KID = "e_9r1VNGOzrwdndAcIcjzKL-AdFgW_fL68cej3plXAU"
X = "4AG6N91xUjvGPwL1d4IoYg8ZLO33gLDefV2BeMHNLTM"
HEADER = b'{"alg":"EdDSA","kid":"' + KID.encode() + b'","typ":"regionlock-verdict+jwt"}'
PAYLOAD = (
    '{"contact":"support@example.com","counter":42,"exp":1772971200,"iat":1772366400,'
    '"iss":"regionlock-test","lang":"de","location":{"country":"IR","subdivision":"IR-23"},'
    '"message":"Dieses Gerät ist für diese Region nicht freigegeben.",'
    '"nonce":"q7Hn2Zk4PwX9bT1cVd8sLm",'
    '"offline":{"action":"lock","lock_after_days":30,"warn_days":7},'
    '"policy":{"id":"gray-market-2021","version":"3"},'
    '"reasons":["jurisdiction.restricted","presence.established"],'
    '"sub":"dev_7f3a9c","ver":1,"verdict":"lock"}'
).encode()


def golden_token() -> str:
    return sign_verdict(make_claims(), golden_keyring(), T0)


def test_golden_seed_is_fixed() -> None:
    assert b64url_encode(GOLDEN_SEED) == "Cw52T5sEgKhtJHXs8DNK2kPGGVClO5LVAiblT7tdVRw"


def test_verdict_token_bytes_are_pinned() -> None:
    token = golden_token()
    if os.environ.get("REGIONLOCK_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(token + "\n", encoding="ascii")
    assert GOLDEN.read_text(encoding="ascii") == token + "\n"


def test_golden_header_and_payload_bytes() -> None:
    # The same bytes, readable: a failure here says which part of the token changed.
    head, body, signature = GOLDEN.read_text(encoding="ascii").strip().split(".")
    assert b64url_decode(head) == HEADER
    assert b64url_decode(body) == PAYLOAD
    assert len(b64url_decode(signature)) == 64


def test_golden_jwks() -> None:
    assert golden_jwks() == {
        "keys": [{"kty": "OKP", "crv": "Ed25519", "x": X, "kid": KID, "use": "sig", "alg": "EdDSA"}]
    }


def test_golden_token_verifies_as_a_device_would() -> None:
    token = GOLDEN.read_text(encoding="ascii").strip()
    claims = verify_verdict(token, golden_jwks(), now=T0, expected_sub="dev_7f3a9c")
    assert claims == make_claims()


def test_the_check_in_paths_one_step_issue_gives_the_golden_bytes() -> None:
    # The service signs with `issue_verdict` (claims checked once, no second canonical walk):
    # it must give exactly the token that `verdict_claims` then `sign_verdict` give.
    token, claims = issue_verdict(
        make_verdict(),
        issuer="regionlock-test",
        device_id="dev_7f3a9c",
        country="IR",
        subdivision="IR-23",
        nonce=NONCE,
        counter=42,
        issued_at=T0,
        keyring=golden_keyring(),
    )
    assert token + "\n" == GOLDEN.read_text(encoding="ascii")
    assert claims == make_claims()


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"lease": timedelta(0)}, "cannot build a v1 verdict: claim 'exp' must be after 'iat'"),
        ({"lease": timedelta(days=9)}, "the verdict lives longer than 8 days, 0:00:00"),
        ({"message": "\ud800 unpaired"}, "text with unpaired surrogates cannot be signed"),
        ({"contact": None}, "cannot build a v1 verdict: claim 'contact' must be a string"),
    ],
)
def test_issue_verdict_refuses_what_sign_verdict_refuses(
    change: dict[str, object], refusal: str
) -> None:
    verdict = make_verdict()
    if "lease" in change:
        lease = replace(verdict.lease, expires=T0 + change.pop("lease"))  # type: ignore[operator]
        verdict = replace(verdict, lease=lease)
    verdict = replace(verdict, **change)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"^{re.escape(refusal)}$"):
        issue_verdict(
            verdict,
            issuer="regionlock-test",
            device_id="dev_7f3a9c",
            country="IR",
            subdivision=None,
            nonce=NONCE,
            counter=42,
            issued_at=T0,
            keyring=golden_keyring(),
            max_lifetime=MAX_LIFETIME,
        )


def test_a_verdict_is_signed_only_at_a_time_it_can_be_valid() -> None:
    # The service's clock against the claims (`_check_times`, shared by sign_verdict and
    # issue_verdict): each refusal in its own words, the leeway's edge included.
    claims, ring = make_claims(), golden_keyring()
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        sign_verdict(claims, ring, T0.replace(tzinfo=None))
    with pytest.raises(ValueError, match=r"^the verdict has already expired$"):
        sign_verdict(claims, ring, T0 + timedelta(days=7))
    edge = T0 - timedelta(seconds=DEFAULT_LEEWAY_S)
    assert sign_verdict(claims, ring, edge) == GOLDEN.read_text(encoding="ascii").strip()
    with pytest.raises(ValueError, match=r"^the verdict's iat lies in the future$"):
        sign_verdict(claims, ring, edge - timedelta(seconds=1))
