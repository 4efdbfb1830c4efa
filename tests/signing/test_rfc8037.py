"""RFC 8037 appendix A: our JWS over `cryptography` reproduces the published Ed25519 example.

A.1/A.2 give the key, A.3 its thumbprint (our `kid`), A.4 the signed example and A.5 its
validation. Ed25519 is deterministic, so signing must give exactly the RFC's bytes.
"""

from __future__ import annotations

import pytest
from signing_fixtures import T0

from regionlock.signing import jws
from regionlock.signing.jws import BadSignature, MalformedToken, b64url_decode
from regionlock.signing.keys import SigningKey

D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
PAYLOAD = b"Example of Ed25519 signing"
SIGNING_INPUT = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
SIGNATURE = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
TOKEN = f"{SIGNING_INPUT}.{SIGNATURE}"


def rfc_key() -> SigningKey:
    return SigningKey.from_seed(b64url_decode(D), created=T0)


def test_a1_a2_public_key_from_private() -> None:
    assert rfc_key().public_jwk()["x"] == X


def test_a3_thumbprint() -> None:
    assert rfc_key().kid == THUMBPRINT


def test_a4_signing_reproduces_the_example() -> None:
    assert jws.sign_bytes({"alg": "EdDSA"}, PAYLOAD, rfc_key()) == TOKEN


def test_a5_validation() -> None:
    header, payload = jws.verify_bytes(TOKEN, b64url_decode(X), expected_typ=None)
    assert (header, payload) == ({"alg": "EdDSA"}, PAYLOAD)
    tampered = TOKEN.replace("RXhh", "RXhi", 1)
    with pytest.raises(BadSignature):
        jws.verify_bytes(tampered, b64url_decode(X), expected_typ=None)


def test_the_example_is_not_a_json_object_so_verify_refuses_it() -> None:
    with pytest.raises(MalformedToken):
        jws.verify(TOKEN, b64url_decode(X), expected_typ=None)
