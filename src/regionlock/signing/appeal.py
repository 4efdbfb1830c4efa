"""The appeal request (docs/protocol.md, "Appeals"): a locked owner contests the lock from the
device. A compact JWS signed with the device's key, like a check-in, with its own `typ`
(`regionlock-appeal+jwt`), so that an appeal can never pass as a check-in nor a check-in as an
appeal. Payload, exactly: `nonce`, `iat`, `contact`, `message`, and optionally `language`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from regionlock.domain.errors import InvalidSignal
from regionlock.domain.inputs import text_problem
from regionlock.domain.signals import parse_locale
from regionlock.signing import jws
from regionlock.signing.jws import ALGORITHM
from regionlock.signing.keys import SigningKey
from regionlock.signing.verdict import (
    CLOCK_WINDOW_S,
    NONCE_PATTERN,
    CheckinRequest,
    InvalidCheckin,
    _is_count,
    check_clock,
)

APPEAL_TYP = "regionlock-appeal+jwt"
APPEAL_FIELDS = ("nonce", "iat", "contact", "message")
OPTIONAL_FIELDS = ("language",)
CONTACT_MAX = 200
MESSAGE_MAX = 2000


class InvalidAppeal(InvalidCheckin):
    """An appeal request that breaks the protocol; names the field."""


@dataclass(frozen=True, slots=True)
class AppealRequest:
    nonce: str
    iat: int
    contact: str
    message: str
    language: str | None = None

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "nonce": self.nonce,
            "iat": self.iat,
            "contact": self.contact,
            "message": self.message,
        }
        if self.language is not None:
            out["language"] = self.language
        return out


def _words(payload: dict[str, Any], name: str, most: int) -> str:
    value = payload[name]
    if not isinstance(value, str):
        raise InvalidAppeal(name, "must be text")
    problem = text_problem(value)
    if problem is not None:
        raise InvalidAppeal(name, problem)
    value = value.strip()
    if not value:
        raise InvalidAppeal(name, "is empty")
    if len(value) > most:
        raise InvalidAppeal(name, f"is longer than {most} characters")
    return value


def parse_appeal_payload(payload: Any) -> AppealRequest:
    """Validate an appeal payload; `InvalidAppeal` names the first field that is wrong."""
    if not isinstance(payload, dict):
        raise InvalidAppeal("payload", "must be a JSON object")
    for name in APPEAL_FIELDS:
        if name not in payload:
            raise InvalidAppeal(name, "missing")
    unknown = sorted(set(payload) - set(APPEAL_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise InvalidAppeal("payload", f"unknown field(s) {unknown}")
    nonce = payload["nonce"]
    if not isinstance(nonce, str) or not NONCE_PATTERN.fullmatch(nonce):
        raise InvalidAppeal("nonce", "must be 16 to 128 base64url characters (A-Z a-z 0-9 - _)")
    iat = payload["iat"]
    if not _is_count(iat):
        raise InvalidAppeal("iat", "must be whole seconds since the epoch (an integer)")
    language = payload.get("language")
    if language is not None:
        try:
            language = parse_locale(language)  # as a check-in's locale signal
        except InvalidSignal:
            raise InvalidAppeal("language", "is not a language tag such as fa-IR") from None
    return AppealRequest(
        nonce=nonce,
        iat=iat,
        contact=_words(payload, "contact", CONTACT_MAX),
        message=_words(payload, "message", MESSAGE_MAX),
        language=language,
    )


def verify_appeal(
    parts: jws.ParsedToken, public_key: bytes, *, now: datetime, window_s: int = CLOCK_WINDOW_S
) -> AppealRequest:
    """`typ`, signature, payload, clock: the stateless half (the nonce is the caller's)."""
    jws.check_type(parts.header.get("typ"), APPEAL_TYP)
    jws.check_signature(parts, public_key)
    request = parse_appeal_payload(jws.json_object(parts.payload, "payload"))
    check_clock(CheckinRequest(request.nonce, 0, request.iat, {}), now, window_s=window_s)
    return request


def sign_appeal(request: AppealRequest, key: SigningKey, device_kid: str) -> str:
    """An appeal as a device makes it (the reference agent, tests)."""
    header = {"alg": ALGORITHM, "kid": device_kid, "typ": APPEAL_TYP}
    payload = json.dumps(
        request.to_payload(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return jws.sign_bytes(header, payload.encode("utf-8"), key)
