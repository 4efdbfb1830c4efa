"""Found by mutation testing (docs/test-quality.md, "`domain/campaign.py`"): each test failed on
mutants of the campaign module that every other test let through. They pin the words of the
refusals an operator reads, the boundaries of the four-eyes and halt rules, and what a
transition or a revert keeps."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from regionlock.domain import campaign as cd
from regionlock.domain.campaign import (
    AppealShare,
    ApprovalRule,
    Campaign,
    CampaignAction,
    CampaignState,
    Selection,
    StageHealth,
    revert_state,
)
from regionlock.domain.device import DeviceState, ManualExemption, ManualLock
from regionlock.domain.errors import Conflict, InvalidInput

NOW = datetime(2026, 11, 27, 9, tzinfo=UTC)


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


def refusal(call: object, *args: object, error: type[Exception] = InvalidInput) -> str:
    with pytest.raises(error) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.message  # type: ignore[attr-defined,no-any-return]


# --- what a refusal quotes ----------------------------------------------------------------------


def test_a_refused_term_is_quoted_whole_up_to_40_characters_and_cut_after() -> None:
    forty = "x" * 40
    assert refusal(Selection.parse, [forty]) == f"'{forty}': expected FIELD=VALUE"
    forty_one = "y" * 41
    assert refusal(Selection.parse, [forty_one]) == f"'{'y' * 37}'...: expected FIELD=VALUE"


# --- transitions --------------------------------------------------------------------------------


def test_a_refused_move_says_the_state_and_what_cannot_be_done() -> None:
    def said(state: CampaignState, move: object, *args: object) -> str:
        return refusal(move, campaign(state=state, stage=1), *args, error=Conflict)

    assert said(CampaignState.RUNNING, cd.approve, "apikey:k2") == (
        "campaign cmp_test is running: cannot approve (only a draft is approved)"
    )
    assert said(CampaignState.PAUSED, cd.advance) == (
        "campaign cmp_test is paused: cannot advance (only a campaign waiting between stages"
        " advances)"
    )
    assert said(CampaignState.DRAFT, cd.pause, "x") == "campaign cmp_test is draft: cannot pause"
    assert said(CampaignState.DONE, cd.cancel, "x") == "campaign cmp_test is done: cannot cancel"
    assert said(CampaignState.WAITING, cd.start) == "campaign cmp_test is waiting: cannot start"
    assert said(CampaignState.DONE, cd.finish_stage) == (
        "campaign cmp_test is done: cannot finish a stage"
    )


def test_a_cancelled_campaign_keeps_the_reason_it_was_cancelled_for() -> None:
    for state in (CampaignState.DRAFT, CampaignState.WAITING, CampaignState.PAUSED):
        c = cd.cancel(campaign(state=state, stage=1), "owner complaints")
        assert (c.state, c.state_reason) == (CampaignState.CANCELLED, "owner complaints")


def test_advancing_leaves_no_reason_from_the_wait_behind() -> None:
    # A stored campaign may wait with a reason (what the runner last said about the stage):
    # once the next stage runs, nothing is explained any more.
    waiting = campaign(
        state=CampaignState.WAITING, stage=1, stages=(10.0, 100.0), state_reason="stage 1 done"
    )
    c = cd.advance(waiting)
    assert (c.state, c.stage, c.state_reason) == (CampaignState.RUNNING, 2, None)


# --- the four-eyes rule -------------------------------------------------------------------------


def test_an_approval_rule_takes_its_bounds_and_refuses_beyond_them() -> None:
    for devices, share in ((0, 0.0), (0, 1.0), (10, 0.5)):
        assert ApprovalRule(devices, share) == ApprovalRule(devices=devices, share=share)
    for devices, share in ((-1, 0.5), (10, -0.01), (10, 1.01), (10, 1.5)):
        assert refusal(ApprovalRule, devices, share) == (
            "approval rule: devices >= 0 and 0 <= share <= 1"
        )


def test_approval_is_required_above_either_limit_and_never_for_an_empty_fleet() -> None:
    rule = ApprovalRule(devices=10, share=0.1)
    assert not rule.required(10, 1_000)  # at the device limit: not over it
    assert rule.required(11, 1_000)
    assert rule.required(1, 1)  # a fleet of one device: the whole fleet
    assert not rule.required(1, 10)  # exactly 10 %: not over it
    assert rule.required(2, 10)
    assert not rule.required(0, 0)  # no fleet: no share to judge (and no division by zero)
    assert not rule.required(5, 0)


def test_an_approval_rule_says_why_in_words() -> None:
    rule = ApprovalRule(devices=10_000, share=0.1)
    assert rule.describe(250, 1_000) == (
        "250 devices (25.0% of a fleet of 1000) is over the four-eyes limit of 10000 devices"
        " or 10% of the fleet"
    )
    assert rule.describe(20_000, 0) == (
        "20000 devices is over the four-eyes limit of 10000 devices"
    )


# --- halt rules ---------------------------------------------------------------------------------


def test_a_stage_halts_above_its_appeal_share_not_at_it() -> None:
    rule = AppealShare(0.01)
    assert rule(StageHealth(1, 100, 0, appeals=1)) is None  # exactly 1 %
    assert rule(StageHealth(1, 1_000, 0, appeals=1)) is None  # 0.1 %
    assert rule(StageHealth(3, 100, 0, appeals=2)) == (
        "halted: owners of 2 of the 100 devices of stage 3 appealed (above 1.0%)"
    )
    assert rule(StageHealth(1, 0, 0, appeals=0)) is None  # an empty stage


# --- reverting ----------------------------------------------------------------------------------


def test_reverting_an_exemption_campaign_leaves_the_lock_slot_alone() -> None:
    exempt = campaign(action=CampaignAction.EXEMPT, until=date(2027, 1, 1))
    operator_lock = ManualLock("stolen", "cli:desk", NOW)
    state = cd.apply_to_state(exempt, DeviceState(manual_lock=operator_lock), NOW)
    reverted = revert_state(state, exempt, None)
    assert reverted is not None
    assert (reverted.manual_lock, reverted.exemption) == (operator_lock, None)


def test_reverting_a_lock_campaign_leaves_the_exemption_slot_alone() -> None:
    lock = campaign()
    appeal = ManualExemption("appeal", "cli:desk")
    earlier = ManualLock("stolen", "cli:desk", NOW)
    state = cd.apply_to_state(lock, DeviceState(manual_lock=earlier, exemption=appeal), NOW)
    reverted = revert_state(state, lock, DeviceState(manual_lock=earlier))
    assert reverted is not None
    assert (reverted.manual_lock, reverted.exemption) == (earlier, appeal)
