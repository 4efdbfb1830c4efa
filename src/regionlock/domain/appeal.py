"""Appeals (docs/appeals.md): a locked owner contests the lock from the device, and the support
desk grants it (an exemption for some days) or denies it, with reasons. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from regionlock.domain.errors import Conflict, InvalidInput

GRANT_DAYS_MAX = 3650


class AppealStatus(StrEnum):
    OPEN = "open"
    GRANTED = "granted"
    DENIED = "denied"


class AppealDecided(Conflict):
    """The appeal was decided already: a decision is final (a new appeal may follow)."""


class NotLocked(Conflict):
    """The device is neither locked nor warned: there is nothing to appeal."""


class AppealOpen(Conflict):
    """The device has an open appeal already: it is answered before another is taken."""


@dataclass(frozen=True, slots=True)
class Appeal:
    id: str
    device_id: str
    created_at: datetime
    nonce: str
    contact: str
    message: str
    language: str | None
    status: AppealStatus
    evidence: Mapping[str, Any]
    decided_at: datetime | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    exempt_until: date | None = None

    def summary(self) -> dict[str, Any]:
        """A line of the queue: no evidence, no message."""
        return {
            "id": self.id,
            "device": self.device_id,
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "language": self.language,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
        }

    def to_json(self) -> dict[str, Any]:
        return self.summary() | {
            "contact": self.contact,
            "message": self.message,
            "evidence": dict(self.evidence),
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "exempt_until": self.exempt_until.isoformat() if self.exempt_until else None,
        }


def evidence(
    *,
    last_verdict: str | None,
    manual_lock: Mapping[str, Any] | None,
    verdicts: Sequence[Mapping[str, Any]],
    presence: Mapping[date, frozenset[str]],
    policy: str | None,
) -> dict[str, Any]:
    """What the service holds that explains the lock: the device's verdicts that locked or
    warned it (place, flags, reasons, policy), its presence by day, the active policy, and a
    manual lock if any. Places and reasons only: never raw signals."""
    return {
        "last_verdict": last_verdict,
        "manual_lock": dict(manual_lock) if manual_lock else None,
        "verdicts": [dict(v) for v in verdicts],
        "presence": {d.isoformat(): sorted(p) for d, p in sorted(presence.items())},
        "policy": policy,
    }


def grant_days(days: int | None) -> int:
    if days is None or not 1 <= days <= GRANT_DAYS_MAX:
        raise InvalidInput(f"a grant exempts the device for 1 to {GRANT_DAYS_MAX} days (--days)")
    return days
