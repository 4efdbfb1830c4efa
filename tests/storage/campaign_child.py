"""Run a campaign in a process of its own (the SIGKILL test): prints a line per chunk."""

from __future__ import annotations

import sys
import time

from regionlock.services.campaigns import Campaigns
from regionlock.storage import Database, Stores


def main() -> None:
    url, schema, campaign_id, owner = sys.argv[1:5]
    db = Database(url, schema=schema or None)
    service = Campaigns.of(Stores.on(db))

    def progress(c: object) -> None:
        print("chunk", flush=True)
        time.sleep(0.01)

    report = service.run(campaign_id, owner=owner, chunk=20, progress=progress)
    print("stopped", report.stopped, flush=True)


if __name__ == "__main__":
    main()
