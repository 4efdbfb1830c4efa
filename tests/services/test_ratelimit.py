"""Token buckets (services/ratelimit.py): a burst, then the rate; refusals spend nothing."""

from __future__ import annotations

from regionlock.services.ratelimit import Rate, TokenBuckets


def test_a_burst_then_the_rate() -> None:
    buckets = TokenBuckets(Rate(per_hour=60, burst=3))  # one a minute after three at once
    assert [buckets.take("d", 0.0) for _ in range(3)] == [None, None, None]
    assert buckets.take("d", 0.0) == 60  # the next token in a minute
    assert buckets.take("d", 30.0) == 30  # refused attempts cost nothing: still due at 60 s
    assert buckets.take("d", 60.0) is None
    assert buckets.take("d", 60.0) == 60
    assert buckets.take("other", 60.0) is None  # every key has its own bucket
    assert buckets.take("d", 60.0 + 3 * 3600) is None  # refilled, but never past the burst
    assert [buckets.take("d", 60.0 + 3 * 3600) for _ in range(3)] == [None, None, 60]


def test_a_clock_that_steps_back_refills_nothing() -> None:
    buckets = TokenBuckets(Rate(per_hour=3600, burst=1))
    assert buckets.take("d", 100.0) is None
    assert buckets.take("d", 50.0) == 1  # no negative refill, no crash


def test_no_limit_and_a_bounded_memory() -> None:
    assert all(TokenBuckets(Rate(0, 1)).take("d", 0.0) is None for _ in range(1000))
    buckets = TokenBuckets(Rate(per_hour=1, burst=1), max_keys=2)
    assert buckets.take("a", 0.0) is None and buckets.take("b", 0.0) is None
    assert buckets.take("c", 0.0) is None  # "a", least recently used, is forgotten
    assert buckets.take("a", 0.0) is None  # forgotten: a full bucket again (the safe way)
    assert buckets.take("c", 0.0) is not None
