"""Offline location resolution: `locate(signals)` answers "where is this device?".

The first call loads the shipped reference data (boundaries, MCC table, tz tables, RIR data) into
a process-wide `Locator`; every call after that is pure computation. Use a `Locator` of your own to
pick another IP data source (MaxMind, IP2Location) or to keep several configurations side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from regionlock.domain.location import LocationEstimate
from regionlock.domain.signals import Signals, parse_signals
from regionlock.geo.locator import Locator

__all__ = ["LocationEstimate", "Locator", "default_locator", "locate"]

_lock = threading.Lock()
_default: Locator | None = None


def default_locator() -> Locator:
    """The shared locator on the shipped data, loaded on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = Locator()
        return _default


def locate(signals: Signals | Mapping[str, Any]) -> LocationEstimate:
    """Where is this device? Accepts `Signals` or the JSON shape of a check-in's `signals`."""
    if not isinstance(signals, Signals):
        signals = parse_signals(signals)
    return default_locator().locate(signals)
