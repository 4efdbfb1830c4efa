"""Campaigns over the API, on both stores: roles and the second key's approval, dry runs,
the background runner applying what was started, pause, cancel, revert, and bad input."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_api import imei, post_checkin, setup

from regionlock.api.app import create_app
from regionlock.domain.device import encode_public_key
from regionlock.geo import Locator
from regionlock.settings import Settings
from regionlock.storage.apikeys import Role

PROBLEM = "application/problem+json"
LOCK_B1 = {"name": "leak", "action": "lock", "reason": "batch B1 leaked", "where": ["batch=B1"]}


@contextmanager
def serving(db_url: str, locator: Locator, **settings: Any) -> Iterator[TestClient]:
    """The app on `db_url`; the four-eyes rule out of the way unless a test sets it."""
    values: dict[str, Any] = {
        "campaign_approval_devices": 10_000,
        "campaign_approval_share": 1.0,
        "campaign_poll_s": 0.2,
    } | settings
    app = create_app(Settings(database_url=db_url, **values), locator=locator)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def api(db_url: str, locator: Locator) -> Iterator[TestClient]:
    with serving(db_url, locator) as c:
        yield c


Fleet = tuple[Any, dict[str, dict[str, str]]]


def fleet(client: TestClient, batches: tuple[str, ...] = ("B1", "B1", "B1", "B2", "B2")) -> Fleet:
    """Device n+1 in batches[n] (device 1, in B1, has the signing key the check-ins use), and
    a header for each role and for a second admin key."""
    key, tokens = setup(client)  # registers device 1 (batch B1)
    more(client, key, {n: b for n, b in enumerate(batches, start=1) if n > 1})
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    with state.stores.db.write() as tx:
        _, tokens["admin2"] = state.stores.apikeys.create(tx, name="admin2", role=Role.ADMIN, at=0)
    return key, {role: {"authorization": f"Bearer {t}"} for role, t in tokens.items()}


def more(client: TestClient, key: Any, batches: dict[int, str]) -> None:
    """Register devices n with their batch (the same public key as device 1)."""
    public = encode_public_key(key.private_key.public_key().public_bytes_raw())
    rows = [f"{imei(n)},SN{n},X1,AE,D7,{b},{public}\n" for n, b in batches.items()]
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    report = state.registry.import_csv(
        ["imei,serial,model,sales_region,distributor,batch,public_key\n", *rows],
        actor="test",
        source="t.csv",
        now=datetime.now(UTC),
    )
    assert report.imported == len(rows), report.problems


def device_id(client: TestClient, n: int, h: dict[str, str]) -> str:
    found: str = client.get(f"/v1/devices/{imei(n)}", headers=h).json()["id"]
    return found


def settled(client: TestClient, cid: str, h: dict[str, str], states: set[str]) -> dict[str, Any]:
    """The campaign once the background runner has brought it to one of `states` (bounded)."""
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, Any] = client.get(f"/v1/campaigns/{cid}", headers=h).json()
        if body["state"] in states:
            return body
        assert time.monotonic() < deadline, f"campaign still {body['state']}: {body}"
        time.sleep(0.05)


def audit(client: TestClient, h: dict[str, str]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = client.get("/v1/audit", headers=h).json()["entries"]
    return entries


def per_device(entries: list[dict[str, Any]], cid: str) -> Counter[str]:
    return Counter(
        e["subject"] for e in entries if e["details"].get("campaign") == cid and e["subject"]
    )


def refused(r: Any, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["type"].endswith("/" + slug), body
    return body


def test_roles_and_the_second_admin_key(api: TestClient) -> None:
    _, h = fleet(api)
    refused(api.post("/v1/campaigns", json=LOCK_B1, headers=h["viewer"]), 403, "forbidden")
    r = api.post("/v1/campaigns", json=LOCK_B1, headers=h["operator"])
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert r.headers["location"] == f"/v1/campaigns/{cid}"
    assert r.json()["state"] == "draft" and r.json()["targets"] == 3
    assert r.json()["created_by"].startswith("apikey:")
    listed = api.get("/v1/campaigns", headers=h["viewer"]).json()["campaigns"]
    assert [c["id"] for c in listed] == [cid]
    assert api.get(f"/v1/campaigns/{cid}", headers=h["viewer"]).json()["targets"] == 3
    refused(api.post(f"/v1/campaigns/{cid}/start", json={}, headers=h["viewer"]), 403, "forbidden")
    refused(api.post(f"/v1/campaigns/{cid}/approve", headers=h["operator"]), 403, "forbidden")

    own = api.post("/v1/campaigns", json=LOCK_B1, headers=h["admin"]).json()["id"]
    body = refused(api.post(f"/v1/campaigns/{own}/approve", headers=h["admin"]), 409, "conflict")
    assert "someone else" in body["detail"]
    r = api.post(
        f"/v1/campaigns/{own}/approve", json={"reason": "checked the dry run"}, headers=h["admin2"]
    )
    assert r.status_code == 200, r.text
    assert r.json()["approved_by"].endswith("(admin2)")
    # The approver's words go to the audit trail with the approval.
    trail = api.get("/v1/audit", params={"subject": own}, headers=h["admin"]).json()
    approvals = [e for e in trail["entries"] if e["action"] == "campaign.approve"]
    assert [e["reason"] for e in approvals] == ["checked the dry run"]


def test_a_campaign_over_the_limit_needs_a_second_admin_to_start(
    db_url: str, locator: Locator
) -> None:
    with serving(db_url, locator, campaign_approval_devices=2) as api:
        _, h = fleet(api)
        small = {**LOCK_B1, "where": ["batch=B2"]}  # 2 devices: under the limit
        cid = api.post("/v1/campaigns", json=small, headers=h["operator"]).json()["id"]
        assert api.post(f"/v1/campaigns/{cid}/start", json={}, headers=h["operator"]).is_success
        cid = api.post("/v1/campaigns", json=LOCK_B1, headers=h["operator"]).json()["id"]
        body = refused(
            api.post(f"/v1/campaigns/{cid}/start", json={}, headers=h["admin"]),
            409,
            "approval-required",
        )
        assert "3 devices" in body["detail"]
        assert api.get(f"/v1/campaigns/{cid}", headers=h["viewer"]).json()["state"] == "draft"
        assert api.post(f"/v1/campaigns/{cid}/approve", headers=h["admin"]).is_success
        r = api.post(f"/v1/campaigns/{cid}/start", json={}, headers=h["operator"])
        assert r.status_code == 200 and r.json()["state"] == "running", r.text


def test_a_share_of_the_fleet_over_the_limit_needs_approval(db_url: str, locator: Locator) -> None:
    with serving(db_url, locator, campaign_approval_share=0.5) as api:
        _, h = fleet(api)  # B1: 3 of 5 devices
        cid = api.post("/v1/campaigns", json=LOCK_B1, headers=h["operator"]).json()["id"]
        refused(
            api.post(f"/v1/campaigns/{cid}/start", json={}, headers=h["operator"]),
            409,
            "approval-required",
        )


def test_a_dry_run_changes_nothing(api: TestClient) -> None:
    _, h = fleet(api)
    before = audit(api, h["viewer"])
    r = api.post("/v1/campaigns", json={**LOCK_B1, "dry_run": True}, headers=h["operator"])
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["devices"] == 3 and preview["by_verdict"] == {"none": 3}
    assert preview["selection"] == "batch=B1" and len(preview["sample"]) == 3
    nothing = {**LOCK_B1, "where": ["batch=B9"], "dry_run": True}
    assert api.post("/v1/campaigns", json=nothing, headers=h["operator"]).json()["devices"] == 0
    assert "location" not in r.headers
    assert api.get("/v1/campaigns", headers=h["viewer"]).json()["campaigns"] == []
    assert audit(api, h["viewer"]) == before


def test_a_started_campaign_is_applied_in_the_background_each_device_once(
    api: TestClient,
) -> None:
    key, h = fleet(api)
    cid = api.post("/v1/campaigns", json=LOCK_B1, headers=h["operator"]).json()["id"]
    r = api.post(f"/v1/campaigns/{cid}/start", headers=h["operator"])  # no body: the same
    assert r.status_code == 200 and r.json()["state"] == "running", r.text
    done = settled(api, cid, h["viewer"], {"done"})
    assert (done["applied"], done["skipped"], done["errors"], done["pending"]) == (3, 0, 0, 0)
    b1 = {device_id(api, n, h["viewer"]) for n in (1, 2, 3)}
    assert per_device(audit(api, h["viewer"]), cid) == dict.fromkeys(b1, 1)
    targets = api.get(f"/v1/campaigns/{cid}/targets", headers=h["viewer"]).json()
    assert {t["device"] for t in targets["targets"]} == b1 and targets["next"] is None
    assert {t["status"] for t in targets["targets"]} == {"applied"}
    page = api.get(f"/v1/campaigns/{cid}/targets?limit=2", headers=h["viewer"]).json()
    rest = api.get(
        f"/v1/campaigns/{cid}/targets?after={page['next']}&status=applied", headers=h["viewer"]
    ).json()
    assert [t["device"] for t in page["targets"] + rest["targets"]] == sorted(b1)
    device = api.get(f"/v1/devices/{imei(4)}", headers=h["viewer"]).json()
    assert device["state"]["manual_lock"] is None  # batch B2: not targeted

    r = post_checkin(api, key, imei(1), 1)
    assert r.status_code == 200, r.text
    assert r.json()["verdict"] == "lock" and "campaign.lock" in r.json()["reasons"]


def test_start_says_how_the_fleet_drifted_and_accepts_the_changes(api: TestClient) -> None:
    key, h = fleet(api)
    cid = api.post("/v1/campaigns", json=LOCK_B1, headers=h["operator"]).json()["id"]
    assert "drift" not in api.get(f"/v1/campaigns/{cid}", headers=h["viewer"]).json()
    more(api, key, {9: "B1"})
    shown = api.get(f"/v1/campaigns/{cid}?drift=true", headers=h["viewer"]).json()
    assert shown["drift"] == {"frozen": 3, "added": 1, "removed": 0}
    body = refused(
        api.post(f"/v1/campaigns/{cid}/start", json={}, headers=h["operator"]),
        409,
        "campaign-drifted",
    )
    assert body["drift"] == {"frozen": 3, "added": 1, "removed": 0}
    assert "accept_changes" in body["detail"]
    r = api.post(f"/v1/campaigns/{cid}/start", json={"accept_changes": True}, headers=h["operator"])
    assert r.status_code == 200, r.text
    assert settled(api, cid, h["viewer"], {"done"})["applied"] == 3  # the frozen targets


def test_stages_wait_for_advance_and_pause_and_cancel_keep_what_was_applied(
    api: TestClient,
) -> None:
    _, h = fleet(api, batches=("B1",) * 40)
    staged = {**LOCK_B1, "stages": [50, 100]}
    cid = api.post("/v1/campaigns", json=staged, headers=h["operator"]).json()["id"]
    refused(
        api.post(f"/v1/campaigns/{cid}/pause", json={"reason": "x"}, headers=h["operator"]),
        409,
        "conflict",
    )  # a draft is not paused
    api.post(f"/v1/campaigns/{cid}/start", json={}, headers=h["operator"])
    waiting = settled(api, cid, h["viewer"], {"waiting"})
    first = waiting["stage_sizes"][0]
    assert waiting["stage"] == 1 and waiting["applied"] == first and 0 < first < 40

    r = api.post(f"/v1/campaigns/{cid}/pause", json={"reason": "calls"}, headers=h["operator"])
    assert r.status_code == 200 and r.json()["state"] == "paused", r.text
    assert r.json()["state_reason"] == "calls"
    refused(api.post(f"/v1/campaigns/{cid}/advance", headers=h["operator"]), 409, "conflict")
    r = api.post(f"/v1/campaigns/{cid}/cancel", json={"reason": "done"}, headers=h["operator"])
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    refused(api.post(f"/v1/campaigns/{cid}/start", json={}, headers=h["operator"]), 409, "conflict")
    assert api.get(f"/v1/campaigns/{cid}", headers=h["viewer"]).json()["applied"] == first
    assert sum(per_device(audit(api, h["viewer"]), cid).values()) == first


def test_advance_runs_the_next_stage_in_the_background(api: TestClient) -> None:
    _, h = fleet(api, batches=("B1",) * 40)
    staged = {**LOCK_B1, "stages": [50, 100]}
    cid = api.post("/v1/campaigns", json=staged, headers=h["operator"]).json()["id"]
    api.post(f"/v1/campaigns/{cid}/start", json={}, headers=h["operator"])
    settled(api, cid, h["viewer"], {"waiting"})
    r = api.post(f"/v1/campaigns/{cid}/advance", headers=h["operator"])
    assert r.status_code == 200 and r.json()["stage"] == 2, r.text
    assert settled(api, cid, h["viewer"], {"done"})["applied"] == 40
    assert set(per_device(audit(api, h["viewer"]), cid).values()) == {1}


def test_revert_undoes_exactly_what_the_campaign_changed(api: TestClient) -> None:
    _, h = fleet(api)
    cid = api.post("/v1/campaigns", json=LOCK_B1, headers=h["operator"]).json()["id"]
    refused(
        api.post(f"/v1/campaigns/{cid}/revert", json={"reason": "x"}, headers=h["operator"]),
        422,
        "invalid-input",
    )  # nothing applied yet: nothing to revert
    api.post(f"/v1/campaigns/{cid}/start", json={}, headers=h["operator"])
    settled(api, cid, h["viewer"], {"done"})
    refused(
        api.post(f"/v1/campaigns/{cid}/revert", json={"reason": "x"}, headers=h["viewer"]),
        403,
        "forbidden",
    )
    r = api.post(f"/v1/campaigns/{cid}/revert", json={"reason": "cleared"}, headers=h["operator"])
    assert r.status_code == 201, r.text
    back = r.json()
    assert r.headers["location"] == f"/v1/campaigns/{back['id']}"
    assert (back["action"], back["reverts"], back["targets"]) == ("revert", cid, 3)
    api.post(f"/v1/campaigns/{back['id']}/start", json={}, headers=h["operator"])
    assert settled(api, back["id"], h["viewer"], {"done"})["applied"] == 3
    for n in (1, 2, 3):
        device = api.get(f"/v1/devices/{imei(n)}", headers=h["viewer"]).json()
        assert device["state"]["manual_lock"] is None


def test_a_list_of_devices_by_imei_narrows_the_selection(api: TestClient) -> None:
    _, h = fleet(api)
    body = {**LOCK_B1, "where": {"batch": ["B1", "B2"]}, "devices": [imei(2), imei(4)]}
    r = api.post("/v1/campaigns", json=body, headers=h["operator"])
    assert r.status_code == 201 and r.json()["targets"] == 2, r.text
    r = api.post("/v1/campaigns", json={**body, "dry_run": True}, headers=h["operator"])
    assert r.status_code == 200, r.text
    preview = r.json()
    assert (preview["devices"], len(preview["sample"]), preview["by_verdict"]) == (
        2,
        2,
        {"none": 2},
    )
    narrower = {**body, "where": ["batch=B1"], "dry_run": True}
    assert api.post("/v1/campaigns", json=narrower, headers=h["operator"]).json()["devices"] == 1
    body = {**body, "devices": [imei(2), imei(77)]}
    detail = refused(
        api.post("/v1/campaigns", json=body, headers=h["operator"]), 422, "invalid-input"
    )
    assert "index 1" in detail["detail"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"where": ["colour=red"]}, "unknown field"),
        ({"where": {"colour": ["red"]}}, "colour"),
        ({"where": ["country=ZZ"]}, "country"),
        ({"where": {"verdict": ["maybe"]}}, "verdict"),
        ({"where": ["batch=NOPE"]}, "matches no device"),
        ({"where": ["batch"]}, "FIELD=VALUE"),
        ({"action": "unlock", "message": "hi"}, "locks only"),
        ({"action": "revert"}, "action"),
        ({"stages": [10, 5]}, "stages"),
        ({"stages": [10, 50]}, "100"),
        ({"reason": " "}, "reason"),
        ({"devices": []}, "empty"),
        ({"until": "2020-01-01", "action": "exempt"}, "future"),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["create", "dry-run"])
def test_bad_input_is_a_problem_and_creates_nothing(
    api: TestClient, change: dict[str, Any], says: str, dry_run: bool
) -> None:
    """A dry run refuses what the real run would refuse (but an empty selection: it says 0)."""
    _, h = fleet(api)
    before = audit(api, h["viewer"])
    body = {**LOCK_B1, **change, "dry_run": dry_run}
    r = api.post("/v1/campaigns", json=body, headers=h["operator"])
    if dry_run and says == "matches no device":
        # A dry run that matches nothing is an answer, not an error: 0 devices.
        assert r.status_code == 200 and r.json()["devices"] == 0, r.text
    else:
        assert says in refused(r, 422, "invalid-input")["detail"]
    assert api.get("/v1/campaigns", headers=h["viewer"]).json()["campaigns"] == []
    assert audit(api, h["viewer"]) == before


def test_an_unknown_campaign_is_404(api: TestClient) -> None:
    _, h = fleet(api)
    cid = "cmp_aaaaaaaaaaaaaaaa"
    refused(api.get(f"/v1/campaigns/{cid}", headers=h["viewer"]), 404, "unknown-campaign")
    refused(api.get(f"/v1/campaigns/{cid}/targets", headers=h["viewer"]), 404, "unknown-campaign")
    for action, body in (
        ("start", {}),
        ("advance", None),
        ("pause", {"reason": "x"}),
        ("cancel", {"reason": "x"}),
        ("revert", {"reason": "x"}),
    ):
        r = api.post(f"/v1/campaigns/{cid}/{action}", json=body, headers=h["operator"])
        refused(r, 404, "unknown-campaign")
    refused(api.post(f"/v1/campaigns/{cid}/approve", headers=h["admin"]), 404, "unknown-campaign")


def test_the_openapi_documents_the_campaign_problems(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    start = spec["paths"]["/v1/campaigns/{campaign_id}/start"]["post"]["responses"]
    for slug in ("approval-required", "campaign-drifted", "conflict"):
        assert f"`{slug}`" in start["409"]["description"]
    assert "`unknown-campaign`" in start["404"]["description"]
    create = spec["paths"]["/v1/campaigns"]["post"]["responses"]
    assert {"200", "201", "401", "403", "422"} <= set(create)


def test_a_device_list_past_the_body_limit_is_refused_unread(api: TestClient) -> None:
    _, h = fleet(api)
    body = {**LOCK_B1, "devices": [imei(n) for n in range(5000)]}  # about 95 KiB
    refused(api.post("/v1/campaigns", json=body, headers=h["operator"]), 413, "payload-too-large")


def test_the_runner_stops_with_the_app(db_url: str, locator: Locator) -> None:
    with serving(db_url, locator) as api:
        runner = api.app.state.regionlock.campaign_runner  # type: ignore[attr-defined]
        assert runner.alive
    assert not runner.alive
