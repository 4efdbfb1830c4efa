"""`regionlock` entry point: one click group, one module per command family."""

from __future__ import annotations

import sys
from typing import Any

import click

from regionlock import __version__
from regionlock.cli.agent import agent
from regionlock.cli.appeal import appeal
from regionlock.cli.backup import backup, restore
from regionlock.cli.campaign import campaign
from regionlock.cli.case import case
from regionlock.cli.demo import demo
from regionlock.cli.devices import device, devices
from regionlock.cli.investigate import investigate
from regionlock.cli.locate import locate
from regionlock.cli.policy import policy
from regionlock.cli.privacy import retention
from regionlock.cli.serve import serve
from regionlock.cli.simulate import simulate
from regionlock.cli.store import activate, active, apikey, audit, keys, migrate_cmd, rollback
from regionlock.cli.webhook import webhook
from regionlock.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    RegionlockError,
    Unavailable,
    most_specific,
)
from regionlock.signing import TokenError

# The command line's edge for errors, as `api/problems.py` is the API's: what went wrong
# decides the exit status (README, "Exit status"). 1 is left to commands whose work ran and
# found something wrong (a broken audit trail, rows skipped).
EXIT_CODES: dict[type[RegionlockError], int] = {
    InvalidInput: 2,  # the input was refused: nothing was changed
    NotFound: 2,
    Conflict: 2,
    TokenError: 2,
    Unavailable: 3,  # the store or a data file is missing or busy: fix that, or retry
    RegionlockError: 1,
}


def exit_code(exc: RegionlockError) -> int:
    """The exit status for `exc`: the entry of its most specific listed class."""
    return most_specific(EXIT_CODES, type(exc)) or 1


def command_error(exc: RegionlockError) -> click.ClickException:
    """`exc` as click shows it: `Error: <message>`, with its exit status."""
    error = click.ClickException(exc.message)
    # An instance attribute: `exit_code` is a class variable of ClickException (1), and click
    # exits with whatever the instance holds.
    vars(error)["exit_code"] = exit_code(exc)
    return error


class RegionlockGroup(click.Group):
    """Turns regionlock's own errors into clean messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RegionlockError as exc:
            raise command_error(exc) from exc


@click.group(cls=RegionlockGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="regionlock")
def cli() -> None:
    """regionlock: locate devices offline, decide allow/warn/lock by dated policy, sign it."""


cli.add_command(locate)
cli.add_command(investigate)
cli.add_command(demo)
cli.add_command(policy)
cli.add_command(migrate_cmd)
cli.add_command(audit)
cli.add_command(apikey)
cli.add_command(devices)
cli.add_command(device)
cli.add_command(keys)
cli.add_command(serve)
cli.add_command(agent)
cli.add_command(simulate)
cli.add_command(backup)
cli.add_command(restore)
cli.add_command(campaign)
cli.add_command(case)
cli.add_command(webhook)
cli.add_command(appeal)
cli.add_command(retention)
policy.add_command(activate)
policy.add_command(rollback)
policy.add_command(active)


def main() -> None:
    try:
        cli.main(prog_name="regionlock")
    except BrokenPipeError:
        # `regionlock locate --input big.jsonl | head` is fine: stop quietly.
        sys.stderr.close()
        sys.exit(0)


if __name__ == "__main__":
    main()
