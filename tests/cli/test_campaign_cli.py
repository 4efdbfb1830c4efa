"""`regionlock campaign ...` as an operator runs it, on SQLite and on PostgreSQL: dry run,
create (by selection and by IMEI list), start, stages, pause, cancel, drift and revert."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from campaign_fixtures import (
    ID_KEY,
    PUBLIC_KEY,
    campaign_entries,
    record,
    register,
    varied,
    versions,
)
from storage_fixtures import T0, imei, open_store

from regionlock.cli import campaign as campaign_cli
from regionlock.cli.campaign_run import run_stage, runner_name
from regionlock.cli.main import cli
from regionlock.domain.campaign import Campaign
from regionlock.domain.device import DeviceRecord, DeviceState, ManualLock, parse_imei
from regionlock.services.campaigns import Campaigns, RunReport
from regionlock.storage import Database, Stores

CAMPAIGN_ID = re.compile(r"cmp_[a-z2-7]{16}")
LOCK_D1 = ["--name", "leak", "--action", "lock", "--reason", "batch leaked"]


@dataclass
class Store:
    """A migrated, empty store, as the test sees it (`db`) and as the command line names it."""

    db: Database
    url: str


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    for db in open_store(request.param, tmp_path):
        with db.write() as tx:  # the key the fixtures' device ids derive from
            tx.execute(
                "INSERT INTO installation (one, device_id_key, created_at) VALUES (1, ?, 0)",
                (ID_KEY,),
            )
        if db.dialect == "sqlite":
            yield Store(db, f"sqlite:///{tmp_path / 'test.db'}")
        else:  # the command line finds the test's own schema through the search path
            glue = "&" if "?" in db.url.url else "?"
            yield Store(db, f"{db.url.url}{glue}options=-csearch_path%3D{db.schema}")


def run(s: Store, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["campaign", *args, "--db", s.url])
    return result.exit_code, result.stdout, result.stderr


def fleet(s: Store, n: int = 40) -> list[str]:
    """Devices 1..n of the varied fleet (distributor D{n % 3}); their ids."""
    devices = [varied(i) for i in range(1, n + 1)]
    register(s.db, devices)
    return [r.id for r, _ in devices]


def d1(n: int = 40) -> list[str]:
    return sorted(varied(i)[0].id for i in range(1, n + 1) if i % 3 == 1)


def status(s: Store, campaign_id: str) -> dict[str, Any]:
    code, out, err = run(s, "status", campaign_id, "--json")
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def create(s: Store, *args: str) -> str:
    code, out, err = run(s, "create", *LOCK_D1, *args)
    assert code == 0, err
    last = out.splitlines()[-1]
    assert CAMPAIGN_ID.fullmatch(last), out
    return last


def targets(s: Store, campaign_id: str, *args: str) -> list[dict[str, Any]]:
    code, out, err = run(s, "targets", campaign_id, "--json", *args)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def audit(s: Store) -> list[dict[str, Any]]:
    return [e.to_json() for e in Stores.on(s.db).audit.iter_all()]


def locked_by(s: Store, device_id: str) -> str | None:
    found = Stores.on(s.db).devices.get(device_id)
    assert found is not None
    lock = found.state.manual_lock
    return None if lock is None else (lock.campaign or lock.actor)


def test_dry_run_changes_nothing_and_create_freezes_what_it_showed(store: Store) -> None:
    fleet(store)
    before = (versions(store.db), audit(store))
    code, out, _ = run(
        store, "create", *LOCK_D1, "--where", "distributor=D1", "--dry-run", "--json"
    )
    assert code == 0
    preview = json.loads(out)
    assert preview["devices"] == len(d1()) == 14
    assert sum(preview["by_country"].values()) == 14
    assert set(preview["sample"]) <= set(d1())
    code, text, _ = run(store, "create", *LOCK_D1, "--where", "distributor=D1", "--dry-run")
    assert code == 0 and "dry run, nothing changed" in text and "devices: 14" in text
    inside = preview["inside_sales_region"]
    assert inside > 0 and f"WARNING: now inside their sales region: {inside} of 14" in text
    assert (versions(store.db), audit(store)) == before
    assert run(store, "list", "--json")[1].strip() == "[]"

    campaign_id = create(store, "--where", "distributor=D1")
    summary = status(store, campaign_id)
    assert summary["state"] == "draft" and summary["targets"] == preview["devices"]
    assert [t["device_id"] for t in targets(store, campaign_id)] == d1()
    assert versions(store.db) == before[0]  # created, nothing applied yet
    code, out, _ = run(store, "list")
    assert code == 0 and campaign_id in out and "0/14" in out


def test_bad_input_is_refused_and_nothing_created(store: Store) -> None:
    fleet(store)
    for where, message in [
        ("colour=red", "unknown field 'colour'"),
        ("country=Iran", "expected an ISO 3166-1 alpha-2 country code"),
        ("country=QQ", "not a known ISO 3166-1 alpha-2 code"),
        ("distributor", "expected FIELD=VALUE"),
        ("batch=NOPE", "matches no device: nothing created"),
    ]:
        code, out, err = run(store, "create", *LOCK_D1, "--where", where)
        assert code == 2 and message in err, (where, err)
        assert not CAMPAIGN_ID.search(out)
    code, _, err = run(store, "create", *LOCK_D1, "--stages", "10,5")
    assert code == 2 and "increasing percentages" in err
    assert run(store, "list", "--json")[1].strip() == "[]"
    assert not [e for e in audit(store) if e["action"] == "campaign.create"]


def test_an_imei_file_with_bad_lines_creates_nothing_unless_skip_bad(
    store: Store, tmp_path: Path
) -> None:
    ids = fleet(store, 12)
    dual = DeviceRecord.create(  # a device known by two IMEIs: its id derives from the first
        imeis=(parse_imei(imei(700)), parse_imei(imei(701))),
        id_key=ID_KEY,
        serial="SN700",
        public_key=PUBLIC_KEY,
        model="X1",
        sales_region="AE",
        distributor="D1",
        batch="B1",
    )
    register(store.db, [(dual, DeviceState())])
    wrong_digit = imei(3)[:-1] + str((int(imei(3)[-1]) + 1) % 10)
    lines = [
        "# the leaking batch",  # 1
        imei(1),  # 2
        "",  # 3
        f"{imei(2)}  # a comment after it",  # 4
        wrong_digit,  # 5
        imei(4),  # 6
        imei(999),  # 7: valid, not registered
        imei(4),  # 8: repeated
        "not an imei",  # 9
        imei(701),  # 10: the second IMEI of a registered device
    ]
    listed = tmp_path / "imeis.txt"
    listed.write_text("\n".join(lines) + "\n")
    code, out, err = run(store, "create", *LOCK_D1, "--imeis", str(listed))
    assert code == 2 and not CAMPAIGN_ID.search(out)
    assert f"line 5: IMEI {wrong_digit}: check digit should be {imei(3)[-1]}" in err
    assert f"line 7: no registered device has IMEI {imei(999)}" in err
    assert "line 9: IMEI 'not an imei'" in err
    assert (
        "3 of 8 IMEI line(s) are bad (not an IMEI, or no registered device has it); nothing created"
        in err
    )
    assert "line 2" not in err and "line 8" not in err
    assert run(store, "list", "--json")[1].strip() == "[]"

    # The dry run refuses what create refuses (no dry run passes where the real one fails).
    code, out, err = run(store, "create", *LOCK_D1, "--imeis", str(listed), "--dry-run")
    assert code == 2 and "line 5:" in err and "devices" not in out
    code, out, err = run(
        store, "create", *LOCK_D1, "--imeis", str(listed), "--dry-run", "--skip-bad", "--json"
    )
    preview = json.loads(out)
    assert code == 0 and (preview["devices"], preview["listed"]) == (4, 4)
    # Devices 1 (IR, warn), 2 (SY, lock), 4 and the dual one (never located), none at home.
    assert preview["by_country"] == {"unknown": 2, "IR": 1, "SY": 1}
    assert preview["by_verdict"] == {"allow": 1, "lock": 1, "none": 1, "warn": 1}
    assert preview["inside_sales_region"] == 0
    assert set(preview["sample"]) == {ids[0], ids[1], ids[3], dual.id}
    # The same preview in words, narrowed by --where (devices 1, 4 and the dual one are D1).
    code, out, err = run(
        store,
        *("create", *LOCK_D1, "--imeis", str(listed), "--dry-run", "--skip-bad"),
        *("--where", "distributor=D1"),
    )
    assert code == 0, err
    assert "dry run, nothing changed: lock distributor=D1" in out
    assert "devices: 3 of the 4 listed" in out
    assert "now inside their sales region: 0 of 3" in out and "WARNING" not in out
    assert "by country: unknown 2, IR 1" in out
    assert "by verdict: allow 1, none 1, warn 1" in out
    assert run(store, "list", "--json")[1].strip() == "[]"

    campaign_id = create(store, "--imeis", str(listed), "--skip-bad")
    assert [t["device_id"] for t in targets(store, campaign_id)] == sorted(
        [ids[0], ids[1], ids[3], dual.id]
    )
    assert (
        "skipped 3 bad line(s) (--skip-bad)"
        in run(store, "create", *LOCK_D1, "--imeis", str(listed), "--skip-bad")[2]
    )
    # With --where too, the list is narrowed by it (devices 1, 4 and the dual one are D1).
    campaign_id = create(store, "--imeis", str(listed), "--skip-bad", "--where", "distributor=D1")
    assert [t["device_id"] for t in targets(store, campaign_id)] == sorted(
        [ids[0], ids[3], dual.id]
    )


def test_start_needs_a_yes_without_a_terminal(store: Store) -> None:
    fleet(store)
    campaign_id = create(store, "--where", "distributor=D1")
    before = versions(store.db)
    code, _, err = run(store, "start", campaign_id)
    assert code == 2 and "confirm with --yes" in err and "lock 14 device(s)" in err
    assert status(store, campaign_id)["state"] == "draft"
    assert versions(store.db) == before


def test_start_on_a_terminal_asks_first(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet(store)
    campaign_id = create(store, "--where", "distributor=D1")
    monkeypatch.setattr(campaign_cli, "on_terminal", lambda: True)
    result = CliRunner().invoke(
        cli, ["campaign", "start", campaign_id, "--db", store.url], input="n\n"
    )
    assert result.exit_code == 1 and "Aborted" in result.stderr
    assert f"campaign {campaign_id} 'leak': lock 14 device(s)" in result.stdout
    inside = Campaigns.of(Stores.on(store.db)).preview(campaign_id).inside_sales_region
    assert inside == 5
    assert (
        f"WARNING: {inside} of the 14 device(s) it will reach now are inside their sales region"
        in result.stdout
    )
    assert status(store, campaign_id)["state"] == "draft"
    assert not campaign_entries(store.db)
    result = CliRunner().invoke(
        cli, ["campaign", "start", campaign_id, "--db", store.url], input="y\n"
    )
    assert result.exit_code == 0 and f"campaign {campaign_id}: done" in result.stdout
    assert status(store, campaign_id)["applied"] == 14


def test_the_confirmation_counts_the_targets_not_the_selection_again(
    store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fleet(store)
    monkeypatch.setattr(campaign_cli, "on_terminal", lambda: True)

    def asked(campaign_id: str, *args: str) -> str:
        result = CliRunner().invoke(
            cli, ["campaign", "start", campaign_id, *args, "--db", store.url], input="n\n"
        )
        assert result.exit_code == 1 and "Aborted" in result.stderr
        return result.stdout

    # A list selects nothing by itself: the whole fleet (40) is not what it reaches.
    listed = tmp_path / "imeis.txt"
    listed.write_text(f"{imei(1)}\n{imei(2)}\n{imei(4)}\n")
    campaign_id = create(store, "--imeis", str(listed))
    assert "0 of the 3 device(s) it will reach now are inside" in asked(campaign_id)

    # A D1 device registered after creation, at home (DE in DE), is in the selection (6 of 15
    # inside) but not in the frozen targets.
    campaign_id = create(store, "--where", "distributor=D1")
    register(store.db, [varied(43)])
    out = asked(campaign_id, "--accept-changes")
    assert "5 of the 14 device(s) it will reach now are inside their sales region" in out
    assert status(store, campaign_id)["state"] == "draft"


def test_start_yes_applies_every_target_once(store: Store) -> None:
    ids = fleet(store)
    campaign_id = create(store, "--where", "distributor=D1", "--message", "Call us")
    before = versions(store.db)
    code, out, err = run(store, "start", campaign_id, "--yes", "--chunk", "5")
    assert code == 0, err
    assert f"campaign {campaign_id}: done" in out and "this run: applied 14" in out
    summary = status(store, campaign_id)
    assert (summary["state"], summary["applied"], summary["pending"]) == ("done", 14, 0)
    entries = campaign_entries(store.db)
    assert set(entries) == {(campaign_id, d) for d in d1()} and set(entries.values()) == {1}
    after = versions(store.db)
    assert [d for d in ids if after[d] != before[d]] == [d for d in ids if d in d1()]
    assert all(locked_by(store, d) == campaign_id for d in d1())
    started = [e for e in audit(store) if e["action"] == "campaign.start"]
    assert len(started) == 1 and started[0]["actor"].startswith("cli:")
    code, out, _ = run(store, "status", campaign_id)
    assert "state: done, stage 1 of 1" in out and "applied 14, skipped 0, errors 0" in out
    # Again: nothing left to do, nothing done twice.
    code, out, _ = run(store, "start", campaign_id, "--yes")
    assert code == 0 and "done: nothing left to apply" in out
    assert campaign_entries(store.db) == entries


def test_a_message_in_several_languages(store: Store) -> None:
    fleet(store)
    code, _, err = run(store, "create", *LOCK_D1, "--message-in", "FA", "x")
    assert code == 2 and "message.FA: 'FA' is not a language tag" in err
    code, _, err = run(store, "create", *LOCK_D1, "--message", "m", "--message-in", "en", "again")
    assert code == 2 and "--message-in en is given twice" in err
    campaign_id = create(
        store,
        "--where",
        "distributor=D1",
        "--message",
        "Call your shop.",
        "--message-in",
        "fa",
        "با فروشگاه تماس بگیرید.",
    )
    words = {"en": "Call your shop.", "fa": "با فروشگاه تماس بگیرید."}
    assert status(store, campaign_id)["message"] == words
    assert run(store, "start", campaign_id, "--yes")[0] == 0
    found = Stores.on(store.db).devices.get(d1()[0])
    assert found is not None and found.state.manual_lock is not None
    kept = found.state.manual_lock.message
    assert kept is not None and json.loads(kept) == words


def test_a_staged_campaign_waits_for_advance(store: Store) -> None:
    fleet(store)
    campaign_id = create(store, "--where", "distributor=D1", "--stages", "30,100")
    sizes = status(store, campaign_id)["stage_sizes"]
    assert sum(sizes) == 14 and len(sizes) == 2
    code, out, _ = run(store, "start", campaign_id, "--yes")
    assert code == 0 and f"campaign advance {campaign_id}" in out
    summary = status(store, campaign_id)
    assert (summary["state"], summary["stage"], summary["applied"]) == ("waiting", 1, sizes[0])
    code, out, _ = run(store, "start", campaign_id, "--yes")
    assert code == 0 and "waits after stage 1 of 2" in out
    assert status(store, campaign_id)["applied"] == sizes[0]
    code, out, _ = run(store, "advance", campaign_id)
    assert code == 0 and f"campaign {campaign_id}: done" in out
    summary = status(store, campaign_id)
    assert (summary["state"], summary["stage"], summary["applied"]) == ("done", 2, 14)
    assert set(campaign_entries(store.db).values()) == {1}


def test_pause_resume_and_cancel(store: Store) -> None:
    fleet(store)
    campaign_id = create(store, "--where", "distributor=D1", "--stages", "30,100")
    run(store, "start", campaign_id, "--yes")
    first = {t["device_id"] for t in targets(store, campaign_id, "--status", "applied")}
    assert len(first) == status(store, campaign_id)["stage_sizes"][0]
    code, _, err = run(store, "pause", campaign_id)
    assert code == 2 and "--reason" in err
    code, out, _ = run(store, "pause", campaign_id, "--reason", "owners complain")
    assert code == 0 and "paused at stage 1 of 2" in out
    summary = status(store, campaign_id)
    assert (summary["state"], summary["state_reason"]) == ("paused", "owners complain")
    code, _, err = run(store, "advance", campaign_id)
    assert code == 2 and "paused" in err
    # `start` resumes a paused campaign at the stage where it was (already done: it waits).
    code, out, _ = run(store, "start", campaign_id, "--yes")
    assert code == 0 and "stage 1 of 2 done; it waits" in out
    code, out, _ = run(store, "cancel", campaign_id, "--reason", "investigation closed")
    assert code == 0 and f"campaign targets {campaign_id} --status applied" in out
    assert f"the {len(first)} device(s) already changed stay so" in out
    assert status(store, campaign_id)["state"] == "cancelled"
    assert {t["device_id"] for t in targets(store, campaign_id, "--status", "applied")} == first
    assert {t["device_id"] for t in targets(store, campaign_id, "--status", "pending")} == (
        set(d1()) - first
    )
    assert all(locked_by(store, d) == campaign_id for d in first)
    assert not any(locked_by(store, d) for d in set(d1()) - first)
    code, _, err = run(store, "start", campaign_id, "--yes")
    assert code == 2 and "cancelled" in err
    code, _, err = run(store, "status", "cmp_aaaaaaaaaaaaaaaa")
    assert code == 2 and "no campaign" in err


def test_a_drifted_fleet_needs_accept_changes(store: Store) -> None:
    fleet(store)
    campaign_id = create(store, "--where", "distributor=D1")
    newcomer = record(500, distributor="D1")
    register(store.db, [(newcomer, DeviceState())])
    code, _, err = run(store, "start", campaign_id, "--yes")
    assert code == 2 and "gained 1 device(s)" in err
    assert f"regionlock campaign start {campaign_id} --accept-changes" in err
    assert status(store, campaign_id)["state"] == "draft"
    assert not campaign_entries(store.db)
    code, _, err = run(store, "start", campaign_id, "--yes", "--accept-changes")
    assert code == 0, err
    assert status(store, campaign_id)["applied"] == 14  # the frozen targets, not the newcomer
    assert locked_by(store, newcomer.id) is None


def test_revert_puts_back_what_the_campaign_replaced(store: Store) -> None:
    fleet(store)
    targeted = d1()
    operator_lock = ManualLock("stolen", "cli:support", T0, None, None)
    with store.db.write() as tx:  # one target was locked by an operator before
        stores = Stores.on(store.db)
        found = stores.devices.lock_for_update(tx, targeted[0])
        assert found is not None
        stores.devices.save_state(tx, found, replace(found.state, manual_lock=operator_lock))
    campaign_id = create(store, "--where", "distributor=D1")
    code, _, err = run(store, "revert", campaign_id, "--reason", "x")
    assert code == 2 and "changed no device" in err
    run(store, "start", campaign_id, "--yes")
    assert all(locked_by(store, d) == campaign_id for d in targeted)
    code, out, err = run(store, "revert", campaign_id, "--reason", "cleared by the inquiry")
    assert code == 0, err
    revert_id = out.splitlines()[-1]
    assert CAMPAIGN_ID.fullmatch(revert_id) and revert_id != campaign_id
    summary = status(store, revert_id)
    assert (summary["action"], summary["reverts"], summary["targets"]) == (
        "revert",
        campaign_id,
        14,
    )
    code, out, err = run(store, "start", revert_id, "--yes")
    assert code == 0 and f"campaign {revert_id}: done" in out, err
    assert locked_by(store, targeted[0]) == "cli:support"  # the operator's lock is back
    assert not any(locked_by(store, d) for d in targeted[1:])


class CtrlCAfter(Campaigns):
    """The campaign service, with Ctrl-C pressed (a real SIGINT to this process) as the
    `press`th chunk commits."""

    press = 3

    def run(
        self,
        campaign_id: str,
        *,
        owner: str,
        chunk: int = 1000,
        progress: Callable[[Campaign], None] | None = None,
    ) -> RunReport:
        chunks = 0

        def pressing(c: Campaign) -> None:
            nonlocal chunks
            chunks += 1
            if chunks == self.press:
                os.kill(os.getpid(), signal.SIGINT)
            if progress is not None:
                progress(c)

        return super().run(campaign_id, owner=owner, chunk=chunk, progress=pressing)


def test_ctrl_c_stops_after_the_chunk_in_flight_and_start_goes_on(store: Store) -> None:
    fleet(store)
    campaign_id = create(store, "--where", "distributor=D1")
    svc = CtrlCAfter.of(Stores.on(store.db))
    started = svc.start(campaign_id, actor="cli:ops", now=T0)
    # Python's own handler, or SIG_IGN when the suite was started in the background (a
    # shell without job control ignores SIGINT for it): whichever, it is put back.
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as stopped:
        run_stage(svc, started, chunk=2)
    assert stopped.value.code == 130
    summary = status(store, campaign_id)
    assert (summary["state"], summary["applied"]) == ("running", 6)  # 3 chunks of 2
    assert Stores.on(store.db).campaigns.lease(campaign_id) == (None, None)
    assert signal.getsignal(signal.SIGINT) is before
    code, out, _ = run(store, "start", campaign_id)  # running: nothing to confirm
    assert code == 0 and f"campaign {campaign_id}: done" in out
    assert "this run: applied 8" in out
    entries = campaign_entries(store.db)
    assert set(entries) == {(campaign_id, d) for d in d1()} and set(entries.values()) == {1}


def test_a_dead_runners_lease_is_explained(store: Store) -> None:
    fleet(store)
    campaign_id = create(store, "--where", "distributor=D1")
    Campaigns.of(Stores.on(store.db)).start(campaign_id, actor="cli:ops", now=T0)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    holder = f"{runner_name().rpartition(':')[0]}:{gone.pid}"
    now = int(time.time() * 1000)
    assert Stores.on(store.db).campaigns.claim(campaign_id, holder, now + 30_000, now)
    code, _, err = run(store, "start", campaign_id)
    assert code == 2 and f"being run by {holder}" in err
    assert f"that process (pid {gone.pid}) is gone" in err
    assert status(store, campaign_id)["applied"] == 0
    with store.db.write() as tx:  # the lease expires
        Stores.on(store.db).campaigns.release(tx, campaign_id, holder)
    code, out, _ = run(store, "start", campaign_id)
    assert code == 0 and f"campaign {campaign_id}: done" in out
