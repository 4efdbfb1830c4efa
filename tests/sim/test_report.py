"""The simulator's judgement: wrong locks and misses counted against ground truth."""

from __future__ import annotations

from regionlock.sim.driver import Outcome
from regionlock.sim.fleet import DayPlan, FleetSpec, Profile, SimDevice, generate_fleet
from regionlock.sim.report import percentile, summarize, summarize_lift

FLEET = generate_fleet(FleetSpec(devices=600, seed=7, days=3))


def first(profile: Profile, skip: int = 0) -> SimDevice:
    return [d for d in FLEET if d.profile is profile][skip]


def outcome(
    d: SimDevice, day: int, where: str, action: str, *reasons: str, restricted: bool = False
) -> Outcome:
    plan = DayPlan(where, None, restricted, {})
    return Outcome(d.index, day, plan, action, action, reasons, where, None, 0.01 * (day + 1))


def test_wrong_locks_misses_and_grace_are_told_apart() -> None:
    traveller, vpn = first(Profile.TRAVELLER), first(Profile.VPN_USER)
    caught, missed, visiting = (first(Profile.DIVERTED, i) for i in range(3))
    outcomes = [
        outcome(traveller, 1, "IR", "warn", "presence.grace", restricted=True),
        outcome(traveller, 2, "IR", "lock", "presence.established", restricted=True),
        outcome(vpn, 0, "DE", "allow"),
        outcome(caught, 0, "IR", "lock", "presence.first_activation", restricted=True),
        outcome(missed, 0, "SY", "warn", "confidence.low", restricted=True),
        outcome(visiting, 0, "AE", "allow"),
        outcome(visiting, 1, "SD", "warn", "presence.grace", restricted=True),
    ]
    s = summarize(FLEET, outcomes, wall_s=2.0)
    assert s.wrongly_locked == [f"traveller {traveller.imei}"]
    assert (s.travellers_visited, s.travellers_warned) == (1, 1)
    assert (s.vpn_users_locked, s.diverted_seen_there, s.diverted_locked) == (0, 3, 1)
    assert len(s.diverted_missed) == 1 and missed.imei in s.diverted_missed[0]
    assert "confidence.low" in s.diverted_missed[0]
    assert len(s.diverted_in_grace) == 1 and visiting.imei in s.diverted_in_grace[0]
    diverted = sum(1 for d in FLEET if d.profile is Profile.DIVERTED)
    assert s.diverted_never_seen_there == diverted - 3
    assert s.rate == len(outcomes) / 2.0
    assert s.verdicts_by_country["IR"] == {"warn": 1, "lock": 2}


def test_the_lift_compares_each_device_with_its_last_state() -> None:
    a, b, c = (first(Profile.DIVERTED, i) for i in range(3))
    before = [
        outcome(a, 0, "SD", "lock", restricted=True),
        outcome(b, 0, "IR", "lock", restricted=True),
        outcome(c, 0, "IR", "warn", restricted=True),
    ]
    after = [
        outcome(a, 1, "SD", "allow", "policy.no_match", restricted=True),
        outcome(b, 1, "IR", "lock", "jurisdiction.restricted", restricted=True),
        outcome(c, 1, "IR", "lock", restricted=True),
    ]
    lift = summarize_lift(FLEET, before, after)
    assert (lift.locked_before, lift.checked_in_after) == (2, 2)
    assert dict(lift.unlocked) == {"SD": 1} and lift.unlocked_diverted == 1
    assert dict(lift.still_locked) == {"IR: jurisdiction.restricted": 1}
    assert lift.by_campaign == 0 and lift.wrongly_locked == []


def test_the_lift_tells_the_laws_locks_from_the_campaigns() -> None:
    law, both, campaign_only, unlocked = (first(Profile.DIVERTED, i) for i in range(4))
    resident, traveller = first(Profile.RESIDENT), first(Profile.TRAVELLER)
    held = ("jurisdiction.restricted", "presence.first_activation")
    before = [
        outcome(d, 0, where, "lock", *held, restricted=True)
        for d, where in ((law, "KP"), (both, "IR"), (campaign_only, "SY"), (unlocked, "SD"))
    ] + [outcome(resident, 0, "TR", "allow")]
    after = [
        outcome(law, 1, "KP", "lock", *held, restricted=True),
        outcome(both, 1, "IR", "lock", "campaign.lock", *held, restricted=True),
        outcome(campaign_only, 1, "SY", "lock", "campaign.lock", "policy.no_match"),
        outcome(unlocked, 1, "SD", "allow", "policy.no_match"),
        # The law would only warn (a warning step first): the campaign alone holds it.
        outcome(traveller, 1, "SY", "lock", "campaign.lock", *held, "escalation.warning"),
        outcome(resident, 1, "TR", "lock", "campaign.lock", "policy.no_match"),
    ]
    lift = summarize_lift(FLEET, before, after)
    assert (lift.locked_before, lift.checked_in_after) == (4, 4)
    assert dict(lift.still_locked) == {"KP: jurisdiction.restricted, presence.first_activation": 1}
    assert dict(lift.campaign_and_law) == {"IR": 1}
    assert dict(lift.campaign_only) == {"SY": 2, "TR": 1} and lift.by_campaign == 4
    assert dict(lift.unlocked) == {"SD": 1} and lift.unlocked_diverted == 1
    # Ground truth: a campaign's lock on anything but a diverted device is a wrong lock.
    wrong = [f"traveller {traveller.imei}", f"resident {resident.imei}"]
    assert lift.campaign_not_diverted == wrong and lift.wrongly_locked == wrong


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile([], 99)) == (50, 99, 0)
