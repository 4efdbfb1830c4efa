"""The audit trail for operators."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from regionlock.api.deps import StateDep, TextQuery, Viewer
from regionlock.api.problems import AS_VIEWER

api = APIRouter(prefix="/v1/audit", tags=["audit"])


@api.get("", responses=AS_VIEWER)
def audit(
    state: StateDep,
    _: Viewer,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # a sequence number (BIGINT)
    subject: TextQuery = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    """Entries after sequence number `after`, oldest first; `subject` narrows them to one
    device (id or IMEI), policy (id@version) or key."""
    if subject is not None:
        found = state.stores.devices.get(subject)
        if found is not None:  # entries about a device name it by id
            subject = found.record.id
    entries = state.stores.audit.entries(after=after, subject=subject, limit=limit)
    return {"entries": [e.to_json() for e in entries]}
