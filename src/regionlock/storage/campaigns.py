"""Bulk campaigns: their definitions and state, their frozen target sets, the runner's lease.

Contract (both backends, one conformance suite, tests/storage/test_campaigns.py):
- `create` writes a campaign and its targets in the caller's transaction: the target set is
  frozen there, counted per stage and fingerprinted (SHA-256 of the sorted ids). Targets are
  streamed in device-id order and inserted in chunks, so a million devices never sit in memory.
- `select_devices` is the one definition of a `Selection` in SQL: the dry run, `create` and a
  later comparison all read the fleet through it, so they cannot disagree.
- A campaign is worked on by the runner holding its lease: `claim` takes a free or expired
  lease (or renews one's own) atomically, `renew` extends it inside a chunk's transaction and
  fails once another runner took it over, `release` lets it go.
- `pending_chunk`, `mark` and `save_progress` run in one transaction per chunk with the
  changes to the devices: the targets' statuses are the checkpoint, so a chunk is applied,
  marked and counted together or not at all. `mark` refuses (Conflict, the transaction rolls
  back) a target that is no longer pending, so nothing is applied twice. It also keeps what
  each applied target's action replaced (`before`), which `befores` reads back for a revert.
- `drift` compares the frozen set with what the selection matches now; `runnable` lists the
  running campaigns that no live runner holds (a background runner's work).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, Literal, Protocol

from regionlock.domain.campaign import (
    Campaign,
    CampaignAction,
    CampaignCounts,
    CampaignState,
    Selection,
)
from regionlock.domain.device import DeviceState
from regionlock.domain.errors import Conflict
from regionlock.storage.db import Database, Transaction, epoch_ms, new_id
from regionlock.storage.devices import state_from_json, state_to_json

TargetStatus = Literal["pending", "applied", "skipped", "error"]
_NOTHING: Mapping[str, DeviceState] = MappingProxyType({})
INSERT_CHUNK = 5000


def new_campaign_id() -> str:
    """A fresh, unguessable campaign id: "cmp_" and 16 base32 characters (80 bits)."""
    return new_id("cmp_", 16)


@dataclass(frozen=True, slots=True)
class Target:
    """One targeted device and what became of it."""

    device_id: str
    stage: int
    status: TargetStatus
    detail: str | None
    applied_at: int | None


@dataclass(frozen=True, slots=True)
class FleetGroup:
    """Selected devices counted by sales region, last country and last verdict."""

    sales_region: str
    country: str | None
    verdict: str | None
    devices: int


# --- a selection in SQL ------------------------------------------------------------------------

_COLUMN = {
    "distributor": "d.distributor",
    "batch": "d.batch",
    "model": "d.model",
    "sales_region": "d.sales_region",
    "country": "d.last_country",
    "subdivision": "d.last_subdivision",
    "verdict": "d.last_verdict",
    "activated_in": "d.first_country",
}


def selection_sql(selection: Selection) -> tuple[str, list[Any]]:
    """The WHERE condition (over `devices d`) of a selection, with its parameters: one
    `IN (...)` per field (or a LIKE per country for `seen_in`), joined with AND."""
    parts: list[str] = []
    params: list[Any] = []
    for name, values in selection.filters().items():
        if name == "seen_in":
            parts.append("(" + " OR ".join("d.seen_in LIKE ?" for _ in values) + ")")
            params.extend(f"%,{v},%" for v in values)
        else:
            parts.append(f"{_COLUMN[name]} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    return (" AND ".join(parts) if parts else "1 = 1"), params


def _before(befores: Mapping[str, DeviceState], device_id: str) -> str | None:
    found = befores.get(device_id)
    return None if found is None else state_to_json(found)


def _groups(rows: Sequence[Sequence[Any]]) -> list[FleetGroup]:
    return [FleetGroup(r[0], r[1], r[2], int(r[3])) for r in rows]


# --- rows --------------------------------------------------------------------------------------

_CAMPAIGN_COLS = (
    "id, name, action, reason, message, contact, until, selection, stages, state,"
    " state_reason, stage, targets, stage_sizes, digest, applied, skipped, errors,"
    " stage_errors, created_by, created_at, approved_by, reverts, explicit"
)


def _campaign(row: Sequence[Any]) -> Campaign:
    return Campaign(
        id=row[0],
        name=row[1],
        action=CampaignAction(row[2]),
        reason=row[3],
        message=row[4],
        contact=row[5],
        until=date.fromisoformat(row[6]) if row[6] else None,
        selection=Selection.from_json(json.loads(row[7])),
        stages=tuple(float(s) for s in str(row[8]).split(",")),
        state=CampaignState(row[9]),
        state_reason=row[10],
        stage=int(row[11]),
        counts=CampaignCounts(
            targets=int(row[12]),
            stage_sizes=tuple(int(n) for n in json.loads(row[13])),
            applied=int(row[15]),
            skipped=int(row[16]),
            errors=int(row[17]),
            stage_errors=int(row[18]),
        ),
        digest=row[14],
        created_by=row[19],
        created_at=datetime.fromtimestamp(int(row[20]) / 1000, UTC),
        approved_by=row[21],
        reverts=row[22],
        explicit=bool(row[23]),
    )


class CampaignStore(Protocol):
    """Campaigns, their frozen targets and their runners' leases (module docstring: the
    contract). Times are UTC epoch milliseconds."""

    def select_devices(
        self,
        tx: Transaction,
        selection: Selection,
        *,
        after: str = "",
        limit: int = 10_000,
        among: Sequence[str] | None = None,
    ) -> list[str]:
        """Ids of the devices the selection matches, in id order, after `after` (paging);
        only those of `among` when given."""
        ...

    def fleet_groups(
        self, selection: Selection, *, among: Sequence[str] | None = None
    ) -> list[FleetGroup]:
        """The selected devices (among these ids, if given) counted by (sales region, last
        country, last verdict), in aggregate queries: what a dry run reports, in flat memory."""
        ...

    def target_groups(self, campaign_id: str) -> list[FleetGroup]:
        """A campaign's pending targets that are still registered, counted the same way:
        what starting it would now reach."""
        ...

    def create(
        self, tx: Transaction, campaign: Campaign, targets: Iterable[tuple[str, int]]
    ) -> Campaign:
        """Store `campaign` with its targets ((device id, stage), strictly increasing ids);
        returns it with the target count, the count per stage and the digest filled in.
        Conflict if the id exists."""
        ...

    def get(self, campaign_id: str) -> Campaign | None:
        """A campaign by id; None when there is none."""
        ...

    def get_for_update(self, tx: Transaction, campaign_id: str) -> Campaign | None:
        """A campaign to change in `tx` (row-locked where the backend needs it)."""
        ...

    def recent(self, *, limit: int = 100) -> list[Campaign]:
        """Campaigns, newest first."""
        ...

    def save(self, tx: Transaction, campaign: Campaign, at: int) -> None:
        """Store a transition: state, its reason, stage, stage errors, approver."""
        ...

    def claim(self, campaign_id: str, owner: str, until: int, now: int) -> bool:
        """Take the campaign's lease for `owner` until `until` if it is free, expired (at
        `now`) or `owner`'s own; True when `owner` holds it. Atomic: of two runners claiming
        at once, exactly one gets it."""
        ...

    def lease(self, campaign_id: str) -> tuple[str | None, int | None]:
        """Who holds the lease and until when (None, None: nobody ever did)."""
        ...

    def renew(self, tx: Transaction, campaign_id: str, owner: str, until: int) -> bool:
        """Extend `owner`'s lease in `tx` (and lock the campaign's row until it ends); False
        when `owner` no longer holds it, i.e. another runner took it over."""
        ...

    def release(self, tx: Transaction, campaign_id: str, owner: str) -> None:
        """Let go of `owner`'s lease (nothing if it is not `owner`'s)."""
        ...

    def pending_chunk(
        self, tx: Transaction, campaign_id: str, stage: int, limit: int, *, after: str = ""
    ) -> list[str]:
        """The next `limit` pending targets of `stage`, in device-id order, after `after` (a
        runner passes the last id it handled: on PostgreSQL the index still holds the dead
        "pending" entries of the targets done, until a vacuum, and scanning from the start
        would walk them all at every chunk)."""
        ...

    def mark(
        self,
        tx: Transaction,
        campaign_id: str,
        stage: int,
        outcomes: Sequence[tuple[str, TargetStatus, str | None]],
        at: int,
        befores: Mapping[str, DeviceState] = ...,
    ) -> None:
        """Record (device id, status, detail) of pending targets of `stage`; Conflict if one
        of them is not pending (in that stage) any more. `befores`: what an applied
        target's action replaced (a state holding only those slots), by device id."""
        ...

    def target_ids(
        self, tx: Transaction, campaign_id: str, status: TargetStatus, *, after: str, limit: int
    ) -> list[str]:
        """Ids of a campaign's targets of one status, in id order after `after`."""
        ...

    def befores(
        self, tx: Transaction, campaign_id: str, device_ids: Sequence[str]
    ) -> dict[str, DeviceState]:
        """What these applied targets' action replaced, where it was not empty (`mark`)."""
        ...

    def drift(self, campaign_id: str, selection: Selection, *, explicit: bool) -> tuple[int, int]:
        """(added, removed): devices the selection matches now that are not targets (0 for
        explicit targets, which cannot grow), and targets it no longer matches (or gone)."""
        ...

    def runnable(self, now: int) -> list[str]:
        """Running campaigns whose lease is free or has expired, oldest first."""
        ...

    def fleet_size(self) -> int:
        """How many devices are registered."""
        ...

    def save_progress(
        self, tx: Transaction, campaign_id: str, *, applied: int, skipped: int, errors: int
    ) -> None:
        """Add a chunk's outcomes to the campaign's counters (errors also to the stage's)."""
        ...

    def targets(
        self,
        campaign_id: str,
        *,
        status: TargetStatus | None = None,
        after: str = "",
        limit: int = 1000,
    ) -> list[Target]:
        """Targets of a campaign in device-id order after `after`, of one status if given."""
        ...

    def stage_status(self, campaign_id: str, stage: int) -> dict[str, int]:
        """How many targets of `stage` are in each status."""
        ...


class SqlCampaignStore:
    """Campaigns on SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def select_devices(
        self,
        tx: Transaction,
        selection: Selection,
        *,
        after: str = "",
        limit: int = 10_000,
        among: Sequence[str] | None = None,
    ) -> list[str]:
        where, params = selection_sql(selection)
        sql = f"SELECT d.id FROM devices d WHERE d.id > ? AND {where}"
        args: list[Any] = [after, *params]
        if among is not None:
            if not among:
                return []
            sql += f" AND d.id IN ({', '.join('?' * len(among))})"
            args.extend(among)
        sql += " ORDER BY d.id LIMIT ?"
        args.append(limit)
        return [str(r[0]) for r in tx.all(sql, args)]

    def fleet_groups(
        self, selection: Selection, *, among: Sequence[str] | None = None
    ) -> list[FleetGroup]:
        where, params = selection_sql(selection)
        sql = (
            "SELECT d.sales_region, d.last_country, d.last_verdict, COUNT(*) FROM devices d"
            f" WHERE {where}{{among}} GROUP BY d.sales_region, d.last_country, d.last_verdict"
        )
        if among is None:
            with self.db.read() as tx:
                return _groups(tx.all(sql.format(among=""), params))
        wanted = sorted(set(among))
        counts: dict[tuple[str, str | None, str | None], int] = {}
        with self.db.read() as tx:
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                marks = ", ".join("?" * len(part))
                for g in _groups(
                    tx.all(sql.format(among=f" AND d.id IN ({marks})"), [*params, *part])
                ):
                    key = (g.sales_region, g.country, g.verdict)
                    counts[key] = counts.get(key, 0) + g.devices
        return [FleetGroup(*key, n) for key, n in counts.items()]

    def target_groups(self, campaign_id: str) -> list[FleetGroup]:
        with self.db.read() as tx:
            return _groups(
                tx.all(
                    "SELECT d.sales_region, d.last_country, d.last_verdict, COUNT(*)"
                    " FROM campaign_targets t JOIN devices d ON d.id = t.device_id"
                    " WHERE t.campaign_id = ? AND t.status = 'pending'"
                    " GROUP BY d.sales_region, d.last_country, d.last_verdict",
                    (campaign_id,),
                )
            )

    def create(
        self, tx: Transaction, campaign: Campaign, targets: Iterable[tuple[str, int]]
    ) -> Campaign:
        at = epoch_ms(campaign.created_at)
        c = campaign
        try:
            tx.execute(
                "INSERT INTO campaigns (id, name, action, reason, message, contact, until,"
                " selection, stages, state, state_reason, stage, created_by, created_at,"
                " approved_by, updated_at, reverts, explicit)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c.id,
                    c.name,
                    c.action.value,
                    c.reason,
                    c.message,
                    c.contact,
                    c.until.isoformat() if c.until else None,
                    json.dumps(c.selection.to_json(), sort_keys=True),
                    ",".join(f"{s:g}" for s in c.stages),
                    c.state.value,
                    c.state_reason,
                    c.stage,
                    c.created_by,
                    at,
                    c.approved_by,
                    at,
                    c.reverts,
                    int(c.explicit),
                ),
            )
        except Exception as exc:
            if self.db.is_unique_violation(exc):
                raise Conflict(f"campaign {c.id} exists already") from None
            raise
        sizes = [0] * len(c.stages)
        last = ""
        total = 0
        rows: list[tuple[str, str, int]] = []
        # One pass: ids feed the digest as they go in, chunk by chunk (flat memory).
        h = hashlib.sha256()
        for device_id, stage in targets:
            if device_id <= last:
                raise ValueError("campaign targets must come in strictly increasing id order")
            if not 1 <= stage <= len(c.stages):
                raise ValueError(f"stage {stage} of a campaign with {len(c.stages)} stages")
            last = device_id
            sizes[stage - 1] += 1
            h.update(device_id.encode() + b"\n")
            rows.append((c.id, device_id, stage))
            total += 1
            if len(rows) >= INSERT_CHUNK:
                self._insert_targets(tx, rows)
                rows = []
        self._insert_targets(tx, rows)
        digest = h.hexdigest()
        tx.execute(
            "UPDATE campaigns SET targets = ?, stage_sizes = ?, digest = ? WHERE id = ?",
            (total, json.dumps(sizes), digest, c.id),
        )
        return replace(
            c, digest=digest, counts=CampaignCounts(targets=total, stage_sizes=tuple(sizes))
        )

    @staticmethod
    def _insert_targets(tx: Transaction, rows: Sequence[tuple[str, str, int]]) -> None:
        if not rows:
            return
        if tx.dialect == "postgresql":  # one statement, the rows as arrays
            tx.execute(
                "INSERT INTO campaign_targets (campaign_id, device_id, stage) SELECT ?,"
                " v.device_id, v.stage FROM unnest(?::text[], ?::int[]) AS v(device_id, stage)",
                (rows[0][0], [r[1] for r in rows], [r[2] for r in rows]),
                arrays=True,
            )
            return
        tx.executemany(
            "INSERT INTO campaign_targets (campaign_id, device_id, stage) VALUES (?, ?, ?)", rows
        )

    def get(self, campaign_id: str) -> Campaign | None:
        with self.db.read() as tx:
            row = tx.one(f"SELECT {_CAMPAIGN_COLS} FROM campaigns WHERE id = ?", (campaign_id,))
        return _campaign(row) if row else None

    def get_for_update(self, tx: Transaction, campaign_id: str) -> Campaign | None:
        suffix = " FOR UPDATE" if tx.dialect == "postgresql" else ""
        row = tx.one(f"SELECT {_CAMPAIGN_COLS} FROM campaigns WHERE id = ?{suffix}", (campaign_id,))
        return _campaign(row) if row else None

    def recent(self, *, limit: int = 100) -> list[Campaign]:
        with self.db.read() as tx:
            rows = tx.all(
                f"SELECT {_CAMPAIGN_COLS} FROM campaigns ORDER BY created_at DESC, id LIMIT ?",
                (limit,),
            )
        return [_campaign(r) for r in rows]

    def save(self, tx: Transaction, campaign: Campaign, at: int) -> None:
        c = campaign
        tx.execute(
            "UPDATE campaigns SET state = ?, state_reason = ?, stage = ?, stage_errors = ?,"
            " approved_by = ?, updated_at = ? WHERE id = ?",
            (
                c.state.value,
                c.state_reason,
                c.stage,
                c.counts.stage_errors,
                c.approved_by,
                at,
                c.id,
            ),
        )

    def claim(self, campaign_id: str, owner: str, until: int, now: int) -> bool:
        # One statement: SQLite's single writer or PostgreSQL's row lock (a second UPDATE
        # waits, then re-checks the condition against the winner's row) make it atomic.
        with self.db.write() as tx:
            changed = tx.execute(
                "UPDATE campaigns SET lease_owner = ?, lease_until = ? WHERE id = ?"
                " AND (lease_owner IS NULL OR lease_until < ? OR lease_owner = ?)",
                (owner, until, campaign_id, now, owner),
            )
        return changed == 1

    def lease(self, campaign_id: str) -> tuple[str | None, int | None]:
        with self.db.read() as tx:
            row = tx.one(
                "SELECT lease_owner, lease_until FROM campaigns WHERE id = ?", (campaign_id,)
            )
        if row is None:
            return None, None
        return row[0], None if row[1] is None else int(row[1])

    def renew(self, tx: Transaction, campaign_id: str, owner: str, until: int) -> bool:
        changed = tx.execute(
            "UPDATE campaigns SET lease_until = ? WHERE id = ? AND lease_owner = ?",
            (until, campaign_id, owner),
        )
        return changed == 1

    def release(self, tx: Transaction, campaign_id: str, owner: str) -> None:
        tx.execute(
            "UPDATE campaigns SET lease_owner = NULL, lease_until = NULL"
            " WHERE id = ? AND lease_owner = ?",
            (campaign_id, owner),
        )

    def pending_chunk(
        self, tx: Transaction, campaign_id: str, stage: int, limit: int, *, after: str = ""
    ) -> list[str]:
        rows = tx.all(
            "SELECT device_id FROM campaign_targets WHERE campaign_id = ? AND status = 'pending'"
            " AND stage = ? AND device_id > ? ORDER BY device_id LIMIT ?",
            (campaign_id, stage, after, limit),
        )
        return [str(r[0]) for r in rows]

    def mark(
        self,
        tx: Transaction,
        campaign_id: str,
        stage: int,
        outcomes: Sequence[tuple[str, TargetStatus, str | None]],
        at: int,
        befores: Mapping[str, DeviceState] = _NOTHING,
    ) -> None:
        if tx.dialect == "postgresql":
            # One statement for the chunk, the outcomes as arrays, joined on the key.
            changed = tx.execute(
                "UPDATE campaign_targets t SET status = v.status, detail = v.detail,"
                " applied_at = ?, before = v.before"
                " FROM unnest(?::text[], ?::text[], ?::text[], ?::text[])"
                " AS v(device_id, status, detail, before)"
                # The chunk's id range: the key's index bounds the scan (a join alone, or
                # `= ANY`, makes the planner hash every target of the campaign).
                " WHERE t.campaign_id = ? AND t.device_id BETWEEN ? AND ?"
                " AND t.device_id = v.device_id AND t.status = 'pending' AND t.stage = ?",
                (
                    at,
                    [d for d, _, _ in outcomes],
                    [st for _, st, _ in outcomes],
                    [dt for _, _, dt in outcomes],
                    [_before(befores, d) for d, _, _ in outcomes],
                    campaign_id,
                    min(d for d, _, _ in outcomes),
                    max(d for d, _, _ in outcomes),
                    stage,
                ),
                arrays=True,
            )
        else:
            # The key named in full: a point look-up; status and stage only check the target.
            changed = tx.executemany(
                "UPDATE campaign_targets SET status = ?, detail = ?, applied_at = ?, before = ?"
                " WHERE campaign_id = ? AND status = 'pending' AND stage = ? AND device_id = ?",
                [
                    (status, detail, at, _before(befores, device), campaign_id, stage, device)
                    for device, status, detail in outcomes
                ],
            )
        if changed != len(outcomes):
            raise Conflict(
                f"campaign {campaign_id}: {len(outcomes) - changed} of {len(outcomes)} targets"
                " were not pending any more (another runner?)"
            )

    def save_progress(
        self, tx: Transaction, campaign_id: str, *, applied: int, skipped: int, errors: int
    ) -> None:
        tx.execute(
            "UPDATE campaigns SET applied = applied + ?, skipped = skipped + ?,"
            " errors = errors + ?, stage_errors = stage_errors + ? WHERE id = ?",
            (applied, skipped, errors, errors, campaign_id),
        )

    def targets(
        self,
        campaign_id: str,
        *,
        status: TargetStatus | None = None,
        after: str = "",
        limit: int = 1000,
    ) -> list[Target]:
        sql = (
            "SELECT device_id, stage, status, detail, applied_at FROM campaign_targets"
            " WHERE campaign_id = ? AND device_id > ?"
        )
        params: list[Any] = [campaign_id, after]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY device_id LIMIT ?"
        params.append(limit)
        with self.db.read() as tx:
            rows = tx.all(sql, params)
        return [
            Target(str(r[0]), int(r[1]), r[2], r[3], None if r[4] is None else int(r[4]))
            for r in rows
        ]

    def target_ids(
        self, tx: Transaction, campaign_id: str, status: TargetStatus, *, after: str, limit: int
    ) -> list[str]:
        rows = tx.all(
            "SELECT device_id FROM campaign_targets WHERE campaign_id = ? AND device_id > ?"
            " AND status = ? ORDER BY device_id LIMIT ?",
            (campaign_id, after, status, limit),
        )
        return [str(r[0]) for r in rows]

    def befores(
        self, tx: Transaction, campaign_id: str, device_ids: Sequence[str]
    ) -> dict[str, DeviceState]:
        out: dict[str, DeviceState] = {}
        for i in range(0, len(device_ids), 500):
            part = device_ids[i : i + 500]
            rows = tx.all(
                "SELECT device_id, before FROM campaign_targets WHERE campaign_id = ?"
                f" AND device_id IN ({', '.join('?' * len(part))}) AND before IS NOT NULL",
                [campaign_id, *part],
            )
            out.update((str(r[0]), state_from_json(str(r[1]))) for r in rows)
        return out

    def drift(self, campaign_id: str, selection: Selection, *, explicit: bool) -> tuple[int, int]:
        where, params = selection_sql(selection)
        with self.db.read() as tx:
            removed = tx.one(
                "SELECT COUNT(*) FROM campaign_targets t WHERE t.campaign_id = ? AND NOT EXISTS"
                f" (SELECT 1 FROM devices d WHERE d.id = t.device_id AND {where})",
                [campaign_id, *params],
            )
            added = (
                None
                if explicit
                else tx.one(
                    f"SELECT COUNT(*) FROM devices d WHERE {where} AND NOT EXISTS (SELECT 1"
                    " FROM campaign_targets t WHERE t.campaign_id = ? AND t.device_id = d.id)",
                    [*params, campaign_id],
                )
            )
        return (int(added[0]) if added else 0), int(removed[0]) if removed else 0

    def runnable(self, now: int) -> list[str]:
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT id FROM campaigns WHERE state = 'running'"
                " AND (lease_owner IS NULL OR lease_until < ?) ORDER BY created_at, id",
                (now,),
            )
        return [str(r[0]) for r in rows]

    def fleet_size(self) -> int:
        with self.db.read() as tx:
            row = tx.one("SELECT COUNT(*) FROM devices")
        return int(row[0]) if row else 0

    def stage_status(self, campaign_id: str, stage: int) -> dict[str, int]:
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT status, COUNT(*) FROM campaign_targets WHERE campaign_id = ?"
                " AND stage = ? GROUP BY status",
                (campaign_id, stage),
            )
        return {str(r[0]): int(r[1]) for r in rows}
