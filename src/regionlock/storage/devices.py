"""The device registry: records from imports, states from check-ins and operators.

Contract (both backends, one conformance suite):
- `import_batch` is idempotent: a record whose IMEIs are already registered with the same data
  changes nothing ("unchanged"); the same IMEI with other data is refused ("conflict") and
  the stored record stays as it was. A batch is one transaction.
- `get` finds a device by id or by any of its IMEIs; a missing device is None, never an error.
- `lock_for_update` + `save_state` give one writer per device: on PostgreSQL the row is locked
  (`FOR UPDATE`) until the transaction ends; on SQLite the single-writer transaction already
  serialises. `save_state` also checks the state version it read, so a lost update is
  impossible even for a caller that forgot to lock.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

import orjson

from regionlock.domain.campaign import seen_countries
from regionlock.domain.device import (
    AppealAnswer,
    DeviceRecord,
    DeviceState,
    Imei,
    ManualExemption,
    ManualLock,
    could_name_device,
)
from regionlock.domain.errors import Conflict
from regionlock.domain.policy import Action
from regionlock.storage.db import Database, Pending, Transaction, epoch_ms

Outcome = Literal["imported", "unchanged", "conflict"]


class StaleState(Conflict):
    """The device's state changed since it was read: retry the whole operation."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    device_id: str
    outcome: Outcome
    message: str = ""


@dataclass(frozen=True, slots=True)
class StoredDevice:
    record: DeviceRecord
    state: DeviceState
    version: int


# --- state codec -------------------------------------------------------------------------------


def _dt(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# One encoder for every call (what `json.dumps` with these options builds on every call).
_STATE_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def state_to_json(s: DeviceState) -> str:
    doc: dict[str, Any] = {
        "last_verdict": s.last_verdict.value if s.last_verdict else None,
        "last_country": s.last_country,
        "last_subdivision": s.last_subdivision,
        "last_subdivisions": list(s.last_subdivisions),
        "last_confidence": s.last_confidence,
        "last_checkin_at": _dt(s.last_checkin_at),
        "first_country": s.first_country,
        "first_subdivision": s.first_subdivision,
        "first_seen_at": _dt(s.first_seen_at),
        "presence": {d.isoformat(): sorted(codes) for d, codes in s.presence.items()},
        "early_countries": sorted(s.early_countries),
        "warned_since": {rule: d.isoformat() for rule, d in s.warned_since.items()},
        "manual_lock": _lock_doc(s.manual_lock),
        "exemption": _exemption_doc(s.exemption),
        "counter": s.counter,
    }
    if s.owner_language is not None:  # only when set, as below
        doc["owner_language"] = s.owner_language
    if s.appeal_answer is not None:  # only when set: states without one keep their exact text
        a = s.appeal_answer
        doc["appeal_answer"] = {
            "appeal": a.appeal,
            "reason": a.reason,
            "contact": a.contact,
            "at": _dt(a.at),
        }
    # orjson, about five times faster: the same document, in UTF-8 where the standard
    # library escaped non-ASCII, and 0.00001 where it wrote 1e-05 (read back alike). What
    # orjson refuses (a lone surrogate in an operator's text) the standard library escapes.
    try:
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return _STATE_ENCODER.encode(doc)


def _lock_doc(lock: ManualLock | None) -> dict[str, Any] | None:
    if lock is None:
        return None
    return {
        "reason": lock.reason,
        "actor": lock.actor,
        "at": _dt(lock.at),
        "message": lock.message,
        "contact": lock.contact,
        # Only when set, so states stored before campaigns keep their exact text.
        **({"campaign": lock.campaign} if lock.campaign else {}),
    }


def _exemption_doc(ex: ManualExemption | None) -> dict[str, Any] | None:
    if ex is None:
        return None
    return {
        "reason": ex.reason,
        "actor": ex.actor,
        "until": ex.until.isoformat() if ex.until else None,
        **({"campaign": ex.campaign} if ex.campaign else {}),
    }


def _lock_from(lock: dict[str, Any] | None) -> ManualLock | None:
    if not lock:
        return None
    return ManualLock(
        lock["reason"],
        lock["actor"],
        _parse_dt(lock["at"]) or datetime.now(UTC),
        lock.get("message"),
        lock.get("contact"),
        lock.get("campaign"),
    )


def _exemption_from(ex: dict[str, Any] | None) -> ManualExemption | None:
    if not ex:
        return None
    return ManualExemption(
        ex["reason"],
        ex["actor"],
        date.fromisoformat(ex["until"]) if ex["until"] else None,
        ex.get("campaign"),
    )


def _early_countries(doc: dict[str, Any]) -> frozenset[str]:
    """`early_countries`, or for a state stored before it existed and not yet activated, the
    countries it was seen in: a device set up at home must not be activated abroad because its
    stored state predates the field."""
    if "early_countries" in doc:
        return frozenset(doc["early_countries"])
    if doc.get("first_country") is not None:
        return frozenset()
    seen = {c for codes in doc.get("presence", {}).values() for c in codes if len(c) == 2}
    if doc.get("last_country"):
        seen.add(doc["last_country"])
    return frozenset(seen)


def state_from_json(text: str) -> DeviceState:
    try:
        doc = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:  # what only the standard library reads (escaped surrogates)
        doc = json.loads(text)
    if not doc:
        return DeviceState()
    return DeviceState(
        last_verdict=Action(doc["last_verdict"]) if doc.get("last_verdict") else None,
        last_country=doc.get("last_country"),
        last_subdivision=doc.get("last_subdivision"),
        last_subdivisions=tuple(doc.get("last_subdivisions", ())),
        last_confidence=doc.get("last_confidence"),
        last_checkin_at=_parse_dt(doc.get("last_checkin_at")),
        first_country=doc.get("first_country"),
        first_subdivision=doc.get("first_subdivision"),
        first_seen_at=_parse_dt(doc.get("first_seen_at")),
        presence={date.fromisoformat(d): frozenset(c) for d, c in doc.get("presence", {}).items()},
        warned_since={r: date.fromisoformat(d) for r, d in doc.get("warned_since", {}).items()},
        manual_lock=_lock_from(doc.get("manual_lock")),
        exemption=_exemption_from(doc.get("exemption")),
        counter=doc.get("counter"),
        early_countries=_early_countries(doc),
        appeal_answer=_answer_from(doc.get("appeal_answer")),
        owner_language=doc.get("owner_language"),
    )


def _answer_from(doc: dict[str, Any] | None) -> AppealAnswer | None:
    if not doc:
        return None
    return AppealAnswer(
        doc["appeal"], doc["reason"], doc.get("contact"), _parse_dt(doc["at"]) or datetime.now(UTC)
    )


def _record_of(row: Sequence[Any], imeis: Sequence[str]) -> DeviceRecord:
    """A registry record from a row of `_COLS` and its IMEIs in slot order."""
    return DeviceRecord(
        id=row[0],
        imeis=tuple(Imei(i) for i in imeis),
        serial=row[1],
        model=row[2],
        sku=row[3],
        sales_region=row[4],
        distributor=row[5],
        batch=row[6],
        manufactured=date.fromisoformat(row[7]) if row[7] else None,
        shipped=date.fromisoformat(row[8]) if row[8] else None,
        public_key=bytes(row[9]),
    )


# --- store -------------------------------------------------------------------------------------

# A registry record's columns (`_record_of`), then the state's.
_RECORD_COLS = (
    "d.id, d.serial, d.model, d.sku, d.sales_region, d.distributor, d.batch,"
    " d.manufactured, d.shipped, d.public_key"
)
_COLS = _RECORD_COLS + ", d.state, d.state_version"


# Besides the state, the columns campaigns select by (storage/campaigns.py): the last
# subdivision, the first activation's country and the countries seen, as ",AE,IR," (matched
# with LIKE '%,IR,%'), all kept in step with the state by every save.
_SAVE_STATE = (
    "UPDATE devices SET state = ?, state_version = state_version + 1, last_verdict = ?,"
    " last_country = ?, last_checkin_at = ?, last_subdivision = ?, first_country = ?,"
    " seen_in = ? WHERE id = ? AND state_version = ?"
)


def seen_in_column(state: DeviceState) -> str | None:
    """The `seen_in` column's text for a state: ",AE,IR," (None when no country)."""
    codes = seen_countries(state.presence, state.first_country)
    return "," + ",".join(codes) + "," if codes else None


@dataclass(frozen=True, slots=True)
class EncodedStates:
    """States to save, already encoded (`encode_states`): what `save_states` writes."""

    params: list[tuple[Any, ...]]


def encode_states(updates: Sequence[tuple[str, int, DeviceState]]) -> EncodedStates:
    """(device id, version read, new state) for several, encoded for `save_states`: work that
    needs no transaction, done before one when its writer should hold its locks briefly."""
    return EncodedStates([_save_params(*u) for u in updates])


def _save_params(device_id: str, version: int, state: DeviceState) -> tuple[Any, ...]:
    return (
        state_to_json(state),
        state.last_verdict.value if state.last_verdict else None,
        state.last_country,
        epoch_ms(state.last_checkin_at) if state.last_checkin_at else None,
        state.last_subdivision,
        state.first_country,
        seen_in_column(state),
        device_id,
        version,
    )


class DeviceStore(Protocol):
    """The device registry (module docstring: the contract)."""

    def device_id_key(self) -> bytes:
        """The installation's secret for deriving device ids (created on first use)."""
        ...

    def import_batch(
        self, tx: Transaction, records: Sequence[DeviceRecord], at: int
    ) -> list[ImportResult]:
        """Register records idempotently; one result per record, in order."""
        ...

    def get(self, key: str) -> StoredDevice | None:
        """A device by id or IMEI; None when there is none."""
        ...

    def records(self, keys: Sequence[str]) -> dict[str, DeviceRecord]:
        """The registry records of the devices these keys (ids or IMEIs) name, in one read:
        key -> record, keys naming no device left out (a check-in group's look-up)."""
        ...

    def lock_for_update(self, tx: Transaction, key: str) -> StoredDevice | None:
        """A device by id or IMEI, to change in `tx` (row-locked where the backend needs it)."""
        ...

    def lock_states(
        self, tx: Transaction, device_ids: Sequence[str]
    ) -> dict[str, tuple[DeviceState, int]]:
        """States and versions of these devices, locked in id order; absent ones left out."""
        ...

    def save_state(self, tx: Transaction, device: StoredDevice, state: DeviceState) -> int:
        """Store a new state; StaleState if it changed since `device` was read."""
        ...

    def read_states(
        self, tx: Transaction, device_ids: Sequence[str]
    ) -> dict[str, tuple[DeviceState, int]]:
        """`lock_states` without the locks: states and versions as of `tx`'s snapshot, to be
        judged outside a write transaction and saved over those versions (or not at all)."""
        ...

    def states_later(
        self, tx: Transaction, device_ids: Sequence[str], *, lock: bool
    ) -> Pending[dict[str, tuple[DeviceState, int]]]:
        """`lock_states` (`lock`) or `read_states`, sent without waiting in a pipelined
        transaction."""
        ...

    def save_states(
        self, tx: Transaction, updates: Sequence[tuple[str, int, DeviceState]] | EncodedStates
    ) -> None:
        """Store (device id, version read, new state) for several, or the same encoded ahead
        (`encode_states`); StaleState if any stored version differs."""
        ...

    def save_states_later(
        self, tx: Transaction, updates: Sequence[tuple[str, int, DeviceState]] | EncodedStates
    ) -> Pending[None]:
        """`save_states`, sent without waiting in a pipelined transaction: StaleState from
        `get()`."""
        ...

    def lock_slots(
        self, tx: Transaction, device_ids: Sequence[str]
    ) -> dict[str, tuple[DeviceState, int]]:
        """`lock_states` reading only the manual lock and the exemption (the rest of each
        state is left at its defaults): what a bulk campaign reads and changes."""
        ...

    def save_slots(
        self,
        tx: Transaction,
        updates: Sequence[tuple[str, int, DeviceState]],
        slots: tuple[bool, bool],
    ) -> None:
        """Store the manual lock (`slots[0]`) and/or the exemption (`slots[1]`) of each
        (device id, version read, state), leaving the rest of the stored state as it is;
        StaleState if any stored version differs."""
        ...

    def list(
        self,
        *,
        model: str | None = None,
        batch: str | None = None,
        distributor: str | None = None,
        country: str | None = None,
        verdict: str | None = None,
        serial: str | None = None,
        after: str = "",
        limit: int = 100,
    ) -> list[str]:
        """Device ids matching every given filter, in id order, after `after` (paging)."""
        ...


_DEVICE_COLUMNS = (
    "id",
    "serial",
    "model",
    "sku",
    "sales_region",
    "distributor",
    "batch",
    "tac",
    "manufactured",
    "shipped",
    "public_key",
    "record_digest",
    "created_at",
)

# How many devices in id order `list` looks through for a filter's first matches before it
# asks the filter's index instead (see `list`).
LIST_WINDOW = 20_000
_LISTED = "id, model, batch, distributor, last_country, last_verdict, serial"


# Reading and writing only the slots a campaign changes: no parsing or rewriting of the rest
# of each state (presence, warnings), which is most of a campaign's cost otherwise. A slot is
# passed as JSON text ('null' when empty): PostgreSQL's jsonb_set returns NULL for a NULL value.
_SLOT_PATHS = {
    "sqlite": ("'$.manual_lock'", "'$.exemption'"),
    "postgresql": ("'{manual_lock}'", "'{exemption}'"),
}


def _read_slots(tx: Transaction, ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """(id, lock, exemption, version) of these devices, row-locked: one statement on
    PostgreSQL (the ids as an array, each state parsed once), IN lists of 500 on SQLite."""
    if tx.dialect == "postgresql":
        return tx.all(
            "SELECT id, s -> 'manual_lock', s -> 'exemption', state_version FROM (SELECT id,"
            " state::jsonb AS s, state_version FROM devices WHERE id = ANY(?::text[])"
            " ORDER BY id FOR UPDATE) AS d",
            [list(ids)],
            arrays=True,
        )
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        rows += tx.all(
            "SELECT id, json_extract(state, '$.manual_lock'), json_extract(state, '$.exemption'),"
            f" state_version FROM devices WHERE id IN ({', '.join('?' * len(part))})",
            part,
        )
    return rows


def _save_slots_sql(dialect: str, slots: tuple[bool, bool]) -> str:
    """SQLite: one statement per device (executemany). PostgreSQL: one statement per chunk,
    the rows passed as arrays (a round of statements per device costs 4x as much there)."""
    paths = [p for p, on in zip(_SLOT_PATHS[dialect], slots, strict=True) if on]
    if dialect == "postgresql":
        value = "d.state::jsonb"
        names = [f"s{i}" for i in range(len(paths))]
        for path, name in zip(paths, names, strict=True):
            value = f"jsonb_set({value}, {path}, v.{name}::jsonb)"
        arrays = ", ".join(["?::text[]"] * len(paths))
        return (
            f"UPDATE devices d SET state = ({value})::text, state_version = d.state_version + 1"
            f" FROM unnest({arrays}, ?::text[], ?::bigint[]) AS v({', '.join(names)}, id, version)"
            # `d.id = ANY` and the chunk's id range: the key's index finds the rows (a join
            # alone, or `= ANY` alone at 100,000 devices, made the planner scan every device)
            " WHERE d.id = ANY(?::text[]) AND d.id BETWEEN ? AND ? AND d.id = v.id"
            " AND d.state_version = v.version"
        )
    value = "json_set(state, " + ", ".join(f"{p}, json(?)" for p in paths) + ")"
    return (
        f"UPDATE devices SET state = {value}, state_version = state_version + 1"
        " WHERE id = ? AND state_version = ?"
    )


def _rows_in(
    tx: Transaction, select: str, column: str, values: Sequence[str]
) -> list[tuple[Any, ...]]:
    """The rows of `select` whose text `column` is one of `values`. PostgreSQL takes them as
    one array parameter; SQLite as `IN` lists of at most 500 (a statement with a thousand
    placeholders cost PostgreSQL's driver more to prepare than the look-up took)."""
    if tx.dialect == "postgresql":
        return tx.all(f"{select} WHERE {column} = ANY(?::text[])", [list(values)], arrays=True)
    rows: list[tuple[Any, ...]] = []
    for chunk in range(0, len(values), 500):
        part = values[chunk : chunk + 500]
        marks = ",".join("?" * len(part))
        rows += tx.all(f"{select} WHERE {column} IN ({marks})", part)
    return rows


def _slot_json(value: Any) -> Any:
    """A slot's stored JSON as a dict: psycopg decodes jsonb itself, SQLite gives text."""
    return json.loads(value) if isinstance(value, str) else value


class SqlDeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def device_id_key(self) -> bytes:
        """The installation's secret for deriving device ids (created on first use)."""
        with self.db.write() as tx:
            row = tx.one("SELECT device_id_key FROM installation WHERE one = 1")
            if row is None:
                tx.execute(
                    "INSERT INTO installation (one, device_id_key, created_at) VALUES (1, ?, ?)",
                    (secrets.token_bytes(32), epoch_ms(datetime.now(UTC))),
                )
                row = tx.one("SELECT device_id_key FROM installation WHERE one = 1")
        assert row is not None
        return bytes(row[0])

    def import_batch(
        self, tx: Transaction, records: Sequence[DeviceRecord], at: int
    ) -> list[ImportResult]:
        """Register records; see the module docstring for the contract."""
        if not records:
            return []
        imeis = [i.digits for r in records for i in r.imeis]
        known = {
            str(imei): str(device)
            for imei, device in _rows_in(
                tx, "SELECT imei, device_id FROM device_imeis", "imei", imeis
            )
        }
        ids = sorted({r.id for r in records} | set(known.values()))
        digests = {
            str(device): str(digest)
            for device, digest in _rows_in(tx, "SELECT id, record_digest FROM devices", "id", ids)
        }
        out: list[ImportResult] = []
        new_devices: list[tuple[Any, ...]] = []
        new_imeis: list[tuple[str, str, int]] = []
        for r in records:
            digest = r.fingerprint().hex()
            owners = {known[i.digits] for i in r.imeis if i.digits in known}
            if r.id in digests or owners:
                if owners <= {r.id} and digests.get(r.id) == digest:
                    out.append(ImportResult(r.id, "unchanged"))
                else:
                    out.append(
                        ImportResult(
                            r.id,
                            "conflict",
                            "an IMEI of this device is already registered with other data",
                        )
                    )
                continue
            new_devices.append(
                (
                    r.id,
                    r.serial,
                    r.model,
                    r.sku,
                    r.sales_region,
                    r.distributor,
                    r.batch,
                    r.tac,
                    r.manufactured.isoformat() if r.manufactured else None,
                    r.shipped.isoformat() if r.shipped else None,
                    r.public_key,
                    digest,
                    at,
                )
            )
            new_imeis += [(i.digits, r.id, n) for n, i in enumerate(r.imeis, start=1)]
            for i in r.imeis:
                known[i.digits] = r.id
            digests[r.id] = digest
            out.append(ImportResult(r.id, "imported"))
        # In bulk: COPY on PostgreSQL, one prepared statement on SQLite (a statement per
        # device was most of an import's time in the store: bench/README.md, "Device import").
        tx.insert_many("devices", _DEVICE_COLUMNS, new_devices)
        tx.insert_many("device_imeis", ("imei", "device_id", "slot"), new_imeis)
        return out

    def _load(self, tx: Transaction, key: str, lock: bool) -> StoredDevice | None:
        if not could_name_device(key):
            return None
        suffix = " FOR UPDATE OF d" if lock and tx.dialect == "postgresql" else ""
        row = tx.one(f"SELECT {_COLS} FROM devices d WHERE d.id = ?{suffix}", (key,))
        if row is None and key.isdigit():
            row = tx.one(
                f"SELECT {_COLS} FROM devices d JOIN device_imeis i"
                f" ON i.device_id = d.id WHERE i.imei = ?{suffix}",
                (key,),
            )
        if row is None:
            return None
        imeis = tx.all("SELECT imei FROM device_imeis WHERE device_id = ? ORDER BY slot", (row[0],))
        record = _record_of(row, [str(i[0]) for i in imeis])
        return StoredDevice(record, state_from_json(row[10]), int(row[11]))

    def records(self, keys: Sequence[str]) -> dict[str, DeviceRecord]:
        wanted = sorted({k for k in keys if could_name_device(k)})
        if not wanted:
            return {}
        rows: dict[str, Sequence[Any]] = {}
        by_imei: dict[str, str] = {}
        imeis: dict[str, list[str]] = {}
        with self.db.read() as tx:
            for row in _rows_in(tx, f"SELECT {_RECORD_COLS} FROM devices d", "d.id", wanted):
                rows[str(row[0])] = row
            # As `get`: a key that names no id and is all digits may be an IMEI.
            digits = [k for k in wanted if k not in rows and k.isdigit()]
            if digits:
                for row in _rows_in(
                    tx,
                    f"SELECT i.imei, {_RECORD_COLS} FROM devices d JOIN device_imeis i"
                    " ON i.device_id = d.id",
                    "i.imei",
                    digits,
                ):
                    by_imei[str(row[0])] = str(row[1])
                    rows[str(row[1])] = row[1:]
            slots = _rows_in(
                tx, "SELECT device_id, slot, imei FROM device_imeis", "device_id", sorted(rows)
            )
        for device_id, _, imei in sorted(slots):
            imeis.setdefault(str(device_id), []).append(str(imei))
        records = {i: _record_of(row, imeis.get(i, [])) for i, row in rows.items()}
        out: dict[str, DeviceRecord] = {}
        for key in wanted:
            found = records.get(key) or records.get(by_imei.get(key, ""))
            if found is not None:
                out[key] = found
        return out

    def get(self, key: str) -> StoredDevice | None:
        """A device by id or IMEI; None when there is none."""
        with self.db.read() as tx:
            return self._load(tx, key, lock=False)

    def lock_for_update(self, tx: Transaction, key: str) -> StoredDevice | None:
        """Read a device to change it in this transaction (row-locked on PostgreSQL)."""
        return self._load(tx, key, lock=True)

    def lock_states(
        self, tx: Transaction, device_ids: Sequence[str]
    ) -> dict[str, tuple[DeviceState, int]]:
        """The states and versions of these devices, row-locked, in one statement: the check-in
        path, where the (immutable) records are already known. Absent devices are left out.
        Rows are locked in id order on PostgreSQL, so two groups that share devices cannot
        deadlock on them."""
        return self.states_later(tx, device_ids, lock=True).get()

    def read_states(
        self, tx: Transaction, device_ids: Sequence[str]
    ) -> dict[str, tuple[DeviceState, int]]:
        return self.states_later(tx, device_ids, lock=False).get()

    def states_later(
        self, tx: Transaction, device_ids: Sequence[str], *, lock: bool
    ) -> Pending[dict[str, tuple[DeviceState, int]]]:
        ids = sorted(set(device_ids))
        if not ids:  # nothing to read: no statement
            return Pending(dict)
        # Row locks are PostgreSQL's (SQLite's one writer serialises already), in id order.
        suffix = " ORDER BY id FOR UPDATE" if lock and tx.dialect == "postgresql" else ""
        if tx.dialect == "postgresql":
            # The ids as one array: one parameter for the driver to send, not one per device.
            sent = [
                tx.send(
                    "SELECT id, state, state_version FROM devices WHERE id = ANY(?::text[])"
                    + suffix,
                    [ids],
                    arrays=True,
                )
            ]
        else:
            sent = []
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                sent.append(
                    tx.send(
                        f"SELECT id, state, state_version FROM devices WHERE id IN ({marks})",
                        chunk,
                    )
                )

        def get() -> dict[str, tuple[DeviceState, int]]:
            out: dict[str, tuple[DeviceState, int]] = {}
            for part in sent:
                for row in part.rows():
                    out[str(row[0])] = (state_from_json(row[1]), int(row[2]))
            return out

        return Pending(get)

    def save_state(self, tx: Transaction, device: StoredDevice, state: DeviceState) -> int:
        """Store a new state; StaleState if someone else changed it since `device` was read."""
        return self.save_state_at(tx, device.record.id, device.version, state)

    def save_state_at(
        self, tx: Transaction, device_id: str, version: int, state: DeviceState
    ) -> int:
        """Store a new state over `version`; StaleState if the stored version differs."""
        changed = tx.execute(_SAVE_STATE, _save_params(device_id, version, state))
        if changed != 1:
            raise StaleState(f"device {device_id} changed while it was being updated")
        return version + 1

    def save_states(
        self, tx: Transaction, updates: Sequence[tuple[str, int, DeviceState]] | EncodedStates
    ) -> None:
        """`save_state_at` for several (device id, version, state), one statement; StaleState
        (the caller's transaction rolls back) if any stored version differs."""
        self.save_states_later(tx, updates).get()

    def save_states_later(
        self, tx: Transaction, updates: Sequence[tuple[str, int, DeviceState]] | EncodedStates
    ) -> Pending[None]:
        encoded = updates if isinstance(updates, EncodedStates) else encode_states(updates)
        params = encoded.params
        sent = tx.send_many(_SAVE_STATE, params)

        def get() -> None:
            if sent.rowcount() != len(params):
                raise StaleState("a device changed while a batch of check-ins was being recorded")

        if not tx.pipelined:  # answered already: StaleState now, before anything else is sent
            get()
        return Pending(get)

    def lock_slots(
        self, tx: Transaction, device_ids: Sequence[str]
    ) -> dict[str, tuple[DeviceState, int]]:
        out: dict[str, tuple[DeviceState, int]] = {}
        empty = DeviceState()
        for device_id, lock, ex, version in _read_slots(tx, sorted(set(device_ids))):
            lock_doc, ex_doc = _slot_json(lock), _slot_json(ex)
            state = (
                empty
                if not lock_doc and not ex_doc
                else DeviceState(
                    manual_lock=_lock_from(lock_doc), exemption=_exemption_from(ex_doc)
                )
            )
            out[str(device_id)] = (state, int(version))
        return out

    def save_slots(
        self,
        tx: Transaction,
        updates: Sequence[tuple[str, int, DeviceState]],
        slots: tuple[bool, bool],
    ) -> None:
        if not updates:
            return
        # A campaign gives most devices the same lock: encode each distinct value once.
        encoded: dict[object, str] = {}

        def text(value: ManualLock | ManualExemption | None, doc: Any) -> str:
            found = encoded.get(value)
            if found is None:
                found = encoded[value] = json.dumps(doc(value), sort_keys=True)
            return found

        rows = []
        for device_id, version, state in updates:
            row: list[Any] = []
            if slots[0]:
                row.append(text(state.manual_lock, _lock_doc))
            if slots[1]:
                row.append(text(state.exemption, _exemption_doc))
            rows.append((*row, device_id, version))
        sql = _save_slots_sql(tx.dialect, slots)
        if tx.dialect == "postgresql":
            columns = [list(column) for column in zip(*rows, strict=True)]
            ids = columns[-2]
            changed = tx.execute(sql, [*columns, ids, min(ids), max(ids)], arrays=True)
        else:
            changed = tx.executemany(sql, rows)
        if changed != len(updates):
            raise StaleState("a device changed while a campaign chunk was being applied")

    def list(
        self,
        *,
        model: str | None = None,
        batch: str | None = None,
        distributor: str | None = None,
        country: str | None = None,
        verdict: str | None = None,
        serial: str | None = None,
        after: str = "",
        limit: int = 100,
    ) -> list[str]:
        """Device ids matching every given filter, in id order, after `after` (paging)."""
        where, params = "", []
        for column, value in (
            ("model", model),
            ("batch", batch),
            ("distributor", distributor),
            ("last_country", country),
            ("last_verdict", verdict),
            ("serial", serial),
        ):
            if value is not None:
                where += f" AND {column} = ?"
                params.append(value)
        with self.db.read() as tx:
            if where and serial is None:  # a serial is all but unique: its index is right
                # A common value (a verdict, a big country) matches many devices: an index on
                # it would give them all, to be sorted by id (0.5 s for 140,000 at 1M
                # devices). The next devices in id order hold the first matches: look there
                # first; only a value too rare to fill the page there needs the index, and
                # then its matches are few to sort.
                rows = tx.all(
                    f"SELECT id FROM (SELECT {_LISTED} FROM devices WHERE id > ?"
                    f" ORDER BY id LIMIT ?) AS d WHERE TRUE{where} ORDER BY id LIMIT ?",
                    [after, LIST_WINDOW, *params, limit],
                )
                if len(rows) == limit:
                    return [str(r[0]) for r in rows]
            rows = tx.all(
                f"SELECT id FROM devices WHERE id > ?{where} ORDER BY id LIMIT ?",
                [after, *params, limit],
            )
        return [str(r[0]) for r in rows]
