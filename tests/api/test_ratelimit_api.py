"""Rate limits over HTTP: 429 rate-limited, problem+json, Retry-After; per device, per key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from test_api import imei, post_checkin, setup

from regionlock.api.app import create_app
from regionlock.geo import Locator
from regionlock.settings import Settings


@pytest.fixture
def tight(db_url: str, locator: Locator) -> Iterator[TestClient]:
    settings = Settings(
        database_url=db_url,
        device_rate_per_hour=60,
        device_burst=2,
        apikey_rate_per_hour=3600,
        apikey_burst=5,
    )
    with TestClient(create_app(settings, locator=locator)) as client:
        yield client


def test_a_device_that_loops_gets_429_with_retry_after(tight: TestClient) -> None:
    key, _ = setup(tight)
    assert post_checkin(tight, key, imei(1), 1).status_code == 200
    assert post_checkin(tight, key, imei(1), 2).status_code == 200
    r = post_checkin(tight, key, imei(1), 3)
    assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/rate-limited") and "token" not in r.json()
    assert 0 < int(r.headers["retry-after"]) <= 60


def test_an_api_key_that_floods_gets_429_with_retry_after(tight: TestClient) -> None:
    _, tokens = setup(tight)
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    answers = [tight.get("/v1/devices", headers=viewer).status_code for _ in range(8)]
    assert answers[:5] == [200] * 5 and answers[5:] == [429] * 3
    r = tight.get("/v1/devices", headers=viewer)
    assert r.json()["type"].endswith("/rate-limited") and int(r.headers["retry-after"]) >= 1
    # Another key is not held back by this one.
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    assert tight.get("/v1/devices", headers=admin).status_code == 200
