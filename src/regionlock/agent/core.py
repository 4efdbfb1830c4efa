"""The reference device agent: how firmware must check in, check verdicts and enforce them.

It is written without I/O (the caller moves the bytes: `regionlock.agent.client` over HTTP,
the fleet simulator with asyncio), so the same code is what tests, the CLI and the simulator
run. The rules it follows are docs/protocol.md's; in short:

- A check-in carries a fresh nonce and a counter above every earlier one, and the counter is
  stored *before* the request leaves, so a crash can never make the device reuse one.
- A verdict is accepted only if it verifies against the pinned JWKS, answers the check-in in
  flight (its nonce and counter), names this device and is newer than the verdict held. So a
  forged, replayed or out-of-order token, or an old *allow* offered after a newer *lock*,
  changes nothing: the device keeps what it had.
- Time is the largest of the device clock (corrected by the server's signed time) and every
  time seen before: setting the clock back never extends a lease.
- Offline, after the lease, the verdict's `offline` rule applies, never less strict than the
  last verdict.
- A locked device shows a challenge; an unlock code for it (signing/unlock.py) lifts the lock,
  for that challenge, once, with a limited number of tries.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from regionlock.agent.state import AgentState, MemoryStore, StateStore
from regionlock.clock import Clock
from regionlock.domain.errors import RegionlockError
from regionlock.domain.policy import Action
from regionlock.signing import (
    CheckinRequest,
    ClaimMismatch,
    SigningKey,
    TokenError,
    TokenExpired,
    sign_checkin,
    verify_verdict,
)
from regionlock.signing.jws import b64url_decode
from regionlock.signing.unlock import (
    MAX_ATTEMPTS,
    code_matches,
    device_secret,
    format_challenge,
    new_challenge,
)

DAY = 86_400
SUPPORT_UNLOCK_DAYS = 7  # an unlock code keeps the device usable this long without contact
LOCKOUT_BASE_S = 60  # the first delay after MAX_ATTEMPTS wrong codes; it doubles each time
MAX_REJECTIONS_KEPT = 20
MAX_ROUND_TRIP_S = 600  # an answer later than this after its check-in was held back
MAX_LOCKOUT_S = 86_400  # the delay after exhausted challenges stops doubling at a day
# The longest wait a service's Retry-After can impose: the answer is unsigned, so a forged one
# must not silence a device until its lease runs out.
MAX_RETRY_AFTER_S = 3_600


class BackingOff(RegionlockError):
    """The service asked this device to wait (429 or 503 with Retry-After); it has not yet."""

    def __init__(self, message: str, wait_s: int) -> None:
        super().__init__(message)
        self.wait_s = wait_s


class VerdictRejected(TokenError):
    """A verdict the agent refused; it keeps the verdict it had."""


class UnlockRefused(Exception):
    """An unlock code was not accepted (wrong, no challenge shown, or too many tries)."""


@dataclass(frozen=True, slots=True)
class Enforcement:
    """What the device does now, and why, in words a user and a support agent understand."""

    action: Action
    reason: str  # verdict | offline.keep | offline.warn | offline.lock | offline.exempt |
    # support-unlock | none
    message: str
    contact: str
    lease_expires: int | None  # the lease end of the verdict held (seconds), if any
    changes_at: int | None  # when the enforcement changes by itself offline (seconds), if ever

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "reason": self.reason,
            "message": self.message,
            "contact": self.contact,
            "lease_expires": self.lease_expires,
            "changes_at": self.changes_at,
        }


def _unverified_claims(token: str) -> dict[str, Any]:
    """The payload, read without checking anything: only to learn which time to verify at."""
    try:
        data = json.loads(b64url_decode(token.split(".")[1]))
    except (IndexError, ValueError) as exc:
        raise VerdictRejected(f"not a compact JWS: {exc}") from None
    if not isinstance(data, dict):
        raise VerdictRejected("the payload is not a JSON object")
    return data


def _fetched(jwks: Any) -> dict[str, Any]:
    """The keys of a JWKS fetched again (malformed input: none). They replace the pinned set
    once a verdict verifies with them: a key the service has deleted (a compromise) is
    trusted no longer, as docs/protocol.md promises, and the verdict then held is one that
    these keys verify."""
    new = jwks.get("keys") if isinstance(jwks, dict) else None
    return {"keys": [k for k in new if isinstance(k, dict)] if isinstance(new, list) else []}


def _stricter(a: Action, b: Action) -> Action:
    return a if a.severity >= b.severity else b


class Agent:
    """One device. Not thread-safe: a device checks in one request at a time."""

    def __init__(self, state: AgentState, clock: Clock, store: StateStore | None = None) -> None:
        self.state = state
        self.clock = clock
        self.store: StateStore = store or MemoryStore()
        self.key = SigningKey.from_seed(state.seed, datetime.fromtimestamp(0, UTC))
        self._verified: tuple[str, dict[str, Any]] | None = None

    # -- time ------------------------------------------------------------------------------

    def now(self) -> int:
        """The device's trusted time, for leases and delays (seconds).

        It is the last signed verdict time, advanced by the device clock's *forward* steps
        only: setting the clock back neither winds it back nor freezes it (later forward steps
        count from the new reading). A clock set forward ends leases early, the safe direction,
        until the next fresh verdict puts it right. Unsigned inputs (a `clock-skew` answer)
        never move it. Firmware should feed it from a clock the user cannot set (Android's
        `elapsedRealtime`); the reference agent has only the wall clock.
        """
        raw = int(self.clock.now().timestamp())
        last = self.state.clock_raw
        if last is None or self.state.trusted_time == 0:
            self.state.trusted_time = max(self.state.trusted_time, raw)
        elif raw > last:
            self.state.trusted_time += raw - last
        self.state.clock_raw = raw
        return self.state.trusted_time

    def _signing_time(self) -> int:
        """The time a check-in is signed with: the device clock, corrected by the server."""
        return int(self.clock.now().timestamp()) + self.state.sign_offset

    def sync_clock(self, server_time: int) -> None:
        """Adopt the server's time, as told by a `clock-skew` problem, for signing check-ins.

        Unsigned, so it moves only the time the device signs with: enforcement time (`now`)
        moves with signed verdicts alone, so a forged `clock-skew` can neither lock a device
        nor extend its lease."""
        self.state.sign_offset = server_time - int(self.clock.now().timestamp())
        self.store.save(self.state)

    # -- checking in -----------------------------------------------------------------------

    def begin_checkin(self, signals: dict[str, Any]) -> str:
        """The signed check-in token to send. The counter is saved first. BackingOff while the
        service's last Retry-After has not passed."""
        wait = self.state.retry_not_before - self.now()
        if wait > 0:
            raise BackingOff(f"the service asked to wait {wait} s more before checking in", wait)
        iat = self._signing_time()
        counter = self.state.counter + 1
        nonce = secrets.token_urlsafe(16)  # 22 characters, 128 random bits
        self.state.counter = counter
        self.state.pending_nonce = nonce
        self.state.pending_counter = counter
        self.state.pending_sent_at = self.now()
        self.store.save(self.state)
        request = CheckinRequest(nonce=nonce, counter=counter, iat=iat, signals=signals)
        return sign_checkin(request, self.key, self.state.device_id or self.state.kid)

    def accept(self, token: str, *, jwks: dict[str, Any] | None = None) -> Enforcement:
        """Check a verdict token received for the check-in in flight and apply it.

        Raises `TokenError` (the verdict is refused, the one held stays) for a token that is
        forged, for another device or another check-in, late, expired, or not newer than the
        one held. `jwks`, a set fetched again from the service after an unknown `kid`, replaces
        the pinned set only if the token verifies against it."""
        keys = self.state.jwks if jwks is None else _fetched(jwks)
        try:
            claims, round_trip = self._verify_fresh(token, keys)
        except TokenError as exc:
            self._note_rejection(exc)
            raise
        held = self.held_or_none()
        if held is not None and claims["counter"] <= held["counter"]:
            # Nonce and counter bind the token to this check-in; this is belt and braces.
            older = VerdictRejected(
                f"verdict {claims['counter']} is not newer than the one held ({held['counter']})"
            )
            self._note_rejection(older)
            raise older
        if self.state.device_id is None:
            self.state.device_id = claims["sub"]  # learnt once, required from now on
        self.state.jwks = keys
        self.state.token = token
        self._verified = (token, claims)
        self._clear_pending()
        # The signed iat of a fresh answer (nonce-bound, arrived within MAX_ROUND_TRIP_S) is
        # the service's time: the device adopts it, backwards too (its clock was ahead). A
        # held-back answer cannot wind it back: it is refused as late.
        self.state.clock_raw = int(self.clock.now().timestamp())
        self.state.trusted_time = claims["iat"] + round_trip
        self.state.sign_offset = self.state.trusted_time - self.state.clock_raw
        if claims["verdict"] != Action.LOCK.value:
            self.state.challenge = None
            self.state.attempts = 0
        self.state.support_unlock_at = None
        self.state.support_unlock_counter = None
        self.store.save(self.state)
        return self.enforcement()

    def _verify_fresh(self, token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], int]:
        sent = self.state.pending_sent_at
        if self.state.pending_nonce is None or sent is None:
            raise VerdictRejected("no check-in is waiting for a verdict")
        # Signature, claims and binding (verified at the token's own iat: the nonce of the
        # check-in in flight is what proves it fresh, whatever the device clock says).
        at = _unverified_claims(token).get("iat")
        if not isinstance(at, int) or isinstance(at, bool):
            raise VerdictRejected("the verdict has no integer iat")
        claims = verify_verdict(
            token,
            jwks,
            now=datetime.fromtimestamp(at, UTC),
            expected_sub=self.state.device_id,
            expected_nonce=self.state.pending_nonce,
            expected_iss=self.state.issuer,
        )
        if claims["counter"] != self.state.pending_counter:
            raise ClaimMismatch("counter", "the verdict does not answer the check-in in flight")
        # How long the answer took, on the device's own forward-only clock: a true answer
        # comes in seconds; one held back by a man in the middle would wind time back.
        round_trip = max(0, self.now() - sent)
        if round_trip > MAX_ROUND_TRIP_S:
            raise VerdictRejected(
                f"the answer arrived {round_trip} s after the check-in was sent (at most "
                f"{MAX_ROUND_TRIP_S} s): held back on the way"
            )
        if claims["exp"] <= claims["iat"] + round_trip:
            raise TokenExpired(f"the verdict's lease ended ({claims['exp']}) before it arrived")
        return claims, round_trip

    def held_or_none(self) -> dict[str, Any] | None:
        """The claims of the verdict held, or None if there is none or it no longer verifies."""
        try:
            return self.held_claims()
        except VerdictRejected:
            return None  # a damaged stored verdict is replaced by any fresh, valid one

    def back_off(self, retry_after: str | None) -> None:
        """Honour a 429 or 503 answer's Retry-After (seconds; at most an hour, at least one):
        no check-in is signed before then. A missing or unreadable value waits a minute."""
        try:
            wait = int(retry_after) if retry_after is not None else 60
        except ValueError:
            wait = 60
        wait = min(max(wait, 1), MAX_RETRY_AFTER_S)
        self.state.retry_not_before = self.now() + wait
        self.store.save(self.state)

    def abandon_checkin(self) -> None:
        """Forget the check-in in flight (no answer came); its counter stays used."""
        self._clear_pending()
        self.store.save(self.state)

    def _clear_pending(self) -> None:
        self.state.pending_nonce = None
        self.state.pending_counter = None
        self.state.pending_sent_at = None

    def _note_rejection(self, exc: TokenError) -> None:
        self.state.rejected = [*self.state.rejected, f"{exc.kind}: {exc.message}"][
            -MAX_REJECTIONS_KEPT:
        ]
        self.store.save(self.state)

    # -- enforcing -------------------------------------------------------------------------

    def held_claims(self) -> dict[str, Any] | None:
        """The claims of the verdict held, checked again (signature, claims) as on every start.

        None when there is none; `VerdictRejected` when the stored token no longer verifies
        (edited on disk, or its key was withdrawn from the JWKS)."""
        token = self.state.token
        if token is None:
            return None
        if self._verified is not None and self._verified[0] == token:
            return self._verified[1]  # verified once per process (a start re-checks it)
        try:
            at = _unverified_claims(token).get("iat")
            claims = verify_verdict(
                token,
                self.state.jwks,
                now=datetime.fromtimestamp(at if isinstance(at, int) else 0, UTC),
                expected_sub=self.state.device_id,
                expected_iss=self.state.issuer,
            )
            self._verified = (token, claims)
            return claims
        except TokenError as exc:
            raise VerdictRejected(f"the stored verdict does not verify: {exc.message}") from None

    def enforcement(self) -> Enforcement:
        """What the device does now (docs/protocol.md, "What a device does offline")."""
        now = self.now()
        try:
            claims = self.held_claims()
            if claims is None and self.state.device_id is not None:
                raise VerdictRejected("the stored verdict is missing")
        except VerdictRejected:
            # Someone edited the stored verdict, or its key was withdrawn. Failing open would
            # make editing a file an unlock; the next check-in (or support) replaces it.
            if self._support_unlocked(None, now):
                return self._unlocked(now, "")
            text = "This device's authorisation could not be verified. Connect to the network."
            return Enforcement(Action.LOCK, "tampered", text, "", None, None)
        if claims is None:
            return Enforcement(Action.ALLOW, "none", "", "", None, None)
        if self._support_unlocked(claims["counter"], now):
            return self._unlocked(now, claims["contact"])
        action = Action(claims["verdict"])
        message, contact, exp = claims["message"], claims["contact"], claims["exp"]
        if now < exp:
            return Enforcement(action, "verdict", message, contact, exp, exp)
        exemption = claims.get("exemption")
        if isinstance(exemption, dict) and action is not Action.LOCK:
            # Exempted (an appeal granted, ...): the exemption holds offline until its end,
            # then the offline rule applies as it would have from the lease's end.
            until = exemption.get("until")
            if until is None or now < until:
                return Enforcement(action, "offline.exempt", message, contact, exp, until)
        offline = claims["offline"]
        kind = offline["action"]
        connect = "Connect to the network to renew this device's authorisation."
        if kind == "keep":
            return Enforcement(action, "offline.keep", message, contact, exp, None)
        if kind == "warn":
            warned = _stricter(action, Action.WARN)
            return Enforcement(warned, "offline.warn", message or connect, contact, exp, None)
        lock_at = exp + offline["lock_after_days"] * DAY
        warn_at = max(exp, lock_at - offline["warn_days"] * DAY)
        if now >= lock_at:
            text = message if action is Action.LOCK else connect
            return Enforcement(Action.LOCK, "offline.lock", text, contact, exp, None)
        if now >= warn_at:
            if action is Action.LOCK:  # a lock stays a lock, with its own message
                return Enforcement(action, "verdict", message, contact, exp, None)
            text = f"{connect} Without contact it locks on {_day(lock_at)}."
            return Enforcement(Action.WARN, "offline.lock", text, contact, exp, lock_at)
        return Enforcement(action, "verdict", message, contact, exp, warn_at)

    def _support_unlocked(self, counter: int | None, now: int) -> bool:
        """Whether an unlock code was entered for the verdict held (or the damaged state), and
        its SUPPORT_UNLOCK_DAYS have not passed; after them the held verdict applies again."""
        at = self.state.support_unlock_at
        return (
            at is not None
            and self.state.support_unlock_counter == counter
            and now < at + SUPPORT_UNLOCK_DAYS * DAY
        )

    def _unlocked(self, now: int, contact: str) -> Enforcement:
        assert self.state.support_unlock_at is not None
        until = self.state.support_unlock_at + SUPPORT_UNLOCK_DAYS * DAY
        text = f"Unlocked by support until {_day(until)}. Connect to the network to confirm."
        return Enforcement(Action.ALLOW, "support-unlock", text, contact, until, until)

    # -- offline unlock --------------------------------------------------------------------

    def _held_counter(self) -> int | None:
        held = self.held_or_none()
        return None if held is None else int(held["counter"])

    def _check_lockout(self, now: int) -> None:
        if now < self.state.lockout_until:
            raise UnlockRefused(
                f"too many wrong codes: try again after {_time(self.state.lockout_until)}"
            )

    def challenge(self) -> str:
        """The challenge to show on the lock screen (`1234-5678`); the same until it is used
        or exhausted. Only a locked device has one."""
        if self.enforcement().action is not Action.LOCK:
            raise UnlockRefused("the device is not locked")
        self._check_lockout(self.now())
        if self.state.challenge is None:
            self.state.challenge = new_challenge()
            self.state.attempts = 0
            self.store.save(self.state)
        return format_challenge(self.state.challenge)

    def enter_unlock_code(self, code: str) -> Enforcement:
        """Try an unlock code for the challenge shown. Right: the device unlocks for
        SUPPORT_UNLOCK_DAYS (or until the next verdict) and the challenge is spent. Wrong: one
        of MAX_ATTEMPTS tries is used (counted and saved *before* the code is compared, so
        cutting the power cannot undo it); the last one discards the challenge and imposes a
        delay that doubles each time, up to a day."""
        now = self.now()
        self._check_lockout(now)
        challenge = self.state.challenge
        if challenge is None:
            raise UnlockRefused("no unlock challenge is shown; ask for one first")
        if self.state.unlock_key is None:
            raise UnlockRefused("this device has no unlock key provisioned")
        self.state.attempts += 1
        self.store.save(self.state)
        secret = device_secret(self.state.seed, self.key.public_bytes, self.state.unlock_key)
        if not code_matches(secret, challenge, code):
            left = MAX_ATTEMPTS - self.state.attempts
            if left <= 0:
                self.state.challenge = None
                self.state.attempts = 0
                self.state.lockouts += 1
                delay = LOCKOUT_BASE_S * 2 ** min(self.state.lockouts - 1, 20)
                self.state.lockout_until = now + min(delay, MAX_LOCKOUT_S)
                self.store.save(self.state)
                raise UnlockRefused(
                    f"wrong code; this challenge is discarded. Ask again after "
                    f"{_time(self.state.lockout_until)} for a new one"
                )
            raise UnlockRefused(f"wrong code ({left} tries left for this challenge)")
        self.state.challenge = None  # spent: the same code never works again
        self.state.attempts = 0
        self.state.lockouts = 0
        self.state.support_unlock_at = now
        self.state.support_unlock_counter = self._held_counter()
        self.store.save(self.state)
        return self.enforcement()


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
