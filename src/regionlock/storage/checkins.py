"""Check-in records: what was decided, where, from which kinds of signal (never raw values).

Contract (both backends): `record_many` runs in the caller's write transaction and raises
`DuplicateNonce` when a device used a nonce before (in the store or earlier in the same call),
so a replay writes nothing; `seen` tells which (device, nonce) pairs are already recorded, so a
batch can set a replay aside before writing; `recent` returns a device's check-ins newest first.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from regionlock.domain.decision import join_candidates, split_candidates
from regionlock.storage.db import Database, Pending, StoreConflict, Transaction, epoch_ms


class DuplicateNonce(Exception):
    """The (device, nonce) pair is already recorded."""


@functools.lru_cache(maxsize=4096)
def _json_list(items: tuple[str, ...]) -> str:
    """A list of codes as stored; a fleet's check-ins repeat a few hundred such lists."""
    return json.dumps(list(items))


@dataclass(frozen=True, slots=True)
class CheckinRow:
    """One check-in as stored: the outcome and its evidence summary, no raw signal."""

    device_id: str
    at: datetime
    counter: int
    nonce: str
    country: str | None
    subdivision: str | None
    confidence: float
    flags: Sequence[str]
    signal_kinds: Sequence[str]
    verdict: str
    reasons: Sequence[str]
    policy_id: str
    policy_version: str
    subdivision_candidates: Sequence[str] = ()

    def params(self) -> tuple[Any, ...]:
        return (
            self.device_id,
            epoch_ms(self.at),
            self.counter,
            self.nonce,
            self.country,
            self.subdivision,
            self.confidence,
            _json_list(tuple(self.flags)),
            _json_list(tuple(self.signal_kinds)),
            self.verdict,
            _json_list(tuple(self.reasons)),
            self.policy_id,
            self.policy_version,
            join_candidates(self.subdivision_candidates) or None,
        )


_INSERT = (
    "INSERT INTO checkins (device_id, at, counter, nonce, country, subdivision,"
    " confidence, flags, signal_kinds, verdict, reasons, policy_id,"
    " policy_version, subdivision_candidates)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# PostgreSQL, many rows in one statement: `CheckinRow.params`' columns as arrays.
_INSERT_PG = (
    "INSERT INTO checkins (device_id, at, counter, nonce, country, subdivision,"
    " confidence, flags, signal_kinds, verdict, reasons, policy_id,"
    " policy_version, subdivision_candidates)"
    " SELECT * FROM unnest(?::text[], ?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[],"
    " ?::float8[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])"
)
# Pairs per look-up statement: 2 parameters each, far below either backend's limit.
_SEEN_CHUNK = 400


def seen_statement(since: bool) -> str:
    """PostgreSQL's replay look-up: (device, nonce) arrays in, the pairs recorded out (from a
    time on, the third parameter, when `since`)."""
    after = " AND c.at >= ?" if since else ""
    return (
        "SELECT v.device_id, v.nonce FROM unnest(?::text[], ?::text[]) AS v(device_id, nonce)"
        " CROSS JOIN LATERAL (SELECT 1 FROM checkins AS c WHERE c.device_id = v.device_id"
        f" AND c.nonce = v.nonce{after} LIMIT 1) AS hit"
    )


class CheckinStore(Protocol):
    """Recorded check-ins (module docstring: the contract)."""

    def record_many(self, tx: Transaction, rows: Sequence[CheckinRow]) -> None:
        """Insert in order; DuplicateNonce if a (device, nonce) pair repeats."""
        ...

    def record_many_later(self, tx: Transaction, rows: Sequence[CheckinRow]) -> Pending[None]:
        """`record_many`, sent without waiting in a pipelined transaction. A pair recorded
        before fails the transaction where the server's answer is first read, maybe in another
        store's call: `is_duplicate_nonce` tells that error."""
        ...

    def is_duplicate_nonce(self, exc: BaseException) -> bool:
        """Whether `exc` is the store refusing a (device, nonce) pair recorded before."""
        ...

    def seen(
        self, tx: Transaction, pairs: Sequence[tuple[str, str]], *, since: int | None = None
    ) -> set[tuple[str, str]]:
        """Which of these (device id, nonce) pairs are already recorded (at `since`, epoch ms,
        or later, if given: on PostgreSQL only the partitions from then on are read)."""
        ...

    def seen_later(
        self, tx: Transaction, pairs: Sequence[tuple[str, str]], *, since: int | None = None
    ) -> Pending[set[tuple[str, str]]]:
        """`seen`, sent without waiting in a pipelined transaction."""
        ...

    def recent(self, device_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """A device's check-ins, newest first."""
        ...

    def prepare_partitions(
        self, now: datetime, *, period: str = "month", ahead: int | None = None
    ) -> list[str]:
        """Make sure the period (`month` or `day`, UTC) of `now` and the next `ahead`
        (default `PARTITION_AHEAD`) have their partitions (PostgreSQL; nothing on SQLite);
        the partitions made now."""
        ...


@dataclass(frozen=True, slots=True)
class Partition:
    """A partition of PostgreSQL's check-in history: rows with `start` <= at < `end` (epoch
    ms; None: unbounded), or every row no other partition takes (`default`)."""

    name: str
    start: int | None
    end: int | None
    default: bool = False


# How many periods after the current one are kept prepared: two months, or two weeks of days
# (each service process checks every ten minutes, so a day is made long before it starts).
PARTITION_AHEAD = {"month": 2, "day": 14}
# Making a partition: how long it may wait for a lock before giving up (check-ins
# queue behind it meanwhile), and how often it tries, a growing pause apart.
PARTITION_LOCK_TIMEOUT_MS = 200
PARTITION_ATTEMPTS = 5
PARTITION_RETRY_S = 0.5

_BOUND = re.compile(r"FOR VALUES FROM \((MINVALUE|'?-?\d+'?)\) TO \((MAXVALUE|'?-?\d+'?)\)")
PARTITION_NAME = re.compile(r"checkins_[a-z0-9_]+")


def _bound(text: str) -> int | None:
    return None if text.endswith("VALUE") else int(text.strip("'"))


def partitions(tx: Transaction) -> list[Partition]:
    """The partitions of the check-in history, by start (none on SQLite)."""
    if tx.dialect != "postgresql":
        return []
    rows = tx.all(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'checkins'::regclass"
    )
    out = []
    for name, bound in rows:
        if bound == "DEFAULT":
            out.append(Partition(str(name), None, None, default=True))
            continue
        m = _BOUND.fullmatch(str(bound))
        if m is None:
            raise ValueError(f"check-in partition {name}: unexpected bound {bound!r}")
        out.append(Partition(str(name), _bound(m.group(1)), _bound(m.group(2))))
    return sorted(out, key=lambda p: (p.default, p.start if p.start is not None else -(2**63)))


def _gaps(start: int, end: int, held: Sequence[Partition]) -> list[tuple[int, int]]:
    """The spans of [start, end) that none of `held` (sorted by start) covers, in order."""
    out: list[tuple[int, int]] = []
    lo = start
    for p in held:
        p_start = p.start if p.start is not None else -(2**63)
        p_end = p.end if p.end is not None else 2**63
        if p_end <= lo:
            continue
        if p_start >= end:
            break
        if p_start > lo:
            out.append((lo, p_start))
        lo = p_end
        if lo >= end:
            return out
    out.append((lo, end))
    return out


def month_start(year: int, month: int) -> int:
    """The first millisecond of a UTC month (month may run past 12)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return epoch_ms(datetime(year, month, 1, tzinfo=UTC))


def period_bounds(now: datetime, period: str, k: int) -> tuple[int, int, str]:
    """The `k`-th UTC month or day after the one of `now`: its start and end (epoch ms) and
    its partition's name (`checkins_y2026m12`, `checkins_y2026m12d07`)."""
    now = now.astimezone(UTC)
    if period == "month":
        start = month_start(now.year, now.month + k)
        end = month_start(now.year, now.month + k + 1)
        form = "y%Ym%m"
    else:
        day = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=k)
        start, end = epoch_ms(day), epoch_ms(day + timedelta(days=1))
        form = "y%Ym%md%d"
    return start, end, "checkins_" + datetime.fromtimestamp(start / 1000, UTC).strftime(form)


class SqlCheckinStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record_many(self, tx: Transaction, rows: Sequence[CheckinRow]) -> None:
        """Insert `rows` in order; DuplicateNonce (and nothing written by the caller's
        transaction survives, since it rolls back) if any (device, nonce) pair repeats."""
        try:
            self.record_many_later(tx, rows).get()
        except Exception as exc:
            if self.is_duplicate_nonce(exc):
                raise DuplicateNonce("a nonce this device used before") from None
            raise

    def record_many_later(self, tx: Transaction, rows: Sequence[CheckinRow]) -> Pending[None]:
        pairs = {(r.device_id, r.nonce) for r in rows}
        if len(pairs) != len(rows):
            raise DuplicateNonce("the same nonce twice in one batch")
        if tx.dialect == "postgresql" and len(rows) > 1:
            # One statement for the group (the rows in order), not one per row: 64 rows
            # took 2.8 ms of the client's time as pipelined single INSERTs.
            params = [r.params() for r in rows]
            columns = [list(column) for column in zip(*params, strict=True)]
            sent = tx.send(_INSERT_PG, columns, arrays=True)
        else:
            sent = tx.send_many(_INSERT, [r.params() for r in rows])

        def get() -> None:
            sent.rowcount()  # waits for the answer: a pair recorded before raises by then

        return Pending(get)

    def is_duplicate_nonce(self, exc: BaseException) -> bool:
        if not self.db.is_unique_violation(exc):
            return False
        if self.db.dialect == "sqlite":
            return "checkins.device_id, checkins.nonce" in str(exc)
        # PostgreSQL names the partition (checkins_2026_12, checkins_default, ...) and its
        # UNIQUE (device_id, nonce), checkins_..._device_id_nonce_key, not its primary key.
        diag = getattr(exc, "diag", None)
        table = getattr(diag, "table_name", None) or ""
        constraint = getattr(diag, "constraint_name", None) or ""
        return table.startswith("checkins") and constraint.endswith("_device_id_nonce_key")

    def seen(
        self, tx: Transaction, pairs: Sequence[tuple[str, str]], *, since: int | None = None
    ) -> set[tuple[str, str]]:
        return self.seen_later(tx, pairs, since=since).get()

    def seen_later(
        self, tx: Transaction, pairs: Sequence[tuple[str, str]], *, since: int | None = None
    ) -> Pending[set[tuple[str, str]]]:
        unique = sorted(set(pairs))
        # From `since` on: PostgreSQL then probes the partitions of those months and the
        # default one, not every month kept (each probe of each partition cost the group).
        if tx.dialect == "postgresql":
            if not unique:
                return Pending(set)
            # One index probe per pair and partition, whatever the statistics say. As a join
            # on VALUES, the planner hashed the whole month's partition for every group while
            # its row count looked small (3.4 ms a group of 64 at 8,000 rows, analysed or
            # not, and growing with the month; this form 0.9 ms, the same at any size).
            # LATERAL ... LIMIT 1 makes it look up each pair on its own, by the UNIQUE
            # (device_id, nonce) index of each partition from `since` on.
            sent = [
                tx.send(
                    seen_statement(since is not None),
                    [[d for d, _ in unique], [n for _, n in unique]]
                    + ([] if since is None else [since]),
                )
            ]
        else:
            after = "" if since is None else " AND c.at >= ?"
            sent = []
            for i in range(0, len(unique), _SEEN_CHUNK):
                chunk = unique[i : i + _SEEN_CHUNK]
                values = ", ".join(["(?, ?)"] * len(chunk))
                # SQLite: a join on VALUES, not a row-value IN. It plans the IN as a full
                # scan, the join as one probe of the UNIQUE (device_id, nonce) index per pair.
                params: list[Any] = [x for pair in chunk for x in pair]
                sent.append(
                    tx.send(
                        f"SELECT c.device_id, c.nonce FROM (VALUES {values}) AS v"
                        " JOIN checkins AS c ON c.device_id = v.column1 AND c.nonce = v.column2"
                        + after,
                        params if since is None else [*params, since],
                    )
                )

        def get() -> set[tuple[str, str]]:
            return {(str(r[0]), str(r[1])) for part in sent for r in part.rows()}

        return Pending(get)

    def prepare_partitions(
        self, now: datetime, *, period: str = "month", ahead: int | None = None
    ) -> list[str]:
        if period not in PARTITION_AHEAD:
            raise ValueError(f"check-in partitions by {period!r}: expected month or day")
        if self.db.dialect != "postgresql":
            return []
        made: list[str] = []
        count = PARTITION_AHEAD[period] if ahead is None else ahead
        for k in range(count + 1):
            start, end, name = period_bounds(now, period, k)
            for attempt in range(PARTITION_ATTEMPTS):
                try:
                    made += self._prepare(start, end, name)
                    break
                except StoreConflict:
                    if attempt == PARTITION_ATTEMPTS - 1:
                        raise
                    time.sleep(PARTITION_RETRY_S * (attempt + 1))
        return made

    def _prepare(self, start: int, end: int, name: str) -> list[str]:
        """Partitions for what of [start, end) no other partition covers, all in one
        transaction: the whole period as `name`, or each gap between partitions made before
        (a month made before days were chosen, or the other way round; the legacy one ends at
        its newest row, wherever that falls) as `name_from<start>`. [] when none is missing."""
        with self.db.write() as tx:
            # One preparer at a time (each service process runs one), until commit.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext('regionlock checkins partitions'))")
            # Attaching locks the default partition, which every check-in's replay look-up
            # reads. Waiting there behind a check-in while later check-ins queued behind this
            # made deadlocks whose victim was a check-in (503). Now this transaction gives up
            # first (lock_timeout, under the server's 1 s deadlock_timeout) and tries again.
            tx.execute(f"SET LOCAL lock_timeout = '{PARTITION_LOCK_TIMEOUT_MS}ms'")
            made: list[str] = []
            for lo, hi in _gaps(start, end, [p for p in partitions(tx) if not p.default]):
                clash = tx.one(
                    "SELECT 1 FROM checkins_default WHERE at >= ? AND at < ? LIMIT 1", (lo, hi)
                )
                if clash is not None:
                    # Rows of that span are in the default partition already (a clock that
                    # ran ahead): they stay there, and retention deletes them row by row.
                    continue
                part = name if lo == start else f"{name}_from{lo}"
                # Made apart and then attached: attaching locks the parent less than
                # CREATE ... PARTITION OF would (check-ins go on meanwhile).
                tx.execute(f"CREATE TABLE {part} (LIKE checkins INCLUDING DEFAULTS)")
                tx.execute(f"ALTER TABLE {part} ADD PRIMARY KEY (id)")
                tx.execute(f"ALTER TABLE {part} ADD UNIQUE (device_id, nonce)")
                tx.execute(f"ALTER TABLE {part} ADD CHECK (at >= {int(lo)} AND at < {int(hi)})")
                tx.execute(
                    f"ALTER TABLE checkins ATTACH PARTITION {part}"
                    f" FOR VALUES FROM ({int(lo)}) TO ({int(hi)})"
                )
                made.append(part)
        return made

    def recent(self, device_id: str, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT at, counter, country, subdivision, confidence, flags,"
                " signal_kinds, verdict, reasons, policy_id, policy_version,"
                " subdivision_candidates"
                " FROM checkins WHERE device_id = ? ORDER BY at DESC, id DESC LIMIT ?",
                (device_id, limit),
            )
        return [
            {
                "at": datetime.fromtimestamp(r[0] / 1000, UTC).isoformat(),
                "counter": r[1],
                "country": r[2],
                "subdivision": r[3],
                "subdivision_candidates": split_candidates(r[11]) if r[11] else [],
                "confidence": r[4],
                "flags": json.loads(r[5]),
                "signals": json.loads(r[6]),
                "verdict": r[7],
                "reasons": json.loads(r[8]),
                "policy": f"{r[9]}@{r[10]}",
            }
            for r in rows
        ]
