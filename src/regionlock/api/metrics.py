"""Prometheus metrics at `/metrics` (prometheus-client; docs/operating.md, "Metrics").

What each node counts as it serves (check-ins by verdict and by problem type, request
latency by route, check-in groups, their stages and the queue's depth, the time of the audit
seal's and SQLite checkpoint's rounds, store errors), and what the store
says when scraped (the webhook backlog, the running campaigns' pending targets, the audit
tree's sealed and unsealed entries and the age of its newest signed head).

With several worker processes (`regionlock serve --workers N`), every worker writes its
counts to files in `PROMETHEUS_MULTIPROC_DIR` (the serve command makes one) and a scrape of
any worker sums them; with one process they live in this app's own registry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
RAW_ROUTES = frozenset({"/v1/checkin"})  # plain ASGI endpoints (api/routers/device.py)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
# Stages of a check-in group and background work: from a fraction of a millisecond to stalls.
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """One node's instruments. `registry` is what a single process exposes; with several
    workers, `render` collects every worker's files instead."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROCESS))
        self.registry = CollectorRegistry()
        r = self.registry
        self.checkins = Counter(
            "regionlock_checkins", "Check-ins answered, by verdict.", ["verdict"], registry=r
        )
        self.refusals = Counter(
            "regionlock_checkin_refusals",
            "Check-ins refused, by problem type (docs/protocol.md).",
            ["problem"],
            registry=r,
        )
        self.latency = Histogram(
            "regionlock_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.group_size = Histogram(
            "regionlock_checkin_group_size",
            "Check-ins written in one transaction (group commit).",
            buckets=GROUP_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "regionlock_checkin_queue_depth",
            "Check-ins waiting for a writer, after the last group was taken.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.stage = Histogram(
            "regionlock_checkin_stage_duration_seconds",
            "Seconds a check-in group spends in each stage: judge (verify, locate, decide),"
            " store (the write transaction, and the wait for the group before it), answer"
            " (sign the verdicts).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self._stages = [self.stage.labels(s) for s in ("judge", "store", "answer")]
        self.background = Histogram(
            "regionlock_background_duration_seconds",
            "Wall-clock seconds of background work that shares the node's cores and store with"
            " the check-ins: seal (the audit tree), checkpoint (SQLite's log into its file).",
            ["task"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "regionlock_store_errors",
            "Requests answered 503 because the store was unavailable.",
            registry=r,
        )

    def observe_group(self, size: int, waiting: int) -> None:
        self.group_size.observe(size)
        self.queue_depth.set(waiting)

    def observe_stages(self, judge: float, store: float, answer: float) -> None:
        for child, seconds in zip(self._stages, (judge, store, answer), strict=True):
            child.observe(seconds)

    def observe_seal(self, seconds: float) -> None:
        self.background.labels("seal").observe(seconds)

    def observe_checkpoint(self, seconds: float) -> None:
        self.background.labels("checkpoint").observe(seconds)

    def render(self, store: Collector | None) -> tuple[bytes, str]:
        """The exposition text of every count, with `store`'s gauges read now."""
        registry = self.registry
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        if store is not None:
            registry.register(store)
        try:
            return generate_latest(registry), CONTENT_TYPE_LATEST
        finally:
            if store is not None:
                registry.unregister(store)


class StoreGauges(Collector):
    """Read from the store at each scrape (the same from any node)."""

    def __init__(self, backlog: Any, campaigns: Any, audit: Any = None) -> None:
        self.backlog = backlog  # () -> int
        self.campaigns = campaigns  # () -> list[(id, state, pending, targets)]
        self.audit = audit  # () -> (sealed, unsealed, newest signed head's age in s or None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "regionlock_webhook_backlog",
            "Webhook deliveries pending (due or waiting to be tried again).",
            value=self.backlog(),
        )
        pending = GaugeMetricFamily(
            "regionlock_campaign_pending_targets",
            "Targets a running, waiting or paused campaign has not handled yet.",
            labels=["campaign", "state"],
        )
        targets = GaugeMetricFamily(
            "regionlock_campaign_targets",
            "Targets of a running, waiting or paused campaign.",
            labels=["campaign", "state"],
        )
        for campaign_id, state, left, total in self.campaigns():
            pending.add_metric([campaign_id, state], left)
            targets.add_metric([campaign_id, state], total)
        yield pending
        yield targets
        if self.audit is None:
            return
        sealed, unsealed, head_age = self.audit()
        yield GaugeMetricFamily(
            "regionlock_audit_sealed_entries",
            "Audit entries in the signed Merkle tree (docs/audit.md).",
            value=sealed,
        )
        yield GaugeMetricFamily(
            "regionlock_audit_unsealed_entries",
            "Audit entries not sealed into the tree yet: grows if no node seals.",
            value=unsealed,
        )
        if head_age is not None:
            yield GaugeMetricFamily(
                "regionlock_audit_head_age_seconds",
                "Age of the newest signed tree head: grows if no node signs.",
                value=head_age,
            )


class Timing:
    """ASGI middleware: each request's latency under its route's template (`/v1/devices/
    {key}`, never the raw path: a label per device would have no end); the raw ASGI check-in
    endpoint, which the router does not name, under its path; unrouted requests under
    `unrouted`."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or (
                scope["path"] if scope["path"] in RAW_ROUTES else "unrouted"
            )
            self.metrics.latency.labels(path, scope["method"]).observe(time.perf_counter() - start)
