"""Whatever the text, `parse_policy` returns a Policy or raises PolicyError, nothing else.

The API's policies/validate, simulate and activate hand it whatever a client sent: anything
else escaping (RecursionError on deep nesting, ValueError on a huge integer) is a 500.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regionlock.domain.policy import Policy
from regionlock.policies import PolicyError, load_policy, parse_policy

VALID = """\
[policy]
id = "p"
version = "1"
message = "m"

[lease]
valid_days = 7

[[restriction]]
id = "r"
action = "lock"
from = 2021-09-15
jurisdictions = ["IR", { code = "UA-14", extent = "part" }]
regimes = ["us-ofac"]
part_action = "warn"

[restriction.presence]
min_days = 3
window_days = 14

[restriction.scope]
models = ["X1"]

[[activation]]
id = "a"
countries = ["EEA"]
action = "warn"

[[exemption]]
device = "356938035643809"
reason = "appeal"
"""


def parses_or_refuses(text: str) -> Policy | PolicyError:
    """The only two outcomes allowed; anything else raised fails the test."""
    try:
        return parse_policy(text, "fuzz")
    except PolicyError as exc:
        assert exc.problems, "a PolicyError names at least one problem"
        str(exc)  # and can be shown
        return exc


def test_the_valid_document_parses() -> None:
    assert isinstance(parses_or_refuses(VALID), Policy)


DEEP = 5000


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * DEEP + "]" * DEEP,
        "a = " + "{b = " * DEEP + "1" + "}" * DEEP,
        "[" + "a." * DEEP + "b]\n",
        "a" + ".a" * DEEP + " = 1\n",
        # Deep values where the parser reads (and shows) a value, not only at the top.
        VALID.replace('action = "lock"', "action" + ".a" * DEEP + " = 1"),
        VALID.replace('id = "r"', "id" + ".a" * DEEP + " = 1"),
        VALID.replace('"IR", ', "{ code" + ".a" * DEEP + " = 1 }, "),
        VALID.replace('"IR", ', "[" * 300 + "]" * 300 + ", "),
        VALID.replace("[restriction.scope]", "[restriction.scope" + ".a" * DEEP + "]"),
        VALID.replace("valid_days = 7", "valid_days = " + "9" * 5000),  # beyond int()'s limit
        VALID.replace('message = "m"', 'message = "' + "m" * 1_000_000 + '"'),
        VALID.replace('action = "lock"', 'action = "' + "x" * 1_000_000 + '"'),
        VALID.replace('message = "m"', 'message = "\ud800"'),  # a lone surrogate: not UTF-8
        VALID.replace("[lease]", "# \udfff\n[lease]"),
        "\x00",
        "\ufeff" + VALID,
    ],
    ids=lambda t: repr(t[:12]) + f"..{len(t)}",
)
def test_hostile_documents_are_refused_or_parsed(text: str) -> None:
    parses_or_refuses(text)


def test_deep_nesting_is_refused_as_such() -> None:
    out = parses_or_refuses("a = " + "[" * DEEP + "]" * DEEP)
    assert isinstance(out, PolicyError)
    assert "nested too deeply" in str(out)


def test_a_long_value_is_not_echoed_whole() -> None:
    out = parses_or_refuses(VALID.replace('action = "lock"', f'action = "{"x" * 100_000}"'))
    assert isinstance(out, PolicyError)
    assert len(str(out)) < 1000


def test_lone_surrogates_are_refused_with_their_line() -> None:
    out = parses_or_refuses(VALID.replace('message = "m"', 'message = "\ud800"'))
    assert isinstance(out, PolicyError)
    [problem] = out.problems
    assert problem.line == 4 and "UTF-8" in problem.message


def test_a_file_that_is_not_utf8_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(VALID.replace('message = "m"', 'message = "Gr\xfc\xdfe"').encode("latin-1"))
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(path)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text(text: str) -> None:
    parses_or_refuses(text)


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_any_bytes_as_a_file(data: bytes) -> None:
    # Not through tmp_path: function-scoped fixtures and @given do not mix.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.toml"
        path.write_bytes(data)
        with contextlib.suppress(PolicyError):
            load_policy(path)


# Keys the parser knows, so that generated documents reach past the first check.
KEYS = [
    "policy", "lease", "restriction", "activation", "exemption", "id", "version",
    "description", "message", "contact", "min_lock_confidence", "valid_days",
    "offline_action", "action", "part_action", "jurisdictions", "regimes", "from", "until",
    "code", "extent", "name", "instrument", "presence", "scope", "min_days", "window_days",
    "grace_action", "first_activation_locks", "warn_days", "models", "countries", "device",
    "batch", "reason", "x",
]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(["lock", "warn", "allow", "part", "whole", "IR", "UA-14", "us-ofac", "EEA"]),
    st.text(max_size=8),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=30,
)
DOCUMENTS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)


def toml_value(value: Any) -> str:
    """A value as inline TOML (just enough for the generated documents)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string, but for \\u escapes of surrogates
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    """Top-level scalars first, then tables, then arrays of tables, as people write them."""
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict | list)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for entry in v:
                lines.append(f"[[{k}]]")
                lines += [f"{kk} = {toml_value(vv)}" for kk, vv in entry.items()]
        elif isinstance(v, list):
            lines.insert(0, f"{k} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_any_nested_structure(doc: dict[str, Any]) -> None:
    parses_or_refuses(toml_document(doc))


# How deep a replaced value is nested: mostly not at all, sometimes thousands of levels.
NESTING = st.tuples(
    st.sampled_from(["[]", "{}", "."]),
    st.one_of(st.integers(0, 3), st.integers(0, 5000)),
)


def nest(key: str, value: str, kind: str, depth: int) -> str:
    """`key = value`, with the value nested `depth` deep in arrays, inline tables or keys."""
    if kind == "[]":
        return f"{key} = {'[' * depth}{value}{']' * depth}"
    if kind == "{}":
        return f"{key} = {'{ a = ' * depth}{value}{' }' * depth}"
    return f"{key}{'.a' * depth} = {value}"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID.splitlines()), VALUES, NESTING, st.integers(0, 40))
def test_a_valid_document_with_one_value_replaced(
    line: str, value: Any, nesting: tuple[str, int], at: int
) -> None:
    lines = VALID.splitlines()
    if "=" in line:
        key = line.split("=", 1)[0].strip()
        lines[lines.index(line)] = nest(key, toml_value(value), *nesting)
    else:
        lines.insert(min(at, len(lines)), nest("x", toml_value(value), *nesting))
    parses_or_refuses("\n".join(lines) + "\n")
