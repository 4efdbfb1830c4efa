"""Messages in the owner's language, end to end: a check-in's locale picks the signed text."""

from __future__ import annotations

import time
from typing import Any

import jwt
from fastapi.testclient import TestClient
from test_api import EXAMPLES, TEHRAN, imei, post_checkin, setup

from regionlock.api.app import create_app
from regionlock.geo import Locator
from regionlock.policies import example_policy
from regionlock.services.checkin import MANUAL_LOCK_NOTICE
from regionlock.settings import Settings

TEXTS = dict(example_policy("gray-market-2021").message.texts)


def signed_claims(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    """The verdict as a device reads it: the token, verified against the JWKS."""
    jwks = client.get("/.well-known/jwks.json").json()
    key = jwt.PyJWKSet.from_dict(jwks).keys[0].key
    claims: dict[str, Any] = jwt.decode(body["token"], key, algorithms=["EdDSA"])
    return claims


def activated(client: TestClient) -> tuple[Any, dict[str, str]]:
    key, tokens = setup(client)
    r = client.post(
        "/v1/policies/activate",
        json={"policy": (EXAMPLES / "gray-market-2021.toml").read_text(), "reason": "2021"},
        headers={"authorization": f"Bearer {tokens['admin']}"},
    )
    assert r.status_code == 200, r.text
    return key, tokens


def test_a_device_in_tehran_is_told_in_its_owners_language(client: TestClient) -> None:
    key, _ = activated(client)
    cases = [
        ("fa-IR", "fa"),  # Persian
        ("en-US", "en"),  # English, in Tehran too: the owner's language, not the place's
        ("de_DE.UTF-8", "en"),  # no German text: the default
        (None, "fa"),  # no locale: the language of the place
    ]
    for counter, (locale, language) in enumerate(cases, start=1):
        signals = {**TEHRAN, **({"locale": locale} if locale else {})}
        r = post_checkin(client, key, imei(1), counter, signals)
        assert r.status_code == 200, r.text
        claims = signed_claims(client, r.json())
        assert claims["verdict"] == "lock", locale
        assert (claims["lang"], claims["message"]) == (language, TEXTS[language]), locale
        assert r.json()["message"] == claims["message"]


def test_a_manual_lock_without_words_gives_the_notice_in_the_owners_language(
    client: TestClient,
) -> None:
    key, tokens = setup(client)
    berlin = {"network": ["262-01"], "gps": {"lat": 52.52, "lon": 13.405}}
    r = client.post(
        f"/v1/devices/{imei(1)}/lock",
        json={"reason": "reported stolen"},
        headers={"authorization": f"Bearer {tokens['operator']}"},
    )
    assert r.status_code == 200, r.text
    notice = dict(MANUAL_LOCK_NOTICE.texts)
    got = signed_claims(client, post_checkin(client, key, imei(1), 1, berlin).json())
    assert (got["lang"], got["message"]) == ("en", notice["en"])
    got = signed_claims(client, post_checkin(client, key, imei(1), 2, TEHRAN).json())
    assert (got["lang"], got["message"]) == ("fa", notice["fa"])
    r = client.post(
        f"/v1/devices/{imei(1)}/lock",
        json={"reason": "reported stolen", "message": "Bring it to the shop."},
        headers={"authorization": f"Bearer {tokens['operator']}"},
    )
    assert r.status_code == 200, r.text
    got = signed_claims(
        client, post_checkin(client, key, imei(1), 3, {**TEHRAN, "locale": "fa_IR"}).json()
    )
    # An operator's own words are shown as written; their language is not known.
    assert (got["lang"], got["message"]) == ("", "Bring it to the shop.")


def test_a_campaigns_message_in_several_languages(db_url: str, locator: Locator) -> None:
    # The four-eyes rule out of the way, the runner quick (as in test_campaigns_api).
    settings = Settings(
        database_url=db_url,
        campaign_approval_devices=10_000,
        campaign_approval_share=1.0,
        campaign_poll_s=0.2,
    )
    with TestClient(create_app(settings, locator=locator)) as api:
        key, tokens = setup(api)
        h = {"authorization": f"Bearer {tokens['operator']}"}
        lock = {
            "name": "leak",
            "action": "lock",
            "reason": "batch B1 leaked",
            "where": ["batch=B1"],
        }
        bad = api.post("/v1/campaigns", json={**lock, "message": {"en": "x", "FA": "y"}}, headers=h)
        assert bad.status_code == 422 and "message.FA" in bad.json()["detail"], bad.text
        words = {"fa": "با فروشگاه تماس بگیرید.", "en": "Call your shop."}
        r = api.post("/v1/campaigns", json={**lock, "message": words}, headers=h)
        assert r.status_code == 201, r.text
        assert r.json()["message"] == {"en": "Call your shop.", "fa": "با فروشگاه تماس بگیرید."}
        cid = r.json()["id"]
        assert api.post(f"/v1/campaigns/{cid}/start", headers=h).status_code == 200
        deadline = time.monotonic() + 30
        while api.get(f"/v1/campaigns/{cid}", headers=h).json()["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for counter, (locale, language) in enumerate(
            [("fa_IR", "fa"), ("en-GB", "en"), ("ko-KP", "en"), (None, "fa")], start=1
        ):
            signals = {**TEHRAN, **({"locale": locale} if locale else {})}
            got = signed_claims(api, post_checkin(api, key, imei(1), counter, signals).json())
            assert got["reasons"][0] == "campaign.lock"
            assert (got["lang"], got["message"]) == (language, words[language]), locale
