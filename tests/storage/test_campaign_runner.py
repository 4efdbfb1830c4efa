"""Campaigns applied on both stores: dry run, create, stages, pause, cancel, halts, leases,
and exactly once through crashes (in process and a SIGKILLed process) and rival runners."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from campaign_fixtures import campaign_entries, plain_fleet, record, register, varied, versions
from storage_fixtures import T0, Fleet

from regionlock.domain.campaign import CampaignAction, CampaignState, Selection
from regionlock.domain.device import DeviceState
from regionlock.domain.errors import Conflict, InvalidInput
from regionlock.geo import Locator
from regionlock.services.campaigns import (
    CampaignBusy,
    CampaignDrifted,
    Campaigns,
    RunReport,
    UnknownCampaign,
)
from regionlock.services.checkin import CheckinService
from regionlock.settings import Settings
from regionlock.storage import Database, Stores

HERE = Path(__file__).parent


class Clock:
    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def service(db: Database, clock: Clock | None = None, **options: object) -> Campaigns:
    return Campaigns.of(Stores.on(db), clock=clock or Clock(), **options)


def create(svc: Campaigns, terms: list[str] | None = None, **fields: object) -> str:
    values: dict[str, object] = {
        "name": "leak",
        "action": CampaignAction.LOCK,
        "reason": "batch leaked",
        "selection": Selection.parse(terms or []),
        "actor": "cli:ops",
        "now": T0,
    } | fields
    return svc.create(**values).id  # type: ignore[arg-type]


def assert_exactly_once(db: Database, campaign_id: str, targets: list[str]) -> None:
    entries = campaign_entries(db)
    assert {d for (c, d) in entries if c == campaign_id} == set(targets)
    assert all(n == 1 for n in entries.values())
    stores = Stores.on(db)
    for d in targets:
        found = stores.devices.get(d)
        assert found is not None and found.state.manual_lock is not None
        assert found.state.manual_lock.campaign == campaign_id


def test_dry_run_counts_in_the_store(db: Database) -> None:
    fleet = [varied(n) for n in range(1, 61)]
    register(db, fleet)
    svc = service(db)
    preview = svc.dry_run(Selection.parse(["model=X2"]))
    chosen = [(r, s) for r, s in fleet if r.model == "X2"]
    assert preview.devices == len(chosen) == 30
    assert sum(preview.by_country.values()) == 30
    assert preview.by_country["unknown"] == sum(1 for _, s in chosen if s.last_country is None)
    assert preview.by_verdict["none"] == sum(1 for _, s in chosen if s.last_verdict is None)
    inside = sum(
        1
        for r, s in chosen
        if s.last_country
        and (
            r.sales_region == "GLOBAL"
            or r.sales_region == s.last_country
            or (r.sales_region == "EU" and s.last_country == "DE")
        )
    )
    assert preview.inside_sales_region == inside > 0
    assert len(preview.sample) == 10 and set(preview.sample) <= {r.id for r, _ in chosen}
    assert preview.to_json()["devices"] == 30
    assert svc.recent() == []  # a dry run creates nothing


def test_create_refuses_an_empty_selection_and_creates_nothing(db: Database) -> None:
    plain_fleet(db, 5)
    svc = service(db)
    with pytest.raises(InvalidInput, match="matches no device"):
        create(svc, ["batch=NOPE"])
    assert svc.recent() == []
    assert not [e for e in Stores.on(db).audit.iter_all() if e.action == "campaign.create"]
    with pytest.raises(InvalidInput, match="not in the future"):
        create(svc, action=CampaignAction.EXEMPT, until=T0.date())
    with pytest.raises(UnknownCampaign):
        svc.get("cmp_nope")


def test_a_campaign_changes_exactly_its_targets_once(db: Database) -> None:
    targets = plain_fleet(db, 120, batch="B7")
    others = [r for r in (record(1000 + i, batch="B1") for i in range(30))]
    register(db, [(r, DeviceState()) for r in others])
    before = versions(db)
    svc = service(db)
    cid = create(svc, ["batch=B7"], message="Call us", contact="+1 555")
    created = svc.get(cid)
    assert created.state is CampaignState.DRAFT and created.counts.targets == 120
    with pytest.raises(Conflict, match="start it first"):
        svc.run(cid, owner="r1")
    svc.start(cid, actor="cli:ops", now=T0)
    seen: list[int] = []
    report = svc.run(cid, owner="r1", chunk=50, progress=lambda c: seen.append(c.counts.applied))
    assert report.stopped == "done" and report.applied == 120 and report.chunks == 3
    assert seen == [50, 100, 120]
    done = svc.get(cid)
    assert (done.state, done.counts.applied, done.counts.pending) == (CampaignState.DONE, 120, 0)
    assert_exactly_once(db, cid, targets)
    after = versions(db)
    assert all(after[r.id] == before[r.id] for r in others)  # no other device touched
    lock = Stores.on(db).devices.get(targets[0])
    assert lock is not None and lock.state.manual_lock is not None
    assert (lock.state.manual_lock.message, lock.state.manual_lock.contact) == ("Call us", "+1 555")
    actions = [e.action for e in Stores.on(db).audit.iter_all() if e.subject == cid]
    assert actions == ["campaign.create", "campaign.start", "campaign.stage_done"]
    assert Stores.on(db).campaigns.lease(cid) == (None, None)  # released


def test_a_crash_mid_run_loses_nothing_and_repeats_nothing(db: Database) -> None:
    targets = plain_fleet(db, 100)
    svc = service(db)
    cid = create(svc)
    svc.start(cid, actor="cli:ops", now=T0)
    chunks = 0

    def crash(c: object) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 3:
            raise KeyboardInterrupt  # the runner dies after its third chunk committed

    with pytest.raises(KeyboardInterrupt):
        svc.run(cid, owner="r1", chunk=15, progress=crash)
    assert svc.get(cid).counts.applied == 45
    report = svc.run(cid, owner="r2", chunk=15)
    assert report.applied == 55 and report.stopped == "done"
    assert_exactly_once(db, cid, targets)


def test_a_runner_killed_with_sigkill_is_resumed_exactly_once(db: Database) -> None:
    targets = plain_fleet(db, 600)
    untouched = record(5000, batch="other")
    register(db, [(untouched, DeviceState())])
    svc = service(db)
    cid = create(svc, ["batch=B1"])
    svc.start(cid, actor="cli:ops", now=T0)
    url = db.url.url
    child = subprocess.Popen(
        [sys.executable, str(HERE / "campaign_child.py"), url, db.schema or "", cid, "child"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for _ in range(5):
        assert child.stdout.readline().strip() == "chunk"
    child.send_signal(signal.SIGKILL)  # mid-run: most likely inside a chunk's transaction
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    partial = svc.get(cid).counts.applied
    assert 100 <= partial < 600
    # Its lease outlives it: another runner waits for it to expire.
    with pytest.raises(CampaignBusy, match="child"):
        svc.run(cid, owner="rescuer")
    later = service(db, Clock(datetime.now().astimezone() + timedelta(minutes=5)))
    report = later.run(cid, owner="rescuer", chunk=100)
    assert report.stopped == "done" and report.applied == 600 - partial
    assert_exactly_once(db, cid, targets)
    assert versions(db)[untouched.id] == 0
    assert Stores.on(db).audit.verify().ok


def test_two_runners_at_once_only_one_runs(db: Database) -> None:
    targets = plain_fleet(db, 200)
    svc = service(db)
    cid = create(svc)
    svc.start(cid, actor="cli:ops", now=T0)
    first_chunk, let_go = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def hold(c: object) -> None:
        first_chunk.set()
        let_go.wait(10)

    def runner(name: str, progress: Callable[[object], None] | None) -> None:
        try:
            outcomes[name] = Campaigns.of(Stores.on(db), clock=Clock()).run(
                cid, owner=name, chunk=40, progress=progress
            )
        except Exception as exc:
            outcomes[name] = exc

    a = threading.Thread(target=runner, args=("a", hold))
    a.start()
    assert first_chunk.wait(10)
    b = threading.Thread(target=runner, args=("b", None))
    b.start()
    b.join(10)
    let_go.set()
    a.join(10)
    assert isinstance(outcomes["b"], CampaignBusy)
    assert getattr(outcomes["a"], "stopped", None) == "done"
    assert_exactly_once(db, cid, targets)


def test_two_runners_started_together_change_each_device_once(db: Database) -> None:
    targets = plain_fleet(db, 300)
    svc = service(db)
    cid = create(svc)
    svc.start(cid, actor="cli:ops", now=T0)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def runner(name: str) -> None:
        barrier.wait()
        try:
            outcomes.append(
                Campaigns.of(Stores.on(db), clock=Clock()).run(cid, owner=name, chunk=25)
            )
        except Conflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=runner, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(outcomes) == 2
    ran = [o for o in outcomes if isinstance(o, RunReport)]
    # The loser either found the lease taken (Conflict), or came in after the winner had
    # finished and released it, and found nothing left to do.
    assert ran and all(isinstance(o, (RunReport, Conflict)) for o in outcomes)
    assert sorted(r.applied for r in ran)[-1] == 300 and sum(r.applied for r in ran) == 300
    assert all(r.stopped == "done" for r in ran)
    assert_exactly_once(db, cid, targets)


def test_a_runner_that_lost_its_lease_stops_before_writing(db: Database) -> None:
    targets = plain_fleet(db, 100)
    clock = Clock()
    svc = service(db, clock)
    cid = create(svc)
    svc.start(cid, actor="cli:ops", now=T0)
    store = Stores.on(db).campaigns

    def stolen(c: object) -> None:
        # The runner stalled past its lease and another took the campaign over.
        far = int((T0 + timedelta(hours=1)).timestamp() * 1000)
        assert store.claim(cid, "thief", until=far + 60_000, now=far)

    report = svc.run(cid, owner="slow", chunk=30, progress=stolen)
    assert report.stopped == "lease lost" and report.applied == 30
    assert store.lease(cid)[0] == "thief"  # not released by the loser
    later = service(db, Clock(T0 + timedelta(hours=2)))
    assert later.run(cid, owner="next", chunk=30).applied == 70
    assert_exactly_once(db, cid, targets)


def test_stages_wait_for_advance(db: Database) -> None:
    targets = plain_fleet(db, 400)
    svc = service(db)
    cid = create(svc, stages=(10, 100))
    c = svc.get(cid)
    first = c.counts.stage_sizes[0]
    assert 20 <= first <= 60 and sum(c.counts.stage_sizes) == 400
    svc.start(cid, actor="cli:ops", now=T0)
    report = svc.run(cid, owner="r", chunk=100)
    assert report.stopped == "waiting" and report.applied == first
    waiting = svc.get(cid)
    assert (waiting.state, waiting.stage) == (CampaignState.WAITING, 1)
    with pytest.raises(Conflict):
        svc.run(cid, owner="r")
    svc.advance(cid, actor="cli:ops", now=T0)
    report = svc.run(cid, owner="r", chunk=100)
    assert report.stopped == "done" and report.applied == 400 - first
    assert_exactly_once(db, cid, targets)
    with pytest.raises(Conflict):
        svc.advance(cid, actor="cli:ops", now=T0)


def test_pause_and_resume_then_cancel_keeps_what_was_applied(db: Database) -> None:
    targets = plain_fleet(db, 100)
    svc = service(db)
    cid = create(svc)
    svc.start(cid, actor="cli:ops", now=T0)
    pause_after = lambda c: svc.pause(cid, actor="cli:boss", reason="complaints", now=T0)  # noqa: E731
    report = svc.run(cid, owner="r", chunk=20, progress=pause_after)
    assert report.stopped == "paused" and report.applied == 20
    paused = svc.get(cid)
    assert (paused.state, paused.state_reason) == (CampaignState.PAUSED, "complaints")
    svc.start(cid, actor="cli:ops", now=T0)
    cancel_after = lambda c: svc.cancel(cid, actor="cli:boss", reason="wrong batch", now=T0)  # noqa: E731
    report = svc.run(cid, owner="r", chunk=20, progress=cancel_after)
    assert report.stopped == "cancelled" and report.applied == 20
    cancelled = svc.get(cid)
    assert cancelled.state is CampaignState.CANCELLED and cancelled.counts.applied == 40
    applied = Stores.on(db).campaigns.targets(cid, status="applied")
    assert len(applied) == 40
    entries = campaign_entries(db)
    assert {d for (_, d) in entries} == {t.device_id for t in applied} < set(targets)
    with pytest.raises(Conflict):
        svc.start(cid, actor="cli:ops", now=T0)


def test_a_stage_halts_when_too_many_devices_fail(db: Database) -> None:
    plain_fleet(db, 100)
    clock = Clock()
    svc = service(db, clock)
    cid = create(svc, action=CampaignAction.EXEMPT, until=date(2026, 12, 1))
    svc.start(cid, actor="cli:ops", now=T0)
    clock.at = datetime(2026, 12, 2, tzinfo=T0.tzinfo)  # the exemption's end has passed
    report = svc.run(cid, owner="r", chunk=10)
    assert report.stopped == "halted" and report.errors == 10 and report.chunks == 0
    halted = svc.get(cid)
    assert halted.state is CampaignState.PAUSED
    assert halted.state_reason is not None and "10 of the 100" in halted.state_reason
    errors = Stores.on(db).campaigns.targets(cid, status="error")
    assert [t.detail for t in errors][:1] == ["the exemption's end date 2026-12-01 has passed"]
    assert not campaign_entries(db)  # a device that failed was not changed


def test_a_device_deleted_since_creation_is_skipped(db: Database) -> None:
    targets = plain_fleet(db, 30)
    svc = service(db)
    cid = create(svc)
    with db.write() as tx:
        tx.execute("DELETE FROM device_imeis WHERE device_id = ?", (targets[0],))
        tx.execute("DELETE FROM devices WHERE id = ?", (targets[0],))
    with pytest.raises(CampaignDrifted, match="no longer matches 1 of the 30 targets"):
        svc.start(cid, actor="cli:ops", now=T0)
    svc.start(cid, actor="cli:ops", now=T0, accept_changes=True)
    report = svc.run(cid, owner="r")
    assert (report.applied, report.skipped, report.stopped) == (29, 1, "done")
    skipped = Stores.on(db).campaigns.targets(cid, status="skipped")
    assert [(t.device_id, t.detail) for t in skipped] == [
        (targets[0], "device no longer registered")
    ]
    assert_exactly_once(db, cid, targets[1:])


def test_a_checkin_after_a_campaign_lock_names_the_campaign(db: Database, locator: Locator) -> None:
    fleet = Fleet(1)
    fleet.register(db)
    stores = Stores.on(db)
    svc = service(db)
    cid = create(svc, message="Return it to the shop", contact="support@example.com")
    svc.start(cid, actor="cli:ops", now=T0)
    svc.run(cid, owner="r")
    checkins = CheckinService.of(stores, locator, Settings())
    dubai = {"network": ["424-02"], "gps": {"lat": 25.2, "lon": 55.27}}
    out = checkins.check_in(fleet.token(0, 1, T0, dubai), peer_ip=None, now=T0)
    assert out["verdict"] == "lock"
    assert out["reasons"][0] == "campaign.lock"
    assert out["message"] == "Return it to the shop"
    assert out["contact"] == "support@example.com"
    # An operator's lock later takes the slot: operator.lock again.
    from regionlock.services.registry import Registry

    Registry.of(stores).lock(fleet.records[0].id, reason="stolen", actor="cli:desk", now=T0)
    out = checkins.check_in(fleet.token(0, 2, T0, dubai), peer_ip=None, now=T0)
    assert out["reasons"][0] == "operator.lock"
    # An exemption campaign wins over the lock, with its end date.
    exempt = create(svc, action=CampaignAction.EXEMPT, until=date(2027, 1, 1))
    svc.start(exempt, actor="cli:ops", now=T0)
    svc.run(exempt, owner="r")
    out = checkins.check_in(fleet.token(0, 3, T0, dubai), peer_ip=None, now=T0)
    assert out["verdict"] == "allow" and out["reasons"][:2] == [
        "campaign.exempt",
        "exemption.device",
    ]
    # An operator's own exemption says so: no campaign reason.
    Registry.of(stores).exempt(
        fleet.records[0].id, reason="appeal granted", actor="cli:desk", until=None, now=T0
    )
    out = checkins.check_in(fleet.token(0, 4, T0, dubai), peer_ip=None, now=T0)
    assert out["verdict"] == "allow" and "campaign.exempt" not in out["reasons"]
