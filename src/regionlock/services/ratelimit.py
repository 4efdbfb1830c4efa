"""Rate limits: token buckets per device (check-ins) and per API key (operator requests).

A wrapper concern, kept out of the services' logic: the check-in service asks its limiter only
for a check-in that would otherwise be accepted (signed by the device, new nonce, higher
counter), so nobody but the device itself can spend its allowance; a flood of forged or
replayed tokens naming a device never makes that device wait. Operator requests are counted
per API key once the key is known.

Buckets live in the memory of one service process: each node limits what it serves. That
bounds a looping device or a runaway script without a write per request; the numbers in
docs/configuration.md are per process.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from regionlock.domain.errors import RegionlockError


class RateLimited(RegionlockError):
    """Too many requests from one device or one API key: come back after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Rate:
    """`burst` requests at once, refilled at `per_hour` an hour; `per_hour` 0: no limit."""

    per_hour: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.per_hour <= 0


class TokenBuckets:
    """One token bucket per key, at most `max_keys` of them (the least recently used go first:
    a forgotten key starts again with a full bucket, the safe direction for a device)."""

    def __init__(self, rate: Rate, *, max_keys: int = 1_000_000) -> None:
        self.rate = rate
        self._per_s = rate.per_hour / 3600
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def take(self, key: str, now_s: float) -> int | None:
        """Spend one token of `key` at time `now_s` (seconds, any epoch): None if allowed,
        else the whole seconds until one is there again."""
        if self.rate.unlimited:
            return None
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.rate.burst), now_s))
            tokens = min(float(self.rate.burst), tokens + max(0.0, now_s - at) * self._per_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now_s)
                wait = None
            else:
                self._buckets[key] = (tokens, now_s)
                wait = max(1, math.ceil((1.0 - tokens) / self._per_s))
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return wait

    def refund(self, key: str) -> None:
        """Give back a token `take` spent for work that was then not done (its transaction
        rolled back)."""
        if self.rate.unlimited:
            return
        with self._lock:
            found = self._buckets.get(key)
            if found is not None:
                tokens, at = found
                self._buckets[key] = (min(float(self.rate.burst), tokens + 1.0), at)
