"""The error hierarchy of regionlock.

Every error carries the HTTP status it maps to, so the API layer can turn any of them into an
RFC 9457 problem document in one place. The domain never raises anything else on bad input.
"""

from __future__ import annotations


class RegionlockError(Exception):
    """Root of every error regionlock raises on purpose."""

    status: int = 500
    type_slug: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(RegionlockError):
    """Input that cannot be understood; never guessed around."""

    status = 422
    type_slug = "invalid-input"


class InvalidSignal(InvalidInput):
    """One location signal is malformed (latitude 91, MCC "4x2", IP "999.1.1.1", ...)."""

    type_slug = "invalid-signal"

    def __init__(self, signal: str, message: str) -> None:
        super().__init__(f"{signal}: {message}")
        self.signal = signal


class DataUnavailable(RegionlockError):
    """A configured data file (GeoIP database, boundaries) is missing or unreadable."""

    status = 503
    type_slug = "data-unavailable"
