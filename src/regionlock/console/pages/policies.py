"""Policies, read only: the active one, what changed, the history."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from regionlock.console import web
from regionlock.services.policy_tools import diff_policies

router = APIRouter(prefix="/console", include_in_schema=False)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


@router.get("/policies")
def policies(request: Request) -> Response:
    """The active policy, what changed from the one before it, and the activation history."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    store = state.stores.policies
    active = store.active()
    diff = None
    if active is not None:
        with state.stores.db.read() as tx:
            before = store.previous(tx)
        if before is not None:
            admin = state.policies
            diff = diff_policies(admin.parse(before), admin.parse(active.policy))
    history = [
        {
            "when": _utc(a.activated_at),
            "policy": f"{a.policy.policy_id}@{a.policy.version}",
            "by": a.activated_by,
            "reason": a.reason,
        }
        for a in store.activations(limit=50)
    ]
    return web.page(
        "policies.html.j2",
        page="policies",
        key=key,
        csrf=web.codec(state).csrf(session),
        active=active,
        since=_utc(active.activated_at) if active else None,
        diff=diff,
        history=history,
    )
