"""Found by mutation testing of the functions changed since 33687c7 in `decision.py`
(`decide`, `languages_at`) and `device.py` (`checkin_presence`, `DeviceState.fold_presence`)
(docs/test-quality.md): each test failed on a mutant that every other test let live."""

from __future__ import annotations

from datetime import date

import pytest
from test_decision import BOTH_CANDIDATES as CRIMEA_OR_SEVASTOPOL
from test_decision import CRIMEA, NOW, SEVASTOPOL

from regionlock.domain.decision import PresenceHistory, decide, languages_at
from regionlock.domain.device import (
    DeviceState,
    checkin_presence,
    counts_as_presence,
    presence_codes,
)
from regionlock.domain.location import LocationEstimate
from regionlock.domain.messages import Message
from regionlock.domain.policy import Action, DeviceFacts, Policy, Restriction


def test_a_place_narrowed_to_candidates_speaks_the_candidates_languages_first() -> None:
    # A network that serves only Crimea and Sevastopol: the place narrowed to both.
    # UA-40 and UA-43 read Russian first, then Ukrainian; Ukraine as a whole Ukrainian.
    assert languages_at(CRIMEA_OR_SEVASTOPOL) == ("ru", "uk")
    assert languages_at(LocationEstimate("UA", "UA-14", 0.9, (), ())) == ("uk", "ru")
    assert languages_at(LocationEstimate("UA", None, 0.9, (), ())) == ("uk",)
    assert languages_at(LocationEstimate(None, None, 0.0, (), ())) == ()


def test_a_lock_message_is_shown_in_the_candidates_language_to_a_device_with_no_locale() -> None:
    rule = Restriction("crimea", (CRIMEA, SEVASTOPOL), Action.WARN)
    message = Message(
        (("en", "Restricted here."), ("uk", "Обмежено тут."), ("ru", "Здесь ограничено."))
    )
    policy = Policy("p", "1", "", (rule,), message=message)
    v = decide(DeviceFacts("d"), CRIMEA_OR_SEVASTOPOL, PresenceHistory(), policy, NOW)
    assert (v.action, v.language, v.message) == (Action.WARN, "ru", "Здесь ограничено.")


PLACES = [
    LocationEstimate("FR", None, 0.9, (), ()),  # a country alone: no candidates to join
    LocationEstimate("IR", "IR-23", 0.9, (), ("roaming",)),
    CRIMEA_OR_SEVASTOPOL,
    LocationEstimate("IR", None, 0.9, (), ("no_presence_evidence",)),
    LocationEstimate("IR", "IR-23", 0.5, (), ("low_confidence",)),
    LocationEstimate(None, None, 0.0, (), ()),
]


@pytest.mark.parametrize("where", PLACES)
def test_a_stored_checkin_adds_exactly_the_codes_the_live_one_added(
    where: LocationEstimate,
) -> None:
    # Retention folds the deleted rows' days into the state: they must be the very codes the
    # check-in recorded when it was live (`after_checkin`), no more.
    live = frozenset(presence_codes(where)) if counts_as_presence(where) else frozenset()
    assert (
        checkin_presence(where.country, where.subdivision, where.subdivisions, where.flags) == live
    )


def test_folding_into_a_day_already_recorded_keeps_the_codes_it_had() -> None:
    day = date(2026, 11, 1)
    state = DeviceState(presence={day: frozenset({"UA", "UA-14"})})
    folded = state.fold_presence({day: frozenset({"UA", "UA-43"})}, oldest=day)
    assert dict(folded.presence) == {day: {"UA", "UA-14", "UA-43"}}
