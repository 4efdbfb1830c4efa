"""Fetch an npm package into .prep-cache/ for the prepare scripts (never used at run time)."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".prep-cache"


def fetch_npm(pkg: str) -> Path:
    """`npm pack NAME@VERSION` into the cache once, unpacked; returns its `package` folder."""
    CACHE.mkdir(exist_ok=True)
    name, version = pkg.rsplit("@", 1)
    target = CACHE / f"{name.lstrip('@').replace('/', '-')}-{version}"
    if not (target / "package").exists():
        out = subprocess.run(
            ["npm", "pack", pkg, "--silent"], cwd=CACHE, check=True, capture_output=True, text=True
        )
        tgz = CACHE / out.stdout.strip().splitlines()[-1]
        target.mkdir(exist_ok=True)
        with tarfile.open(tgz) as tar:
            tar.extractall(target, filter="data")
    return target / "package"
