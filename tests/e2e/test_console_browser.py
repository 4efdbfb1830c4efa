"""The console in a real browser (Debian's Chromium, driven by Playwright): log in with an API
key, see the fleet at a glance, log out; a wrong key and a forged logout are refused."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright import sync_api
from serving import CLI, served

CHROMIUM = Path("/usr/bin/chromium")
IMEI_1 = "356938030000013"  # storage_fixtures.imei(1)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A served store with two devices, one locked at a check-in from Tehran; base URL, keys."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
    from storage_fixtures import Fleet, imei
    from storage_fixtures import checkin as signed_checkin

    from regionlock.geo import Locator
    from regionlock.services.appeals import Appeals
    from regionlock.services.checkin import CheckinService
    from regionlock.settings import Settings
    from regionlock.signing.appeal import AppealRequest, sign_appeal
    from regionlock.storage import Database, Stores
    from regionlock.storage.migrate import migrate

    path = tmp_path_factory.mktemp("console") / "rl.db"
    url = f"sqlite:///{path}"
    db = Database(url)
    migrate(db)
    fleet = Fleet(2)
    fleet.register(db)
    service = CheckinService.of(Stores.on(db), Locator(), Settings())
    tehran = {"gps": {"lat": 35.69, "lon": 51.39, "accuracy_m": 20}, "network": ["432-11"]}
    now = datetime.now(UTC)
    service.check_in(signed_checkin(fleet.keys[0], imei(1), 1, now, tehran), peer_ip=None, now=now)
    request = AppealRequest(
        secrets.token_urlsafe(16), int(now.timestamp()), "o@example.com", "Mine."
    )
    Appeals.of(Stores.on(db)).submit(sign_appeal(request, fleet.keys[0], imei(1)))
    db.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIONLOCK_")}
    env["REGIONLOCK_DATABASE_URL"] = url
    subprocess.run(
        [*CLI, "campaign", "create", "--name", "B1 stock", "--action", "lock",
         "--where", "batch=B1", "--where", "activated_in=IR", "--reason", "leaked"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    lifted = Path(__file__).resolve().parents[2] / "examples/policies/gray-market-2021-lifted.toml"
    subprocess.run(
        [*CLI, "policy", "activate", str(lifted), "--reason", "the block is lifted"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    keys = {}
    for role in ("viewer", "admin"):
        done = subprocess.run(
            [*CLI, "apikey", "create", "--role", role, "--name", f"{role} ana"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        keys[role] = done.stdout.split()[-1]
    with served(env) as base:
        yield base, keys


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail("browser tests need Debian's chromium (make test installs it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


def test_log_in_see_the_fleet_and_log_out(
    console: tuple[str, dict[str, str]], browser: object, tmp_path: Path
) -> None:
    base, keys = console
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(base + "/console/")
    assert page.url.endswith("/console/login")  # no session: the login page
    page.fill("#api_key", "rlk_not_a_key")
    page.click("input[type=submit]")
    assert page.get_by_role("alert").inner_text() == "That API key is not valid."
    page.fill("#api_key", keys["viewer"])
    page.click("input[type=submit]")
    page.wait_for_url(base + "/console/")
    assert page.inner_text("h1") == "The fleet at a glance"
    assert (page.inner_text("#total"), page.inner_text("#locked")) == ("2", "1")
    assert "viewer ana (viewer)" in page.inner_text("header")
    assert page.locator("svg.map path").count() >= 3  # land, Iran, borders
    cookie = next(c for c in page.context.cookies() if c["name"] == "rl_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    shots = os.environ.get("REGIONLOCK_SCREENSHOTS")
    if shots:
        page.screenshot(path=str(Path(shots) / "console-overview.png"), full_page=True)
    # Devices: the locked one is found by its IMEI, and its page shows its verdicts.
    page.click("text=Devices")
    page.wait_for_url(base + "/console/devices")
    assert page.locator("tbody tr").count() == 2
    page.select_option("#verdict", "lock")
    page.click("input[type=submit]")
    assert page.locator("tbody tr").count() == 1
    page.fill("#q", "356938030000096")  # imei(9): not registered
    page.click("input[type=submit]")
    assert "No device has the IMEI" in page.get_by_role("alert").inner_text()
    page.fill("#q", IMEI_1)
    page.click("input[type=submit]")
    page.click("tbody tr td a")
    assert page.inner_text("#verdict") == "lock"
    assert "presence.first_activation" in page.inner_text("table")
    if shots:
        page.screenshot(path=str(Path(shots) / "console-device.png"), full_page=True)
    page.click("text=Log out")
    page.wait_for_url(base + "/console/login")
    page.goto(base + "/console/")
    assert page.url.endswith("/console/login")  # the session is gone


def test_a_logout_without_the_forms_token_is_refused(
    console: tuple[str, dict[str, str]],
) -> None:
    base, keys = console
    with httpx.Client(base_url=base, follow_redirects=False) as client:
        r = client.post(
            "/console/login",
            content=f"api_key={keys['admin']}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 303 and "rl_console" in r.cookies
        forged = client.post("/console/logout", content="csrf=guess")
        assert forged.status_code == 403
        assert client.get("/console/").status_code == 200  # still logged in


def login(browser: object, base: str, token: str) -> object:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(base + "/console/login")
    page.fill("#api_key", token)
    page.click("input[type=submit]")
    page.wait_for_url(base + "/console/")
    return page


def test_a_viewer_reads_appeals_and_an_admin_decides_one(
    console: tuple[str, dict[str, str]], browser: object
) -> None:
    base, keys = console
    viewer = login(browser, base, keys["viewer"])
    viewer.click("text=Appeals")  # type: ignore[attr-defined]
    viewer.click("tbody tr td a")  # type: ignore[attr-defined]
    assert viewer.inner_text("#message") == "Mine."  # type: ignore[attr-defined]
    assert viewer.locator("form[action$='/decide']").count() == 0  # type: ignore[attr-defined]
    appeal_url = viewer.url  # type: ignore[attr-defined]
    # The server refuses a viewer's decision even with the form's own token.
    csrf = viewer.locator("input[name=csrf]").first.get_attribute("value")  # type: ignore[attr-defined]
    refused = viewer.request.post(  # type: ignore[attr-defined]
        appeal_url + "/decide",
        form={"csrf": csrf, "decision": "grant", "days": "30", "reason": "no"},
    )
    assert refused.status == 403 and "Only an admin" in refused.text()
    admin = login(browser, base, keys["admin"])
    admin.goto(appeal_url)  # type: ignore[attr-defined]
    admin.fill("#reason", "receipt from Dubai")  # type: ignore[attr-defined]
    admin.click("input[value=Decide]")  # type: ignore[attr-defined]
    admin.wait_for_url(appeal_url + "?done=decided")  # type: ignore[attr-defined]
    assert admin.inner_text("#status") == "granted"  # type: ignore[attr-defined]
    assert admin.inner_text("#notice") == "Decided."  # type: ignore[attr-defined]
    assert "by apikey:" in admin.inner_text("dl") and "(admin ana)" in admin.inner_text("dl")  # type: ignore[attr-defined]


def test_investigations_rank_and_the_report_downloads(
    console: tuple[str, dict[str, str]], browser: object, tmp_path: Path
) -> None:
    base, keys = console
    page = login(browser, base, keys["viewer"])
    page.click("text=Investigations")  # type: ignore[attr-defined]
    first_row = page.locator("tbody tr").first.inner_text()  # type: ignore[attr-defined]
    assert first_row.split("\t")[:4] == ["B1", "2", "1", "1"]  # batch, devices, seen, restricted
    page.select_option("#by", "distributor")  # type: ignore[attr-defined]
    page.click("input[value=Rank]")  # type: ignore[attr-defined]
    assert page.locator("tbody tr").first.inner_text().startswith("D7")  # type: ignore[attr-defined]
    with page.expect_download() as download:  # type: ignore[attr-defined]
        page.click("text=Download the report (HTML)")  # type: ignore[attr-defined]
    saved = tmp_path / "report.html"
    download.value.save_as(saved)
    text = saved.read_text()
    assert text.startswith("<!DOCTYPE html>") and "Gray-market investigation" in text


def test_campaigns_show_their_progress(
    console: tuple[str, dict[str, str]], browser: object
) -> None:
    base, keys = console
    page = login(browser, base, keys["viewer"])
    page.click("text=Campaigns")  # type: ignore[attr-defined]
    row = page.locator("tbody tr").first.inner_text()  # type: ignore[attr-defined]
    assert "B1 stock" in row and "draft" in row
    page.click("tbody tr td a")  # type: ignore[attr-defined]
    assert page.inner_text("#state") == "draft"  # type: ignore[attr-defined]
    assert "batch=B1" in page.inner_text("dl")  # type: ignore[attr-defined]
    page.goto(base + "/console/campaigns/cmp_nothere")  # type: ignore[attr-defined]
    assert page.get_by_role("alert").inner_text() == "No campaign 'cmp_nothere'."  # type: ignore[attr-defined]


def test_policies_show_the_active_one_what_changed_and_the_history(
    console: tuple[str, dict[str, str]], browser: object
) -> None:
    base, keys = console
    page = login(browser, base, keys["viewer"])
    page.click("text=Policies")  # type: ignore[attr-defined]
    assert page.inner_text("#active") == "gray-market-2021@2021-11-01-lifted"  # type: ignore[attr-defined]
    assert page.locator("#diff li").count() >= 1  # type: ignore[attr-defined]
    history = page.locator("tbody tr")  # type: ignore[attr-defined]
    assert history.count() == 2 and "the block is lifted" in history.first.inner_text()
