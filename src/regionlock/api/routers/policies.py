"""Policies for operators: the active one, validation, impact on the registry, activation and
rollback (admin)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from regionlock.api.deps import Admin, Reason, StateDep, Text, Viewer, utf8
from regionlock.api.problems import (
    AS_OPERATOR,
    AS_VIEWER,
    PROBLEM_JSON,
    error_response,
    responses,
)
from regionlock.policies import PolicyError, parse_policy
from regionlock.services.policy_tools import simulate_registry
from regionlock.storage.policies import Activation, PolicyConflict

api = APIRouter(prefix="/v1/policies", tags=["policies"])

TOML_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/toml": {"schema": {"type": "string"}}},
    }
}


class Activate(Reason):
    policy: Text = Field(min_length=1, description="The policy document (TOML).")


def _active(a: Activation) -> dict[str, Any]:
    return {"active": {"id": a.policy.policy_id, "version": a.policy.version}}


@api.get("/active", responses=AS_VIEWER)
def active_policy(state: StateDep, _: Viewer) -> dict[str, Any]:
    """The policy check-ins use now, with who activated it and why."""
    found = state.policies.active()
    if found is None:
        return {"active": None}
    _policy, a = found
    return {
        "active": {
            "id": a.policy.policy_id,
            "version": a.policy.version,
            "sha256": a.policy.sha256,
            "activated_by": a.activated_by,
            "reason": a.reason,
            "document": a.policy.document,
        }
    }


@api.post("/activate", responses=AS_OPERATOR | responses(PolicyError, PolicyConflict))
def activate_policy(body: Activate, state: StateDep, who: Admin) -> dict[str, Any]:
    """Validate a TOML policy and make it active (admin). A bad policy is never stored."""
    a = state.policies.activate(
        body.policy, source="api", actor=who.actor, reason=body.reason, now=state.clock.now()
    )
    return _active(a)


@api.post("/rollback", responses=AS_OPERATOR | responses(PolicyError, PolicyConflict))
def rollback_policy(body: Reason, state: StateDep, who: Admin) -> dict[str, Any]:
    """Re-activate the policy that was active before the current one (admin)."""
    a = state.policies.rollback(actor=who.actor, reason=body.reason, now=state.clock.now())
    return _active(a)


@api.post("/validate", openapi_extra=TOML_BODY, responses=AS_VIEWER | responses(PolicyError))
async def validate_policy(request: Request, _: Viewer) -> JSONResponse:
    """Check a TOML policy; every problem is listed with its line (nothing is stored)."""
    text = utf8(await request.body(), "the policy")
    try:
        p = await run_in_threadpool(parse_policy, text, "request body")
    except PolicyError as exc:  # 422 invalid-policy, with `problems` (and `valid`: false)
        response = error_response(exc, request.url.path)
        document = json.loads(bytes(response.body))
        document["valid"] = False
        return JSONResponse(document, status_code=response.status_code, media_type=PROBLEM_JSON)
    return JSONResponse(
        {"valid": True, "id": p.id, "version": p.version, "restrictions": len(p.restrictions)}
    )


@api.post("/simulate", openapi_extra=TOML_BODY, responses=AS_VIEWER | responses(PolicyError))
async def simulate_policy(request: Request, state: StateDep, _: Viewer) -> dict[str, Any]:
    """How many registered devices per country and verdict would change if this policy
    replaced the active one (each device at its last known place)."""
    candidate = parse_policy(utf8(await request.body(), "the policy"), "request body")

    def simulate() -> dict[str, Any]:
        active = state.policies.active()
        return simulate_registry(
            state.stores.devices, candidate, active[0] if active else None, state.clock.now()
        ).to_json()

    return await run_in_threadpool(simulate)
