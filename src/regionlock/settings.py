"""One typed, validated configuration: REGIONLOCK_* environment variables.

Every setting is listed in docs/configuration.md (a test keeps that table complete). Settings
are passed explicitly to what needs them; nothing reads the environment behind your back.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from regionlock.domain.errors import InvalidInput
from regionlock.domain.webhooks import parse_schedule
from regionlock.storage.checkins import PARTITION_AHEAD
from regionlock.storage.db import DEFAULT_URL, SQLITE_SYNCHRONOUS, DatabaseUrl

PREFIX = "REGIONLOCK_"


@dataclass(frozen=True, slots=True)
class Settings:
    """The service's configuration. Field docs are the user-facing documentation."""

    environment: str = "development"
    """`development` or `production`. Production refuses test-only features."""
    database_url: str = DEFAULT_URL
    """`sqlite:///FILE` (default, nothing to set up) or `postgresql://USER@HOST/DB`."""
    host: str = "127.0.0.1"
    """Address `regionlock serve` listens on."""
    port: int = 8000
    """Port `regionlock serve` listens on."""
    workers: int = 1
    """Worker processes for `regionlock serve`."""
    ip_db: str = "rir"
    """IP data: `rir` (shipped RIR data), `maxmind:FILE.mmdb` or `ip2location:FILE.BIN`."""
    trusted_proxies: tuple[str, ...] = ()
    """Comma-separated CIDRs whose X-Forwarded-For is believed; empty = use the peer address."""
    service_id: str = "regionlock"
    """The `iss` of every verdict token."""
    clock_skew_s: int = 300
    """How far a check-in's `iat` may be from the server's clock, in seconds."""
    simulated_clock: bool = False
    """Let a demo drive the clock (days pass in minutes) through `PUT /v1/clock` (admin).
    Refused in production and with more than one worker."""
    checkin_threads: int = 0
    """Check-in threads per worker process, in relay: one judges the next group of check-ins
    while another stores the group before (more cores: more workers, not threads). 0: by the
    store, 2 on PostgreSQL (whose round trips the second thread fills), 1 on SQLite."""
    checkin_group: int = 64
    """Most check-ins recorded in one transaction (group commit under load; 1 = none)."""
    checkin_backlog: int = 1024
    """Most check-ins waiting per worker; past it a check-in gets 503 service-busy at once."""
    device_rate_per_hour: int = 60
    """Accepted check-ins per device an hour, per service process, after a burst (0: no
    limit); past it a device gets 429 rate-limited with Retry-After."""
    device_burst: int = 20
    """Check-ins a device may make at once before `device_rate_per_hour` applies."""
    apikey_rate_per_hour: int = 36_000
    """Operator requests per API key an hour (10 a second), per service process, after a
    burst (0: no limit); past it 429 rate-limited with Retry-After."""
    apikey_burst: int = 200
    """Operator requests an API key may make at once before `apikey_rate_per_hour` applies."""
    sqlite_synchronous: str = "NORMAL"
    """SQLite only: `NORMAL` (a power loss may undo the last commits) or `FULL` (every commit
    is on disk before it is answered); docs/configuration.md, "Durability"."""
    campaign_approval_devices: int = 10_000
    """Through the API, a campaign over this many devices needs a second admin's approval
    before it starts (the four-eyes rule; docs/campaigns.md)."""
    campaign_approval_share: float = 0.10
    """... or over this share of the registered fleet (0 to 1)."""
    campaign_poll_s: float = 2.0
    """How often a service's background runner looks for campaigns to run, in seconds."""
    log_format: str = "text"
    """How the service writes its log lines to stderr: `text` (one readable line each) or
    `json` (one JSON object per line, for a log collector; docs/operating.md, "Logs")."""
    log_level: str = "INFO"
    """The least severe level logged: DEBUG, INFO, WARNING or ERROR."""
    metrics_public: bool = False
    """Serve `/metrics` to anyone (a scraper on a private network); off: a viewer's API key
    is needed, as Prometheus sends it with `authorization: credentials_file`."""
    console_overview_ttl_s: float = 30.0
    """How old the console overview's count of the fleet may be, in seconds: it counts every
    device, so each service process counts at most this often (docs/console.md)."""
    webhook_allow_private: bool = False
    """Let webhooks go to loopback, private and link-local addresses (tests, receivers on the
    same premises). Off: such destinations are refused (server-side request forgery)."""
    webhook_timeout_s: float = 15.0
    """How long one webhook attempt may take, in seconds, before it counts as failed."""
    webhook_retry: str = "5s,5m,30m,2h,5h,10h"
    """The delays between a webhook's attempts after the first (then it has failed)."""
    webhook_disable_after_h: float = 120.0
    """An endpoint whose every attempt has failed for this many hours is disabled."""
    webhook_poll_s: float = 1.0
    """How often a service looks for events to queue and deliveries that are due, in seconds."""
    webhook_senders: int = 8
    """Deliveries a service process sends at once (at most one per endpoint)."""
    retention_days: int = 180
    """Check-in rows older than this many days are deleted (their days of presence folded
    into the device state first): daily by the service, or `regionlock retention run`."""
    checkin_partitions: str = "month"
    """PostgreSQL only: the check-in history's partitions, `month` or `day` (UTC). Days keep
    each partition's indexes in memory for fleets of tens of millions checking in daily
    (docs/operating.md, "Partitions"); set the same on every node and for `regionlock migrate`."""

    @property
    def checkin_thread_count(self) -> int:
        """`checkin_threads`, with 0 resolved by the store: on PostgreSQL a second thread
        judges the next group while the database stores one (about 15 % more check-ins a
        second with the database on a core of its own); on SQLite, whose writes are this
        process's own CPU work, it gained nothing (bench/README.md, "Threads in relay")."""
        if self.checkin_threads:
            return self.checkin_threads
        return 2 if DatabaseUrl.parse(self.database_url).dialect == "postgresql" else 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read REGIONLOCK_* variables (default: os.environ); InvalidInput names a bad one."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = source.get(PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            name = PREFIX + f.name.upper()
            default = f.default
            if isinstance(default, bool):
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise InvalidInput(f"{name}={raw!r}: expected true or false")
                values[f.name] = raw.lower() in ("1", "true", "yes")
            elif isinstance(default, float):
                try:
                    values[f.name] = float(raw)
                except ValueError:
                    raise InvalidInput(f"{name}={raw!r}: expected a number") from None
            elif isinstance(default, int):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise InvalidInput(f"{name}={raw!r}: expected an integer") from None
            elif isinstance(default, tuple):
                values[f.name] = tuple(x.strip() for x in raw.split(",") if x.strip())
            else:
                values[f.name] = raw
        return cls(**values).validated()

    def validated(self) -> Settings:
        if self.environment not in ("development", "production"):
            raise InvalidInput(
                f"REGIONLOCK_ENVIRONMENT={self.environment!r}: expected development or production"
            )
        DatabaseUrl.parse(self.database_url)
        if self.log_format not in ("text", "json"):
            raise InvalidInput(f"{PREFIX}LOG_FORMAT={self.log_format!r}: expected text or json")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise InvalidInput(
                f"{PREFIX}LOG_LEVEL={self.log_level!r}: expected DEBUG, INFO, WARNING or ERROR"
            )
        if not 0 < self.port < 65536:
            raise InvalidInput(f"REGIONLOCK_PORT={self.port}: not a TCP port")
        if not 1 <= self.workers <= 64:
            raise InvalidInput(f"REGIONLOCK_WORKERS={self.workers}: expected 1 to 64")
        if not 0 < self.clock_skew_s <= 3600:
            raise InvalidInput(f"REGIONLOCK_CLOCK_SKEW_S={self.clock_skew_s}: expected 1..3600")
        if not 0 <= self.checkin_threads <= 32:
            raise InvalidInput(
                f"REGIONLOCK_CHECKIN_THREADS={self.checkin_threads}: expected 0 (by the store)"
                " to 32"
            )
        if not 1 <= self.checkin_backlog <= 1_000_000:
            raise InvalidInput(
                f"REGIONLOCK_CHECKIN_BACKLOG={self.checkin_backlog}: expected 1..1000000"
            )
        if not 1 <= self.checkin_group <= 1000:
            raise InvalidInput(f"REGIONLOCK_CHECKIN_GROUP={self.checkin_group}: expected 1..1000")
        if not 1 <= self.retention_days <= 100_000:
            raise InvalidInput(
                f"REGIONLOCK_RETENTION_DAYS={self.retention_days}: expected 1 to 100000"
            )
        if self.checkin_partitions not in PARTITION_AHEAD:
            raise InvalidInput(
                f"{PREFIX}CHECKIN_PARTITIONS={self.checkin_partitions!r}: expected month or day"
            )
        for name in ("device_rate_per_hour", "apikey_rate_per_hour"):
            if not 0 <= getattr(self, name) <= 100_000_000:
                raise InvalidInput(f"{PREFIX}{name.upper()}: expected 0 (no limit) to 100000000")
        for name in ("device_burst", "apikey_burst"):
            if not 1 <= getattr(self, name) <= 1_000_000:
                raise InvalidInput(f"{PREFIX}{name.upper()}: expected 1 to 1000000")
        if not 0 <= self.campaign_approval_devices <= 1_000_000_000:
            raise InvalidInput(f"{PREFIX}CAMPAIGN_APPROVAL_DEVICES: expected 0 to 1000000000")
        if not 0.0 <= self.campaign_approval_share <= 1.0:
            raise InvalidInput(f"{PREFIX}CAMPAIGN_APPROVAL_SHARE: expected 0 to 1")
        if not 0.05 <= self.campaign_poll_s <= 3600:
            raise InvalidInput(f"{PREFIX}CAMPAIGN_POLL_S: expected 0.05 to 3600 seconds")
        if not 0 <= self.console_overview_ttl_s <= 86_400:
            raise InvalidInput(f"{PREFIX}CONSOLE_OVERVIEW_TTL_S: expected 0 to 86400 seconds")
        parse_schedule(self.webhook_retry)  # InvalidInput names what is wrong
        if not 0.5 <= self.webhook_timeout_s <= 120:
            raise InvalidInput(f"{PREFIX}WEBHOOK_TIMEOUT_S: expected 0.5 to 120 seconds")
        if not 0 < self.webhook_disable_after_h <= 24 * 365:
            raise InvalidInput(f"{PREFIX}WEBHOOK_DISABLE_AFTER_H: expected 0 to 8760 hours")
        if not 0.05 <= self.webhook_poll_s <= 3600:
            raise InvalidInput(f"{PREFIX}WEBHOOK_POLL_S: expected 0.05 to 3600 seconds")
        if not 1 <= self.webhook_senders <= 256:
            raise InvalidInput(f"{PREFIX}WEBHOOK_SENDERS: expected 1 to 256")
        if self.sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise InvalidInput(
                f"REGIONLOCK_SQLITE_SYNCHRONOUS={self.sqlite_synchronous!r}: expected"
                f" {' or '.join(SQLITE_SYNCHRONOUS)}"
            )
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise InvalidInput(f"REGIONLOCK_TRUSTED_PROXIES: {cidr!r} is not a CIDR") from None
        if self.environment == "production" and self.simulated_clock:
            raise InvalidInput("REGIONLOCK_SIMULATED_CLOCK cannot be enabled in production")
        if self.simulated_clock and self.workers > 1:
            # Each worker process would keep its own time: one simulated clock means one worker.
            raise InvalidInput("REGIONLOCK_SIMULATED_CLOCK needs a single worker (workers = 1)")
        return self
