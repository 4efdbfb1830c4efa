"""The error hierarchy of regionlock.

An error says what went wrong, never how to answer it: the API edge maps each class to an HTTP
status and an RFC 9457 problem type (`regionlock.api.problems`), the command line to an exit
code and a message (`regionlock.cli.main`). The domain never raises anything else on bad input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

_T = TypeVar("_T")
_WORD = re.compile(r"(?<!^)(?=[A-Z])")


class RegionlockError(Exception):
    """Root of every error regionlock raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def kind(self) -> str:
        """The error's class in words (`BadSignature` -> `bad-signature`): a stable label for
        logs and a device's record of refusals, where no problem type applies."""
        return _WORD.sub("-", type(self).__name__).lower()


class InvalidInput(RegionlockError):
    """Input that cannot be understood; never guessed around."""


class InvalidSignal(InvalidInput):
    """One location signal is malformed (latitude 91, MCC "4x2", IP "999.1.1.1", ...)."""

    def __init__(self, signal: str, message: str) -> None:
        super().__init__(f"{signal}: {message}")
        self.signal = signal


class NotFound(RegionlockError):
    """Something the request names does not exist (a device, an API key, ...)."""


class Conflict(RegionlockError):
    """The request contradicts what is stored (a changed state, an existing version, ...)."""


class Unavailable(RegionlockError):
    """Something the work needs is missing or busy right now; the same request may succeed
    later (a data file, a signing key, room in a queue)."""


class DataUnavailable(Unavailable):
    """A configured data file (GeoIP database, boundaries) or the store is missing, unreadable
    or not at the schema version this code needs."""


def most_specific(table: Mapping[type, _T], error: type[BaseException]) -> _T | None:
    """The entry of `table` for the most specific class of `error` it lists (None: none); how
    the API edge and the command line each find their answer to an error."""
    for cls in error.__mro__:
        if cls in table:
            return table[cls]
    return None
