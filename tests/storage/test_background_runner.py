"""The service's background campaign runner on both stores: it applies what is runnable, two
of them on one store change each device once, it takes over a dead runner's campaign once the
lease expires, it outlives store outages, and it stops between chunks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from campaign_fixtures import campaign_entries, plain_fleet
from storage_fixtures import T0

from regionlock.domain.campaign import CampaignAction, CampaignState, Selection
from regionlock.services.campaign_runner import CampaignRunner, runner_owner
from regionlock.services.campaigns import Campaigns
from regionlock.storage import Database, Stores
from regionlock.storage.db import StoreUnavailable, epoch_ms


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.at


def started(db: Database, clock: Clock, stages: tuple[float, ...] = (100.0,)) -> str:
    svc = Campaigns.of(Stores.on(db), clock=clock)
    c = svc.create(
        name="leak",
        action=CampaignAction.LOCK,
        reason="batch leaked",
        selection=Selection(),
        actor="apikey:a (ops)",
        now=T0,
        stages=stages,
    )
    svc.start(c.id, actor="apikey:a (ops)", now=T0)
    return c.id


def until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"still not {what}"
        time.sleep(0.02)


def state_of(db: Database, cid: str) -> CampaignState:
    found = Stores.on(db).campaigns.get(cid)
    assert found is not None
    return found.state


def exactly_once(db: Database, cid: str, targets: list[str]) -> None:
    entries = campaign_entries(db)
    assert sorted(d for (c, d) in entries if c == cid) == targets
    assert set(entries.values()) == {1}


def test_owners_are_unique_per_runner() -> None:
    owners = {runner_owner() for _ in range(50)}
    assert len(owners) == 50 and all(o.count(":") == 2 for o in owners)


def test_the_thread_applies_a_running_campaign_and_is_woken_for_the_next(db: Database) -> None:
    targets = plain_fleet(db, 120)
    clock = Clock()
    cid = started(db, clock, stages=(50.0, 100.0))
    runner = CampaignRunner(Campaigns.of(Stores.on(db), clock=clock), poll_s=600, chunk=7)
    runner.start()
    try:
        until(lambda: state_of(db, cid) is CampaignState.WAITING, "waiting")  # first pass
        Campaigns.of(Stores.on(db), clock=clock).advance(cid, actor="ops", now=T0)
        runner.wake()  # the poll is 10 minutes away: only the wake-up runs stage 2
        until(lambda: state_of(db, cid) is CampaignState.DONE, "done")
    finally:
        runner.close()
    exactly_once(db, cid, targets)
    assert Stores.on(db).campaigns.lease(cid)[0] is None  # released


def test_two_runners_on_one_store_change_each_device_once(db: Database) -> None:
    targets = plain_fleet(db, 300)
    clock = Clock()
    cid = started(db, clock)
    runners = [
        CampaignRunner(Campaigns.of(Stores.on(db), clock=clock), poll_s=0.05, chunk=10)
        for _ in range(2)
    ]
    for r in runners:
        r.start()
    try:
        until(lambda: state_of(db, cid) is CampaignState.DONE, "done")
    finally:
        for r in runners:
            r.close()
    exactly_once(db, cid, targets)
    assert Stores.on(db).campaigns.get(cid).counts.applied == 300  # type: ignore[union-attr]


def test_two_passes_at_once_run_one_campaign_once(db: Database) -> None:
    targets = plain_fleet(db, 200)
    clock = Clock()
    cid = started(db, clock)
    runners = [CampaignRunner(Campaigns.of(Stores.on(db), clock=clock), chunk=10) for _ in range(2)]
    barrier = threading.Barrier(2)
    applied: list[int] = []

    def one_pass(r: CampaignRunner) -> None:
        barrier.wait()
        applied.append(sum(report.applied for report in r.run_once()))

    threads = [threading.Thread(target=one_pass, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(applied) == 200 and state_of(db, cid) is CampaignState.DONE
    exactly_once(db, cid, targets)


def test_a_dead_runners_campaign_is_taken_over_when_its_lease_expires(db: Database) -> None:
    targets = plain_fleet(db, 30)
    clock = Clock()
    cid = started(db, clock)
    svc = Campaigns.of(Stores.on(db), clock=clock)
    # A CLI run on another machine claimed it and died (kill -9): its lease stays 30 s.
    assert Stores.on(db).campaigns.claim(
        cid, "other-host:1:dead", epoch_ms(T0 + svc.lease), epoch_ms(T0)
    )
    runner = CampaignRunner(svc)
    assert runner.run_once() == [] and state_of(db, cid) is CampaignState.RUNNING
    clock.at = T0 + svc.lease + timedelta(seconds=1)
    (report,) = runner.run_once()
    assert report.stopped == "done" and report.applied == 30
    exactly_once(db, cid, targets)


def test_a_campaign_paused_after_it_was_listed_is_left_alone(db: Database) -> None:
    plain_fleet(db, 10)
    clock = Clock()
    cid = started(db, clock)
    svc = Campaigns.of(Stores.on(db), clock=clock)

    class PausedMeanwhile(Campaigns):
        def runnable(self) -> list[str]:
            found = super().runnable()
            svc.pause(cid, actor="ops", reason="calls", now=T0)
            return found

    runner = CampaignRunner(PausedMeanwhile.of(Stores.on(db), clock=clock))
    assert runner.run_once() == [] and state_of(db, cid) is CampaignState.PAUSED
    assert campaign_entries(db) == {}


def test_a_store_outage_is_logged_once_and_the_runner_carries_on(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    targets = plain_fleet(db, 20)
    clock = Clock()
    cid = started(db, clock)
    down = threading.Event()
    down.set()
    polls: list[float] = []

    class Flaky(Campaigns):
        def runnable(self) -> list[str]:
            polls.append(time.monotonic())
            if down.is_set():
                raise StoreUnavailable("the database is restarting")
            return super().runnable()

    caplog.set_level(logging.WARNING, logger="regionlock.services.campaign_runner")
    runner = CampaignRunner(Flaky.of(Stores.on(db), clock=clock), poll_s=0.05).start()
    try:
        until(lambda: len(polls) >= 5, "polled through the outage")
        assert state_of(db, cid) is CampaignState.RUNNING
        down.clear()
        until(lambda: state_of(db, cid) is CampaignState.DONE, "done after the outage")
    finally:
        runner.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("restarting" in m for m in messages) == 1, messages
    assert sum("answers again" in m for m in messages) == 1, messages
    exactly_once(db, cid, targets)


def test_close_stops_between_chunks_and_releases_the_lease(db: Database) -> None:
    targets = plain_fleet(db, 100)
    clock = Clock()
    cid = started(db, clock)
    first_chunk, go_on = threading.Event(), threading.Event()
    runner = CampaignRunner(Campaigns.of(Stores.on(db), clock=clock), poll_s=600, chunk=10)
    stop_between = runner._between_chunks

    def held(c: object) -> None:  # the first chunk has committed: close the runner now
        first_chunk.set()
        go_on.wait(10)
        stop_between(c)  # type: ignore[arg-type]

    runner._between_chunks = held  # type: ignore[method-assign]
    runner.start()
    assert first_chunk.wait(10)
    closing = threading.Thread(target=runner.close)
    closing.start()
    until(lambda: runner._stop.is_set(), "stopping")
    go_on.set()
    closing.join(10)
    assert not runner.alive
    c = Stores.on(db).campaigns.get(cid)
    assert c is not None and c.state is CampaignState.RUNNING and c.counts.applied == 10
    assert Stores.on(db).campaigns.lease(cid)[0] is None
    # Another runner finishes it: every device once.
    (report,) = CampaignRunner(Campaigns.of(Stores.on(db), clock=clock)).run_once()
    assert report.stopped == "done" and report.applied == 90
    exactly_once(db, cid, targets)
