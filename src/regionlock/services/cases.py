"""Investigation cases: open one with the findings as they stand, note what is learnt, link
the decisions taken (campaigns), close it with how it ended (issue 13, docs/cases.md).

Every step is one write transaction holding the change, the case's history event and one
audit entry (subject: the case id), so the trail and the case never disagree. The audit entry
of the opening carries the findings snapshot's SHA-256: the snapshot stored with the case can
be checked against the tamper-evident trail later.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from regionlock.domain import case as cdomain
from regionlock.domain.case import (
    NOTE_MAX,
    OUTCOME_MAX,
    TITLE_MAX,
    Case,
    CaseClosed,
    CaseEvent,
    CaseStatus,
    EventKind,
    findings_digest,
    findings_json,
    words,
)
from regionlock.domain.errors import Conflict, InvalidInput, NotFound
from regionlock.domain.inputs import text_problem
from regionlock.services.campaigns import UnknownCampaign
from regionlock.storage import AuditStore, CampaignStore, CaseStore, Stores, Transactions
from regionlock.storage.cases import new_case_id
from regionlock.storage.db import Transaction, epoch_ms

_ID_TRIES = 5  # fresh ids tried before giving up (a clash of 40-bit ids is already rare)
_ID_MAX = 200


class UnknownCase(NotFound):
    """No case has this id."""


def _stored_time(t: datetime) -> datetime:
    """`t` in UTC to the millisecond, as the store keeps it: what a step returns is then
    what reading it back gives."""
    t = t.astimezone(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _plausible(ident: str) -> bool:
    """Whether `ident` could be a stored id at all (else it is unknown without asking the
    store, which would refuse a NUL)."""
    return 0 < len(ident) <= _ID_MAX and text_problem(ident) is None


@dataclass(frozen=True)
class Cases:
    """Case use cases on the stores they need."""

    db: Transactions
    cases: CaseStore
    campaigns: CampaignStore
    audit: AuditStore
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @classmethod
    def of(cls, stores: Stores, **options: Any) -> Cases:
        return cls(stores.db, stores.cases, stores.campaigns, stores.audit, **options)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, case_id: str) -> Case:
        """The case (UnknownCase if there is none)."""
        found = self.cases.get(case_id) if _plausible(case_id) else None
        if found is None:
            raise UnknownCase(f"no case {case_id[:_ID_MAX]!r}")
        return found

    def history(self, case_id: str) -> list[CaseEvent]:
        """The case's steps, oldest first: its opening, findings, notes, links and closing."""
        self.get(case_id)
        return self.cases.events(case_id)

    # -- changing --------------------------------------------------------------------------------

    def open(
        self,
        title: str,
        *,
        actor: str,
        findings: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> Case:
        """Open a case; `findings`: a snapshot of what was found (any JSON object; kept as
        given, its SHA-256 audited). InvalidInput for a blank or over-long title or reason,
        or findings that are not JSON or too large. Audited as `case.open`."""
        title = words(title, "the title", TITLE_MAX)
        why = words(reason, "the reason", OUTCOME_MAX) if reason is not None else title
        stored = None if findings is None else findings_json(findings)
        now = _stored_time(self.clock())
        with self.db.write() as tx:
            case = self._insert(tx, title, actor, now, stored)
            self.cases.append(tx, case.id, EventKind.OPEN, at=now, actor=actor, text=title)
            snapshot: dict[str, Any] | None = None
            if stored is not None:
                snapshot = {"sha256": findings_digest(stored), "bytes": len(stored.encode())}
                self.cases.append(
                    tx, case.id, EventKind.FINDINGS, at=now, actor=actor, data=snapshot
                )
            self._audit(
                tx, now, actor, "case.open", case.id, why, {"title": title, "findings": snapshot}
            )
        return case

    def _insert(
        self, tx: Transaction, title: str, actor: str, now: datetime, stored: str | None
    ) -> Case:
        for _ in range(_ID_TRIES):
            case = Case(
                id=new_case_id(),
                title=title,
                opened_at=now,
                opened_by=actor,
                findings=None if stored is None else json.loads(stored),
            )
            try:
                self.cases.create(tx, case, stored)
            except Conflict:
                continue
            return case
        raise Conflict(f"no free case id after {_ID_TRIES} tries")  # pragma: no cover

    def note(self, case_id: str, text: str, *, actor: str) -> CaseEvent:
        """Add a note to an open case (CaseClosed if closed). InvalidInput for a blank note,
        one over NOTE_MAX characters or holding a NUL. Audited as `case.note`."""
        text = words(text, "the note", NOTE_MAX)
        with self.db.write() as tx:
            _, now = self._open_case(tx, case_id)
            event = self.cases.append(tx, case_id, EventKind.NOTE, at=now, actor=actor, text=text)
            self._audit(tx, now, actor, "case.note", case_id, text, {"event": event.seq})
        return event

    def link(self, case_id: str, campaign_id: str, *, actor: str) -> CaseEvent:
        """Link a campaign, a decision taken, to an open case: UnknownCampaign when no
        campaign has that id, Conflict when it is linked already. Audited as `case.link`."""
        # Read before the write transaction (campaigns are never deleted): locking the
        # campaign's row would wait for a runner's chunk in flight.
        campaign = self.campaigns.get(campaign_id) if _plausible(campaign_id) else None
        with self.db.write() as tx:
            _, now = self._open_case(tx, case_id)
            if campaign is None:
                raise UnknownCampaign(f"no campaign {campaign_id[:_ID_MAX]!r} to link")
            if self.cases.is_linked(tx, case_id, campaign_id):
                raise Conflict(f"campaign {campaign_id} is linked to case {case_id} already")
            event = self.cases.append(
                tx, case_id, EventKind.LINK, at=now, actor=actor, campaign_id=campaign_id
            )
            self._audit(
                tx,
                now,
                actor,
                "case.link",
                case_id,
                f"decision: campaign {campaign_id} ({campaign.action.value} {campaign.name!r})",
                {"event": event.seq, "campaign": campaign_id},
            )
        return event

    def close(self, case_id: str, outcome: str, *, actor: str) -> Case:
        """Close an open case with how it ended (CaseClosed if it is closed already).
        InvalidInput for a blank outcome or one over OUTCOME_MAX characters. Audited as
        `case.close`."""
        outcome = words(outcome, "the outcome", OUTCOME_MAX)
        with self.db.write() as tx:
            current, now = self._open_case(tx, case_id)
            closed = cdomain.close(current, outcome, actor=actor, at=now)
            if not self.cases.close(tx, case_id, at=now, actor=actor, outcome=outcome):
                raise CaseClosed(f"case {case_id} is closed already")  # pragma: no cover
            event = self.cases.append(
                tx, case_id, EventKind.CLOSE, at=now, actor=actor, text=outcome
            )
            self._audit(tx, now, actor, "case.close", case_id, outcome, {"event": event.seq})
        return closed

    def _open_case(self, tx: Transaction, case_id: str) -> tuple[Case, datetime]:
        """The case, locked in `tx`, and the time of the step; UnknownCase, or CaseClosed
        when it is closed."""
        found = self.cases.get_for_update(tx, case_id) if _plausible(case_id) else None
        if found is None:
            raise UnknownCase(f"no case {case_id[:_ID_MAX]!r}")
        if found.status is CaseStatus.CLOSED:
            raise CaseClosed(cdomain.closed_message(found))
        return found, _stored_time(self.clock())

    def _audit(
        self,
        tx: Transaction,
        now: datetime,
        actor: str,
        action: str,
        case_id: str,
        reason: str,
        details: dict[str, Any],
    ) -> None:
        self.audit.append(
            tx,
            at=epoch_ms(now),
            actor=actor,
            action=action,
            subject=case_id,
            reason=reason,
            details=details,
        )

    # `list` last: inside the class body, the name would shadow the built-in for the methods
    # annotated after it.
    def list(
        self, status: CaseStatus | str | None = None, *, limit: int = 100
    ) -> builtins.list[Case]:
        """Cases, the most recently opened first; only open or closed ones if `status` says.
        InvalidInput for another status or a limit outside 1..1000."""
        wanted = status if isinstance(status, CaseStatus) else None
        if isinstance(status, str):
            try:
                wanted = CaseStatus(status)
            except ValueError:
                raise InvalidInput(f"status {status[:20]!r}: open or closed") from None
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit {limit}: between 1 and 1000")
        return self.cases.recent(status=wanted, limit=limit)
