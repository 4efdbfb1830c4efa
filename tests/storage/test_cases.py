"""The case store on both backends: cases round-trip, ids never taken twice, listings in
order, histories numbered without gaps (also under concurrent writers), closing only once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from storage_fixtures import T0

from regionlock.domain.case import Case, CaseStatus, EventKind
from regionlock.domain.errors import Conflict
from regionlock.storage import Database, Stores
from regionlock.storage.cases import SqlCaseStore, new_case_id


def opened(case_id: str = "", *, at_minutes: int = 0, title: str = "B7 leaks") -> Case:
    return Case(
        id=case_id or new_case_id(),
        title=title,
        opened_at=T0 + timedelta(minutes=at_minutes),
        opened_by="cli:ana",
    )


def test_a_case_round_trips_with_its_findings(db: Database) -> None:
    store = SqlCaseStore(db)
    plain, found = opened(), opened(title="D3 leaks")
    with db.write() as tx:
        store.create(tx, plain, None)
        store.create(tx, found, '{"leaks":[{"flagged":true,"group":"B7"}],"note":"é"}')
    assert store.get(plain.id) == plain
    got = store.get(found.id)
    assert got is not None and got.title == "D3 leaks" and got.opened_at == T0
    assert got.findings == {"leaks": [{"flagged": True, "group": "B7"}], "note": "é"}
    assert got.status is CaseStatus.OPEN and got.closed_at is None
    assert store.get("case_nothere") is None
    assert Stores.on(db).cases.get(plain.id) == plain  # the bundle carries the role


def test_an_id_is_never_taken_twice_and_the_transaction_goes_on(db: Database) -> None:
    store = SqlCaseStore(db)
    first = opened("case_aaaaaaaa")
    with db.write() as tx:
        store.create(tx, first, None)
    with db.write() as tx:
        with pytest.raises(Conflict):
            store.create(tx, opened("case_aaaaaaaa", title="other"), None)
        store.create(tx, opened("case_bbbbbbbb", title="other"), None)  # same transaction
    assert store.get("case_aaaaaaaa") == first
    other = store.get("case_bbbbbbbb")
    assert other is not None and other.title == "other"


def test_cases_are_listed_newest_first_by_status(db: Database) -> None:
    store = SqlCaseStore(db)
    cases = [
        opened("case_cccccccc", at_minutes=1),
        opened("case_aaaaaaaa", at_minutes=2),
        opened("case_bbbbbbbb", at_minutes=2),  # same time: the larger id first
        opened("case_dddddddd", at_minutes=0),
    ]
    with db.write() as tx:
        for c in cases:
            store.create(tx, c, None)
        assert store.close(tx, "case_cccccccc", at=T0, actor="cli:bo", outcome="lifted")
    ids = [c.id for c in store.recent()]
    assert ids == ["case_bbbbbbbb", "case_aaaaaaaa", "case_cccccccc", "case_dddddddd"]
    assert [c.id for c in store.recent(limit=2)] == ids[:2]
    assert [c.id for c in store.recent(status=CaseStatus.CLOSED)] == ["case_cccccccc"]
    assert [c.id for c in store.recent(status=CaseStatus.OPEN)] == [
        "case_bbbbbbbb",
        "case_aaaaaaaa",
        "case_dddddddd",
    ]


def test_a_case_closes_once(db: Database) -> None:
    store = SqlCaseStore(db)
    case = opened()
    later = T0 + timedelta(days=3)
    with db.write() as tx:
        store.create(tx, case, None)
    with db.write() as tx:
        assert store.close(tx, case.id, at=later, actor="cli:bo", outcome="block lifted")
    with db.write() as tx:
        assert not store.close(tx, case.id, at=T0, actor="cli:eve", outcome="other")
        assert not store.close(tx, "case_nothere", at=T0, actor="cli:eve", outcome="x")
    got = store.get(case.id)
    assert got is not None and got.status is CaseStatus.CLOSED
    assert (got.closed_at, got.closed_by, got.outcome) == (later, "cli:bo", "block lifted")


def test_events_are_numbered_per_case_in_order(db: Database) -> None:
    store = SqlCaseStore(db)
    one, two = opened(), opened()
    with db.write() as tx:
        store.create(tx, one, None)
        store.create(tx, two, None)
        store.append(tx, one.id, EventKind.OPEN, at=T0, actor="a", text="t")
        store.append(tx, two.id, EventKind.OPEN, at=T0, actor="a", text="u")
        store.append(tx, one.id, EventKind.FINDINGS, at=T0, actor="a", data={"sha256": "x"})
    with db.write() as tx:
        linked = store.append(tx, one.id, EventKind.LINK, at=T0, actor="b", campaign_id="cmp_1")
        assert store.is_linked(tx, one.id, "cmp_1")
        assert not store.is_linked(tx, two.id, "cmp_1")
        assert not store.is_linked(tx, one.id, "cmp_2")
    assert linked.seq == 3 and linked.case_id == one.id
    events = store.events(one.id)
    assert [(e.seq, e.kind) for e in events] == [
        (1, EventKind.OPEN),
        (2, EventKind.FINDINGS),
        (3, EventKind.LINK),
    ]
    assert events[1].data == {"sha256": "x"} and events[2].campaign_id == "cmp_1"
    assert events[2] == linked
    assert [e.seq for e in store.events(two.id)] == [1]
    assert store.events("case_nothere") == []


def test_concurrent_writers_never_take_one_number(db: Database) -> None:
    store = SqlCaseStore(db)
    case = opened()
    with db.write() as tx:
        store.create(tx, case, None)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                with db.write() as tx:
                    store.append(tx, case.id, EventKind.NOTE, at=T0, actor=f"w{n}", text=str(i))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    events = store.events(case.id)
    assert [e.seq for e in events] == list(range(1, 41))
    for n in range(4):  # each writer's notes in the order it wrote them
        assert [e.text for e in events if e.actor == f"w{n}"] == [str(i) for i in range(10)]
