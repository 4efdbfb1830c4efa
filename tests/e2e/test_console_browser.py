"""The console in a real browser (Debian's Chromium, driven by Playwright): log in with an API
key, see the fleet at a glance, log out; a wrong key and a forged logout are refused."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright import sync_api
from serving import CLI, served

CHROMIUM = Path("/usr/bin/chromium")
IMEI_1 = "356938030000013"  # storage_fixtures.imei(1)


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, str], object, str]]:
    """A served store with two devices, one locked at a check-in from Tehran; base URL, keys
    by role, the fleet (its devices' signing keys) and the store's URL."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
    from storage_fixtures import Fleet, imei
    from storage_fixtures import checkin as signed_checkin

    from regionlock.geo import Locator
    from regionlock.services.appeals import Appeals
    from regionlock.services.checkin import CheckinService
    from regionlock.services.overview import Overview
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
    # Today as the service will have snapshotted it once the day is over (the time slider).
    Overview.of(Stores.on(db)).snapshot_missing(now + timedelta(days=1))
    db.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIONLOCK_")}
    env["REGIONLOCK_DATABASE_URL"] = url
    env["REGIONLOCK_CAMPAIGN_APPROVAL_SHARE"] = "1"  # one operator starts a campaign alone
    env["REGIONLOCK_CAMPAIGN_POLL_S"] = "0.2"
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
    for role in ("viewer", "operator", "admin"):
        done = subprocess.run(
            [*CLI, "apikey", "create", "--role", role, "--name", f"{role} ana"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        keys[role] = done.stdout.split()[-1]
    with served(env) as base:
        yield base, keys, fleet, url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail("browser tests need Debian's chromium (make test installs it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


def test_log_in_see_the_fleet_and_log_out(
    console: tuple[str, dict[str, str], object], browser: object, tmp_path: Path
) -> None:
    base, keys = console[:2]
    page = watched(browser, base)
    page.goto(base + "/console/")  # type: ignore[attr-defined]
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
    # Times read in UTC with the reader's local time beside them (console.js).
    assert page.locator("time .local").count() >= 1  # type: ignore[attr-defined]
    # The time slider: one step back is the end of today's snapshot.
    page.focus("#day")  # type: ignore[attr-defined]
    page.keyboard.press("ArrowLeft")  # type: ignore[attr-defined]
    page.wait_for_url("**/console/?day=*")  # type: ignore[attr-defined]
    assert "from that day's snapshot" in page.inner_text("#as-of")  # type: ignore[attr-defined]
    assert page.inner_text("#locked") == "1"  # type: ignore[attr-defined]
    page.click("text=Back to now")  # type: ignore[attr-defined]
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
    console: tuple[str, dict[str, str], object],
) -> None:
    base, keys = console[:2]
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


# What every page of every test saw go wrong: a JavaScript error, an error in the console, or
# a request to anywhere but the service itself (the console must work with no internet).
PROBLEMS: list[str] = []


@pytest.fixture(autouse=True)
def nothing_goes_wrong_in_the_browser() -> Iterator[None]:
    PROBLEMS.clear()
    yield
    assert PROBLEMS == []


def _console_message(kind: str, text: str) -> None:
    # A page answered 401, 403 or 404 on purpose is logged as "Failed to load resource";
    # sub-resources (scripts, polls) that fail are caught by their responses instead.
    if kind == "error" and not text.startswith("Failed to load resource"):
        PROBLEMS.append(f"console {kind}: {text}")


def watched(browser: object, base: str) -> object:
    """A new page whose errors and outside requests land in PROBLEMS."""
    page = browser.new_page()  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: PROBLEMS.append(f"JavaScript error: {e}"))
    page.on("console", lambda m: _console_message(m.type, m.text))
    page.on(
        "response",
        lambda r: (
            PROBLEMS.append(f"{r.status}: {r.url}")
            if r.status >= 400 and r.request.resource_type != "document"
            else None
        ),
    )
    page.on(
        "request",
        lambda r: None if r.url.startswith(base + "/") else PROBLEMS.append(f"left: {r.url}"),
    )
    return page


def login(browser: object, base: str, token: str) -> object:
    page = watched(browser, base)
    page.goto(base + "/console/login")  # type: ignore[attr-defined]
    page.fill("#api_key", token)
    page.click("input[type=submit]")
    page.wait_for_url(base + "/console/")
    return page


def test_a_viewer_reads_appeals_and_an_admin_decides_one(
    console: tuple[str, dict[str, str], object], browser: object
) -> None:
    base, keys = console[:2]
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
    console: tuple[str, dict[str, str], object], browser: object, tmp_path: Path
) -> None:
    base, keys = console[:2]
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
    console: tuple[str, dict[str, str], object], browser: object
) -> None:
    base, keys = console[:2]
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
    console: tuple[str, dict[str, str], object], browser: object
) -> None:
    base, keys = console[:2]
    page = login(browser, base, keys["viewer"])
    page.click("text=Policies")  # type: ignore[attr-defined]
    assert page.inner_text("#active") == "gray-market-2021@2021-11-01-lifted"  # type: ignore[attr-defined]
    assert page.locator("#diff li").count() >= 1  # type: ignore[attr-defined]
    history = page.locator("tbody tr")  # type: ignore[attr-defined]
    assert history.count() == 2 and "the block is lifted" in history.first.inner_text()


def test_find_a_device_lock_it_and_its_next_checkin_is_locked(
    console: tuple[str, dict[str, str], object], browser: object
) -> None:
    from storage_fixtures import checkin as signed_checkin
    from storage_fixtures import imei

    base, keys, fleet = console[:3]
    page = login(browser, base, keys["operator"])
    page.click("text=Devices")  # type: ignore[attr-defined]
    page.fill("#q", "SN2")  # type: ignore[attr-defined]  # by its serial
    page.click("input[value=Search]")  # type: ignore[attr-defined]
    page.click("tbody tr td a")  # type: ignore[attr-defined]
    assert page.inner_text("h1").startswith("Device dev_")  # type: ignore[attr-defined]
    page.fill("#lock-reason", "reported stolen")  # type: ignore[attr-defined]
    page.fill("#lock-message", "Stolen: call the shop.")  # type: ignore[attr-defined]
    page.click("button:text-is('Lock')")  # type: ignore[attr-defined]
    page.wait_for_url("**?done=locked")  # type: ignore[attr-defined]
    assert "locks at its next check-in" in page.inner_text("#notice")  # type: ignore[attr-defined]
    assert "reported stolen" in page.inner_text("#manual-lock")  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    dubai = {"gps": {"lat": 25.2, "lon": 55.27, "accuracy_m": 20}, "network": ["424-02"]}
    token = signed_checkin(fleet.keys[1], imei(2), 1, now, dubai)  # type: ignore[attr-defined]
    answer = httpx.post(
        base + "/v1/checkin", content=token, headers={"content-type": "application/jose"}
    ).json()
    assert answer["verdict"] == "lock" and answer["message"] == "Stolen: call the shop."
    page.reload()  # type: ignore[attr-defined]
    assert page.inner_text("#verdict") == "lock"  # type: ignore[attr-defined]
    shots = os.environ.get("REGIONLOCK_SCREENSHOTS")
    if shots:
        page.screenshot(path=str(Path(shots) / "console-device-locked.png"), full_page=True)  # type: ignore[attr-defined]


def test_a_campaigns_dry_run_then_its_start(
    console: tuple[str, dict[str, str], object], browser: object
) -> None:
    base, keys = console[:2]
    page = login(browser, base, keys["operator"])
    page.click("text=Campaigns")  # type: ignore[attr-defined]
    page.click("text=New campaign")  # type: ignore[attr-defined]
    page.fill("#name", "Tehran stock")  # type: ignore[attr-defined]
    page.select_option("#action", "lock")  # type: ignore[attr-defined]
    page.fill("#where", "country=IR")  # type: ignore[attr-defined]
    page.fill("#stages", "50, 100")  # type: ignore[attr-defined]
    page.fill("#reason", "seen in Tehran")  # type: ignore[attr-defined]
    page.click("button:text-is('Preview')")  # type: ignore[attr-defined]
    assert page.inner_text("#preview h2") == "Dry run: 1 devices"  # type: ignore[attr-defined]
    assert page.input_value("#name") == "Tehran stock"  # type: ignore[attr-defined]
    shots = os.environ.get("REGIONLOCK_SCREENSHOTS")
    if shots:
        page.screenshot(path=str(Path(shots) / "console-campaign-dry-run.png"), full_page=True)  # type: ignore[attr-defined]
    page.click("button:text-is('Create the draft')")  # type: ignore[attr-defined]
    page.wait_for_url("**?done=created")  # type: ignore[attr-defined]
    assert page.inner_text("#state") == "draft"  # type: ignore[attr-defined]
    page.click("button:text-is('Start')")  # type: ignore[attr-defined]
    page.wait_for_url("**?done=started")  # type: ignore[attr-defined]
    # The page follows the background runner by itself (console.js polls the progress).
    # Stage 1 (half of one device, rounded up) done, it waits for an operator to go on.
    state = page.locator("#state")  # type: ignore[attr-defined]
    sync_api.expect(state).to_have_text("waiting", timeout=20_000)
    page.click("button:text-is('Advance')")  # type: ignore[attr-defined]
    page.wait_for_url("**?done=advanced")  # type: ignore[attr-defined]
    sync_api.expect(page.locator("#state")).to_have_text("done", timeout=20_000)  # type: ignore[attr-defined]
    assert page.inner_text("#applied") == "1"  # type: ignore[attr-defined]


def test_a_campaign_page_loaded_while_its_stage_runs_offers_advance_once_it_waits(
    console: tuple[str, dict[str, str], object, str], browser: object
) -> None:
    """A page loaded while the campaign's stage runs shows "waiting" and the Advance button by
    itself once the stage is done elsewhere (console.js reloads a page whose campaign stopped
    in another state). The order is forced: the test holds the campaign's lease, as a runner
    on another node would, so the service's own runner cannot take the stage before the page
    is up; then the test runs the stage under that lease."""
    from regionlock.services.campaigns import Campaigns
    from regionlock.storage import Database, Stores
    from regionlock.storage.db import epoch_ms

    base, keys, _, url = console
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIONLOCK_")}
    env["REGIONLOCK_DATABASE_URL"] = url
    created = subprocess.run(
        [*CLI, "campaign", "create", "--name", "Held stock", "--action", "lock",
         "--where", "country=IR", "--stages", "50,100", "--reason", "held elsewhere", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    campaign_id = json.loads(created.stdout)["id"]
    db = Database(url)
    try:
        campaigns = Campaigns.of(Stores.on(db))
        now = datetime.now(UTC)
        held = campaigns.campaigns.claim(
            campaign_id, "another-node", epoch_ms(now + timedelta(hours=1)), epoch_ms(now)
        )
        assert held
        page = login(browser, base, keys["operator"])
        page.goto(f"{base}/console/campaigns/{campaign_id}")  # type: ignore[attr-defined]
        page.click("button:text-is('Start')")  # type: ignore[attr-defined]
        page.wait_for_url("**?done=started")  # type: ignore[attr-defined]
        assert page.inner_text("#state") == "running"  # type: ignore[attr-defined]
        advance = page.locator("button:text-is('Advance')")  # type: ignore[attr-defined]
        assert advance.count() == 0
        report = campaigns.run(campaign_id, owner="another-node")
        assert report.stopped == "waiting"
        sync_api.expect(page.locator("#state")).to_have_text("waiting", timeout=20_000)  # type: ignore[attr-defined]
        sync_api.expect(advance).to_be_visible(timeout=20_000)
    finally:
        db.close()
