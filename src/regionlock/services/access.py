"""Who may act: operator API keys and the service's signing keys, each change audited.

One implementation for the CLI and the admin API, so both record the same audit entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from regionlock.signing import SigningKey
from regionlock.storage import ApiKeyStore, AuditStore, KeyStore, Stores, Transactions
from regionlock.storage.apikeys import ApiKey, Role
from regionlock.storage.db import epoch_ms


@dataclass(frozen=True)
class Access:
    """API keys and signing keys, each change audited in its own transaction."""

    db: Transactions
    apikeys: ApiKeyStore
    keys: KeyStore
    audit: AuditStore

    @classmethod
    def of(cls, stores: Stores) -> Access:
        return cls(stores.db, stores.apikeys, stores.keys, stores.audit)

    def create_apikey(
        self, *, name: str, role: Role, actor: str, now: datetime
    ) -> tuple[ApiKey, str]:
        """A new key and its token (shown once; only its hash is stored)."""
        at = epoch_ms(now)
        with self.db.write() as tx:
            key, token = self.apikeys.create(tx, name=name, role=role, at=at)
            self.audit.append(
                tx,
                at=at,
                actor=actor,
                action="apikey.create",
                subject=f"apikey:{key.id}",
                reason=name,
                details={"role": role.value},
            )
        return key, token

    def revoke_apikey(self, key_id: str, *, reason: str, actor: str, now: datetime) -> ApiKey:
        at = epoch_ms(now)
        with self.db.write() as tx:
            key = self.apikeys.revoke(tx, key_id, at=at)
            self.audit.append(
                tx,
                at=at,
                actor=actor,
                action="apikey.revoke",
                subject=f"apikey:{key_id}",
                reason=reason,
                details={},
            )
        return key

    def rotate_signing_key(self, *, reason: str, actor: str, now: datetime) -> SigningKey:
        """Add a signing key; the old one stays published until its tokens expire."""
        self.keys.keyring(now)  # make sure there is a key to retire
        with self.db.write() as tx:
            new = self.keys.rotate(tx, now)
            self.audit.append(
                tx,
                at=epoch_ms(now),
                actor=actor,
                action="keys.rotate",
                subject=f"key:{new.kid}",
                reason=reason,
                details={},
            )
        return new
