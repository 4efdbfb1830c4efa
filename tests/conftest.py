"""Shared fixtures: the reference data is loaded once per test session."""

from __future__ import annotations

import pytest

from regionlock.geo import Locator, default_locator


@pytest.fixture(scope="session")
def locator() -> Locator:
    return default_locator()


@pytest.fixture(autouse=True)
def pinned_audit_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test thread appends to audit shard 5 on PostgreSQL. A thread's shard is taken in
    turn from a random start (storage/audit.py, `_own_shard`), and `verify` names a hole in
    shard 0 (the chain from before shards) by the missing entry, elsewhere by the one after
    it: tests that name the hole passed or failed with the draw (seen in CI on
    test_audit.py and test_audit_redaction.py). test_audit.py pins shard 0 too, on purpose."""
    from regionlock.storage import audit

    monkeypatch.setattr(audit._threads, "shard", 5, raising=False)
