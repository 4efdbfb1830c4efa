"""Group commit for the HTTP service: check-ins queue up and run in groups on worker threads.

Under load, every check-in paying for its own transaction is most of the cost (on SQLite a
BEGIN IMMEDIATE, a COMMIT and a read of the audit head each time; on PostgreSQL a round trip
per statement and a WAL flush per commit). The queue lets a worker thread take whatever has
arrived while it was busy - one check-in when the service is quiet, dozens under load - and
hand it to `CheckinService.begin`, which verifies and locates each one and judges the group on
a snapshot; the group's `store` then records it in one transaction, and its `answer` signs the
verdicts. Nothing waits to fill a group: latency at low load is that of a single check-in.

The threads work in relay (`_Relay`): one at a time takes a group and judges it, and groups are
stored in the order they were taken. While one thread waits for the database to store a group,
another judges the next: on PostgreSQL, whose round trips and commits are time the worker
would otherwise sit idle, that is about 15 % more check-ins a second with the database on a
core of its own (bench/README.md, "Threads in relay"). A group judged while the one before was
being stored is stored only if none of its devices moved meanwhile, else judged again under
its rows' locks (`CheckinService._store_plan`), so a device's check-ins keep their order.

Results go back to the event loop that asked, one wake-up per group and loop.

The queue is bounded (`max_waiting`): past it, a check-in is refused at once with `ServiceBusy`
(503, `Retry-After`) instead of waiting behind seconds of work - by then the device would have
given up, and its retry would only add to the pile. The device keeps its current verdict and
lease and checks in again later (docs/protocol.md, errors).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from regionlock.domain.errors import Unavailable
from regionlock.services.checkin import CheckinCall, CheckinGroup, CheckinService

Outcome = dict[str, Any] | Exception
log = logging.getLogger(__name__)
# Check-ins per group at most: enough to amortise a transaction, few enough that a group's
# wait stays short (bench/README.md, check-in service).
MAX_GROUP = 64
# Check-ins waiting at most: about a second of work at this VM's rate (bench/README.md).
MAX_WAITING = 1024
RETRY_AFTER_S = 5


class ServiceBusy(Unavailable):
    """Too many check-ins are waiting: come back later (the current verdict stands)."""

    def __init__(self, message: str, retry_after_s: int = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class _Job:
    call: CheckinCall
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[dict[str, Any]]


def _settle(results: list[tuple[asyncio.Future[dict[str, Any]], Outcome]]) -> None:
    """Hand each caller its outcome; one that cannot be handed over never strands the rest."""
    for future, outcome in results:
        if future.done():  # the client went away; the check-in is recorded all the same
            continue
        try:
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        except Exception as exc:  # e.g. asyncio refuses StopIteration as a future's exception
            error = RuntimeError(f"the check-in failed: {outcome!r}")
            error.__cause__ = exc
            future.set_exception(error)


def _failed(jobs: list[_Job], exc: Exception) -> list[Outcome]:
    """Every check-in of a group that failed as a whole (a bug), and the log's word of it."""
    log.exception("a group of %d check-ins failed as a whole", len(jobs), exc_info=exc)
    return [RuntimeError(f"the check-in failed: {exc!r}") for _ in jobs]


class _Relay:
    """How the queue's threads share the work of successive groups: one at a time takes a
    group and judges it (`judging`), and groups are stored in the order they were taken
    (`turn`), so that one thread judges the next group while another stores the one before
    and signs its verdicts. A device's check-ins are thus judged and stored in the order they
    arrived, as with one thread."""

    def __init__(self) -> None:
        self.judging = threading.Lock()
        self._stored = threading.Condition()
        self._taken = 0  # tickets handed out (under `judging`)
        self._due = 0  # the ticket whose group stores next

    def ticket(self) -> int:
        """The next group's place in the storing order (call while holding `judging`)."""
        self._taken += 1
        return self._taken - 1

    @contextmanager
    def turn(self, ticket: int) -> Iterator[None]:
        """Wait until the groups taken before have been stored; the next one's turn after."""
        with self._stored:
            self._stored.wait_for(lambda: self._due == ticket)
        try:
            yield
        finally:
            with self._stored:
                self._due += 1
                self._stored.notify_all()


class CheckinQueue:
    """Worker threads running queued check-ins in groups of at most `max_group`, with at most
    `max_waiting` check-ins queued."""

    def __init__(
        self,
        service: CheckinService,
        *,
        threads: int = 1,
        max_group: int = MAX_GROUP,
        max_waiting: int = MAX_WAITING,
        on_group: Callable[[int, int], None] | None = None,
        on_stages: Callable[[float, float, float], None] | None = None,
    ) -> None:
        """`on_group(size, still waiting)` is told of each group as a writer takes it, and
        `on_stages(judge, store, answer)` of the seconds each of a group's stages took: its
        `begin`, its store (waiting for the group before it included) and its answers (the
        service's metrics)."""
        if threads < 1 or max_group < 1 or max_waiting < 1:
            raise ValueError("threads, max_group and max_waiting must be at least 1")
        self.service = service
        self.max_group = max_group
        self.max_waiting = max_waiting
        self.on_group = on_group
        self.on_stages = on_stages
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._relay = _Relay()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"checkin-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def check_in(self, call: CheckinCall) -> dict[str, Any]:
        """Queue one check-in and wait for its outcome (raises the error it ran into)."""
        if self._closed:
            raise ServiceBusy("this service node is shutting down; check in again later")
        if self._queue.qsize() >= self.max_waiting:
            raise ServiceBusy(
                f"{self.max_waiting} check-ins are already waiting; keep the current verdict"
                f" and check in again in {RETRY_AFTER_S} s or later"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._queue.put(_Job(call, loop, future))
        return await future

    def close(self) -> None:
        """Finish what is queued, then stop the threads."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        clock = time.perf_counter
        while True:
            with self._relay.judging:
                jobs, stop = self._take()
                if jobs:
                    ticket = self._relay.ticket()
                    taken = clock()
                    group = self._begin(jobs)
                    judged = clock()
            if jobs:
                with self._relay.turn(ticket):
                    outcomes = self._store(jobs, group)
                stored = clock()
                self._settle(jobs, outcomes if outcomes is not None else self._answer(jobs, group))
                if self.on_stages is not None:
                    self._tell_stages(judged - taken, stored - judged, clock() - stored)
            if stop:
                return

    def _tell_stages(self, judge: float, store: float, answer: float) -> None:
        assert self.on_stages is not None
        try:
            self.on_stages(judge, store, answer)
        except Exception:  # counting must never stop the check-ins
            log.exception("the check-in queue's stage metrics failed")

    def _take(self) -> tuple[list[_Job], bool]:
        """The next group: the first check-in waiting (waiting for one if need be) and what
        else has arrived, up to `max_group`; and whether the queue is closing."""
        job = self._queue.get()
        if job is None:
            return [], True
        jobs = [job]
        while len(jobs) < self.max_group:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return jobs, True
            jobs.append(more)
        if self.on_group is not None:
            self.on_group(len(jobs), self._queue.qsize())
        return jobs, False

    # `begin`, `store` and `answer` keep errors per check-in: one that escapes them is a bug,
    # and fails every check-in of its group (`_failed`).

    def _begin(self, jobs: list[_Job]) -> CheckinGroup | Exception:
        try:
            return self.service.begin([j.call for j in jobs])
        except Exception as exc:
            return exc

    def _store(self, jobs: list[_Job], group: CheckinGroup | Exception) -> list[Outcome] | None:
        """Store a group begun; its outcomes if it failed as a whole, else None."""
        try:
            if isinstance(group, Exception):
                raise group
            group.store()
            return None
        except Exception as exc:
            return _failed(jobs, exc)

    def _answer(self, jobs: list[_Job], group: CheckinGroup | Exception) -> list[Outcome]:
        assert not isinstance(group, Exception)
        try:
            return list(group.answer())
        except Exception as exc:
            return _failed(jobs, exc)

    def _settle(self, jobs: list[_Job], outcomes: list[Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = defaultdict(list)
        for job, outcome in zip(jobs, outcomes, strict=True):
            by_loop[job.loop].append((job.future, outcome))
        for loop, results in by_loop.items():
            with suppress(RuntimeError):  # that loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, results)
