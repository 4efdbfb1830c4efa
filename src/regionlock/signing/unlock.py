"""Offline unlock codes: a locked device shows a challenge, support reads back an unlock code.

The construction (docs/protocol.md, "Offline unlock"):

- The service holds one X25519 *unlock key*; its public half is provisioned on devices with
  the JWKS. A device needs no further secret: its Diffie-Hellman key is its own Ed25519 key,
  converted to X25519 exactly as libsodium's `crypto_sign_ed25519_sk_to_curve25519` and
  `..._pk_to_curve25519` do. The service converts the device's *registered public key*. Both
  sides so reach the same shared secret, and nobody else can: it needs the device's private
  key or the service's unlock key. (Using one Ed25519 key pair for signing and for X25519 was
  analysed by Thormarker, "On using the same key pair for Ed25519 and an X25519 based KEM",
  IACR ePrint 2021/509, and found safe.)
- unlock secret = HKDF-SHA256(shared, info = purpose || device public key), 32 bytes.
- The challenge is 8 random decimal digits that the device draws when it shows its lock
  screen, shown as `1234-5678`.
- The unlock code is HMAC-SHA256(unlock secret, purpose || challenge), its first 64 bits
  reduced modulo 10^10: 10 digits, shown as `12345-67890`, short enough to read over the phone.
  (The modulo bias is below 10^-9.)
- The device accepts a code only for the challenge on its screen, at most once, and allows
  `MAX_ATTEMPTS` wrong codes per challenge before drawing a new one after a growing delay (up
  to a day). A guesser therefore wins with probability 5 x 10^-10 per challenge, and needs on
  average 2 x 10^9 challenges: hopeless.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from regionlock.domain.errors import InvalidInput

CHALLENGE_DIGITS = 8
CODE_DIGITS = 10
MAX_ATTEMPTS = 5  # wrong codes per challenge, on the device
_SECRET_INFO = b"regionlock offline unlock v1 secret|"
_CODE_PURPOSE = b"regionlock offline unlock v1 code|"
_P = 2**255 - 19  # the field of Curve25519 and edwards25519
# ASCII digits only: `\d` also takes Arabic-Indic and other digits, which `encode("ascii")`
# then refuses (a 500 after the code was audited as issued).
_CHALLENGE = re.compile(r"[0-9]{4}-?[0-9]{4}")
_CODE = re.compile(r"[0-9]{5}-?[0-9]{5}")


def ed25519_public_to_x25519(public_key: bytes) -> bytes:
    """The Montgomery u-coordinate of an Ed25519 public key: u = (1 + y) / (1 - y) mod p."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    y = int.from_bytes(public_key, "little") & ((1 << 255) - 1)  # drop the sign bit of x
    if y >= _P or y == 1:
        raise ValueError("not a usable Ed25519 public key")
    u = (1 + y) * pow(1 - y, -1, _P) % _P
    return u.to_bytes(32, "little")


def ed25519_seed_to_x25519(seed: bytes) -> X25519PrivateKey:
    """The X25519 private key of an Ed25519 seed: the first half of SHA-512(seed), as Ed25519
    itself uses it (X25519 applies the clamping)."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    return X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])


def _secret(shared: bytes, device_public_key: bytes) -> bytes:
    if shared == bytes(32):
        # A low-order point gives an all-zero secret that anyone could compute.
        raise ValueError("the device key gives no usable shared secret")
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_SECRET_INFO + device_public_key
    ).derive(shared)


def service_secret(unlock_key: X25519PrivateKey, device_public_key: bytes) -> bytes:
    """The unlock secret as the service derives it from the device's registered key."""
    device_x = X25519PublicKey.from_public_bytes(ed25519_public_to_x25519(device_public_key))
    return _secret(unlock_key.exchange(device_x), device_public_key)


def device_secret(seed: bytes, device_public_key: bytes, unlock_public_key: bytes) -> bytes:
    """The unlock secret as the device derives it from its own key and the provisioned one."""
    shared = ed25519_seed_to_x25519(seed).exchange(
        X25519PublicKey.from_public_bytes(unlock_public_key)
    )
    return _secret(shared, device_public_key)


def normalize_challenge(text: str) -> str:
    """The 8 digits of a challenge as typed (`1234-5678` or `12345678`); InvalidInput else."""
    cleaned = text.strip().replace(" ", "")
    if not _CHALLENGE.fullmatch(cleaned):
        raise InvalidInput(f"a challenge is {CHALLENGE_DIGITS} digits, like 1234-5678")
    return cleaned.replace("-", "")


def normalize_code(text: str) -> str:
    """The 10 digits of an unlock code as typed (`12345-67890` or `1234567890`)."""
    cleaned = text.strip().replace(" ", "")
    if not _CODE.fullmatch(cleaned):
        raise InvalidInput(f"an unlock code is {CODE_DIGITS} digits, like 12345-67890")
    return cleaned.replace("-", "")


def new_challenge() -> str:
    """A fresh challenge for the lock screen, from the operating system's CSPRNG."""
    return f"{secrets.randbelow(10**CHALLENGE_DIGITS):0{CHALLENGE_DIGITS}d}"


def format_challenge(challenge: str) -> str:
    return f"{challenge[:4]}-{challenge[4:]}"


def unlock_code(secret: bytes, challenge: str) -> str:
    """The 10-digit unlock code for `challenge`, formatted `12345-67890`."""
    digits = normalize_challenge(challenge)
    mac = hmac.digest(secret, _CODE_PURPOSE + digits.encode("ascii"), "sha256")
    n = int.from_bytes(mac[:8], "big") % 10**CODE_DIGITS
    text = f"{n:0{CODE_DIGITS}d}"
    return f"{text[:5]}-{text[5:]}"


def code_matches(secret: bytes, challenge: str, code: str) -> bool:
    """Whether `code` unlocks `challenge` (compared in constant time)."""
    try:
        given = normalize_code(code)
    except InvalidInput:
        return False
    expected = unlock_code(secret, challenge).replace("-", "")
    return hmac.compare_digest(given, expected)
