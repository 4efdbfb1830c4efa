"""What every input must be before anything acts on it: text without NUL or lone surrogates,
digits that are ASCII, numbers in range before they are converted, nesting that is bounded.

One place for the rules, used by the check-in path, the operator API, the command line's file
readers and the agent (issue: "make the classes of defect impossible"). Pure: no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from regionlock.domain.errors import InvalidInput

_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_DIGITS = re.compile(r"[0-9]+")
# Deep enough for every document regionlock reads (a check-in is 4 levels, a policy 5).
MAX_NESTING = 32


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored or signed as text (None: it can). NUL is refused by
    PostgreSQL and truncates C strings; a lone surrogate cannot be encoded as UTF-8."""
    if "\x00" in value:
        return "contains a NUL character"
    if _SURROGATE.search(value):
        return "contains a lone surrogate (not valid Unicode text)"
    return None


def clean_text(value: str, what: str, *, max_length: int | None = None) -> str:
    """`value` if it is storable text (and at most `max_length` characters); InvalidInput."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidInput(f"{what} {problem}")
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(f"{what} is longer than {max_length} characters")
    return value


def is_ascii_digits(value: str) -> bool:
    """Only 0-9 (`str.isdigit` and regex `\\d` also accept Arabic-Indic and other digits)."""
    return _ASCII_DIGITS.fullmatch(value) is not None


def bounded_number(value: object, what: str, low: float, high: float) -> float:
    """A JSON number within [low, high], checked before any conversion: a 400-digit integer
    is refused as out of range, never converted (float() would overflow)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what}: expected a number, got {type(value).__name__}")
    if isinstance(value, int):
        if not low <= value <= high:  # int against float compares exactly, no conversion
            raise InvalidInput(f"{what}: {short_int(value)} is outside [{low:g}, {high:g}]")
        return float(value)
    if not low <= value <= high:  # NaN fails both comparisons
        raise InvalidInput(f"{what}: {value!r} is outside [{low:g}, {high:g}]")
    return value


def nesting_depth(value: object, limit: int = MAX_NESTING) -> int:
    """How deeply lists and mappings nest in `value`, counted without recursion; InvalidInput
    past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            raise InvalidInput(f"nested more than {limit} levels deep")
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # "1e400", or 400 digits and a point, reads as infinity: refused as the constant is (an
    # infinity reaching `int()` is an OverflowError).
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text[:20]} is beyond the range of a number")
    return number


# One decoder for every call (what `json.loads` with these options would build each time).
_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite_float)


def load_json(text: str, what: str = "the input", *, limit: int = MAX_NESTING) -> Any:
    """A JSON document from text the outside gave: InvalidInput, never another exception, for
    anything that is not JSON, nests deeper than `limit`, or holds an integer too long to read
    (Python refuses over 4,300 digits), NaN or Infinity (also as a number too large)."""
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what}: not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise InvalidInput(f"{what}: nested more than {limit} levels deep") from None
    except ValueError as exc:
        raise InvalidInput(f"{what}: not valid JSON: {str(exc)[:100]}") from None
    try:
        nesting_depth(value, limit)
    except InvalidInput as exc:  # named like every other refusal here
        raise InvalidInput(f"{what}: {exc.message}") from None
    return value


def short_int(number: int) -> str:
    """An integer for a message, without printing (or failing to print) a huge one."""
    if abs(number) < 10**30:
        return str(number)
    return f"a number of about {int(number.bit_length() * 0.30103) + 1} digits"
