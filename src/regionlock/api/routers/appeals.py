"""Appeals (docs/appeals.md). A locked device sends `POST /v1/appeals` (a compact JWS signed
with its key, `Content-Type: application/jose`, no API key); support reads the queue (viewers)
and decides (admins). Every step is audited and announced to the webhooks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from regionlock.api.deps import (
    WORDS_PATTERN,
    Admin,
    KeyPath,
    PayloadTooLarge,
    StateDep,
    Text,
    UnsupportedMediaType,
    Viewer,
)
from regionlock.api.problems import AS_OPERATOR, AS_VIEWER, responses
from regionlock.domain.appeal import GRANT_DAYS_MAX, AppealDecided, AppealOpen, NotLocked
from regionlock.domain.errors import InvalidInput
from regionlock.services.appeals import REASON_MAX, Appeals, UnknownAppeal
from regionlock.services.registry import UnknownDevice
from regionlock.signing import BadSignature, ClockSkew, MalformedToken, WrongAlgorithm, WrongType

api = APIRouter(prefix="/v1/appeals", tags=["appeals"])
PREFIX = "/v1/appeals"
MAX_APPEAL_BYTES = 16 * 1024


def appeals_of(state: StateDep) -> Appeals:
    return Appeals.of(state.stores, clock=state.clock.now)


AppealsDep = Annotated[Appeals, Depends(appeals_of)]


async def _body(request: Request) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/jose":
        raise UnsupportedMediaType("send the compact JWS as Content-Type: application/jose")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_APPEAL_BYTES:
            raise PayloadTooLarge(f"an appeal is at most {MAX_APPEAL_BYTES // 1024} KiB")
        chunks.append(chunk)
    return b"".join(chunks)


@api.post(
    "",
    status_code=201,
    responses=responses(
        UnknownDevice,
        MalformedToken,
        WrongAlgorithm,
        WrongType,
        BadSignature,
        ClockSkew,
        InvalidInput,
        NotLocked,
        AppealOpen,
        UnsupportedMediaType,
        PayloadTooLarge,
    )
    | {200: {"description": "The same request again: the appeal it made."}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/jose": {"schema": {"type": "string"}}},
        }
    },
)
async def submit(request: Request, response: Response, appeals: AppealsDep) -> dict[str, Any]:
    """A device's appeal (docs/protocol.md, "Appeals"): `201` with its `id` and `status`; the
    same request again answers `200` with the same appeal."""
    token = await _body(request)
    appeal, created = await run_in_threadpool(appeals.submit, token)
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"{PREFIX}/{appeal.id}"
    return {"id": appeal.id, "status": appeal.status.value}


@api.get("", responses=AS_VIEWER | responses(InvalidInput))
def queue(
    appeals: AppealsDep,
    _: Viewer,
    status: Literal["open", "granted", "denied"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Appeals, the oldest first (a queue): summaries without the owner's words."""
    return {"appeals": [a.summary() for a in appeals.list(status, limit=limit)]}


@api.get("/{appeal_id}", responses=AS_VIEWER | responses(UnknownAppeal))
def show(appeal_id: KeyPath, appeals: AppealsDep, _: Viewer) -> dict[str, Any]:
    """An appeal with the owner's contact and message and the evidence the service held."""
    return appeals.get(appeal_id).to_json()


class Decision(BaseModel):
    grant: bool = Field(description="true: exempt the device for `days` days; false: deny.")
    days: int | None = Field(default=None, ge=1, le=GRANT_DAYS_MAX)
    reason: Text = Field(
        min_length=1, max_length=REASON_MAX, json_schema_extra={"pattern": WORDS_PATTERN}
    )
    contact: Text | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="With a denial: whom the owner may contact (default: the policy's).",
        json_schema_extra={"pattern": WORDS_PATTERN},
    )

    @model_validator(mode="after")
    def _days_with_a_grant(self) -> Decision:
        if self.grant and self.days is None:
            raise ValueError("a grant needs days")
        if not self.grant and self.days is not None:
            raise ValueError("a denial takes no days")
        return self


@api.post(
    "/{appeal_id}/decide",
    responses=AS_OPERATOR | responses(UnknownAppeal, AppealDecided, InvalidInput, UnknownDevice),
)
def decide(appeal_id: KeyPath, body: Decision, appeals: AppealsDep, who: Admin) -> dict[str, Any]:
    """Grant (an exemption for `days` days from today, UTC) or deny, with a reason."""
    decided = appeals.decide(
        appeal_id,
        grant=body.grant,
        days=body.days,
        reason=body.reason,
        actor=who.actor,
        contact=body.contact,
    )
    return decided.to_json()
