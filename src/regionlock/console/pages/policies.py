"""Policies: the active one, what changed, the history, a diff between any two versions; a
new document checked (every problem with its line), compared with the active one and its
impact simulated on the registry, before an admin activates it; and the rollback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from regionlock.api.deps import State
from regionlock.api.problems import problem_type
from regionlock.console import web
from regionlock.domain.errors import RegionlockError
from regionlock.policies import example_names, example_policy_text, parse_policy
from regionlock.policies.document import PolicyError
from regionlock.services.policy_tools import diff_policies, simulate_registry
from regionlock.storage.apikeys import ApiKey, Role
from regionlock.storage.policies import StoredPolicy

router = APIRouter(prefix="/console", include_in_schema=False)


def _name(p: StoredPolicy) -> str:
    return f"{p.policy_id}@{p.version}"


def _page(
    state: State,
    key: ApiKey,
    csrf: str,
    status: int = 200,
    *,
    notice: str | None = None,
    pair: tuple[str, str] | None = None,
    **extra: Any,
) -> Response:
    store = state.stores.policies
    active = store.active()
    admin = state.policies
    diff = None
    if active is not None:
        with state.stores.db.read() as tx:
            before = store.previous(tx)
        if before is not None:
            diff = diff_policies(admin.parse(before), admin.parse(active.policy))
    versions = {_name(v): v for v in store.versions()}
    compared = None
    if pair is not None:
        old, new = versions.get(pair[0]), versions.get(pair[1])
        if old is None or new is None:
            extra.setdefault("error", "Pick two stored versions to compare.")
        else:
            compared = diff_policies(admin.parse(old), admin.parse(new))
    history = [
        {
            "when": a.activated_at,
            "policy": _name(a.policy),
            "by": a.activated_by,
            "reason": a.reason,
        }
        for a in store.activations(limit=50)
    ]
    values: dict[str, Any] = {
        "error": None,
        "document": "",
        "checked": None,
        "problems": None,
        "against": None,
        "impact": None,
    } | extra
    return web.page(
        "policies.html.j2",
        status=status,
        page="policies",
        key=key,
        csrf=csrf,
        notice=notice,
        active=active,
        diff=diff,
        history=history,
        versions=list(versions),
        pair=pair or ("", ""),
        compared=compared,
        examples=example_names(),
        can_activate=key.role.allows(Role.ADMIN),
        can_rollback=key.role.allows(Role.ADMIN) and len(history) > 1,
        **values,
    )


@router.get("/policies")
def policies(request: Request) -> Response:
    """The active policy, what changed, the history; `?from=&to=` compares two stored
    versions; `?example=NAME` starts a new document from a shipped example."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    params = request.query_params
    pair = (
        (params["from"][:200], params["to"][:200]) if "from" in params and "to" in params else None
    )
    document = ""
    example = params.get("example", "")
    if example in example_names():  # only a shipped name is read
        document = example_policy_text(example)
    return _page(
        state,
        key,
        web.codec(state).csrf(session),
        notice=web.notice(request),
        pair=pair,
        document=document,
    )


@router.post("/policies/check")
async def check(request: Request) -> Response:
    """Check a document, compare it with the active policy and simulate its impact on the
    registry (each device at its last known place); nothing is stored (viewer)."""
    acting = await web.acting(request, Role.VIEWER, "checks policies")
    if isinstance(acting, Response):
        return acting
    state, document = acting.state, acting.form.get("policy", "")

    def run() -> dict[str, Any]:
        try:
            candidate = parse_policy(document, "the document")
        except PolicyError as exc:
            return {"problems": [str(p) for p in exc.problems]}
        active = state.policies.active()
        baseline = active[0] if active else None
        impact = simulate_registry(state.stores.devices, candidate, baseline, state.clock.now())
        return {
            "checked": f"{candidate.id}@{candidate.version}",
            "against": diff_policies(baseline, candidate) if baseline else None,
            "impact": impact.to_json(),
        }

    try:
        found = await run_in_threadpool(run)
    except RegionlockError as exc:  # not TOML at all, too deep, ...
        return _page(
            state,
            acting.key,
            acting.csrf,
            problem_type(exc).status,
            error=exc.message,
            document=document,
        )
    status = 422 if found.get("problems") else 200
    return _page(state, acting.key, acting.csrf, status, document=document, **found)


async def _admin_step(
    request: Request,
    what: str,
    step: Callable[[web.Acting, str], object],
    *,
    done: str,
    failed: str,
) -> Response:
    """An admin's step on the policies (with a reason), then the page; its refusal on the
    page with the document kept."""
    acting = await web.acting(request, Role.ADMIN, what)
    if isinstance(acting, Response):
        return acting
    state, document = acting.state, acting.form.get("policy", "")
    try:
        reason = web.reason(acting.form)
        await run_in_threadpool(step, acting, reason)
    except RegionlockError as exc:
        return _page(
            state,
            acting.key,
            acting.csrf,
            problem_type(exc).status,
            error=f"{failed}: {exc.message}",
            document=document,
        )
    return web.done("/console/policies", done)


@router.post("/policies/activate")
async def activate(request: Request) -> Response:
    """Activate a checked document (admin); audited as the key. A bad one is never stored."""

    def step(acting: web.Acting, reason: str) -> object:
        state = acting.state
        return state.policies.activate(
            acting.form.get("policy", ""),
            source="console",
            actor=acting.key.actor,
            reason=reason,
            now=state.clock.now(),
        )

    return await _admin_step(
        request, "activates policies", step, done="activated", failed="Not activated"
    )


@router.post("/policies/rollback")
async def rollback(request: Request) -> Response:
    """Re-activate the policy active before the current one (admin)."""

    def step(acting: web.Acting, reason: str) -> object:
        state = acting.state
        return state.policies.rollback(actor=acting.key.actor, reason=reason, now=state.clock.now())

    return await _admin_step(
        request, "rolls policies back", step, done="rolledback", failed="Not rolled back"
    )
