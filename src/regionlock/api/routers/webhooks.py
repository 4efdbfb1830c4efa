"""Webhook endpoints for admins (docs/webhooks.md): register one (its secret is in that answer
only), list, remove, rotate its secret, send it a test, read its deliveries, redeliver one.
Every change is audited with the key's name."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from regionlock.api.deps import WORDS_PATTERN, Admin, KeyPath, StateDep, Text
from regionlock.api.problems import AS_OPERATOR, responses
from regionlock.domain.errors import InvalidInput
from regionlock.domain.webhooks import EVENT_TYPES, NAME_MAX, URL_MAX, Endpoint
from regionlock.services.webhooks import UnknownDelivery, UnknownEndpoint

api = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
PREFIX = "/v1/webhooks"
ONE = AS_OPERATOR | responses(UnknownEndpoint)


class NewEndpoint(BaseModel):
    """What `POST /v1/webhooks` takes."""

    url: Text = Field(
        min_length=1,
        max_length=URL_MAX,
        description="Where to send events: https:// (or http://), no user name or password.",
        json_schema_extra={"pattern": "^\\s*[Hh][Tt][Tt][Pp][Ss]?://[^\\s/@?#\\u0000]+"},
    )
    events: list[Literal[EVENT_TYPES] | Literal["*"]] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=len(EVENT_TYPES) + 1, description="Event types, or `*`."
    )
    name: Text | None = Field(
        default=None,
        min_length=1,
        max_length=NAME_MAX,
        json_schema_extra={"pattern": WORDS_PATTERN},
    )


def _with_secret(endpoint: Endpoint, secret: str) -> dict[str, Any]:
    return endpoint.to_json() | {"secret": secret}


@api.post("", status_code=201, responses=AS_OPERATOR | responses(InvalidInput))
def add(body: NewEndpoint, response: Response, state: StateDep, who: Admin) -> dict[str, Any]:
    """Register an endpoint: `201` with it and its `secret` (`whsec_...`), shown this once."""
    endpoint, secret = state.webhooks.add(body.url, body.events, name=body.name, actor=who.actor)
    response.headers["Location"] = f"{PREFIX}/{endpoint.id}"
    return _with_secret(endpoint, secret)


@api.get("", responses=AS_OPERATOR)
def list_endpoints(state: StateDep, _: Admin) -> dict[str, Any]:
    """Every endpoint, oldest first (never their secrets)."""
    return {"webhooks": [e.to_json() for e in state.webhooks.endpoints()]}


@api.get("/{endpoint_id}", responses=ONE)
def get(endpoint_id: KeyPath, state: StateDep, _: Admin) -> dict[str, Any]:
    return state.webhooks.get(endpoint_id).to_json()


@api.delete("/{endpoint_id}", status_code=204, responses=ONE)
def remove(endpoint_id: KeyPath, state: StateDep, who: Admin) -> Response:
    """Remove an endpoint; what was still pending for it is dropped."""
    state.webhooks.remove(endpoint_id, actor=who.actor)
    return Response(status_code=204)


@api.post("/{endpoint_id}/rotate-secret", responses=ONE)
def rotate_secret(endpoint_id: KeyPath, state: StateDep, who: Admin) -> dict[str, Any]:
    """A new secret, in this answer only; the old one also signs for 24 hours."""
    endpoint, secret = state.webhooks.rotate_secret(endpoint_id, actor=who.actor)
    return _with_secret(endpoint, secret)


@api.post("/{endpoint_id}/enable", responses=ONE)
def enable(endpoint_id: KeyPath, state: StateDep, who: Admin) -> dict[str, Any]:
    """Enable an endpoint that was disabled (410 Gone, or failing too long)."""
    return state.webhooks.enable(endpoint_id, actor=who.actor).to_json()


@api.post("/{endpoint_id}/test", responses=ONE)
def test(endpoint_id: KeyPath, state: StateDep, _: Admin) -> dict[str, Any]:
    """Send a signed `webhook.test` event now; what the receiver answered."""
    attempt = state.webhooks.test(endpoint_id, state.webhook_sender)
    return {"delivered": attempt.delivered, "status": attempt.status, "error": attempt.error}


@api.get("/{endpoint_id}/deliveries", responses=ONE | responses(InvalidInput))
def deliveries(
    endpoint_id: KeyPath,
    state: StateDep,
    _: Admin,
    status: Literal["pending", "delivered", "failed", "dropped"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The endpoint's deliveries, the newest first."""
    found = state.webhooks.deliveries(endpoint_id, status=status, limit=limit)
    return {"deliveries": [d.to_json() for d in found]}


@api.post(
    "/deliveries/{delivery_id}/redeliver",
    responses=AS_OPERATOR | responses(UnknownDelivery, InvalidInput),
)
def redeliver(delivery_id: KeyPath, state: StateDep, who: Admin) -> dict[str, Any]:
    """Send a delivery again, now, whatever came of it before."""
    again = state.webhooks.redeliver(delivery_id, actor=who.actor)
    state.webhook_dispatcher.wake()
    return again.to_json()
