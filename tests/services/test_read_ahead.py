"""`read_ahead`: a producer thread a few lists ahead, order kept, errors and early stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from regionlock.services.read_ahead import read_ahead


def test_items_come_in_order_in_lists_of_the_chunk_size() -> None:
    parts = list(read_ahead(range(10), chunk=4))
    assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_an_exact_multiple_of_the_chunk_ends_without_an_empty_list() -> None:
    assert list(read_ahead(range(8), chunk=4)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert list(read_ahead([], chunk=4)) == []


def test_the_items_are_iterated_on_another_thread() -> None:
    seen: list[str] = []

    def items() -> Iterator[int]:
        seen.append(threading.current_thread().name)
        yield 1

    assert list(read_ahead(items(), chunk=1)) == [[1]]
    assert seen == ["read-ahead"]


def test_an_error_while_iterating_comes_after_the_lists_before_it() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("line 6: not a row")

    got: list[list[int]] = []
    with pytest.raises(ValueError, match="line 6: not a row"):
        for part in read_ahead(items(), chunk=2):
            got.append(part)
    # The last, incomplete list was never handed over: the error came in its place.
    assert got == [[0, 1], [2, 3]]


def test_the_producer_runs_ahead_but_at_most_depth_lists() -> None:
    produced = 0

    def items() -> Iterator[int]:
        nonlocal produced
        for i in range(100):
            produced = i + 1
            yield i

    parts = read_ahead(items(), chunk=1, depth=2)
    assert next(parts) == [0]
    # One list taken, two waiting in the queue, and one more read, waiting for room: four.
    deadline = time.monotonic() + 2
    while produced < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert produced == 4
    assert next(parts) == [1]
    parts.close()


def test_stopping_early_stops_the_producer() -> None:
    stopped = threading.Event()

    def items() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            stopped.set()

    parts = read_ahead(items(), chunk=3, depth=1)
    assert next(parts) == [0, 1, 2]
    parts.close()
    assert stopped.wait(2), "the producer kept reading after the caller stopped"
    assert not any(t.name == "read-ahead" and t.is_alive() for t in threading.enumerate())


def test_an_error_in_the_caller_stops_the_producer() -> None:
    stopped = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            stopped.set()

    with pytest.raises(RuntimeError):
        for _ in read_ahead(items(), chunk=10, depth=1):
            raise RuntimeError("the store went away")
    assert stopped.wait(2)


@pytest.mark.parametrize(("chunk", "depth"), [(0, 1), (1, 0)])
def test_a_chunk_or_depth_below_one_is_refused(chunk: int, depth: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        next(read_ahead(range(3), chunk=chunk, depth=depth))
