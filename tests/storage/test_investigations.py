"""Investigations on both stores (services/investigations.py over storage/investigations.py):
planted leaks are found, decoys are not, both ways of counting agree, bad questions are
refused, and an empty window answers with a note."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from investigation_fleet import (
    FleetSpec,
    Planned,
    day,
    leaky_batch,
    planted_fleet,
    write_fleet,
)
from storage_fixtures import open_store

from regionlock.domain.errors import InvalidInput
from regionlock.policies import example_policy_text
from regionlock.services.investigations import (
    Investigations,
    Question,
    UnknownBatch,
    parse_question,
)
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.storage import Stores
from regionlock.storage.analytics import AnalyticsSource

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stores, Planned]]:
    where = tmp_path_factory.mktemp(request.param)
    for db in open_store(request.param, where):
        stores = Stores.on(db)
        stores = _with_cache(stores, where / "investigate.duckdb")
        planned = write_fleet(db, planted_fleet())
        _activate(stores)
        yield stores, planned


def _with_cache(stores: Stores, path: Path) -> Stores:
    from dataclasses import replace

    return replace(stores, analytics=AnalyticsSource(stores.db, path))


def _activate(stores: Stores) -> None:
    PolicyAdmin.of(stores).activate(
        example_policy_text("gray-market-2021"),
        source="gray-market-2021.toml",
        actor="test",
        reason="test",
        now=NOW,
    )


def test_planted_leaks_are_flagged_by_batch_and_decoys_are_not(
    fleet: tuple[Stores, Planned],
) -> None:
    stores, planned = fleet
    report = Investigations.of(stores).leaks("batch", Question())
    flagged = {r.group for r in report.rows if r.flagged}
    assert {"D25-B0", "D08-B0", "D05-B0"} <= flagged
    decoys = {b for b in planned.batches if b.startswith(("TRAVEL", "BORDER", "CLEAN", "SMALL"))}
    assert not flagged & decoys
    by_group = {r.group: r for r in report.rows}
    for batch in planned.batches:
        assert by_group[batch].restricted == planned.restricted_in(batch), batch
        assert by_group[batch].devices == len(planned.batches[batch])
    # The strongest evidence first; the tiny batch (1 of 8, a 12.5 % share, half the D25
    # leak's) comes after every flagged batch; its shrunk rate is pulled well below its share,
    # and its Wilson lower bound is below the smallest real leak's.
    assert report.rows[0].group == "D25-B0"
    order = [r.group for r in report.rows]
    assert order.index("SMALL-B0") >= len(flagged)
    small = by_group["SMALL-B0"]
    assert small.shrunk < 0.7 * small.share
    assert small.wilson_low < by_group["D05-B0"].wilson_low
    assert report.note is None
    assert report.scope.policy == "gray-market-2021@2021-09-15"
    assert "IR" in report.scope.places


def test_leaking_distributors_stand_out_and_decoy_distributors_do_not(
    fleet: tuple[Stores, Planned],
) -> None:
    stores, _ = fleet
    rows = Investigations.of(stores).leaks("distributor", Question()).rows
    flagged = {r.group for r in rows if r.flagged}
    assert {"D25", "D08"} <= flagged
    assert not flagged & {"TRAVEL", "BORDER", "CLEAN", "SMALL"}


def test_counting_by_named_places_agrees_with_the_policys_judgement(
    fleet: tuple[Stores, Planned],
) -> None:
    stores, _ = fleet
    service = Investigations.of(stores)
    by_policy = {r.group: r.restricted for r in service.leaks("batch", Question()).rows}
    named = service.leaks("batch", parse_question(["ir"]))
    assert {r.group: r.restricted for r in named.rows} == by_policy
    assert named.scope.places == ("IR",)
    assert "more than 3 day(s) within 14" in named.scope.rule
    # A place nobody went to: nothing restricted, nothing flagged.
    cuba = service.leaks("batch", parse_question(["CU"])).rows
    assert sum(r.restricted for r in cuba) == 0
    assert not any(r.flagged for r in cuba)


def test_the_unseen_are_registered_but_not_seen(fleet: tuple[Stores, Planned]) -> None:
    stores, _ = fleet
    rows = {r.group: r for r in Investigations.of(stores).leaks("distributor", Question()).rows}
    assert rows["CLEAN"].seen < rows["CLEAN"].devices
    assert rows["D25"].seen == rows["D25"].devices


def test_a_window_before_the_leak_counts_no_established_device(
    fleet: tuple[Stores, Planned],
) -> None:
    stores, _ = fleet
    service = Investigations.of(stores)
    # The leaked devices are established from day 5 (their fourth day in Iran).
    early = service.leaks("batch", Question(until=day(3)))
    assert sum(r.restricted for r in early.rows) == 0
    named = service.leaks("batch", Question(countries=("IR",), until=day(3)))
    assert sum(r.restricted for r in named.rows) == 0
    later = service.leaks("batch", Question(since=day(5)))
    assert {r.group for r in later.rows if r.flagged} >= {"D25-B0", "D08-B0"}


def test_an_empty_window_answers_with_a_note(fleet: tuple[Stores, Planned]) -> None:
    stores, _ = fleet
    report = Investigations.of(stores).leaks("batch", Question(since=date(2030, 1, 1)))
    assert report.note == "no check-ins in the window: nothing to count"
    assert all(r.seen == 0 and not r.flagged for r in report.rows)
    flows = Investigations.of(stores).flows(Question(since=date(2030, 1, 1)))
    assert flows.rows == [] and flows.note


def test_flows_lead_from_the_sales_region_to_iran_with_the_time_to_arrive(
    fleet: tuple[Stores, Planned],
) -> None:
    stores, planned = fleet
    flows = Investigations.of(stores).flows(Question()).rows
    iran = next(f for f in flows if f["destination"] == "IR")
    assert iran["sales_region"] == "AE" and iran["restricted"] is True
    assert iran["devices"] == sum(len(v) for v in planned.restricted.values())
    # First check-in at home on day 0, established on day 5 (the fourth day in Iran).
    assert iran["median_days_to_arrival"] == pytest.approx(5.0, abs=0.01)
    home = next(f for f in flows if f["destination"] == "AE")
    assert home["restricted"] is False and home["median_days_to_arrival"] is None
    assert sum(f["share"] for f in flows if f["sales_region"] == "AE") == pytest.approx(1.0)


def test_ranges_point_at_the_carton(tmp_path: Path) -> None:
    rng = random.Random(3)
    carton = leaky_batch(400, 25, rng, carton=True)
    spec = FleetSpec([("D1", "B1", 400, carton, "honest")])
    for db in open_store("sqlite", tmp_path):
        planned = write_fleet(db, spec)
        stores = _with_cache(Stores.on(db), tmp_path / "c.duckdb")
        _activate(stores)
        report = Investigations.of(stores).ranges("B1", Question(), permutations=199)
        best = report.rows[0]
        first = min(carton)
        ids = planned.batches["B1"]
        assert (best.first_position, best.last_position) == (first + 1, first + 25)
        assert best.restricted == 25 and best.devices == 25
        assert best.p_value == pytest.approx(1 / 200)
        assert report.devices == 400 and report.restricted == 25
        assert report.note is None  # a carton: nothing to excuse
        assert best.first.isdigit() and len(best.first) == 15  # an IMEI
        assert len(ids) == 400
        with pytest.raises(UnknownBatch):
            Investigations.of(stores).ranges("nope", Question())


@pytest.mark.parametrize(
    ("countries", "since", "until", "message"),
    [
        (["XX"], None, None, "not a known ISO 3166-1"),
        (["Iran"], None, None, "expected an ISO 3166-1 country"),
        (["QQ-12"], None, None, "QQ is not a known country"),
        ([], "2026-12-01", "2026-11-01", "is before --since"),
        ([], "yesterday", None, "expected a date as YYYY-MM-DD"),
    ],
)
def test_bad_questions_are_refused(
    countries: list[str], since: str | None, until: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_question(countries, since, until)


def test_unknown_grouping_and_background_are_refused(fleet: tuple[Stores, Planned]) -> None:
    stores, _ = fleet
    with pytest.raises(InvalidInput, match="cannot group by 'colour'"):
        Investigations.of(stores).leaks("colour", Question())
    with pytest.raises(InvalidInput, match="unknown background"):
        Investigations.of(stores).leaks("batch", Question(), background="mean")


def test_without_an_active_policy_places_must_be_named(tmp_path: Path) -> None:
    for db in open_store("sqlite", tmp_path):
        stores = _with_cache(Stores.on(db), tmp_path / "c.duckdb")
        with pytest.raises(InvalidInput, match="name the places with --country"):
            Investigations.of(stores).leaks("batch", Question())
        report = Investigations.of(stores).leaks("batch", parse_question(["IR"]))
        assert report.rows == [] and report.note == "no check-ins in the window: nothing to count"


def test_findings_hold_everything_and_a_reproducible_digest(
    fleet: tuple[Stores, Planned], tmp_path: Path
) -> None:
    stores, _ = fleet
    service = Investigations.of(stores, clock=lambda: NOW)
    snapshot = tmp_path / "fleet.csv"
    found = service.findings(Question(), snapshot=snapshot, permutations=99)
    again = service.findings(Question(), permutations=99)
    assert found.snapshot_sha256 == again.snapshot_sha256
    import hashlib

    assert hashlib.sha256(snapshot.read_bytes()).hexdigest() == found.snapshot_sha256
    doc = found.to_json()
    assert set(doc["leaks"]) == {"distributor", "batch", "model", "sales_region"}
    assert {r["batch"] for r in doc["ranges"]} >= {"D25-B0", "D08-B0", "D05-B0"}
    assert doc["places"][0]["country"] == "IR"
    # Another window is another snapshot.
    other = service.findings(Question(until=day(3)), permutations=99)
    assert other.snapshot_sha256 != found.snapshot_sha256
