"""Where "now" comes from: the system clock, or a simulated one that a demo or test drives.

Days must pass in minutes when the demo simulates a week of check-ins, and a test must be able
to step time exactly. Everything that reads the time on the service takes a `Clock`; the agent
takes one too, so the service and the simulated devices can share one simulated time.

A simulated clock is a development feature only: `Settings` refuses it in production, so a
deployed service can never be told what time it is.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """A source of the current time (always timezone-aware UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ClockError(ValueError):
    """A simulated clock was asked to go backwards or given a naive time."""


class SimulatedClock:
    """Real time shifted by an offset that a demo or test sets; optionally standing still.

    Ticking (the default), it runs at real speed from the time last set, so the small delays
    between requests stay realistic. Frozen, it stands still until set, which is what tests
    want. It never goes backwards: presence histories, counters and leases all
    assume time moves forward, and a clock that jumped back would make the simulation lie.
    """

    def __init__(self, start: datetime | None = None, *, ticking: bool = True) -> None:
        self._lock = threading.Lock()
        self._ticking = ticking
        real = datetime.now(UTC)
        start = real if start is None else _aware(start)
        self._offset = start - real
        self._frozen_at = start

    def now(self) -> datetime:
        if not self._ticking:
            return self._frozen_at
        return datetime.now(UTC) + self._offset

    def set(self, when: datetime) -> datetime:
        """Jump to `when` (not before the current simulated time); returns the new time."""
        when = _aware(when)
        with self._lock:
            current = self.now()
            if when < current:
                raise ClockError(
                    f"the simulated clock does not go backwards ({when.isoformat()} is before "
                    f"{current.isoformat()})"
                )
            self._offset = when - datetime.now(UTC)
            self._frozen_at = when
        return when


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ClockError("a time must carry its time zone (e.g. 2021-09-20T08:00:00Z)")
    return when.astimezone(UTC)
