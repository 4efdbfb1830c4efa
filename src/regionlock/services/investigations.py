"""Gray-market investigations: which groups leak, where in a batch, and where devices flow.

The counting runs in DuckDB (`storage/investigations.py` over `storage/analytics.py`'s export);
the statistics are pure (`domain/leaks.py`, `domain/ranges.py`). This service checks the
question, picks the places and the presence rule, and puts the answers together with what an
analyst needs to read them: the window, the places, the rule, and a note when there is nothing
to count.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from regionlock import __version__
from regionlock.domain import leaks as leaks_module
from regionlock.domain import ranges as ranges_module
from regionlock.domain.errors import InvalidInput, NotFound
from regionlock.domain.leaks import BACKGROUND_METHODS, BackgroundMethod, GroupCount, LeakRow, rank
from regionlock.domain.policy import Policy, Presence
from regionlock.domain.ranges import scan_ranges
from regionlock.domain.regions import (
    ALPHA2,
    SUBDIVISION,
    country_problem,
    subdivision_problem,
)
from regionlock.geo.countries import country_names
from regionlock.policies import parse_policy
from regionlock.storage import Stores
from regionlock.storage import investigations as storage_investigations
from regionlock.storage.analytics import AnalyticsSource, Progress
from regionlock.storage.investigations import (
    GROUP_COLUMNS,
    FleetQuery,
    FlowRow,
    GroupBy,
    NamedPlaces,
    Places,
    PolicyPlaces,
    Window,
)
from regionlock.storage.policies import PolicyStore

# With no active policy to take it from, the presence rule of the shipped presets.
DEFAULT_PRESENCE = Presence(min_days=3, window_days=14)
MAX_PLACES = 300
# A run of consecutive IMEIs whose p-value is below this points at a carton; else a note says
# that none does.
RANGE_ALPHA = 0.05


class UnknownBatch(NotFound):
    """No registered device belongs to this batch."""


@dataclass(frozen=True, slots=True)
class Question:
    """What is asked: the places (None: the active policy's judgement), the window."""

    countries: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None

    def window(self) -> Window:
        """Check-ins from `since` (00:00 UTC) to the end of `until` (inclusive dates)."""

        def at(d: date | None) -> datetime | None:
            return None if d is None else datetime.combine(d, time())

        until = None if self.until is None else date.fromordinal(self.until.toordinal() + 1)
        return Window(at(self.since), at(until))


def parse_question(
    countries: Iterable[str] = (), since: str | date | None = None, until: str | date | None = None
) -> Question:
    """A question from what an operator typed: codes upper-cased and checked, ISO dates in
    order. InvalidInput names what is wrong; nothing is guessed."""
    known = set(country_names())
    codes: list[str] = []
    for raw in countries:
        for part in str(raw).split(","):
            code = part.strip().upper()
            if not code:
                continue
            shown = part.strip()[:40]
            if ALPHA2.fullmatch(code):
                problem = country_problem(code, known)
                if problem is not None:
                    raise InvalidInput(f"country {shown!r}: {problem}")
            elif SUBDIVISION.fullmatch(code):
                problem = subdivision_problem(code, known)
                if problem is not None:
                    raise InvalidInput(f"subdivision {shown!r}: {problem}")
            else:
                raise InvalidInput(
                    f"country {shown!r}: expected an ISO 3166-1 country (IR) or an ISO 3166-2 "
                    "subdivision (UA-43)"
                )
            if code not in codes:
                codes.append(code)
    if len(codes) > MAX_PLACES:
        raise InvalidInput(f"{len(codes)} places named: at most {MAX_PLACES}")
    first, last = _date("since", since), _date("until", until)
    if first is not None and last is not None and last < first:
        raise InvalidInput(f"--until {last} is before --since {first}: the window is empty")
    return Question(tuple(codes), first, last)


def _date(name: str, value: str | date | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{name} {value[:40]!r}: expected a date as YYYY-MM-DD (UTC days)"
        ) from None


def parse_by(value: str) -> GroupBy:
    if value not in GROUP_COLUMNS:
        raise InvalidInput(f"cannot group by {value[:40]!r}: use one of {', '.join(GROUP_COLUMNS)}")
    return value


@dataclass(frozen=True, slots=True)
class Scope:
    """What the numbers were computed over: the question as answered."""

    places: tuple[str, ...]  # the places that count as restricted
    rule: str  # how "established" was decided, in words
    since: date | None
    until: date | None
    checkins: int
    policy: str | None  # "id@version" of the active policy, if any

    def to_json(self) -> dict[str, Any]:
        return {
            "places": list(self.places),
            "rule": self.rule,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "checkins": self.checkins,
            "policy": self.policy,
        }


@dataclass(frozen=True, slots=True)
class LeakReport:
    by: str
    scope: Scope
    rows: list[LeakRow]
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RangeRow:
    first: str
    last: str
    devices: int
    restricted: int
    p_value: float
    llr: float
    first_position: int  # 1-based positions in the batch's IMEI order
    last_position: int

    def to_json(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "last": self.last,
            "devices": self.devices,
            "restricted": self.restricted,
            "p_value": self.p_value,
            "llr": self.llr,
            "first_position": self.first_position,
            "last_position": self.last_position,
        }


@dataclass(frozen=True, slots=True)
class RangeReport:
    batch: str
    scope: Scope
    devices: int  # seen devices of the batch, in order
    restricted: int
    rows: list[RangeRow]
    note: str | None = None


@dataclass(frozen=True, slots=True)
class FlowReport:
    scope: Scope
    rows: list[dict[str, Any]]
    note: str | None = None


@dataclass(slots=True)
class Findings:
    """Everything a report or a case keeps: the ranking, the flows, the ranges of every
    flagged batch, the places, and the snapshot's digest."""

    question: Question
    scope: Scope
    leaks: dict[GroupBy, LeakReport]
    flows: FlowReport
    ranges: list[RangeReport]
    places: list[dict[str, Any]]
    snapshot_sha256: str
    made_at: datetime
    code_version: str = __version__
    code_sha256: str = field(default_factory=lambda: code_digest())
    notes: list[str] = field(default_factory=list)

    def to_json(self, top: int | None = None) -> dict[str, Any]:
        """As JSON; with `top`, each ranking keeps its first `top` rows and every flagged one
        (a case's snapshot of a large fleet), and `leaks_omitted` says how many went."""
        kept = {
            by: [r for i, r in enumerate(report.rows) if top is None or i < top or r.flagged]
            for by, report in self.leaks.items()
        }
        return {
            "made_at": self.made_at.isoformat().replace("+00:00", "Z"),
            "code_version": self.code_version,
            "code_sha256": self.code_sha256,
            "snapshot_sha256": self.snapshot_sha256,
            "scope": self.scope.to_json(),
            "leaks": {by: [r.to_json() for r in rows] for by, rows in kept.items()},
            "leaks_omitted": {
                by: len(self.leaks[by].rows) - len(rows) for by, rows in kept.items()
            },
            "flows": self.flows.rows,
            "ranges": [
                {"batch": r.batch, "devices": r.devices, "restricted": r.restricted}
                | {"note": r.note}
                | {"rows": [x.to_json() for x in r.rows]}
                for r in self.ranges
            ],
            "places": self.places,
            "notes": self.notes,
        }


def is_findings(value: object) -> bool:
    """Whether `value` is a whole findings document (`Findings.to_json()`), as opposed to
    some other snapshot a case may hold (e.g. the rows of one ranking)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("scope"), dict)
        and isinstance(value.get("leaks"), dict)
        and isinstance(value.get("snapshot_sha256"), str)
    )


# The modules whose code computes a report's numbers: their digest goes into the report.
_COMPUTING_MODULES = (leaks_module, ranges_module, storage_investigations, sys.modules[__name__])


def code_digest() -> str:
    """SHA-256 over the source of the modules that count and test (in this order: the
    ranking, the range scan, the counting, this service), as installed."""
    digest = hashlib.sha256()
    for module in _COMPUTING_MODULES:
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


class Investigations:
    """The investigation service; `of(stores)` hands it the roles it needs."""

    def __init__(
        self,
        analytics: AnalyticsSource,
        policies: PolicyStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: Progress | None = None,
    ) -> None:
        self.analytics = analytics
        self.policies = policies
        self.clock = clock
        self.progress = progress

    @classmethod
    def of(cls, stores: Stores, **options: Any) -> Investigations:
        return cls(stores.analytics, stores.policies, **options)

    # -- the questions ------------------------------------------------------------------------

    def leaks(
        self,
        by: str,
        question: Question,
        *,
        alpha: float = 0.01,
        min_restricted: int = 3,
        background: str = "iterated",
    ) -> LeakReport:
        """The groups ranked by evidence of a leak (domain/leaks.py `rank`)."""
        group_by = parse_by(by)
        method = _background(background)
        with self._fleet(question) as (fleet, scope):
            return self._leaks(fleet, scope, group_by, alpha, min_restricted, method)

    def ranges(
        self, batch: str, question: Question, *, permutations: int = 999, limit: int = 10
    ) -> RangeReport:
        """Runs of consecutive IMEIs in `batch` where restricted devices concentrate."""
        with self._fleet(question) as (fleet, scope):
            if not fleet.has_batch(batch):
                raise UnknownBatch(f"no registered device is in batch {batch[:80]!r}")
            return self._ranges(fleet, scope, batch, permutations, limit)

    def flows(self, question: Question) -> FlowReport:
        """From each sales region to where its devices are established."""
        with self._fleet(question) as (fleet, scope):
            return self._flows(fleet, scope)

    def findings(
        self,
        question: Question,
        *,
        alpha: float = 0.01,
        min_restricted: int = 3,
        snapshot: Path | None = None,
        permutations: int = 999,
    ) -> Findings:
        """Everything at once, from one snapshot of the data: the ranking by each grouping,
        the flows, the ranges of every flagged batch, the places, the snapshot's SHA-256
        (and the snapshot itself written to `snapshot`, when given)."""
        with self._fleet(question) as (fleet, scope):
            leaks = {
                by: self._leaks(fleet, scope, by, alpha, min_restricted, "iterated")
                for by in GROUP_COLUMNS
            }
            ranges = [
                self._ranges(fleet, scope, row.group, permutations, 5)
                for row in leaks["batch"].rows
                if row.flagged
            ]
            places = [{"country": c, "subdivision": s, "devices": n} for c, s, n in fleet.places()]
            digest = fleet.snapshot(snapshot)
            notes = [r.note for r in leaks.values() if r.note][:1]
            return Findings(
                question=question,
                scope=scope,
                leaks=leaks,
                flows=self._flows(fleet, scope),
                ranges=ranges,
                places=places,
                snapshot_sha256=digest,
                made_at=self.clock(),
                notes=notes,
            )

    # -- the parts ------------------------------------------------------------------------------

    @contextmanager
    def _fleet(self, question: Question) -> Iterator[tuple[FleetQuery, Scope]]:
        policy = self._active()
        places, rule, codes = self._places(question, policy)
        with self.analytics.open(self.progress) as con:
            fleet = FleetQuery(con)
            fleet.prepare(places, question.window())
            scope = Scope(
                places=codes,
                rule=rule,
                since=question.since,
                until=question.until,
                checkins=fleet.checkins_in_window(),
                policy=f"{policy.id}@{policy.version}" if policy else None,
            )
            yield fleet, scope

    def _active(self) -> Policy | None:
        activation = self.policies.active()
        if activation is None:
            return None
        stored = activation.policy
        return parse_policy(stored.document, f"{stored.policy_id}@{stored.version}")

    def _places(
        self, question: Question, policy: Policy | None
    ) -> tuple[Places, str, tuple[str, ...]]:
        if question.countries:
            presence = policy.restrictions[0].presence if policy and policy.restrictions else None
            presence = presence or DEFAULT_PRESENCE
            source = "the active policy's" if policy and policy.restrictions else "the presets'"
            rule = (
                f"present on more than {presence.min_days} day(s) within {presence.window_days}"
                f" days (GPS or serving network; {source} presence rule), or first activated"
                " there"
            )
            return (
                NamedPlaces(question.countries, presence.min_days, presence.window_days),
                rule,
                question.countries,
            )
        if policy is None:
            raise InvalidInput(
                "no policy is active, so no place is restricted: name the places with --country"
            )
        codes = tuple(sorted({j.code for r in policy.restrictions for j in r.jurisdictions}))
        rule = (
            "as the policy in force decided at each check-in (the active one now:"
            f" {policy.id}@{policy.version}): present there on more days than its presence"
            " rule allows a traveller, or first activated there"
        )
        return PolicyPlaces(), rule, codes

    def _leaks(
        self,
        fleet: FleetQuery,
        scope: Scope,
        by: GroupBy,
        alpha: float,
        min_restricted: int,
        background: BackgroundMethod,
    ) -> LeakReport:
        counts = [
            GroupCount(g.group, g.devices, g.seen, g.restricted) for g in fleet.group_counts(by)
        ]
        rows = rank(counts, alpha=alpha, min_restricted=min_restricted, background=background)
        return LeakReport(by, scope, rows, _note(scope, sum(g.seen for g in counts)))

    def _ranges(
        self, fleet: FleetQuery, scope: Scope, batch: str, permutations: int, limit: int
    ) -> RangeReport:
        devices = fleet.batch_sequence(batch)
        flags = [1 if d.restricted else 0 for d in devices]
        windows = scan_ranges(flags, permutations=permutations, limit=limit)

        def label(i: int) -> str:
            d = devices[i]
            return d.imei or d.serial or d.device_id

        rows = [
            RangeRow(
                first=label(w.first_index),
                last=label(w.last_index),
                devices=w.devices,
                restricted=w.restricted,
                p_value=w.p_value,
                llr=w.llr,
                first_position=w.first_index + 1,
                last_position=w.last_index + 1,
            )
            for w in windows
        ]
        note = _note(scope, len(devices))
        if note is None and sum(flags) in (0, len(flags)):  # scan_ranges has nothing to compare
            note = "no run stands out: the batch has no restricted device seen, or all of them"
        elif note is None and (not rows or rows[0].p_value >= RANGE_ALPHA):
            note = (
                f"no run is significant at {RANGE_ALPHA:.0%}: the restricted devices are spread"
                " through the batch, not packed in one carton or pallet"
            )
        return RangeReport(batch, scope, len(devices), sum(flags), rows, note)

    def _flows(self, fleet: FleetQuery, scope: Scope) -> FlowReport:
        rows = fleet.flows()
        totals: dict[str, int] = {}
        for r in rows:
            totals[r.sales_region] = totals.get(r.sales_region, 0) + r.devices
        out = [_flow_json(r, totals[r.sales_region]) for r in rows]
        return FlowReport(scope, out, _note(scope, sum(totals.values())))


def _flow_json(r: FlowRow, total: int) -> dict[str, Any]:
    median, p90 = r.days_to_arrival if r.days_to_arrival else (None, None)
    return {
        "sales_region": r.sales_region,
        "destination": r.destination,
        "restricted": r.restricted,
        "devices": r.devices,
        "share": r.devices / total if total else 0.0,
        "median_days_to_arrival": median,
        "p90_days_to_arrival": p90,
    }


def _background(value: str) -> BackgroundMethod:
    if value not in BACKGROUND_METHODS:
        raise InvalidInput(
            f"unknown background {value[:40]!r}: use one of {', '.join(BACKGROUND_METHODS)}"
        )
    return value


def _note(scope: Scope, seen: int) -> str | None:
    """Why a result is empty, when it is."""
    if scope.checkins == 0:
        return "no check-ins in the window: nothing to count"
    if seen == 0:
        return "no device of these groups checked in within the window"
    return None
