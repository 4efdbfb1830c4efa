"""Bulk campaigns: dry run, create (the target set frozen), the state machine, and the runner.

The runner applies a campaign in chunks, each ONE write transaction: read the next pending
targets of the current stage (device-id order), lock their device rows, apply the action to
each state, save the states, append one audit entry per device (`details.campaign`), mark the
targets and add to the campaign's counters. The targets' statuses are the checkpoint, written
with the effects: killed anywhere, a runner loses at most the chunk in flight, and the next run
changes every device exactly once. Only the holder of the campaign's lease runs it; the lease
is renewed in every chunk's transaction, so a runner that lost it stops before writing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from regionlock.domain import campaign as cdomain
from regionlock.domain import regions
from regionlock.domain.campaign import (
    DEFAULT_HALT_RULES,
    DEFAULT_STAGES,
    ApprovalRule,
    Campaign,
    CampaignAction,
    CampaignState,
    HaltRule,
    Selection,
    StageHealth,
    apply_to_state,
    first_halt,
    revert_state,
    stage_of,
)
from regionlock.domain.device import DeviceState
from regionlock.domain.errors import Conflict, InvalidInput, NotFound, RegionlockError
from regionlock.domain.messages import message_text
from regionlock.storage import AuditStore, CampaignStore, DeviceStore, Stores, Transactions
from regionlock.storage.audit import NewEntry
from regionlock.storage.campaigns import FleetGroup, Target, TargetStatus, new_campaign_id
from regionlock.storage.db import Transaction, epoch_ms

CHUNK = 1000
LEASE = timedelta(seconds=30)
SAMPLE = 10
_PAGE = 10_000
_AMONG = 500  # ids per IN (...) when the targets are given as a list
_CHANGED_SINCE = "changed since the campaign by someone else: left as it is"


class UnknownCampaign(NotFound):
    """No campaign has this id."""


class CampaignBusy(Conflict):
    """Another runner holds the campaign's lease."""


class CampaignDrifted(Conflict):
    """The fleet changed since the campaign's targets were frozen: start it with
    `accept_changes` (the frozen set is applied), or create a new one. `drift`: by how much."""

    def __init__(self, message: str, drift: Drift) -> None:
        super().__init__(message)
        self.drift = drift


class ApprovalRequired(Conflict):
    """A campaign over the four-eyes limit needs a second admin's approval to start."""


@dataclass(frozen=True, slots=True)
class Drift:
    """How the fleet a campaign selects changed since its targets were frozen."""

    frozen: int  # targets frozen at creation
    added: int  # devices the selection matches now that are not targets
    removed: int  # targets it no longer matches, or no longer registered

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def describe(self) -> str:
        if not self.changed:
            return f"the selection still matches exactly the {self.frozen} frozen targets"
        return (
            f"since creation the selection gained {self.added} device(s) that are not targets"
            f" and no longer matches {self.removed} of the {self.frozen} targets"
        )

    def to_json(self) -> dict[str, Any]:
        return {"frozen": self.frozen, "added": self.added, "removed": self.removed}


@dataclass(frozen=True, slots=True)
class Preview:
    """What a campaign over a selection would do, changing nothing (the dry run)."""

    devices: int
    by_country: dict[str, int]  # last located country; "unknown" when never located
    by_verdict: dict[str, int]  # last verdict; "none" before the first check-in
    inside_sales_region: int  # last placed inside their sales region: owners a lock would hurt
    sample: list[str]  # a few device ids (ids are keyed hashes: a pseudo-random sample)
    selection: str  # the selection in words

    def to_json(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "by_country": self.by_country,
            "by_verdict": self.by_verdict,
            "inside_sales_region": self.inside_sales_region,
            "sample": self.sample,
            "selection": self.selection,
        }


@dataclass(frozen=True, slots=True)
class RunReport:
    """How a run ended: the campaign as it was left, what this run did, and why it stopped
    ("waiting", "done", "paused", "cancelled", "halted", "lease lost")."""

    campaign: Campaign
    stopped: str
    chunks: int = 0
    applied: int = 0
    skipped: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class _Chunk:
    campaign: Campaign
    stopped: str | None = None
    applied: int = 0
    skipped: int = 0
    errors: int = 0
    last: str = ""  # the last target id handled


def _why(reason: str | None, default: str) -> str:
    """The audit reason of a transition: the caller's words, or what happened."""
    return reason.strip() if reason and reason.strip() else default


def _inside(sales_region: str, country: str | None) -> bool:
    if country is None:
        return False
    if sales_region == regions.GLOBAL:
        return True
    members = regions.REGIONS.get(sales_region)
    return country in members if members is not None else country == sales_region


def _preview(groups: Iterable[FleetGroup], sample: list[str], selection: str) -> Preview:
    by_country: dict[str, int] = {}
    by_verdict: dict[str, int] = {}
    total = inside = 0
    for g in groups:
        total += g.devices
        country = g.country or "unknown"
        by_country[country] = by_country.get(country, 0) + g.devices
        verdict = g.verdict or "none"
        by_verdict[verdict] = by_verdict.get(verdict, 0) + g.devices
        if _inside(g.sales_region, g.country):
            inside += g.devices
    return Preview(
        devices=total,
        by_country=dict(sorted(by_country.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_verdict=dict(sorted(by_verdict.items())),
        inside_sales_region=inside,
        sample=sample,
        selection=selection,
    )


def _replaced(state: DeviceState, slots: tuple[bool, bool]) -> DeviceState | None:
    """The slots an action writes as they were (what a revert puts back); None if empty."""
    lock = state.manual_lock if slots[0] else None
    exemption = state.exemption if slots[1] else None
    if lock is None and exemption is None:
        return None
    return DeviceState(manual_lock=lock, exemption=exemption)


def _slot(state: DeviceState, slots: tuple[bool, bool]) -> dict[str, Any]:
    """What the action replaces, in words (for the audit entry)."""
    out: dict[str, Any] = {}
    if slots[0]:
        lock = state.manual_lock
        out["lock"] = (
            None
            if lock is None
            else {"reason": lock.reason, "actor": lock.actor, "campaign": lock.campaign}
        )
    if slots[1]:
        ex = state.exemption
        out["exemption"] = (
            None
            if ex is None
            else {
                "reason": ex.reason,
                "until": ex.until.isoformat() if ex.until else None,
                "campaign": ex.campaign,
            }
        )
    return out


@dataclass(frozen=True)
class Campaigns:
    """Campaign use cases on the stores they need."""

    db: Transactions
    campaigns: CampaignStore
    devices: DeviceStore
    audit: AuditStore
    halt_rules: tuple[HaltRule, ...] = DEFAULT_HALT_RULES
    lease: timedelta = LEASE
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # The leases' clock, when it is not `clock`: a service on a simulated clock (a demo) keeps
    # its leases on real time, which is what other processes' runners read them by.
    lease_clock: Callable[[], datetime] | None = None

    def _lease_now(self) -> datetime:
        return (self.lease_clock or self.clock)()

    @classmethod
    def of(cls, stores: Stores, **options: Any) -> Campaigns:
        return cls(stores.db, stores.campaigns, stores.devices, stores.audit, **options)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, campaign_id: str) -> Campaign:
        found = self.campaigns.get(campaign_id)
        if found is None:
            raise UnknownCampaign(f"no campaign {campaign_id!r}")
        return found

    def recent(self, *, limit: int = 100) -> list[Campaign]:
        return self.campaigns.recent(limit=limit)

    def targets(
        self,
        campaign_id: str,
        *,
        status: TargetStatus | None = None,
        after: str = "",
        limit: int = 1000,
    ) -> list[Target]:
        """A campaign's targets in device-id order after `after`: what was applied, skipped
        (and why), failed or is pending."""
        self.get(campaign_id)
        return self.campaigns.targets(campaign_id, status=status, after=after, limit=limit)

    def drift(self, campaign_id: str) -> Drift:
        """How the fleet the campaign selects has changed since its targets were frozen."""
        return self._drift(self.get(campaign_id))

    def _drift(self, c: Campaign) -> Drift:
        added, removed = self.campaigns.drift(c.id, c.selection, explicit=c.explicit)
        return Drift(frozen=c.counts.targets, added=added, removed=removed)

    def needs_approval(self, campaign_id: str, rule: ApprovalRule) -> bool:
        """Whether the four-eyes rule requires an approval the campaign does not have yet."""
        c = self.get(campaign_id)
        return c.approved_by is None and rule.required(
            c.counts.targets, self.campaigns.fleet_size()
        )

    def runnable(self) -> list[str]:
        """Running campaigns that no live runner holds: a background runner's work."""
        return self.campaigns.runnable(epoch_ms(self._lease_now()))

    def dry_run(
        self,
        selection: Selection,
        *,
        sample: int = SAMPLE,
        devices: Sequence[str] | None = None,
    ) -> Preview:
        """What a campaign over `selection` (among `devices`, ids, when given) would reach,
        counted in the store (flat memory). Reads the fleet through the same SQL as `create`,
        so they agree on the same fleet."""
        groups = self.campaigns.fleet_groups(selection, among=devices)
        with self.db.read() as tx:
            ids = (
                list(itertools.islice(self._matching(tx, selection, devices), sample))
                if sample
                else []
            )
        return _preview(groups, ids, selection.describe())

    def preview(self, campaign_id: str, *, sample: int = SAMPLE) -> Preview:
        """What starting (or resuming) the campaign would reach now: its pending targets that
        are still registered, counted like a dry run."""
        c = self.get(campaign_id)
        ids = [
            t.device_id for t in self.campaigns.targets(campaign_id, status="pending", limit=sample)
        ]
        return _preview(self.campaigns.target_groups(campaign_id), ids, c.selection.describe())

    # -- creating --------------------------------------------------------------------------------

    def _matching(
        self, tx: Transaction, selection: Selection, devices: Sequence[str] | None
    ) -> Iterator[str]:
        """The selected device ids in id order, page by page (among `devices` if given)."""
        if devices is not None:
            wanted = sorted(set(devices))
            for i in range(0, len(wanted), _AMONG):
                yield from self.campaigns.select_devices(
                    tx, selection, among=wanted[i : i + _AMONG], limit=_AMONG
                )
            return
        after = ""
        while page := self.campaigns.select_devices(tx, selection, after=after, limit=_PAGE):
            yield from page
            after = page[-1]

    def create(
        self,
        *,
        name: str,
        action: CampaignAction,
        reason: str,
        selection: Selection,
        actor: str,
        now: datetime,
        message: str | Mapping[str, str] | None = None,
        contact: str | None = None,
        until: date | None = None,
        stages: Sequence[float] = DEFAULT_STAGES,
        devices: Sequence[str] | None = None,
    ) -> Campaign:
        """Create a draft campaign over the devices `selection` matches now (and among
        `devices`, ids, when given): the target set is frozen here, each target's stage drawn
        by `stage_of`. Refuses (InvalidInput, nothing created) a selection matching no device.
        Audited as `campaign.create` with the target count and digest. `message`: a text, or
        a table of language tag -> text that the device's locale chooses from."""
        if action is CampaignAction.EXEMPT and until is not None and until <= now.date():
            raise InvalidInput(f"exemption until {until} is not in the future")
        campaign = Campaign(
            id=new_campaign_id(),
            name=name.strip(),
            action=action,
            reason=reason.strip(),
            selection=selection,
            created_by=actor,
            created_at=now.astimezone(UTC),
            message=message_text(message),
            contact=contact or None,
            until=until,
            stages=cdomain.parse_stages(stages),
            explicit=devices is not None,
        )
        with self.db.write() as tx:
            targets = (
                (d, stage_of(d, campaign.id, campaign.stages))
                for d in self._matching(tx, selection, devices)
            )
            created = self.campaigns.create(tx, campaign, targets)
            if created.counts.targets == 0:
                raise InvalidInput(
                    f"the selection ({selection.describe()}) matches no device: nothing created"
                )
            self._audit_created(tx, created, now)
        return created

    def _audit_created(self, tx: Transaction, created: Campaign, now: datetime) -> None:
        self.audit.append(
            tx,
            at=epoch_ms(now),
            actor=created.created_by,
            action="campaign.create",
            subject=created.id,
            reason=created.reason,
            details={
                "name": created.name,
                "action": created.action.value,
                "selection": created.selection.to_json(),
                "stages": [f"{s:g}" for s in created.stages],
                "targets": created.counts.targets,
                "stage_sizes": list(created.counts.stage_sizes),
                "digest": created.digest,
                **({"reverts": created.reverts} if created.reverts else {}),
            },
        )

    def revert(
        self,
        campaign_id: str,
        *,
        actor: str,
        reason: str,
        now: datetime,
        stages: Sequence[float] = DEFAULT_STAGES,
    ) -> Campaign:
        """A new draft campaign that puts back, on exactly the devices `campaign_id` changed,
        what it replaced there; a device changed since by someone else is skipped when the
        revert runs. Conflict while the campaign may still change devices (running: pause or
        cancel it first); InvalidInput when it changed none."""
        original = self.get(campaign_id)
        if original.state is CampaignState.RUNNING:
            raise Conflict(f"campaign {campaign_id} is running: pause or cancel it first")
        if original.action is CampaignAction.REVERT:
            raise InvalidInput(f"campaign {campaign_id} is a revert: it cannot be reverted")
        if original.counts.applied == 0:
            raise InvalidInput(f"campaign {campaign_id} changed no device: nothing to revert")
        campaign = Campaign(
            id=new_campaign_id(),
            name=f"revert {original.name}"[:200],
            action=CampaignAction.REVERT,
            reason=reason.strip(),
            selection=original.selection,
            created_by=actor,
            created_at=now.astimezone(UTC),
            stages=cdomain.parse_stages(stages),
            reverts=original.id,
            explicit=True,
        )
        with self.db.write() as tx:
            created = self.campaigns.create(
                tx,
                campaign,
                (
                    (d, stage_of(d, campaign.id, campaign.stages))
                    for d in self._applied(tx, original.id)
                ),
            )
            self._audit_created(tx, created, now)
        return created

    def _applied(self, tx: Transaction, campaign_id: str) -> Iterator[str]:
        after = ""
        while page := self.campaigns.target_ids(
            tx, campaign_id, "applied", after=after, limit=_PAGE
        ):
            yield from page
            after = page[-1]

    # -- transitions -----------------------------------------------------------------------------

    def _transition(
        self,
        campaign_id: str,
        change: Callable[[Campaign], Campaign],
        *,
        audit_action: str,
        actor: str,
        reason: str,
        now: datetime,
        details: dict[str, Any] | None = None,
    ) -> Campaign:
        with self.db.write() as tx:
            current = self.campaigns.get_for_update(tx, campaign_id)
            if current is None:
                raise UnknownCampaign(f"no campaign {campaign_id!r}")
            changed = change(current)
            self.campaigns.save(tx, changed, epoch_ms(now))
            self.audit.append(
                tx,
                at=epoch_ms(now),
                actor=actor,
                action=audit_action,
                subject=campaign_id,
                reason=reason,
                details={"state": changed.state.value, "stage": changed.stage, **(details or {})},
            )
        return changed

    def approve(
        self, campaign_id: str, *, actor: str, now: datetime, reason: str | None = None
    ) -> Campaign:
        """A second person approves a draft (never its creator)."""
        return self._transition(
            campaign_id,
            lambda c: cdomain.approve(c, actor),
            audit_action="campaign.approve",
            actor=actor,
            reason=_why(reason, "approved"),
            now=now,
        )

    def start(
        self,
        campaign_id: str,
        *,
        actor: str,
        now: datetime,
        accept_changes: bool = False,
        approval: ApprovalRule | None = None,
        reason: str | None = None,
    ) -> Campaign:
        """Start a draft at its first stage, or resume a paused campaign; `run` applies it.

        A draft whose selection matches a different fleet now than at creation starts only
        with `accept_changes` (CampaignDrifted; the frozen targets are what it applies). Under
        `approval` (the API passes the four-eyes rule) a draft over its limit needs a second
        admin's approval first (ApprovalRequired)."""
        c = self.get(campaign_id)
        details: dict[str, Any] = {}
        if c.state is CampaignState.DRAFT:
            if approval is not None and c.approved_by is None:
                fleet = self.campaigns.fleet_size()
                if approval.required(c.counts.targets, fleet):
                    raise ApprovalRequired(
                        f"campaign {campaign_id}: {approval.describe(c.counts.targets, fleet)};"
                        " a second admin must approve it first"
                    )
            drift = self._drift(c)
            if drift.changed:
                if not accept_changes:
                    raise CampaignDrifted(
                        f"campaign {campaign_id}: {drift.describe()}; start it with"
                        " accept_changes to apply the frozen targets, or create a new campaign",
                        drift,
                    )
                details["drift"] = drift.to_json()
        return self._transition(
            campaign_id,
            cdomain.start,
            audit_action="campaign.start",
            actor=actor,
            reason=_why(reason, "started"),
            now=now,
            details=details,
        )

    def advance(
        self, campaign_id: str, *, actor: str, now: datetime, reason: str | None = None
    ) -> Campaign:
        """Go on to the next stage of a campaign waiting between stages."""
        return self._transition(
            campaign_id,
            cdomain.advance,
            audit_action="campaign.advance",
            actor=actor,
            reason=_why(reason, "advanced"),
            now=now,
        )

    def pause(self, campaign_id: str, *, actor: str, reason: str, now: datetime) -> Campaign:
        """Pause; a runner stops after its chunk in flight. What was applied stays."""
        return self._transition(
            campaign_id,
            lambda c: cdomain.pause(c, reason),
            audit_action="campaign.pause",
            actor=actor,
            reason=reason,
            now=now,
        )

    def cancel(self, campaign_id: str, *, actor: str, reason: str, now: datetime) -> Campaign:
        """End for good; a runner stops after its chunk in flight. What was applied stays."""
        return self._transition(
            campaign_id,
            lambda c: cdomain.cancel(c, reason),
            audit_action="campaign.cancel",
            actor=actor,
            reason=reason,
            now=now,
        )

    # -- running ---------------------------------------------------------------------------------

    def run(
        self,
        campaign_id: str,
        *,
        owner: str,
        chunk: int = CHUNK,
        progress: Callable[[Campaign], None] | None = None,
    ) -> RunReport:
        """Apply a running campaign's current stage, chunk by chunk, until the stage is done
        (the campaign then waits for `advance`, or is done), it is paused, cancelled or halted
        by a halt rule, or the lease is lost. `owner` names this runner (unique per process);
        CampaignBusy if another runner holds the lease. `progress` is called after each chunk
        has committed. Run again after a crash: it resumes where the last chunk committed."""
        if chunk < 1:
            raise InvalidInput("chunk: at least 1")
        current = self.get(campaign_id)
        if current.state is not CampaignState.RUNNING:
            raise Conflict(f"campaign {campaign_id} is {current.state.value}: start it first")
        now = self._lease_now()
        if not self.campaigns.claim(campaign_id, owner, epoch_ms(now + self.lease), epoch_ms(now)):
            holder, until = self.campaigns.lease(campaign_id)
            raise CampaignBusy(
                f"campaign {campaign_id} is being run by {holder}"
                + (
                    f" (lease until {datetime.fromtimestamp(until / 1000, UTC).isoformat()})"
                    if until
                    else ""
                )
            )
        original = self.get(current.reverts) if current.reverts else None
        chunks = applied = skipped = errors = 0
        after = ""  # the last target this run handled: the next chunk starts past it
        try:
            while True:
                done = self._chunk(campaign_id, owner, chunk, original, after)
                after = done.last
                applied += done.applied
                skipped += done.skipped
                errors += done.errors
                if done.stopped is not None:
                    return RunReport(done.campaign, done.stopped, chunks, applied, skipped, errors)
                chunks += 1
                if progress is not None:
                    progress(done.campaign)
        finally:
            try:
                with self.db.write() as tx:
                    self.campaigns.release(tx, campaign_id, owner)
            except RegionlockError:  # the store is gone: the lease expires by itself
                pass

    def _chunk(
        self, campaign_id: str, owner: str, limit: int, original: Campaign | None, after: str
    ) -> _Chunk:
        """One chunk in one transaction (module docstring)."""
        now = self.clock()
        at = epoch_ms(now)
        with self.db.write() as tx:
            # First statement: renewing locks the campaign's row (PostgreSQL) until commit,
            # so a pause, a cancel or another runner's claim waits for this chunk.
            renewed = self.campaigns.renew(
                tx, campaign_id, owner, epoch_ms(self._lease_now() + self.lease)
            )
            c = self.campaigns.get_for_update(tx, campaign_id)
            if c is None:
                raise UnknownCampaign(f"no campaign {campaign_id!r}")
            if not renewed:
                return _Chunk(c, "lease lost")
            if c.state is not CampaignState.RUNNING:
                return _Chunk(c, c.state.value)
            ids = self.campaigns.pending_chunk(tx, campaign_id, c.stage, limit, after=after)
            if not ids and after:
                # Everything after the cursor is done; make sure of what lies before it.
                ids = self.campaigns.pending_chunk(tx, campaign_id, c.stage, limit)
            if not ids:
                finished = cdomain.finish_stage(c)
                self.campaigns.save(tx, finished, at)
                self.audit.append(
                    tx,
                    at=at,
                    actor=f"campaign:{campaign_id}",
                    action="campaign.stage_done",
                    subject=campaign_id,
                    reason=c.reason,
                    details={"stage": c.stage, "state": finished.state.value},
                )
                return _Chunk(finished, finished.state.value)
            states = self.devices.lock_slots(tx, ids)
            outcomes: list[tuple[str, TargetStatus, str | None]] = []
            updates: list[tuple[str, int, DeviceState]] = []
            entries: list[NewEntry] = []
            befores: dict[str, DeviceState] = {}
            action = f"campaign.{c.action.value}"
            if original is not None:
                slots = original.action.slots
                put_back = self.campaigns.befores(tx, original.id, ids)
                extra = {"reverts": original.id}
            else:
                slots = c.action.slots
                extra = {}
            for device_id in ids:
                found = states.get(device_id)
                if found is None:
                    outcomes.append((device_id, "skipped", "device no longer registered"))
                    continue
                state, version = found
                if original is not None:
                    reverted = revert_state(state, original, put_back.get(device_id))
                    if reverted is None:
                        outcomes.append((device_id, "skipped", _CHANGED_SINCE))
                        continue
                    changed = reverted
                else:
                    try:
                        changed = apply_to_state(c, state, now)
                    except RegionlockError as exc:
                        outcomes.append((device_id, "error", exc.message))
                        continue
                updates.append((device_id, version, changed))
                outcomes.append((device_id, "applied", None))
                if (was := _replaced(state, slots)) is not None:
                    befores[device_id] = was
                entries.append(
                    NewEntry(
                        at=at,
                        actor=c.created_by,
                        action=action,
                        subject=device_id,
                        reason=c.reason,
                        details={
                            "campaign": campaign_id,
                            "stage": c.stage,
                            "before": _slot(state, slots),
                            **extra,
                        },
                    )
                )
            self.devices.save_slots(tx, updates, slots)
            self.audit.append_many(tx, entries)
            self.campaigns.mark(tx, campaign_id, c.stage, outcomes, at, befores)
            n_applied = len(entries)
            n_errors = sum(1 for o in outcomes if o[1] == "error")
            n_skipped = len(outcomes) - n_applied - n_errors
            self.campaigns.save_progress(
                tx, campaign_id, applied=n_applied, skipped=n_skipped, errors=n_errors
            )
            counts = replace(
                c.counts,
                applied=c.counts.applied + n_applied,
                skipped=c.counts.skipped + n_skipped,
                errors=c.counts.errors + n_errors,
                stage_errors=c.counts.stage_errors + n_errors,
            )
            c = replace(c, counts=counts)
            size = counts.stage_sizes[c.stage - 1] if c.stage <= len(counts.stage_sizes) else 0
            health = StageHealth(stage=c.stage, size=size, errors=counts.stage_errors)
            why = first_halt(self.halt_rules, health)
            if why is not None:
                halted = cdomain.pause(c, why)
                self.campaigns.save(tx, halted, at)
                self.audit.append(
                    tx,
                    at=at,
                    actor=f"campaign:{campaign_id}",
                    action="campaign.halt",
                    subject=campaign_id,
                    reason=why,
                    details={"stage": c.stage, "errors": counts.stage_errors, "size": size},
                )
                return _Chunk(halted, "halted", n_applied, n_skipped, n_errors, ids[-1])
        return _Chunk(c, None, n_applied, n_skipped, n_errors, ids[-1])
