"""`regionlock serve` as an operator starts it: a taken port is refused before any banner."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from serving import CLI


@pytest.mark.parametrize("workers", [1, 2])
def test_a_taken_port_is_named_and_nothing_claims_to_serve(tmp_path: Path, workers: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIONLOCK_")}
    env["REGIONLOCK_DATABASE_URL"] = f"sqlite:///{tmp_path / 'rl.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*CLI, "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"port {port} on 127.0.0.1 is taken" in done.stderr
    assert "serving on" not in done.stdout + done.stderr
