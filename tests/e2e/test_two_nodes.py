"""Two service nodes on one PostgreSQL (issue 16, "Several nodes"): two `regionlock serve`
processes on their own ports, sharing nothing but the database, as separate hosts would.

- The same check-in sent to both at once gets exactly one 200.
- A campaign started through one node is applied once, whichever runner takes its chunks.
- Each webhook event is delivered once, by one node.
- A node killed under load loses nothing it answered, and the other goes on answering.

PostgreSQL only: the scale-out store (several processes on one SQLite file is not a design
this project offers for more than one machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from databases import database_url
from test_kill9 import (
    JOSE,
    Load,
    checkin,
    imei,
    killable_server,
    register,
    stored_checkins,
)
from test_webhooks_e2e import Receiver

from regionlock.signing import SigningKey
from regionlock.storage import Database, Stores
from regionlock.storage.apikeys import Role

DEVICES = 12


@dataclass(frozen=True)
class Nodes:
    url: str  # the database
    keys: list[SigningKey]  # the devices', imei(0) ...
    procs: list[subprocess.Popen[bytes]]  # each node's process (the leader of its group)
    bases: list[str]
    tokens: dict[str, str]  # API tokens by role


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Nodes]:
    """Two nodes on one fresh PostgreSQL database with 12 devices and the 2021 policy."""
    if not os.environ.get("REGIONLOCK_TEST_POSTGRES_URL"):
        pytest.skip("REGIONLOCK_TEST_POSTGRES_URL is not set")
    with database_url("postgresql", tmp_path) as url, ExitStack() as stack:
        keys = [SigningKey.generate(datetime.now(UTC)) for _ in range(DEVICES)]
        register(url, keys)
        db = Database(url)
        tokens = {}
        with db.write() as tx:
            for role in (Role.OPERATOR, Role.ADMIN):
                _, tokens[role.value] = Stores.on(db).apikeys.create(
                    tx, name=f"{role.value} ana", role=role, at=0
                )
        db.close()
        env = {
            **os.environ,
            "REGIONLOCK_DATABASE_URL": url,
            "REGIONLOCK_DEVICE_RATE_PER_HOUR": "0",
            "REGIONLOCK_WEBHOOK_ALLOW_PRIVATE": "true",
            "REGIONLOCK_WEBHOOK_POLL_S": "0.1",
            "REGIONLOCK_CAMPAIGN_POLL_S": "0.1",
            "REGIONLOCK_CAMPAIGN_APPROVAL_SHARE": "1",
        }
        served = [
            stack.enter_context(killable_server(env, tmp_path / f"node-{name}.log"))
            for name in ("a", "b")
        ]
        yield Nodes(url, keys, [p for p, _ in served], [b for _, b in served], tokens)


def test_the_same_checkin_sent_to_both_nodes_at_once_gets_one_200(
    nodes: Nodes,
) -> None:
    keys, bases = nodes.keys, nodes.bases
    answers: Counter[tuple[int, ...]] = Counter()
    clients = [httpx.Client(base_url=b, timeout=30) for b in bases]
    try:
        for counter in range(1, 41):
            token = checkin(keys[0], 0, counter)
            start = threading.Barrier(2)
            got: list[int] = [0, 0]

            def send(
                n: int, token: str = token, start: threading.Barrier = start, got: list[int] = got
            ) -> None:
                start.wait()
                got[n] = clients[n].post("/v1/checkin", content=token, headers=JOSE).status_code

            threads = [threading.Thread(target=send, args=(n,)) for n in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            answers[tuple(sorted(got))] += 1
    finally:
        for c in clients:
            c.close()
    assert answers == {(200, 409): 40}, answers


def test_a_campaign_started_on_one_node_is_applied_once(
    nodes: Nodes,
) -> None:
    url, keys, (a, b), tokens = nodes.url, nodes.keys, nodes.bases, nodes.tokens
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    for i, key in enumerate(keys):  # every device seen once, half through each node
        r = httpx.post((a, b)[i % 2] + "/v1/checkin", content=checkin(key, i, 1), headers=JOSE)
        assert r.status_code == 200, r.text
    created = httpx.post(
        a + "/v1/campaigns",
        json={"name": "all", "action": "lock", "reason": "two nodes", "stages": [50, 100]},
        headers=operator,
    )
    assert created.status_code == 201, created.text
    campaign = created.json()["id"]
    started = httpx.post(f"{b}/v1/campaigns/{campaign}/start", headers=operator)
    assert started.status_code == 200, started.text
    deadline = time.monotonic() + 60
    while True:  # each node's runner polls every 0.1 s: both race for every chunk
        state = httpx.get(f"{a}/v1/campaigns/{campaign}", headers=operator).json()
        if state["state"] == "waiting":
            httpx.post(f"{a}/v1/campaigns/{campaign}/advance", headers=operator)
        if state["state"] == "done" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert state["state"] == "done" and state["applied"] == DEVICES, state
    db = Database(url)
    try:
        applied = Counter(
            e.subject for e in Stores.on(db).audit.iter_all() if e.action == "campaign.lock"
        )
    finally:
        db.close()
    assert len(applied) == DEVICES and set(applied.values()) == {1}, applied


def test_each_webhook_event_is_delivered_by_one_node(
    nodes: Nodes,
) -> None:
    (a, b), tokens = nodes.bases, nodes.tokens
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    receiver = Receiver()
    try:
        added = httpx.post(
            a + "/v1/webhooks",
            json={"url": receiver.url, "events": ["device.locked", "device.unlocked"]},
            headers=admin,
        )
        assert added.status_code == 201, added.text
        for i in range(DEVICES):  # a lock, then an unlock, through either node
            node = (a, b)[i % 2]
            for action in ("lock", "unlock"):
                r = httpx.post(
                    f"{node}/v1/devices/{imei(i)}/{action}", json={"reason": "two"}, headers=admin
                )
                assert r.status_code == 200, r.text
        got = receiver.wait_for(2 * DEVICES, timeout=60)
        time.sleep(2)  # both dispatchers poll every 0.1 s: a duplicate would come now
        ids = Counter(headers["webhook-id"] for headers, _ in receiver.got)
    finally:
        receiver.server.shutdown()
    assert len(got) == 2 * DEVICES and len(ids) == 2 * DEVICES, ids.most_common(3)
    kinds = Counter(json.loads(body)["type"] for _, body in receiver.got)
    assert kinds == {"device.locked": DEVICES, "device.unlocked": DEVICES}


def test_a_node_killed_under_load_loses_nothing_it_answered(nodes: Nodes, tmp_path: Path) -> None:
    url, keys, (a, b) = nodes.url, nodes.keys, nodes.bases
    db = Database(url)
    try:
        found = [Stores.on(db).devices.get(imei(i)) for i in range(DEVICES)]
    finally:
        db.close()
    device_ids = [d.record.id for d in found if d is not None]
    half = DEVICES // 2
    on_a, on_b = Load(a, keys[:half]), Load(b, keys[half:], first=half)
    for load in (on_a, on_b):
        load.start()
    deadline = time.monotonic() + 120
    while len(on_a.answered) < 300 or len(on_b.answered) < 300:
        assert time.monotonic() < deadline, (len(on_a.answered), len(on_b.answered))
        time.sleep(0.05)
    os.killpg(nodes.procs[0].pid, signal.SIGKILL)
    nodes.procs[0].wait(timeout=30)
    on_a.join()
    # Node b goes on: its devices keep being answered after the kill.
    before = len(on_b.answered)
    deadline = time.monotonic() + 30
    while len(on_b.answered) < before + 200:
        assert time.monotonic() < deadline and not on_b.other, on_b.other[:3]
        time.sleep(0.05)
    on_b.stop.set()
    on_b.join()
    rows, _ = stored_checkins(url)
    stored = {(d, n) for d, n, _ in rows}
    answered = {(device_ids[s.device], s.nonce) for s in on_a.answered + on_b.answered}
    assert not answered - stored, f"{len(answered - stored)} answered check-ins are not stored"
    assert not on_a.other and not on_b.other
    assert len({s.device for s in on_a.in_flight}) == half  # each of a's devices was cut off
