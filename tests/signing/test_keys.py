"""Signing keys (kid, stored form, JWK) and the keyring (active key, rotation, publication)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from signing_fixtures import (
    DEVICE_ID,
    MAX_LIFETIME,
    NONCE,
    T0,
    golden_key,
    make_claims,
)

from regionlock.signing.jws import b64url_decode
from regionlock.signing.keys import Keyring, NoSigningKey, SigningKey, okp_thumbprint
from regionlock.signing.verdict import UnknownKey, sign_verdict, verify_verdict

# RFC 8037 appendix A.1 and A.3: the example key and its RFC 7638 thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_kid_is_the_rfc7638_thumbprint() -> None:
    key = SigningKey.from_seed(b64url_decode(RFC8037_D), created=T0)
    assert key.public_jwk()["x"] == RFC8037_X
    assert key.kid == okp_thumbprint(b64url_decode(RFC8037_X)) == RFC8037_THUMBPRINT


def test_public_jwk_shape() -> None:
    key = golden_key()
    jwk = key.public_jwk()
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": jwk["x"],
        "kid": key.kid,
        "use": "sig",
        "alg": "EdDSA",
    }
    assert b64url_decode(jwk["x"]) == key.public_bytes and len(key.public_bytes) == 32
    assert "d" not in jwk


def test_stored_form_round_trips() -> None:
    key = golden_key().retire(T0)
    data = key.to_dict()
    assert data == {
        "kid": key.kid,
        "crv": "Ed25519",
        "private_key": data["private_key"],
        "created": "2026-01-30T12:00:00Z",
        "retired": "2026-03-01T12:00:00Z",
    }
    assert len(b64url_decode(data["private_key"])) == 32
    again = SigningKey.from_dict(data)
    assert again == key and again.sign(b"x") == key.sign(b"x")
    assert SigningKey.from_dict(golden_key().to_dict()).retired is None


@pytest.mark.parametrize(
    "change",
    [
        {"kid": "not-the-thumbprint"},
        {"crv": "Ed448"},
        {"private_key": "AAAA"},
        {"private_key": 7},
        {"created": "2026-01-30T12:00:00"},  # no zone
        {"created": 1767225600},
        {"retired": "2025-01-01T00:00:00Z"},  # before created
    ],
)
def test_stored_form_is_checked(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SigningKey.from_dict({**golden_key().to_dict(), **change})


def test_private_key_stays_out_of_repr() -> None:
    key = golden_key()
    assert key.to_dict()["private_key"] not in repr(key)
    assert "private_key" not in repr(key)


def test_naive_times_and_short_seeds_are_refused() -> None:
    with pytest.raises(ValueError):
        SigningKey.generate(datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        SigningKey.from_seed(b"\0" * 31, created=T0)


def test_generated_keys_differ() -> None:
    assert SigningKey.generate(T0).kid != SigningKey.generate(T0).kid


# -- keyring -----------------------------------------------------------------------------------


def test_active_key_is_the_newest_not_retired() -> None:
    a = SigningKey.generate(T0)
    b = SigningKey.generate(T0 + timedelta(days=1))
    c = SigningKey.generate(T0 + timedelta(days=2)).retire(T0 + timedelta(days=3))
    assert Keyring([c, a, b]).active == b
    assert Keyring([c, a, b]).keys == (a, b, c)


def test_no_signing_key() -> None:
    with pytest.raises(NoSigningKey):
        _ = Keyring().active
    with pytest.raises(NoSigningKey):
        _ = Keyring([golden_key().retire(T0)]).active


def test_the_same_key_twice_is_refused() -> None:
    with pytest.raises(ValueError):
        Keyring([golden_key(), golden_key().retire(T0)])


def test_rotate_adds_a_signer_retires_the_old_one_and_leaves_the_original_alone() -> None:
    ring = Keyring([golden_key()])
    t1 = T0 + timedelta(hours=1)
    rotated = ring.rotate(t1)
    assert ring.keys == (golden_key(),) and ring.active.retired is None
    assert len(rotated.keys) == 2
    assert rotated.active.kid != golden_key().kid
    assert rotated.active.created == t1
    old = rotated.get(golden_key().kid)
    assert old is not None and old.retired == t1
    assert rotated.get("nope") is None


def test_rotation_before_the_active_key_was_created_is_refused() -> None:
    with pytest.raises(ValueError):
        Keyring([golden_key()]).rotate(golden_key().created - timedelta(seconds=1))


def test_retired_key_is_published_until_its_last_token_can_expire() -> None:
    t1 = T0 + timedelta(days=1)
    ring = Keyring([golden_key()]).rotate(t1)
    old_kid, new_kid = golden_key().kid, ring.active.kid

    def kids(now: datetime) -> list[str]:
        return [k["kid"] for k in ring.jwks(now, MAX_LIFETIME)["keys"]]

    assert kids(t1) == [new_kid, old_kid]
    assert kids(t1 + MAX_LIFETIME - timedelta(seconds=1)) == [new_kid, old_kid]
    assert kids(t1 + MAX_LIFETIME) == [new_kid]


def test_tokens_across_a_rotation() -> None:
    """Old tokens verify until they expire and the old key is dropped; new ones use the new key."""
    ring = Keyring([golden_key()])
    # Signed just before the rotation, with the longest lease there is.
    t_old = T0
    old_token = sign_verdict(make_claims(t_old), ring, t_old, max_lifetime=MAX_LIFETIME)
    t1 = T0 + timedelta(minutes=5)
    ring = ring.rotate(t1)
    new_token = sign_verdict(make_claims(t1), ring, t1, max_lifetime=MAX_LIFETIME)

    assert old_token.split(".")[0] != new_token.split(".")[0]
    from regionlock.signing.jws import peek_header

    assert peek_header(new_token)["kid"] == ring.active.kid != golden_key().kid

    def verify(token: str, now: datetime) -> None:
        verify_verdict(
            token,
            ring.jwks(now, MAX_LIFETIME),
            now=now,
            expected_sub=DEVICE_ID,
            expected_nonce=NONCE,
            leeway_s=0,
        )

    # Until the old token expires, a device fetching the JWKS can still check it.
    verify(old_token, t1)
    verify(old_token, t_old + timedelta(days=7) - timedelta(seconds=1))
    verify(new_token, t1 + timedelta(days=1))
    # Once the old key's tokens have all expired it is no longer published.
    with pytest.raises(UnknownKey):
        verify(old_token, t1 + MAX_LIFETIME)
    assert [k["kid"] for k in ring.jwks(t1 + MAX_LIFETIME, MAX_LIFETIME)["keys"]] == [
        ring.active.kid
    ]


def test_jwks_order_does_not_depend_on_input_order() -> None:
    same = T0 + timedelta(days=1)
    a, b, c = (SigningKey.generate(same) for _ in range(3))
    a, b = a.retire(same + timedelta(hours=1)), b.retire(same + timedelta(hours=1))
    keys = [a, b, c, golden_key()]
    forward = Keyring(keys).jwks(same, MAX_LIFETIME)
    assert forward == Keyring(reversed(keys)).jwks(same, MAX_LIFETIME)
    # Keys not retired first (newest first), then retired ones; the kid settles equal times.
    retired = sorted([a.kid, b.kid])
    assert [k["kid"] for k in forward["keys"]] == [c.kid, golden_key().kid, *retired]


@settings(max_examples=50, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=20 * 24), min_size=1, max_size=6),
    probe=st.integers(min_value=0, max_value=200 * 24),
)
def test_rotation_invariants(gaps: list[int], probe: int) -> None:
    ring = Keyring.new(T0)
    now = T0
    for hours in gaps:
        now += timedelta(hours=hours)
        ring = ring.rotate(now)
    at = T0 + timedelta(hours=probe)
    published = ring.published(max(at, now), MAX_LIFETIME)
    # Exactly one signer; it is always published and listed first.
    assert [k for k in ring.keys if k.retired is None] == [ring.active]
    assert published[0] == ring.active
    # A retired key is published exactly while tokens it signed may be alive.
    for key in ring.keys:
        if key.retired is not None:
            assert (key in published) == (max(at, now) < key.retired + MAX_LIFETIME)


def test_published_uses_aware_times() -> None:
    ring = Keyring([golden_key().retire(T0)])
    with pytest.raises(ValueError):
        ring.published(datetime(2026, 3, 2), MAX_LIFETIME)
    assert ring.published(datetime(2026, 3, 2, tzinfo=UTC), MAX_LIFETIME)
