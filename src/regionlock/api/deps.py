"""What every route shares: the app's state, API-key roles, and problem+json errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from regionlock.clock import Clock, SimulatedClock, SystemClock
from regionlock.domain.errors import RegionlockError
from regionlock.geo.locator import Locator
from regionlock.services.access import Access
from regionlock.services.checkin import CheckinService
from regionlock.services.checkin_queue import CheckinQueue
from regionlock.services.registry import Registry
from regionlock.settings import Settings
from regionlock.storage import open_database
from regionlock.storage.apikeys import ApiKey, Role, SqlApiKeyStore

PROBLEM_BASE = "https://regionlock.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class Unauthorized(RegionlockError):
    status = 401
    type_slug = "unauthorized"


class Forbidden(RegionlockError):
    status = 403
    type_slug = "forbidden"


class UnsupportedMediaType(RegionlockError):
    status = 415
    type_slug = "unsupported-media-type"


class PayloadTooLarge(RegionlockError):
    status = 413
    type_slug = "payload-too-large"


MAX_CHECKIN_BYTES = 64 * 1024  # docs/protocol.md


def problem(
    status: int, slug: str, detail: str, instance: str, extra: dict[str, Any] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": slug.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


class State:
    """What the app holds for its lifetime (one per process)."""

    def __init__(self, settings: Settings, locator: Locator | None, clock: Clock | None) -> None:
        self.settings = settings
        # A simulated clock only where the settings allow one (never in production).
        self.clock: Clock = clock or (
            SimulatedClock() if settings.simulated_clock else SystemClock()
        )
        self.db = open_database(settings.database_url)
        self.locator = locator or Locator(ip_source=settings.ip_db)
        self.checkins = CheckinService(self.db, self.locator, settings)
        self.registry = Registry(self.db)
        self.apikeys = SqlApiKeyStore(self.db)
        self.access = Access(self.db)
        # Check-ins run in groups on a thread of their own (group commit, see
        # services/checkin_queue.py). One thread: a second one, on PostgreSQL, overlapped round
        # trips but fought the first for the GIL and the row locks (bench/README.md).
        threads = settings.checkin_threads
        self.checkin_queue = CheckinQueue(
            self.checkins,
            threads=threads,
            max_group=settings.checkin_group,
            max_waiting=settings.checkin_backlog,
        )


def state_of(request: Request) -> State:
    state: State = request.app.state.regionlock
    return state


StateDep = Annotated[State, Depends(state_of)]


def require(role: Role) -> Callable[..., ApiKey]:
    """A dependency admitting API keys with at least `role`."""

    def check(state: StateDep, authorization: Annotated[str | None, Header()] = None) -> ApiKey:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("send 'Authorization: Bearer <api key>'")
        key = state.apikeys.authenticate(authorization.removeprefix("Bearer ").strip())
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        if not key.role.allows(role):
            raise Forbidden(f"this needs the {role.value} role; the key is {key.role.value}")
        return key

    return check


Viewer = Annotated[ApiKey, Depends(require(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(require(Role.OPERATOR))]
Admin = Annotated[ApiKey, Depends(require(Role.ADMIN))]
