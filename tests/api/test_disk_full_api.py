"""The SQLite file's disk full, over HTTP in process: a check-in or an operator change that
needs room the disk no longer has is answered 503 store-unavailable (problem+json, Retry-After,
no token), keeps nothing, and the same request succeeds once the room is back, with no restart.

The disk is a real tmpfs filled with ballast where the test may mount one, and SQLite's own
size cap (`PRAGMA max_page_count`) everywhere: tests/full_disk.py.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from full_disk import FullDisk, PageLimit, SmallFilesystem
from test_api import TEHRAN, imei, setup

from regionlock.api.app import create_app
from regionlock.geo import Locator
from regionlock.settings import Settings
from regionlock.signing import CheckinRequest, SigningKey, sign_checkin

JOSE = {"content-type": "application/jose"}
# Requests tried before the store must have refused one: the tmpfs holds 4 MB, the cap no page.
ATTEMPTS = 2000


@pytest.fixture(params=["tmpfs", "page-limit"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, locator: Locator
) -> Iterator[tuple[TestClient, FullDisk]]:
    """The app on a SQLite file, and the disk under that file."""
    fs: SmallFilesystem | None = None
    where = tmp_path
    if request.param == "tmpfs":
        fs, why = SmallFilesystem.mount(tmp_path / "fs")
        if fs is None:
            pytest.skip(why)
        where = fs.where
    # The device checks in far more often than a real one may: no rate limit to run into.
    settings = Settings(database_url=f"sqlite:///{where / 'api.db'}", device_rate_per_hour=0)
    try:
        with TestClient(create_app(settings, locator=locator)) as client:
            db = client.app.state.regionlock.stores.db  # type: ignore[attr-defined]
            yield client, fs if fs is not None else PageLimit(db)
    finally:
        if fs is not None:
            fs.unmount()


def signed_checkin(key: SigningKey, counter: int) -> str:
    req = CheckinRequest(secrets.token_urlsafe(16), counter, int(time.time()), TEHRAN)
    return sign_checkin(req, key, imei(1))


def assert_store_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith("/store-unavailable") and "token" not in body
    assert "database or disk is full" in body["detail"]
    assert int(r.headers["retry-after"]) > 0


def until_refused(send: Any) -> tuple[int, httpx.Response]:
    """Call `send(0)`, `send(1)`, ... until one is not answered 200: how many were before it,
    and its answer."""
    for n in range(ATTEMPTS):
        r: httpx.Response = send(n)
        if r.status_code != 200:
            return n, r
    raise AssertionError(f"the service took {ATTEMPTS} writes on a full disk")


def test_a_full_disk_is_503_keeps_nothing_and_heals_without_a_restart(
    served: tuple[TestClient, FullDisk],
) -> None:
    client, disk = served
    key, tokens = setup(client)
    operator = {"authorization": f"Bearer {tokens['operator']}"}
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    assert client.post("/v1/checkin", content=signed_checkin(key, 1), headers=JOSE).is_success
    disk.fill()

    sent: list[str] = []

    def check_in(n: int) -> httpx.Response:
        sent.append(signed_checkin(key, n + 2))
        return client.post("/v1/checkin", content=sent[-1], headers=JOSE)

    def change(n: int) -> httpx.Response:
        """Lock (even n) or unlock (odd n) the device, the reason naming n."""
        action = "lock" if n % 2 == 0 else "unlock"
        body = {"reason": f"change {n}"}
        return client.post(f"/v1/devices/{imei(1)}/{action}", json=body, headers=operator)

    answered, refused = until_refused(check_in)
    assert_store_unavailable(refused)
    changed, refused = until_refused(change)
    assert_store_unavailable(refused)
    assert client.get("/health").status_code == 200

    # Nothing of either refused request was kept.
    stored = client.get(f"/v1/devices/{imei(1)}/checkins", headers=viewer).json()["checkins"]
    assert len(stored) == 1 + answered
    device = client.get(f"/v1/devices/{imei(1)}", headers=viewer).json()
    assert (device["state"]["manual_lock"] is not None) == (changed % 2 == 1)
    trail = client.get("/v1/audit", headers=viewer).json()["entries"]
    assert not [e for e in trail if e["reason"] == f"change {changed}"]
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    assert state.stores.audit.verify().ok

    disk.free()
    # The same requests, as they were, now go through: neither nonce nor counter was taken.
    r = client.post("/v1/checkin", content=sent[-1], headers=JOSE)
    assert r.status_code == 200, r.text
    assert r.json()["counter"] == answered + 2
    r = change(changed)
    assert r.status_code == 200, r.text
    stored = client.get(f"/v1/devices/{imei(1)}/checkins", headers=viewer).json()["checkins"]
    assert len(stored) == 2 + answered
    device = client.get(f"/v1/devices/{imei(1)}", headers=viewer).json()
    assert (device["state"]["manual_lock"] is not None) == (changed % 2 == 0)
    assert state.stores.audit.verify().ok
    assert client.get("/ready").status_code == 200
