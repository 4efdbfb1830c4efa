"""The counts behind an investigation, as DuckDB queries over `storage/analytics.py`'s tables.

Every figure of `regionlock investigate` starts from one per-device table, `fleet`, built once
per question (`FleetQuery.prepare`): each registered device with its groups (distributor, batch,
model, sales region), its first IMEI, whether it checked in within the window (`seen`), whether
it is **established** in a restricted place there (`restricted`), the place, and when it got
there. Two rules say what "established" means (docs/investigations.md, "What is counted"):

- `PolicyPlaces`: the active policy's own judgement, as recorded with each check-in: a device is
  established where a check-in in the window was decided with `presence.established` (present
  on more than the rule's minimum of days) or `presence.first_activation` (first activated
  there). Travellers got `presence.grace`, IP-only places `location.no_presence_evidence`, and
  neither counts.
- `NamedPlaces`: places the operator names (`--country`), which the active policy may not
  restrict: recomputed from the check-ins with the same presence rule. A day counts when a
  check-in placed the device there with presence evidence (GPS or a serving network, not
  flagged `no_presence_evidence` or `low_confidence`: `domain.device.counts_as_presence`); the
  device is established once more than `min_days` such days fall within `window_days`, or when
  its first activation (kept in its state) was there and it checked in within the window (it
  then arrived at its first check-in in the window).

No Python loop touches a row: the queries run in DuckDB and return one row per group, per
device of one batch (`batch_sequence`), or per flow.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import duckdb

from regionlock.domain.location import LOW_CONFIDENCE_FLAG, NO_PRESENCE_EVIDENCE

GroupBy = Literal["distributor", "batch", "model", "sales_region"]
GROUP_COLUMNS: tuple[GroupBy, ...] = ("distributor", "batch", "model", "sales_region")
NO_GROUP = "(none)"  # the group of devices registered without one
ESTABLISHED_REASONS = ("presence.established", "presence.first_activation")
# A check-in with either flag is no day of presence (`domain.device.counts_as_presence`).
NOT_PRESENCE_FLAGS = [NO_PRESENCE_EVIDENCE, LOW_CONFIDENCE_FLAG]


@dataclass(frozen=True, slots=True)
class PolicyPlaces:
    """Established where the active policy said so (`ESTABLISHED_REASONS`)."""


@dataclass(frozen=True, slots=True)
class NamedPlaces:
    """Established in one of `codes` (ISO 3166-1 countries or ISO 3166-2 subdivisions) by the
    presence rule `min_days` / `window_days`, or first activated there."""

    codes: tuple[str, ...]
    min_days: int
    window_days: int


Places = PolicyPlaces | NamedPlaces


@dataclass(frozen=True, slots=True)
class Window:
    """Check-ins at or after `since` and before `until` (naive UTC; None: unbounded)."""

    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class GroupRow:
    group: str
    devices: int
    seen: int
    restricted: int


@dataclass(frozen=True, slots=True)
class BatchDevice:
    device_id: str
    imei: str | None
    serial: str | None
    restricted: bool


@dataclass(frozen=True, slots=True)
class FlowRow:
    sales_region: str
    destination: str
    restricted: bool
    devices: int
    days_to_arrival: tuple[float, float] | None  # median and 90th percentile, in days


def _window_sql(window: Window, column: str = "c.checkin_at") -> tuple[str, list[Any]]:
    clauses, params = ["TRUE"], []
    if window.since is not None:
        clauses.append(f"{column} >= ?")
        params.append(window.since)
    if window.until is not None:
        clauses.append(f"{column} < ?")
        params.append(window.until)
    return " AND ".join(clauses), params


# One row per device seen in the window: when it first checked in there.
_SEEN = """
CREATE OR REPLACE TEMP TABLE seen AS
SELECT device_id, min(checkin_at) AS first_at FROM checkins AS c WHERE {where} GROUP BY device_id
"""

# PolicyPlaces: the earliest check-in in the window that the policy judged established.
_POLICY_ESTABLISHED = """
CREATE OR REPLACE TEMP TABLE established AS
SELECT device_id,
       arg_min(country, checkin_at) AS country,
       arg_min(subdivision, checkin_at) AS subdivision,
       min(checkin_at) AS arrived_at
FROM checkins AS c
WHERE {where} AND list_has_any(reasons, ?::VARCHAR[])
GROUP BY device_id
"""

# NamedPlaces: days of presence in each named place, then the first day on which more than
# min_days of them fall within window_days (a RANGE window over the days), or a first
# activation there. A subdivision code matches a check-in placed in it, or narrowed to
# several candidates that are all named (as the decision counts joined days).
_NAMED_ESTABLISHED = """
CREATE OR REPLACE TEMP TABLE established AS
WITH codes AS (SELECT unnest(?::VARCHAR[]) AS code),
days AS (
    SELECT c.device_id, k.code, CAST(c.checkin_at AS DATE) - DATE '1970-01-01' AS day,
           min(c.checkin_at) AS day_at, arg_min(c.country, c.checkin_at) AS country,
           arg_min(c.subdivision, c.checkin_at) AS subdivision
    FROM checkins AS c JOIN codes AS k ON
        k.code = c.country OR k.code = c.subdivision
        OR (c.subdivision IS NULL AND len(c.subdivision_candidates) > 0
            AND list_contains(c.subdivision_candidates, k.code)
            AND list_has_all(?::VARCHAR[], c.subdivision_candidates))
    WHERE {where} AND c.country IS NOT NULL AND NOT list_has_any(c.flags, ?::VARCHAR[])
    GROUP BY ALL
),
counted AS (
    SELECT *, count(*) OVER (
        PARTITION BY device_id, code ORDER BY day
        RANGE BETWEEN {preceding} PRECEDING AND CURRENT ROW
    ) AS days_in_window
    FROM days
),
present AS (
    SELECT device_id, arg_min(country, day_at) AS country,
           arg_min(subdivision, day_at) AS subdivision, min(day_at) AS arrived_at
    FROM counted WHERE days_in_window > ? GROUP BY device_id
),
activated AS (
    SELECT d.id AS device_id, d.first_country AS country,
           CASE WHEN contains(d.first_subdivision, '|') THEN NULL ELSE d.first_subdivision END
               AS subdivision,
           s.first_at AS arrived_at
    FROM devices AS d JOIN seen AS s ON s.device_id = d.id
    JOIN codes AS k ON k.code = d.first_country OR k.code = d.first_subdivision
        OR (contains(d.first_subdivision, '|')
            AND list_contains(string_split(d.first_subdivision, '|'), k.code)
            AND list_has_all(?::VARCHAR[], string_split(d.first_subdivision, '|')))
)
SELECT device_id, arg_min(country, arrived_at) AS country,
       arg_min(subdivision, arrived_at) AS subdivision, min(arrived_at) AS arrived_at
FROM (SELECT * FROM present UNION ALL SELECT * FROM activated)
GROUP BY device_id
"""

# Every registered device with its groups and what the window says of it.
_FLEET = """
CREATE OR REPLACE TEMP TABLE fleet AS
SELECT d.id AS device_id,
       coalesce(d.distributor, '{none}') AS distributor, coalesce(d.batch, '{none}') AS batch,
       coalesce(d.model, '{none}') AS model, coalesce(d.sales_region, '{none}') AS sales_region,
       d.imeis[1] AS imei, d.serial,
       s.device_id IS NOT NULL AS seen, s.first_at,
       e.device_id IS NOT NULL AS restricted, e.country AS place_country,
       e.subdivision AS place_subdivision, e.arrived_at
FROM devices AS d
LEFT JOIN seen AS s ON s.device_id = d.id
LEFT JOIN established AS e ON e.device_id = d.id
""".replace("{none}", NO_GROUP)

# Where a device not established in a restricted place lives: the country with the most days
# of presence in the window (the latest on a tie); "(unknown)" without presence evidence.
_HOMES = """
CREATE OR REPLACE TEMP TABLE homes AS
SELECT device_id, arg_max(country, (days, last_day)) AS country FROM (
    SELECT device_id, country, count(DISTINCT CAST(checkin_at AS DATE)) AS days,
           max(checkin_at) AS last_day
    FROM checkins AS c
    WHERE {where} AND country IS NOT NULL AND NOT list_has_any(flags, ?::VARCHAR[])
    GROUP BY device_id, country
) GROUP BY device_id
"""


class FleetQuery:
    """The investigation's questions over one DuckDB connection holding `checkins` and
    `devices` (storage/analytics.py). `prepare` first; then any of the others, as often as
    needed, answer from the same per-device table."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._window = Window()

    def prepare(self, places: Places, window: Window) -> None:
        """Build `fleet` for `places` in `window` (replacing any earlier one)."""
        where, params = _window_sql(window)
        con = self.con
        con.execute(_SEEN.format(where=where), params)
        if isinstance(places, NamedPlaces):
            codes = list(places.codes)
            # The frame's bound is SQL text: a whole number checked here, never the caller's text.
            preceding = int(places.window_days) - 1
            if preceding < 0:
                raise ValueError("window_days must be at least 1")
            con.execute(
                _NAMED_ESTABLISHED.format(where=where, preceding=preceding),
                [codes, codes, *params, NOT_PRESENCE_FLAGS, int(places.min_days), codes],
            )
        else:
            con.execute(
                _POLICY_ESTABLISHED.format(where=where), [*params, list(ESTABLISHED_REASONS)]
            )
        con.execute(_FLEET)
        self._window = window

    def checkins_in_window(self) -> int:
        where, params = _window_sql(self._window)
        row = self.con.execute(f"SELECT count(*) FROM checkins AS c WHERE {where}", params)
        found = row.fetchone()
        return int(found[0]) if found else 0

    def group_counts(self, by: GroupBy) -> list[GroupRow]:
        """Per group: devices registered, seen in the window, established in a restricted
        place; by group name."""
        if by not in GROUP_COLUMNS:
            raise ValueError(f"cannot group by {by!r}")
        rows = self.con.execute(
            f"SELECT {by}, count(*), count(*) FILTER (seen),"
            f" count(*) FILTER (seen AND restricted) FROM fleet GROUP BY {by} ORDER BY {by}"
        ).fetchall()
        return [GroupRow(str(g), int(n), int(s), int(r)) for g, n, s, r in rows]

    def batch_sequence(self, batch: str) -> list[BatchDevice]:
        """The batch's devices seen in the window, in IMEI order (first slot; then serial,
        then id for devices without one): the order cartons and pallets are packed in."""
        rows = self.con.execute(
            "SELECT device_id, imei, serial, restricted FROM fleet"
            " WHERE batch = ? AND seen ORDER BY imei NULLS LAST, serial NULLS LAST, device_id",
            [batch],
        ).fetchall()
        return [BatchDevice(str(d), i, s, bool(r)) for d, i, s, r in rows]

    def has_batch(self, batch: str) -> bool:
        """Whether any registered device is in `batch`."""
        found = self.con.execute("SELECT count(*) FROM fleet WHERE batch = ?", [batch]).fetchone()
        return bool(found and found[0])

    def flows(self) -> list[FlowRow]:
        """From each sales region to where its devices seen in the window are established:
        the restricted place's country, or else the country where it spent most days."""
        where, params = _window_sql(self._window)
        self.con.execute(_HOMES.format(where=where), [*params, NOT_PRESENCE_FLAGS])
        rows = self.con.execute(
            """
            SELECT f.sales_region,
                   CASE WHEN f.restricted THEN f.place_country
                        ELSE coalesce(h.country, '(unknown)') END AS destination,
                   f.restricted, count(*) AS devices,
                   quantile_cont(epoch(f.arrived_at - f.first_at) / 86400.0, 0.5)
                       FILTER (f.restricted),
                   quantile_cont(epoch(f.arrived_at - f.first_at) / 86400.0, 0.9)
                       FILTER (f.restricted)
            FROM fleet AS f LEFT JOIN homes AS h ON h.device_id = f.device_id
            WHERE f.seen
            GROUP BY ALL
            ORDER BY f.sales_region, devices DESC, destination
            """
        ).fetchall()
        return [
            FlowRow(
                str(region),
                str(dest),
                bool(restricted),
                int(n),
                (float(median), float(p90)) if median is not None and p90 is not None else None,
            )
            for region, dest, restricted, n, median, p90 in rows
        ]

    def places(self) -> list[tuple[str, str | None, int]]:
        """Restricted devices by the country and subdivision they are established in."""
        rows = self.con.execute(
            "SELECT place_country, place_subdivision, count(*) FROM fleet WHERE restricted"
            " GROUP BY ALL ORDER BY 3 DESC, 1, 2 NULLS FIRST"
        ).fetchall()
        return [(str(c), s, int(n)) for c, s, n in rows]

    def snapshot(self, out: Path | None = None) -> str:
        """The SHA-256 of the per-device table every figure is computed from, as CSV sorted by
        device id (written to `out` too when given): anyone holding that file can recompute
        each number of a report."""
        with tempfile.TemporaryDirectory(prefix="regionlock-snapshot-") as tmp:
            path = out if out is not None else Path(tmp) / "fleet.csv"
            self.con.execute(
                f"COPY (SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM fleet ORDER BY device_id)"
                " TO ? (FORMAT csv, HEADER true)",
                [str(path)],
            )
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()


SNAPSHOT_COLUMNS: Sequence[str] = (
    "device_id",
    "distributor",
    "batch",
    "model",
    "sales_region",
    "imei",
    "serial",
    "seen",
    "first_at",
    "restricted",
    "place_country",
    "place_subdivision",
    "arrived_at",
)
