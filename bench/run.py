"""Run every benchmark in bench/ and print their reports (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = ["bench_locate.py", "bench_policy.py", "bench_signing.py", "bench_campaign.py"]


def main() -> int:
    here = Path(__file__).parent
    for name in BENCHES:
        code = subprocess.call([sys.executable, str(here / name), *sys.argv[1:]])
        if code:
            return code
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
