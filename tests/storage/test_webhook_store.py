"""The webhook store on both backends: endpoints round-trip, the cursor only moves forward, a
delivery is queued once, claimed by one claimer at a time and at most one per endpoint, and
recorded only by the claimer that holds it."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from storage_fixtures import T0, cursor_held_elsewhere

from regionlock.domain.webhooks import EVENT_TYPES, Delivery, Endpoint, new_secret
from regionlock.storage import Database
from regionlock.storage.db import new_id
from regionlock.storage.webhooks import Outcome, SqlWebhookStore


def endpoint(name: str = "crm", start_seq: int = 0) -> Endpoint:
    return Endpoint(
        id=new_id("wh_"),
        name=name,
        url="https://hooks.example.com/rl",
        events=EVENT_TYPES[:3],
        secret=new_secret(),
        created_at=T0,
        created_by="cli:ana",
        start_seq=start_seq,
    )


def delivery(endpoint_id: str, seq: int, *, due_minutes: int = 0) -> Delivery:
    return Delivery(
        id=new_id("dlv_"),
        endpoint_id=endpoint_id,
        event_id=f"msg_{seq}_x",
        event_type="device.locked",
        audit_seq=seq,
        body=b'{"type":"device.locked","data":{"device":"d\xc3\xa9v"}}',
        created_at=T0,
        status="pending",
        next_at=T0 + timedelta(minutes=due_minutes),
    )


def test_an_endpoint_round_trips_and_removing_it_drops_what_is_pending(db: Database) -> None:
    store = SqlWebhookStore(db)
    e = endpoint()
    with db.write() as tx:
        store.create_endpoint(tx, e)
        store.queue(tx, [delivery(e.id, 1), delivery(e.id, 2)])
    assert store.endpoint(e.id) == e and store.endpoints() == [e]
    changed = replace(
        e,
        secret=new_secret(),
        previous_secret=e.secret,
        previous_until=T0 + timedelta(hours=24),
        enabled=False,
        disabled_reason="410",
        last_digest="ab" * 32,
        failing_since=T0,
    )
    with db.write() as tx:
        store.save_endpoint(tx, changed)
    assert store.endpoint(e.id) == changed
    with db.write() as tx:
        assert store.remove_endpoint(tx, e.id)
        assert not store.remove_endpoint(tx, e.id)  # once
    assert store.endpoint(e.id) is None and store.endpoints() == []
    assert {d.status for d in store.deliveries(e.id)} == {"dropped"}
    assert store.endpoint("wh_nothere") is None and store.deliveries("wh_nothere") == []


def test_the_cursor_moves_only_forward(db: Database) -> None:
    store = SqlWebhookStore(db)
    with db.write() as tx:
        assert store.cursor_for_update(tx) == 0
        store.move_cursor(tx, 10)
    with db.write() as tx:
        store.move_cursor(tx, 4)  # backwards: ignored
        assert store.cursor_for_update(tx) == 10


def test_the_cursor_unless_busy_is_the_cursor_when_nobody_holds_it(db: Database) -> None:
    store = SqlWebhookStore(db)
    with db.write() as tx:
        assert store.cursor_unless_busy(tx) == 0
        store.move_cursor(tx, 7)
    with db.write() as tx:
        assert store.cursor_unless_busy(tx) == 7


def test_the_cursor_unless_busy_gives_none_while_another_holds_it(db: Database) -> None:
    """Several nodes' dispatchers take turns fanning out: one that finds the cursor held goes
    on at once instead of waiting (and waiting processes cost the database a backend each)."""
    if db.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's: SQLite's one writer serialises the fan-outs")
    store = SqlWebhookStore(db)
    with cursor_held_elsewhere(db), db.write() as tx:
        assert store.cursor_unless_busy(tx) is None
    with db.write() as tx:
        assert store.cursor_unless_busy(tx) == 0


def test_a_delivery_is_queued_once_and_its_body_kept_byte_for_byte(db: Database) -> None:
    store = SqlWebhookStore(db)
    e = endpoint()
    d = delivery(e.id, 7)
    with db.write() as tx:
        store.create_endpoint(tx, e)
        assert store.queue(tx, [d]) == 1
        store.queue(tx, [delivery(e.id, 7)])  # the same event again: left as it is
    [got] = store.deliveries(e.id)
    assert got == d and got.body == d.body


def test_claims_take_one_delivery_per_endpoint_and_only_due_ones(db: Database) -> None:
    store = SqlWebhookStore(db)
    a, b = endpoint("a"), endpoint("b")
    with db.write() as tx:
        store.create_endpoint(tx, a)
        store.create_endpoint(tx, b)
        store.queue(
            tx,
            [
                delivery(a.id, 1),
                delivery(a.id, 2),
                delivery(b.id, 3),
                delivery(b.id, 4, due_minutes=60),
            ],
        )
    assert store.backlog() == 4  # due or not
    lease = T0 + timedelta(minutes=1)
    first = store.claim(T0, "one", lease, 10)
    assert {(d.endpoint_id, d.audit_seq) for d in first} == {(a.id, 1), (b.id, 3)}
    # While those are out, nothing more of either endpoint is handed out.
    assert store.claim(T0, "two", lease, 10) == []
    with db.write() as tx:
        ok = Outcome("delivered", T0, 200, None, None)
        assert store.record(tx, first[0].id, "one", ok)
    assert store.backlog() == 3  # delivered: no longer pending
    # The recorded one's endpoint is free again: its next due delivery goes out (a's is
    # due; b's next one is not due for an hour).
    after = store.claim(T0, "two", lease, 10)
    expected = [(a.id, 2)] if first[0].endpoint_id == a.id else []
    assert [(d.endpoint_id, d.audit_seq) for d in after] == expected


def test_only_the_claimer_records_and_an_expired_lease_is_taken_over(db: Database) -> None:
    store = SqlWebhookStore(db)
    e = endpoint()
    d = delivery(e.id, 1)
    with db.write() as tx:
        store.create_endpoint(tx, e)
        store.queue(tx, [d])
    [mine] = store.claim(T0, "one", T0 + timedelta(seconds=30), 5)
    retry = Outcome("pending", T0, 500, "HTTP 500", T0 + timedelta(seconds=5))
    with db.write() as tx:
        assert not store.record(tx, mine.id, "someone else", retry)
    # The lease runs out: another claimer takes it over, and the first can no longer record.
    later = T0 + timedelta(seconds=31)
    [theirs] = store.claim(later, "two", later + timedelta(seconds=30), 5)
    assert theirs.id == d.id
    with db.write() as tx:
        assert not store.record(tx, d.id, "one", retry)
        assert store.record(tx, d.id, "two", retry)
    got = store.delivery(d.id)
    assert got is not None and got.attempts == 1 and got.status == "pending"
    assert (got.last_status, got.last_error, got.next_at) == (
        500,
        "HTTP 500",
        T0 + timedelta(seconds=5),
    )
    assert store.claim(T0 + timedelta(seconds=4), "x", later, 5) == []  # not due yet
    assert [x.id for x in store.claim(T0 + timedelta(seconds=5), "x", later, 5)] == [d.id]


def test_redelivery_queues_a_finished_delivery_again(db: Database) -> None:
    store = SqlWebhookStore(db)
    e = endpoint()
    d = delivery(e.id, 1)
    with db.write() as tx:
        store.create_endpoint(tx, e)
        store.queue(tx, [d])
    assert len(store.claim(T0, "one", T0 + timedelta(minutes=1), 1)) == 1
    with db.write() as tx:
        assert not store.redeliver(tx, d.id, T0)  # pending: nothing to do
        store.record(tx, d.id, "one", Outcome("failed", T0, 500, "HTTP 500", None))
        assert store.redeliver(tx, d.id, T0 + timedelta(hours=1))
        assert not store.redeliver(tx, "dlv_nothere", T0)
    got = store.delivery(d.id)
    assert got is not None and got.status == "pending" and got.next_at == T0 + timedelta(hours=1)
    assert got.attempts == 1  # its history is kept


def test_two_claimers_at_once_never_take_the_same_delivery(db: Database) -> None:
    store = SqlWebhookStore(db)
    endpoints = [endpoint(f"e{i}") for i in range(20)]
    with db.write() as tx:
        for i, e in enumerate(endpoints):
            store.create_endpoint(tx, e)
            store.queue(tx, [delivery(e.id, i)])
    taken: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def claim(owner: str) -> None:
        barrier.wait()
        got: list[str] = []
        for _ in range(10):
            got += [d.id for d in store.claim(T0, owner, T0 + timedelta(minutes=1), 3)]
        taken[owner] = got

    threads = [threading.Thread(target=claim, args=(f"o{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [x for got in taken.values() for x in got]
    assert len(everything) == len(set(everything)) == 20
