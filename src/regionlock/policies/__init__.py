"""Policy documents: parsing, regime presets, and the codes they are checked against."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import pycountry

from regionlock.domain.policy import Policy
from regionlock.geo.countries import country_names
from regionlock.policies.document import Names, PolicyError, Problem, Regime, load_regime
from regionlock.policies.document import parse_policy as _parse

__all__ = [
    "Names",
    "PolicyError",
    "Problem",
    "Regime",
    "example_names",
    "example_policy",
    "example_policy_text",
    "load_policy",
    "names",
    "presets",
]


@cache
def names() -> Names:
    """ISO 3166-1 codes (tzdata, plus XK) and ISO 3166-2 codes (pycountry) with names."""
    subdivisions = {s.code: s.name for s in pycountry.subdivisions}
    return Names(country_names(), subdivisions)


@cache
def presets() -> dict[str, Regime]:
    """The shipped regime presets (data/regimes/*.toml), by id."""
    folder = resources.files("regionlock").joinpath("data", "regimes")
    out: dict[str, Regime] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            regime = load_regime(entry.read_text("utf-8"), entry.name, names())
            out[regime.id] = regime
    return out


def example_names() -> list[str]:
    """The names of the example policies shipped with the package, sorted."""
    folder = resources.files("regionlock").joinpath("data", "policies")
    return sorted(
        e.name.removesuffix(".toml") for e in folder.iterdir() if e.name.endswith(".toml")
    )


def example_policy_text(name: str) -> str:
    """The TOML of an example policy shipped with the package (examples/policies/NAME.toml)."""
    entry = resources.files("regionlock").joinpath("data", "policies", f"{name}.toml")
    return entry.read_text("utf-8")


def example_policy(name: str) -> Policy:
    """One of the example policies shipped with the package, validated."""
    return parse_policy(example_policy_text(name), f"examples/policies/{name}.toml")


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate a policy document against the shipped presets and ISO codes."""
    return _parse(text, source, names(), presets())


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; PolicyError lists every problem with its line."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise PolicyError(str(p), [Problem("", f"cannot read the file: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8-sig")  # TOML is UTF-8; a leading byte order mark is dropped
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = f"not UTF-8 (byte {exc.start} cannot be read); TOML files are UTF-8"
        raise PolicyError(str(p), [Problem("", problem, line)]) from None
    return parse_policy(text, str(p))
