"""Keys for admins: operator API keys and the service's verdict-signing keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from regionlock.api.deps import WORDS_PATTERN, Admin, KeyPath, Reason, StateDep, Text
from regionlock.api.problems import AS_OPERATOR, responses
from regionlock.storage.apikeys import Role, UnknownApiKey

api = APIRouter(tags=["admin"])


class NewKey(BaseModel):
    name: Text = Field(min_length=1, max_length=200, json_schema_extra={"pattern": WORDS_PATTERN})
    role: Role


@api.get("/v1/apikeys", responses=AS_OPERATOR)
def list_apikeys(state: StateDep, _: Admin) -> dict[str, Any]:
    """Every API key, revoked ones included (never their secrets)."""
    return {
        "keys": [
            {
                "id": k.id,
                "name": k.name,
                "role": k.role.value,
                "created_at": k.created_at,
                "revoked_at": k.revoked_at,
            }
            for k in state.stores.apikeys.list()
        ]
    }


@api.post("/v1/apikeys", status_code=201, responses=AS_OPERATOR)
def create_apikey(body: NewKey, state: StateDep, who: Admin) -> dict[str, Any]:
    """Create an API key; the token is in this response only and never stored."""
    key, token = state.access.create_apikey(
        name=body.name, role=body.role, actor=who.actor, now=state.clock.now()
    )
    return {"id": key.id, "role": key.role.value, "token": token}


@api.post("/v1/apikeys/{key_id}/revoke", responses=AS_OPERATOR | responses(UnknownApiKey))
def revoke_apikey(key_id: KeyPath, body: Reason, state: StateDep, who: Admin) -> dict[str, Any]:
    """Revoke a key at once."""
    state.access.revoke_apikey(key_id, reason=body.reason, actor=who.actor, now=state.clock.now())
    return {"id": key_id, "revoked": True}


@api.post("/v1/keys/rotate", responses=AS_OPERATOR)
def rotate_signing_key(body: Reason, state: StateDep, who: Admin) -> dict[str, Any]:
    """Add a verdict-signing key: it signs every verdict from now on, in every service
    process; the old one stays in the JWKS until its tokens expire."""
    new = state.access.rotate_signing_key(
        reason=body.reason, actor=who.actor, now=state.clock.now()
    )
    return {"kid": new.kid}
