"""Operator API keys: shown once, stored hashed, listed and revoked.

A key reads `rlk_<id>_<secret>`: the id finds the row, the secret (32 random bytes, base32) is
checked against its SHA-256. A slow password hash buys nothing for 256-bit random secrets and
would cost every API request; a fast hash is the standard choice here. Comparison is constant
time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from regionlock.domain.errors import InvalidInput, NotFound
from regionlock.storage.db import Database, Transaction


class Role(StrEnum):
    """Viewers read; operators also lock, unlock and exempt devices; admins also manage
    policies and keys."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        order = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    role: Role
    created_at: int
    revoked_at: int | None

    @property
    def actor(self) -> str:
        """How the audit trail names what this key does: `apikey:<id> (<name>)`."""
        return f"apikey:{self.id} ({self.name})"


class UnknownApiKey(NotFound):
    """No API key has this id."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _row(r: tuple[Any, ...]) -> ApiKey:
    return ApiKey(
        str(r[0]), str(r[1]), Role(r[2]), int(r[3]), int(r[4]) if r[4] is not None else None
    )


class ApiKeyStore(Protocol):
    """Operator API keys: created with their token shown once, stored hashed."""

    def create(self, tx: Transaction, *, name: str, role: Role, at: int) -> tuple[ApiKey, str]:
        """A new key and its full token (never stored, never shown again)."""
        ...

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key a token belongs to; None when malformed, unknown, wrong or revoked."""
        ...

    def revoke(self, tx: Transaction, key_id: str, *, at: int) -> ApiKey:
        """Revoke a key (idempotent); UnknownApiKey when there is no such key."""
        ...

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not; None when there is none."""
        ...

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        ...


class SqlApiKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, tx: Transaction, *, name: str, role: Role, at: int) -> tuple[ApiKey, str]:
        """A new key; returns it and the full token, which is never stored or shown again."""
        if not name.strip():
            raise InvalidInput("an API key needs a name (who or what uses it)")
        key_id = secrets.token_hex(6)
        secret = base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()
        tx.execute(
            "INSERT INTO api_keys (id, name, role, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            (key_id, name.strip(), role.value, _digest(secret), at),
        )
        return ApiKey(key_id, name.strip(), role, at, None), f"rlk_{key_id}_{secret}"

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key a token belongs to, or None (malformed, unknown, wrong, revoked)."""
        if not token.isascii():  # a real token is ASCII; anything else is simply wrong
            return None
        parts = token.split("_")
        if len(parts) != 3 or parts[0] != "rlk" or not parts[1].isalnum():
            return None
        key_id, secret = parts[1], parts[2]
        with self.db.read() as tx:
            r = tx.one(
                "SELECT id, name, role, created_at, revoked_at, secret_hash FROM api_keys"
                " WHERE id = ?",
                (key_id,),
            )
        if r is None or r[4] is not None:
            return None
        if not hmac.compare_digest(str(r[5]), _digest(secret)):
            return None
        return _row(r[:5])

    def revoke(self, tx: Transaction, key_id: str, *, at: int) -> ApiKey:
        r = tx.one(
            "SELECT id, name, role, created_at, revoked_at FROM api_keys WHERE id = ?", (key_id,)
        )
        if r is None:
            raise UnknownApiKey(f"no API key with id {key_id!r}")
        if r[4] is None:
            tx.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (at, key_id))
        return _row((*r[:4], r[4] if r[4] is not None else at))

    def get(self, key_id: str) -> ApiKey | None:
        with self.db.read() as tx:
            r = tx.one(
                "SELECT id, name, role, created_at, revoked_at FROM api_keys WHERE id = ?",
                (key_id,),
            )
        return None if r is None else _row(r)

    def list(self) -> list[ApiKey]:
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT id, name, role, created_at, revoked_at FROM api_keys"
                " ORDER BY created_at, id"
            )
        return [_row(r) for r in rows]
