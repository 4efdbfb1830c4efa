"""Policy documents (TOML) -> validated `Policy` values, with errors located in the file.

The format is documented in docs/policy.md and pinned by examples/policies/. Every problem is
reported at once, each with its path in the document (`restriction[2].action`) and, where it
can be found, its line, so that a bad policy is fixed in one pass and can never be activated.
"""

from __future__ import annotations

import re
import reprlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from regionlock.domain.errors import InvalidInput
from regionlock.domain.policy import (
    Action,
    ActivationRule,
    Exemption,
    Jurisdiction,
    Lease,
    OfflineAction,
    Policy,
    Presence,
    Restriction,
    Scope,
)
from regionlock.domain.regions import expand
from regionlock.policies.messages import Message, read_message

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_SUBDIVISION_RE = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Values are echoed in problems: a bounded repr, so that a megabyte string or a structure
# nested thousands deep gives a short message and never a RecursionError.
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 5


def _show(value: object) -> str:
    return _REPR.repr(value)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy document."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"


class PolicyError(InvalidInput):
    """A policy document that cannot be used; `problems` lists everything wrong with it."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        problems = sorted(problems, key=lambda p: (p.line or 0, p.path))
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


@dataclass(frozen=True, slots=True)
class Regime:
    """A regime preset: a named list of jurisdictions with dates (data/regimes/*.toml)."""

    id: str
    name: str
    jurisdictions: tuple[Jurisdiction, ...]


@dataclass(frozen=True, slots=True)
class Names:
    """What the parser checks codes against: country and subdivision codes with names."""

    countries: Mapping[str, str]
    subdivisions: Mapping[str, str]

    def name(self, code: str) -> str | None:
        return (self.subdivisions if "-" in code else self.countries).get(code)


def _load_toml(text: str, source: str) -> dict[str, Any]:
    """`tomllib.loads`, with every way it can fail turned into a PolicyError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from a JSON "\ud800" escape
        line = text.count("\n", 0, exc.start) + 1
        char = f"U+{ord(text[exc.start]):04X}"
        raise PolicyError(
            source, [Problem("", f"not UTF-8 text: {char} (a lone surrogate) on this line", line)]
        ) from None
    try:
        return tomllib.loads(text)
    except RecursionError:
        # tomllib recurses once per level of nesting: thousands of [ or { exhaust the stack.
        problem = "not valid TOML: nested too deeply (arrays, inline tables or dotted keys)"
        raise PolicyError(source, [Problem("", problem)]) from None
    except ValueError as exc:  # TOMLDecodeError, or int() refusing thousands of digits
        message = str(exc).split(";")[0]  # drop int()'s advice on sys.set_int_max_str_digits
        raise PolicyError(source, [Problem("", f"not valid TOML: {message}")]) from None


class _Reader:
    """Walks the parsed TOML, collecting problems instead of stopping at the first."""

    def __init__(self, text: str, names: Names) -> None:
        self.lines = text.split("\n")  # TOML's newlines only (not splitlines' \x0c, \u2028)
        self.names = names
        self.problems: list[Problem] = []
        self._headers: dict[str, list[int]] = {}

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, self.line_of(path)))

    def line_of(self, path: str) -> int | None:
        """Best effort: the line of `table[n].sub.key` in the document text."""
        m = re.match(r"^([a-z_]+)(?:\[(\d+)\])?((?:\.[a-z_]+)*)", path)
        if not m:
            return None
        table, index = m.group(1), m.group(2)
        rest = [k for k in m.group(3).split(".") if k]
        starts = self._header_lines(table)
        if not starts:
            return self._top_level_line(table)
        n = int(index) if index is not None else 0
        if n >= len(starts):
            return None
        start = starts[n]
        end = starts[n + 1] if n + 1 < len(starts) else len(self.lines)
        prefix = table
        # Descend into [table.sub] headers inside this entry while the path names them.
        while len(rest) > 1:
            sub = re.compile(rf"^\s*\[\s*{prefix}\.{rest[0]}\s*\]\s*$")
            found = next((i for i in range(start, end) if sub.match(self.lines[i])), None)
            if found is None:
                break
            prefix, start, rest = f"{prefix}.{rest[0]}", found, rest[1:]
        if not rest:
            return start + 1
        key = re.compile(rf"^\s*{rest[0]}\s*[=.]")
        for i in range(start + 1, end):
            if i > start + 1 and re.match(r"^\s*\[", self.lines[i]):
                break
            if key.match(self.lines[i]):
                return i + 1
        return start + 1

    def _header_lines(self, table: str) -> list[int]:
        """The indexes of the lines `[table]` or `[[table]]`, found once per table."""
        if table not in self._headers:
            header = re.compile(rf"^\s*\[\[?\s*{table}\s*\]\]?\s*$")
            self._headers[table] = [i for i, line in enumerate(self.lines) if header.match(line)]
        return self._headers[table]

    def _top_level_line(self, key: str) -> int | None:
        """The line of `key = ...` before the first table header, if it is there."""
        assignment = re.compile(rf"^\s*{key}\s*=")
        for i, line in enumerate(self.lines):
            if re.match(r"^\s*\[", line):
                return None
            if assignment.match(line):
                return i + 1
        return None

    def table(self, obj: Any, path: str) -> dict[str, Any]:
        if obj is None:
            return {}
        if not isinstance(obj, dict):
            self.fail(path, "must be a table")
            return {}
        return obj

    def array_of_tables(self, doc: dict[str, Any], section: str) -> list[Any]:
        """The entries of a `[[section]]` array; anything else is refused, never dropped."""
        raw = doc.get(section)
        if raw is None:
            return []
        if not isinstance(raw, list):
            # `[restriction]` (one pair of brackets) makes a single table: without this, the
            # rule would vanish and the policy would be accepted restricting nothing.
            self.fail(
                section,
                f"must be an array of tables: write [[{section}]] (two pairs of brackets) "
                "above each entry",
            )
            return []
        return raw

    def keys(self, obj: dict[str, Any], path: str, allowed: set[str]) -> None:
        for key in sorted(set(obj) - allowed):
            shown = key if _BARE_KEY_RE.match(key) else _show(key)
            self.fail(
                f"{path}.{shown}" if path else shown,
                f"unknown key; expected one of {', '.join(sorted(allowed))}",
            )

    def text(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        default: str = "",
        limit: int = 500,
    ) -> str:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}" if path else key, "is required")
            return default
        if not isinstance(value, str):
            self.fail(f"{path}.{key}" if path else key, "must be a string")
            return default
        if len(value) > limit:
            self.fail(f"{path}.{key}", f"is {len(value)} characters; at most {limit}")
        return value

    def ident(self, obj: dict[str, Any], key: str, path: str) -> str:
        value = self.text(obj, key, path, required=True)
        if value and not _ID_RE.match(value):
            self.fail(
                f"{path}.{key}" if path else key,
                f"{_show(value)} is not an identifier (letters, digits, . _ : -)",
            )
        return value

    def integer(
        self, obj: dict[str, Any], key: str, path: str, default: int, low: int, high: int
    ) -> int:
        value = obj.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{path}.{key}", "must be an integer")
            return default
        if not low <= value <= high:
            self.fail(f"{path}.{key}", f"{value} is outside [{low}, {high}]")
            return default
        return value

    def day(self, obj: dict[str, Any], key: str, path: str) -> date | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, date) or hasattr(value, "hour"):
            self.fail(f"{path}.{key}", "must be a date such as 2021-09-15 (no quotes, no time)")
            return None
        return value

    def choice(self, obj: dict[str, Any], key: str, path: str, enum: Any, default: Any) -> Any:
        value = obj.get(key, default.value if default is not None else None)
        members = {e.value: e for e in enum}
        # Looked up here, not by enum(value): its error message reprs the whole value.
        if isinstance(value, str) and value in members:
            return members[value]
        options = ", ".join(members)
        if value is None:
            self.fail(f"{path}.{key}", f"is required; one of {options}")
        else:
            self.fail(f"{path}.{key}", f"{_show(value)} is not one of {options}")
        return default

    def strings(self, obj: dict[str, Any], key: str, path: str) -> list[str]:
        value = obj.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"{path}.{key}", "must be a list of strings")
            return []
        return list(value)


def load_regime(text: str, source: str, names: Names) -> Regime:
    """Parse one regime preset file."""
    doc = _load_toml(text, source)
    r = _Reader(text, names)
    head = r.table(doc.get("regime"), "regime")
    rid = r.ident(head, "id", "regime")
    out = []
    for i, item in enumerate(r.array_of_tables(doc, "jurisdiction")):
        path = f"jurisdiction[{i}]"
        item = r.table(item, path)
        j = _jurisdiction(r, item, path, rid, None, None, _REGIME_JURISDICTION_KEYS)
        if j is not None:
            out.append(j)
    if r.problems:
        raise PolicyError(source, r.problems)
    return Regime(rid, r.text(head, "name", "regime"), tuple(out))


# The keys of a jurisdiction table: in a policy, and in a regime preset (which documents
# each entry's source). A misspelt `extent` must not silently make a code "whole".
_JURISDICTION_KEYS = frozenset({"code", "name", "from", "until", "extent", "instrument"})
_REGIME_JURISDICTION_KEYS = _JURISDICTION_KEYS | {"source", "confidence", "note"}


def _jurisdiction(
    r: _Reader,
    item: Any,
    path: str,
    origin: str,
    start: date | None,
    end: date | None,
    allowed: frozenset[str],
) -> Jurisdiction | None:
    if isinstance(item, str):
        item = {"code": item}
    if not isinstance(item, dict):
        r.fail(path, 'must be a code such as "IR" or a table with code, from, until')
        return None
    r.keys(item, path, set(allowed))
    code = item.get("code")
    if not isinstance(code, str) or not (_COUNTRY_RE.match(code) or _SUBDIVISION_RE.match(code)):
        r.fail(f"{path}.code", f"{_show(code)} is not an ISO 3166-1 or 3166-2 code")
        return None
    known = r.names.name(code)
    if known is None:
        r.fail(f"{path}.code", f"{code} is not a known ISO 3166 code")
        return None
    begin = r.day(item, "from", path) or start
    finish = r.day(item, "until", path) or end
    if begin is None:
        r.fail(f"{path}.from", f"{code}: a start date is required (here or on the rule)")
        return None
    if finish is not None and finish <= begin:
        r.fail(f"{path}.until", f"{code}: until {finish} is not after from {begin}")
    extent = item.get("extent", "whole")
    if extent not in ("whole", "part"):
        r.fail(f"{path}.extent", f"{_show(extent)} is not whole or part")
    name = r.text(item, "name", path, default=known) or known
    instrument = r.text(item, "instrument", path, limit=2000)
    return Jurisdiction(code, name, begin, finish, extent, origin, instrument)


def _scope(r: _Reader, obj: Any, path: str) -> Scope:
    s = r.table(obj, path)
    allowed = {"models", "skus", "sales_regions", "distributors", "batches"}
    r.keys(s, path, allowed)
    return Scope(**{k: frozenset(r.strings(s, k, path)) for k in allowed})


# The tables of a policy document, and the keys each of them may have.
_SECTIONS = {"policy", "lease", "restriction", "activation", "exemption"}
_HEAD_KEYS = {"id", "version", "description", "min_lock_confidence", "message", "contact"}
_LEASE_KEYS = {"valid_days", "offline_action", "offline_lock_after_days", "offline_warn_days"}
_RESTRICTION_KEYS = {
    "id",
    "action",
    "jurisdictions",
    "regimes",
    "from",
    "until",
    "scope",
    "presence",
    "warn_days",
    "message",
    "contact",
    "part_action",
}
_PRESENCE_KEYS = {"min_days", "window_days", "first_activation_locks", "grace_action"}
_ACTIVATION_KEYS = {"id", "countries", "action", "scope", "message", "contact"}
_EXEMPTION_KEYS = {"device", "batch", "until", "reason"}


def parse_policy(text: str, source: str, names: Names, presets: Mapping[str, Regime]) -> Policy:
    """Validate a policy document; raises PolicyError listing every problem found."""
    doc = _load_toml(text, source)
    r = _Reader(text, names)
    r.keys(doc, "", _SECTIONS)
    head = _head(r, r.table(doc.get("policy"), "policy"))
    lease = _lease(r, doc.get("lease"))
    rule_ids: set[str] = set()  # restrictions and activation rules share one namespace
    restrictions, regimes = _restrictions(
        r, r.array_of_tables(doc, "restriction"), presets, rule_ids
    )
    activation = _activation_rules(r, r.array_of_tables(doc, "activation"), rule_ids)
    exemptions = _exemptions(r, r.array_of_tables(doc, "exemption"))
    if r.problems:
        raise PolicyError(source, r.problems)
    return Policy(
        id=head.id,
        version=head.version,
        description=head.description,
        restrictions=tuple(restrictions),
        activation_rules=tuple(activation),
        exemptions=tuple(exemptions),
        min_lock_confidence=head.min_lock_confidence,
        lease=lease,
        message=head.message,
        contact=head.contact,
        regimes=tuple(dict.fromkeys(regimes)),
    )


@dataclass(frozen=True, slots=True)
class _Head:
    """The [policy] table, checked."""

    id: str
    version: str
    description: str
    min_lock_confidence: float
    message: Message
    contact: str


def _head(r: _Reader, head: dict[str, Any]) -> _Head:
    """The [policy] table: every key checked here, with the other problems."""
    r.keys(head, "policy", _HEAD_KEYS)
    pid = r.ident(head, "id", "policy")
    version = r.ident(head, "version", "policy")
    conf = head.get("min_lock_confidence", 0.7)
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
        r.fail("policy.min_lock_confidence", f"{_show(conf)} is not a number in [0, 1]")
        conf = 0.7
    return _Head(
        id=pid,
        version=version,
        description=r.text(head, "description", "policy", limit=2000),
        min_lock_confidence=float(conf),
        message=read_message(head, "message", "policy", r.fail),
        contact=r.text(head, "contact", "policy", limit=200),
    )


def _lease(r: _Reader, obj: Any) -> Lease:
    t = r.table(obj, "lease")
    r.keys(t, "lease", _LEASE_KEYS)
    return Lease(
        valid_days=r.integer(t, "valid_days", "lease", 7, 1, 365),
        offline_action=r.choice(t, "offline_action", "lease", OfflineAction, OfflineAction.WARN),
        offline_lock_after_days=r.integer(t, "offline_lock_after_days", "lease", 30, 0, 3650),
        offline_warn_days=r.integer(t, "offline_warn_days", "lease", 7, 0, 365),
    )


def _rule_id(r: _Reader, t: dict[str, Any], path: str, seen: set[str]) -> str:
    """A rule's id, which no other restriction or activation rule may use."""
    rid = r.ident(t, "id", path)
    if rid in seen:
        r.fail(f"{path}.id", f"{_show(rid)} is used by another rule")
    seen.add(rid)
    return rid


def _restrictions(
    r: _Reader, raw: list[Any], presets: Mapping[str, Regime], rule_ids: set[str]
) -> tuple[list[Restriction], list[str]]:
    """The [[restriction]] rules, and the regime presets they use (in order, repeats kept)."""
    out: list[Restriction] = []
    used: list[str] = []
    for i, item in enumerate(raw):
        path = f"restriction[{i}]"
        t = r.table(item, path)
        r.keys(t, path, _RESTRICTION_KEYS)
        rid = _rule_id(r, t, path, rule_ids)
        action = r.choice(t, "action", path, Action, None)
        js, regimes = _restricted(r, t, path, presets)
        used.extend(regimes)
        # Every key is checked even when the action is bad: all problems in one pass.
        scope = _scope(r, t.get("scope"), f"{path}.scope")
        presence = _presence(r, t.get("presence"), f"{path}.presence")
        warn_days = r.integer(t, "warn_days", path, 0, 0, 365)
        message = read_message(t, "message", path, r.fail)
        contact = r.text(t, "contact", path, limit=200)
        # What a lock becomes over a code covered only in part (extent = "part").
        part_action = r.choice(t, "part_action", path, Action, Action.WARN)
        if action is None:
            continue
        out.append(
            Restriction(
                id=rid,
                jurisdictions=tuple(js),
                action=action,
                scope=scope,
                presence=presence,
                warn_days=warn_days,
                message=message,
                contact=contact,
                part_action=part_action,
            )
        )
    return out, used


def _restricted(
    r: _Reader, t: dict[str, Any], path: str, presets: Mapping[str, Regime]
) -> tuple[list[Jurisdiction], list[str]]:
    """A restriction's jurisdictions: its own (dated by its from/until) and its presets'."""
    start, end = r.day(t, "from", path), r.day(t, "until", path)
    js: list[Jurisdiction] = []
    raw_js = t.get("jurisdictions", [])
    if not isinstance(raw_js, list):
        r.fail(f"{path}.jurisdictions", "must be a list")
        raw_js = []
    for k, item in enumerate(raw_js):
        j = _jurisdiction(
            r, item, f"{path}.jurisdictions[{k}]", "policy", start, end, _JURISDICTION_KEYS
        )
        if j is not None:
            js.append(j)
    used: list[str] = []
    for name in r.strings(t, "regimes", path):
        if name not in presets:
            r.fail(
                f"{path}.regimes",
                f"unknown regime preset {_show(name)}; known: {', '.join(sorted(presets))}",
            )
            continue
        used.append(name)
        js.extend(presets[name].jurisdictions)
    if not raw_js and not t.get("regimes"):
        r.fail(path, "restricts nothing: give jurisdictions or regimes")
    return js, used


def _presence(r: _Reader, obj: Any, path: str) -> Presence:
    t = r.table(obj, path)
    r.keys(t, path, _PRESENCE_KEYS)
    window = r.integer(t, "window_days", path, 30, 1, 365)
    min_days = r.integer(t, "min_days", path, 0, 0, 365)
    if min_days >= window:
        r.fail(f"{path}.min_days", f"{min_days} can never be exceeded within a {window}-day window")
    first_locks = t.get("first_activation_locks", True)
    if not isinstance(first_locks, bool):
        r.fail(f"{path}.first_activation_locks", "must be true or false")
        first_locks = True
    grace = r.choice(t, "grace_action", path, Action, Action.WARN)
    if grace is Action.LOCK:
        r.fail(f"{path}.grace_action", "grace cannot be lock; use allow or warn")
    return Presence(min_days, window, first_locks, grace)


def _activation_rules(r: _Reader, raw: list[Any], rule_ids: set[str]) -> list[ActivationRule]:
    out: list[ActivationRule] = []
    for i, item in enumerate(raw):
        path = f"activation[{i}]"
        t = r.table(item, path)
        r.keys(t, path, _ACTIVATION_KEYS)
        aid = _rule_id(r, t, path, rule_ids)
        countries: set[str] = set()
        names = r.strings(t, "countries", path)
        if not names and isinstance(t.get("countries", []), list):
            # With none, every device in scope is "first activated outside" and locked.
            r.fail(f"{path}.countries", "name at least one country or region (EU, EEA)")
        for name in names:
            got = expand(name, set(r.names.countries))
            if got is None:
                r.fail(f"{path}.countries", f"{_show(name)} is neither a country code nor a region")
            else:
                countries |= got
        action = r.choice(t, "action", path, Action, None)
        # Every key is checked even when the action is bad: all problems in one pass.
        scope = _scope(r, t.get("scope"), f"{path}.scope")
        message = read_message(t, "message", path, r.fail)
        contact = r.text(t, "contact", path, limit=200)
        if action is not None:
            out.append(ActivationRule(aid, frozenset(countries), action, scope, message, contact))
    return out


def _exemptions(r: _Reader, raw: list[Any]) -> list[Exemption]:
    out: list[Exemption] = []
    for i, item in enumerate(raw):
        path = f"exemption[{i}]"
        t = r.table(item, path)
        r.keys(t, path, _EXEMPTION_KEYS)
        if ("device" in t) == ("batch" in t):
            r.fail(path, "name exactly one of device or batch")
        out.append(
            Exemption(
                reason=r.text(t, "reason", path, required=True),
                device=_exempted(r, t, "device", path),
                batch=_exempted(r, t, "batch", path),
                until=r.day(t, "until", path),
            )
        )
    return out


def _exempted(r: _Reader, t: dict[str, Any], key: str, path: str) -> str | None:
    """An exemption's device or batch. Anything but text would match no device: the owner
    it was written for would stay locked, so it is refused rather than dropped."""
    value = t.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        hint = ' (quote an IMEI: "356938035643809")' if key == "device" else ""
        r.fail(f"{path}.{key}", f"must be a non-empty string{hint}")
        return None
    return value
