"""The campaign store on both backends: selections in SQL, frozen targets, leases, marks."""

from __future__ import annotations

import json

import pytest
from campaign_fixtures import facts, plain_fleet, register, varied
from storage_fixtures import T0

from regionlock.domain.campaign import (
    Campaign,
    CampaignAction,
    Selection,
    stage_of,
    target_digest,
)
from regionlock.domain.errors import Conflict
from regionlock.storage import Database, Stores
from regionlock.storage.campaigns import SqlCampaignStore, new_campaign_id
from regionlock.storage.migrate import available

SELECTIONS = [
    [],
    ["distributor=D1"],
    ["distributor=D1", "distributor=D2"],
    ["batch=B3", "model=X2"],
    ["sales_region=EU"],
    ["sales_region=GLOBAL", "sales_region=IR"],
    ["country=IR"],
    ["country=IR", "country=SY", "verdict=lock"],
    ["subdivision=IR-23"],
    ["subdivision=AE-DU", "subdivision=SY-DI", "distributor=D1"],
    ["verdict=warn"],
    ["seen_in=CU"],
    ["seen_in=IR", "seen_in=SY"],
    ["seen_in=DE", "activated_in=AE"],
    ["activated_in=IR", "activated_in=SY", "batch=B0", "batch=B1"],
    ["country=DE", "seen_in=CU", "model=X1"],
]


EVERYTHING = Selection()


def draft(selection: Selection = EVERYTHING, stages: tuple[float, ...] = (100.0,)) -> Campaign:
    return Campaign(
        id=new_campaign_id(),
        name="t",
        action=CampaignAction.LOCK,
        reason="r",
        selection=selection,
        created_by="test",
        created_at=T0,
        stages=stages,
    )


@pytest.mark.parametrize("terms", SELECTIONS, ids=lambda t: " ".join(t) or "all")
def test_the_sql_of_a_selection_is_the_domain_s(db: Database, terms: list[str]) -> None:
    fleet = [varied(n) for n in range(1, 121)]
    register(db, fleet)
    selection = Selection.parse(terms)
    expected = sorted(r.id for r, s in fleet if selection.matches(facts(r, s)))
    store = SqlCampaignStore(db)
    with db.read() as tx:
        got = store.select_devices(tx, selection, limit=1000)
        paged = store.select_devices(tx, selection, limit=7)
        paged += store.select_devices(tx, selection, after=paged[-1] if paged else "", limit=500)
        among = store.select_devices(tx, selection, among=[r.id for r, _ in fleet[:40]])
    assert got == expected
    assert paged == expected
    assert among == sorted(set(expected) & {r.id for r, _ in fleet[:40]})
    groups = store.fleet_groups(selection)
    assert sum(g.devices for g in groups) == len(expected)
    if terms:
        assert 0 < len(expected) < len(fleet)  # every selection here shows something


def test_create_freezes_the_targets_with_stages_counts_and_digest(db: Database) -> None:
    ids = plain_fleet(db, 300)
    store = SqlCampaignStore(db)
    c = draft(stages=(10.0, 50.0, 100.0))
    with db.write() as tx:
        created = store.create(tx, c, ((d, stage_of(d, c.id, c.stages)) for d in ids))
    assert created.counts.targets == 300
    assert sum(created.counts.stage_sizes) == 300
    assert created.digest == target_digest(ids)
    back = store.get(c.id)
    assert back == created
    targets = store.targets(c.id, limit=1000)
    assert [t.device_id for t in targets] == ids
    assert all(
        t.status == "pending" and t.stage == stage_of(t.device_id, c.id, c.stages) for t in targets
    )
    assert [len(store.targets(c.id, limit=10))] == [10]
    status = store.stage_status(c.id, 1)
    assert status == {"pending": created.counts.stage_sizes[0]}
    # Devices registered later are not targets: the set is frozen.
    plain_fleet(db, 310)
    assert len(store.targets(c.id, limit=1000)) == 300
    assert store.recent() == [created]
    with pytest.raises(Conflict, match="exists"), db.write() as tx:
        store.create(tx, c, iter([]))


def test_create_inserts_in_chunks_and_refuses_unordered_targets(db: Database) -> None:
    store = SqlCampaignStore(db)
    c = draft()
    many = [(f"dev_{i:07d}", 1) for i in range(12_001)]  # several insert chunks
    with db.write() as tx:
        assert store.create(tx, c, iter(many)).counts.targets == 12_001
    with pytest.raises(ValueError, match="increasing"), db.write() as tx:
        store.create(tx, draft(), iter([("dev_b", 1), ("dev_a", 1)]))
    assert len(store.recent()) == 1  # the refused one rolled back


def test_a_lease_is_held_by_one_runner_and_expires(db: Database) -> None:
    ids = plain_fleet(db, 3)
    store = SqlCampaignStore(db)
    c = draft()
    with db.write() as tx:
        store.create(tx, c, ((d, 1) for d in ids))
    assert store.lease(c.id) == (None, None)
    assert store.claim(c.id, "a", until=1000, now=0)
    assert not store.claim(c.id, "b", until=2000, now=999)
    assert store.claim(c.id, "a", until=1500, now=999)  # one's own: renewed
    assert store.lease(c.id) == ("a", 1500)
    assert store.claim(c.id, "b", until=5000, now=1501)  # expired: taken over
    with db.write() as tx:
        assert not store.renew(tx, c.id, "a", 9000)
        store.release(tx, c.id, "a")  # not a's any more: nothing
    assert store.lease(c.id) == ("b", 5000)
    with db.write() as tx:
        assert store.renew(tx, c.id, "b", 6000)
        store.release(tx, c.id, "b")
    assert store.claim(c.id, "c", until=7000, now=10)
    assert not store.claim("cmp_missing", "a", until=1, now=0)


def test_pending_marks_and_progress(db: Database) -> None:
    ids = plain_fleet(db, 10)
    store = SqlCampaignStore(db)
    c = draft(stages=(50.0, 100.0))
    with db.write() as tx:
        store.create(tx, c, ((d, 1 if i < 6 else 2) for i, d in enumerate(ids)))
    with db.write() as tx:
        first = store.pending_chunk(tx, c.id, 1, 4)
        assert first == ids[:4]
        store.mark(
            tx, c.id, 1, [(d, "applied", None) for d in first[:3]] + [(first[3], "error", "x")], 7
        )
        store.save_progress(tx, c.id, applied=3, skipped=0, errors=1)
        assert store.pending_chunk(tx, c.id, 1, 10) == ids[4:6]
        assert store.pending_chunk(tx, c.id, 2, 10) == ids[6:]
    with pytest.raises(Conflict, match="not pending"), db.write() as tx:
        store.mark(tx, c.id, 1, [(ids[4], "applied", None), (ids[0], "applied", None)], 8)
    with db.read() as tx:  # the refused mark rolled back
        assert store.pending_chunk(tx, c.id, 1, 10) == ids[4:6]
    got = store.get(c.id)
    assert got is not None
    assert (got.counts.applied, got.counts.errors, got.counts.stage_errors) == (3, 1, 1)
    assert got.counts.pending == 6
    assert [t.detail for t in store.targets(c.id, status="error")] == ["x"]
    assert store.stage_status(c.id, 1) == {"applied": 3, "error": 1, "pending": 2}


def test_the_migration_fills_the_selection_columns_from_stored_states(db: Database) -> None:
    # A device stored before campaigns existed: its state only in JSON.
    rec, state = varied(7)  # country SY... (varied: n % 5 == 2), first country AE, seen CU
    register(db, [(rec, state)])
    with db.write() as tx:
        tx.execute(
            "UPDATE devices SET last_subdivision = NULL, first_country = NULL, seen_in = NULL"
        )
        migration = next(m for m in available(db.dialect) if m.name == "campaigns")
        backfill = migration.sql[migration.sql.index("UPDATE devices") :]
        tx.execute(backfill[: backfill.index(";")])
    with db.read() as tx:
        row = tx.one("SELECT last_subdivision, first_country, seen_in FROM devices")
    assert row is not None
    assert row[0] == state.last_subdivision
    assert row[1] == state.first_country
    assert sorted(row[2].strip(",").split(",")) == sorted(facts(rec, state).seen_in)
    assert json.loads(json.dumps(Stores.on(db).campaigns.recent())) == []
