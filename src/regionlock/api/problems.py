"""The API's edge for errors: one table from what went wrong to an HTTP status and an RFC 9457
problem type, and the handlers that answer every refusal with a problem document.

Errors raised below the API say what went wrong (`regionlock.domain.errors`); only this module
decides how that is answered. The table is also the list of problem types the API can return:
a test keeps each one documented (device-facing ones in docs/protocol.md, operator-facing ones
in docs/operator-api.md).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from regionlock.api.deps import Forbidden, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from regionlock.domain.appeal import AppealDecided, AppealOpen, NotLocked
from regionlock.domain.case import CaseClosed
from regionlock.domain.errors import (
    Conflict,
    DataUnavailable,
    InvalidInput,
    InvalidSignal,
    NotFound,
    RegionlockError,
    Unavailable,
    most_specific,
)
from regionlock.policies import PolicyError
from regionlock.services.appeals import UnknownAppeal
from regionlock.services.campaigns import (
    ApprovalRequired,
    CampaignBusy,
    CampaignDrifted,
    UnknownCampaign,
)
from regionlock.services.cases import UnknownCase
from regionlock.services.checkin_queue import ServiceBusy
from regionlock.services.privacy import DeviceErased
from regionlock.services.ratelimit import RateLimited
from regionlock.services.registry import UnknownDevice
from regionlock.services.webhooks import UnknownDelivery, UnknownEndpoint
from regionlock.signing import (
    BadSignature,
    ClockSkew,
    InvalidCheckin,
    MalformedToken,
    NoSigningKey,
    ReplayedNonce,
    StaleCounter,
    TokenError,
    WrongAlgorithm,
    WrongType,
)
from regionlock.storage.apikeys import UnknownApiKey
from regionlock.storage.db import StoreUnavailable
from regionlock.storage.devices import StaleState
from regionlock.storage.policies import PolicyConflict

PROBLEM_BASE = "https://regionlock.dev/problems/"
PROBLEM_JSON = "application/problem+json"

Audience = Literal["device", "operator", "both"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProblemType:
    """How one kind of error is answered: status, type slug, who meets it."""

    status: int
    slug: str
    audience: Audience

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug

    @property
    def title(self) -> str:
        return self.slug.replace("-", " ").capitalize()


# The most specific class of an error that is listed here decides its answer.
PROBLEMS: dict[type[Exception], ProblemType] = {
    # The device protocol (docs/protocol.md, "Errors").
    MalformedToken: ProblemType(401, "malformed-token", "device"),
    WrongAlgorithm: ProblemType(401, "wrong-algorithm", "device"),
    WrongType: ProblemType(401, "wrong-type", "device"),
    BadSignature: ProblemType(401, "bad-signature", "device"),
    TokenError: ProblemType(401, "invalid-token", "device"),
    InvalidCheckin: ProblemType(422, "invalid-checkin", "device"),
    InvalidSignal: ProblemType(422, "invalid-signal", "both"),
    ClockSkew: ProblemType(401, "clock-skew", "device"),
    ReplayedNonce: ProblemType(409, "replayed-nonce", "device"),
    StaleCounter: ProblemType(409, "stale-counter", "device"),
    UnknownDevice: ProblemType(404, "unknown-device", "both"),
    DeviceErased: ProblemType(410, "device-erased", "operator"),
    UnsupportedMediaType: ProblemType(415, "unsupported-media-type", "both"),
    PayloadTooLarge: ProblemType(413, "payload-too-large", "both"),
    NoSigningKey: ProblemType(503, "no-signing-key", "device"),
    RateLimited: ProblemType(429, "rate-limited", "both"),
    ServiceBusy: ProblemType(503, "service-busy", "device"),
    # The operator API (docs/operator-api.md).
    Unauthorized: ProblemType(401, "unauthorized", "operator"),
    Forbidden: ProblemType(403, "forbidden", "operator"),
    UnknownApiKey: ProblemType(404, "unknown-api-key", "operator"),
    PolicyError: ProblemType(422, "invalid-policy", "operator"),
    PolicyConflict: ProblemType(409, "policy-conflict", "operator"),
    StaleState: ProblemType(409, "stale-state", "operator"),
    UnknownCampaign: ProblemType(404, "unknown-campaign", "operator"),
    ApprovalRequired: ProblemType(409, "approval-required", "operator"),
    CampaignDrifted: ProblemType(409, "campaign-drifted", "operator"),
    CampaignBusy: ProblemType(409, "campaign-busy", "operator"),
    UnknownCase: ProblemType(404, "unknown-case", "operator"),
    CaseClosed: ProblemType(409, "case-closed", "operator"),
    UnknownEndpoint: ProblemType(404, "unknown-webhook", "operator"),
    UnknownDelivery: ProblemType(404, "unknown-delivery", "operator"),
    UnknownAppeal: ProblemType(404, "unknown-appeal", "operator"),
    AppealDecided: ProblemType(409, "appeal-decided", "operator"),
    NotLocked: ProblemType(409, "not-locked", "device"),
    AppealOpen: ProblemType(409, "appeal-open", "device"),
    InvalidInput: ProblemType(422, "invalid-input", "operator"),
    NotFound: ProblemType(404, "not-found", "operator"),
    Conflict: ProblemType(409, "conflict", "operator"),
    StoreUnavailable: ProblemType(503, "store-unavailable", "both"),
    DataUnavailable: ProblemType(503, "data-unavailable", "both"),
    Unavailable: ProblemType(503, "unavailable", "both"),
    RegionlockError: ProblemType(500, "internal", "both"),
}

# Answers the framework gives before any regionlock code runs (routing, request parsing), and
# the last resort for a bug.
BAD_REQUEST = ProblemType(400, "bad-request", "both")
NOT_FOUND = ProblemType(404, "not-found", "operator")
METHOD_NOT_ALLOWED = ProblemType(405, "method-not-allowed", "both")
INVALID_INPUT = PROBLEMS[InvalidInput]
INTERNAL = PROBLEMS[RegionlockError]
FRAMEWORK_PROBLEMS = (BAD_REQUEST, NOT_FOUND, METHOD_NOT_ALLOWED, INVALID_INPUT, INTERNAL)

# Members an error carries for the client besides `detail` (problem "extension members").
_EXTENSIONS = ("field", "server_time")


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@functools.lru_cache(maxsize=256)
def _template(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def allowed_methods(schema: dict[str, Any], path: str) -> list[str]:
    """Every method the OpenAPI document serves at `path` (HEAD wherever GET is)."""
    found: set[str] = set()
    for template, item in schema.get("paths", {}).items():
        if _template(template).fullmatch(path):
            found.update(m.upper() for m in item if m in _METHODS)
    if "GET" in found:
        found.add("HEAD")
    return sorted(found)


def problem_type(exc: BaseException) -> ProblemType:
    """The answer for `exc`: the entry of its most specific listed class (500 if none)."""
    return kind_of(type(exc))


def problem(
    kind: ProblemType, detail: str, instance: str, extra: dict[str, Any] | None = None
) -> JSONResponse:
    """An RFC 9457 problem document."""
    body: dict[str, Any] = {
        "type": kind.uri,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "instance": instance,
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=kind.status, media_type=PROBLEM_JSON)


def error_response(exc: RegionlockError, instance: str) -> JSONResponse:
    """The problem document answering a regionlock error."""
    kind = problem_type(exc)
    extra = {k: getattr(exc, k) for k in _EXTENSIONS if hasattr(exc, k)}
    if isinstance(exc, PolicyError):  # every problem of the document, each with its line
        extra["problems"] = [
            {"line": p.line, "path": p.path, "message": p.message} for p in exc.problems
        ]
    response = problem(kind, exc.message, instance, extra)
    retry_after = getattr(exc, "retry_after_s", None)
    if kind.status in (429, 503) and retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def count_refusal(state: Any, path: str, exc: RegionlockError) -> None:
    """A refused check-in by its problem type, and a store outage, in the node's metrics
    (`state`: the app's `State`, or None before start-up)."""
    if state is None:
        return
    if path == "/v1/checkin":
        state.metrics.refusals.labels(problem_type(exc).slug).inc()
    if isinstance(exc, StoreUnavailable):
        state.metrics.store_errors.inc()


def install_error_handlers(app: FastAPI) -> None:
    """Answer every refusal of `app`, the framework's own and unexpected ones included, with
    a problem document."""

    @app.exception_handler(RegionlockError)
    async def regionlock_error(request: Request, exc: RegionlockError) -> JSONResponse:
        count_refusal(getattr(request.app.state, "regionlock", None), request.url.path, exc)
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return problem(INVALID_INPUT, detail, request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(exc.status_code)
        if kind is None:  # nothing else is raised by the framework today; kept honest anyway
            slug = BAD_REQUEST.slug if exc.status_code < 500 else INTERNAL.slug
            kind = ProblemType(exc.status_code, slug, "both")
        response = problem(kind, str(exc.detail), request.url.path)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        if kind is METHOD_NOT_ALLOWED:
            # Starlette names the methods of the first route that matched the path only; a
            # path served by several routes (GET and POST /v1/apikeys) takes them all.
            methods = allowed_methods(request.app.openapi(), request.url.path)
            if methods:
                response.headers["Allow"] = ", ".join(methods)
        return response

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return problem(INTERNAL, "an unexpected error; it has been logged", request.url.path)


# -- what the OpenAPI says each operation can answer -------------------------------------------

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document (docs/operator-api.md, docs/protocol.md).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def kind_of(error: type[BaseException]) -> ProblemType:
    """The problem type answering errors of class `error` (500 if none is listed)."""
    return most_specific(PROBLEMS, error) or INTERNAL


def responses(*kinds: type[Exception] | ProblemType) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problems an operation can answer (by error class or type);
    several types of one status share an entry that names them all."""
    out: dict[int | str, dict[str, Any]] = {}
    for item in kinds:
        kind = item if isinstance(item, ProblemType) else kind_of(item)
        entry = out.setdefault(
            str(kind.status),
            {"description": "", "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}}},
        )
        names = [n for n in entry["description"].split(", ") if n]
        if f"`{kind.slug}`" not in names:
            names.append(f"`{kind.slug}`")
        entry["description"] = ", ".join(names)
    return out


# What the key-checking dependencies can answer: viewers' routes admit every live key.
AS_VIEWER = responses(Unauthorized, RateLimited)
AS_OPERATOR = responses(Unauthorized, Forbidden, RateLimited)

# Every operation can meet these; the app adds them to each (`document_problems`).
_EVERYWHERE = responses(INTERNAL, StoreUnavailable)
_WITH_INPUT = responses(INVALID_INPUT)
_WITH_BODY = responses(PayloadTooLarge, BAD_REQUEST)
_NO_STORE = {"/health"}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI say every problem each operation can answer, all as problem+json:
    the framework's validation errors (documented by FastAPI as plain JSON) included."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, item in schema.get("paths", {}).items():
        for _method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            answers: dict[str, Any] = op["responses"]
            if op.get("parameters") or op.get("requestBody") or "422" in answers:
                _merge(answers, _WITH_INPUT, replace="422")
            if op.get("requestBody"):
                _merge(answers, _WITH_BODY)
            everywhere = _EVERYWHERE if path not in _NO_STORE else responses(INTERNAL)
            _merge(answers, everywhere)
    return schema


def _merge(
    answers: dict[str, Any], extra: dict[int | str, dict[str, Any]], replace: str = ""
) -> None:
    for status, entry in extra.items():
        key = str(status)
        if key == replace and key in answers:
            content = answers[key].get("content", {})
            if PROBLEM_JSON not in content:  # FastAPI's own HTTPValidationError entry
                answers[key] = entry
                continue
        if key not in answers:
            answers[key] = entry
        elif PROBLEM_JSON in answers[key].get("content", {}):
            have = answers[key]["description"].split(", ")
            more = [n for n in entry["description"].split(", ") if n not in have]
            answers[key]["description"] = ", ".join([*have, *more])
