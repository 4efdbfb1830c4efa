"""The owner's data on both stores, through the real services (docs/privacy.md): raw signals
never reach the database files; export holds everything about a device; erasure leaves no
identifier of it anywhere (SQLite free pages and log included), keeps the audit chain verifying
and returns a signed receipt that is nothing else; retention deletes old check-ins once, keeps
the days of presence the policy reads, and runs once a day whatever the number of processes."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from storage_fixtures import T0, Fleet, imei
from storage_fixtures import checkin as signed_checkin

from regionlock.domain.errors import InvalidInput
from regionlock.geo import Locator
from regionlock.services.appeals import Appeals
from regionlock.services.checkin import CheckinService
from regionlock.services.investigations import Investigations, parse_question
from regionlock.services.privacy import DeviceErased, Privacy
from regionlock.services.registry import Registry
from regionlock.services.webhooks import Webhooks
from regionlock.settings import Settings
from regionlock.signing import WrongType, peek_header, verify_verdict
from regionlock.signing.appeal import AppealRequest, sign_appeal
from regionlock.signing.erasure import ERASURE_RECEIPT_TYP, verify_erasure_receipt
from regionlock.storage import Database, Stores
from regionlock.storage.analytics import AnalyticsSource
from regionlock.storage.checkins import partitions
from regionlock.storage.db import epoch_ms
from regionlock.storage.privacy import SqlPrivacyStore, device_digest

# Raw signals the check-ins carry, each distinctive enough that finding it means it was stored.
PLACES = [
    ({"lat": 35.689217, "lon": 51.389123}, "2.144.77.231"),  # Tehran
    ({"lat": 25.204849, "lon": 55.270783}, "5.30.191.47"),  # Dubai
    ({"lat": 32.652711, "lon": 51.667983}, "2.176.13.109"),  # Isfahan
]


def _signals(i: int) -> dict[str, object]:
    gps, ip = PLACES[i % len(PLACES)]
    mcc = "432-11" if gps["lat"] != 25.204849 else "424-02"
    return {"gps": dict(gps, accuracy_m=12.5), "ip": ip, "sim": [mcc], "network": [mcc]}


def _needles() -> list[bytes]:
    """Every raw value, as text and (coordinates) as the 8-byte doubles SQLite would store."""
    out: list[bytes] = []
    for gps, ip in PLACES:
        out.append(ip.encode())
        for v in (gps["lat"], gps["lon"]):
            out += [repr(v).encode(), f"{v:.5f}".encode(), struct.pack("<d", v)]
            out.append(struct.pack(">d", v))
    return out


def _stored_bytes(db: Database, tmp_path: Path) -> bytes:
    """What the store holds, as bytes: SQLite's files as they are on disk (free pages and the
    write-ahead log included); for PostgreSQL, whose files are the server's, every row of
    every table of the test's schema as text."""
    if db.dialect == "sqlite":
        files = [tmp_path / "test.db", tmp_path / "test.db-wal"]
        return b"".join(f.read_bytes() for f in files if f.exists())
    with db.read() as tx:
        tables = [
            r[0]
            for r in tx.all(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                (db.schema,),
            )
        ]
        chunks = [
            str(row[0]).encode()
            for t in tables
            for row in tx.all(f'SELECT t::text FROM "{t}" AS t')
        ]
    return b"\n".join(chunks)


@pytest.fixture
def world(db: Database, locator: Locator) -> tuple[Stores, Fleet, CheckinService]:
    fleet = Fleet(3)
    fleet.register(db)
    stores = Stores.on(db)
    return stores, fleet, CheckinService.of(stores, locator, Settings())


def _run(world: tuple[Stores, Fleet, CheckinService], days: int = 3) -> Webhooks:
    """Three devices check in from three places for `days` days (GPS, IP as a signal and as
    the peer address); device 1 is locked by hand and appeals; a webhook endpoint gets events."""
    stores, fleet, service = world
    webhooks = Webhooks.of(stores, clock=lambda: T0)
    webhooks.add("https://hooks.example.com/h", ["*"], name=None, actor="t")
    counter = 0
    for day in range(days):
        for i in range(3):
            counter += 1
            at = T0 + timedelta(days=day, minutes=i)
            token = signed_checkin(fleet.keys[i], imei(i + 1), counter, at, _signals(i + day))
            service.check_in(token, peer_ip=PLACES[(i + day + 1) % 3][1], now=at)
    Registry.of(stores).lock(imei(2), reason="stolen", actor="t", now=T0 + timedelta(days=days))
    now = T0 + timedelta(days=days, hours=1)
    request = AppealRequest(
        nonce="n" * 22,
        iat=int(now.timestamp()),
        contact="owner2@example.com",
        message="It is mine, bought in Dubai.",
        language=None,
    )
    Appeals.of(stores, clock=lambda: now).submit(
        sign_appeal(request, fleet.keys[1], fleet.records[1].id)
    )
    webhooks.fan_out()
    return webhooks


def test_no_raw_ip_or_coordinate_reaches_the_store(
    world: tuple[Stores, Fleet, CheckinService], db: Database, tmp_path: Path
) -> None:
    _run(world)
    stored = _stored_bytes(db, tmp_path)
    assert imei(1).encode() in stored  # the scan sees what is there
    found = [n for n in _needles() if n in stored]
    assert found == []


def test_export_holds_everything_about_the_device(
    world: tuple[Stores, Fleet, CheckinService],
) -> None:
    stores, fleet, _ = world
    _run(world)
    doc = Privacy.of(stores).export(imei(2), now=T0)
    dev = fleet.records[1].id
    assert doc["format"] == "regionlock-device-export/1"
    assert doc["device"]["id"] == dev and doc["device"]["imeis"] == [imei(2)]
    assert doc["device"]["state"]["manual_lock"]["reason"] == "stolen"
    assert len(doc["checkins"]) == 3 and {c["verdict"] for c in doc["checkins"]} <= {
        "allow",
        "warn",
        "lock",
    }
    assert len(doc["verdicts"]) == 3
    assert all(v["subject"] == dev for v in doc["verdicts"])
    assert [a["contact"] for a in doc["appeals"]] == ["owner2@example.com"]
    assert {e["action"] for e in doc["audit"]} >= {"device.lock", "appeal.create"}
    assert doc["webhook_deliveries"] and all(
        dev in json.dumps(d["body"]) for d in doc["webhook_deliveries"]
    )
    # Nothing about the other devices.
    others = [r.id for r in fleet.records if r.id != dev]
    assert not any(o in json.dumps(doc) for o in others)


def test_erasure_leaves_no_identifier_keeps_the_chain_and_signs_a_receipt(
    world: tuple[Stores, Fleet, CheckinService], db: Database, tmp_path: Path
) -> None:
    stores, fleet, _ = world
    webhooks = _run(world)
    dev, other = fleet.records[1].id, fleet.records[0].id
    # An investigation has copied the store into its cache (IMEIs included).
    cache = tmp_path / "investigate.duckdb"
    stores = replace(stores, analytics=AnalyticsSource(db, cache))
    Investigations.of(stores).leaks("batch", parse_question(["IR"], None, None))
    assert cache.exists() and imei(2).encode() in cache.read_bytes()
    privacy = Privacy.of(stores)
    before = privacy.export(imei(2), now=T0)
    assert imei(2).encode() in _stored_bytes(db, tmp_path)

    done = privacy.erase(imei(2), reason="owner's request #1", actor="t", now=T0)
    assert not cache.exists()  # the copy is dropped; the next investigation rebuilds it

    stored = _stored_bytes(db, tmp_path)
    assert imei(2).encode() not in stored  # nor in free pages or the log (SQLite)
    assert dev.encode() not in stored
    assert b"owner2@example.com" not in stored and b"bought in Dubai" not in stored
    assert b"SN2" not in stored  # the serial
    assert [n for n in _needles() if n in stored] == []
    # The others are untouched.
    assert imei(1).encode() in stored and other.encode() in stored
    assert len(privacy.export(imei(1), now=T0)["checkins"]) == 3

    # The chain verifies; the redacted entries keep their hashes and show nothing.
    check = stores.audit.verify()
    assert check.ok, check.problem
    entries = {e.seq: e for e in stores.audit.entries()}
    redacted = [e for e in entries.values() if e.redacted == done.receipt_id]
    assert (
        len(redacted)
        == done.claims["removed"]["audit_redacted"]
        == len(before["verdicts"]) + len(before["audit"])
    )
    assert all(
        (e.actor, e.subject, e.reason, dict(e.details)) == ("", "", "", {}) for e in redacted
    )
    erase_entry = entries[done.claims["seq"]]
    assert erase_entry.action == "device.erase" and erase_entry.hash == done.claims["hash"]
    assert erase_entry.details["redacted"] == sorted(e.seq for e in redacted)

    # Pending deliveries naming it are dropped with their bodies; the others still go.
    sent = webhooks.deliveries(webhooks.endpoints()[0].id)
    dropped = [d for d in sent if d.status == "dropped"]
    assert len(dropped) == len(before["webhook_deliveries"]) > 0
    assert all(d.body == b'{"redacted":true}' for d in dropped)
    assert any(d.status == "pending" and other.encode() in d.body for d in sent)
    # The receipt: signed, about this device, and never a verdict.
    ring = stores.keys.keyring(T0)
    kid, claims = verify_erasure_receipt(done.token, ring)
    assert kid == done.kid and claims == done.claims
    assert claims["dev"] == device_digest(dev)
    assert claims["removed"]["checkins"] == 3 and claims["removed"]["imeis"] == 1
    assert claims["removed"]["appeals"] == 1 and claims["removed"]["devices"] == 1
    with pytest.raises(WrongType):
        verify_verdict(done.token, ring.jwks(T0, timedelta(days=1)), now=T0)
    assert peek_header(done.token)["typ"] == ERASURE_RECEIPT_TYP

    # Asked again, by id: erased, with the receipt id; the device cannot check in.
    with pytest.raises(DeviceErased, match=done.receipt_id):
        privacy.export(dev, now=T0)
    with pytest.raises(DeviceErased):
        privacy.erase(dev, reason="again", actor="t", now=T0)
    tomb = stores.privacy.erased(dev)
    assert tomb is not None and tomb.receipt == done.token


def test_a_redacted_chain_still_detects_tampering(
    world: tuple[Stores, Fleet, CheckinService], db: Database
) -> None:
    stores, _, _ = world
    _run(world, days=1)
    done = Privacy.of(stores).erase(imei(2), reason="request", actor="t", now=T0)
    redacted = [e for e in stores.audit.entries() if e.redacted]
    target = redacted[0]
    # A redacted entry's remaining fields are still committed to.
    with db.write() as tx:
        tx.execute("UPDATE audit SET at = at + 1 WHERE seq = ?", (target.seq,))
    result = stores.audit.verify()
    assert (result.ok, result.first_broken) == (False, target.seq)
    with db.write() as tx:
        tx.execute("UPDATE audit SET at = at - 1 WHERE seq = ?", (target.seq,))
    assert stores.audit.verify().ok
    # Something written into its emptied fields shows.
    with db.write() as tx:
        tx.execute("UPDATE audit SET reason = 'forged' WHERE seq = ?", (target.seq,))
    assert stores.audit.verify().first_broken == target.seq
    with db.write() as tx:
        tx.execute("UPDATE audit SET reason = '' WHERE seq = ?", (target.seq,))
    # A redaction the erasure did not record: refused.
    plain = next(
        e for e in stores.audit.entries() if e.redacted is None and e.seq < done.claims["seq"]
    )
    with db.write() as tx:
        stores.audit.redact(tx, [plain.seq], done.receipt_id)
    result = stores.audit.verify()
    assert (result.ok, result.first_broken) == (False, plain.seq)
    assert "no later entry records the redaction" in result.problem


def test_retention_deletes_old_checkins_once_and_keeps_the_days_the_policy_reads(
    world: tuple[Stores, Fleet, CheckinService], db: Database
) -> None:
    stores, _, _ = world
    _run(world)
    privacy = Privacy.of(stores)
    # A state that lacks its days of presence (as one written before they were kept would):
    # retention puts back those of the rows it deletes, within the policy's reach.
    first = stores.devices.get(imei(1))
    assert first is not None and len(first.state.presence) == 3
    with db.write() as tx:
        stores.devices.save_state(tx, first, replace(first.state, presence={}))
    entries = len(stores.audit.entries())
    now = T0 + timedelta(days=3, hours=1)

    seen: list[int] = []
    report = privacy.run_retention(days=2, now=now, chunk=4, progress=seen.append)

    assert report.deleted == 6 and sum(seen) == 6 and seen[0] == 4  # two chunks
    assert report.devices_folded == 1
    kept = stores.devices.get(imei(1))
    assert kept is not None
    assert sorted(kept.state.presence) == [T0.date(), (T0 + timedelta(days=1)).date()]
    assert kept.state.presence[T0.date()] == first.state.presence[T0.date()]
    assert [len(privacy.export(imei(i), now=now)["checkins"]) for i in (1, 2, 3)] == [1, 1, 1]
    # Run again: nothing left to do. The audit trail is untouched and verifies.
    assert privacy.run_retention(days=2, now=now).deleted == 0
    assert len(stores.audit.entries()) == entries and stores.audit.verify().ok
    with pytest.raises(InvalidInput):
        privacy.run_retention(days=0, now=now)


def test_retention_drops_months_whole_on_postgresql_and_rows_on_sqlite(
    world: tuple[Stores, Fleet, CheckinService], db: Database
) -> None:
    """The same check-ins, the same retention, the same result on both stores; PostgreSQL
    gets there by folding and then dropping the months wholly past the cutoff."""
    stores, _, _ = world
    made = stores.checkins.prepare_partitions(T0)  # November 2026 to January 2027
    _run(world)
    privacy = Privacy.of(stores)
    entries = len(stores.audit.entries())
    now = T0 + timedelta(days=60)  # cutoff 30 days back: 27 December
    report = privacy.run_retention(days=30, now=now, chunk=4)
    assert report.deleted == 9
    assert [len(privacy.export(imei(i), now=now)["checkins"]) for i in (1, 2, 3)] == [0, 0, 0]
    assert len(stores.audit.entries()) == entries and stores.audit.verify().ok
    if db.dialect == "postgresql":
        assert made == ["checkins_y2026m11", "checkins_y2026m12", "checkins_y2027m01"]
        # November went whole (and the empty legacy partition, all of it before 1970);
        # December ends after the cutoff and stays.
        assert partition_names(db) == ["checkins_y2026m12", "checkins_y2027m01", "checkins_default"]
    else:
        assert made == []
    assert privacy.run_retention(days=30, now=now).deleted == 0


def test_the_daily_retention_runs_once_a_day_whatever_the_processes(
    world: tuple[Stores, Fleet, CheckinService],
) -> None:
    stores, _, _ = world
    _run(world, days=1)
    privacy = Privacy.of(stores)
    hour = timedelta(hours=1)
    now = T0 + timedelta(days=200)
    report = privacy.run_retention_if_due(days=180, now=now, owner="a")
    assert report is not None and report.deleted == 3
    assert privacy.run_retention_if_due(days=180, now=now + hour, owner="b") is None
    assert privacy.run_retention_if_due(days=180, now=now + 25 * hour, owner="b") is not None
    # A run that died holding the job: taken up once its lease (an hour) is over.
    later = epoch_ms(now + 50 * hour)
    assert stores.privacy.claim_job("retention", later, 3_600_000, "c")
    assert not stores.privacy.claim_job("retention", later + 1_800_000, 3_600_000, "d")
    assert stores.privacy.claim_job("retention", later + 3_600_000, 3_600_000, "d")


def test_events_of_an_erased_device_not_yet_queued_are_never_sent(
    world: tuple[Stores, Fleet, CheckinService],
) -> None:
    """Entries redacted before the webhook fan-out reached them announce nothing."""
    stores, fleet, _ = world
    webhooks = Webhooks.of(stores, clock=lambda: T0)
    endpoint, _ = webhooks.add("https://hooks.example.com/h", ["*"], name=None, actor="t")
    registry = Registry.of(stores)
    registry.lock(imei(1), reason="stolen", actor="t", now=T0)
    registry.lock(imei(2), reason="stolen", actor="t", now=T0)
    Privacy.of(stores).erase(imei(1), reason="request", actor="t", now=T0)
    webhooks.fan_out()
    sent = webhooks.deliveries(endpoint.id)
    assert [json.loads(d.body)["data"]["device"] for d in sent] == [fleet.records[1].id]


class CrashBeforeScrub(SqlPrivacyStore):
    """A store whose process dies between the erasure's commit and its scrub."""

    def scrub(self, tables: Sequence[str]) -> None:
        pass


def test_erasing_again_finishes_a_scrub_cut_short(
    world: tuple[Stores, Fleet, CheckinService], db: Database, tmp_path: Path
) -> None:
    stores, fleet, _ = world
    _run(world, days=1)
    crashing = replace(Privacy.of(stores), privacy=CrashBeforeScrub(db))
    crashing.erase(imei(2), reason="request", actor="t", now=T0)
    if db.dialect == "sqlite":  # the rows are gone, their bytes not yet
        assert imei(2).encode() in _stored_bytes(db, tmp_path)
    with pytest.raises(DeviceErased):
        Privacy.of(stores).erase(fleet.records[1].id, reason="again", actor="t", now=T0)
    assert imei(2).encode() not in _stored_bytes(db, tmp_path)


def test_retention_drops_days_whole_when_the_history_is_partitioned_by_day(
    world: tuple[Stores, Fleet, CheckinService], db: Database
) -> None:
    """REGIONLOCK_CHECKIN_PARTITIONS=day: each day wholly past the cutoff is folded and
    dropped; the day the cutoff falls in keeps its rows."""
    if db.dialect == "sqlite":
        pytest.skip("SQLite has no partitions: the test above covers its retention")
    stores, _, _ = world
    made = stores.checkins.prepare_partitions(T0, period="day", ahead=4)
    assert made == [f"checkins_y2026m11d{d}" for d in (27, 28, 29, 30)] + ["checkins_y2026m12d01"]
    _run(world)  # 27, 28 and 29 November, from 09:00
    privacy = Privacy.of(stores)
    now = T0 + timedelta(days=32)  # cutoff 30 days back: 29 November, 09:00
    report = privacy.run_retention(days=30, now=now, chunk=4)
    assert report.deleted == 6
    assert [len(privacy.export(imei(i), now=now)["checkins"]) for i in (1, 2, 3)] == [1, 1, 1]
    days = [f"checkins_y2026m11d{d}" for d in (29, 30)] + ["checkins_y2026m12d01"]
    assert partition_names(db) == [*days, "checkins_default"]
    assert stores.audit.verify().ok


def partition_names(db: Database) -> list[str]:
    with db.read() as tx:
        return [p.name for p in partitions(tx)]
