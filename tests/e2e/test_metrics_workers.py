"""`/metrics` with two worker processes: whichever worker a scrape reaches, it sums what
every worker counted (prometheus-client's multiprocess mode, set up by `regionlock serve`)."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
from serving import served
from test_kill9 import JOSE, checkin, register

from regionlock.signing import SigningKey
from regionlock.storage import Database, Stores
from regionlock.storage.apikeys import Role

CHECKINS = 40


def test_every_scrape_sums_both_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rl.db'}"
    key = SigningKey.generate(datetime.now(UTC))
    db = Database(url)
    from regionlock.storage.migrate import migrate

    migrate(db)
    db.close()
    register(url, [key])
    db = Database(url)
    with db.write() as tx:
        _, token = Stores.on(db).apikeys.create(tx, name="prometheus", role=Role.VIEWER, at=0)
    db.close()
    env = {
        **os.environ,
        "REGIONLOCK_DATABASE_URL": url,
        "REGIONLOCK_WORKERS": "2",
        "REGIONLOCK_DEVICE_RATE_PER_HOUR": "0",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with served(env) as base:
        for counter in range(1, CHECKINS + 1):  # a new connection each: both workers answer
            r = httpx.post(base + "/v1/checkin", content=checkin(key, 0, counter), headers=JOSE)
            assert r.status_code == 200, r.text
        for _ in range(10):
            with httpx.Client(base_url=base) as fresh:
                text = fresh.get("/metrics", headers={"authorization": f"Bearer {token}"}).text
            total = sum(
                float(v)
                for v in re.findall(r"^regionlock_checkins_total\{[^}]*\} (\S+)$", text, re.M)
            )
            assert total == CHECKINS, text[:2000]
