"""Policy activation and rollback, with their audit records, in one transaction each.

Only a document that validates can be stored and activated: it is parsed before anything is
written, and a failure writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from regionlock.domain.policy import Policy
from regionlock.policies import parse_policy
from regionlock.storage import AuditStore, PolicyStore, Stores, Transactions
from regionlock.storage.db import epoch_ms
from regionlock.storage.policies import Activation, PolicyConflict, StoredPolicy


@dataclass
class PolicyAdmin:
    """Upload, activate, roll back; every change audited in the same transaction."""

    db: Transactions
    policies: PolicyStore
    audit: AuditStore
    _parsed: dict[str, Policy] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def of(cls, stores: Stores) -> PolicyAdmin:
        return cls(stores.db, stores.policies, stores.audit)

    def activate(
        self, document: str, *, source: str, actor: str, reason: str, now: datetime
    ) -> Activation:
        policy = parse_policy(document, source)  # raises PolicyError: nothing is written
        at = epoch_ms(now)
        with self.db.write() as tx:
            stored, new = self.policies.upload(
                tx,
                policy_id=policy.id,
                version=policy.version,
                document=document,
                at=at,
                actor=actor,
            )
            subject = f"{policy.id}@{policy.version}"
            if new:
                self.audit.append(
                    tx,
                    at=at,
                    actor=actor,
                    action="policy.upload",
                    subject=subject,
                    reason=reason,
                    details={"sha256": stored.sha256, "source": source},
                )
            activation = self.policies.activate(tx, stored.row, at=at, actor=actor, reason=reason)
            self.audit.append(
                tx,
                at=at,
                actor=actor,
                action="policy.activate",
                subject=subject,
                reason=reason,
                details={"sha256": stored.sha256},
            )
        return activation

    def rollback(self, *, actor: str, reason: str, now: datetime) -> Activation:
        at = epoch_ms(now)
        with self.db.write() as tx:
            current = self.policies.active(tx)
            previous = self.policies.previous(tx)
            if current is None or previous is None:
                raise PolicyConflict("there is no earlier policy to roll back to")
            parse_policy(previous.document, f"{previous.policy_id}@{previous.version}")
            activation = self.policies.activate(tx, previous.row, at=at, actor=actor, reason=reason)
            self.audit.append(
                tx,
                at=at,
                actor=actor,
                action="policy.rollback",
                subject=f"{previous.policy_id}@{previous.version}",
                reason=reason,
                details={
                    "from": f"{current.policy.policy_id}@{current.policy.version}",
                    "sha256": previous.sha256,
                },
            )
        return activation

    def active(self) -> tuple[Policy, Activation] | None:
        """The policy check-ins use now, parsed (cached by content hash)."""
        activation = self.policies.active()
        if activation is None:
            return None
        return self.parse(activation.policy), activation

    def parse(self, stored: StoredPolicy) -> Policy:
        """A stored document as a Policy (parsed once per content hash)."""
        policy = self._parsed.get(stored.sha256)
        if policy is None:
            policy = parse_policy(stored.document, f"{stored.policy_id}@{stored.version}")
            self._parsed[stored.sha256] = policy
        return policy
