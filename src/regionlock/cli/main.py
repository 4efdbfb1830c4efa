"""`regionlock` entry point: one click group, one module per command family."""

from __future__ import annotations

import sys

import click

from regionlock import __version__
from regionlock.cli.demo import demo
from regionlock.cli.locate import locate
from regionlock.domain.errors import RegionlockError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="regionlock")
def cli() -> None:
    """regionlock: locate devices offline, decide allow/warn/lock by dated policy, sign it."""


cli.add_command(locate)
cli.add_command(demo)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RegionlockError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except BrokenPipeError:
        sys.exit(0)
