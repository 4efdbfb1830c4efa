"""Shared fixtures: the reference data is loaded once per test session."""

from __future__ import annotations

import pytest

from regionlock.geo import Locator, default_locator


@pytest.fixture(scope="session")
def locator() -> Locator:
    return default_locator()
