"""Hypothesis strategies for adversarial input, shared by the parser property tests.

Text that holds every kind of character (NUL, lone surrogates, other digit systems, line
separators `str.splitlines` knows but CSV does not), numbers no parser expects (integers past
2**53 and past the 4,300 digits Python converts to text, NaN, infinities) and JSON-like values
that nest. Imported by the `*_fuzz.py` modules (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Characters that have broken parsers somewhere: NUL, lone surrogates, a byte order mark,
# Arabic-Indic, Devanagari, fullwidth and mathematical digits (`\d` and `int()` take them),
# superscripts (`isdigit()` takes them), line breaks of every kind, CSV and JSON syntax.
ODD_CHARACTERS = (
    "\x00",
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\ufeff",
    "\u0660",
    "\u0663",
    "\u06f5",
    "\u0966",
    "\uff10",
    "\uff19",
    "\U0001d7d8",
    "\u00b2",
    "\u2028",
    "\x85",
    "\x0b",
    "\x0c",
    "\x1c",
    "\n",
    "\r",
    "\t",
    " ",
    '"',
    "\\",
    ",",
    "-",
    ".",
    "%",
    "0",
    "9",
)

# Every Unicode category, surrogates (Cs) included: hypothesis leaves them out by default.
characters = st.characters(exclude_categories=()) | st.sampled_from(ODD_CHARACTERS)


def texts(max_size: int = 30, *, min_size: int = 0) -> st.SearchStrategy[str]:
    """Text of any characters, odd ones often."""
    return st.text(characters, min_size=min_size, max_size=max_size)


# Round numbers at the edges: JSON's safe integers, 64 bits, float overflow, Python's limit
# on converting integers to text (4,300 digits: `str`, `repr` and `format` raise past it).
# Kept as (base, exponent, offset), as hypothesis itself cannot show the largest ones.
_EDGES = ((2, 53, -1), (2, 53, 0), (2, 63, 0), (2, 64, 0), (10, 30, 0), (10, 309, 0))
_HUGE = ((10, 4299, 0), (10, 4300, 0), (10, 5000, 0))
HUGE_INTEGERS = [sign * (b**e + o) for b, e, o in _EDGES + _HUGE for sign in (1, -1)]
integers = st.integers() | st.builds(
    lambda edge, sign: sign * (edge[0] ** edge[1] + edge[2]),
    st.sampled_from(_EDGES + _HUGE),
    st.sampled_from([1, -1]),
)
# NaN, infinities, -0.0 and subnormals included.
floats = st.floats()

scalars: st.SearchStrategy[Any] = st.none() | st.booleans() | integers | floats | texts()
keys = texts(12)


def json_like(
    scalar: st.SearchStrategy[Any] = scalars,
    keys: st.SearchStrategy[str] = keys,
    max_leaves: int = 16,
) -> st.SearchStrategy[Any]:
    """Values as `json.loads` gives them (and some it cannot): lists and dicts, nested."""
    return st.recursive(
        scalar,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=max_leaves,
    )


def nested(depth: int, innermost: Any = None, *, kind: type = list) -> Any:
    """`innermost` wrapped `depth` times in lists (or single-member dicts), built without
    recursion: deep enough to break anything that recurses (`repr`, `json`, a validator)."""
    value = innermost
    for _ in range(depth):
        value = [value] if kind is list else {"a": value}
    return value


deep_values = st.builds(nested, st.integers(1, 3000), scalars, kind=st.sampled_from([list, dict]))


def nested_json_text(depth: int, innermost: str = "1", *, kind: type = list) -> str:
    """The JSON text of `nested(depth, ...)`, written out without building it."""
    if kind is list:
        return "[" * depth + innermost + "]" * depth
    return '{"a":' * depth + innermost + "}" * depth


deep_json_texts = st.builds(
    nested_json_text,
    st.integers(1, 100_000),
    st.sampled_from(["1", "[]", "{}", '"x"', "1e999", "9" * 5000, "NaN", ""]),
    kind=st.sampled_from([list, dict]),
)


def json_bytes(value: Any, *, ascii_only: bool = True) -> bytes | None:
    """`value` as JSON text in UTF-8, NaN and lone surrogates as they come (the bytes are then
    not UTF-8); None when Python cannot write it (an integer of over 4,300 digits)."""
    try:
        text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    except (ValueError, RecursionError):
        return None
    return text.encode("utf-8", "surrogatepass")


# -- location signals, in the JSON shape of check-ins and batch lines ---------------------------

_DIGITISH = "0123456789\u0660\u0663\u06f5\uff11\u00b2 -/\n"


def _or_anything(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | json_like(max_leaves=6) | deep_values


_plmn_texts = st.from_regex(r"[0-9]{3}[-/ ]?([0-9]{2,3})?", fullmatch=True) | st.text(
    _DIGITISH, max_size=8
)
_mccs = st.from_regex(r"[0-9]{3}", fullmatch=True) | st.text(_DIGITISH, max_size=4) | integers
_plmns = _or_anything(
    _plmn_texts
    | st.fixed_dictionaries(
        {},
        optional={
            "mcc": _or_anything(_mccs),
            "mnc": _or_anything(_mccs),
            "mnx": texts(3),
        },
    )
)
_numbers = integers | floats | st.floats(-200, 200)
_ip_texts = (
    st.ip_addresses().map(str)
    | st.builds("{}%{}".format, st.ip_addresses(v=6).map(str), texts(6))
    | st.text("0123456789.:abcdefx%/ \n\u0661\uff11", max_size=24)
    | texts()
)
_zone_texts = st.sampled_from(["Asia/Tehran", "UTC", "Etc/GMT+5", "fa_IR", "en-US", "sr_RS@latin"])

signal_dicts: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "ip": _or_anything(_ip_texts),
        "sim": _or_anything(st.lists(_plmns, max_size=3)) | _plmns,
        "network": _or_anything(st.lists(_plmns, max_size=3)) | _plmns,
        "gps": _or_anything(
            st.fixed_dictionaries(
                {"lat": _or_anything(_numbers), "lon": _or_anything(_numbers)},
                optional={"accuracy_m": _or_anything(_numbers), "alt": _numbers},
            )
        ),
        "timezone": _or_anything(_zone_texts | texts()),
        "locale": _or_anything(_zone_texts | texts()),
        "id": json_like(max_leaves=4),
        "gpss": json_like(max_leaves=4),
    },
)
