"""examples/policies/ holds plain copies of the example policies the package ships.

Real files, not a link into src/: copying examples/ elsewhere must copy the policies. Being
copies, they are held here to the packaged ones, byte for byte and file for file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def _packaged() -> dict[str, bytes]:
    folder = resources.files("regionlock").joinpath("data", "policies")
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


def test_the_examples_are_files_not_links() -> None:
    assert not EXAMPLES.is_symlink() and EXAMPLES.is_dir()
    links = [p.name for p in EXAMPLES.iterdir() if p.is_symlink() or not p.is_file()]
    assert not links, f"not plain files: {links}"


def test_the_examples_are_the_packaged_policies_byte_for_byte() -> None:
    packaged = _packaged()
    examples = {p.name: p.read_bytes() for p in EXAMPLES.iterdir()}
    assert "gray-market-2021.toml" in packaged  # the demo's policy: the set is not empty
    assert sorted(examples) == sorted(packaged)
    differ = sorted(name for name in examples if examples[name] != packaged[name])
    assert not differ, f"differ from src/regionlock/data/policies/: {differ}"
