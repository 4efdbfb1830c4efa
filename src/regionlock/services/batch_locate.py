"""Streaming batch location: JSON Lines in, one JSON line out per input line, in order.

Memory stays constant however long the input: lines are read and answered in chunks, and each
chunk's GPS and IP look-ups are vectorised. One bad line never sinks the batch: it gets an error
object naming the problem, and the rest go on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from regionlock.domain.errors import InvalidInput
from regionlock.domain.location import LocationEstimate
from regionlock.domain.signals import Signals, parse_signals
from regionlock.geo.locator import Locator

CHUNK = 2048


@dataclass
class BatchStats:
    lines: int = 0
    errors: int = 0


def estimate_json(device_id: Any, estimate: LocationEstimate) -> dict[str, Any]:
    """The output record of one located device (the batch wire format, see docs/location.md)."""
    return {"id": device_id, **estimate.to_json()}


def _parse_line(line: str) -> tuple[Any, Signals]:
    """(id, signals) or InvalidInput; the id is recovered for the error record when possible."""
    text = line.strip()
    if not text:
        raise InvalidInput("empty line")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise InvalidInput(f"expected a JSON object, got {type(obj).__name__}")
    device_id = obj.get("id")
    if device_id is None or isinstance(device_id, bool) or not isinstance(device_id, str | int):
        raise InvalidInput('missing "id" (a string or an integer)')
    try:
        return device_id, parse_signals(obj)
    except InvalidInput as exc:
        exc.device_id = device_id  # type: ignore[attr-defined]
        raise


def locate_lines(
    lines: Iterable[str],
    locator: Locator,
    *,
    stats: BatchStats | None = None,
    explain: bool = False,
) -> Iterator[str]:
    """Yield one JSON text (no newline) per input line."""
    stats = stats if stats is not None else BatchStats()
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= CHUNK:
            yield from _chunk(chunk, locator, stats, explain)
            chunk = []
    if chunk:
        yield from _chunk(chunk, locator, stats, explain)


def _chunk(chunk: list[str], locator: Locator, stats: BatchStats, explain: bool) -> Iterator[str]:
    first_line = stats.lines + 1
    parsed: list[tuple[Any, Signals] | InvalidInput] = []
    for line in chunk:
        try:
            parsed.append(_parse_line(line))
        except InvalidInput as exc:
            parsed.append(exc)
    good = [p for p in parsed if not isinstance(p, InvalidInput)]
    results = iter(locator.locate_each([s for _, s in good]))
    for offset, item in enumerate(parsed):
        stats.lines += 1
        record: dict[str, Any]
        if isinstance(item, InvalidInput):
            outcome: LocationEstimate | InvalidInput = item
            device_id = getattr(item, "device_id", None)
        else:
            device_id = item[0]
            outcome = next(results)
        if isinstance(outcome, InvalidInput):
            stats.errors += 1
            record = {"id": device_id, "line": first_line + offset, "error": outcome.message}
        else:
            record = estimate_json(device_id, outcome)
            if explain:
                record["explanation"] = locator.explain(outcome)
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":"))
