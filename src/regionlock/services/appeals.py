"""Appeals (docs/appeals.md): the device sends a signed request; support reads the queue with
the evidence the service holds, and decides. A grant exempts the device for some days (its next
check-in is not a lock); a denial is final for that appeal. Every step is audited
(`appeal.create`, `appeal.decide`, and `device.exempt` for a grant), and so announced to the
webhooks (`appeal.created`, `appeal.decided`, `device.exempted`). The audit entries name the
device and the decision, never the owner's contact or message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from regionlock.domain.appeal import (
    Appeal,
    AppealDecided,
    AppealOpen,
    AppealStatus,
    NotLocked,
    evidence,
    grant_days,
)
from regionlock.domain.device import AppealAnswer, ManualExemption
from regionlock.domain.errors import InvalidInput, NotFound
from regionlock.domain.inputs import text_problem
from regionlock.domain.policy import Action
from regionlock.services.registry import UnknownDevice
from regionlock.signing import jws
from regionlock.signing.appeal import verify_appeal
from regionlock.storage import Stores
from regionlock.storage.appeals import AppealStore
from regionlock.storage.audit import AuditStore
from regionlock.storage.checkins import CheckinStore
from regionlock.storage.db import Transaction, Transactions, epoch_ms, new_id
from regionlock.storage.devices import DeviceStore
from regionlock.storage.policies import PolicyStore

REASON_MAX = 1000
EVIDENCE_VERDICTS = 10


class UnknownAppeal(NotFound):
    """No appeal has this id."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Appeals:
    db: Transactions
    appeals: AppealStore
    devices: DeviceStore
    checkins: CheckinStore
    policies: PolicyStore
    audit: AuditStore
    clock: Callable[[], datetime] = field(default=_now)

    @classmethod
    def of(cls, stores: Stores, **options: Any) -> Appeals:
        return cls(
            stores.db,
            stores.appeals,
            stores.devices,
            stores.checkins,
            stores.policies,
            stores.audit,
            **options,
        )

    def submit(self, token: str | bytes, *, window_s: int = 300) -> tuple[Appeal, bool]:
        """A device's signed appeal: (the appeal, whether it is new). The same request again
        gives the same appeal. UnknownDevice, the token's errors, NotLocked (nothing to
        appeal), AppealOpen (one is open already)."""
        now = self.clock()
        parts = jws.parse_unverified(token)
        kid = str(parts.header.get("kid", ""))
        device = self.devices.get(kid) if kid and len(kid) <= 200 else None
        if device is None:
            raise UnknownDevice("no registered device has this kid (device id or IMEI)")
        request = verify_appeal(parts, device.record.public_key, now=now, window_s=window_s)
        state = device.state
        held = state.manual_lock is not None or state.last_verdict in (Action.LOCK, Action.WARN)
        active = self.policies.active()
        verdicts = [
            {k: v for k, v in row.items() if k != "signals"}
            for row in self.checkins.recent(device.record.id, 50)
            if row["verdict"] in ("lock", "warn")
        ][:EVIDENCE_VERDICTS]
        with self.db.write() as tx:
            existing = self.appeals.open_for(tx, device.record.id)
            if existing is not None and existing.nonce != request.nonce:
                raise AppealOpen(
                    f"appeal {existing.id} of this device is open already: it is answered first"
                )
            if existing is None and not held:
                raise NotLocked("the device is neither locked nor warned: nothing to appeal")
            lock = state.manual_lock
            appeal = Appeal(
                id=new_id("apl_"),
                device_id=device.record.id,
                created_at=now,
                nonce=request.nonce,
                contact=request.contact,
                message=request.message,
                language=request.language,
                status=AppealStatus.OPEN,
                evidence=evidence(
                    last_verdict=state.last_verdict.value if state.last_verdict else None,
                    manual_lock=(
                        {"reason": lock.reason, "actor": lock.actor, "at": lock.at.isoformat()}
                        if lock
                        else None
                    ),
                    verdicts=verdicts,
                    presence=state.presence,
                    policy=(
                        f"{active.policy.policy_id}@{active.policy.version}" if active else None
                    ),
                ),
            )
            stored, created = self.appeals.create(tx, appeal)
            if created and request.language:
                # The owner's language picks the device's messages when it reports no locale.
                held_device = self.devices.lock_for_update(tx, device.record.id)
                if held_device is not None:
                    self.devices.save_state(
                        tx,
                        held_device,
                        replace(held_device.state, owner_language=request.language),
                    )
            if created:
                self._audit(
                    tx,
                    f"device:{device.record.id}",
                    "appeal.create",
                    stored.id,
                    "appeal from the device",
                    {"device": device.record.id, "language": request.language},
                )
        return stored, created

    def get(self, appeal_id: str) -> Appeal:
        found = self.appeals.get(appeal_id) if len(appeal_id) <= 64 else None
        if found is None:
            raise UnknownAppeal(f"no appeal {appeal_id[:64]!r}")
        return found

    def list(self, status: str | None = None, *, limit: int = 100) -> list[Appeal]:
        try:
            wanted = AppealStatus(status) if status is not None else None
        except ValueError:
            raise InvalidInput(
                f"status {status!r}: one of {', '.join(s.value for s in AppealStatus)}"
            ) from None
        return self.appeals.list(status=wanted, limit=limit)

    def decide(
        self,
        appeal_id: str,
        *,
        grant: bool,
        days: int | None,
        reason: str,
        actor: str,
        contact: str | None = None,
    ) -> Appeal:
        """Grant (an exemption for `days` days, from today, UTC) or deny, with a reason (and,
        for a denial, whom the owner may contact; default: the policy's contact). The device's
        next verdicts carry a denial's reason and contact. AppealDecided if it was decided
        already."""
        why = _reason(reason)
        if contact is not None:
            contact = _reason(contact)[:200]
        days = grant_days(days) if grant else None
        now = self.clock()
        with self.db.write() as tx:
            appeal = self.appeals.get(appeal_id, tx) if len(appeal_id) <= 64 else None
            if appeal is None:
                raise UnknownAppeal(f"no appeal {appeal_id[:64]!r}")
            if appeal.status is not AppealStatus.OPEN:
                raise AppealDecided(f"appeal {appeal.id} was {appeal.status.value} already")
            until = None
            device = self.devices.lock_for_update(tx, appeal.device_id)
            if device is None:
                raise UnknownDevice(f"the appeal's device {appeal.device_id} is gone")
            if grant:
                assert days is not None
                until = now.astimezone(UTC).date() + timedelta(days=days)
                exemption = ManualExemption(f"appeal {appeal.id}: {why}", actor, until)
                changed = replace(device.state, exemption=exemption, appeal_answer=None)
            else:
                # The device's next lock verdicts carry the reason and the contact.
                answer = AppealAnswer(appeal.id, why, contact, now)
                changed = replace(device.state, appeal_answer=answer)
            self.devices.save_state(tx, device, changed)
            if until is not None:
                self._audit(
                    tx,
                    actor,
                    "device.exempt",
                    appeal.device_id,
                    why,
                    {"appeal": appeal.id, "until": until.isoformat()},
                )
            decided = replace(
                appeal,
                status=AppealStatus.GRANTED if grant else AppealStatus.DENIED,
                decided_at=now,
                decided_by=actor,
                decision_reason=why,
                exempt_until=until,
            )
            if not self.appeals.decide(tx, decided):
                raise AppealDecided(f"appeal {appeal.id} was decided already")
            self._audit(
                tx,
                actor,
                "appeal.decide",
                appeal.id,
                why,
                {
                    "device": appeal.device_id,
                    "decision": decided.status.value,
                    "until": until.isoformat() if until else None,
                },
            )
        return decided

    def _audit(
        self,
        tx: Transaction,
        actor: str,
        action: str,
        subject: str,
        reason: str,
        details: dict[str, Any],
    ) -> None:
        self.audit.append(
            tx,
            at=epoch_ms(self.clock()),
            actor=actor,
            action=action,
            subject=subject,
            reason=reason,
            details=details,
        )


def _reason(reason: str) -> str:
    problem = text_problem(reason)
    if problem is not None:
        raise InvalidInput(f"the reason {problem}")
    reason = reason.strip()
    if not reason or len(reason) > REASON_MAX:
        raise InvalidInput(f"a reason holds 1 to {REASON_MAX} characters")
    return reason
