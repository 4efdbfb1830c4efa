"""The reference agent against hand-made verdicts: every refusal, offline leases, unlock codes.

The service side is played by signing claims directly with a service key, so each test controls
exactly what the device receives. `tests/e2e/test_demo.py` runs the agent against the server.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from regionlock.agent import Agent, AgentState, FileStore, UnlockRefused, VerdictRejected
from regionlock.domain.policy import Action
from regionlock.signing import (
    VERDICT_TYP,
    BadSignature,
    ClaimMismatch,
    MalformedToken,
    SigningKey,
    TokenError,
    TokenExpired,
    UnknownKey,
    jws,
    verify_checkin,
)
from regionlock.signing.unlock import service_secret, unlock_code

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
DAY = 86_400
LIFETIME = timedelta(days=366)


class ManualClock:
    """A device clock the user (or the test) can set anywhere, backwards included."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> None:
        self.at += timedelta(**kw)


class Service:
    """Plays the service: answers a check-in token with claims it signs."""

    def __init__(self) -> None:
        self.key = SigningKey.generate(T0)
        self.unlock = X25519PrivateKey.generate()
        self.jwks = {"keys": [self.key.public_jwk()]}

    def answer(self, agent: Agent, checkin: str, **overrides: Any) -> str:
        req = verify_checkin(
            checkin,
            agent.key.public_bytes,
            now=datetime.fromtimestamp(jws_payload(checkin)["iat"], UTC),
        )
        iat = overrides.pop("iat", req.iat)
        key = overrides.pop("key", self.key)
        claims: dict[str, Any] = {
            "iss": "regionlock-test",
            "sub": "dev_test",
            "verdict": "allow",
            "reasons": [],
            "message": "",
            "contact": "support@example.com",
            "policy": {"id": "p", "version": "1"},
            "location": {"country": "FR", "subdivision": None},
            "nonce": req.nonce,
            "counter": req.counter,
            "iat": iat,
            "exp": iat + 7 * DAY,
            "offline": {"action": "lock", "lock_after_days": 30, "warn_days": 7},
            "ver": 1,
        }
        claims.update(overrides)
        return jws.sign(claims, key, VERDICT_TYP)


def jws_payload(token: str) -> dict[str, Any]:
    import json

    return dict(json.loads(jws.b64url_decode(token.split(".")[1])))


@pytest.fixture
def service() -> Service:
    return Service()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def make_agent(service: Service, clock: ManualClock, store: Any = None) -> Agent:
    state = AgentState(
        kid="353918050000005",
        seed=secrets.token_bytes(32),
        jwks=service.jwks,
        issuer="regionlock-test",
        unlock_key=service.unlock.public_key().public_bytes_raw(),
    )
    return Agent(state, clock, store)


@pytest.fixture
def agent(service: Service, clock: ManualClock) -> Agent:
    return make_agent(service, clock)


def round_trip(agent: Agent, service: Service, **overrides: Any) -> Any:
    return agent.accept(service.answer(agent, agent.begin_checkin({}), **overrides))


def test_checkins_carry_fresh_nonces_and_rising_counters(agent: Agent, service: Service) -> None:
    first = jws_payload(agent.begin_checkin({"timezone": "Europe/Paris"}))
    agent.abandon_checkin()
    second = jws_payload(agent.begin_checkin({}))
    assert second["counter"] == first["counter"] + 1
    assert first["nonce"] != second["nonce"] and len(first["nonce"]) >= 22
    assert first["signals"] == {"timezone": "Europe/Paris"}


def test_a_valid_verdict_is_applied_and_the_device_learns_its_id(
    agent: Agent, service: Service
) -> None:
    got = round_trip(agent, service, verdict="warn", message="Roaming in a restricted place")
    assert got.action is Action.WARN and got.message == "Roaming in a restricted place"
    assert agent.state.device_id == "dev_test"
    # Once learnt, the id is what the device names itself with and requires in verdicts.
    assert jws.peek_header(agent.begin_checkin({}))["kid"] == "dev_test"


def test_lock_shows_message_and_contact(agent: Agent, service: Service) -> None:
    got = round_trip(agent, service, verdict="lock", message="Not for this territory")
    assert (got.action, got.message, got.contact) == (
        Action.LOCK,
        "Not for this territory",
        "support@example.com",
    )


def held(agent: Agent) -> str | None:
    return agent.state.token


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        ("forged", BadSignature),
        ("unknown_key", UnknownKey),
        ("other_device", ClaimMismatch),
        ("other_issuer", ClaimMismatch),
        ("wrong_counter", ClaimMismatch),
    ],
)
def test_forged_or_misdirected_verdicts_are_refused(
    agent: Agent, service: Service, tamper: str, error: type[TokenError]
) -> None:
    round_trip(agent, service, verdict="lock")
    before = held(agent)
    checkin = agent.begin_checkin({})
    if tamper == "forged":
        # Right kid, wrong key: someone signing "allow" without the service's key.
        good = service.answer(agent, checkin, verdict="allow", sub="dev_test")
        head, payload, _ = good.split(".")
        other = SigningKey.generate(T0)
        token = f"{head}.{payload}." + jws.b64url_encode(other.sign(f"{head}.{payload}".encode()))
    elif tamper == "unknown_key":
        token = service.answer(agent, checkin, key=SigningKey.generate(T0), sub="dev_test")
    elif tamper == "other_device":
        token = service.answer(agent, checkin, sub="dev_someone_else")
    elif tamper == "other_issuer":
        token = service.answer(agent, checkin, sub="dev_test", iss="evil")
    else:
        token = service.answer(agent, checkin, sub="dev_test", counter=agent.state.counter + 5)
    with pytest.raises(error):
        agent.accept(token)
    assert held(agent) == before
    assert agent.enforcement().action is Action.LOCK
    assert agent.state.rejected  # the refusal is remembered for support


def test_a_replayed_verdict_is_refused(agent: Agent, service: Service) -> None:
    old_allow = service.answer(agent, agent.begin_checkin({}), verdict="allow")
    agent.accept(old_allow)
    round_trip(agent, service, verdict="lock", sub="dev_test")
    agent.begin_checkin({})
    with pytest.raises(ClaimMismatch, match="nonce"):
        agent.accept(old_allow)  # an old allow cannot undo the newer lock
    assert agent.enforcement().action is Action.LOCK


def test_a_verdict_without_a_checkin_in_flight_is_refused(agent: Agent, service: Service) -> None:
    token = service.answer(agent, agent.begin_checkin({}))
    agent.abandon_checkin()
    with pytest.raises(VerdictRejected, match="no check-in"):
        agent.accept(token)


def test_a_fresh_verdict_counts_even_if_the_service_clock_stepped_back(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    """Ordering comes from the nonce and counter of the check-in in flight, not from iat: a
    service whose clock was a week ahead and then corrected must still be able to unlock."""
    round_trip(agent, service, verdict="lock", sub="dev_test", iat=int(T0.timestamp()) + 7 * DAY)
    clock.advance(seconds=10)
    got = round_trip(agent, service, verdict="allow", sub="dev_test")
    assert got.action is Action.ALLOW


def test_expired_and_held_back_verdicts_are_refused(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    checkin = agent.begin_checkin({})
    sent = jws_payload(checkin)["iat"]
    short = service.answer(agent, checkin, iat=sent, exp=sent + 5)
    clock.advance(seconds=10)  # the lease ended on the way
    with pytest.raises(TokenExpired):
        agent.accept(short)
    # A true answer held back for a day: refused, or it would wind the device's time back.
    held_back = service.answer(agent, checkin, iat=sent)
    clock.advance(days=1)
    with pytest.raises(VerdictRejected, match="held back"):
        agent.accept(held_back)
    assert agent.state.token is None
    fresh = agent.begin_checkin({})
    assert agent.accept(service.answer(agent, fresh)).action is Action.ALLOW


def test_lease_expiry_follows_the_offline_rule(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    round_trip(agent, service, verdict="allow")  # lease 7 days; lock 30 days after, 7 warned
    clock.advance(days=6, hours=23)
    assert agent.enforcement().action is Action.ALLOW
    clock.advance(days=1)  # lease over: 23 quiet days before warnings start
    got = agent.enforcement()
    assert (got.action, got.reason) == (Action.ALLOW, "verdict")
    assert got.changes_at == jws_payload(held(agent) or "")["exp"] + 23 * DAY
    clock.advance(days=23)
    got = agent.enforcement()
    assert (got.action, got.reason) == (Action.WARN, "offline.lock")
    assert "locks on" in got.message
    clock.advance(days=7)
    assert agent.enforcement().action is Action.LOCK
    # Contact again: a fresh verdict replaces the offline lock.
    assert round_trip(agent, service, verdict="allow", sub="dev_test").action is Action.ALLOW


@pytest.mark.parametrize(
    ("offline", "verdict", "after"),
    [
        ({"action": "keep", "lock_after_days": 0, "warn_days": 0}, "allow", Action.ALLOW),
        ({"action": "warn", "lock_after_days": 0, "warn_days": 0}, "allow", Action.WARN),
        ({"action": "warn", "lock_after_days": 0, "warn_days": 0}, "lock", Action.LOCK),
        ({"action": "keep", "lock_after_days": 0, "warn_days": 0}, "lock", Action.LOCK),
    ],
)
def test_offline_rules_are_never_less_strict_than_the_verdict(
    agent: Agent,
    service: Service,
    clock: ManualClock,
    offline: dict[str, Any],
    verdict: str,
    after: Action,
) -> None:
    round_trip(agent, service, verdict=verdict, offline=offline)
    clock.advance(days=60)
    assert agent.enforcement().action is after


def test_setting_the_clock_back_before_the_lease_ends_does_not_extend_it(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    round_trip(agent, service, verdict="allow")  # lease 7 days, then 23 quiet days, 7 warned
    clock.at = T0 - timedelta(days=365)  # set back at once, while the lease runs
    assert agent.enforcement().action is Action.ALLOW  # the device, running, sees it
    for _ in range(8):  # eight real days pass, the device checking now and then
        clock.advance(days=1)
        got = agent.enforcement()
    assert got.lease_expires is not None and agent.now() > got.lease_expires
    for _ in range(30):
        clock.advance(days=1)
        got = agent.enforcement()
    assert got.action is Action.LOCK  # 38 real days: the offline lock


def test_setting_the_clock_back_does_not_extend_a_lease(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    round_trip(
        agent,
        service,
        verdict="allow",
        offline={"action": "lock", "lock_after_days": 2, "warn_days": 1},
    )
    clock.advance(days=10)
    assert agent.enforcement().action is Action.LOCK
    clock.at = T0  # the user sets the clock back to when the lease was fresh
    assert agent.enforcement().action is Action.LOCK
    clock.at = T0 - timedelta(days=365)
    assert agent.enforcement().action is Action.LOCK


def test_a_clock_ahead_is_corrected_by_the_next_fresh_verdict(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    round_trip(agent, service, verdict="allow")
    clock.advance(days=400)  # the user set the clock a year ahead: the lease looks over
    assert agent.enforcement().action is Action.LOCK
    agent.sync_clock(int(T0.timestamp()))  # the service said clock-skew with its time
    checkin = agent.begin_checkin({})
    assert abs(jws_payload(checkin)["iat"] - T0.timestamp()) < 5
    assert agent.accept(service.answer(agent, checkin, sub="dev_test")).action is Action.ALLOW
    assert abs(agent.now() - T0.timestamp()) < 5  # the signed time put it right


def test_an_unsigned_clock_skew_answer_never_moves_enforcement(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    round_trip(agent, service, verdict="allow")
    before = agent.now()
    agent.sync_clock(before + 60 * DAY)  # forged: would end the lease and lock
    assert agent.enforcement().action is Action.ALLOW and agent.now() == before
    agent.sync_clock(before - 200 * DAY)  # forged: would freeze the lease
    clock.advance(days=60)
    assert agent.enforcement().action is Action.LOCK


def lock_it(agent: Agent, service: Service) -> None:
    round_trip(agent, service, verdict="lock", sub=agent.state.device_id or "dev_test")


def code_for(service: Service, agent: Agent, challenge: str) -> str:
    return unlock_code(service_secret(service.unlock, agent.key.public_bytes), challenge)


def test_offline_unlock_accepts_the_right_code_once(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    lock_it(agent, service)
    challenge = agent.challenge()
    assert len(challenge) == 9 and challenge == agent.challenge()  # stable until used
    code = code_for(service, agent, challenge)
    assert len(code) == 11  # 12345-67890: read over the phone
    got = agent.enter_unlock_code(code)
    assert (got.action, got.reason) == (Action.ALLOW, "support-unlock")
    # Spent: the same code neither works again nor for the next challenge.
    with pytest.raises(UnlockRefused, match="no unlock challenge"):
        agent.enter_unlock_code(code)
    lock_it(agent, service)
    assert agent.enforcement().action is Action.LOCK  # the next verdict decides again
    second = agent.challenge()
    assert second != challenge
    with pytest.raises(UnlockRefused, match="wrong code"):
        agent.enter_unlock_code(code)


def test_offline_unlock_refuses_wrong_and_other_devices_codes(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    other = make_agent(service, clock)
    lock_it(agent, service)
    lock_it(other, service)
    challenge = agent.challenge()
    with pytest.raises(UnlockRefused, match="4 tries left"):
        agent.enter_unlock_code(code_for(service, other, challenge))  # other device's code
    for left in (3, 2, 1):
        with pytest.raises(UnlockRefused, match=f"{left} tries left"):
            agent.enter_unlock_code("00000-00000")
    with pytest.raises(UnlockRefused, match="discarded"):
        agent.enter_unlock_code("00000-00001")
    # The right code for the discarded challenge no longer works, and asking again must wait.
    with pytest.raises(UnlockRefused, match="too many"):
        agent.enter_unlock_code(code_for(service, agent, challenge))
    with pytest.raises(UnlockRefused, match="too many"):
        agent.challenge()
    clock.advance(seconds=61)
    fresh = agent.challenge()
    assert agent.enforcement().action is Action.LOCK
    assert agent.enter_unlock_code(code_for(service, agent, fresh)).action is Action.ALLOW


def test_support_unlock_lasts_until_the_next_verdict(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    lock_it(agent, service)
    agent.enter_unlock_code(code_for(service, agent, agent.challenge()))
    clock.advance(days=6)
    assert agent.enforcement().action is Action.ALLOW
    round_trip(agent, service, verdict="lock", sub="dev_test")
    assert agent.enforcement().action is Action.LOCK


@pytest.mark.parametrize("offline", ["keep", "warn", "lock"])
def test_support_unlock_ends_after_seven_days_without_contact(
    agent: Agent, service: Service, clock: ManualClock, offline: str
) -> None:
    rule = {"action": offline, "lock_after_days": 30, "warn_days": 7}
    round_trip(agent, service, verdict="lock", offline=rule)
    agent.enter_unlock_code(code_for(service, agent, agent.challenge()))
    clock.advance(days=6, hours=23)
    assert agent.enforcement().reason == "support-unlock"
    clock.advance(hours=2)
    assert agent.enforcement().action is Action.LOCK  # the held lock applies again


def test_the_delay_after_exhausted_challenges_stops_at_a_day(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    lock_it(agent, service)
    for _ in range(40):
        agent.challenge()
        for _ in range(5):
            with pytest.raises(UnlockRefused):
                agent.enter_unlock_code("00000-00000")
        assert agent.state.lockout_until - agent.now() <= 86_400
        clock.advance(days=1, seconds=1)


def test_a_try_is_counted_before_the_code_is_compared(agent: Agent, service: Service) -> None:
    """Cutting the power between comparing and saving must not give a free try."""
    saved: list[int] = []

    class Recording:
        def save(self, state: AgentState) -> None:
            saved.append(state.attempts)

    lock_it(agent, service)
    challenge = agent.challenge()
    agent.store = Recording()
    agent.enter_unlock_code(code_for(service, agent, challenge))
    assert saved[0] == 1  # the try was on record before the (right) code was checked


def test_a_locked_device_whose_state_was_damaged_can_still_be_unlocked_by_support(
    agent: Agent, service: Service
) -> None:
    round_trip(agent, service, verdict="allow")
    agent.state.token = None  # someone deleted the stored verdict to get rid of a lock
    got = agent.enforcement()
    assert (got.action, got.reason) == (Action.LOCK, "tampered")
    assert agent.enter_unlock_code(code_for(service, agent, agent.challenge())).action is (
        Action.ALLOW
    )


def test_an_unlocked_device_has_no_challenge(agent: Agent, service: Service) -> None:
    round_trip(agent, service, verdict="allow")
    with pytest.raises(UnlockRefused, match="not locked"):
        agent.challenge()


def test_state_survives_a_restart_and_is_rechecked(
    service: Service, clock: ManualClock, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "agent.json")
    agent = make_agent(service, clock, store)
    lock_it(agent, service)
    reloaded = Agent(store.load(), clock, store)
    assert reloaded.enforcement().action is Action.LOCK
    assert reloaded.state.counter == agent.state.counter
    assert (tmp_path / "agent.json").stat().st_mode & 0o777 == 0o600
    # A token edited on disk fails the signature check on the next start.
    state = store.load()
    head, _, sig = (state.token or "").split(".")
    claims = jws_payload(state.token or "")
    claims["verdict"] = "allow"
    state.token = f"{head}.{jws.b64url_encode(jws.canonical_json(claims))}.{sig}"
    tampered = Agent(state, clock)
    got = tampered.enforcement()
    assert (got.action, got.reason) == (Action.LOCK, "tampered")  # editing is no unlock
    assert round_trip(tampered, service, sub="dev_test").action is Action.ALLOW


def test_a_verdict_under_an_unknown_key_asks_for_the_jwks_once(
    agent: Agent, service: Service
) -> None:
    from regionlock.agent.client import RefreshJwks, accept_after_refresh, handle_response

    round_trip(agent, service, verdict="allow")
    pinned = agent.state.jwks
    rotated = SigningKey.generate(T0)
    token = service.answer(agent, agent.begin_checkin({}), key=rotated)
    with pytest.raises(RefreshJwks):
        handle_response(agent, 200, {"token": token}, may_retry=True)
    # A JWKS that still lacks the key (or is garbage): refused, no second refresh, and the
    # keys pinned before stay pinned, so the verdict held still verifies.
    for stale in ({"keys": []}, "garbage", {"keys": "x"}):
        with pytest.raises(TokenError):
            accept_after_refresh(agent, stale, token)
        assert agent.state.jwks == pinned and agent.state.pending_nonce is None
        assert agent.enforcement().action is Action.ALLOW
        token = service.answer(agent, agent.begin_checkin({}), key=rotated, sub="dev_test")
    got = accept_after_refresh(agent, {"keys": [rotated.public_jwk()]}, token)
    assert got.action is Action.ALLOW
    # The set fetched again replaces the pinned one: a key the service deleted (here the old
    # one, as after a compromise) is no longer trusted; the verdict held is the rotated key's.
    assert {k["kid"] for k in agent.state.jwks["keys"]} == {rotated.kid}
    with pytest.raises(TokenError):
        old_key_token = service.answer(agent, agent.begin_checkin({}), sub="dev_test")
        agent.accept(old_key_token)
    assert agent.enforcement().action is Action.ALLOW


def test_garbage_answers_are_refusals_not_crashes(agent: Agent) -> None:
    from regionlock.agent.client import CheckinFailed, handle_response

    for status, body in ((200, [1, 2]), (200, {"token": 7}), (502, "oops"), (200, None)):
        agent.begin_checkin({})
        with pytest.raises(CheckinFailed):
            handle_response(agent, status, body, may_retry=True)
        assert agent.state.pending_nonce is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("counter", "7"), ("token", 5), ("trusted_time", None), ("seed", "c2hvcnQ"), ("jwks", [])],
)
def test_a_damaged_state_file_is_refused_with_a_clear_error(
    service: Service, clock: ManualClock, tmp_path: Path, field: str, value: object
) -> None:
    import json

    from regionlock.domain.errors import InvalidInput

    store = FileStore(tmp_path / "agent.json")
    make_agent(service, clock, store).begin_checkin({})
    data = json.loads((tmp_path / "agent.json").read_text())
    data[field] = value
    (tmp_path / "agent.json").write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match="damaged"):
        store.load()


def test_an_exemption_in_the_verdict_holds_offline_until_its_end(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    """An appeal granted for 60 days: the device stays usable offline past its lease and its
    offline lock, until the exemption's end; then the offline rule applies as from the lease's
    end (here: locked at once, 60 days being past lease + 30)."""
    until = int(T0.timestamp()) + 60 * DAY
    round_trip(agent, service, verdict="allow", exemption={"until": until})
    clock.advance(days=45)  # lease (7 days) and offline lock (30 more) both past
    got = agent.enforcement()
    assert (got.action, got.reason, got.changes_at) == (Action.ALLOW, "offline.exempt", until)
    clock.advance(days=15)
    got = agent.enforcement()
    assert (got.action, got.reason) == (Action.LOCK, "offline.lock")


def test_an_exemption_for_good_never_ends_offline_and_never_lifts_a_lock(
    agent: Agent, service: Service, clock: ManualClock
) -> None:
    round_trip(agent, service, verdict="allow", exemption={"until": None})
    clock.advance(days=400)
    assert agent.enforcement().reason == "offline.exempt"
    # A lock verdict carrying an exemption claim (it should not) stays a lock offline.
    round_trip(agent, service, verdict="lock", exemption={"until": None}, sub="dev_test")
    clock.advance(days=400)
    assert agent.enforcement().action is Action.LOCK


def test_a_malformed_exemption_claim_is_refused(agent: Agent, service: Service) -> None:
    with pytest.raises(MalformedToken, match="'until'"):
        round_trip(agent, service, verdict="allow", exemption={"until": "2027-01-01"})
    assert held(agent) is None
