"""API keys conformance: shown once, stored hashed, revocable; roles ordered."""

from __future__ import annotations

from regionlock.storage import Database
from regionlock.storage.apikeys import Role, SqlApiKeyStore


def test_create_authenticate_revoke(db: Database) -> None:
    store = SqlApiKeyStore(db)
    with db.write() as tx:
        key, token = store.create(tx, name="ops team", role=Role.OPERATOR, at=1)
    assert token.startswith(f"rlk_{key.id}_")
    with db.read() as tx:
        stored = tx.one("SELECT secret_hash FROM api_keys WHERE id = ?", (key.id,))
    assert stored is not None and token.split("_")[2] not in str(stored[0])
    assert store.authenticate(token) == key
    assert store.authenticate(token[:-1] + ("a" if token[-1] != "a" else "b")) is None
    assert store.authenticate("rlk_nope_nope") is None
    assert store.authenticate("Bearer x") is None
    assert store.get(key.id) == key and store.get("nothere") is None
    with db.write() as tx:
        revoked = store.revoke(tx, key.id, at=5)
    assert revoked.revoked_at == 5
    assert store.authenticate(token) is None
    assert [k.revoked_at for k in store.list()] == [5]
    assert store.get(key.id) == revoked  # a revoked key is still found, marked revoked


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR) and not Role.OPERATOR.allows(Role.ADMIN)
