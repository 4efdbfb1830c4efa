"""Golden verdicts: a table of real-world scenarios, located on the shipped data and decided
under the example policies. The expected action is stated here; the full verdict (reasons,
rule, explanation) is pinned in golden/verdicts.json. After an intended change, regenerate
with REGIONLOCK_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from regionlock.domain.decision import decide
from regionlock.domain.policy import DeviceFacts, Exemption
from regionlock.domain.signals import parse_signals
from regionlock.geo import Locator
from regionlock.policies import load_policy
from regionlock.services.policy_tools import history_for, verdict_json

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
GOLDEN = Path(__file__).parent / "golden" / "verdicts.json"
TODAY = "2026-11-27"

TEHRAN = {
    "ip": "2.144.0.1",
    "sim": ["432-11"],
    "network": ["432-11"],
    "gps": {"lat": 35.6892, "lon": 51.389, "accuracy_m": 15},
    "timezone": "Asia/Tehran",
}
DAMASCUS = {
    "sim": ["417-01"],
    "network": ["417-01"],
    "gps": {"lat": 33.5138, "lon": 36.2765},
    "timezone": "Asia/Damascus",
}
KHARTOUM = {"sim": ["634-01"], "network": ["634-01"], "gps": {"lat": 15.5007, "lon": 32.5599}}
SIMFEROPOL = {
    "network": ["250-60"],
    "gps": {"lat": 44.9521, "lon": 34.1024},
    "timezone": "Europe/Simferopol",
}
KYIV = {"network": ["255-01"], "sim": ["255-01"], "gps": {"lat": 50.4501, "lon": 30.5234}}
DONETSK_GOV = {"network": ["255-01"], "gps": {"lat": 48.7389, "lon": 37.5844}}  # Kramatorsk
FRENCH_TOURIST = {
    "ip": "90.0.0.1",
    "sim": ["208-01"],
    "network": ["432-11"],
    "gps": {"lat": 29.61, "lon": 52.5311},
    "locale": "fr_FR",
}
VPN_BERLIN = {
    "ip": "2.144.0.1",
    "sim": ["262-01"],
    "network": ["262-01"],
    "gps": {"lat": 52.52, "lon": 13.405},
    "timezone": "Europe/Berlin",
}
HAVANA_WIFI = {"ip": "152.206.0.1"}  # IP only: a weak signal

# name: (policy, signals, days present before today, as of, extra device facts, expected)
SCENARIOS: dict[str, tuple[str, dict[str, Any], int, str, dict[str, Any], str]] = {
    "tehran-company-2021": ("gray-market-2021", TEHRAN, 5, TODAY, {}, "lock"),
    "tehran-ofac": ("us-ofac", TEHRAN, 5, TODAY, {}, "lock"),
    "tehran-first-activation": (
        "gray-market-2021",
        TEHRAN,
        0,
        TODAY,
        {"first_country": "IR"},
        "lock",
    ),
    "damascus-ofac-2021-09-15": ("us-ofac", DAMASCUS, 5, "2021-09-15", {}, "lock"),
    "damascus-ofac-2026-01-01": ("us-ofac", DAMASCUS, 5, "2026-01-01", {}, "allow"),
    "khartoum-ofac-today": ("us-ofac", KHARTOUM, 5, TODAY, {}, "allow"),
    "khartoum-ofac-2010": ("us-ofac", KHARTOUM, 5, "2010-06-01", {}, "lock"),
    "khartoum-company-2021": ("gray-market-2021", KHARTOUM, 5, TODAY, {}, "lock"),
    "khartoum-company-lifted": ("gray-market-2021-lifted", KHARTOUM, 5, TODAY, {}, "allow"),
    "simferopol-company-2021": ("gray-market-2021", SIMFEROPOL, 5, TODAY, {}, "lock"),
    "simferopol-eu": ("eu", SIMFEROPOL, 5, TODAY, {}, "lock"),
    "simferopol-eu-2013": ("eu", SIMFEROPOL, 5, "2013-06-01", {}, "allow"),
    "kyiv-company-2021": ("gray-market-2021", KYIV, 30, TODAY, {}, "allow"),
    "kramatorsk-eu-partial": ("eu", DONETSK_GOV, 30, TODAY, {}, "warn"),
    "french-tourist-iran-2-days": ("gray-market-2021", FRENCH_TOURIST, 1, TODAY, {}, "warn"),
    "french-tourist-iran-5-days": ("gray-market-2021", FRENCH_TOURIST, 4, TODAY, {}, "lock"),
    "vpn-exit-iran-phone-in-germany": ("gray-market-2021", VPN_BERLIN, 30, TODAY, {}, "allow"),
    "havana-ip-only": ("gray-market-2021", HAVANA_WIFI, 30, TODAY, {}, "warn"),
    "tehran-exempted-device": ("gray-market-2021", TEHRAN, 5, TODAY, {"exempt": True}, "allow"),
}


def run(name: str, locator: Locator) -> dict[str, Any]:
    policy_name, raw, days, as_of, extra, _ = SCENARIOS[name]
    policy = load_policy(EXAMPLES / f"{policy_name}.toml")
    if extra.pop("exempt", False) if (extra := dict(extra)) else False:
        policy = replace(
            policy,
            exemptions=(
                Exemption(
                    "appeal #4711: owner resident in Germany",
                    device="dev-1",
                    until=date(2027, 6, 1),
                ),
            ),
        )
    when = datetime.fromisoformat(as_of).replace(hour=12, tzinfo=UTC)
    signals = parse_signals(raw)
    where = locator.locate(signals)
    device = DeviceFacts("dev-1", **extra)
    history = history_for(where, days, when.date())
    # The device's locale picks the message's language, as at a check-in.
    verdict = decide(device, where, history, policy, when, locale=signals.locale)
    out = verdict_json(verdict)
    out["location"] = {
        "country": where.country,
        "subdivision": where.subdivision,
        "flags": list(where.flags),
    }
    return out


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name: str, locator: Locator, golden: dict[str, Any]) -> None:
    got = run(name, locator)
    assert got["verdict"] == SCENARIOS[name][-1], got["explanation"]
    if os.environ.get("REGIONLOCK_UPDATE_GOLDEN"):
        golden[name] = got
        GOLDEN.write_text(
            json.dumps(dict(sorted(golden.items())), indent=2, ensure_ascii=False) + "\n"
        )
    assert got == golden[name]
