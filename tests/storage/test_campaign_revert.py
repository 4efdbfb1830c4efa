"""Campaigns, on both stores: the fleet drifting before start, the four-eyes rule, revert
(exactly the devices changed, what they held put back, later decisions left alone), and the
background runner's work list."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from campaign_fixtures import campaign_entries, plain_fleet, record, register
from storage_fixtures import T0

from regionlock.domain.campaign import ApprovalRule, CampaignAction, CampaignState, Selection
from regionlock.domain.device import DeviceState, ManualExemption, ManualLock
from regionlock.domain.errors import Conflict, InvalidInput
from regionlock.services.campaigns import ApprovalRequired, CampaignDrifted, Campaigns
from regionlock.storage import Database, Stores


def service(db: Database) -> Campaigns:
    return Campaigns.of(Stores.on(db), clock=lambda: T0)


def create(svc: Campaigns, terms: list[str], **fields: object) -> str:
    values: dict[str, object] = {
        "name": "leak",
        "action": CampaignAction.LOCK,
        "reason": "batch leaked",
        "selection": Selection.parse(terms),
        "actor": "cli:ops",
        "now": T0,
    } | fields
    return svc.create(**values).id  # type: ignore[arg-type]


def state_of(db: Database, device_id: str) -> DeviceState:
    found = Stores.on(db).devices.get(device_id)
    assert found is not None
    return found.state


def set_state(db: Database, device_id: str, state: DeviceState) -> None:
    stores = Stores.on(db)
    with db.write() as tx:
        ((_, version),) = stores.devices.lock_states(tx, [device_id]).values()
        stores.devices.save_states(tx, [(device_id, version, state)])


def run_all(svc: Campaigns, cid: str, **start: object) -> None:
    svc.start(cid, actor="cli:ops", now=T0, **start)  # type: ignore[arg-type]
    assert svc.run(cid, owner="r", chunk=7).stopped == "done"


# --- drift -------------------------------------------------------------------------------------


def test_a_fleet_that_grew_since_creation_needs_accept_changes(db: Database) -> None:
    targets = plain_fleet(db, 12, batch="B7")
    svc = service(db)
    cid = create(svc, ["batch=B7"])
    assert not svc.drift(cid).changed
    register(db, [(record(100 + n, batch="B7"), DeviceState()) for n in range(3)])
    drift = svc.drift(cid)
    assert (drift.frozen, drift.added, drift.removed) == (12, 3, 0)
    with pytest.raises(CampaignDrifted, match="gained 3 device"):
        svc.start(cid, actor="cli:ops", now=T0)
    assert svc.get(cid).state is CampaignState.DRAFT
    run_all(svc, cid, accept_changes=True)
    # The frozen set is what was applied: the three newcomers were not touched.
    assert {d for (c, d) in campaign_entries(db) if c == cid} == set(targets)
    start = [e for e in Stores.on(db).audit.iter_all() if e.action == "campaign.start"]
    assert start[-1].details["drift"] == {"frozen": 12, "added": 3, "removed": 0}


def test_a_listed_campaign_cannot_gain_devices_by_the_fleet_growing(db: Database) -> None:
    targets = plain_fleet(db, 6)
    svc = service(db)
    cid = create(svc, [], devices=targets[:4])
    register(db, [(record(200), DeviceState())])
    assert not svc.drift(cid).changed
    assert svc.get(cid).explicit


# --- the four-eyes rule ------------------------------------------------------------------------


def test_a_campaign_over_the_limit_starts_only_once_another_admin_approved(db: Database) -> None:
    plain_fleet(db, 20)
    svc = service(db)
    cid = create(svc, [])
    rule = ApprovalRule(devices=10, share=1.0)
    assert svc.needs_approval(cid, rule)
    with pytest.raises(ApprovalRequired, match=r"20 devices .* over the four-eyes limit of 10"):
        svc.start(cid, actor="api:ops", now=T0, approval=rule)
    with pytest.raises(Conflict, match="someone else must approve"):
        svc.approve(cid, actor="cli:ops", now=T0)
    svc.approve(cid, actor="api:second-admin", now=T0)
    assert not svc.needs_approval(cid, rule)
    assert svc.start(cid, actor="api:ops", now=T0, approval=rule).state is CampaignState.RUNNING


def test_the_share_of_the_fleet_also_calls_for_approval(db: Database) -> None:
    plain_fleet(db, 20, batch="B1")
    plain_fleet_extra = [(record(300 + n, batch="B2"), DeviceState()) for n in range(80)]
    register(db, plain_fleet_extra)
    svc = service(db)
    small = create(svc, ["batch=B1"])  # 20 of 100
    assert svc.needs_approval(small, ApprovalRule(devices=1000, share=0.10))
    assert not svc.needs_approval(small, ApprovalRule(devices=1000, share=0.20))
    assert not svc.needs_approval(small, ApprovalRule(devices=20, share=0.20))  # at, not over
    # Without a rule (the command line, which confirms on a terminal) nothing is required.
    assert svc.start(small, actor="cli:ops", now=T0).state is CampaignState.RUNNING


# --- revert ------------------------------------------------------------------------------------


def test_revert_puts_back_exactly_what_the_lock_replaced(db: Database) -> None:
    ids = plain_fleet(db, 10)
    older = ManualLock("stolen", "api:support", T0 - timedelta(days=3), "Call us", "sup@x")
    set_state(db, ids[0], DeviceState(manual_lock=older))
    svc = service(db)
    cid = create(svc, [], devices=ids[:6])
    run_all(svc, cid)
    # Since the campaign, an operator unlocked one device by hand: the revert leaves it so.
    set_state(db, ids[5], replace(state_of(db, ids[5]), manual_lock=None))
    undo = svc.revert(cid, actor="cli:lead", reason="investigation closed", now=T0)
    reverted = svc.get(undo.id)
    assert reverted.action is CampaignAction.REVERT and reverted.reverts == cid
    assert reverted.counts.targets == 6
    run_all(svc, undo.id)
    done = svc.get(undo.id)
    assert (done.counts.applied, done.counts.skipped) == (5, 1)
    skipped = svc.targets(undo.id, status="skipped")
    assert [t.device_id for t in skipped] == [ids[5]] and "changed since" in str(skipped[0].detail)
    assert state_of(db, ids[0]).manual_lock == older  # the stolen-phone lock is back
    assert all(state_of(db, d).manual_lock is None for d in ids[1:])
    entries = [e for e in Stores.on(db).audit.iter_all() if e.action == "campaign.revert"]
    assert sorted(e.subject for e in entries) == sorted(ids[:5])
    assert all(e.details["reverts"] == cid and e.details["campaign"] == undo.id for e in entries)


def test_revert_of_an_unlock_relocks_only_the_devices_it_unlocked(db: Database) -> None:
    ids = plain_fleet(db, 8)
    lock = ManualLock("leak", "cli:ops", T0 - timedelta(days=1), campaign="cmp_earlier")
    for d in ids[:3]:
        set_state(db, d, DeviceState(manual_lock=lock))
    svc = service(db)
    cid = create(svc, [], action=CampaignAction.UNLOCK, devices=ids[:5])
    run_all(svc, cid)
    assert all(state_of(db, d).manual_lock is None for d in ids)
    # An operator locked one of the never-locked targets since: that lock is theirs, it stays.
    mine = ManualLock("fraud", "api:support", T0)
    set_state(db, ids[4], DeviceState(manual_lock=mine))
    undo = svc.revert(cid, actor="cli:lead", reason="lifted too early", now=T0)
    run_all(svc, undo.id)
    assert [state_of(db, d).manual_lock for d in ids[:3]] == [lock] * 3
    assert state_of(db, ids[3]).manual_lock is None
    assert state_of(db, ids[4]).manual_lock == mine
    assert svc.get(undo.id).counts.skipped == 1


def test_revert_of_an_exemption_removes_it_and_restores_an_older_one(db: Database) -> None:
    ids = plain_fleet(db, 4)
    old = ManualExemption("diplomat", "api:support", None)
    set_state(db, ids[0], DeviceState(exemption=old))
    svc = service(db)
    cid = create(svc, [], action=CampaignAction.EXEMPT, devices=ids[:3])
    run_all(svc, cid)
    assert all(state_of(db, d).exemption is not None for d in ids[:3])
    undo = svc.revert(cid, actor="cli:lead", reason="distributor cleared", now=T0)
    run_all(svc, undo.id)
    assert state_of(db, ids[0]).exemption == old
    assert state_of(db, ids[1]).exemption is None and state_of(db, ids[2]).exemption is None


def test_revert_refuses_a_running_campaign_one_that_changed_nothing_and_a_revert(
    db: Database,
) -> None:
    ids = plain_fleet(db, 5)
    svc = service(db)
    cid = create(svc, [], devices=ids)
    with pytest.raises(InvalidInput, match="changed no device"):
        svc.revert(cid, actor="cli:lead", reason="r", now=T0)
    svc.start(cid, actor="cli:ops", now=T0)
    with pytest.raises(Conflict, match="running: pause or cancel"):
        svc.revert(cid, actor="cli:lead", reason="r", now=T0)
    assert svc.run(cid, owner="r").stopped == "done"
    undo = svc.revert(cid, actor="cli:lead", reason="r", now=T0)
    with pytest.raises(InvalidInput, match="cannot be reverted"):
        svc.revert(undo.id, actor="cli:lead", reason="r", now=T0)
    with pytest.raises(InvalidInput, match="only a revert, names the campaign it undoes"):
        create(svc, [], action=CampaignAction.REVERT)


def test_a_cancelled_campaign_reverts_only_what_it_applied(db: Database) -> None:
    ids = plain_fleet(db, 40)
    svc = service(db)
    cid = create(svc, [])
    svc.start(cid, actor="cli:ops", now=T0)

    def cancel_after_first_chunk(_: object) -> None:
        svc.cancel(cid, actor="cli:ops", reason="wrong batch", now=T0)

    report = svc.run(cid, owner="r", chunk=15, progress=cancel_after_first_chunk)
    assert report.stopped == "cancelled" and report.applied == 15
    applied = [t.device_id for t in svc.targets(cid, status="applied")]
    undo = svc.revert(cid, actor="cli:lead", reason="undo the wrong batch", now=T0)
    assert undo.counts.targets == 15
    run_all(svc, undo.id)
    assert all(state_of(db, d).manual_lock is None for d in ids)
    reverted = {d for (c, d) in campaign_entries(db) if c == undo.id}
    assert reverted == set(applied)


# --- the background runner's work list ----------------------------------------------------------


def test_runnable_lists_running_campaigns_no_live_runner_holds(db: Database) -> None:
    plain_fleet(db, 5)
    svc = service(db)
    draft = create(svc, [])
    running = create(svc, [])
    svc.start(running, actor="cli:ops", now=T0)
    assert svc.runnable() == [running]
    store = Stores.on(db).campaigns
    now = int(T0.timestamp() * 1000)
    assert store.claim(running, "node-a", until=now + 30_000, now=now)
    assert svc.runnable() == []  # held
    later = Campaigns.of(Stores.on(db), clock=lambda: T0 + timedelta(minutes=1))
    assert later.runnable() == [running]  # the holder died: its lease expired
    assert draft not in later.runnable()


# --- previews ----------------------------------------------------------------------------------


def test_a_dry_run_over_a_device_list_counts_only_the_listed_devices(db: Database) -> None:
    ids = plain_fleet(db, 30, batch="B1")
    svc = service(db)
    listed = [*ids[:7], "dev_not_registered"]
    preview = svc.dry_run(Selection.parse([]), devices=listed)
    assert preview.devices == 7 and preview.by_verdict == {"none": 7}
    assert set(preview.sample) <= set(ids[:7]) and len(preview.sample) == 7
    narrowed = svc.dry_run(Selection.parse(["batch=B2"]), devices=listed)
    assert narrowed.devices == 0 and narrowed.sample == []
    # The dry run and create agree on the same list.
    cid = create(svc, [], devices=listed)
    assert svc.get(cid).counts.targets == preview.devices


def test_a_preview_of_a_campaign_counts_what_starting_it_would_still_reach(db: Database) -> None:
    ids = plain_fleet(db, 20)
    svc = service(db)
    cid = create(svc, [], devices=ids[:12])
    before = svc.preview(cid)
    assert before.devices == 12 and set(before.sample) <= set(ids[:12])
    with db.write() as tx:
        tx.execute("DELETE FROM device_imeis WHERE device_id = ?", (ids[0],))
        tx.execute("DELETE FROM devices WHERE id = ?", (ids[0],))
    assert svc.preview(cid).devices == 11  # a deleted device is not reached
    svc.start(cid, actor="cli:ops", now=T0, accept_changes=True)
    svc.run(
        cid,
        owner="r",
        chunk=5,
        progress=lambda c: svc.pause(c.id, actor="cli:ops", reason="look", now=T0),
    )
    # The first chunk took five targets, the deleted one (skipped) among them: seven are left.
    assert svc.preview(cid).devices == 7


def test_leases_follow_the_lease_clock_when_business_time_is_simulated(db: Database) -> None:
    """A demo's service runs days ahead of real time; its leases must not look expired (or
    eternal) to a runner on real time in another process."""
    plain_fleet(db, 5)
    real = T0
    ahead = Campaigns.of(
        Stores.on(db), clock=lambda: T0 + timedelta(days=30), lease_clock=lambda: real
    )
    cid = create(ahead, [])
    ahead.start(cid, actor="cli:ops", now=T0)
    store = Stores.on(db).campaigns
    ms = int(real.timestamp() * 1000)
    assert store.claim(cid, "elsewhere", until=ms + 30_000, now=ms)  # a real-time runner holds it
    assert ahead.runnable() == []  # not taken from it
    with pytest.raises(Conflict, match="being run by elsewhere"):
        ahead.run(cid, owner="demo")
