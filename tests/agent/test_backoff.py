"""The agent honours Retry-After (429 rate-limited, 503 busy or store unavailable): it signs
no check-in before then, and no answer can silence it for more than an hour."""

from __future__ import annotations

import pytest
from test_agent import T0, ManualClock, Service, make_agent

from regionlock.agent.client import CheckinFailed, handle_response
from regionlock.agent.core import MAX_RETRY_AFTER_S, BackingOff


@pytest.mark.parametrize(
    ("status", "slug"), [(429, "rate-limited"), (503, "service-busy"), (503, "store-unavailable")]
)
def test_retry_after_is_honoured(status: int, slug: str) -> None:
    clock = ManualClock(T0)
    agent = make_agent(Service(), clock)
    agent.begin_checkin({})
    body = {"type": f"https://regionlock.dev/problems/{slug}", "detail": "later"}
    with pytest.raises(CheckinFailed):
        handle_response(agent, status, body, may_retry=True, retry_after="120")
    with pytest.raises(BackingOff) as info:
        agent.begin_checkin({})
    assert 0 < info.value.wait_s <= 120
    clock.advance(seconds=121)
    assert agent.begin_checkin({})  # signed again once the wait is over


def test_a_forged_retry_after_cannot_silence_a_device_for_long() -> None:
    clock = ManualClock(T0)
    agent = make_agent(Service(), clock)
    agent.begin_checkin({})
    with pytest.raises(CheckinFailed):
        handle_response(agent, 429, {}, may_retry=True, retry_after=str(10**9))
    clock.advance(seconds=MAX_RETRY_AFTER_S + 1)
    assert agent.begin_checkin({})  # an hour at most: the answer is not signed
    agent.abandon_checkin()
    with pytest.raises(CheckinFailed):
        handle_response(agent, 503, {}, may_retry=True, retry_after="Wed, 21 Oct 2015")
    with pytest.raises(BackingOff):  # unreadable: a minute
        agent.begin_checkin({})
