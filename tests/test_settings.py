"""Settings: typed, validated, and documented completely."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from regionlock.domain.errors import InvalidInput
from regionlock.settings import PREFIX, Settings

DOC = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()


def test_defaults_need_nothing() -> None:
    s = Settings.from_env({})
    assert s.database_url == "sqlite:///regionlock.db"
    assert (s.host, s.port, s.environment) == ("127.0.0.1", 8000, "development")


def test_every_setting_is_documented_with_its_default() -> None:
    for f in fields(Settings):
        name = PREFIX + f.name.upper()
        assert f"| `{name}` |" in DOC, name
        default = f.default
        shown = (
            "(empty)"
            if default == ()
            else str(default).lower()
            if isinstance(default, bool)
            else str(default)
        )
        assert f"| `{name}` | `{shown}` |" in DOC or f"| `{name}` | {shown} |" in DOC, name


def test_values_are_typed() -> None:
    s = Settings.from_env(
        {
            "REGIONLOCK_PORT": "9000",
            "REGIONLOCK_SIMULATED_CLOCK": "true",
            "REGIONLOCK_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
        }
    )
    assert s.port == 9000 and s.simulated_clock is True
    assert (
        Settings.from_env({"REGIONLOCK_CAMPAIGN_APPROVAL_SHARE": "0.25"}).campaign_approval_share
        == 0.25
    )
    assert s.trusted_proxies == ("10.0.0.0/8", "192.168.1.1")


def test_check_in_threads_follow_the_store_unless_set() -> None:
    # In relay, a second thread judges while the database stores: it pays on PostgreSQL,
    # whose round trips leave the worker idle, not on SQLite (bench/README.md).
    assert Settings.from_env({}).checkin_thread_count == 1
    postgres = {"REGIONLOCK_DATABASE_URL": "postgresql://u@h/db"}
    assert Settings.from_env(postgres).checkin_thread_count == 2
    assert (
        Settings.from_env({**postgres, "REGIONLOCK_CHECKIN_THREADS": "1"}).checkin_thread_count == 1
    )
    assert Settings.from_env({"REGIONLOCK_CHECKIN_THREADS": "3"}).checkin_thread_count == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REGIONLOCK_PORT": "80a"}, "REGIONLOCK_PORT='80a': expected an integer"),
        ({"REGIONLOCK_ENVIRONMENT": "prod"}, "expected development or production"),
        ({"REGIONLOCK_DATABASE_URL": "mysql://x"}, "expected sqlite:///FILE or postgresql://"),
        ({"REGIONLOCK_TRUSTED_PROXIES": "10.0.0.0/33"}, "is not a CIDR"),
        ({"REGIONLOCK_CAMPAIGN_APPROVAL_SHARE": "ten"}, "SHARE='ten': expected a number"),
        ({"REGIONLOCK_CAMPAIGN_APPROVAL_SHARE": "1.5"}, "SHARE: expected 0 to 1"),
        ({"REGIONLOCK_CAMPAIGN_APPROVAL_SHARE": "nan"}, "SHARE: expected 0 to 1"),
        ({"REGIONLOCK_CAMPAIGN_POLL_S": "0"}, "POLL_S: expected 0.05 to 3600"),
        ({"REGIONLOCK_CAMPAIGN_APPROVAL_DEVICES": "-1"}, "DEVICES: expected 0 to"),
        ({"REGIONLOCK_CHECKIN_PARTITIONS": "week"}, "PARTITIONS='week': expected month or day"),
        ({"REGIONLOCK_CHECKIN_THREADS": "-1"}, "THREADS=-1: expected 0"),
        (
            {"REGIONLOCK_ENVIRONMENT": "production", "REGIONLOCK_SIMULATED_CLOCK": "1"},
            "cannot be enabled in production",
        ),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("?", r"\?")):
        Settings.from_env(env)
