"""The package as users get it: a wheel, installed in a fresh virtualenv, run from elsewhere.

The development venv's editable install reads every file straight from src/, so a data file the
wheel leaves out (the migrations, issue 10) shows only here. The wheel is built from a copy of
the files git would commit, so that build leftovers in the checkout (build/, *.egg-info) cannot
put a file into the wheel that the package configuration leaves out. Installing pulls the
declared dependencies from the package index, as `pip install regionlock` would. It takes
tens of seconds with a warm pip cache; deselect it with `-m "not packaging"` while iterating.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "src/regionlock/"


def _run(
    command: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _source_files() -> list[str]:
    """The checkout's files as git would commit them: tracked, or new and not ignored."""
    listed = _run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT
    ).stdout
    return sorted(p for p in listed.split("\0") if p and (ROOT / p).is_file())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clone = tmp_path_factory.mktemp("clone")
    for rel in _source_files():
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, clone / rel)
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(clone)])
    (built,) = out.glob("regionlock-*.whl")
    return built


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (record,) = (n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        rows = csv.reader(io.StringIO(archive.read(record).decode()))
    shipped = {row[0] for row in rows if row and row[0].startswith("regionlock/")}
    source = {p.removeprefix("src/") for p in _source_files() if p.startswith(PACKAGE)}
    # Data files the package reads at run time: without them the comparison would prove little.
    data = {"regionlock/storage/migrations/sqlite/0001_init.sql", "regionlock/data/mcc.csv"}
    assert data <= source
    missing, extra = sorted(source - shipped), sorted(shipped - source)
    assert not missing, f"in src/regionlock but not in the wheel: {missing}"
    assert not extra, f"in the wheel but not in src/regionlock: {extra}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _outside_env(bin_dir: Path) -> dict[str, str]:
    """This environment minus what would let the development install leak in: REGIONLOCK_*
    settings, Python paths, the development venv on PATH, the user's site-packages."""
    dev_bin = Path(sys.executable).parent
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REGIONLOCK_") and k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != dev_bin]
    return {**env, "PATH": os.pathsep.join([str(bin_dir), *path]), "PYTHONNOUSERSITE": "1"}


def test_the_demo_runs_from_the_wheel_in_a_fresh_virtualenv(wheel: Path, tmp_path: Path) -> None:
    assert not tmp_path.resolve().is_relative_to(ROOT)
    venv = tmp_path / "venv"
    bin_dir = venv / "bin"
    env = _outside_env(bin_dir)
    # A venv without a pip of its own, filled by this pip (`--python`): just as fresh, without
    # the seconds that bootstrapping pip into it costs.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=env)
    install = ["install", "--quiet", str(wheel)]
    pip = [sys.executable, "-m", "pip", "--python", str(bin_dir / "python")]
    _run([*pip, *install], env=env, timeout=900)
    where = _run(
        [str(bin_dir / "python"), "-c", "import regionlock; print(regionlock.__file__)"],
        cwd=tmp_path,
        env=env,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    demo = ["demo", "--devices", "60", "--no-serve", "--port", str(_free_port())]
    told = _run([str(bin_dir / "regionlock"), *demo], cwd=tmp_path, env=env).stdout
    for marker in (
        "regionlock demo: the 2021 gray-market block, replayed",
        "fleet: 60 devices registered (60 new",
        "What happened",
        "legitimate users wrongly locked: 0",
        "The block is lifted",
        "Story told in",
    ):
        assert marker in told, f"{marker!r} missing from:\n{told}"
    assert (tmp_path / "regionlock-demo" / "regionlock.db").is_file()
