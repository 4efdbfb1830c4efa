"""Shared by the batch commands: progress bars on stderr, and a file (or stdin) read line by
line with one."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from tqdm import tqdm


def progress_bar(
    total: int | None,
    desc: str,
    progress: bool | None,
    *,
    unit: str = "B",
    unit_scale: bool = True,
    initial: int = 0,
) -> tqdm:
    """A bar on stderr with the rate and the time left, shown when stderr is a terminal (or
    when `progress` says so); close it when done."""
    show = sys.stderr.isatty() if progress is None else progress
    return tqdm(
        total=total,
        initial=initial,
        unit=unit,
        unit_scale=unit_scale,
        desc=desc,
        file=sys.stderr,
        disable=not show,
        dynamic_ncols=True,
    )


@contextmanager
def input_lines(
    path: str,
    desc: str,
    progress: bool | None,
    *,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> Iterator[Iterator[str]]:
    """Lines of `path` ('-' = stdin); a byte-based progress bar on stderr when it is a terminal
    (or when `progress` says so). The file is closed and the bar finished on exit."""
    stream: IO[str] = (
        sys.stdin if path == "-" else open(path, encoding=encoding, newline=newline)  # noqa: SIM115
    )
    total = None if path == "-" else os.fstat(stream.fileno()).st_size
    bar = progress_bar(total, desc, progress)

    def lines() -> Iterator[str]:
        for line in stream:
            bar.update(len(line.encode("utf-8")))
            yield line

    try:
        yield lines()
    finally:
        bar.close()
        if stream is not sys.stdin:
            stream.close()
