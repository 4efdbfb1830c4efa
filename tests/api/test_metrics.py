"""`/metrics` (Prometheus text): what a node counts, and what the store says at a scrape."""

from __future__ import annotations

import re
import time

from fastapi.testclient import TestClient
from test_api import EXAMPLES, imei, post_checkin, setup

from regionlock.geo import Locator
from regionlock.settings import Settings


def value(text: str, sample: str) -> float:
    """The value of one sample line (`name{labels}`) of an exposition; 0 when absent."""
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_checkins_refusals_latency_and_the_stores_gauges(client: TestClient) -> None:
    key, tokens = setup(client)
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    assert client.get("/metrics").status_code == 401  # a viewer's key, by default
    policy = (EXAMPLES / "gray-market-2021.toml").read_text()
    client.post("/v1/policies/activate", json={"policy": policy, "reason": "r"}, headers=admin)
    assert post_checkin(client, key, imei(1), 1).json()["verdict"] == "lock"
    assert post_checkin(client, key, imei(1), 1).status_code == 409  # the counter again
    client.post("/v1/checkin", content=b"not a jws", headers={"content-type": "application/jose"})
    client.get(f"/v1/devices/{imei(1)}", headers=viewer)
    r = client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/x", "events": ["device.locked"]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    client.post(f"/v1/devices/{imei(1)}/lock", json={"reason": "stolen"}, headers=admin)
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    state.webhooks.fan_out()  # the dispatcher's step, now
    scraped = client.get("/metrics", headers=viewer)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert value(text, 'regionlock_checkins_total{verdict="lock"}') == 1
    assert value(text, 'regionlock_checkin_refusals_total{problem="stale-counter"}') == 1
    refused = re.findall(r'^regionlock_checkin_refusals_total\{problem="([^"]+)"\}', text, re.M)
    assert len(refused) == 2 and "stale-counter" in refused  # and the malformed token's
    latency = "regionlock_http_request_duration_seconds_count"
    assert value(text, f'{latency}{{method="GET",route="/v1/devices/{{key}}"}}') == 1
    assert value(text, f'{latency}{{method="POST",route="/v1/checkin"}}') == 3
    assert imei(1) not in text  # a route's template, never a device
    assert value(text, "regionlock_checkin_group_size_count") == 3  # each went on its own
    # Each group's stages, timed: judged, stored (or refused before), answered.
    stage = "regionlock_checkin_stage_duration_seconds"
    for name in ("judge", "store", "answer"):
        assert value(text, f'{stage}_count{{stage="{name}"}}') == 3, name
    assert value(text, f'{stage}_sum{{stage="judge"}}') > 0
    assert value(text, "regionlock_webhook_backlog") == 1
    # The fan-out sealed the trail: every entry so far is in the tree, under a fresh head.
    entries = len(state.stores.audit.entries(limit=5000))
    assert value(text, "regionlock_audit_sealed_entries") == entries > 0
    assert value(text, "regionlock_audit_unsealed_entries") == 0
    assert 0 <= value(text, "regionlock_audit_head_age_seconds") < 60


def test_metrics_may_be_served_to_any_scraper(db_url: str, locator: Locator) -> None:
    from regionlock.api.app import create_app

    app = create_app(Settings(database_url=db_url, metrics_public=True), locator=locator)
    with TestClient(app) as client:
        r = client.get("/metrics")
        assert r.status_code == 200 and "regionlock_webhook_backlog 0.0" in r.text


def test_seals_and_checkpoints_are_timed(client: TestClient) -> None:
    """The background work that shares the node with the check-ins: the audit sealer's rounds
    (every second) and, on SQLite, the log's checkpoints (every 0.1 s)."""
    key, tokens = setup(client)
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    post_checkin(client, key, imei(2), 1)  # a write: SQLite's checkpointer runs from now on
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    sqlite = state.stores.db.dialect == "sqlite"
    background = "regionlock_background_duration_seconds_count"
    deadline = time.monotonic() + 15
    while True:
        text = client.get("/metrics", headers=viewer).text
        seals = value(text, f'{background}{{task="seal"}}')
        checkpoints = value(text, f'{background}{{task="checkpoint"}}')
        if (seals >= 1 and (checkpoints >= 1 or not sqlite)) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert seals >= 1
    assert (checkpoints >= 1) == sqlite  # PostgreSQL checkpoints on its own
