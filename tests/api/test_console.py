"""The console over HTTP, in process, on both stores: every action needs a session, the form's
CSRF token and a role that allows it; what it does is what the API does, audited as the key.
(The same pages in a real browser: tests/e2e/test_console_browser.py.)"""

from __future__ import annotations

import json
import re
import time

import pytest
from fastapi.testclient import TestClient
from test_api import EXAMPLES, imei, post_checkin, setup

FORM = {"content-type": "application/x-www-form-urlencoded"}


def login(client: TestClient, token: str) -> str:
    """Log in; the CSRF token of the session."""
    r = client.post("/console/login", data={"api_key": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    return csrf_of(client.get("/console/devices").text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def audit(client: TestClient, token: str, action: str) -> list[dict[str, object]]:
    entries = client.get(
        "/v1/audit", headers={"authorization": f"Bearer {token}"}, params={"limit": 5000}
    ).json()["entries"]
    return [e for e in entries if e["action"] == action]


def test_an_operator_locks_a_device_and_its_next_checkin_is_locked(client: TestClient) -> None:
    key, tokens = setup(client)
    dubai = {"network": ["424-02"], "gps": {"lat": 25.2, "lon": 55.27}}
    assert post_checkin(client, key, imei(1), 1, dubai).json()["verdict"] == "allow"
    csrf = login(client, tokens["operator"])
    page = client.get(f"/console/devices/{imei(1)}").text
    assert 'action="/console/devices/' in page and "/lock" in page  # the operator's forms
    r = client.post(
        f"/console/devices/{imei(1)}/lock",
        data={"csrf": csrf, "reason": "reported stolen", "message": "Call the shop."},
        follow_redirects=False,
    )
    assert r.status_code == 303
    shown = client.get(r.headers["location"]).text
    assert "Locked: the device locks at its next check-in." in shown
    assert "reported stolen" in shown
    locked = post_checkin(client, key, imei(1), 2, dubai).json()
    assert locked["verdict"] == "lock" and locked["message"] == "Call the shop."
    (entry,) = audit(client, tokens["admin"], "device.lock")
    assert entry["actor"].endswith("(operator)") and entry["reason"] == "reported stolen"
    r = client.post(
        f"/console/devices/{imei(1)}/unlock",
        data={"csrf": csrf, "reason": "found again"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert post_checkin(client, key, imei(1), 3, dubai).json()["verdict"] == "allow"


def test_a_viewer_sees_no_action_and_the_server_refuses_one(client: TestClient) -> None:
    _, tokens = setup(client)
    csrf = login(client, tokens["viewer"])
    page = client.get(f"/console/devices/{imei(1)}").text
    assert "/lock" not in page
    r = client.post(f"/console/devices/{imei(1)}/lock", data={"csrf": csrf, "reason": "x"})
    assert r.status_code == 403 and "Only an operator or above acts on devices." in r.text
    assert audit(client, tokens["admin"], "device.lock") == []


@pytest.mark.parametrize("token", ["", "forged", None])
def test_an_action_without_the_forms_token_is_refused(
    client: TestClient, token: str | None
) -> None:
    _, tokens = setup(client)
    login(client, tokens["admin"])
    data = {"reason": "x"} if token is None else {"csrf": token, "reason": "x"}
    r = client.post(f"/console/devices/{imei(1)}/lock", data=data)
    assert r.status_code == 403 and "The form expired" in r.text
    assert audit(client, tokens["admin"], "device.lock") == []


def test_an_action_without_a_session_goes_to_the_login_page(client: TestClient) -> None:
    _, tokens = setup(client)
    r = client.post(
        f"/console/devices/{imei(1)}/lock",
        data={"csrf": "x", "reason": "x"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert audit(client, tokens["admin"], "device.lock") == []


def test_bad_form_input_is_a_clear_error_and_changes_nothing(client: TestClient) -> None:
    _, tokens = setup(client)
    csrf = login(client, tokens["operator"])
    url = f"/console/devices/{imei(1)}"
    blank = client.post(url + "/lock", data={"csrf": csrf, "reason": "  "})
    assert blank.status_code == 422 and "a reason is required" in blank.text
    nul = client.post(url + "/lock", data={"csrf": csrf, "reason": "a\x00b"})
    assert nul.status_code == 400 and "NUL" in nul.text
    long = client.post(url + "/lock", data={"csrf": csrf, "reason": "x" * 1001})
    assert long.status_code == 400 and "at most 1000 characters" in long.text
    bad_date = client.post(url + "/exempt", data={"csrf": csrf, "reason": "r", "until": "soon"})
    assert bad_date.status_code == 422 and "is not a date" in bad_date.text
    unknown = client.post("/console/devices/nothere/lock", data={"csrf": csrf, "reason": "r"})
    assert unknown.status_code == 404
    not_utf8 = client.post(
        url + "/lock", content=b"csrf=" + csrf.encode() + b"&reason=\xff", headers=FORM
    )
    assert not_utf8.status_code == 400 and "not UTF-8" in not_utf8.text
    assert audit(client, tokens["admin"], "device.lock") == []
    assert audit(client, tokens["admin"], "device.exempt") == []


def test_an_exemption_and_an_unlock_code_from_the_console(client: TestClient) -> None:
    key, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    policy = (EXAMPLES / "gray-market-2021.toml").read_text()
    client.post("/v1/policies/activate", json={"policy": policy, "reason": "r"}, headers=admin)
    assert post_checkin(client, key, imei(1), 1).json()["verdict"] == "lock"  # Tehran
    csrf = login(client, tokens["operator"])
    url = f"/console/devices/{imei(1)}"
    coded = client.post(
        url + "/unlock-code", data={"csrf": csrf, "challenge": "1234-5678", "reason": "owner"}
    )
    assert coded.status_code == 200
    code = re.search(r'<strong id="code">(\d{5}-\d{5})</strong>', coded.text)
    assert code is not None and code.group(1) not in str(coded.url)
    bad = client.post(
        url + "/unlock-code", data={"csrf": csrf, "challenge": "١٢٣٤-٥٦٧٨", "reason": "owner"}
    )
    assert bad.status_code == 422
    assert len(audit(client, tokens["admin"], "device.unlock_code")) == 1
    r = client.post(url + "/exempt", data={"csrf": csrf, "reason": "diplomat"})
    assert r.status_code == 200 and "Exempted" in r.text  # followed the redirect
    assert post_checkin(client, key, imei(1), 2).json()["verdict"] == "allow"


def test_search_finds_a_device_by_serial(client: TestClient) -> None:
    _, tokens = setup(client)
    login(client, tokens["viewer"])
    page = client.get("/console/devices", params={"q": "SN1"}).text
    assert f">{imei(1)}<" in page
    missing = client.get("/console/devices", params={"q": "SN404"}).text
    assert "No device has the IMEI, serial or id" in missing
    # Fifteen digits with a wrong check digit: no device, said on the page.
    bad_imei = client.get("/console/devices", params={"q": "356938030000010"})
    assert bad_imei.status_code == 200 and "No device has the IMEI" in bad_imei.text
    device = client.get("/console/devices/356938030000010")
    assert device.status_code == 404 and "No device has the IMEI or id" in device.text


def test_console_pages_say_where_they_may_load_from(client: TestClient) -> None:
    _, tokens = setup(client)
    login(client, tokens["viewer"])
    r = client.get("/console/devices")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in r.text  # no inline script: the policy would block it
    js = client.get("/console/static/console.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/console/static/../app.py").status_code == 404


def test_the_audit_page_filters_verifies_and_exports(client: TestClient) -> None:
    _, tokens = setup(client)
    csrf = login(client, tokens["operator"])
    for reason in ("first", "second"):
        client.post(f"/console/devices/{imei(1)}/lock", data={"csrf": csrf, "reason": reason})
    login(client, tokens["viewer"])
    page = client.get("/console/audit", params={"action": "device.lock"}).text
    rows = page.split("<tbody>")[1]
    assert rows.index(">second<") < rows.index(">first<")  # newest first
    assert "devices.import" not in rows
    by_imei = client.get("/console/audit", params={"subject": imei(1)}).text
    assert by_imei.count("device.lock</td>") == 2
    verified = client.get("/console/audit/verify")
    assert verified.status_code == 200 and "Intact: " in verified.text
    assert re.search(r'<textarea id="head"[^>]*>ey[\w-]+\.[\w-]+\.[\w-]+</textarea>', verified.text)
    export = client.get("/console/audit/export")
    assert export.headers["content-disposition"].startswith("attachment;")
    lines = export.text.splitlines()
    api = client.get("/v1/audit", headers={"authorization": f"Bearer {tokens['viewer']}"})
    assert [json.loads(line) for line in lines] == api.json()["entries"]
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    with state.stores.db.write() as tx:
        tx.execute("UPDATE audit SET reason = 'rewritten' WHERE reason = 'first'")
    broken = client.get("/console/audit/verify")
    assert broken.status_code == 409 and "Broken at entry" in broken.text
    assert "<textarea" not in broken.text


def wait_for_state(client: TestClient, campaign_id: str, wanted: str) -> dict[str, object]:
    """The campaign's progress once the background runner has brought it to `wanted`."""
    deadline = time.monotonic() + 20
    while True:
        progress = client.get(f"/console/campaigns/{campaign_id}/progress").json()
        if progress["state"] == wanted or time.monotonic() > deadline:
            return progress  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_a_campaign_is_previewed_created_started_and_reverted(client: TestClient) -> None:
    key, tokens = setup(client)
    dubai = {"network": ["424-02"], "gps": {"lat": 25.2, "lon": 55.27}}
    assert post_checkin(client, key, imei(1), 1, dubai).json()["verdict"] == "allow"
    csrf = login(client, tokens["operator"])
    form = {
        "csrf": csrf,
        "name": "B1 stock",
        "action": "lock",
        "where": "batch=B1\r\ndistributor=D7",
        "stages": "100",
        "reason": "leaked batch",
        "message": "Call the shop.",
    }
    preview = client.post("/console/campaigns/new", data=form | {"do": "preview"})
    assert preview.status_code == 200 and "Dry run: 1 devices" in preview.text
    assert "distributor=D7 AND batch=B1" in preview.text
    assert client.app.state.regionlock.campaigns.recent(limit=5) == []  # type: ignore[attr-defined]
    created = client.post("/console/campaigns/new", data=form | {"do": "create"})
    assert created.status_code == 200 and "Created as a draft" in created.text
    campaign_id = created.url.path.rsplit("/", 1)[1]
    assert '<span id="state" data-field="state">draft</span>' in created.text
    assert "needs a second admin's approval" in created.text  # 1 device: all the fleet
    started = client.post(f"/console/campaigns/{campaign_id}/start", data={"csrf": csrf})
    assert started.status_code == 409 and "approv" in started.text.split('role="alert">')[1]
    admin_csrf = login(client, tokens["admin"])
    page = client.get(f"/console/campaigns/{campaign_id}").text
    assert f'action="/console/campaigns/{campaign_id}/approve"' in page
    approved = client.post(f"/console/campaigns/{campaign_id}/approve", data={"csrf": admin_csrf})
    assert approved.status_code == 200 and "Approved." in approved.text
    csrf = login(client, tokens["operator"])
    started = client.post(f"/console/campaigns/{campaign_id}/start", data={"csrf": csrf})
    assert started.status_code == 200 and "Started:" in started.text
    progress = wait_for_state(client, campaign_id, "done")
    assert progress["state"] == "done" and progress["applied"] == 1 and not progress["moving"]
    locked = post_checkin(client, key, imei(1), 2, dubai).json()
    assert locked["verdict"] == "lock" and locked["message"] == "Call the shop."
    actors = {e["actor"] for e in audit(client, tokens["admin"], "campaign.start")}
    assert len(actors) == 1 and actors.pop().endswith("(operator)")
    reverted = client.post(
        f"/console/campaigns/{campaign_id}/revert", data={"csrf": csrf, "reason": "wrong batch"}
    )
    assert reverted.status_code == 200 and "puts back what the campaign changed" in reverted.text
    assert (
        f'<a href="/console/campaigns/{campaign_id}">' in reverted.text
    )  # it says what it reverts


def test_campaign_forms_refuse_what_the_api_refuses(client: TestClient) -> None:
    _, tokens = setup(client)
    csrf = login(client, tokens["operator"])
    base = {"csrf": csrf, "name": "n", "action": "lock", "reason": "r", "do": "create"}
    for fields, said in (
        ({"stages": "10, 5"}, "stages"),
        ({"stages": "ten"}, "stages: percentages"),
        ({"where": "colour=red"}, "colour"),
        ({"action": "melt"}, "action"),
        ({"where": "batch=NOPE"}, "no device"),
        ({"devices": "356938030000096"}, "no registered device"),
        ({"reason": " "}, "reason"),
    ):
        r = client.post("/console/campaigns/new", data=base | fields)
        assert r.status_code in (400, 409, 422), (fields, r.status_code)
        assert said in r.text.split('role="alert">')[1].split("</p>")[0], fields
        assert 'value="n"' in r.text  # what was typed is kept
    assert client.app.state.regionlock.campaigns.recent(limit=5) == []  # type: ignore[attr-defined]
    viewer_csrf = login(client, tokens["viewer"])
    refused = client.post("/console/campaigns/new", data=base | {"csrf": viewer_csrf})
    assert refused.status_code == 403 and "Only an operator or above creates campaigns" in (
        refused.text
    )
    csrf = login(client, tokens["operator"])
    cancel = client.post(
        "/console/campaigns/cmp_nothere/cancel", data={"csrf": csrf, "reason": "r"}
    )
    assert cancel.status_code == 404


def test_a_policy_is_checked_simulated_activated_and_rolled_back(client: TestClient) -> None:
    key, tokens = setup(client)
    assert post_checkin(client, key, imei(1), 1).json()["verdict"] == "allow"  # Tehran, no policy
    lifted = (EXAMPLES / "gray-market-2021-lifted.toml").read_text()
    blocked = (EXAMPLES / "gray-market-2021.toml").read_text()
    csrf = login(client, tokens["viewer"])
    checked = client.post("/console/policies/check", data={"csrf": csrf, "policy": blocked})
    assert checked.status_code == 200 and "gray-market-2021@" in checked.text
    impact = checked.text.split('id="impact-summary">')[1].split("</p>")[0]
    assert "1 lock" in impact and "(now 1 allow)" in impact
    assert "/console/policies/activate" not in checked.text  # a viewer does not activate
    refused = client.post(
        "/console/policies/activate", data={"csrf": csrf, "policy": blocked, "reason": "r"}
    )
    assert refused.status_code == 403
    csrf = login(client, tokens["admin"])
    for document, reason in ((lifted, "lifted first"), (blocked, "sanctions")):
        done = client.post(
            "/console/policies/activate", data={"csrf": csrf, "policy": document, "reason": reason}
        )
        assert done.status_code == 200 and "Activated:" in done.text
    assert post_checkin(client, key, imei(1), 2).json()["verdict"] == "lock"
    compared = client.get(
        "/console/policies",
        params={"from": "gray-market-2021@2021-11-01-lifted", "to": "gray-market-2021@2021-09-15"},
    )
    assert compared.status_code == 200 and '<ul id="compared">' in compared.text
    back = client.post("/console/policies/rollback", data={"csrf": csrf, "reason": "too early"})
    assert back.status_code == 200 and "Rolled back" in back.text
    assert '<code id="active">gray-market-2021@2021-11-01-lifted</code>' in back.text
    actions = [e["action"] for e in audit(client, tokens["admin"], "policy.rollback")]
    assert actions == ["policy.rollback"]


def test_a_bad_policy_lists_its_problems_and_nothing_is_stored(client: TestClient) -> None:
    _, tokens = setup(client)
    csrf = login(client, tokens["admin"])
    broken = 'id = "x"\nversion = "1"\n[[restrictions]]\ncountries = ["ZZ"]\n'
    r = client.post("/console/policies/check", data={"csrf": csrf, "policy": broken})
    assert r.status_code == 422 and 'id="problems"' in r.text and "ZZ" in r.text
    not_toml = client.post("/console/policies/check", data={"csrf": csrf, "policy": "[[[["})
    assert not_toml.status_code == 422 and 'role="alert"' in not_toml.text
    deep = client.post("/console/policies/check", data={"csrf": csrf, "policy": "a=" + "[" * 5000})
    assert deep.status_code == 422
    r = client.post(
        "/console/policies/activate", data={"csrf": csrf, "policy": broken, "reason": "r"}
    )
    assert r.status_code == 422 and "Not activated" in r.text
    assert client.app.state.regionlock.stores.policies.versions() == []  # type: ignore[attr-defined]


def test_only_a_session_may_post_a_large_document(client: TestClient) -> None:
    _, tokens = setup(client)
    big = "# padding\n" * 3000 + (EXAMPLES / "eu.toml").read_text()  # 30 KB, past 8 KiB
    anonymous = client.post("/console/policies/check", data={"csrf": "x", "policy": big})
    assert anonymous.status_code == 413
    csrf = login(client, tokens["viewer"])
    r = client.post("/console/policies/check", data={"csrf": csrf, "policy": big})
    assert r.status_code == 200 and "is valid" in r.text
    too_big = client.post("/console/devices/x/lock", data={"csrf": csrf, "reason": "x" * 9000})
    assert too_big.status_code == 413  # other forms stay small


def test_the_overview_goes_back_to_a_snapshotted_day(client: TestClient) -> None:
    from datetime import UTC, datetime, timedelta

    from regionlock.services.overview import Overview

    key, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    policy = (EXAMPLES / "gray-market-2021.toml").read_text()
    client.post("/v1/policies/activate", json={"policy": policy, "reason": "r"}, headers=admin)
    assert post_checkin(client, key, imei(1), 1).json()["verdict"] == "lock"
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    today = datetime.now(UTC).date()
    assert Overview.of(state.stores).snapshot_missing(datetime.now(UTC) + timedelta(days=1)) == [
        today
    ]
    login(client, tokens["viewer"])
    now = client.get("/console/").text
    assert 'id="day"' in now and f'"{today.isoformat()}", "now"' in now.replace("&#34;", '"')
    assert "Check-ins per day" in now and f"{today.isoformat()}: 1</title>" in now
    # The map: each place shaded by the share held, named in its tooltip.
    assert "Iran (IR): 100 % of its devices locked or warned" in now
    then = client.get("/console/", params={"day": today.isoformat()})
    assert then.status_code == 200 and f"<strong>{today.isoformat()}</strong>" in then.text
    assert '<div class="n" id="locked">1</div>' in then.text
    for bad in ("2001-01-01", "yesterday", "2026-02-30"):
        r = client.get("/console/", params={"day": bad})
        assert r.status_code == 404 and "No snapshot of the fleet on" in r.text


def test_flows_and_ranges_of_an_investigation(client: TestClient) -> None:
    key, tokens = setup(client)
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    policy = (EXAMPLES / "gray-market-2021.toml").read_text()
    client.post("/v1/policies/activate", json={"policy": policy, "reason": "r"}, headers=admin)
    assert post_checkin(client, key, imei(1), 1).json()["verdict"] == "lock"  # Tehran
    login(client, tokens["viewer"])
    ranking = client.get("/console/investigations").text
    assert '<a href="/console/investigations/ranges?batch=B1">B1</a>' in ranking
    flows = client.get("/console/investigations/flows")
    row = flows.text.split('<table data-sortable id="flows">')[1].split("</tr>")[1]
    assert flows.status_code == 200 and "<td>AE</td>" in row and "IR" in row
    assert "restricted" in row
    ranges = client.get("/console/investigations/ranges", params={"batch": "B1"})
    assert ranges.status_code == 200 and "1 devices of the batch seen, 1 established" in ranges.text
    unknown = client.get("/console/investigations/ranges", params={"batch": "B404"})
    assert unknown.status_code == 404 and "no registered device is in batch" in unknown.text
    empty = client.get("/console/investigations/ranges")
    assert empty.status_code == 200 and 'id="batch"' in empty.text


def test_the_consoles_colours_keep_a_contrast_of_4_5_to_1() -> None:
    """WCAG 2 AA for body text: every text colour of the style sheet on each background it
    is used on (docs/console.md, "For people")."""
    from importlib import resources

    css = resources.files("regionlock").joinpath("console/templates/base.html.j2").read_text()
    colour = dict(re.findall(r"--(\w+): (#[0-9a-f]{6})", css))
    assert set(colour) >= {"ink", "muted", "accent", "lock", "warn"}

    def luminance(hex_colour: str) -> float:
        def channel(c: float) -> float:
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)

    def contrast(a: str, b: str) -> float:
        high, low = sorted((luminance(a), luminance(b)), reverse=True)
        return (high + 0.05) / (low + 0.05)

    white, error_background = "#ffffff", "#fff3f1"
    assert error_background in css
    pairs = [(colour[name], white) for name in ("ink", "muted", "accent", "lock", "warn")]
    pairs += [(white, colour["accent"]), (white, colour["lock"])]  # buttons
    pairs += [(colour[name], error_background) for name in ("ink", "muted", "lock", "warn")]
    low = min(pairs, key=lambda p: contrast(*p))
    assert contrast(*low) >= 4.5, low
