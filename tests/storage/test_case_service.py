"""The case service on both backends: each step is kept with its history event and one audit
entry, or not at all; bad input, unknown ids and closed cases are refused."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from storage_fixtures import T0

from regionlock.domain.campaign import Campaign, CampaignAction, Selection
from regionlock.domain.case import (
    NOTE_MAX,
    OUTCOME_MAX,
    TITLE_MAX,
    CaseClosed,
    CaseStatus,
    EventKind,
)
from regionlock.domain.errors import Conflict, InvalidInput, NotFound
from regionlock.services.campaigns import UnknownCampaign
from regionlock.services.cases import Cases, UnknownCase
from regionlock.storage import Database, Stores
from regionlock.storage.audit import AuditEntry
from regionlock.storage.campaigns import new_campaign_id
from regionlock.storage.db import Transaction

FINDINGS = {"by": "batch", "leaks": [{"group": "B7", "flagged": True, "p_value": 1e-9}]}


def deep(levels: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return {"deep": value}


class Clock:
    """A clock the test moves: T0, then a minute later at every reading."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> Any:
        self.readings += 1
        return T0 + timedelta(minutes=self.readings - 1)


def service(db: Database) -> Cases:
    return Cases.of(Stores.on(db), clock=Clock())


def trail(db: Database) -> list[AuditEntry]:
    return Stores.on(db).audit.entries()


def campaign(db: Database, name: str = "lock B7") -> str:
    """A draft campaign (no target needed to be linked)."""
    c = Campaign(
        id=new_campaign_id(),
        name=name,
        action=CampaignAction.LOCK,
        reason="B7 leaked",
        selection=Selection.parse(["batch=B7"]),
        created_by="test",
        created_at=T0,
    )
    with db.write() as tx:
        Stores.on(db).campaigns.create(tx, c, [])
    return c.id


def test_opening_keeps_the_findings_and_audits_their_digest(db: Database) -> None:
    cases = service(db)
    case = cases.open("  Batch B7 leaks to IR ", actor="cli:ana", findings=FINDINGS)
    assert re.fullmatch(r"case_[a-z2-7]{8}", case.id)
    assert case.title == "Batch B7 leaks to IR" and case.opened_by == "cli:ana"
    assert case.opened_at == T0 and case.status is CaseStatus.OPEN
    assert cases.get(case.id) == case
    assert case.findings == FINDINGS
    canonical = json.dumps(FINDINGS, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    events = cases.history(case.id)
    assert [(e.seq, e.kind, e.text) for e in events] == [
        (1, EventKind.OPEN, "Batch B7 leaks to IR"),
        (2, EventKind.FINDINGS, None),
    ]
    assert events[1].data == {"sha256": digest, "bytes": len(canonical)}
    [entry] = trail(db)
    assert (entry.action, entry.subject, entry.actor) == ("case.open", case.id, "cli:ana")
    assert entry.reason == "Batch B7 leaks to IR"
    assert entry.details == {
        "title": "Batch B7 leaks to IR",
        "findings": {"sha256": digest, "bytes": len(canonical)},
    }


def test_what_a_step_returns_is_what_is_read_back(db: Database) -> None:
    # The store keeps milliseconds: a clock with microseconds must not make them differ.
    odd = T0 + timedelta(microseconds=1_234_567)
    cases = Cases.of(Stores.on(db), clock=lambda: odd)
    case = cases.open("B7", actor="cli:ana")
    note = cases.note(case.id, "n", actor="cli:ana")
    closed = cases.close(case.id, "done", actor="cli:ana")
    assert case.opened_at == T0 + timedelta(microseconds=1_234_000)
    assert cases.get(case.id) == closed and closed.opened_at == case.opened_at
    assert cases.history(case.id)[1] == note


def test_a_case_without_findings_and_with_a_reason(db: Database) -> None:
    cases = service(db)
    case = cases.open("D3", actor="cli:ana", reason="the distributor's own report")
    assert case.findings is None and cases.get(case.id).findings is None
    assert [e.kind for e in cases.history(case.id)] == [EventKind.OPEN]
    [entry] = trail(db)
    assert entry.reason == "the distributor's own report"
    assert entry.details == {"title": "D3", "findings": None}


def test_the_life_of_a_case_is_its_history_and_its_audit_trail(db: Database) -> None:
    cases = service(db)
    cid = campaign(db)
    case = cases.open("B7", actor="cli:ana")
    note = cases.note(case.id, "carton 12 went to Dubai", actor="cli:bo")
    link = cases.link(case.id, cid, actor="cli:ana")
    closed = cases.close(case.id, " block lifted ", actor="cli:cy")
    assert (note.seq, note.text, note.at) == (
        2,
        "carton 12 went to Dubai",
        T0 + timedelta(minutes=1),
    )
    assert (link.seq, link.campaign_id) == (3, cid)
    assert closed.status is CaseStatus.CLOSED and closed.outcome == "block lifted"
    assert (closed.closed_by, closed.closed_at) == ("cli:cy", T0 + timedelta(minutes=3))
    assert cases.get(case.id) == closed
    events = cases.history(case.id)
    assert [(e.kind, e.actor) for e in events] == [
        (EventKind.OPEN, "cli:ana"),
        (EventKind.NOTE, "cli:bo"),
        (EventKind.LINK, "cli:ana"),
        (EventKind.CLOSE, "cli:cy"),
    ]
    assert events[-1].text == "block lifted"
    entries = trail(db)
    assert [(e.action, e.subject) for e in entries] == [
        ("case.open", case.id),
        ("case.note", case.id),
        ("case.link", case.id),
        ("case.close", case.id),
    ]
    assert entries[1].reason == "carton 12 went to Dubai" and entries[1].details == {"event": 2}
    assert entries[2].details == {"event": 3, "campaign": cid}
    assert cid in entries[2].reason and "lock B7" in entries[2].reason
    assert entries[3].reason == "block lifted" and entries[3].details == {"event": 4}
    assert Stores.on(db).audit.verify().ok


@pytest.mark.parametrize(
    ("title", "problem"),
    [
        ("", "empty"),
        (" \t\n", "empty"),
        ("x" * (TITLE_MAX + 1), f"longer than {TITLE_MAX}"),
        ("B7\x00", "NUL"),
        ("B7 \udc80", "surrogate"),
    ],
)
def test_a_bad_title_opens_nothing(db: Database, title: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        service(db).open(title, actor="cli:ana")
    assert Stores.on(db).cases.recent() == [] and trail(db) == []


@pytest.mark.parametrize(
    ("findings", "problem"),
    [
        ({"p": float("nan")}, "not JSON"),
        ({"rows": [object()]}, "not JSON"),
        ({"s": "\udc80"}, "surrogate"),
        (deep(40), "nested"),
        ({"rows": ["x" * 1000] * 1100}, "more than"),
    ],
)
def test_findings_that_cannot_be_kept_open_nothing(
    db: Database, findings: Mapping[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidInput, match=f"findings: .*{problem}"):
        service(db).open("B7", actor="cli:ana", findings=findings)
    assert Stores.on(db).cases.recent() == [] and trail(db) == []


def test_findings_with_a_nul_inside_a_string_are_kept(db: Database) -> None:
    # JSON escapes it ("\u0000"): the stored text holds no NUL, and it reads back as given.
    case = service(db).open("B7", actor="cli:ana", findings={"s": "a\x00b"})
    assert service(db).get(case.id).findings == {"s": "a\x00b"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "empty"), ("   ", "empty"), ("x" * (NOTE_MAX + 1), "longer"), ("a\x00", "NUL")],
)
def test_a_bad_note_adds_nothing(db: Database, text: str, problem: str) -> None:
    cases = service(db)
    case = cases.open("B7", actor="cli:ana")
    with pytest.raises(InvalidInput, match=problem):
        cases.note(case.id, text, actor="cli:bo")
    assert len(cases.history(case.id)) == 1 and len(trail(db)) == 1


def test_the_longest_texts_are_kept_whole(db: Database) -> None:
    cases = service(db)
    case = cases.open("t" * TITLE_MAX, actor="cli:ana")
    assert cases.note(case.id, "n" * NOTE_MAX, actor="cli:bo").text == "n" * NOTE_MAX
    assert cases.close(case.id, "o" * OUTCOME_MAX, actor="cli:bo").outcome == "o" * OUTCOME_MAX
    assert cases.get(case.id).title == "t" * TITLE_MAX


@pytest.mark.parametrize("outcome", ["", " ", "x" * (OUTCOME_MAX + 1), "\x00"])
def test_a_bad_outcome_leaves_the_case_open(db: Database, outcome: str) -> None:
    cases = service(db)
    case = cases.open("B7", actor="cli:ana")
    with pytest.raises(InvalidInput):
        cases.close(case.id, outcome, actor="cli:bo")
    assert cases.get(case.id).status is CaseStatus.OPEN and len(trail(db)) == 1


@pytest.mark.parametrize("case_id", ["case_nothere", "", "case\x00", "c" * 300])
def test_an_unknown_case_is_not_found(db: Database, case_id: str) -> None:
    cases = service(db)
    cid = campaign(db)
    for attempt in (
        lambda: cases.get(case_id),
        lambda: cases.history(case_id),
        lambda: cases.note(case_id, "n", actor="a"),
        lambda: cases.link(case_id, cid, actor="a"),
        lambda: cases.close(case_id, "o", actor="a"),
    ):
        with pytest.raises(UnknownCase):
            attempt()
    assert trail(db) == []


@pytest.mark.parametrize("campaign_id", ["cmp_nothere", "", "cmp\x00"])
def test_linking_an_unknown_campaign_is_refused(db: Database, campaign_id: str) -> None:
    cases = service(db)
    case = cases.open("B7", actor="cli:ana")
    with pytest.raises(UnknownCampaign) as caught:
        cases.link(case.id, campaign_id, actor="cli:ana")
    assert isinstance(caught.value, NotFound)
    assert len(cases.history(case.id)) == 1 and len(trail(db)) == 1


def test_a_campaign_is_linked_once(db: Database) -> None:
    cases = service(db)
    first, second = campaign(db), campaign(db, "lock B8")
    case = cases.open("B7", actor="cli:ana")
    cases.link(case.id, first, actor="cli:ana")
    with pytest.raises(Conflict, match="linked"):
        cases.link(case.id, first, actor="cli:bo")
    cases.link(case.id, second, actor="cli:bo")
    other = cases.open("B8", actor="cli:ana")
    cases.link(other.id, first, actor="cli:ana")  # one decision may settle two cases
    assert [e.campaign_id for e in cases.history(case.id)[1:]] == [first, second]
    assert len(trail(db)) == 5


def test_a_closed_case_takes_nothing_more(db: Database) -> None:
    cases = service(db)
    cid = campaign(db)
    case = cases.open("B7", actor="cli:ana")
    cases.close(case.id, "block lifted", actor="cli:bo")
    for attempt in (
        lambda: cases.close(case.id, "again", actor="cli:cy"),
        lambda: cases.note(case.id, "late", actor="cli:cy"),
        lambda: cases.link(case.id, cid, actor="cli:cy"),
    ):
        with pytest.raises(CaseClosed, match="block lifted") as caught:
            attempt()
        assert isinstance(caught.value, Conflict)
    assert cases.get(case.id).closed_by == "cli:bo"
    assert len(cases.history(case.id)) == 2 and len(trail(db)) == 2


def test_listing_by_status(db: Database) -> None:
    cases = service(db)
    a = cases.open("a", actor="x")
    b = cases.open("b", actor="x")
    c = cases.open("c", actor="x")
    cases.close(b.id, "done", actor="x")
    assert [k.id for k in cases.list()] == [c.id, b.id, a.id]
    assert [k.id for k in cases.list("open")] == [c.id, a.id]
    assert [k.id for k in cases.list(CaseStatus.CLOSED)] == [b.id]
    assert [k.id for k in cases.list(limit=1)] == [c.id]
    with pytest.raises(InvalidInput, match="open or closed"):
        cases.list("shut")
    with pytest.raises(InvalidInput):
        cases.list(limit=0)


class FailingAudit:
    """An audit store whose appends fail after the case's own rows were written."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def append(self, tx: Transaction, **_: Any) -> None:
        raise RuntimeError("the audit trail is unavailable")


def test_a_step_is_kept_only_with_its_audit_entry(db: Database) -> None:
    stores = Stores.on(db)
    case = Cases.of(stores).open("B7", actor="cli:ana")
    broken = replace(Cases.of(stores), audit=FailingAudit(stores.audit))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        broken.open("B8", actor="cli:ana")
    with pytest.raises(RuntimeError):
        broken.note(case.id, "n", actor="cli:ana")
    with pytest.raises(RuntimeError):
        broken.close(case.id, "o", actor="cli:ana")
    assert [k.id for k in stores.cases.recent()] == [case.id]
    assert [e.kind for e in stores.cases.events(case.id)] == [EventKind.OPEN]
    assert stores.cases.get(case.id).status is CaseStatus.OPEN  # type: ignore[union-attr]
