"""A node whose database goes away answers 503 store-unavailable with Retry-After (problem+json),
says so at /ready while /health stays up, and serves again by itself when the database is
back. PostgreSQL: the database is closed to connections for real, not mocked."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from test_api import TEHRAN, imei, post_checkin, setup

from regionlock.api.app import create_app
from regionlock.geo import Locator
from regionlock.settings import Settings
from regionlock.signing import CheckinRequest, sign_checkin


@pytest.fixture
def pg_client(db_url: str, locator: Locator) -> Iterator[TestClient]:
    if not db_url.startswith("postgresql"):
        pytest.skip("closes a PostgreSQL database to connections")
    app = create_app(Settings(database_url=db_url), locator=locator)
    with TestClient(app) as c:
        yield c


def _outage(db_url: str, closed: bool) -> None:
    """Close the test's database to connections (and drop those it has), or open it again."""
    name = db_url.rsplit("/", 1)[1]
    admin_url = db_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if closed else "true"}')
        if closed:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )


def test_an_outage_is_503_with_retry_after_and_heals(pg_client: TestClient, db_url: str) -> None:
    client = pg_client
    key, tokens = setup(client)
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    assert post_checkin(client, key, imei(1), 1).status_code == 200
    assert client.get("/ready").status_code == 200
    _outage(db_url, closed=True)
    try:
        r = post_checkin(client, key, imei(1), 2)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/store-unavailable") and "token" not in r.json()
        assert int(r.headers["retry-after"]) > 0
        r = client.get("/v1/devices", headers=viewer)
        assert r.status_code == 503 and r.json()["type"].endswith("/store-unavailable")
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["type"].endswith("/store-unavailable")
        assert client.get("/health").status_code == 200  # alive, not ready
    finally:
        _outage(db_url, closed=False)
    deadline = time.monotonic() + 30
    while client.get("/ready").status_code != 200:  # no restart: it reconnects by itself
        assert time.monotonic() < deadline, "the node did not recover within 30 s"
        time.sleep(0.1)
    # The refused check-in changed nothing: counter 2 is still free.
    req = CheckinRequest(secrets.token_urlsafe(16), 2, int(time.time()), TEHRAN)
    r = client.post(
        "/v1/checkin",
        content=sign_checkin(req, key, imei(1)),
        headers={"content-type": "application/jose"},
    )
    assert r.status_code == 200, r.text
    assert client.get("/v1/devices", headers=viewer).status_code == 200
