"""A campaign's current stage applied in the foreground: a progress bar, and Ctrl-C that stops
after the chunk in flight."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import click

from regionlock.cli.progress import progress_bar
from regionlock.domain.campaign import Campaign
from regionlock.services.campaigns import CampaignBusy, Campaigns, RunReport

# Exit status when a halt rule paused the stage: the work ran and found something wrong.
HALTED_EXIT = 1
INTERRUPTED_EXIT = 130  # the shell's status for a command ended by SIGINT


class _Interrupted(Exception):
    """Ctrl-C arrived; raised between chunks, after the last one committed."""


@contextmanager
def _stop_between_chunks() -> Iterator[Callable[[], bool]]:
    """While inside, the first Ctrl-C only asks to stop (the returned function says whether it
    was asked); a second one interrupts at once (the chunk in flight rolls back, which is also
    safe). The previous handler is put back on exit."""
    asked = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal asked
        asked = True
        click.echo("\nstopping after the chunk in flight (Ctrl-C again: at once)", err=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: Ctrl-C is not ours to handle
        yield lambda: False
        return
    try:
        yield lambda: asked
    finally:
        signal.signal(signal.SIGINT, previous)


def runner_name() -> str:
    """This process, as the holder of a campaign's lease."""
    return f"cli:{socket.gethostname()}:{os.getpid()}"


def _dead_holder(svc: Campaigns, campaign_id: str) -> str:
    """A hint when the lease is held by a process of this machine that is gone (kill -9,
    power loss): nothing runs the campaign, and it waits for the lease to expire."""
    holder, _ = svc.campaigns.lease(campaign_id)
    cli, _, rest = (holder or "").partition(":")
    host, _, pid = rest.rpartition(":")
    if cli != "cli" or host != socket.gethostname() or not pid.isdigit():
        return ""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return (
            f"; that process (pid {pid}) is gone, so nothing runs it: run `start` again once the"
            " lease has expired, and it goes on where the last chunk committed"
        )
    except PermissionError:  # alive, another user's
        pass
    return ""


def run_stage(svc: Campaigns, c: Campaign, chunk: int) -> RunReport:
    """Apply the running campaign `c`'s current stage with a progress bar (devices/s, time
    left), say how it ended and what to do next; exit 130 after Ctrl-C (the campaign stays
    running, unleased, for the next `start`), 1 if a halt rule paused it."""
    size = c.counts.stage_sizes[c.stage - 1] if c.stage <= len(c.counts.stage_sizes) else 0
    left = svc.campaigns.stage_status(c.id, c.stage).get("pending", 0)
    bar = progress_bar(
        size,
        f"{c.id} stage {c.stage}/{len(c.stages)}",
        None,
        unit=" devices",
        unit_scale=False,
        initial=size - left,
    )
    seen = c.counts.targets - c.counts.pending

    with _stop_between_chunks() as stop_asked:

        def progress(now: Campaign) -> None:
            nonlocal seen
            done = now.counts.targets - now.counts.pending
            bar.update(done - seen)
            seen = done
            if stop_asked():
                raise _Interrupted

        try:
            report = svc.run(c.id, owner=runner_name(), chunk=chunk, progress=progress)
        except CampaignBusy as exc:
            bar.close()
            raise CampaignBusy(exc.message + _dead_holder(svc, c.id)) from exc
        except _Interrupted:
            bar.close()
            click.echo(
                f"stopped: campaign {c.id} is still running, with no runner; what was applied"
                f" stays. `regionlock campaign start {c.id}` goes on, or `campaign pause` it",
                err=True,
            )
            sys.exit(INTERRUPTED_EXIT)
        finally:
            bar.close()
    _report(report)
    if report.stopped == "halted":
        sys.exit(HALTED_EXIT)
    return report


def _report(report: RunReport) -> None:
    c = report.campaign
    n = c.counts
    click.echo(
        f"this run: applied {report.applied}, skipped {report.skipped}, errors {report.errors};"
        f" in all {n.applied} applied, {n.skipped} skipped, {n.errors} errors of {n.targets}"
    )
    stage = f"stage {c.stage} of {len(c.stages)}"
    if report.stopped == "waiting":
        click.echo(
            f"campaign {c.id}: {stage} done; it waits. Check it, then"
            f" `regionlock campaign advance {c.id}` runs the next stage"
        )
    elif report.stopped == "done":
        click.echo(f"campaign {c.id}: done")
    elif report.stopped == "halted":
        click.echo(
            f"campaign {c.id}: {c.state_reason}. It is paused; look at"
            f" `regionlock campaign targets {c.id} --status error`, then `start` resumes it",
            err=True,
        )
    elif report.stopped == "lease lost":
        click.echo(f"campaign {c.id}: another runner took it over ({stage})", err=True)
    else:  # paused or cancelled by someone else meanwhile
        why = f": {c.state_reason}" if c.state_reason else ""
        click.echo(f"campaign {c.id}: {c.state.value} at {stage}{why}")
