"""The compact JWS layer: encodings, canonical JSON, and everything `verify` must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from signing_fixtures import golden_key

from regionlock.domain.errors import RegionlockError
from regionlock.signing import jws
from regionlock.signing.jws import (
    BadSignature,
    MalformedToken,
    TokenError,
    WrongAlgorithm,
    WrongType,
    b64url_decode,
    b64url_encode,
    canonical_json,
)

TYP = "regionlock-test+jwt"
PAYLOAD = {"sub": "dev_1", "n": 1}


def raw_b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: bytes, signature: bytes) -> str:
    """A token with any header, payload and signature, bypassing every check of ours."""
    head = raw_b64(json.dumps(header).encode())
    return f"{head}.{raw_b64(payload)}.{raw_b64(signature)}"


def resign(header: dict[str, Any], payload: bytes) -> str:
    """A token correctly signed by the test key over an arbitrary header and payload."""
    head, body = raw_b64(json.dumps(header).encode()), raw_b64(payload)
    signature = golden_key().sign(f"{head}.{body}".encode())
    return f"{head}.{body}.{raw_b64(signature)}"


def good_token() -> str:
    return jws.sign(PAYLOAD, golden_key(), TYP)


# -- encodings ---------------------------------------------------------------------------------


def test_b64url_round_trip_without_padding() -> None:
    for n in range(8):
        data = bytes(range(250, 250 - n, -1))
        text = b64url_encode(data)
        assert "=" not in text and "+" not in text and "/" not in text
        assert b64url_decode(text) == data


@pytest.mark.parametrize(
    "text",
    ["AQ==", "AQ=", "A+8", "A/8", "AQ\n", " AQ", "A", "AQID\u00e9", "AR"],  # AR: stray bits
)
def test_b64url_decode_refuses_anything_but_canonical_unpadded(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_canonical_json_is_sorted_compact_utf8() -> None:
    value = {"b": [1, True, None], "a": {"z": '\u00e9\n"\\', "y": -3}, "\u00e4": ""}
    assert canonical_json(value) == (
        '{"a":{"y":-3,"z":"\u00e9\\n\\"\\\\"},"b":[1,true,null],"\u00e4":""}'.encode()
    )


def test_canonical_json_escapes_control_characters_in_lowercase_hex() -> None:
    assert canonical_json(["\x01\x1f\t\x7f"]) == b'["\\u0001\\u001f\\t\x7f"]'


# What canonical JSON was written with until orjson took over (2026-12-07): the bytes may not
# change, so the standard library's encoder stays the reference.
REFERENCE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def reference_bytes(value: Any) -> bytes:
    return REFERENCE.encode(value).encode("utf-8")


def test_canonical_json_is_the_reference_encoding_for_every_code_point() -> None:
    """Every Unicode scalar value in a string, and as keys among others every one below
    U+0800 (every escape and every 1- and 2-byte UTF-8 form) and a stride through the rest
    (3- and 4-byte forms, the ends of each plane), encodes to the reference's bytes:
    escapes, raw UTF-8 and the order of keys."""
    scalars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    text = "".join(scalars)
    assert canonical_json(text) == reference_bytes(text)
    ends = [chr(c) for p in range(17) for c in (p << 16, (p << 16) | 0xFFFF)]
    as_keys = scalars[:0x800] + scalars[0x800::257] + ends + ["\ud7ff", "\ue000"]
    for start in range(0, len(as_keys), 1024):
        keys = {c: [c, start] for c in as_keys[start : start + 1024]}
        keys["a" + as_keys[start]] = None
        assert canonical_json(keys) == reference_bytes(keys)


def test_canonical_json_is_the_reference_encoding_at_the_integer_bounds() -> None:
    value = {"max": 2**53 - 1, "min": -(2**53) + 1, "zero": 0, "t": True, "f": False, "n": None}
    nested: Any = value
    for _ in range(100):  # deeper than any token
        nested = {"k": [nested, 1]}
    assert canonical_json(value) == reference_bytes(value)
    assert canonical_json(nested) == reference_bytes(nested)
    assert canonical_json((1, ("x", []))) == b'[1,["x",[]]]'


@pytest.mark.parametrize(
    "value",
    [
        {"x": 1.5},
        {"x": float("nan")},
        {"x": 2**53},
        {"x": -(2**53)},
        {1: "non-string key"},
        {"x": b"bytes"},
        {"x": {1, 2}},
        {"x": "\ud800"},
    ],
)
def test_canonical_json_refuses_what_has_no_canonical_form(value: Any) -> None:
    with pytest.raises(ValueError):
        canonical_json(value)


# -- signing and verifying ---------------------------------------------------------------------


def test_header_is_exactly_alg_kid_typ_in_canonical_form() -> None:
    token = good_token()
    head = b64url_decode(token.split(".")[0])
    assert head == f'{{"alg":"EdDSA","kid":"{golden_key().kid}","typ":"{TYP}"}}'.encode()
    assert b64url_decode(token.split(".")[1]) == b'{"n":1,"sub":"dev_1"}'


def test_verify_returns_header_and_payload() -> None:
    header, payload = jws.verify(good_token(), golden_key().public_bytes, expected_typ=TYP)
    assert header == {"alg": "EdDSA", "kid": golden_key().kid, "typ": TYP}
    assert payload == PAYLOAD
    assert verify_once(good_token(), golden_key().public_key, TYP) == (header, payload)


def test_parse_unverified_checks_neither_type_nor_signature() -> None:
    head, body, sig = good_token().split(".")
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    parts = jws.parse_unverified(f"{head}.{body}.{flipped}")
    assert parts.header == {"alg": "EdDSA", "kid": golden_key().kid, "typ": TYP}
    assert parts.signing_input == f"{head}.{body}".encode()
    with pytest.raises(WrongType):
        jws.check_type(parts.header["typ"], "regionlock-other+jwt")
    with pytest.raises(BadSignature):
        jws.check_signature(parts, golden_key().public_bytes)
    with pytest.raises(ValueError):
        jws.check_signature(parts, b"\0" * 31)


def test_verify_accepts_a_loaded_public_key_and_bytes_tokens() -> None:
    key = golden_key()
    assert jws.verify(good_token().encode(), key.public_key, expected_typ=TYP)[1] == PAYLOAD


@pytest.mark.parametrize("typ", [TYP.upper(), "application/" + TYP, "Application/" + TYP])
def test_typ_compares_as_a_media_type(typ: str) -> None:
    # RFC 7515 4.1.9: case-insensitive, and "application/" may be left out.
    token = jws.sign(PAYLOAD, golden_key(), typ)
    jws.verify(token, golden_key().public_bytes, expected_typ=TYP)


def test_errors_are_token_errors() -> None:
    # How each is answered over HTTP is the API edge's business (tests/api/test_problems.py).
    for cls in (MalformedToken, BadSignature, WrongAlgorithm, WrongType):
        assert issubclass(cls, TokenError) and issubclass(cls, RegionlockError)


def verify_once(
    token: str | bytes, public_key: Any, expected_typ: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`verify` taken apart as `open_checkin` does it: parse once (before the key is known),
    then `typ`, signature and payload."""
    parts = jws.parse_unverified(token)
    if expected_typ is not None:
        jws.check_type(parts.header.get("typ"), expected_typ)
    jws.check_signature(parts, public_key)
    return parts.header, jws.json_object(parts.payload, "payload")


def check(token: str | bytes, error: type[TokenError], expected_typ: str | None = TYP) -> None:
    with pytest.raises(error) as refused:
        jws.verify(token, golden_key().public_bytes, expected_typ=expected_typ)
    # Parsed once, then checked: refused just the same, with the same message.
    with pytest.raises(error) as refused_once:
        verify_once(token, golden_key().public_bytes, expected_typ)
    assert type(refused_once.value) is type(refused.value)
    assert str(refused_once.value) == str(refused.value)


@pytest.mark.parametrize(
    "alg", ["none", "None", "NONE", "HS256", "RS256", "ES256", "Ed25519", "eddsa", "", None, 1]
)
def test_any_other_algorithm_is_refused(alg: object) -> None:
    header = {"alg": alg, "kid": golden_key().kid, "typ": TYP}
    check(forge(header, b'{"sub":"dev_1"}', b"\0" * 64), WrongAlgorithm)


def test_missing_alg_is_refused() -> None:
    check(forge({"typ": TYP}, b'{"sub":"dev_1"}', b"\0" * 64), WrongAlgorithm)


def test_unsecured_token_is_refused() -> None:
    # RFC 7519's unsecured JWT: alg "none" and an empty signature segment.
    head = raw_b64(b'{"alg":"none"}')
    for token in (f"{head}.{raw_b64(b'{}')}.", f"{head}.{raw_b64(b'{}')}"):
        with pytest.raises((WrongAlgorithm, MalformedToken)):
            jws.verify(token, golden_key().public_bytes, expected_typ=None)
    check(f"{head}.{raw_b64(b'{}')}.", WrongAlgorithm, expected_typ=None)


def test_hs256_with_the_public_key_as_secret_is_refused() -> None:
    # The classic key-confusion attack: an HMAC "signed" with the published public key.
    key = golden_key()
    secrets = [key.public_bytes, b64url_encode(key.public_bytes).encode()]
    for secret in secrets:
        head = raw_b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": TYP}).encode())
        body = raw_b64(b'{"sub":"dev_1"}')
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        check(f"{head}.{body}.{raw_b64(mac)}", WrongAlgorithm)


def test_tampered_payload_fails_the_signature() -> None:
    head, _, sig = good_token().split(".")
    body = raw_b64(b'{"n":1,"sub":"dev_2"}')
    check(f"{head}.{body}.{sig}", BadSignature)


def test_tampered_header_fails_the_signature() -> None:
    _, body, sig = good_token().split(".")
    other = {"alg": "EdDSA", "kid": "someone-else", "typ": TYP}
    check(f"{raw_b64(json.dumps(other).encode())}.{body}.{sig}", BadSignature)


def test_another_key_fails_the_signature() -> None:
    from regionlock.signing.keys import SigningKey

    other = SigningKey.from_seed(b"\x01" * 32, created=golden_key().created)
    with pytest.raises(BadSignature):
        jws.verify(good_token(), other.public_bytes, expected_typ=TYP)


def test_flipped_signature_bit_fails() -> None:
    head, body, sig = good_token().split(".")
    raw = bytearray(b64url_decode(sig))
    raw[10] ^= 1
    check(f"{head}.{body}.{raw_b64(bytes(raw))}", BadSignature)


def test_wrong_typ_and_missing_typ_are_refused() -> None:
    check(jws.sign(PAYLOAD, golden_key(), "regionlock-other+jwt"), WrongType)
    check(resign({"alg": "EdDSA", "kid": golden_key().kid}, b"{}"), WrongType)
    # Without an expected type any typ (or none) passes.
    jws.verify(resign({"alg": "EdDSA"}, b"{}"), golden_key().public_bytes, expected_typ=None)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + ".",
        lambda t: t + "." + t.split(".")[2],
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t.replace(".", "..", 1),
        lambda t: "." + t,
        lambda t: t.split(".")[0] + ".." + t.split(".")[2],
    ],
    ids=["trailing-dot", "four-segments", "two-segments", "empty-payload", "leading-dot", "gap"],
)
def test_segment_structure_is_exact(mangle: Any) -> None:
    check(mangle(good_token()), MalformedToken)


def test_padding_is_refused_in_every_segment() -> None:
    parts = good_token().split(".")
    for i, segment in enumerate(parts):
        # Correct padding where the length needs it, a lone "=" where it does not.
        padded = segment + ("=" * (-len(segment) % 4) or "=")
        check(".".join([*parts[:i], padded, *parts[i + 1 :]]), MalformedToken)


def test_standard_base64_alphabet_is_refused() -> None:
    head, body, sig = good_token().split(".")
    std = base64.b64encode(b64url_decode(sig)).decode().rstrip("=")
    if std == sig:  # pragma: no cover - the golden signature has a '-' or '_' in it
        pytest.skip("signature happens to need no url-safe characters")
    check(f"{head}.{body}.{std}", MalformedToken)


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"a":1', b"\xff\xfe", b'{"a":NaN}', b'{"a":1,"a":2}', b"\xef\xbb\xbf{}"],
    ids=["text", "truncated", "not-utf8", "nan", "duplicate-member", "bom"],
)
def test_non_json_payload_is_refused_after_a_valid_signature(payload: bytes) -> None:
    check(resign({"alg": "EdDSA", "typ": TYP}, payload), MalformedToken)


@pytest.mark.parametrize("payload", [b"[1,2]", b'"text"', b"42", b"null", b"true"])
def test_payload_must_be_an_object(payload: bytes) -> None:
    check(resign({"alg": "EdDSA", "typ": TYP}, payload), MalformedToken)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "EdDSA", "typ": TYP, "crit": ["exp"], "exp": 1},
        {"alg": "EdDSA", "typ": TYP, "crit": []},
        {"alg": "EdDSA", "typ": TYP, "b64": False},
        {"alg": "EdDSA", "typ": TYP, "b64": "true"},
        {"alg": "EdDSA", "typ": TYP, "kid": 7},
        {"alg": "EdDSA", "typ": ["x"]},
    ],
    ids=["crit", "empty-crit", "b64-false", "b64-string", "kid-not-string", "typ-not-string"],
)
def test_unsupported_header_parameters_are_refused(header: dict[str, Any]) -> None:
    check(resign(header, b"{}"), MalformedToken)


def test_header_must_be_a_json_object() -> None:
    body = raw_b64(b"{}")
    sig = raw_b64(b"\0" * 64)
    for head in (b'["EdDSA"]', b"EdDSA", b'{"alg":"EdDSA","alg":"EdDSA"}'):
        check(f"{raw_b64(head)}.{body}.{sig}", MalformedToken)


def test_signature_must_be_64_bytes() -> None:
    head, body, sig = good_token().split(".")
    check(f"{head}.{body}.{raw_b64(b64url_decode(sig)[:63])}", MalformedToken)
    check(f"{head}.{body}.{raw_b64(b64url_decode(sig) + b'0')}", MalformedToken)


def test_non_ascii_and_oversized_tokens_are_refused() -> None:
    check("\u00e9" + good_token(), MalformedToken)
    check("é".encode() + good_token().encode(), MalformedToken)
    check("a" * (jws.MAX_TOKEN_LENGTH + 1), MalformedToken)


def test_deeply_nested_payload_is_refused_not_crashed() -> None:
    check(resign({"alg": "EdDSA", "typ": TYP}, b"[" * 50_000), MalformedToken)


def test_wrong_length_public_key_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        jws.verify(good_token(), b"\0" * 31, expected_typ=TYP)


def test_peek_header_parses_as_strictly_as_verify() -> None:
    assert jws.peek_header(good_token())["kid"] == golden_key().kid
    assert jws.peek_header(good_token(), expected_typ=TYP)["typ"] == TYP
    with pytest.raises(WrongType):
        jws.peek_header(good_token(), expected_typ="regionlock-other+jwt")
    with pytest.raises(WrongAlgorithm):
        jws.peek_header(forge({"alg": "none"}, b"{}", b"\0" * 64))
    with pytest.raises(MalformedToken):
        jws.peek_header(good_token() + "=")
    # It does not check the signature: that is what it is for.
    head, body, sig = good_token().split(".")
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    assert jws.peek_header(f"{head}.{body}.{flipped}")["alg"] == "EdDSA"


def test_key_resolver_sees_the_parsed_header_and_only_for_well_formed_tokens() -> None:
    seen: list[dict[str, Any]] = []

    def resolve(header: Any) -> bytes:
        seen.append(dict(header))
        return golden_key().public_bytes

    assert jws.verify(good_token(), resolve, expected_typ=TYP)[1] == PAYLOAD
    assert seen == [{"alg": "EdDSA", "kid": golden_key().kid, "typ": TYP}]
    # A token refused on its form never reaches the look-up (no storage work for junk).
    for bad in (forge({"alg": "none"}, b"{}", b"\0" * 64), good_token() + "=", "a.b"):
        with pytest.raises(TokenError):
            jws.verify(bad, resolve, expected_typ=TYP)
    with pytest.raises(WrongType):
        jws.verify(jws.sign(PAYLOAD, golden_key(), "other"), resolve, expected_typ=TYP)
    assert len(seen) == 1


def test_key_resolver_errors_propagate() -> None:
    class NoSuchDevice(RegionlockError):
        status = 404

    def resolve(header: Any) -> bytes:
        raise NoSuchDevice(f"no device {header['kid']}")

    with pytest.raises(NoSuchDevice):
        jws.verify(good_token(), resolve, expected_typ=TYP)


def test_any_mapping_can_be_signed() -> None:
    from types import MappingProxyType

    token = jws.sign(MappingProxyType(PAYLOAD), golden_key(), TYP)
    assert token == good_token()


def test_the_cached_header_is_the_header_serialised() -> None:
    key = golden_key()
    for typ in (TYP, "application/" + TYP, 'x\u00e9\\"', TYP):
        expected = jws.sign_bytes(
            {"alg": "EdDSA", "kid": key.kid, "typ": typ}, canonical_json(PAYLOAD), key
        )
        assert jws.sign(PAYLOAD, key, typ) == expected


def test_a_typ_that_is_no_plain_string_is_serialised_as_before() -> None:
    class Typ(str):
        pass

    key = golden_key()
    for typ in (Typ(TYP), ["x"]):
        header = {"alg": "EdDSA", "kid": key.kid, "typ": typ}
        expected = jws.sign_bytes(header, canonical_json(PAYLOAD), key)
        assert jws.sign(PAYLOAD, key, typ) == expected  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        jws.sign(PAYLOAD, key, 1.5)  # type: ignore[arg-type]


def test_sign_bytes_refuses_another_algorithm() -> None:
    with pytest.raises(ValueError):
        jws.sign_bytes({"alg": "none"}, b"{}", golden_key())


# -- properties --------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@settings(max_examples=150, deadline=None)
@given(json_objects)
def test_round_trip_and_canonical_bytes(payload: dict[str, Any]) -> None:
    token = jws.sign(payload, golden_key(), TYP)
    assert jws.verify(token, golden_key().public_bytes, expected_typ=TYP)[1] == payload
    # Canonical: parsing and re-serialising gives the same bytes, the reference's.
    body = b64url_decode(token.split(".")[1])
    assert canonical_json(json.loads(body)) == body == reference_bytes(payload)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_single_character_change_is_refused(data: st.DataObject) -> None:
    token = good_token()
    i = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
    c = data.draw(st.sampled_from(alphabet).filter(lambda ch: ch != token[i]))
    check(token[:i] + c + token[i + 1 :], TokenError)


def test_the_verifier_refuses_forgeries_under_small_order_keys() -> None:
    # Defence in depth behind the registry's blocklist (domain.device.parse_public_key):
    # OpenSSL accepts (R = identity, S = 0) under these keys for some messages; the verifier
    # the service uses (libsodium) refuses every one.
    from regionlock.domain import device

    identity = (1).to_bytes(32, "little")
    tried = 0
    for y in device._SMALL_ORDER_Y:
        for sign in (0x00, 0x80):
            raw = y[:-1] + bytes([y[-1] | sign])
            for i in range(16):
                header = jws.b64url_encode(b'{"alg":"EdDSA"}')
                payload = jws.b64url_encode(f'{{"n":{i}}}'.encode())
                token = f"{header}.{payload}.{jws.b64url_encode(identity + bytes(32))}"
                with pytest.raises(jws.BadSignature):
                    jws.verify(token, raw, expected_typ=None)
                tried += 1
    assert tried == 14 * 16
