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
from regionlock.domain.inputs import load_json
from regionlock.domain.location import Evidence, LocationEstimate
from regionlock.domain.reading import SignalKind
from regionlock.domain.signals import Signals, parse_signals
from regionlock.geo.locator import Locator

CHUNK = 2048
# Readings of these kinds repeat across a fleet (a few thousand PLMNs, zones and locales), so
# their evidence does too; GPS and IP evidence differs from one device to the next.
_REPEATING = frozenset({SignalKind.NETWORK, SignalKind.SIM, SignalKind.TIMEZONE, SignalKind.LOCALE})


@dataclass
class BatchStats:
    lines: int = 0
    errors: int = 0


def estimate_json(device_id: Any, estimate: LocationEstimate) -> dict[str, Any]:
    """The output record of one located device (the batch wire format, see docs/location.md)."""
    return {"id": device_id, **estimate.to_json()}


class _Writer:
    """Output lines: byte for byte `json.dumps(record, ensure_ascii=False, separators=(",", ":"))`
    of `estimate_json` (plus "explanation"), put together from cached pieces.

    Most of a record repeats across a fleet: the summary (country, confidence, flags), the
    evidence of SIMs, networks, zones and locales, and even the GPS and IP evidence apart from
    its value and note. Each distinct piece is encoded once; serialising every record in full
    used to cost as much as locating the device. The caches are bounded (each starts afresh
    when full) and live as long as one `locate_lines` call.
    """

    def __init__(self) -> None:
        # The encoder `json.dumps` would build afresh on every call, given these arguments.
        self._encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        self._summaries: dict[tuple[Any, ...], str] = {}
        self._evidence: dict[Evidence, str] = {}
        self._templates: dict[tuple[Any, ...], tuple[str, str, str] | None] = {}

    def record(self, record: dict[str, Any]) -> str:
        return self._encode(record)

    def located(self, device_id: Any, estimate: LocationEstimate, explanation: str | None) -> str:
        # The key holds every field `summary_json` writes.
        key = (
            estimate.country,
            estimate.subdivision,
            estimate.confidence,
            estimate.flags,
            estimate.subdivisions,
        )
        summary = self._summaries.get(key)
        if summary is None:
            summary = self._encode(estimate.summary_json())[1:-1]  # the members, no braces
            _remember(self._summaries, key, summary)
        # json writes an int as int.__repr__, which is str() for a plain int.
        ident = str(device_id) if type(device_id) is int else self._encode(device_id)
        evidence = ",".join(map(self._evidence_json, estimate.evidence))
        # `to_json` is `summary_json` with "evidence" added last; "explanation" comes after.
        parts = ['{"id":', ident, ",", summary, ',"evidence":[', evidence]
        if explanation is not None:
            parts += ['],"explanation":', self._encode(explanation), "}"]
        else:
            parts.append("]}")
        return "".join(parts)

    def _evidence_json(self, evidence: Evidence) -> str:
        reading = evidence.reading
        if reading.kind in _REPEATING:
            text = self._evidence.get(evidence)
            if text is None:
                text = self._encode(evidence.to_json())
                _remember(self._evidence, evidence, text)
            return text
        # GPS and IP: the value, and an IP's note, name this one device; the JSON around them
        # repeats. The key holds every other field `Evidence.to_json` writes.
        key = (
            reading.kind,
            reading.slot,
            reading.countries,
            reading.subdivision,
            reading.tags,
            evidence.weight,
            evidence.agrees,
        )
        if key in self._templates:
            template = self._templates[key]
        else:
            template = self._template(evidence)
            _remember(self._templates, key, template)
        if template is None:
            return self._encode(evidence.to_json())
        before_value, before_note, after_note = template
        value, note = self._encode(reading.value), self._encode(reading.note)
        return "".join((before_value, value, before_note, note, after_note))

    def _template(self, evidence: Evidence) -> tuple[str, str, str] | None:
        """The JSON of `evidence` cut around its value and its note; None if it cannot be."""
        reading = evidence.reading._replace(value=_VALUE_MARK, note=_NOTE_MARK)
        text = self._encode(Evidence(reading, evidence.weight, evidence.agrees).to_json())
        value, note = self._encode(_VALUE_MARK), self._encode(_NOTE_MARK)
        if text.count(value) != 1 or text.count(note) != 1:
            return None
        before_value, _, rest = text.partition(value)
        before_note, found, after_note = rest.partition(note)
        return (before_value, before_note, after_note) if found else None


# Stand-ins for a value and a note while cutting a template; no real field contains NUL.
_VALUE_MARK = "\x00value\x00"
_NOTE_MARK = "\x00note\x00"
_CACHE_SIZE = 10_000


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value


def _parse_line(line: str) -> tuple[Any, Signals]:
    """(id, signals) or InvalidInput; the id is recovered for the error record when possible."""
    text = line.strip()
    if not text:
        raise InvalidInput("empty line")
    obj = load_json(text, "the line")
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
    writer = _Writer()
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= CHUNK:
            yield from _chunk(chunk, locator, stats, explain, writer)
            chunk = []
    if chunk:
        yield from _chunk(chunk, locator, stats, explain, writer)


def _chunk(
    chunk: list[str], locator: Locator, stats: BatchStats, explain: bool, writer: _Writer
) -> Iterator[str]:
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
        if isinstance(item, InvalidInput):
            outcome: LocationEstimate | InvalidInput = item
            device_id = getattr(item, "device_id", None)
        else:
            device_id = item[0]
            outcome = next(results)
        if isinstance(outcome, InvalidInput):
            stats.errors += 1
            yield writer.record(
                {"id": device_id, "line": first_line + offset, "error": outcome.message}
            )
        else:
            explanation = locator.explain(outcome) if explain else None
            yield writer.located(device_id, outcome, explanation)
