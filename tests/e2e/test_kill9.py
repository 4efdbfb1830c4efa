"""kill -9 under load, on both stores: the real server answers check-ins from several devices
at once and is SIGKILLed mid-load; started again on the same store, every check-in it answered
200 is there, none twice, each with its audit entry, the audit trail verifies, and devices
still refuse what they sent before (replays, old counters).

What was in flight at the kill may or may not have been stored: only "answered means stored"
and "stored means sent, once" hold under every interleaving, so those are what is checked.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from databases import database_url
from serving import CLI, free_port, served

from regionlock.domain.device import encode_public_key, luhn_check_digit
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.services.registry import Registry
from regionlock.signing import CheckinRequest, SigningKey, sign_checkin
from regionlock.storage import Database, Stores

PG_URL = os.environ.get("REGIONLOCK_TEST_POSTGRES_URL")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
JOSE = {"content-type": "application/jose"}
DEVICES = 12  # one thread each, check-ins one after the other with rising counters
KILL_AFTER = 1500  # check-ins answered 200 before the kill
PLACES = [
    {"network": ["432-11"], "gps": {"lat": 35.6892, "lon": 51.389}},  # Tehran: lock
    {"network": ["424-02"], "gps": {"lat": 25.2048, "lon": 55.2708}},  # Dubai
    {"network": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}},  # Berlin
]


def imei(n: int) -> str:
    body = f"35694803{n:06d}"
    return body + str(luhn_check_digit(body))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty store: a SQLite file, or a PostgreSQL database of its own (a
    database, not a schema: the server's own connections must land in it)."""
    with database_url(request.param, tmp_path) as url:
        yield url


def register(url: str, keys: list[SigningKey]) -> list[str]:
    """Import one device per key and activate the 2021 gray-market policy; the device ids."""
    rows = [
        f"{imei(i)},SN{i},X1,AE,D7,B1,"
        f"{encode_public_key(k.private_key.public_key().public_bytes_raw())}"
        for i, k in enumerate(keys)
    ]
    csv = "imei,serial,model,sales_region,distributor,batch,public_key\n" + "\n".join(rows)
    db = Database(url)
    try:
        stores = Stores.on(db)
        now = datetime.now(UTC)
        report = Registry.of(stores).import_csv(
            csv.splitlines(keepends=True), actor="test", source="kill9.csv", now=now
        )
        assert report.imported == len(keys)
        document = (EXAMPLES / "gray-market-2021.toml").read_text()
        PolicyAdmin.of(stores).activate(
            document, source="gray-market-2021.toml", actor="test", reason="kill9", now=now
        )
        ids = []
        for i in range(len(keys)):
            found = stores.devices.get(imei(i))
            assert found is not None
            ids.append(found.record.id)
        return ids
    finally:
        db.close()


@contextmanager
def killable_server(
    env: dict[str, str], log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`regionlock serve --workers 1` in a process group of its own (so that a SIGKILL of the
    group reaches whatever serves), once it answers /health; killed afterwards whatever
    happened."""
    port = free_port()
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, f"the server exited: {log.read_text()}"
            assert time.monotonic() < deadline, "the server did not answer within 60 s"
            time.sleep(0.1)
        yield proc, base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@dataclass(frozen=True, slots=True)
class Sent:
    """One check-in as a device sent it."""

    device: int
    nonce: str
    counter: int
    token: str


class Load:
    """Devices checking in concurrently, each on its own thread and connection, until the
    server stops answering."""

    def __init__(self, base: str, keys: list[SigningKey], first: int = 0) -> None:
        self.base = base
        self.keys = keys
        self.first = first  # keys[0] is device imei(first)
        self.answered: list[Sent] = []  # 200
        self.in_flight: list[Sent] = []  # no answer: the server died meanwhile
        self.other: list[tuple[int, str]] = []  # any other answer (none expected)
        self.enough = threading.Event()
        self.stop = threading.Event()  # set: each device stops after its next answer
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._drive, args=(i,)) for i in range(len(keys))]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=60)
        assert not [t for t in self.threads if t.is_alive()], "a device is still checking in"

    def _drive(self, i: int) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            counter = 0
            while not self.stop.is_set():
                counter += 1
                req = CheckinRequest(
                    secrets.token_urlsafe(16), counter, int(time.time()), PLACES[i % len(PLACES)]
                )
                n = self.first + i
                sent = Sent(n, req.nonce, counter, sign_checkin(req, self.keys[i], imei(n)))
                try:
                    r = http.post("/v1/checkin", content=sent.token, headers=JOSE)
                except httpx.TransportError:
                    with self._lock:
                        self.in_flight.append(sent)
                    return
                with self._lock:
                    if r.status_code != 200 or r.json()["nonce"] != sent.nonce:
                        self.other.append((r.status_code, r.text))
                        return
                    self.answered.append(sent)
                    if len(self.answered) >= KILL_AFTER:
                        self.enough.set()


def stored_checkins(url: str) -> tuple[list[tuple[str, str, int]], list[tuple[str, int]]]:
    """Every stored check-in (device id, nonce, counter), and every check-in audit entry
    (device id, counter)."""
    db = Database(url)
    try:
        with db.read() as tx:
            rows = tx.all("SELECT device_id, nonce, counter FROM checkins")
        entries = [
            (e.subject, int(e.details["counter"]))
            for e in Stores.on(db).audit.iter_all()
            if e.action == "checkin.verdict"
        ]
    finally:
        db.close()
    return [(str(d), str(n), int(c)) for d, n, c in rows], entries


def post(base: str, token: str) -> httpx.Response:
    return httpx.post(base + "/v1/checkin", content=token, headers=JOSE, timeout=30)


def checkin(key: SigningKey, i: int, counter: int) -> str:
    req = CheckinRequest(secrets.token_urlsafe(16), counter, int(time.time()), PLACES[0])
    return sign_checkin(req, key, imei(i))


def problem_type(r: httpx.Response) -> str:
    """The slug of a problem+json answer's type."""
    assert r.headers["content-type"] == "application/problem+json", r.text
    return str(r.json()["type"]).rsplit("/", 1)[1]


def test_kill_9_under_load_keeps_every_answered_checkin(store_url: str, tmp_path: Path) -> None:
    keys = [SigningKey.generate(datetime.now(UTC)) for _ in range(DEVICES)]
    ids = register(store_url, keys)
    env = {
        **os.environ,
        "REGIONLOCK_DATABASE_URL": store_url,
        # Each device checks in hundreds of times a minute here.
        "REGIONLOCK_DEVICE_RATE_PER_HOUR": "0",
    }

    with killable_server(env, tmp_path / "server.log") as (proc, base):
        load = Load(base, keys)
        load.start()
        try:
            assert load.enough.wait(120), f"only {len(load.answered)} check-ins answered"
            os.killpg(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            load.join()
    # Nothing of the group lives on, and nothing answers on its port.
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    with pytest.raises(httpx.TransportError):
        httpx.get(base + "/health", timeout=5)
    assert not load.other, load.other[:3]
    # Each device ran until the kill cut its connection.
    assert sorted(s.device for s in load.in_flight) == list(range(DEVICES))
    assert len(load.answered) >= KILL_AFTER

    with served(env) as base:
        rows, entries = stored_checkins(store_url)
        stored = {(d, n): c for d, n, c in rows}
        assert len(stored) == len(rows), "a check-in is stored twice"
        assert len({(d, c) for d, _, c in rows}) == len(rows), "a counter is stored twice"
        answered = {(ids[s.device], s.nonce): s.counter for s in load.answered}
        missing = answered.keys() - stored.keys()
        assert not missing, f"{len(missing)} check-ins answered 200 are not stored"
        assert all(stored[k] == c for k, c in answered.items())
        # Beyond those, only what was in flight at the kill, each at most once.
        sent = answered | {(ids[s.device], s.nonce): s.counter for s in load.in_flight}
        assert stored.keys() <= sent.keys()
        # Each stored check-in has its audit entry (written in the same transaction).
        assert sorted(entries) == sorted((d, c) for d, _, c in rows)
        verify = subprocess.run(
            [*CLI, "audit", "verify", "--db", store_url], env=env, capture_output=True, text=True
        )
        assert verify.returncode == 0, verify.stderr
        assert "audit trail intact" in verify.stdout

        for i, key in enumerate(keys):
            mine = [s for s in load.answered if s.device == i]
            if mine:
                last = max(mine, key=lambda s: s.counter)
                r = post(base, last.token)  # the very token answered before the kill
                assert r.status_code == 409 and problem_type(r) == "replayed-nonce", r.text
                r = post(base, checkin(key, i, last.counter))  # a new nonce, an old counter
                assert r.status_code == 409 and problem_type(r) == "stale-counter", r.text
            # The device's next check-in goes through: nothing was left locked or half-done.
            highest = max((c for (d, _), c in stored.items() if d == ids[i]), default=0)
            r = post(base, checkin(key, i, highest + 1))
            assert r.status_code == 200, r.text
