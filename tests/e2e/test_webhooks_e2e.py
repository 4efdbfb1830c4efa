"""Webhooks end to end, on both stores: a lock recorded from the command line while the service
is down is delivered when it starts; a change whose delivery failed when the service was killed
(-9) is delivered by the next one; every delivery verifies with the Standard Webhooks library,
and each body names the one before it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from databases import database_url
from serving import CLI, free_port
from standardwebhooks.webhooks import Webhook
from test_kill9 import imei, killable_server, register

from regionlock.signing import SigningKey


class Receiver:
    """A webhook receiver on a loopback port: records every request and answers `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with receiver.arrived:
                    receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.arrived.notify_all()
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 30) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.got) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.got)} of {n} deliveries arrived"
                self.arrived.wait(left)
            return list(self.got)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_changes_made_while_down_or_before_a_kill_are_delivered_signed(
    store_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    register(store_url, [SigningKey.generate(datetime.now(UTC))])
    env = {
        **os.environ,
        "REGIONLOCK_DATABASE_URL": store_url,
        "REGIONLOCK_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
        "REGIONLOCK_WEBHOOK_POLL_S": "0.1",
        "REGIONLOCK_WEBHOOK_RETRY": "1s,1s,1s,1s",
        # The kill may come before the server records the failed attempt: its lease (the
        # timeout and 5 s) must run out before the next server takes the delivery over.
        "REGIONLOCK_WEBHOOK_TIMEOUT_S": "2",
    }
    added = json.loads(
        cli(
            "webhook", "add", "--url", receiver.url, "--events", "device.locked,device.unlocked",
            "--name", "support desk", "--json", env=env,
        )
    )  # fmt: skip
    secret, endpoint = added["secret"], added["id"]
    # The service is down: the lock is recorded from the command line.
    cli("device", "lock", imei(0), "--reason", "reported stolen", env=env)
    with killable_server(env, tmp_path / "first.log") as (proc, _base):
        [(headers, body)] = receiver.wait_for(1)
        first = Webhook(secret).verify(body, headers)
        assert first["type"] == "device.locked"
        assert first["data"]["cause"] == "operator" and first["data"]["reason"] == "reported stolen"
        assert first["data"]["previous"] is None
        # The receiver fails; the unlock's first attempt fails; then the service is killed.
        receiver.status = 500
        cli("device", "unlock", imei(0), "--reason", "found", env=env)
        receiver.wait_for(2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    receiver.status = 200
    with killable_server(env, tmp_path / "second.log"):
        got = receiver.wait_for(3, timeout=60)
        # The receiver answered; the server records that a moment later.
        deadline = time.monotonic() + 30
        while True:
            shown = json.loads(cli("webhook", "deliveries", endpoint, "--json", env=env))
            if all(d["status"] == "delivered" for d in shown) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    (failed_headers, failed_body), (headers, body) = got[1], got[2]
    second = Webhook(secret).verify(body, headers)
    assert second["type"] == "device.unlocked" and second["data"]["reason"] == "found"
    # The same event, the same bytes: what the receiver deduplicates by.
    assert headers["webhook-id"] == failed_headers["webhook-id"] and body == failed_body
    assert second["data"]["previous"] == hashlib.sha256(got[0][1]).hexdigest()
    assert [(d["event_type"], d["status"]) for d in shown] == [
        ("device.unlocked", "delivered"),
        ("device.locked", "delivered"),
    ]
    # The failed attempt counts when the first server recorded it before the kill, else not.
    assert shown[0]["attempts"] in (1, 2) and shown[1]["attempts"] == 1
