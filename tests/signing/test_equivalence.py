"""The signing layer's fast paths against the code they replaced, outcome for outcome.

The `reference_*` functions below are the implementations as they were before the fast paths
(base64url by re-encoding, JSON through `json.loads`/`json.dumps` with a fresh codec each
call, canonical JSON by the path-building walk, `sign_verdict` checking every claim and
walking the payload). Each property feeds both the same input and requires the same bytes,
or the same error: type and message. Faster, never different.
"""

from __future__ import annotations

import base64
import binascii
import copy
import enum
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from signing_fixtures import DEVICE_ID, T0, golden_key, golden_keyring, make_claims

from regionlock.signing import jws, verdict
from regionlock.signing.jws import ALGORITHM, MAX_SAFE_INTEGER, MalformedToken, TokenError
from regionlock.signing.keys import Keyring
from regionlock.signing.verdict import (
    CHECKIN_TYP,
    VERDICT_TYP,
    CheckinRequest,
    open_checkin,
    sign_checkin,
    sign_verdict,
    verify_checkin,
)

# -- the implementations replaced ---------------------------------------------------------------

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def reference_b64url_decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:  # pragma: no cover - the pattern above rules this out
        raise ValueError("not unpadded base64url") from exc
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != text:
        raise ValueError("non-canonical base64url (stray trailing bits)")
    return data


def reference_check_canonical(value: Any, path: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: integer {value} is outside +-(2**53 - 1)")
        return
    if isinstance(value, float):
        raise ValueError(f"{path}: floats have no canonical form here; use integers or strings")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: object keys must be strings, got {key!r}")
            reference_check_canonical(item, f"{path}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            reference_check_canonical(item, f"{path}[{i}]")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def reference_canonical_json(value: Any) -> bytes:
    reference_check_canonical(value, "$")
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text with unpaired surrogates cannot be signed") from exc


def _reference_reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate member {key!r}")
        obj[key] = value
    return obj


def _reference_reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def reference_json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_reference_reject_duplicates,
            parse_constant=_reference_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedToken(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedToken(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def reference_sign_verdict(
    claims: Mapping[str, Any],
    keyring: Keyring,
    now: datetime,
    *,
    max_lifetime: timedelta | None = None,
) -> str:
    try:
        verdict._check_claims(claims)
    except TokenError as exc:
        raise ValueError(f"not a v1 verdict: {exc.message}") from exc
    now_s = int(now.timestamp())
    if claims["exp"] <= now_s:
        raise ValueError("the verdict has already expired")
    if claims["iat"] > now_s + verdict.DEFAULT_LEEWAY_S:
        raise ValueError("the verdict's iat lies in the future")
    if max_lifetime is not None and claims["exp"] - claims["iat"] > max_lifetime.total_seconds():
        raise ValueError(f"the verdict lives longer than {max_lifetime}")
    key = keyring.active
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": VERDICT_TYP}
    body = reference_canonical_json(dict(claims))
    signing_input = (
        f"{jws.b64url_encode(reference_canonical_json(header))}.{jws.b64url_encode(body)}"
    )
    signature = key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{jws.b64url_encode(signature)}"


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """What a call gives: ("ok", its value) or (the error's type name, its message)."""
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _same(new: Callable[..., Any], old: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    assert outcome(new, *args, **kwargs) == outcome(old, *args, **kwargs)


# -- base64url ----------------------------------------------------------------------------------

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize("prefix", ["", "Q", "QU", "QUJ", "QUJD", "QUJDR", "QUJDRE"])
def test_b64url_decode_every_last_character(prefix: str) -> None:
    # Only the last character can carry stray bits: every one of them, after every group size.
    for last in ALPHABET + "=+/ .\n\u00e9":
        _same(jws.b64url_decode, reference_b64url_decode, prefix + last)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET + "=+/. \n\u00e9", max_size=40))
def test_b64url_decode_matches_the_reference(text: str) -> None:
    _same(jws.b64url_decode, reference_b64url_decode, text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_b64url_encode_matches_the_reference(data: bytes) -> None:
    assert jws.b64url_encode(data) == base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- canonical JSON and strict parsing ----------------------------------------------------------


class Text(str):
    pass


class Number(int):
    pass


class Level(enum.IntEnum):
    HIGH = 3


odd_text = st.sampled_from(["\ud800", "a\udfff", '"\\', "\x00\x1f\x7f", "\u2028", "\U0001f600"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.sampled_from([2**53 - 1, -(2**53 - 1), 2**53, -(2**53)])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | odd_text
    | st.builds(Text, st.text(max_size=4))
    | st.builds(Number, st.integers(min_value=-5, max_value=5))
    | st.just(Level.HIGH)
    | st.sampled_from([b"bytes", {1, 2}, frozenset(), object])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=4) | st.builds(Text, st.text(max_size=2)), inner)
        | st.dictionaries(st.integers(0, 3), inner, min_size=1, max_size=2)
    ),
    max_leaves=10,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_canonical_json_matches_the_reference(value: Any) -> None:
    _same(jws.canonical_json, reference_canonical_json, value)


json_texts = st.recursive(
    st.sampled_from(["null", "true", "1", "-0", "1.5", "1e400", '"x"', '"\\ud800"', "NaN"]),
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
        | st.lists(
            st.tuples(st.sampled_from(['"a"', '"b"', '"\\u0061"', '"c"']), inner), max_size=4
        ).map(lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}")
    ),
    max_leaves=8,
)


@settings(max_examples=500, deadline=None)
@given(
    json_texts,
    st.sampled_from(["", " ", "\ufeff", "\n"]),
    st.sampled_from(["", " ", "x", ",", "}"]),
)
def test_json_object_matches_the_reference(text: str, before: str, after: str) -> None:
    data = (before + text + after).encode("utf-8", "surrogatepass")
    _same(jws.json_object, reference_json_object, data, "payload")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=30))
def test_json_object_on_any_bytes_matches_the_reference(data: bytes) -> None:
    _same(jws.json_object, reference_json_object, data, "header")


# -- verdicts -----------------------------------------------------------------------------------

CLAIMS = make_claims()
RING = golden_keyring()
PATHS: list[tuple[str, ...]] = [
    *((name,) for name in CLAIMS),
    ("policy", "id"),
    ("policy", "version"),
    ("location", "country"),
    ("location", "subdivision"),
    ("offline", "action"),
    ("offline", "lock_after_days"),
    ("offline", "warn_days"),
    ("reasons", "+"),
    ("extra",),
    ("policy", "extra"),
]
REPLACEMENT_VALUES: list[Any] = [
    None,
    True,
    0,
    1,
    -1,
    1.0,
    42,
    42.0,
    2**53 - 1,
    2**53,
    CLAIMS["iat"],
    CLAIMS["exp"],
    CLAIMS["exp"] + 400 * 86400,
    "",
    "x",
    "lock",
    "warn",
    "\ud800",
    Text("lock"),
    Number(7),
    Level.HIGH,
    [],
    ["a"],
    ("a",),
    [1],
    {},
    {"id": "p", "version": "1"},
    {"country": None, "subdivision": None},
    {"action": "lock", "lock_after_days": 1, "warn_days": 1},
]
DELETE = object()
edits = st.lists(
    st.tuples(st.sampled_from(PATHS), st.sampled_from([*REPLACEMENT_VALUES, DELETE]) | odd_text),
    max_size=3,
)


def edited(edit_list: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    claims = copy.deepcopy(CLAIMS)
    for path, value in edit_list:
        target: Any = claims
        for name in path[:-1]:
            target = target.get(name) if isinstance(target, dict) else None
        if isinstance(target, list):
            target.append(value)
        elif isinstance(target, dict):
            if value is DELETE:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = copy.deepcopy(value)
    return claims


def test_sign_verdict_matches_the_reference_on_every_single_edit() -> None:
    for path in PATHS:
        for value in [*REPLACEMENT_VALUES, DELETE, "\ud800"]:
            claims = edited([(path, value)])
            new = outcome(sign_verdict, claims, RING, T0, max_lifetime=timedelta(days=366))
            old = outcome(
                reference_sign_verdict, claims, RING, T0, max_lifetime=timedelta(days=366)
            )
            assert new == old, (path, value)


@settings(max_examples=600, deadline=None)
@given(edits, st.sampled_from([None, timedelta(days=6), timedelta(days=366)]))
def test_sign_verdict_matches_the_reference_on_edited_claims(
    edit_list: list[tuple[tuple[str, ...], Any]], max_lifetime: timedelta | None
) -> None:
    claims = edited(edit_list)
    new = outcome(sign_verdict, claims, RING, T0, max_lifetime=max_lifetime)
    old = outcome(reference_sign_verdict, claims, RING, T0, max_lifetime=max_lifetime)
    assert new == old


class Liar(str):
    """A key that says it is "iss" whatever its text."""

    def __eq__(self, other: object) -> bool:
        return other == "iss" or str.__eq__(self, other)

    def __hash__(self) -> int:
        return hash("iss")


def test_keys_that_only_compare_equal_to_v1_names_are_signed_as_before() -> None:
    for key in (Text("iss"), Liar("xyz")):
        claims = {k: v for k, v in CLAIMS.items() if k != "iss"}
        claims[key] = CLAIMS["iss"]
        assert outcome(sign_verdict, claims, RING, T0) == outcome(
            reference_sign_verdict, claims, RING, T0
        )
    claims = copy.deepcopy(CLAIMS)
    claims["policy"] = {Text("id"): "p", "version": "1"}
    assert outcome(sign_verdict, claims, RING, T0) == outcome(
        reference_sign_verdict, claims, RING, T0
    )


any_text = st.text(max_size=12) | odd_text


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "iss": any_text,
            "sub": any_text,
            "message": any_text,
            "contact": any_text,
            "nonce": any_text,
            "reasons": st.lists(any_text, max_size=3),
            "country": st.none() | any_text,
            "subdivision": st.none() | any_text,
            "policy_id": any_text,
            "policy_version": any_text,
            "counter": st.integers(0, MAX_SAFE_INTEGER),
            "lock_after_days": st.integers(0, MAX_SAFE_INTEGER),
            "warn_days": st.integers(0, MAX_SAFE_INTEGER),
            "verdict": st.sampled_from(sorted(verdict.VERDICTS)),
            "action": st.sampled_from(sorted(verdict.OFFLINE_ACTIONS)),
        }
    )
)
def test_any_v1_claims_are_signed_as_the_reference_signs_them(fields: dict[str, Any]) -> None:
    claims = {
        **CLAIMS,
        **{k: fields[k] for k in ("iss", "sub", "message", "contact", "nonce", "verdict")},
        "reasons": fields["reasons"],
        "counter": fields["counter"],
        "location": {"country": fields["country"], "subdivision": fields["subdivision"]},
        "policy": {"id": fields["policy_id"], "version": fields["policy_version"]},
        "offline": {
            "action": fields["action"],
            "lock_after_days": fields["lock_after_days"],
            "warn_days": fields["warn_days"],
        },
    }
    # Canonical JSON of any such claims, token for token as the reference signs them.
    new = outcome(sign_verdict, claims, RING, T0)
    assert new == outcome(reference_sign_verdict, claims, RING, T0)


# -- check-ins ----------------------------------------------------------------------------------

DEVICE = golden_key()
CHECKIN = sign_checkin(
    CheckinRequest("q7Hn2Zk4PwX9bT1cVd8sLm", 7, int(T0.timestamp()), {"gps": {"lat": 1}}),
    DEVICE,
    DEVICE_ID,
)


def peek_then_verify(token: str) -> CheckinRequest:
    """What the service did before `open_checkin`: parse for the kid, then verify in full."""
    jws.peek_header(token)
    return verify_checkin(token, DEVICE.public_bytes, now=T0)


def open_then_verify(token: str) -> CheckinRequest:
    return open_checkin(token).verify(DEVICE.public_key, now=T0)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_open_checkin_matches_peek_and_verify_on_any_edit(data: st.DataObject) -> None:
    token = CHECKIN
    for _ in range(data.draw(st.integers(1, 2))):
        i = data.draw(st.integers(0, len(token)))
        cut = data.draw(st.integers(0, 2))
        insert = data.draw(st.text(alphabet=ALPHABET + ".=", max_size=2))
        token = token[:i] + insert + token[i + cut :]
    assert outcome(open_then_verify, token) == outcome(peek_then_verify, token)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["alg", "typ", "kid", "crit", "b64", "jwk"]),
        st.sampled_from(["EdDSA", "none", CHECKIN_TYP, VERDICT_TYP, "x", 1, True, None, []]),
    ),
    st.sampled_from(
        [
            b'{"nonce":"q7Hn2Zk4PwX9bT1cVd8sLm","counter":1,"iat":1772366400,"signals":{}}',
            b'{"nonce":"q7Hn2Zk4PwX9bT1cVd8sLm","counter":1,"iat":1,"signals":{}}',
            b'{"nonce":"short","counter":1,"iat":1772366400,"signals":{}}',
            b'{"a":1,"a":2}',
            b"[]",
            b"not json",
        ]
    ),
)
def test_open_checkin_matches_peek_and_verify_on_any_header(
    header: dict[str, Any], payload: bytes
) -> None:
    head = jws.b64url_encode(json.dumps(header).encode())
    body = jws.b64url_encode(payload)
    signature = DEVICE.sign(f"{head}.{body}".encode())
    token = f"{head}.{body}.{jws.b64url_encode(signature)}"
    assert outcome(open_then_verify, token) == outcome(peek_then_verify, token)
