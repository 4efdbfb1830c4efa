"""Investigation cases, as values: a `Case` (what was found when it was opened, and how it
ended) and its history of `CaseEvent`s (the notes taken and the decisions linked).

Pure: checking what an operator typed raises `InvalidInput` naming the problem, changing a
closed case raises `CaseClosed`. Storage keeps the events append-only (storage/cases.py); the
service audits every step (services/cases.py).

Life of a case::

    open --note, link--> open --close--> closed       (closed: final, nothing is added)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from regionlock.domain.errors import Conflict, InvalidInput
from regionlock.domain.inputs import nesting_depth, text_problem

# What an operator may type, in characters (docs/cases.md, "Limits"): a title fits a line of a
# listing, a note a few paragraphs, an outcome a sentence or two.
TITLE_MAX = 200
NOTE_MAX = 4000
OUTCOME_MAX = 1000
# A findings snapshot as canonical JSON, in bytes: a ranking of a few thousand groups. The API
# takes at most its 64 KiB body; the command line, a file up to this.
FINDINGS_MAX_BYTES = 1024 * 1024


class CaseClosed(Conflict):
    """The case is closed: nothing is added to it any more."""


class CaseStatus(Enum):
    OPEN = "open"
    CLOSED = "closed"


class EventKind(Enum):
    """What one step of a case's history is."""

    OPEN = "open"  # text: the title
    FINDINGS = "findings"  # data: the snapshot's SHA-256 and size (the snapshot is the case's)
    NOTE = "note"  # text: the note
    LINK = "link"  # campaign_id: the decision taken
    CLOSE = "close"  # text: the outcome


def words(value: str, what: str, max_length: int) -> str:
    """`value` without surrounding white space, if it says something and can be stored:
    InvalidInput when it is blank, longer than `max_length` or holds a NUL or lone surrogate."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidInput(f"{what} {problem}")
    value = value.strip()
    if not value:
        raise InvalidInput(f"{what} is empty")
    if len(value) > max_length:
        raise InvalidInput(f"{what} is longer than {max_length} characters")
    return value


def findings_json(findings: Mapping[str, Any]) -> str:
    """The snapshot as canonical JSON (sorted keys, no spaces): what is stored and hashed.
    InvalidInput for what JSON cannot hold (NaN, a non-text key, a lone surrogate), nesting
    past the usual bound, or more than FINDINGS_MAX_BYTES."""
    try:
        nesting_depth(findings)
    except InvalidInput as exc:
        raise InvalidInput(f"findings: {exc.message}") from None
    try:
        text = json.dumps(
            findings, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"findings: not JSON: {str(exc)[:100]}") from None
    if text_problem(text) is not None:  # a NUL inside a string is escaped; a surrogate is not
        raise InvalidInput("findings: a string contains a lone surrogate (not valid Unicode)")
    size = len(text.encode("utf-8"))
    if size > FINDINGS_MAX_BYTES:
        raise InvalidInput(
            f"findings: {size} bytes as JSON, more than {FINDINGS_MAX_BYTES}: keep the rows"
            " that matter (the flagged groups)"
        )
    return text


def findings_digest(text: str) -> str:
    """SHA-256 of a snapshot's canonical JSON: recorded in the audit trail when the case is
    opened, so the snapshot cannot change unseen afterwards."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Case:
    """An investigation: its title, who opened it when, the findings as they stood then (a
    snapshot the caller gave, or None), and how it ended."""

    id: str
    title: str
    opened_at: datetime
    opened_by: str
    status: CaseStatus = CaseStatus.OPEN
    findings: Mapping[str, Any] | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    outcome: str | None = None

    def summary(self) -> dict[str, Any]:
        """The case as JSON-ready values, without the findings (a listing)."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "opened_at": self.opened_at.isoformat(),
            "opened_by": self.opened_by,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "closed_by": self.closed_by,
            "outcome": self.outcome,
        }

    def to_json(self, events: Sequence[CaseEvent] | None = None) -> dict[str, Any]:
        """The case as JSON-ready values, the findings included; with its `events`, also the
        campaigns linked and the history."""
        out = self.summary()
        out["findings"] = None if self.findings is None else dict(self.findings)
        if events is not None:
            out["campaigns"] = linked_campaigns(events)
            out["history"] = [e.to_json() for e in events]
        return out


def closed_message(case: Case) -> str:
    """Why nothing more is added to a closed case, in words."""
    return (
        f"case {case.id} is closed (by {case.closed_by}: {case.outcome}): nothing more can be"
        " added to it"
    )


def close(case: Case, outcome: str, *, actor: str, at: datetime) -> Case:
    """The case closed with `outcome` (CaseClosed if it is already closed)."""
    if case.status is CaseStatus.CLOSED:
        raise CaseClosed(closed_message(case))
    return Case(
        id=case.id,
        title=case.title,
        opened_at=case.opened_at,
        opened_by=case.opened_by,
        status=CaseStatus.CLOSED,
        findings=case.findings,
        closed_at=at,
        closed_by=actor,
        outcome=outcome,
    )


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One step of a case's history, numbered 1, 2, ... within the case."""

    case_id: str
    seq: int
    at: datetime
    actor: str
    kind: EventKind
    text: str | None = None
    campaign_id: str | None = None
    data: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "kind": self.kind.value,
            "text": self.text,
            "campaign": self.campaign_id,
            "data": None if self.data is None else dict(self.data),
        }


def linked_campaigns(events: Sequence[CaseEvent]) -> list[str]:
    """The campaigns linked to a case, in the order they were linked."""
    return [e.campaign_id for e in events if e.kind is EventKind.LINK and e.campaign_id]


def summarize_findings(findings: Mapping[str, Any]) -> list[str]:
    """A snapshot in a few lines for a terminal: each member, a list as how many rows it holds
    (and how many are flagged, when its rows say), anything else as its value, shortened."""
    lines = []
    for key in sorted(findings):
        value = findings[key]
        if isinstance(value, list):
            flagged = sum(1 for row in value if isinstance(row, Mapping) and row.get("flagged"))
            some = any(isinstance(row, Mapping) and "flagged" in row for row in value)
            lines.append(f"{key}: {len(value)} row(s)" + (f", {flagged} flagged" if some else ""))
        elif isinstance(value, Mapping):
            lines.append(f"{key}: {len(value)} member(s)")
        else:
            text = json.dumps(value, ensure_ascii=False)
            lines.append(f"{key}: {text if len(text) <= 80 else text[:77] + '...'}")
    return lines
