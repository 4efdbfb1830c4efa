"""A synthetic fleet with known answers, written straight into a store: who leaks, who only
looks as if it did.

Every device checks in on several days. Its check-ins carry what the check-in service would
have recorded for it (place, signals, flags, reasons), so that the two ways of counting an
established device agree: the policy's recorded judgement (`presence.established`,
`presence.first_activation`) and the days recomputed for named places (`--country IR`).

- A leaked device: GPS in Iran on 6 days in a row (the policy's `presence.grace` for the first
  3, then `presence.established`), after one check-in at home.
- An honest device: its home country only (AE), GPS.
- A traveller (decoy): home, then GPS in Iran on 2 days (`presence.grace`), then home.
- A border phone (decoy): home by GPS, but on 3 days of the fortnight its serving network is
  Iranian (a neighbour's cell; `presence.grace`).
- A VPN user (decoy): an Iranian IP only, flagged `no_presence_evidence`.
- A first activation in Iran: its first check-in there (`presence.first_activation`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from storage_fixtures import imei

from regionlock.domain.device import DeviceRecord, DeviceState, parse_imei
from regionlock.policies import example_policy_text
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.storage import Database, open_stores
from regionlock.storage.checkins import CheckinRow, SqlCheckinStore
from regionlock.storage.devices import SqlDeviceStore

KEY = bytes(range(32))
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
POLICY = ("gray-market-2021", "2021.09")
HOME = "AE"
H = "honest"


@dataclass
class Planned:
    """What was planted: restricted devices per batch and distributor."""

    restricted: dict[str, set[str]] = field(default_factory=dict)  # batch -> device ids
    batches: dict[str, list[str]] = field(default_factory=dict)  # batch -> ids in IMEI order
    distributor_of: dict[str, str] = field(default_factory=dict)  # batch -> distributor

    def restricted_in(self, batch: str) -> int:
        return len(self.restricted.get(batch, ()))


def _row(device: str, day: int, n: int, **kw: object) -> CheckinRow:
    base: dict[str, object] = {
        "device_id": device,
        "at": START + timedelta(days=day, minutes=n),
        "counter": n,
        "nonce": f"{device[:12]}-{n}",
        "country": HOME,
        "subdivision": None,
        "confidence": 0.95,
        "flags": (),
        "signal_kinds": ("gps", "network", "sim", "ip"),
        "verdict": "allow",
        "reasons": ("policy.no_match",),
        "policy_id": POLICY[0],
        "policy_version": POLICY[1],
    }
    base.update(kw)
    return CheckinRow(**base)  # type: ignore[arg-type]


def _in_iran(device: str, day: int, n: int, reason: str, kinds: tuple[str, ...]) -> CheckinRow:
    action = "lock" if reason != "presence.grace" else "warn"
    return _row(
        device,
        day,
        n,
        country="IR",
        subdivision="IR-23",
        signal_kinds=kinds,
        verdict=action,
        reasons=("jurisdiction.restricted", reason),
    )


def behaviour(kind: str, device: str) -> tuple[list[CheckinRow], str | None]:
    """The check-ins of one device of `kind`, and its first activation country (if any)."""
    gps = ("gps", "network", "sim", "ip")
    rows: list[CheckinRow] = []
    if kind == "leaked":
        rows.append(_row(device, 0, 1))
        for d in range(6):
            reason = "presence.grace" if d < 3 else "presence.established"
            rows.append(_in_iran(device, 2 + d, 2 + d, reason, gps))
        return rows, HOME
    if kind == "activated":
        for d in range(3):
            rows.append(_in_iran(device, 1 + d, 1 + d, "presence.first_activation", gps))
        return rows, "IR"
    if kind == "traveller":
        rows.append(_row(device, 0, 1))
        rows.append(_in_iran(device, 3, 2, "presence.grace", gps))
        rows.append(_in_iran(device, 4, 3, "presence.grace", gps))
        rows.append(_row(device, 6, 4))
        return rows, HOME
    if kind == "border":
        for d in range(12):
            if d in (2, 6, 9):
                rows.append(_in_iran(device, d, d + 1, "presence.grace", ("network", "ip")))
            else:
                rows.append(_row(device, d, d + 1))
        return rows, HOME
    if kind == "vpn":
        rows.append(_row(device, 0, 1))
        for d in range(1, 8):
            rows.append(
                _row(
                    device,
                    d,
                    d + 1,
                    country="IR",
                    signal_kinds=("ip",),
                    flags=("no_presence_evidence",),
                    verdict="allow",
                    reasons=("jurisdiction.restricted", "location.no_presence_evidence"),
                )
            )
        return rows, HOME
    if kind == "unseen":
        return [], None
    rows.append(_row(device, 0, 1))
    rows.append(_row(device, 5, 2))
    return rows, HOME


@dataclass
class FleetSpec:
    """batches: (distributor, batch, size, {position: kind}, default kind)."""

    batches: list[tuple[str, str, int, dict[int, str], str]]


def write_fleet(db: Database, spec: FleetSpec, *, start_imei: int = 0) -> Planned:
    planned = Planned()
    devices, checkins = SqlDeviceStore(db), SqlCheckinStore(db)
    n = start_imei
    records: list[DeviceRecord] = []
    rows: list[CheckinRow] = []
    states: list[tuple[str, DeviceState]] = []
    for distributor, batch, size, kinds, default in spec.batches:
        planned.distributor_of[batch] = distributor
        ids = []
        for position in range(size):
            n += 1
            record = DeviceRecord.create(
                imeis=(parse_imei(imei(n)),),
                id_key=KEY,
                serial=f"S{n:07d}",
                model="X1",
                sales_region="AE",
                distributor=distributor,
                batch=batch,
                public_key=n.to_bytes(32, "big"),
            )
            records.append(record)
            ids.append(record.id)
            kind = kinds.get(position, default)
            device_rows, first = behaviour(kind, record.id)
            rows.extend(device_rows)
            if kind in ("leaked", "activated"):
                planned.restricted.setdefault(batch, set()).add(record.id)
            if first is not None:
                states.append((record.id, DeviceState(first_country=first, counter=1)))
        planned.batches[batch] = ids
    with db.write() as tx:
        devices.import_batch(tx, records, at=1)
    for i in range(0, len(rows), 5000):
        with db.write() as tx:
            checkins.record_many(tx, rows[i : i + 5000])
    with db.write() as tx:
        devices.save_states(tx, [(device, 0, state) for device, state in states])
    return planned


def leaky_batch(size: int, leaked: int, rng: random.Random, *, carton: bool = False) -> dict:
    """Positions of `leaked` devices: scattered, or one run of consecutive devices."""
    if carton:
        first = rng.randrange(0, size - leaked)
        return dict.fromkeys(range(first, first + leaked), "leaked")
    return dict.fromkeys(rng.sample(range(size), leaked), "leaked")


def honest_background(size: int, rng: random.Random, rate: float = 0.005) -> dict[int, str]:
    return {i: "leaked" for i in range(size) if rng.random() < rate}


def planted_fleet(seed: int = 7) -> FleetSpec:
    """The issue's fleet: leaks of 25 %, 8 % and 5 % in one batch of 150 of three distributors,
    each also with four clean batches; two decoy distributors (travellers, a border); a small
    batch with one restricted device; VPN users and unseen devices in a clean distributor."""
    rng = random.Random(seed)
    batches: list[tuple[str, str, int, dict[int, str], str]] = []
    for distributor, share in (("D25", 0.25), ("D08", 0.08), ("D05", 0.05)):
        leaked = round(150 * share)
        batches.append(
            (distributor, f"{distributor}-B0", 150, leaky_batch(150, leaked, rng), "honest")
        )
        for b in range(1, 5):
            batches.append(
                (distributor, f"{distributor}-B{b}", 150, honest_background(150, rng), "honest")
            )
    for b in range(5):
        travellers = {i: "traveller" for i in range(150) if rng.random() < 0.3}
        batches.append(
            ("TRAVEL", f"TRAVEL-B{b}", 150, travellers | honest_background(150, rng), "honest")
        )
        border = {i: "border" for i in range(150) if rng.random() < 0.3}
        batches.append(
            ("BORDER", f"BORDER-B{b}", 150, border | honest_background(150, rng), "honest")
        )
    for b in range(5):
        vpn = {i: "vpn" for i in range(150) if rng.random() < 0.2}
        unseen = {i: "unseen" for i in range(150) if rng.random() < 0.1}
        batches.append(
            ("CLEAN", f"CLEAN-B{b}", 150, vpn | unseen | honest_background(150, rng), "honest")
        )
    batches.append(("SMALL", "SMALL-B0", 8, {3: "leaked"}, "honest"))
    return FleetSpec(batches)


def day(n: int) -> date:
    return (START + timedelta(days=n)).date()


def planted_store(url: str) -> str:
    """The store at `url` (migrated) filled with `planted_fleet()` under the 2021 block's
    policy (activated 2026-12-01); its URL."""
    stores = open_stores(url)
    try:
        write_fleet(stores.db, planted_fleet())
        PolicyAdmin.of(stores).activate(
            example_policy_text("gray-market-2021"),
            source="gray-market-2021.toml",
            actor="test",
            reason="test",
            now=datetime(2026, 12, 1, tzinfo=UTC),
        )
    finally:
        stores.close()
    return url
