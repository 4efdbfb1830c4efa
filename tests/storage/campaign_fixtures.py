"""Helpers of the campaign tests: a varied fleet registered with states, and the audit trail
read back per campaign."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

from storage_fixtures import T0, imei

from regionlock.domain.campaign import SelectionFacts, seen_countries
from regionlock.domain.device import DeviceRecord, DeviceState, parse_imei
from regionlock.domain.policy import Action
from regionlock.signing import SigningKey
from regionlock.storage import Database, Stores

ID_KEY = b"campaign-test-id-key-0123456789ab"
PUBLIC_KEY = SigningKey.generate(T0).private_key.public_key().public_bytes_raw()
COUNTRIES = ("AE", "IR", "SY", "DE", None)
SUBDIVISIONS = {"AE": "AE-DU", "IR": "IR-23", "SY": "SY-DI", "DE": "DE-BE"}
VERDICTS = (Action.ALLOW, Action.WARN, Action.LOCK, None)


def record(n: int, **fields: Any) -> DeviceRecord:
    values = {
        "model": "X1",
        "sales_region": "AE",
        "distributor": "D1",
        "batch": "B1",
    } | fields
    return DeviceRecord.create(
        imeis=(parse_imei(imei(n)),),
        id_key=ID_KEY,
        serial=f"SN{n}",
        public_key=PUBLIC_KEY,
        **values,
    )


def varied(n: int) -> tuple[DeviceRecord, DeviceState]:
    """Device `n` of a fleet whose fields vary independently."""
    rec = record(
        n,
        distributor=f"D{n % 3}",
        batch=f"B{n % 4}",
        model=("X1", "X2")[n % 2],
        sales_region=("AE", "EU", "GLOBAL", "IR", "DE")[(n // 3) % 5],
    )
    country = COUNTRIES[n % 5]
    first = COUNTRIES[(n // 5) % 5]
    day = date(2026, 11, 1)
    presence = {}
    if country is not None:
        presence[day] = frozenset({country, SUBDIVISIONS[country]})
    if n % 7 == 0:
        presence[day + timedelta(days=1)] = frozenset({"CU"})
    state = DeviceState(
        last_verdict=VERDICTS[n % 4],
        last_country=country,
        last_subdivision=SUBDIVISIONS.get(country) if country and n % 3 else None,
        first_country=first,
        presence=presence,
        counter=1,
    )
    return rec, state


def facts(rec: DeviceRecord, state: DeviceState) -> SelectionFacts:
    return SelectionFacts(
        distributor=rec.distributor,
        batch=rec.batch,
        model=rec.model,
        sales_region=rec.sales_region,
        country=state.last_country,
        subdivision=state.last_subdivision,
        verdict=state.last_verdict.value if state.last_verdict else None,
        seen_in=frozenset(seen_countries(state.presence, state.first_country)),
        activated_in=state.first_country,
    )


def register(db: Database, devices: list[tuple[DeviceRecord, DeviceState]]) -> None:
    """Import the records and store their states (through the device store's save)."""
    stores = Stores.on(db)
    for i in range(0, len(devices), 1000):
        part = devices[i : i + 1000]
        with db.write() as tx:
            stores.devices.import_batch(tx, [r for r, _ in part], at=0)
            stores.devices.save_states(tx, [(r.id, 0, s) for r, s in part if s != DeviceState()])


def plain_fleet(db: Database, n: int, **fields: Any) -> list[str]:
    """`n` devices with default states; their ids."""
    recs = [record(i + 1, **fields) for i in range(n)]
    register(db, [(r, DeviceState()) for r in recs])
    return sorted(r.id for r in recs)


def campaign_entries(db: Database) -> Counter[tuple[str, str]]:
    """(campaign id, device id) of every audit entry a campaign wrote about a device."""
    out: Counter[tuple[str, str]] = Counter()
    for e in Stores.on(db).audit.iter_all():
        if "campaign" in e.details and e.subject.startswith("dev_"):
            out[(str(e.details["campaign"]), e.subject)] += 1
    return out


def versions(db: Database) -> dict[str, int]:
    with db.read() as tx:
        return {str(r[0]): int(r[1]) for r in tx.all("SELECT id, state_version FROM devices")}
