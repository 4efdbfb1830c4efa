"""A value worked out at most every `ttl` seconds in this process, for pages that read much
of the store (the console's overview, the investigations ranking): a page is served the last
value, and a stale one starts a single thread working it out again. Only the first page after
a start waits. A `ttl` of 0 works it out for every page."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Recent(Generic[T]):
    def __init__(
        self,
        compute: Callable[[], T],
        ttl: float,
        *,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.compute = compute
        self.ttl = ttl
        self.name = name
        self.clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._at = 0.0
        self._refreshing = False

    def get(self) -> T:
        if self.ttl <= 0:
            return self._work()
        with self._lock:
            value, fresh = self._value, self.clock() - self._at < self.ttl
            if value is not None and not fresh and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh, name=self.name, daemon=True).start()
        if value is not None:
            return value
        return self._work()

    def _work(self) -> T:
        at = self.clock()
        value = self.compute()
        with self._lock:
            if at >= self._at:
                self._value, self._at = value, at
        return value

    def _refresh(self) -> None:
        try:
            self._work()
        except Exception:
            log.exception("%s: working it out again failed; the last value is served", self.name)
        finally:
            with self._lock:
                self._refreshing = False
