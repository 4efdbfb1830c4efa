"""What every router shares: the app's state, API-key roles, and the API's own errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from pydantic import AfterValidator, BaseModel, Field

from regionlock.api.metrics import Metrics
from regionlock.clock import Clock, SimulatedClock, SystemClock
from regionlock.domain.errors import InvalidInput, RegionlockError
from regionlock.domain.inputs import text_problem
from regionlock.geo.locator import Locator
from regionlock.services.access import Access
from regionlock.services.audit_tree import AuditSealer, AuditTree
from regionlock.services.campaign_runner import CampaignRunner, runner_owner
from regionlock.services.campaigns import Campaigns
from regionlock.services.checkin import CheckinService
from regionlock.services.checkin_queue import CheckinQueue
from regionlock.services.overview import Overview
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.services.privacy import Privacy, RetentionRunner
from regionlock.services.ratelimit import Rate, RateLimited, TokenBuckets
from regionlock.services.registry import Registry
from regionlock.services.webhook_sender import HttpSender, WebhookDispatcher
from regionlock.services.webhooks import Webhooks
from regionlock.settings import Settings
from regionlock.storage import Stores, open_stores
from regionlock.storage.apikeys import ApiKey, Role
from regionlock.storage.db import StoreUnavailable

log = logging.getLogger(__name__)


class Unauthorized(RegionlockError):
    """No API key, or one that is unknown, malformed or revoked."""


class Forbidden(RegionlockError):
    """The API key's role does not allow this."""


class UnsupportedMediaType(RegionlockError):
    """The body is not of the media type the operation takes."""


class PayloadTooLarge(RegionlockError):
    """The body is larger than the operation accepts."""


MAX_CHECKIN_BYTES = 64 * 1024  # docs/protocol.md


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# The same rule for the OpenAPI (clients and fuzzers generate from it).
TEXT_PATTERN = "^[^\\u0000]*$"  # lone surrogates cannot be sent in UTF-8 JSON at all
Text = Annotated[str, AfterValidator(_storable), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
# Text with something in it besides white space (a reason, a name): what the services require.
WORDS_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
"""A string member of a request body: text a store can hold (no NUL, no lone surrogate)."""


TextQuery = Annotated[
    str | None, Query(max_length=200, json_schema_extra={"pattern": TEXT_PATTERN})
]
"""An optional query parameter that is text (a filter, a subject)."""
KeyPath = Annotated[str, Path(max_length=200, json_schema_extra={"pattern": TEXT_PATTERN})]
"""A path segment naming a thing: a device (id or IMEI), an API key."""


class Reason(BaseModel):
    """Why an operator acts: every state-changing request carries it in its JSON body, and
    it goes into the audit trail."""

    reason: Text = Field(
        min_length=1,
        max_length=500,
        examples=["reported stolen"],
        json_schema_extra={"pattern": WORDS_PATTERN},
    )


def utf8(body: bytes, what: str, *, whole: bool = True) -> str:
    """A request body as text: UTF-8 (a leading byte order mark is dropped), never guessed.
    `whole`: the body is one text, refused as a whole if it holds a NUL; else (a CSV file)
    each part is judged on its own by its reader."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what} is not UTF-8 (byte {exc.start} cannot be read)") from None
    problem = text_problem(text) if whole else None
    if problem is not None:
        raise InvalidInput(f"{what} {problem}")
    return text


class State:
    """What the app holds for its lifetime (one per process): the stores, built once, and
    the services that take them."""

    def __init__(
        self,
        settings: Settings,
        locator: Locator | None,
        clock: Clock | None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        # A simulated clock only where the settings allow one (never in production).
        self.clock: Clock = clock or (
            SimulatedClock() if settings.simulated_clock else SystemClock()
        )
        self.stores: Stores = open_stores(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        self.stores.db.on_checkpoint = self.metrics.observe_checkpoint  # SQLite's, if any
        self.locator = locator or Locator(ip_source=settings.ip_db)
        self.checkins = CheckinService.of(self.stores, self.locator, settings)
        self.registry = Registry.of(self.stores)
        self.access = Access.of(self.stores)
        self.policies = PolicyAdmin.of(self.stores)
        self.api_limiter = TokenBuckets(Rate(settings.apikey_rate_per_hour, settings.apikey_burst))
        # Check-ins run in groups on threads of their own (group commit, see
        # services/checkin_queue.py), in relay: one judges a group while another stores the
        # group before, so the database's time is not the judging's (bench/README.md,
        # "Threads in relay").
        self.checkin_queue = CheckinQueue(
            self.checkins,
            threads=settings.checkin_thread_count,
            max_group=settings.checkin_group,
            max_waiting=settings.checkin_backlog,
            on_group=self.metrics.observe_group,
            on_stages=self.metrics.observe_stages,
        )
        self.campaigns = Campaigns.of(
            self.stores, clock=self.clock.now, lease_clock=lambda: datetime.now(UTC)
        )
        # Applies the campaigns started through the API (and those whose runner died) in the
        # background; a lease in the store keeps one runner on a campaign across processes.
        self.campaign_runner = CampaignRunner(
            self.campaigns, poll_s=settings.campaign_poll_s
        ).start()
        # Queues the events of what was recorded (here, by a campaign runner, or from the
        # command line) and sends them to the webhook endpoints (docs/webhooks.md).
        self.webhooks = Webhooks.of(self.stores, settings)
        self.webhook_sender = HttpSender(
            timeout_s=settings.webhook_timeout_s, allow_private=settings.webhook_allow_private
        )
        self.webhook_dispatcher = WebhookDispatcher(
            self.webhooks,
            self.webhook_sender,
            poll_s=settings.webhook_poll_s,
            senders=settings.webhook_senders,
            # Long enough for one attempt and its record; a process killed meanwhile leaves
            # the delivery to another once it runs out.
            lease=timedelta(seconds=settings.webhook_timeout_s + 5),
            # The audit sealer below seals; the outbox reads what the nodes' sealers, taking
            # turns, have sealed, instead of sealing in every node (docs/audit.md).
            seal=False,
            # and fans out unless another node is doing so right then.
            take_turns=True,
        ).start()
        # Deletes check-in rows past REGIONLOCK_RETENTION_DAYS once a day; the store's claim
        # makes one process of several run it (docs/privacy.md). Before that, each ended day
        # is snapshotted for the console's overview (the same counts whichever node does it).
        self.privacy = Privacy.of(self.stores)
        overview = Overview.of(self.stores)
        self.retention_runner = RetentionRunner(
            self.privacy,
            days=settings.retention_days,
            owner=runner_owner(),
            clock=self.clock.now,
            before=lambda now, stopping: self._daily(overview, now, stopping),
        ).start()
        # Seals the audit trail's settled entries into its Merkle tree and signs a tree head
        # every minute; the nodes' sealers take turns, about one seal a second between them
        # (docs/audit.md).
        self.audit_tree = AuditTree.of(self.stores)
        self.audit_sealer = AuditSealer(self.audit_tree, on_seal=self.metrics.observe_seal).start()

    def _daily(self, overview: Overview, now: datetime, stopping: Callable[[], bool]) -> None:
        """What the retention runner does before retention at every wake-up: PostgreSQL's
        check-in partitions for this month and the next two (or this day and the next 14),
        then the overview's snapshots."""
        try:
            made = self.stores.checkins.prepare_partitions(
                now, period=self.settings.checkin_partitions
            )
        except StoreUnavailable as exc:  # check-ins were holding the locks: next wake-up
            log.warning("check-in partitions not made now: %s", exc)
        else:
            if made:
                log.info("check-in partitions made: %s", ", ".join(made))
        overview.snapshot_missing(now, stopping=stopping)

    def close(self) -> None:
        self.audit_sealer.close()
        self.retention_runner.close()
        self.webhook_dispatcher.close()
        self.webhook_sender.close()
        self.campaign_runner.close()
        self.checkin_queue.close()
        self.stores.close()


def state_of(request: Request) -> State:
    state: State = request.app.state.regionlock
    return state


StateDep = Annotated[State, Depends(state_of)]


def authenticate(state: State, authorization: str | None, role: Role) -> ApiKey:
    """The API key an `Authorization: Bearer ...` header carries, if it has `role` at least."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("send 'Authorization: Bearer <api key>'")
    key = state.stores.apikeys.authenticate(authorization.removeprefix("Bearer ").strip())
    if key is None:
        raise Unauthorized("unknown or revoked API key")
    wait = state.api_limiter.take(key.id, time.monotonic())
    if wait is not None:
        raise RateLimited(f"this API key sends too many requests: try again in {wait} s", wait)
    return allowed(key, role)


def allowed(key: ApiKey, role: Role) -> ApiKey:
    """`key` if its role is at least `role`; Forbidden else."""
    if not key.role.allows(role):
        raise Forbidden(f"this needs the {role.value} role; the key is {key.role.value}")
    return key


def require(role: Role) -> Callable[..., ApiKey]:
    """A dependency admitting API keys with at least `role` (the key `RequestGuard` found
    before reading a body, or the one the Authorization header names)."""

    def check(
        request: Request, state: StateDep, authorization: Annotated[str | None, Header()] = None
    ) -> ApiKey:
        found: ApiKey | None = getattr(request.state, "api_key", None)
        if found is None:
            return authenticate(state, authorization, role)
        return allowed(found, role)

    return check


Viewer = Annotated[ApiKey, Depends(require(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(require(Role.OPERATOR))]
Admin = Annotated[ApiKey, Depends(require(Role.ADMIN))]
