"""Log lines as text or JSON (regionlock/logs.py)."""

from __future__ import annotations

import io
import json
import logging

from regionlock import logs
from regionlock.settings import Settings


def test_json_lines_carry_time_level_logger_message_extras_and_the_error() -> None:
    out = io.StringIO()
    logs.configure(Settings(log_format="json", log_level="INFO"), out)
    log = logging.getLogger("regionlock.test")
    log.debug("below the level")
    log.info("snapshot of %s", "2026-12-05", extra={"checkins": 3})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("it failed")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["level"] == "info" and first["logger"] == "regionlock.test"
    assert first["message"] == "snapshot of 2026-12-05" and first["checkins"] == 3
    assert first["time"].endswith("+00:00") and isinstance(first["pid"], int)
    assert second["level"] == "error" and "ValueError: bad" in second["error"]


def test_text_lines_and_a_second_setup_replaces_the_first() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure(Settings(log_format="json"), first)
    logs.configure(Settings(log_format="text", log_level="WARNING"), second)
    log = logging.getLogger("regionlock.test")
    log.info("quiet")
    log.warning("heard")
    assert first.getvalue() == ""
    assert second.getvalue().rstrip().endswith("WARNING regionlock.test: heard")
    assert len(second.getvalue().splitlines()) == 1


def test_bad_log_settings_are_refused() -> None:
    import pytest

    from regionlock.domain.errors import InvalidInput

    with pytest.raises(InvalidInput, match="LOG_FORMAT"):
        Settings.from_env({"REGIONLOCK_LOG_FORMAT": "xml"})
    with pytest.raises(InvalidInput, match="LOG_LEVEL"):
        Settings.from_env({"REGIONLOCK_LOG_LEVEL": "loud"})
