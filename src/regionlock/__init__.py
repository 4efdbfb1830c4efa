"""regionlock: offline device location, dated sanctions policy and signed verdicts."""

__version__ = "0.1.0"
