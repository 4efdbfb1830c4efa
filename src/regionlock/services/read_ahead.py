"""Work on the next items while the caller waits on the store: one producer thread, bounded.

A bulk import alternates between parsing rows (Python, CPU) and writing them (waiting on the
database, which does its part on another core). `read_ahead` moves the first to a thread of
its own so the two overlap: while the caller's transaction is with the database, and holds no
GIL, the next rows are being parsed. The items reach the caller in their order, in lists.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

# How long the caller, when it stops early, waits for the producer to notice. A producer
# blocked reading its input (a pipe) may not; it is a daemon thread and gives up once the
# input is closed.
_STOP_WAIT_S = 5.0
_POLL_S = 0.05


class _Done:
    pass


_DONE = _Done()


def read_ahead(items: Iterable[T], *, chunk: int, depth: int = 4) -> Iterator[list[T]]:
    """`items`, in order, in lists of `chunk` (the last may be shorter), iterated by a thread
    of its own at most `depth` lists ahead of the caller.

    An exception raised while iterating `items` is raised here, after the lists before it.
    When the caller stops early (an error of its own, or closing the generator), the producer
    stops at its next list, and nothing it read afterwards is used.
    """
    if chunk < 1 or depth < 1:
        raise ValueError("chunk and depth must be at least 1")
    ready: queue.Queue[list[T] | BaseException | _Done] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(value: list[T] | BaseException | _Done) -> bool:
        while not stop.is_set():
            try:
                ready.put(value, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            part: list[T] = []
            for item in iterator:
                part.append(item)
                if len(part) == chunk:
                    if not hand_over(part):
                        return
                    part = []
            if part and not hand_over(part):
                return
            hand_over(_DONE)
        except BaseException as exc:  # handed to the caller, whatever it is
            hand_over(exc)
        finally:
            # A generator stopped early is closed here, on its own thread: its clean-up runs
            # now, not whenever it is collected.
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            value = ready.get()
            if isinstance(value, _Done):
                return
            if isinstance(value, BaseException):
                raise value
            yield value
    finally:
        stop.set()
        producer.join(_STOP_WAIT_S)
