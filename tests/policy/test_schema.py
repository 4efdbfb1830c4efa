"""The published JSON Schema and the parser agree: same keys, same shapes."""

from __future__ import annotations

import json
import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from regionlock.policies import PolicyError, parse_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
SCHEMA = json.loads(
    resources.files("regionlock").joinpath("schemas/policy.schema.json").read_text()
)

# Every key the format has, once (the docs/policy.md example, made concrete).
FULL = """
[policy]
id = "full"
version = "1"
description = "every key"
min_lock_confidence = 0.8
message = "m"
contact = "c"

[lease]
valid_days = 7
offline_action = "lock"
offline_lock_after_days = 30
offline_warn_days = 7

[[restriction]]
id = "r1"
action = "lock"
from = 2021-09-15
until = 2030-01-01
jurisdictions = [
  "IR",
  {code = "UA-14", name = "D", from = 2022-02-21, until = 2031-01-01, extent = "part"},
  {code = "UA-09", instrument = "E.O. 14065"},
]
regimes = ["us-ofac"]
warn_days = 2
part_action = "warn"
message = "m"
contact = "c"

[restriction.presence]
min_days = 3
window_days = 14
first_activation_locks = false
grace_action = "allow"

[restriction.scope]
models = ["X1"]
skus = ["X1-EU"]
sales_regions = ["EEA"]
distributors = ["D7"]
batches = ["B1"]

[[activation]]
id = "a1"
countries = ["EEA"]
action = "lock"
message = { en = "m", fa = "پ", es-419 = "m" }
contact = "c"

[activation.scope]
sales_regions = ["EEA"]

[[exemption]]
device = "356938035643809"
until = 2027-01-01
reason = "appeal"
"""


def as_json(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


def validate(text: str) -> None:
    jsonschema.validate(
        as_json(tomllib.loads(text)), SCHEMA, format_checker=jsonschema.FormatChecker()
    )


def test_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_examples_match_the_schema(path: Path) -> None:
    validate(path.read_text())


def test_every_key_is_known_to_both() -> None:
    validate(FULL)
    policy = parse_policy(FULL)
    assert policy.restrictions[0].presence.grace_action.value == "allow"


@pytest.mark.parametrize(
    "mutation",
    [
        ("[lease]\n", "[lease]\nvalid_dayz = 3\n"),
        ('action = "lock"\nfrom', 'action = "block"\nfrom'),
        ('grace_action = "allow"', 'grace_action = "lock"'),
        ("min_days = 3", "min_days = 3\nmax_days = 9"),
        ('part_action = "warn"', 'part_action = "explode"'),
        ("[[exemption]]", "[exemption]"),
        ('extent = "part"}', 'extnt = "part"}'),
        ('instrument = "E.O. 14065"', "instrument = 14065"),
        ('contact = "c"\n\n[lease]', "contact = 42\n\n[lease]"),
        ('device = "356938035643809"', 'device = "356938035643809"\nbatch = "B1"'),
        ('device = "356938035643809"', "device = 356938035643809"),
        ('device = "356938035643809"', 'device = ""'),
        ('countries = ["EEA"]', "countries = []"),
        ('fa = "پ"', 'FA = "پ"'),
        ('fa = "پ"', 'fa = ""'),
        ('fa = "پ"', "fa = 1"),
        ('message = { en = "m", fa = "پ", es-419 = "m" }', "message = {}"),
    ],
)
def test_both_reject_the_same_mistakes(mutation: tuple[str, str]) -> None:
    old, new = mutation
    bad = FULL.replace(old, new, 1)
    assert bad != FULL
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)
    with pytest.raises(PolicyError):
        parse_policy(bad)
