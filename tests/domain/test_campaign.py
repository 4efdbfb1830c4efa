"""Campaigns as values: selections, stages, the state machine, the action on a state."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from regionlock.domain import campaign as cd
from regionlock.domain.campaign import (
    AppealShare,
    Campaign,
    CampaignAction,
    CampaignState,
    ErrorShare,
    Selection,
    SelectionFacts,
    StageHealth,
    apply_to_state,
    first_halt,
    parse_stages,
    stage_of,
    target_digest,
)
from regionlock.domain.device import DeviceState, ManualExemption, ManualLock
from regionlock.domain.errors import Conflict, InvalidInput

NOW = datetime(2026, 11, 27, 9, tzinfo=UTC)
KNOWN = {"AE", "IR", "SY", "DE", "UA", "CU"}


def campaign(**fields: object) -> Campaign:
    values: dict[str, object] = {
        "id": "cmp_test",
        "name": "leak",
        "action": CampaignAction.LOCK,
        "reason": "batch B7 leaked",
        "selection": Selection(),
        "created_by": "cli:ops",
        "created_at": NOW,
    } | fields
    return Campaign(**values)  # type: ignore[arg-type]


def facts(**fields: object) -> SelectionFacts:
    values: dict[str, object] = {
        "distributor": "D1",
        "batch": "B1",
        "model": "X1",
        "sales_region": "AE",
    } | fields
    return SelectionFacts(**values)  # type: ignore[arg-type]


# --- selection ---------------------------------------------------------------------------------


def test_same_field_is_or_different_fields_are_and() -> None:
    s = Selection.parse(["country=IR", "country=SY", "batch=B7"])
    assert s.filters() == {"batch": ("B7",), "country": ("IR", "SY")}
    assert s.matches(facts(country="IR", batch="B7"))
    assert s.matches(facts(country="SY", batch="B7"))
    assert not s.matches(facts(country="IR", batch="B1"))
    assert not s.matches(facts(country="DE", batch="B7"))
    assert not s.matches(facts(country=None, batch="B7"))
    assert s.describe() == "batch=B7 AND (country=IR OR country=SY)"


@pytest.mark.parametrize(
    ("term", "yes", "no"),
    [
        ("distributor=D7", {"distributor": "D7"}, {"distributor": "D1"}),
        ("batch=B7", {"batch": "B7"}, {"batch": "B1"}),
        ("model=X2", {"model": "X2"}, {"model": "X1"}),
        ("sales_region=eu", {"sales_region": "EU"}, {"sales_region": "AE"}),
        ("country=ir", {"country": "IR"}, {"country": "AE"}),
        ("subdivision=ua-43", {"subdivision": "UA-43"}, {"subdivision": "UA-40"}),
        ("verdict=LOCK", {"verdict": "lock"}, {"verdict": "warn"}),
        ("seen_in=SY", {"seen_in": frozenset({"AE", "SY"})}, {"seen_in": frozenset({"AE"})}),
        ("activated_in=IR", {"activated_in": "IR"}, {"activated_in": None}),
    ],
)
def test_every_field_selects(term: str, yes: dict[str, object], no: dict[str, object]) -> None:
    s = Selection.parse([term], known_countries=KNOWN)
    assert s.matches(facts(**yes))
    assert not s.matches(facts(**no))
    assert Selection.from_json(s.to_json()) == s


def test_no_filter_selects_everything() -> None:
    assert Selection.parse([]).is_everything
    assert Selection().matches(facts())
    assert Selection().describe() == "every device"


@pytest.mark.parametrize(
    ("term", "words"),
    [
        ("colour=red", "unknown field 'colour'"),
        ("country", "expected FIELD=VALUE"),
        ("country=", "empty"),
        ("country=IRN", "alpha-2"),
        ("country=I1", "alpha-2"),
        ("country=ZZ", "not a known"),
        ("seen_in=Iran", "alpha-2"),
        ("activated_in=XX", "not a known"),
        ("subdivision=UA43", "ISO 3166-2"),
        ("subdivision=ZZ-1", "not a known country"),
        ("verdict=block", "allow, warn, lock"),
        ("sales_region=Europe", "EU, EEA or GLOBAL"),
        ("batch=B\x007", "printable"),
        ("model=" + "x" * 201, "at most 200"),
    ],
)
def test_bad_terms_are_refused_with_what_is_wrong(term: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        Selection.parse([term], known_countries=KNOWN)


# --- stages ------------------------------------------------------------------------------------


def test_stages_parse_and_refuse() -> None:
    assert parse_stages("1,10,100") == (1.0, 10.0, 100.0)
    assert parse_stages("0.5, 100") == (0.5, 100.0)
    for bad in ("", "10,5,100", "1,10", "0,100", "1,1,100", "a,100", "1,10,101"):
        with pytest.raises(InvalidInput):
            parse_stages(bad)


def test_stage_of_is_deterministic_salted_and_proportional() -> None:
    ids = [f"dev_{i:08d}" for i in range(10_000)]
    stages = (1.0, 10.0, 100.0)
    first = [stage_of(d, "cmp_a", stages) for d in ids]
    assert first == [stage_of(d, "cmp_a", stages) for d in ids]
    counts = Counter(first)
    assert abs(counts[1] / 10_000 - 0.01) < 0.003
    assert abs(counts[2] / 10_000 - 0.09) < 0.01
    assert counts[1] + counts[2] + counts[3] == 10_000
    # Another campaign draws another canary: not the same devices.
    canary_a = {d for d, s in zip(ids, first, strict=True) if s == 1}
    canary_b = {d for d in ids if stage_of(d, "cmp_b", stages) == 1}
    assert len(canary_a & canary_b) < len(canary_a) // 2
    # The canary is not "the first ids".
    assert max(canary_a) > ids[5000]
    assert all(stage_of(d, "cmp_a", (100.0,)) == 1 for d in ids[:100])


def test_target_digest_is_of_the_sorted_ids() -> None:
    assert target_digest(["a", "b"]) != target_digest(["b", "a"])
    assert len(target_digest([])) == 64


# --- the state machine -------------------------------------------------------------------------


def test_a_staged_campaign_goes_through_its_life() -> None:
    c = campaign(stages=(10.0, 100.0))
    c = cd.start(c)
    assert (c.state, c.stage) == (CampaignState.RUNNING, 1)
    c = cd.finish_stage(c)
    assert c.state is CampaignState.WAITING
    c = cd.advance(replace(c, counts=replace(c.counts, stage_errors=3)))
    assert (c.state, c.stage, c.counts.stage_errors) == (CampaignState.RUNNING, 2, 0)
    c = cd.pause(c, "looking at complaints")
    assert (c.state, c.state_reason) == (CampaignState.PAUSED, "looking at complaints")
    c = cd.start(c)
    assert (c.state, c.stage, c.state_reason) == (CampaignState.RUNNING, 2, None)
    c = cd.finish_stage(c)
    assert c.state is CampaignState.DONE and c.final


@pytest.mark.parametrize(
    ("state", "move"),
    [
        (CampaignState.RUNNING, cd.start),
        (CampaignState.WAITING, cd.start),
        (CampaignState.DONE, cd.start),
        (CampaignState.DRAFT, cd.advance),
        (CampaignState.RUNNING, cd.advance),
        (CampaignState.PAUSED, cd.advance),
        (CampaignState.DRAFT, lambda c: cd.pause(c, "x")),
        (CampaignState.DONE, lambda c: cd.pause(c, "x")),
        (CampaignState.DONE, lambda c: cd.cancel(c, "x")),
        (CampaignState.CANCELLED, lambda c: cd.cancel(c, "x")),
        (CampaignState.CANCELLED, cd.start),
        (CampaignState.WAITING, cd.finish_stage),
        (CampaignState.RUNNING, lambda c: cd.approve(c, "someone")),
    ],
)
def test_illegal_moves_are_conflicts(state: CampaignState, move: object) -> None:
    c = campaign(state=state, stage=1)
    with pytest.raises(Conflict, match="cannot"):
        move(c)  # type: ignore[operator]


def test_cancel_from_any_live_state_and_approval_by_another() -> None:
    for state in (CampaignState.DRAFT, CampaignState.RUNNING, CampaignState.PAUSED):
        assert cd.cancel(campaign(state=state), "x").state is CampaignState.CANCELLED
    with pytest.raises(Conflict, match="someone else"):
        cd.approve(campaign(), "cli:ops")
    assert cd.approve(campaign(), "apikey:k2").approved_by == "apikey:k2"


def test_definitions_that_make_no_sense_are_refused() -> None:
    with pytest.raises(InvalidInput, match="exemptions only"):
        campaign(until=date(2027, 1, 1))
    with pytest.raises(InvalidInput, match="locks only"):
        campaign(action=CampaignAction.UNLOCK, message="hello")
    with pytest.raises(InvalidInput, match="reason"):
        campaign(reason=" ")
    with pytest.raises(InvalidInput, match="name"):
        campaign(name="")


# --- applying ----------------------------------------------------------------------------------


def test_each_action_on_a_state() -> None:
    operator_lock = ManualLock("stolen", "cli:desk", NOW)
    state = DeviceState(manual_lock=operator_lock, exemption=ManualExemption("appeal", "x"))
    lock = apply_to_state(campaign(message="Call us", contact="+1 555"), state, NOW)
    assert lock.manual_lock == ManualLock(
        "batch B7 leaked", "cli:ops", NOW, "Call us", "+1 555", campaign="cmp_test"
    )
    assert lock.exemption == state.exemption
    unlocked = apply_to_state(campaign(action=CampaignAction.UNLOCK), state, NOW)
    assert unlocked.manual_lock is None and unlocked.exemption == state.exemption
    exempt = campaign(action=CampaignAction.EXEMPT, until=date(2027, 1, 1))
    ex = apply_to_state(exempt, DeviceState(), NOW).exemption
    assert ex == ManualExemption("batch B7 leaked", "cli:ops", date(2027, 1, 1), "cmp_test")
    cleared = apply_to_state(campaign(action=CampaignAction.CLEAR), state, NOW)
    assert cleared.manual_lock is None and cleared.exemption is None
    with pytest.raises(InvalidInput, match="has passed"):
        apply_to_state(exempt, DeviceState(), datetime(2027, 1, 1, tzinfo=UTC))


def test_halt_rules() -> None:
    assert ErrorShare()(StageHealth(1, 100, 5)) is None
    assert "6 of the 100" in (ErrorShare()(StageHealth(1, 100, 6)) or "")
    assert ErrorShare(0.5)(StageHealth(1, 100, 6)) is None
    assert AppealShare(0.01)(StageHealth(1, 100, 0, appeals=2)) is not None
    rules = (ErrorShare(), AppealShare())
    assert first_halt(rules, StageHealth(1, 0, 0)) is None
    assert "appealed" in (first_halt(rules, StageHealth(2, 100, 0, appeals=5)) or "")
