"""The device registry for operators: list, show, import, and lock / unlock / exempt / unlock
codes (each audited with the key that acted); export and erasure of a device's data (admin)."""

from __future__ import annotations

import io
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from regionlock.api.deps import (
    TEXT_PATTERN,
    Admin,
    KeyPath,
    Operator,
    Reason,
    StateDep,
    Text,
    TextQuery,
    Viewer,
    utf8,
)
from regionlock.api.problems import AS_OPERATOR, AS_VIEWER, responses
from regionlock.services.privacy import DeviceErased
from regionlock.services.registry import UnknownDevice, device_json
from regionlock.storage.devices import StaleState

api = APIRouter(prefix="/v1/devices", tags=["devices"])
CHANGES_A_DEVICE = AS_OPERATOR | responses(UnknownDevice, StaleState)

EFFECTIVE = "at the device's next check-in"


class LockBody(Reason):
    message: Text | None = Field(
        default=None, max_length=500, description="What the device shows its owner."
    )
    contact: Text | None = Field(
        default=None, max_length=200, description="Whom the owner should contact."
    )


class ExemptBody(Reason):
    until: date | None = Field(default=None, description="Exclusive end date; none: for good.")


class UnlockCodeBody(Reason):
    challenge: Text = Field(
        min_length=8,
        max_length=12,
        examples=["1234-5678"],
        json_schema_extra={"pattern": "^[0-9]{4}-?[0-9]{4}$"},
    )


@api.get("", responses=AS_VIEWER)
def list_devices(
    state: StateDep,
    _: Viewer,
    model: TextQuery = None,
    batch: TextQuery = None,
    distributor: TextQuery = None,
    country: TextQuery = None,
    verdict: TextQuery = None,
    after: Annotated[str, Query(max_length=64, json_schema_extra={"pattern": TEXT_PATTERN})] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Device ids matching every filter, in id order; `next` pages on."""
    ids = state.stores.devices.list(
        model=model,
        batch=batch,
        distributor=distributor,
        country=country,
        verdict=verdict,
        after=after,
        limit=limit,
    )
    return {"devices": ids, "next": ids[-1] if len(ids) == limit else None}


@api.post(
    "/import",
    responses=AS_OPERATOR,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {
                        "type": "string",
                        "description": "A header row naming the columns, then one device a row"
                        " (`regionlock devices import --help`); columns may come in any order.",
                        # The documented order, so that generated examples have a usable header.
                        "pattern": "^imei,serial,model,sales_region,distributor,batch,public_key"
                        "\\r?\\n",
                    }
                }
            },
        }
    },
)
async def import_devices(request: Request, state: StateDep, who: Operator) -> dict[str, Any]:
    """Register devices from CSV (operator); idempotent; bad rows reported by line. At most
    32 MiB (docs/operator-api.md); larger files: `regionlock devices import`."""
    text = utf8(await request.body(), "the CSV file", whole=False)  # a bad row is that row's
    report = await run_in_threadpool(
        state.registry.import_csv,
        io.StringIO(text, newline=""),  # lines as csv and the CLI split them (not at \x0c, ...)
        actor=who.actor,
        source="api",
        now=state.clock.now(),
    )
    return {
        "imported": report.imported,
        "unchanged": report.unchanged,
        "repeated_rows": report.duplicates_in_file,
        "problems": [{"line": p.line, "message": p.message} for p in report.problems],
    }


@api.get("/{key}", responses=AS_VIEWER | responses(UnknownDevice))
def get_device(key: KeyPath, state: StateDep, _: Viewer) -> dict[str, Any]:
    """A device's record and state, by id or IMEI."""
    found = state.stores.devices.get(key)
    if found is None:
        raise UnknownDevice(f"no device with id or IMEI {key!r}")
    return device_json(found)


@api.get("/{key}/checkins", responses=AS_VIEWER | responses(UnknownDevice))
def device_checkins(
    key: KeyPath, state: StateDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """A device's recorded check-ins, newest first (place summaries, never raw signals)."""
    found = state.stores.devices.get(key)
    if found is None:
        raise UnknownDevice(f"no device with id or IMEI {key!r}")
    return {
        "device": found.record.id,
        "checkins": state.stores.checkins.recent(found.record.id, limit),
    }


def _acted(device_id: str, action: str) -> dict[str, Any]:
    return {"device": device_id, "action": action, "effective": EFFECTIVE}


@api.post("/{key}/lock", responses=CHANGES_A_DEVICE)
def device_lock(key: KeyPath, body: LockBody, state: StateDep, who: Operator) -> dict[str, Any]:
    """Lock at the next check-in, with the owner's message and contact (operator)."""
    d = state.registry.lock(
        key,
        reason=body.reason,
        actor=who.actor,
        now=state.clock.now(),
        message=body.message,
        contact=body.contact,
    )
    return _acted(d.record.id, "lock")


@api.post("/{key}/unlock", responses=CHANGES_A_DEVICE)
def device_unlock(key: KeyPath, body: Reason, state: StateDep, who: Operator) -> dict[str, Any]:
    """Lift a manual lock; the policy decides again at the next check-in (operator)."""
    d = state.registry.unlock(key, reason=body.reason, actor=who.actor, now=state.clock.now())
    return _acted(d.record.id, "unlock")


@api.post("/{key}/exempt", responses=CHANGES_A_DEVICE)
def device_exempt(key: KeyPath, body: ExemptBody, state: StateDep, who: Operator) -> dict[str, Any]:
    """Exempt from every lock until `until` (operator)."""
    d = state.registry.exempt(
        key, reason=body.reason, actor=who.actor, now=state.clock.now(), until=body.until
    )
    return _acted(d.record.id, "exempt")


@api.post("/{key}/unlock-code", responses=AS_OPERATOR | responses(UnknownDevice))
def device_unlock_code(
    key: KeyPath, body: UnlockCodeBody, state: StateDep, who: Operator
) -> dict[str, Any]:
    """The offline unlock code for the challenge a locked device shows (operator).

    The code lifts the lock on that device, for that challenge, once; the next verdict
    decides again (add an exemption to keep it unlocked)."""
    device, code = state.registry.unlock_code(
        key, body.challenge, reason=body.reason, actor=who.actor, now=state.clock.now()
    )
    return {"device": device, "challenge": body.challenge, "code": code}


@api.get("/{key}/export", responses=AS_OPERATOR | responses(UnknownDevice, DeviceErased))
def device_export(key: KeyPath, state: StateDep, _: Admin) -> dict[str, Any]:
    """Everything held about a device (GDPR articles 15 and 20), as `regionlock device export`
    writes it (admin; docs/privacy.md)."""
    return state.privacy.export(key, now=state.clock.now())


@api.post("/{key}/erase", responses=AS_OPERATOR | responses(UnknownDevice, DeviceErased))
def device_erase(key: KeyPath, body: Reason, state: StateDep, who: Admin) -> dict[str, Any]:
    """Erase a device: identifiers and history removed, audit entries naming it redacted, the
    store scrubbed; answers the signed erasure receipt (admin; docs/privacy.md). The reason
    stays in the audit trail: it must not name the device or its owner."""
    done = state.privacy.erase(key, reason=body.reason, actor=who.actor, now=state.clock.now())
    return {**done.claims, "kid": done.kid, "token": done.token}
