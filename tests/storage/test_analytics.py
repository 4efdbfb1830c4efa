"""The analytics tables (storage/analytics.py) on both backends: the store's check-ins and
registry in DuckDB, row for row and typed, and the refresh rule of a cache file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
from storage_fixtures import imei

from regionlock.domain.device import DeviceRecord, DeviceState, parse_imei
from regionlock.domain.policy import Action
from regionlock.storage import Database
from regionlock.storage.analytics import Loaded, open_analytics, refresh
from regionlock.storage.checkins import CheckinRow, SqlCheckinStore
from regionlock.storage.devices import SqlDeviceStore

KEY = bytes(range(32))
T0 = datetime(2026, 11, 27, 9, 30, 15, 250_000, tzinfo=UTC)


def naive(t: datetime) -> datetime:
    """A time as the tables hold it: UTC, without a zone."""
    return t.astimezone(UTC).replace(tzinfo=None)


def two_devices() -> tuple[DeviceRecord, DeviceRecord]:
    dual = DeviceRecord.create(
        imeis=(parse_imei(imei(2)), parse_imei(imei(1))),  # slot order, not IMEI order
        id_key=KEY,
        serial="SN-Ωmega-1",
        model="X1 Pro",
        sales_region="AE",
        distributor="Dístribuidor Ōsaka 大阪",
        batch="B-7",
        public_key=b"\x01" * 32,
        sku="X1P-256",
        manufactured=date(2026, 10, 1),
        shipped=date(2026, 10, 20),
    )
    single = DeviceRecord.create(
        imeis=(parse_imei(imei(3)),),
        id_key=KEY,
        serial="SN2",
        model="X1",
        sales_region="EEA",
        distributor="D8",
        batch="B-8",
        public_key=b"\x02" * 32,
    )
    return dual, single


def checkin(device_id: str, n: int, **changes: object) -> CheckinRow:
    base: dict[str, object] = {
        "device_id": device_id,
        "at": T0 + timedelta(hours=n),
        "counter": n,
        "nonce": f"n{n}",
        "country": "IR",
        "subdivision": "IR-23",
        "confidence": 0.875,
        "flags": ("vpn",),
        "signal_kinds": ("cell", "ip"),
        "verdict": "lock",
        "reasons": ("rule.ir", "presence.days"),
        "policy_id": "gray-market",
        "policy_version": "2021.1",
    }
    base.update(changes)
    return CheckinRow(**base)  # type: ignore[arg-type]


def fill(db: Database) -> tuple[DeviceRecord, DeviceRecord]:
    """The two devices, three check-ins (one unplaced, one narrowed to two subdivisions) and
    the dual-SIM device's state after them."""
    dual, single = two_devices()
    devices = SqlDeviceStore(db)
    with db.write() as tx:
        devices.import_batch(tx, [dual, single], at=1)
        SqlCheckinStore(db).record_many(
            tx,
            [
                checkin(dual.id, 1),
                checkin(
                    dual.id,
                    2,
                    country=None,
                    subdivision=None,
                    confidence=0.0,
                    flags=(),
                    signal_kinds=(),
                    verdict="allow",
                    reasons=("location.unknown",),
                ),
                checkin(
                    single.id,
                    3,
                    country="UA",
                    subdivision=None,
                    subdivision_candidates=("UA-43", "UA-40"),
                    reasons=("règle.ü",),
                ),
            ],
        )
        state = DeviceState(
            last_verdict=Action.LOCK,
            last_country="IR",
            last_subdivision="IR-23",
            last_checkin_at=T0 + timedelta(hours=1),
            first_country="AE",
            first_subdivision="AE-DU",
            first_seen_at=T0 - timedelta(days=3),
            presence={date(2026, 11, 24): frozenset({"AE", "AE-DU"}), T0.date(): frozenset({"IR"})},
            counter=2,
        )
        devices.save_states(tx, [(dual.id, 0, state)])
    return dual, single


def test_the_tables_hold_the_store_rows_typed(db: Database) -> None:
    dual, single = fill(db)
    with open_analytics(db) as con:
        checkins = con.execute("SELECT * EXCLUDE (id) FROM checkins ORDER BY id").fetchall()
        devices = con.execute("SELECT * FROM devices ORDER BY serial").fetchall()
        types = dict(
            con.execute("SELECT column_name, column_type FROM (DESCRIBE checkins)").fetchall()
        )
        types |= dict(
            con.execute("SELECT column_name, column_type FROM (DESCRIBE devices)").fetchall()
        )
        ids = [r[0] for r in con.execute("SELECT id FROM checkins ORDER BY id").fetchall()]
    at = [naive(T0 + timedelta(hours=n)) for n in (1, 2, 3)]
    lock = ["rule.ir", "presence.days"]
    assert checkins == [
        (
            dual.id,
            at[0],
            "IR",
            "IR-23",
            [],
            0.875,
            ["vpn"],
            ["cell", "ip"],
            "lock",
            lock,
            "gray-market",
            "2021.1",
        ),
        (
            dual.id,
            at[1],
            None,
            None,
            [],
            0.0,
            [],
            [],
            "allow",
            ["location.unknown"],
            "gray-market",
            "2021.1",
        ),
        (
            single.id,
            at[2],
            "UA",
            None,
            ["UA-40", "UA-43"],
            0.875,
            ["vpn"],
            ["cell", "ip"],
            "lock",
            ["règle.ü"],
            "gray-market",
            "2021.1",
        ),
    ]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert devices == [
        (
            dual.id,
            "SN-Ωmega-1",
            "X1 Pro",
            "X1P-256",
            "AE",
            "Dístribuidor Ōsaka 大阪",
            "B-7",
            date(2026, 10, 1),
            date(2026, 10, 20),
            [imei(2), imei(1)],
            "AE",
            "AE-DU",
        ),
        (
            single.id,
            "SN2",
            "X1",
            None,
            "EEA",
            "D8",
            "B-8",
            None,
            None,
            [imei(3)],
            None,
            None,
        ),
    ]
    assert types == {
        "id": "VARCHAR",  # the devices' id replaces the check-ins' BIGINT in this dict
        "device_id": "VARCHAR",
        "checkin_at": "TIMESTAMP",
        "country": "VARCHAR",
        "subdivision": "VARCHAR",
        "subdivision_candidates": "VARCHAR[]",
        "confidence": "DOUBLE",
        "flags": "VARCHAR[]",
        "signal_kinds": "VARCHAR[]",
        "verdict": "VARCHAR",
        "reasons": "VARCHAR[]",
        "policy_id": "VARCHAR",
        "policy_version": "VARCHAR",
        "serial": "VARCHAR",
        "model": "VARCHAR",
        "sku": "VARCHAR",
        "sales_region": "VARCHAR",
        "distributor": "VARCHAR",
        "batch": "VARCHAR",
        "manufactured": "DATE",
        "shipped": "DATE",
        "imeis": "VARCHAR[]",
        "first_country": "VARCHAR",
        "first_subdivision": "VARCHAR",
    }


def test_an_empty_store_gives_empty_tables(db: Database) -> None:
    with open_analytics(db) as con:
        assert con.execute("SELECT count(*) FROM checkins").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM devices").fetchall() == [(0,)]


def test_a_refresh_appends_new_checkins_and_reads_devices_again_on_an_activation(
    db: Database, tmp_path: Path
) -> None:
    _, single = fill(db)
    cache = tmp_path / "analytics.duckdb"
    seen: list[tuple[str, int, int]] = []
    open_analytics(db, cache, progress=lambda *p: seen.append(p)).close()
    assert seen[-2:] == [("checkins", 3, 3), ("devices", 2, 2)]
    devices = SqlDeviceStore(db)
    with db.write() as tx:
        SqlCheckinStore(db).record_many(tx, [checkin(single.id, 4, verdict="warn")])
        # A state change that is not a first activation: the devices are not read again.
        devices.save_states(tx, [(single.id, 0, DeviceState(last_verdict=Action.WARN))])
    con = duckdb.connect(str(cache))
    try:
        assert refresh(db, con) == Loaded(checkins=1, devices=0, reloaded=False)
        with db.write() as tx:
            activated = DeviceState(last_verdict=Action.WARN, first_country="IR")
            devices.save_states(tx, [(single.id, 1, activated)])
        assert refresh(db, con) == Loaded(checkins=0, devices=2, reloaded=False)
        assert con.execute("SELECT verdict FROM checkins ORDER BY id").fetchall() == [
            ("lock",),
            ("allow",),
            ("lock",),
            ("warn",),
        ]
        assert con.execute(
            "SELECT first_country FROM devices WHERE id = ?", [single.id]
        ).fetchall() == [("IR",)]
        # Nothing changed: no device is read again.
        assert refresh(db, con) == Loaded(checkins=0, devices=0, reloaded=False)
    finally:
        con.close()


def test_a_cache_missing_a_row_below_its_highest_id_is_loaded_anew(
    db: Database, tmp_path: Path
) -> None:
    # What a PostgreSQL insert that committed after a later id was read leaves behind.
    fill(db)
    cache = tmp_path / "analytics.duckdb"
    with open_analytics(db, cache) as con:
        con.execute("DELETE FROM checkins WHERE id = (SELECT min(id) FROM checkins)")
        assert refresh(db, con) == Loaded(checkins=3, devices=0, reloaded=True)
        assert con.execute("SELECT count(*) FROM checkins").fetchall() == [(3,)]


def test_a_cache_of_another_store_is_loaded_anew(db: Database, tmp_path: Path) -> None:
    fill(db)
    cache = tmp_path / "analytics.duckdb"
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        from regionlock.storage.migrate import migrate

        migrate(other)
        with open_analytics(other, cache) as con:
            assert con.execute("SELECT count(*) FROM checkins").fetchall() == [(0,)]
        with open_analytics(db, cache) as con:
            assert con.execute("SELECT count(*) FROM checkins").fetchall() == [(3,)]
        with open_analytics(other, cache) as con:
            assert con.execute("SELECT count(*) FROM checkins").fetchall() == [(0,)]
            assert con.execute("SELECT count(*) FROM devices").fetchall() == [(0,)]
    finally:
        other.close()
