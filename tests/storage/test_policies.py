"""Policy store and activation conformance, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from regionlock.policies import PolicyError
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.storage import Database, Stores
from regionlock.storage.policies import PolicyConflict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def text(name: str) -> str:
    return (EXAMPLES / f"{name}.toml").read_text()


def test_activate_and_roll_back(db: Database) -> None:
    admin = PolicyAdmin.of(Stores.on(db))
    assert admin.active() is None
    admin.activate(
        text("gray-market-2021"), source="a.toml", actor="cli:ops", reason="block", now=NOW
    )
    active = admin.active()
    assert active is not None
    policy, activation = active
    assert policy.version == "2021-09-15"
    assert (activation.activated_by, activation.reason) == ("cli:ops", "block")
    admin.activate(
        text("gray-market-2021-lifted"),
        source="b.toml",
        actor="cli:ops",
        reason="investigation concluded",
        now=NOW,
    )
    assert admin.active()[0].version == "2021-11-01-lifted"  # type: ignore[index]
    admin.rollback(actor="cli:ops", reason="lifted too early", now=NOW)
    assert admin.active()[0].version == "2021-09-15"  # type: ignore[index]
    actions = [(e.action, e.subject) for e in admin.audit.entries()]
    assert actions == [
        ("policy.upload", "gray-market-2021@2021-09-15"),
        ("policy.activate", "gray-market-2021@2021-09-15"),
        ("policy.upload", "gray-market-2021@2021-11-01-lifted"),
        ("policy.activate", "gray-market-2021@2021-11-01-lifted"),
        ("policy.rollback", "gray-market-2021@2021-09-15"),
    ]
    assert admin.audit.verify().ok


def test_reactivating_the_same_version_uploads_nothing_new(db: Database) -> None:
    admin = PolicyAdmin.of(Stores.on(db))
    for _ in range(2):
        admin.activate(text("us-ofac"), source="x", actor="a", reason="r", now=NOW)
    assert len(admin.policies.versions()) == 1
    assert len(admin.policies.activations()) == 2


def test_a_bad_policy_is_never_stored_or_activated(db: Database) -> None:
    admin = PolicyAdmin.of(Stores.on(db))
    with pytest.raises(PolicyError):
        admin.activate(
            '[policy]\nid = "x"\nversion = "1"\n[[restriction]]\nid = "r"\n'
            'action = "lokc"\njurisdictions = ["IR"]\n',
            source="bad.toml",
            actor="a",
            reason="r",
            now=NOW,
        )
    assert admin.policies.versions() == []
    assert admin.active() is None
    assert admin.audit.entries() == []


def test_versions_are_immutable(db: Database) -> None:
    admin = PolicyAdmin.of(Stores.on(db))
    admin.activate(text("us-ofac"), source="x", actor="a", reason="r", now=NOW)
    changed = text("us-ofac").replace("valid_days = 7", "valid_days = 8")
    with pytest.raises(PolicyConflict, match="versions are immutable"):
        admin.activate(changed, source="x", actor="a", reason="r", now=NOW)


def test_rollback_needs_an_earlier_policy(db: Database) -> None:
    admin = PolicyAdmin.of(Stores.on(db))
    with pytest.raises(PolicyConflict, match="no earlier policy"):
        admin.rollback(actor="a", reason="r", now=NOW)
    admin.activate(text("eu"), source="x", actor="a", reason="r", now=NOW)
    with pytest.raises(PolicyConflict):
        admin.rollback(actor="a", reason="r", now=NOW)
