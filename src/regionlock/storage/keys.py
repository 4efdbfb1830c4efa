"""The service's keys: verdict-signing keys and the offline-unlock key (private halves live
only in the store).

The keyring is created on first use. `rotate` adds a key and retires the previous one as a
signer; retired keys stay published in the JWKS until every token they signed has expired.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from regionlock.signing import Keyring, NoSigningKey, SigningKey
from regionlock.storage.db import Database, Pending, Transaction, epoch_ms, from_epoch_ms


def _has_signer(ring: Keyring) -> bool:
    try:
        ring.active  # noqa: B018 - raises NoSigningKey when every key is retired
    except NoSigningKey:
        return False
    return True


class KeyStore(Protocol):
    """The service's keys: verdict-signing keys and the offline-unlock key."""

    def keyring(self, now: datetime) -> Keyring:
        """The signing keys, a first one created if there is none."""
        ...

    def generation(self, tx: Transaction) -> tuple[int, int]:
        """A value that changes whenever the keyring does (a rotation, a deleted key), so a
        cached keyring can be checked inside a transaction for the price of one small query."""
        ...

    def generation_later(self, tx: Transaction) -> Pending[tuple[int, int]]:
        """`generation`, sent without waiting in a pipelined transaction."""
        ...

    def rotate(self, tx: Transaction, now: datetime) -> SigningKey:
        """Add a signing key and retire the current one; returns the new key."""
        ...

    def unlock_key(self, now: datetime) -> X25519PrivateKey:
        """The X25519 offline-unlock key, created on first use."""
        ...


class SqlKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _read(self, tx: Transaction) -> Keyring:
        rows = tx.all("SELECT private, created_at, retired_at FROM signing_keys")
        return Keyring(
            SigningKey.from_seed(
                bytes(r[0]), from_epoch_ms(int(r[1])) or datetime.now(UTC), from_epoch_ms(r[2])
            )
            for r in rows
        )

    def _write_new(self, tx: Transaction, key: SigningKey) -> None:
        tx.execute(
            "INSERT INTO signing_keys (kid, private, created_at) VALUES (?, ?, ?)",
            (key.kid, key.private_key.private_bytes_raw(), epoch_ms(key.created)),
        )

    def keyring(self, now: datetime) -> Keyring:
        """The keyring, with a first key created if there is none."""
        with self.db.read() as tx:
            ring = self._read(tx)
        if _has_signer(ring):
            return ring
        with self.db.write() as tx:
            ring = self._read(tx)
            if not _has_signer(ring):
                self._write_new(tx, SigningKey.generate(now))
                ring = self._read(tx)
        return ring

    def generation(self, tx: Transaction) -> tuple[int, int]:
        return self.generation_later(tx).get()

    def generation_later(self, tx: Transaction) -> Pending[tuple[int, int]]:
        # Keys are added (rotation) or deleted (a compromise); retirement comes only with an
        # addition. Count and the sum of creation times together change on each of these, a
        # rotation followed by a deletion included.
        sent = tx.send("SELECT COUNT(*), COALESCE(SUM(created_at), 0) FROM signing_keys")

        def get() -> tuple[int, int]:
            row = sent.one()
            return (int(row[0]), int(row[1])) if row else (0, 0)

        return Pending(get)

    def rotate(self, tx: Transaction, now: datetime) -> SigningKey:
        """Add a new signing key and retire the current one; returns the new key."""
        new = SigningKey.generate(now)
        tx.execute(
            "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL", (epoch_ms(now),)
        )
        self._write_new(tx, new)
        return new

    def unlock_key(self, now: datetime) -> X25519PrivateKey:
        """The service's X25519 offline-unlock key, created on first use (signing/unlock.py)."""
        with self.db.read() as tx:
            row = tx.one("SELECT private FROM unlock_key WHERE one = 1")
        if row is None:
            with self.db.write() as tx:
                row = tx.one("SELECT private FROM unlock_key WHERE one = 1")
                if row is None:
                    fresh = X25519PrivateKey.generate().private_bytes_raw()
                    tx.execute(
                        "INSERT INTO unlock_key (one, private, created_at) VALUES (1, ?, ?)",
                        (fresh, epoch_ms(now)),
                    )
                    row = (fresh,)
        return X25519PrivateKey.from_private_bytes(bytes(row[0]))
