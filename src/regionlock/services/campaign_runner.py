"""The service's background campaign runner: one daemon thread per process that applies the
campaigns started through the API.

Every `poll_s` seconds, and at once when woken (after a start or an advance through the API),
it asks the store which campaigns are runnable (running, with a free or expired lease) and runs
each with `Campaigns.run` under an owner name unique to this process. The store's lease keeps
one runner on a campaign across processes and machines: `CampaignBusy` means another holds it,
and this one moves on. A campaign whose runner died (a CLI run killed on another machine, a
node gone) becomes runnable again when its lease expires, and is picked up here.

The thread never dies of an error: a store outage is logged once and retried at the next poll,
anything else is logged with its traceback and retried likewise.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from regionlock.domain.campaign import Campaign
from regionlock.domain.errors import Conflict, NotFound, Unavailable
from regionlock.services.campaigns import CHUNK, CampaignBusy, Campaigns, RunReport

log = logging.getLogger(__name__)
POLL_S = 2.0
STOP_WAIT_S = 30.0


def runner_owner() -> str:
    """A name for this process's runner, unique across machines: `host:pid:random`."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class _Stopping(Exception):
    """Raised from the progress callback to leave a run between chunks at shutdown."""


class CampaignRunner:
    """One daemon thread running whatever campaigns the store says are runnable."""

    def __init__(
        self,
        campaigns: Campaigns,
        *,
        poll_s: float = POLL_S,
        owner: str | None = None,
        chunk: int = CHUNK,
    ) -> None:
        self.campaigns = campaigns
        self.poll_s = poll_s
        self.owner = owner or runner_owner()
        self.chunk = chunk
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._outage = False
        self._thread = threading.Thread(
            target=self._loop, name=f"campaign-runner {self.owner}", daemon=True
        )

    def start(self) -> CampaignRunner:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """Whether the thread runs (started and not yet stopped)."""
        return self._thread.is_alive()

    def wake(self) -> None:
        """Look for work now instead of at the next poll (a campaign was started)."""
        self._wake.set()

    def close(self, timeout: float = STOP_WAIT_S) -> None:
        """Stop after the chunk in flight (its transaction commits or rolls back whole; the
        lease is released) and wait for the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> list[RunReport]:
        """One pass: run every runnable campaign this runner can claim; what each run did.
        Store errors propagate (the loop logs them)."""
        reports: list[RunReport] = []
        for campaign_id in self.campaigns.runnable():
            if self._stop.is_set():
                break
            try:
                report = self.campaigns.run(
                    campaign_id, owner=self.owner, chunk=self.chunk, progress=self._between_chunks
                )
            except CampaignBusy:
                continue  # another runner, maybe on another node, holds it
            except _Stopping:
                break
            except (Conflict, NotFound) as exc:  # paused, finished or gone since `runnable`
                log.debug("campaign %s not run: %s", campaign_id, exc.message)
                continue
            log.info(
                "campaign %s: %s (%d applied, %d skipped, %d errors in this run)",
                campaign_id,
                report.stopped,
                report.applied,
                report.skipped,
                report.errors,
            )
            reports.append(report)
        return reports

    def _between_chunks(self, _: Campaign) -> None:
        if self._stop.is_set():
            raise _Stopping  # `run` releases the lease on the way out

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Unavailable as exc:
                if not self._outage:
                    log.warning(
                        "campaign runner: %s; retrying every %g s", exc.message, self.poll_s
                    )
                    self._outage = True
            except Exception:  # a bug: logged, and the thread goes on to the next poll
                log.exception("campaign runner: unexpected error; retrying at the next poll")
            else:
                if self._outage:
                    log.warning("campaign runner: the store answers again")
                    self._outage = False
            self._wake.wait(self.poll_s)
            self._wake.clear()
