"""A served node's log lines as JSON (REGIONLOCK_LOG_FORMAT=json): what a log collector reads."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_kill9 import PLACES, imei, killable_server, register

from regionlock.geo import Locator
from regionlock.services.checkin import CheckinService
from regionlock.settings import Settings
from regionlock.signing import CheckinRequest, SigningKey, sign_checkin
from regionlock.storage import Database, Stores
from regionlock.storage.migrate import migrate


def test_a_served_node_logs_json_lines(tmp_path: Path, locator: Locator) -> None:
    url = f"sqlite:///{tmp_path / 'rl.db'}"
    db = Database(url)
    migrate(db)
    db.close()
    key = SigningKey.generate(datetime.now(UTC))
    register(url, [key])
    db = Database(url)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    request = CheckinRequest("n-yesterday-0001", 1, int(yesterday.timestamp()), PLACES[1])
    CheckinService.of(Stores.on(db), locator, Settings()).check_in(
        sign_checkin(request, key, imei(0)), peer_ip=None, now=yesterday
    )  # a past day with a check-in: the node snapshots it when it starts, and says so
    db.close()
    env = {**os.environ, "REGIONLOCK_DATABASE_URL": url, "REGIONLOCK_LOG_FORMAT": "json"}
    log = tmp_path / "server.log"
    with killable_server(env, log):
        deadline = time.monotonic() + 30
        while "snapshot of" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    said = [line for line in lines if line["message"].startswith("overview: snapshot of")]
    assert said and said[0]["level"] == "info", lines
    assert said[0]["logger"] == "regionlock.services.overview"
    assert lines[0]["logger"] == "regionlock.serve"  # the banner too: every line is JSON
