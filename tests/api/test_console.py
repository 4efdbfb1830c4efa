"""The console over HTTP, in process, on both stores: every action needs a session, the form's
CSRF token and a role that allows it; what it does is what the API does, audited as the key.
(The same pages in a real browser: tests/e2e/test_console_browser.py.)"""

from __future__ import annotations

import json
import re

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
