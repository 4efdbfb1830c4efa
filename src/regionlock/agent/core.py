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
from regionlock.domain.policy import Action
from regionlock.signing import (
    CheckinRequest,
    ClaimMismatch,
    SigningKey,
    TokenError,
    TokenExpired,
    TokenNotYetValid,
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
from regionlock.signing.verdict import CLOCK_WINDOW_S, DEFAULT_LEEWAY_S

DAY = 86_400
SUPPORT_UNLOCK_DAYS = 7  # an unlock code keeps the device usable this long without contact
LOCKOUT_BASE_S = 60  # the first delay after MAX_ATTEMPTS wrong codes; it doubles each time
MAX_REJECTIONS_KEPT = 20
FRESH_WINDOW_S = CLOCK_WINDOW_S + DEFAULT_LEEWAY_S  # how far a fresh verdict's iat may lie from
# the time its check-in was signed


class VerdictRejected(TokenError):
    """A verdict the agent refused; it keeps the verdict it had."""

    type_slug = "verdict-rejected"


class UnlockRefused(Exception):
    """An unlock code was not accepted (wrong, no challenge shown, or too many tries)."""


@dataclass(frozen=True, slots=True)
class Enforcement:
    """What the device does now, and why, in words a user and a support agent understand."""

    action: Action
    reason: str  # verdict | offline.keep | offline.warn | offline.lock | support-unlock | none
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
        """The device's notion of now: its clock corrected by the server's signed time, and
        never earlier than any time it has seen before (a clock set back changes nothing)."""
        current = self._signing_time()
        if current > self.state.max_seen:
            self.state.max_seen = current
        return self.state.max_seen

    def _signing_time(self) -> int:
        """The time a check-in is signed with: the device clock, corrected by the server."""
        return int(self.clock.now().timestamp()) + self.state.clock_offset

    def sync_clock(self, server_time: int) -> None:
        """Adopt the server's time, as told by a `clock-skew` problem, for signing check-ins.

        Unsigned, so it only moves the time the device *signs with*; leases are measured
        from signed verdict times (`accept`), and `max_seen` never goes back here."""
        self.state.clock_offset = server_time - int(self.clock.now().timestamp())
        self.store.save(self.state)

    # -- checking in -----------------------------------------------------------------------

    def begin_checkin(self, signals: dict[str, Any]) -> str:
        """The signed check-in token to send. The counter is saved first."""
        iat = self._signing_time()
        counter = self.state.counter + 1
        nonce = secrets.token_urlsafe(16)  # 22 characters, 128 random bits
        self.state.counter = counter
        self.state.pending_nonce = nonce
        self.state.pending_counter = counter
        self.state.pending_sent_at = iat
        self.store.save(self.state)
        request = CheckinRequest(nonce=nonce, counter=counter, iat=iat, signals=signals)
        return sign_checkin(request, self.key, self.state.device_id or self.state.kid)

    def accept(self, token: str) -> Enforcement:
        """Check a verdict token received for the check-in in flight and apply it.

        Raises `TokenError` (the verdict is refused, the one held stays) for a token that is
        forged, for another device or another check-in, expired, or not newer than the one
        held."""
        try:
            claims = self._verify_fresh(token)
        except TokenError as exc:
            self._note_rejection(exc)
            raise
        try:
            held = self.held_claims()
        except VerdictRejected:
            held = None  # a damaged stored verdict is replaced by any fresh, valid one
        if held is not None and (
            claims["counter"] <= held["counter"] or claims["iat"] < held["iat"]
        ):
            older = VerdictRejected(
                f"verdict {claims['counter']} is not newer than the one held ({held['counter']})"
            )
            self._note_rejection(older)
            raise older
        if self.state.device_id is None:
            self.state.device_id = claims["sub"]  # learnt once, required from now on
        self.state.token = token
        self._verified = (token, claims)
        self._clear_pending()
        # The signed, fresh iat is the server's time: the device adopts it, even backwards
        # (its clock was ahead). Winding back needs a fresh token from the service, whose
        # lease then starts from the service's own time, so nothing is extended by it.
        self.state.clock_offset = claims["iat"] - int(self.clock.now().timestamp())
        self.state.max_seen = claims["iat"]
        if claims["verdict"] != Action.LOCK.value:
            self.state.challenge = None
            self.state.attempts = 0
        self.state.support_unlock_at = None
        self.state.support_unlock_counter = None
        self.store.save(self.state)
        return self.enforcement()

    def _verify_fresh(self, token: str) -> dict[str, Any]:
        sent = self.state.pending_sent_at
        if self.state.pending_nonce is None or sent is None:
            raise VerdictRejected("no check-in is waiting for a verdict")
        # Signature, claims and binding first (verified at the token's own iat: its times are
        # judged below against the time the check-in was signed, which the server accepted).
        at = _unverified_claims(token).get("iat")
        if not isinstance(at, int) or isinstance(at, bool):
            raise VerdictRejected("the verdict has no integer iat")
        claims = verify_verdict(
            token,
            self.state.jwks,
            now=datetime.fromtimestamp(at, UTC),
            expected_sub=self.state.device_id,
            expected_nonce=self.state.pending_nonce,
            expected_iss=self.state.issuer,
        )
        if claims["counter"] != self.state.pending_counter:
            raise ClaimMismatch("counter", "the verdict does not answer the check-in in flight")
        # The service accepted the check-in only with its iat within CLOCK_WINDOW_S of the
        # server clock, so a true answer is issued within that of `sent`. One issued long
        # before was held back (and would wind the device's time back); one after cannot be.
        if claims["iat"] < sent - FRESH_WINDOW_S:
            raise VerdictRejected(
                f"the verdict was issued at {claims['iat']}, long before the check-in ({sent})"
            )
        if claims["iat"] > sent + FRESH_WINDOW_S:
            raise TokenNotYetValid(
                f"the verdict is issued at {claims['iat']}, after the check-in ({sent})"
            )
        if claims["exp"] <= self._signing_time():
            raise TokenExpired(f"the verdict expired at {claims['exp']}")
        return claims

    def replace_jwks(self, jwks: dict[str, Any]) -> None:
        """Pin a JWKS fetched again from the provisioned service (after an unknown `kid`: the
        service rotated its key). Only ever call this with what that service served over TLS."""
        if not isinstance(jwks.get("keys"), list):
            raise VerdictRejected("the JWKS has no 'keys' list")
        self.state.jwks = jwks
        self._verified = None  # the held verdict is checked again against the new set
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
        self.state.rejected = [*self.state.rejected, f"{exc.type_slug}: {exc.message}"][
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
        except VerdictRejected:
            # Someone edited the stored verdict, or its key was withdrawn. Failing open would
            # make editing a file an unlock; the next check-in replaces it.
            return Enforcement(
                Action.LOCK,
                "tampered",
                "This device's authorisation could not be verified. Connect to the network.",
                "",
                None,
                None,
            )
        if claims is None:
            return Enforcement(Action.ALLOW, "none", "", "", None, None)
        action = Action(claims["verdict"])
        message, contact, exp = claims["message"], claims["contact"], claims["exp"]
        reason = "verdict"
        if self._support_unlocked(claims):
            assert self.state.support_unlock_at is not None
            action, reason = Action.ALLOW, "support-unlock"
            message = "Unlocked by support. Connect to the network to confirm."
            exp = max(exp, self.state.support_unlock_at + SUPPORT_UNLOCK_DAYS * DAY)
        if now < exp:
            return Enforcement(action, reason, message, contact, exp, exp)
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
            return Enforcement(Action.LOCK, "offline.lock", connect, contact, exp, None)
        if now >= warn_at:
            warned = _stricter(action, Action.WARN)
            text = f"{connect} Without contact it locks on {_day(lock_at)}."
            return Enforcement(warned, "offline.lock", text, contact, exp, lock_at)
        return Enforcement(action, reason, message, contact, exp, warn_at)

    def _support_unlocked(self, claims: dict[str, Any]) -> bool:
        return (
            self.state.support_unlock_at is not None
            and self.state.support_unlock_counter == claims["counter"]
        )

    # -- offline unlock --------------------------------------------------------------------

    def challenge(self) -> str:
        """The challenge to show on the lock screen (`1234-5678`); the same until it is used
        or exhausted. Only a locked device has one."""
        if self.enforcement().action is not Action.LOCK:
            raise UnlockRefused("the device is not locked")
        now = self.now()
        if now < self.state.lockout_until:
            raise UnlockRefused(
                f"too many wrong codes: try again after {_time(self.state.lockout_until)}"
            )
        if self.state.challenge is None:
            self.state.challenge = new_challenge()
            self.state.attempts = 0
            self.store.save(self.state)
        return format_challenge(self.state.challenge)

    def enter_unlock_code(self, code: str) -> Enforcement:
        """Try an unlock code for the challenge shown. Right: the device unlocks and the
        challenge is spent. Wrong: one of MAX_ATTEMPTS tries is used; the last one discards
        the challenge and imposes a delay that doubles each time."""
        now = self.now()
        if now < self.state.lockout_until:
            raise UnlockRefused(
                f"too many wrong codes: try again after {_time(self.state.lockout_until)}"
            )
        challenge = self.state.challenge
        claims = self.held_claims()
        if challenge is None or claims is None:
            raise UnlockRefused("no unlock challenge is shown; ask for one first")
        if self.state.unlock_key is None:
            raise UnlockRefused("this device has no unlock key provisioned")
        secret = device_secret(self.state.seed, self.key.public_bytes, self.state.unlock_key)
        if not code_matches(secret, challenge, code):
            self.state.attempts += 1
            left = MAX_ATTEMPTS - self.state.attempts
            if left <= 0:
                self.state.challenge = None
                self.state.attempts = 0
                self.state.lockouts += 1
                self.state.lockout_until = now + LOCKOUT_BASE_S * 2 ** (self.state.lockouts - 1)
                self.store.save(self.state)
                raise UnlockRefused(
                    f"wrong code; this challenge is discarded. Ask again after "
                    f"{_time(self.state.lockout_until)} for a new one"
                )
            self.store.save(self.state)
            raise UnlockRefused(f"wrong code ({left} tries left for this challenge)")
        self.state.challenge = None  # spent: the same code never works again
        self.state.attempts = 0
        self.state.lockouts = 0
        self.state.support_unlock_at = now
        self.state.support_unlock_counter = claims["counter"]
        self.store.save(self.state)
        return self.enforcement()


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
