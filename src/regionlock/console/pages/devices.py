"""Devices: search by IMEI, serial or id, lists by verdict and country, one device, and an
operator's lock, unlock, exemption and offline unlock code (each audited as the key)."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from regionlock.api.deps import State
from regionlock.api.problems import problem_type
from regionlock.console import web
from regionlock.domain.errors import InvalidInput, RegionlockError
from regionlock.storage.apikeys import ApiKey, Role
from regionlock.storage.devices import StoredDevice

router = APIRouter(prefix="/console", include_in_schema=False)


PAGE = 50


def _search(state: State, q: str) -> list[StoredDevice]:
    """The device with this id or IMEI, else those with this serial number."""
    found = state.stores.devices.get(q)
    if found is not None:
        return [found]
    ids = state.stores.devices.list(serial=q, limit=PAGE)
    return [d for d in (state.stores.devices.get(i) for i in ids) if d is not None]


@router.get("/devices")
def devices(request: Request) -> Response:
    """Search by IMEI, serial or device id (`q`), or list by verdict and country, paged by
    id."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    params = request.query_params
    q = params.get("q", "").strip()[:64]
    verdict = params.get("verdict", "")
    verdict = verdict if verdict in ("allow", "warn", "lock") else ""
    country = params.get("country", "").strip().upper()[:2]
    after = params.get("after", "")[:64]
    error = None
    rows = []
    next_url = None
    if q:
        rows = _search(state, q)
        if not rows:
            error = f"No device has the IMEI, serial or id {q!r}."
    else:
        ids = state.stores.devices.list(
            verdict=verdict or None, country=country or None, after=after, limit=PAGE
        )
        rows = [d for d in (state.stores.devices.get(i) for i in ids) if d is not None]
        if len(ids) == PAGE:
            next_url = "/console/devices?" + urlencode(
                {"verdict": verdict, "country": country, "after": ids[-1]}
            )
    return web.page(
        "devices.html.j2",
        page="devices",
        key=key,
        csrf=web.codec(state).csrf(session),
        q=q,
        verdict=verdict,
        country=country,
        rows=rows,
        next=next_url,
        error=error,
    )


def _device_page(
    request: Request,
    state: State,
    key: ApiKey,
    csrf: str,
    device_key: str,
    status: int = 200,
    **extra: Any,
) -> Response:
    found = state.stores.devices.get(device_key)
    values: dict[str, Any] = {"page": "devices", "key": key, "csrf": csrf}
    if found is None:
        return web.page(
            "devices.html.j2",
            status=404,
            q=device_key,
            verdict="",
            country="",
            rows=[],
            next=None,
            error=f"No device has the IMEI or id {device_key!r}.",
            **values,
        )
    return web.page(
        "device.html.j2",
        status=status,
        d=found,
        checkins=state.stores.checkins.recent(found.record.id, 50),
        appeals=state.stores.appeals.list(device_id=found.record.id, limit=20),
        can_act=key.role.allows(Role.OPERATOR),
        notice=web.notice(request),
        **({"error": None, "code": None} | extra),
        **values,
    )


@router.get("/devices/{device_key}")
def device(device_key: str, request: Request) -> Response:
    """One device: its registry data and state, its verdicts with their evidence, its appeals,
    and for operators the actions."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    return _device_page(request, state, key, web.codec(state).csrf(session), device_key[:64])


def _until(text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"until: {text[:20]!r} is not a date (YYYY-MM-DD)") from None


@router.post("/devices/{device_key}/{action}")
async def act_on_device(device_key: str, action: str, request: Request) -> Response:
    """Lock, unlock, exempt, or an unlock code (operator): the same registry calls as the
    API's, audited as the key; the device learns it at its next check-in."""
    acting = await web.acting(request, Role.OPERATOR, "acts on devices")
    if isinstance(acting, Response):
        return acting
    state, form, actor = acting.state, acting.form, acting.key.actor
    device_key = device_key[:64]
    registry = state.registry
    reason = form.get("reason", "")

    def act() -> tuple[str, str | None]:
        now = state.clock.now()
        if action == "lock":
            d = registry.lock(
                device_key,
                reason=reason,
                actor=actor,
                now=now,
                message=form.get("message") or None,
                contact=form.get("contact") or None,
            )
            return d.record.id, None
        if action == "unlock":
            return registry.unlock(device_key, reason=reason, actor=actor, now=now).record.id, None
        if action == "exempt":
            until = _until(form.get("until", ""))
            d = registry.exempt(device_key, reason=reason, actor=actor, now=now, until=until)
            return d.record.id, None
        if action == "unlock-code":
            return registry.unlock_code(
                device_key, form.get("challenge", ""), reason=reason, actor=actor, now=now
            )
        raise InvalidInput(f"no action {action[:20]!r} on a device")

    try:
        device_id, code = await run_in_threadpool(act)
    except RegionlockError as exc:
        return _device_page(
            request,
            state,
            acting.key,
            acting.csrf,
            device_key,
            problem_type(exc).status,
            error=f"Not done: {exc.message}",
        )
    if code is not None:  # shown once, never put in a URL
        return _device_page(request, state, acting.key, acting.csrf, device_id, code=code)
    done = {"lock": "locked", "unlock": "unlocked", "exempt": "exempted"}[action]
    return web.done(f"/console/devices/{quote(device_id)}", done)
