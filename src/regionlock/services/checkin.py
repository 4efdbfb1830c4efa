"""The check-in pipeline: verify, locate, decide, record, sign (docs/protocol.md).

Order matters for safety and cost:
1. The header is parsed strictly and the device found by `kid` (id or IMEI); an unknown
   device or a bad signature ends here, with no state read or written and never a verdict.
2. Signature, payload contract and clock window are checked (stateless).
3. Signals are validated and located outside any transaction (CPU work, no locks held).
4. One write transaction: the device row is locked, the counter must be above the last and
   the nonce unseen, the active policy decides, then state, check-in row and audit entry are
   written together. A replay changes nothing; a crash leaves nothing half-applied.
5. The verdict is signed with the service key.

Raw signals are dropped here: only country, subdivision, confidence, flags and the kinds of
signal present are stored (docs/privacy.md).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from regionlock.domain.decision import Verdict, decide
from regionlock.domain.device import DeviceRecord, DeviceState
from regionlock.domain.location import LocationEstimate
from regionlock.domain.policy import Action, Exemption, Policy
from regionlock.domain.signals import parse_signals
from regionlock.geo.locator import Locator
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.services.registry import UnknownDevice
from regionlock.settings import Settings
from regionlock.signing import (
    Keyring,
    ReplayedNonce,
    StaleCounter,
    peek_header,
    sign_verdict,
    verdict_claims,
    verdict_response,
    verify_checkin,
)
from regionlock.storage.audit import SqlAuditStore
from regionlock.storage.checkins import DuplicateNonce, SqlCheckinStore
from regionlock.storage.db import Database, Transaction, epoch_ms
from regionlock.storage.devices import SqlDeviceStore
from regionlock.storage.keys import SqlKeyStore

# With no active policy every device is allowed: nothing restricts until an operator decides.
NO_POLICY = Policy("none", "0", "no policy is active", ())
MAX_TOKEN_LIFETIME = timedelta(days=366)


@dataclass
class CheckinService:
    """Everything a check-in needs, built once per process."""

    db: Database
    locator: Locator
    settings: Settings

    def __post_init__(self) -> None:
        self.devices = SqlDeviceStore(self.db)
        self.audit = SqlAuditStore(self.db)
        self.policies = PolicyAdmin(self.db)
        self.keys = SqlKeyStore(self.db)
        self.checkin_rows = SqlCheckinStore(self.db)
        # Registry records never change once imported (a conflicting re-import is refused),
        # so their keys are cached; state is always read under the row lock.
        self._records: dict[str, DeviceRecord] = {}
        self._active: tuple[int, Policy] | None = None
        self._ring: tuple[float, Keyring] | None = None
        self._lock = threading.Lock()

    def _record(self, kid: str) -> DeviceRecord | None:
        record = self._records.get(kid)
        if record is None:
            found = self.devices.get(kid)
            if found is None:
                return None
            record = found.record
            with self._lock:
                if len(self._records) > 200_000:
                    self._records.clear()
                self._records[kid] = record
        return record

    def _policy(self, tx: Transaction) -> Policy:
        """The active policy, re-read only when a new activation has been recorded (checked in
        the check-in's own transaction, so an activation applies from the next check-in on)."""
        row = tx.one("SELECT MAX(id) FROM policy_activations")
        latest = int(row[0]) if row and row[0] is not None else 0
        cached = self._active
        if cached is not None and cached[0] == latest:
            return cached[1]
        active = self.policies.policies.active(tx)
        policy = NO_POLICY if active is None else self.policies.parse(active.policy)
        self._active = (latest, policy)
        return policy

    def forget_keyring(self) -> None:
        """Re-read the keys at the next check-in (after a rotation in this process)."""
        self._ring = None

    def _keyring(self, now: datetime) -> Keyring:
        """The signing keys, re-read at most once a minute (a rotation is picked up within a
        minute; the retired key stays published, so tokens it signed meanwhile still verify)."""
        cached = self._ring
        if cached is None or time.monotonic() - cached[0] > 60:
            cached = self._ring = (time.monotonic(), self.keys.keyring(now))
        return cached[1]

    def check_in(self, token: str | bytes, *, peer_ip: str | None, now: datetime) -> dict[str, Any]:
        """Process one device check-in; returns the response body (token + mirrored claims)."""
        header = peek_header(token)
        kid = str(header.get("kid", ""))
        record = self._record(kid) if kid else None
        if record is None:
            raise UnknownDevice("no registered device has this kid (device id or IMEI)")
        request = verify_checkin(
            token, record.public_key, now=now, window_s=self.settings.clock_skew_s
        )
        raw = dict(request.signals)
        if "ip" not in raw and peer_ip is not None:
            raw["ip"] = peer_ip
        signals = parse_signals(raw)
        location = self.locator.locate(signals)

        with self.db.write() as tx:
            policy = self._policy(tx)
            locked = self.devices.lock_state(tx, record.id)
            if locked is None:  # deleted meanwhile
                raise UnknownDevice("the device is no longer registered")
            state, version = locked
            if not state.accepts_counter(request.counter):
                raise StaleCounter(
                    f"counter {request.counter} is not above the last accepted ({state.counter})"
                )
            verdict = self._decide(record.id, state, record, location, policy, now)
            # The check-in row goes first: its UNIQUE (device_id, nonce) refuses a replayed
            # nonce, and the whole transaction (state, audit) rolls back with it.
            try:
                self.checkin_rows.record(
                    tx,
                    device_id=record.id,
                    at=now,
                    counter=request.counter,
                    nonce=request.nonce,
                    country=location.country,
                    subdivision=location.subdivision,
                    confidence=location.confidence,
                    subdivision_candidates=location.subdivisions,
                    flags=location.flags,
                    signal_kinds=signals.kinds(),
                    verdict=verdict.action.value,
                    reasons=verdict.reasons,
                    policy_id=verdict.policy_id,
                    policy_version=verdict.policy_version,
                )
            except DuplicateNonce:
                raise ReplayedNonce("this nonce was already used by this device") from None
            new_state = state.after_checkin(
                location, verdict, at=now, counter=request.counter, policy=policy
            )
            self.devices.save_state_at(tx, record.id, version, new_state)
            self.audit.append(
                tx,
                at=epoch_ms(now),
                actor=f"device:{record.id}",
                action="checkin.verdict",
                subject=record.id,
                reason=",".join(verdict.reasons),
                details={
                    "verdict": verdict.action.value,
                    "country": location.country,
                    "subdivision": location.subdivision,
                    **(
                        {"subdivision_candidates": list(location.subdivisions)}
                        if location.subdivisions
                        else {}
                    ),
                    "confidence": location.confidence,
                    "flags": list(location.flags),
                    "signals": list(signals.kinds()),
                    "policy": f"{verdict.policy_id}@{verdict.policy_version}",
                    "counter": request.counter,
                },
            )
        claims = verdict_claims(
            verdict,
            issuer=self.settings.service_id,
            device_id=record.id,
            country=location.country,
            subdivision=location.subdivision,
            nonce=request.nonce,
            counter=request.counter,
            issued_at=now,
        )
        token_out = sign_verdict(claims, self._keyring(now), now, max_lifetime=MAX_TOKEN_LIFETIME)
        return verdict_response(token_out, claims)

    def _decide(
        self,
        device_id: str,
        state: DeviceState,
        record: DeviceRecord,
        location: LocationEstimate,
        policy: Policy,
        now: datetime,
    ) -> Verdict:
        """The policy's verdict, with the operator's exemption and manual lock applied."""
        if state.exemption is not None:
            policy = replace(
                policy,
                exemptions=(
                    *policy.exemptions,
                    Exemption(
                        f"operator exemption: {state.exemption.reason}",
                        device=device_id,
                        until=state.exemption.until,
                    ),
                ),
            )
        facts = state.to_facts(record)
        if state.may_activate(location, now, policy.min_lock_confidence):
            # This check-in is the first activation: judge it as one (a phone sold elsewhere
            # and switched on for the first time in a restricted place is what a gray-market
            # block exists to stop). Which check-in that is: DeviceState.may_activate.
            country, subdivision = state.activation_place(location)
            first = state.first_seen_at or now
            facts = replace(
                facts,
                first_country=country,
                first_subdivision=subdivision,
                first_seen=first.astimezone(UTC).date(),
            )
        verdict = decide(facts, location, state.history(), policy, now)
        if state.manual_lock is not None and not any(
            r.startswith("exemption.") for r in verdict.reasons
        ):
            verdict = replace(
                verdict,
                action=Action.LOCK,
                reasons=("operator.lock", *verdict.reasons),
                explanation=f"Locked by an operator ({state.manual_lock.actor}): "
                f"{state.manual_lock.reason}. " + verdict.explanation,
                message=verdict.message or policy.message,
                contact=verdict.contact or policy.contact,
            )
        return verdict
