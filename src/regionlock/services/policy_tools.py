"""Policy use cases for operators: explain one verdict, diff two versions, simulate a fleet."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from regionlock.domain.decision import PresenceHistory, Verdict, decide
from regionlock.domain.device import presence_codes
from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import load_json
from regionlock.domain.location import LocationEstimate
from regionlock.domain.messages import Message
from regionlock.domain.policy import DeviceFacts, Jurisdiction, Policy, Restriction


def history_for(location: LocationEstimate, days_before: int, today: date) -> PresenceHistory:
    """A history in which the device was where it is now on each of the `days_before` days."""
    codes = frozenset(presence_codes(location))
    if not codes or days_before <= 0:
        return PresenceHistory()
    return PresenceHistory({today - timedelta(days=d): codes for d in range(1, days_before + 1)})


def verdict_json(v: Verdict) -> dict[str, Any]:
    """The machine-readable verdict (`policy explain --json`)."""
    return {
        "verdict": v.action.value,
        "reasons": list(v.reasons),
        "explanation": v.explanation,
        "policy": {"id": v.policy_id, "version": v.policy_version},
        "rule": v.rule,
        "message": v.message,
        "language": v.language,
        "contact": v.contact,
        "lease": {
            "expires": v.lease.expires.isoformat(),
            "offline_action": v.lease.offline_action.value,
            "offline_lock_after_days": v.lease.offline_lock_after_days,
            "offline_warn_days": v.lease.offline_warn_days,
        },
    }


# ------------------------------------------------------------------------------------------
# diff


def _jurisdiction_text(j: Jurisdiction) -> str:
    until = f" until {j.end.isoformat()}" if j.end else ""
    return f"{j.code} from {j.start.isoformat()}{until}"


def _rule_fields(r: Restriction) -> dict[str, str]:
    scope = {k: sorted(v) for k, v in vars_of(r.scope).items() if v}
    return {
        "action": r.action.value,
        "presence": (
            f"more than {r.presence.min_days} day(s) in {r.presence.window_days}, "
            f"first activation locks: {r.presence.first_activation_locks}, "
            f"grace: {r.presence.grace_action.value}"
        ),
        "warn_days": str(r.warn_days),
        "scope": json.dumps(scope, sort_keys=True) if scope else "all devices",
        "message": _message_text(r.message),
        "contact": r.contact,
    }


def _message_changes(where: str, old: Message, new: Message) -> list[str]:
    """One line per language whose text changed, came or went, and one for a new default."""
    a, b = dict(old.texts), dict(new.texts)
    lines = [
        f"~ {where}.{language}: {a.get(language, '')!r} -> {b.get(language, '')!r}"
        for language in dict.fromkeys([*a, *b])
        if a.get(language) != b.get(language)
    ]
    if old and new and old.languages[0] != new.languages[0]:
        lines.append(f"~ {where} default: {old.languages[0]} -> {new.languages[0]}")
    return lines


def _message_text(message: Message) -> str:
    """A message as the diff shows it: its text, or each language's (a translation counts)."""
    shown = message.to_json()
    return shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False)


def vars_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def diff_policies(old: Policy, new: Policy) -> list[str]:
    """Human-readable lines: every rule added, removed or changed, and policy-wide changes."""
    lines: list[str] = []
    if (old.id, old.version) != (new.id, new.version):
        lines.append(f"policy: {old.id} {old.version} -> {new.id} {new.version}")
    for name in ("min_lock_confidence", "contact"):
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            lines.append(f"~ policy.{name}: {a!r} -> {b!r}")
    lines += _message_changes("policy.message", old.message, new.message)
    if old.lease != new.lease:
        lines.append(f"~ lease: {vars_of(old.lease)} -> {vars_of(new.lease)}")
    before = {r.id: r for r in old.restrictions}
    after = {r.id: r for r in new.restrictions}
    for rid in sorted(before.keys() - after.keys()):
        r = before[rid]
        lines.append(
            f"- restriction {rid}: {r.action.value} in "
            + ", ".join(_jurisdiction_text(j) for j in r.jurisdictions)
        )
    for rid in sorted(after.keys() - before.keys()):
        r = after[rid]
        lines.append(
            f"+ restriction {rid}: {r.action.value} in "
            + ", ".join(_jurisdiction_text(j) for j in r.jurisdictions)
        )
    for rid in sorted(before.keys() & after.keys()):
        a, b = before[rid], after[rid]
        if a == b:
            continue
        ja = {_jurisdiction_text(j) for j in a.jurisdictions}
        jb = {_jurisdiction_text(j) for j in b.jurisdictions}
        changes = [f"-{t}" for t in sorted(ja - jb)] + [f"+{t}" for t in sorted(jb - ja)]
        fa, fb = _rule_fields(a), _rule_fields(b)
        changes += [f"{k}: {fa[k]!r} -> {fb[k]!r}" for k in fa if fa[k] != fb[k]]
        lines.append(f"~ restriction {rid}: " + "; ".join(changes))
    for kind, olds, news in (
        ("activation", old.activation_rules, new.activation_rules),
        ("exemption", old.exemptions, new.exemptions),
    ):
        for item in olds:
            if item not in news:
                lines.append(f"- {kind} {vars_of(item)}")
        for item in news:
            if item not in olds:
                lines.append(f"+ {kind} {vars_of(item)}")
    return lines


# ------------------------------------------------------------------------------------------
# simulate


@dataclass
class SimulationReport:
    """How many devices per country and verdict a policy change would move."""

    devices: int = 0
    errors: list[str] = field(default_factory=list)
    before: Counter[str] = field(default_factory=Counter)
    after: Counter[str] = field(default_factory=Counter)
    changes: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # country, old, new

    def to_json(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "errors": len(self.errors),
            "before": dict(sorted(self.before.items())),
            "after": dict(sorted(self.after.items())),
            "changes": [
                {"country": c, "from": a, "to": b, "devices": n}
                for (c, a, b), n in sorted(self.changes.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
        }


FLEET_FIELDS = {
    "id",
    "imei",
    "model",
    "sku",
    "sales_region",
    "distributor",
    "batch",
    "country",
    "subdivision",
    "confidence",
    "flags",
    "days_present",
    "first_country",
    "first_subdivision",
}


def read_fleet(lines: Iterable[str], csv_format: bool) -> Iterator[dict[str, Any] | InvalidInput]:
    """Fleet records from JSON Lines or CSV (header row); bad rows become InvalidInput."""
    if csv_format:
        reader = csv.DictReader(lines)
        for row in reader:
            n = reader.line_num
            if None in row:  # csv puts cells beyond the header under the key None
                yield InvalidInput(f"line {n}: more cells than the header has columns")
                continue
            yield {k: v for k, v in row.items() if v not in ("", None)} | {"_line": n}
        return
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            yield InvalidInput(f"line {n}: empty line")
            continue
        try:
            obj = load_json(line, f"line {n}")
        except InvalidInput as exc:
            yield exc
            continue
        if not isinstance(obj, dict):
            yield InvalidInput(f"line {n}: expected a JSON object")
            continue
        yield obj | {"_line": n}


def fleet_device(rec: dict[str, Any]) -> tuple[DeviceFacts, LocationEstimate, int]:
    """A fleet record -> device facts, last known location, days present there before."""
    line = rec.get("_line")
    unknown = set(rec) - FLEET_FIELDS - {"_line"}
    if unknown:
        raise InvalidInput(f"line {line}: unknown field(s) {sorted(unknown)}")
    if not rec.get("id"):
        raise InvalidInput(f"line {line}: missing id")
    try:
        confidence = float(rec.get("confidence", 0.0))
        days = int(rec.get("days_present", 0))
    except (TypeError, ValueError):
        raise InvalidInput(f"line {line}: confidence and days_present must be numbers") from None
    if not 0.0 <= confidence <= 1.0 or days < 0:
        raise InvalidInput(f"line {line}: confidence must be in [0, 1], days_present >= 0")
    flags = rec.get("flags", ())
    if isinstance(flags, str):
        flags = tuple(f for f in flags.replace(";", " ").split() if f)
    country = rec.get("country") or None
    device = DeviceFacts(
        id=str(rec["id"]),
        imeis=(str(rec["imei"]),) if rec.get("imei") else (),
        model=rec.get("model"),
        sku=rec.get("sku"),
        sales_region=rec.get("sales_region"),
        distributor=rec.get("distributor"),
        batch=rec.get("batch"),
        first_country=rec.get("first_country"),
        first_subdivision=rec.get("first_subdivision"),
    )
    where = LocationEstimate(
        country, rec.get("subdivision") or None, confidence if country else 0.0, (), tuple(flags)
    )
    return device, where, days


def simulate(
    records: Iterable[dict[str, Any] | InvalidInput],
    policy: Policy,
    baseline: Policy | None,
    as_of: datetime,
    on_record: Callable[[], None] | None = None,
) -> SimulationReport:
    """Decide every device under `policy` and `baseline` (None: everything allowed)."""
    report = SimulationReport()
    today = as_of.astimezone(UTC).date()
    for rec in records:
        if on_record is not None:
            on_record()
        if isinstance(rec, InvalidInput):
            report.errors.append(rec.message)
            continue
        try:
            device, where, days = fleet_device(rec)
        except InvalidInput as exc:
            report.errors.append(exc.message)
            continue
        history = history_for(where, days, today)
        new = decide(device, where, history, policy, as_of).action.value
        old = decide(device, where, history, baseline, as_of).action.value if baseline else "allow"
        report.devices += 1
        report.before[old] += 1
        report.after[new] += 1
        if old != new:
            report.changes[(where.country or "unknown", old, new)] += 1
    return report


def simulate_registry(
    devices: Any,
    policy: Policy,
    baseline: Policy | None,
    as_of: datetime,
    page: int = 1000,
) -> SimulationReport:
    """`simulate` over the registry: every device at its last known place, with its history.

    `devices` is a `SqlDeviceStore`; devices that never checked in are counted at an unknown
    place (an unknown place never restricts).
    """
    report = SimulationReport()
    after = ""
    while True:
        ids = devices.list(after=after, limit=page)
        if not ids:
            return report
        for device_id in ids:
            stored = devices.get(device_id)
            if stored is None:
                continue
            s = stored.state
            where = LocationEstimate(
                s.last_country,
                s.last_subdivision,
                s.last_confidence or 0.0,
                (),
                (),
                subdivisions=s.last_subdivisions,
            )
            facts = s.to_facts(stored.record)
            history = s.history()
            new = decide(facts, where, history, policy, as_of).action.value
            old = (
                decide(facts, where, history, baseline, as_of).action.value if baseline else "allow"
            )
            report.devices += 1
            report.before[old] += 1
            report.after[new] += 1
            if old != new:
                report.changes[(where.country or "unknown", old, new)] += 1
        after = ids[-1]
