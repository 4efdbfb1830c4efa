"""The service's Ed25519 signing keys and the keyring that rotates and publishes them.

A key is named by its `kid`, the RFC 7638 thumbprint of its public JWK, so the name follows
from the key itself and two keys can never share one. Only the newest key that is not retired
signs; a retired key stays in the JWKS until every token it may have signed has expired, so a
device that fetches the JWKS can still check a verdict it received just before a rotation.

Values only: nothing here reads or writes storage. The keyring is immutable; `rotate` returns
the next keyring, which the caller persists (`SigningKey.to_dict` gives the stored form).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_sign

from regionlock.domain.errors import Unavailable
from regionlock.signing.jws import ALGORITHM, SIGNATURE_LENGTH, b64url_decode, b64url_encode

SEED_LENGTH = 32


class NoSigningKey(Unavailable):
    """The keyring has no key that may sign (empty, or every key retired)."""


def okp_thumbprint(public_bytes: bytes) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an Ed25519 public key's OKP JWK.

    The hash input is the JWK's required members only, in lexicographic order, no whitespace:
    `{"crv":"Ed25519","kty":"OKP","x":"<base64url key>"}` (RFC 8037 section 2, appendix A.3).
    """
    members = f'{{"crv":"Ed25519","kty":"OKP","x":"{b64url_encode(public_bytes)}"}}'
    return b64url_encode(hashlib.sha256(members.encode("ascii")).digest())


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def _timestamp_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _timestamp_from(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO 8601 timestamp string")
    return _aware(datetime.fromisoformat(value), name)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One Ed25519 signing key: the private key, its `kid`, when it was created and retired.

    Equal keys have equal public keys and dates; the private key never appears in `repr`.
    """

    private_key: Ed25519PrivateKey = field(repr=False, compare=False)
    created: datetime
    retired: datetime | None = None
    kid: str = field(init=False)
    public_bytes: bytes = field(init=False, repr=False)
    public_key: Ed25519PublicKey = field(init=False, repr=False, compare=False)
    _sodium_secret: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        created = _aware(self.created, "created")
        object.__setattr__(self, "created", created)
        if self.retired is not None:
            retired = _aware(self.retired, "retired")
            if retired < created:
                raise ValueError("a key cannot be retired before it was created")
            object.__setattr__(self, "retired", retired)
        public_key = self.private_key.public_key()
        raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        object.__setattr__(self, "public_key", public_key)
        object.__setattr__(self, "public_bytes", raw)
        object.__setattr__(self, "kid", okp_thumbprint(raw))
        # libsodium's secret key is the RFC 8032 seed followed by the public key.
        object.__setattr__(self, "_sodium_secret", self.private_key.private_bytes_raw() + raw)

    @classmethod
    def generate(cls, created: datetime) -> SigningKey:
        """A fresh random key (from the operating system's CSPRNG)."""
        return cls(Ed25519PrivateKey.generate(), created)

    @classmethod
    def from_seed(
        cls, seed: bytes, created: datetime, retired: datetime | None = None
    ) -> SigningKey:
        """The key whose RFC 8032 private key (JWK `d`) is these 32 bytes."""
        if len(seed) != SEED_LENGTH:
            raise ValueError(f"an Ed25519 private key is {SEED_LENGTH} bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed), created, retired)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `data` (deterministic: the same bytes whichever
        library makes it; libsodium's is the faster here, bench/bench_signing.py)."""
        return crypto_sign(data, self._sodium_secret)[:SIGNATURE_LENGTH]

    def retire(self, at: datetime) -> SigningKey:
        """This key, retired as a signer at `at` (it stays published; see `Keyring.published`)."""
        return replace(self, retired=at)

    def is_published(self, now: datetime, max_token_lifetime: timedelta) -> bool:
        """Whether a token this key signed may still be valid at `now`."""
        return self.retired is None or _aware(now, "now") < self.retired + max_token_lifetime

    def public_jwk(self) -> dict[str, str]:
        """The public key as published in the JWKS (RFC 8037 OKP JWK)."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url_encode(self.public_bytes),
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON-able). Holds the PRIVATE key: keep it out of logs and APIs."""
        seed = self.private_key.private_bytes_raw()
        return {
            "kid": self.kid,
            "crv": "Ed25519",
            "private_key": b64url_encode(seed),
            "created": _timestamp_text(self.created),
            "retired": _timestamp_text(self.retired) if self.retired else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SigningKey:
        """Inverse of `to_dict`; ValueError if anything is off, including a `kid` that differs."""
        if data.get("crv") != "Ed25519":
            raise ValueError(f"unsupported curve {data.get('crv')!r}")
        encoded = data.get("private_key")
        if not isinstance(encoded, str):
            raise ValueError("private_key must be a base64url string")
        retired = data.get("retired")
        key = cls.from_seed(
            b64url_decode(encoded),
            _timestamp_from(data.get("created"), "created"),
            None if retired is None else _timestamp_from(retired, "retired"),
        )
        if data.get("kid") != key.kid:
            raise ValueError(f"stored kid {data.get('kid')!r} does not match the key ({key.kid})")
        return key


def _age_order(key: SigningKey) -> tuple[datetime, str]:
    return (key.created, key.kid)


@dataclass(frozen=True, slots=True, init=False)
class Keyring:
    """The service's keys, oldest first. The newest key not retired is the one that signs."""

    keys: tuple[SigningKey, ...] = ()

    def __init__(self, keys: Iterable[SigningKey] = ()) -> None:
        ordered = tuple(sorted(keys, key=_age_order))
        kids = [k.kid for k in ordered]
        if len(set(kids)) != len(kids):
            raise ValueError("a keyring cannot hold the same key twice")
        object.__setattr__(self, "keys", ordered)

    @classmethod
    def new(cls, now: datetime) -> Keyring:
        """A keyring with one freshly generated key."""
        return cls([SigningKey.generate(now)])

    @property
    def active(self) -> SigningKey:
        """The key that signs: the newest one not retired."""
        for key in reversed(self.keys):
            if key.retired is None:
                return key
        raise NoSigningKey("no signing key: run `regionlock keys rotate` to create one")

    def get(self, kid: str) -> SigningKey | None:
        """The key with this `kid`, retired or not, or None."""
        return next((k for k in self.keys if k.kid == kid), None)

    def rotate(self, now: datetime) -> Keyring:
        """The next keyring: a new key signs from `now`; the keys signing until now retire.

        This keyring is unchanged. Retired keys stay published (see `published`).
        """
        retired = [k if k.retired is not None else k.retire(now) for k in self.keys]
        return Keyring([*retired, SigningKey.generate(now)])

    def published(self, now: datetime, max_token_lifetime: timedelta) -> tuple[SigningKey, ...]:
        """Keys whose tokens may still be valid at `now`: signing key first, then newest first.

        A retired key stays until `retired + max_token_lifetime`, so `max_token_lifetime` must
        bound every token's `exp - iat` (the longest lease) plus any verification leeway.
        """
        live = [k for k in self.keys if k.is_published(now, max_token_lifetime)]
        # Stable sorts, last one primary: keys not retired, then newer, then by kid.
        live.sort(key=lambda k: k.kid)
        live.sort(key=lambda k: k.created, reverse=True)
        live.sort(key=lambda k: k.retired is not None)
        return tuple(live)

    def jwks(self, now: datetime, max_token_lifetime: timedelta) -> dict[str, list[dict[str, str]]]:
        """The JWK Set served at `/.well-known/jwks.json`."""
        return {"keys": [k.public_jwk() for k in self.published(now, max_token_lifetime)]}
