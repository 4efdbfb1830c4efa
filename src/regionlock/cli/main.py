"""`regionlock` entry point: one click group, one module per command family."""

from __future__ import annotations

import sys
from typing import Any

import click

from regionlock import __version__
from regionlock.cli.agent import agent
from regionlock.cli.demo import demo
from regionlock.cli.devices import device, devices
from regionlock.cli.locate import locate
from regionlock.cli.policy import policy
from regionlock.cli.serve import serve
from regionlock.cli.simulate import simulate
from regionlock.cli.store import activate, active, apikey, audit, keys, migrate_cmd, rollback
from regionlock.domain.errors import RegionlockError


class InputError(click.ClickException):
    """A regionlock error shown as `Error: <message>`, exit status 2."""

    exit_code = 2


class RegionlockGroup(click.Group):
    """Turns regionlock's own errors into clean messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RegionlockError as exc:
            raise InputError(exc.message) from exc


@click.group(cls=RegionlockGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="regionlock")
def cli() -> None:
    """regionlock: locate devices offline, decide allow/warn/lock by dated policy, sign it."""


cli.add_command(locate)
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
