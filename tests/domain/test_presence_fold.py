"""Folding the days of presence of deleted check-in rows into a device state (retention)."""

from __future__ import annotations

from datetime import date

from regionlock.domain.device import DeviceState, checkin_presence

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


def test_a_stored_checkin_counts_as_presence_as_a_live_one_does() -> None:
    assert checkin_presence("IR", "IR-23", (), ()) == {"IR", "IR-23"}
    assert checkin_presence("UA", None, ("UA-43", "UA-40"), ()) == {"UA", "UA-40|UA-43"}
    assert checkin_presence("IR", "IR-23", (), ("roaming",)) == {"IR", "IR-23"}
    assert checkin_presence("IR", None, (), ("no_presence_evidence",)) == frozenset()
    assert checkin_presence("IR", None, (), ("low_confidence",)) == frozenset()
    assert checkin_presence(None, None, (), ()) == frozenset()


def test_folding_adds_only_missing_codes_from_the_oldest_kept_day_on() -> None:
    state = DeviceState(presence={D2: frozenset({"AE"})})
    days = {D1: frozenset({"IR"}), D2: frozenset({"AE", "AE-DU"}), D3: frozenset({"IR"})}
    folded = state.fold_presence(days, oldest=D2)
    assert dict(folded.presence) == {D2: {"AE", "AE-DU"}, D3: {"IR"}}
    assert folded.fold_presence(days, oldest=D2) == folded
    # Nothing to add: the very same state back.
    assert folded.fold_presence({D2: frozenset({"AE"})}, oldest=D1) is folded
