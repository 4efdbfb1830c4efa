"""The audit trail: the latest entries with filters, the chain's verification with a signed
head to keep elsewhere, and the export (docs/audit.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from regionlock.console import web

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE = 100
# The actions the filter suggests (docs/audit.md says what each records); any other is typed.
ACTIONS = (
    *("checkin.verdict", "devices.import"),
    *(f"device.{a}" for a in ("lock", "unlock", "exempt", "unlock_code", "erase")),
    *(f"policy.{a}" for a in ("upload", "activate", "rollback")),
    *(f"campaign.{a}" for a in ("create", "approve", "start", "advance", "pause", "cancel")),
    *(f"campaign.{a}" for a in ("halt", "stage_done", "lock", "unlock", "exempt", "clear")),
    *(f"case.{a}" for a in ("open", "link", "note", "close")),
    *("appeal.create", "appeal.decide", "apikey.create", "apikey.revoke", "keys.rotate"),
    *(f"webhook.{a}" for a in ("add", "remove", "enable", "disable", "rotate", "test")),
)


@router.get("/audit")
def audit(request: Request) -> Response:
    """The latest entries, newest first, by subject (a device's id or IMEI, a policy, a key)
    and action, 100 a page (`Older` pages on)."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in
    params = request.query_params
    subject = params.get("subject", "").strip()[:64]
    action = params.get("action", "").strip()[:64]
    try:
        before = int(params.get("before", "")) if params.get("before") else None
    except ValueError:
        before = None
    if before is not None and not 0 < before < 2**63:
        before = None
    device = state.stores.devices.get(subject) if subject else None
    entries = state.stores.audit.recent(
        before=before,
        subject=(device.record.id if device else subject) or None,
        action=action or None,
        limit=PAGE,
    )
    older = None
    if len(entries) == PAGE:
        older = "/console/audit?" + urlencode(
            {"subject": subject, "action": action, "before": entries[-1].seq}
        )
    return web.page(
        "audit.html.j2",
        page="audit",
        key=key,
        csrf=web.codec(state).csrf(session),
        entries=entries,
        subject=subject,
        action=action,
        actions=ACTIONS,
        older=older,
        details=lambda d: json.dumps(d, ensure_ascii=False, sort_keys=True) if d else "",
    )


@router.get("/audit/verify")
async def verify(request: Request) -> Response:
    """Check every chain, its head row and the tree, as `regionlock audit verify` does; when
    it holds, the tree's head signed by the service's key, to keep outside the database."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state, session, key = signed_in

    def check() -> tuple[bool, str, str | None]:
        result = state.stores.audit.verify()
        if not result.ok or result.head is None:
            where = f" at entry {result.first_broken}" if result.first_broken else ""
            return False, f"Broken{where}: {result.problem}", None
        head = state.audit_tree.head()
        said = (
            f"Intact: {result.checked:,} entries, the last one {result.head.seq:,}; the signed"
            f" tree holds {head.size:,}."
        )
        return True, said, head.token

    ok, said, token = await run_in_threadpool(check)
    return web.page(
        "audit-verify.html.j2",
        status=200 if ok else 409,
        page="audit",
        key=key,
        csrf=web.codec(state).csrf(session),
        ok=ok,
        said=said,
        token=token,
    )


@router.get("/audit/export")
def export(request: Request) -> Response:
    """The whole trail, oldest first, one JSON entry per line (as `GET /v1/audit` gives each):
    what `audit verify` can recheck elsewhere."""
    signed_in = web.signed_in(request)
    if isinstance(signed_in, Response):
        return signed_in
    state = signed_in[0]

    def lines() -> Iterator[bytes]:
        for e in state.stores.audit.iter_all():
            yield (json.dumps(e.to_json(), ensure_ascii=False, sort_keys=True) + "\n").encode()

    day = datetime.now(UTC).strftime("%Y%m%d")
    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="regionlock-audit-{day}.jsonl"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
