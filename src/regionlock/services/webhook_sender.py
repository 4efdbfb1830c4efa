"""Sending webhook deliveries: the HTTP client, the guard against server-side request forgery,
and the background dispatcher of each service process.

The guard resolves the endpoint's host, refuses loopback, private, link-local (cloud metadata)
and other non-public addresses (`domain/webhooks.py` `forbidden_address`) unless
`REGIONLOCK_WEBHOOK_ALLOW_PRIVATE` is set, and then connects to the very address it checked:
the URL's host stays in the `Host` header and in TLS (SNI and the certificate check), so a DNS
answer that changes between the check and the connection (rebinding) cannot redirect it.
Redirects are not followed: a receiver answers where it is registered.

The dispatcher is one daemon thread per process, like the campaign runner: every poll it moves
the audit cursor (`Webhooks.fan_out`), claims due deliveries (a lease in the store keeps one
process on each) and hands them to a pool of sender threads, at most one per endpoint at a
time, so a slow receiver holds back only itself. It never dies of an error: a store outage is
logged once and retried at the next poll.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from regionlock.domain.errors import Unavailable
from regionlock.domain.webhooks import Attempt, forbidden_address
from regionlock.services.campaign_runner import runner_owner
from regionlock.services.webhooks import Webhooks

log = logging.getLogger(__name__)

Resolve = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class HttpSender:
    """Sends one delivery over HTTP(S) to an allowed address; never raises."""

    def __init__(
        self, *, timeout_s: float, allow_private: bool, resolve: Resolve = _resolve
    ) -> None:
        self.allow_private = allow_private
        self.resolve = resolve
        self.client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def destination(self, url: str) -> tuple[str, str] | str:
        """(the URL with the address to connect to, the host) or why it may not be sent."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self.resolve(host, port)
        except OSError as exc:
            return f"cannot resolve {host}: {exc}"
        allowed: list[tuple[str, str | None]] = []
        refused: list[tuple[str, str | None]] = []
        for address in addresses:
            why = None if self.allow_private else forbidden_address(address)
            (refused if why else allowed).append((address, why))
        if not allowed:
            address, why = refused[0] if refused else ("", "no address")
            return f"{host} resolves to {address}: {why} (REGIONLOCK_WEBHOOK_ALLOW_PRIVATE)"
        address = allowed[0][0]
        shown = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
        netloc = f"{shown}:{parts.port}" if parts.port else shown
        return urlunsplit(parts._replace(netloc=netloc)), host

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> Attempt:
        target = self.destination(url)
        if isinstance(target, str):
            return Attempt(None, target)
        pinned, host = target
        parts = urlsplit(url)
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        try:
            response = self.client.post(
                pinned,
                content=body,
                headers={**headers, "host": host_header, "user-agent": "regionlock-webhooks"},
                extensions={"sni_hostname": host} if parts.scheme == "https" else {},
            )
        except httpx.TimeoutException:
            return Attempt(None, "timed out")
        except httpx.HTTPError as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}"[:300])
        return Attempt(response.status_code)

    def close(self) -> None:
        self.client.close()


class WebhookDispatcher:
    """One daemon thread queuing events and handing due deliveries to sender threads."""

    def __init__(
        self,
        webhooks: Webhooks,
        send: Callable[[str, Mapping[str, str], bytes], Attempt],
        *,
        poll_s: float = 1.0,
        senders: int = 8,
        lease: timedelta = timedelta(seconds=60),
        owner: str | None = None,
        seal: bool = True,
        take_turns: bool = False,
    ) -> None:
        """`seal`: seal the audit trail before each fan-out. False where the process runs an
        `AuditSealer`: the outbox then reads what the nodes' sealers, taking turns, have
        sealed (up to about two of their polls later) rather than sealing in every node.
        `take_turns`: skip a fan-out while another process is doing one, rather than wait for
        it; the next poll fans out whatever that one left."""
        self.webhooks = webhooks
        self.seal = seal
        self.take_turns = take_turns
        self.send = send
        self.poll_s = poll_s
        self.senders = senders
        self.lease = lease
        self.owner = owner or runner_owner()
        self._pool = ThreadPoolExecutor(senders, thread_name_prefix="webhook-sender")
        self._busy: set[Future[Any]] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._outage = False
        self._thread = threading.Thread(
            target=self._loop, name=f"webhook-dispatcher {self.owner}", daemon=True
        )

    def start(self) -> WebhookDispatcher:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run_once(self) -> int:
        """Queue new events and start the due deliveries there is room for; how many started."""
        self.webhooks.fan_out(seal=self.seal, skip_if_busy=self.take_turns)
        self._busy = {f for f in self._busy if not f.done()}
        room = self.senders - len(self._busy)
        if room <= 0:
            return 0
        claimed = self.webhooks.claim(self.owner, room, self.lease)
        for delivery in claimed:
            self._busy.add(self._pool.submit(self._attempt, delivery))
        return len(claimed)

    def _attempt(self, delivery: Any) -> None:
        try:
            self.webhooks.attempt(delivery, self.owner, self.send)
        except Unavailable as exc:
            log.warning("webhook delivery %s: the store is unavailable: %s", delivery.id, exc)
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", delivery.id)
        finally:
            self._wake.set()  # room for the next one

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                started = self.run_once()
                if self._outage:
                    log.info("webhooks: the store is back")
                    self._outage = False
            except Unavailable as exc:
                started = 0
                if not self._outage:
                    log.warning("webhooks: the store is unavailable, retrying: %s", exc)
                    self._outage = True
            except Exception:
                started = 0
                log.exception("webhooks: unexpected error; retrying at the next poll")
            if started == 0:
                self._wake.wait(self.poll_s)
                self._wake.clear()
