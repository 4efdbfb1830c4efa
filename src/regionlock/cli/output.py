"""How commands print what they found."""

from __future__ import annotations

import json
from typing import Any

import click


def echo_json(doc: Any) -> None:
    """`doc` as indented JSON on stdout, non-ASCII text kept as it is (`--json`)."""
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
