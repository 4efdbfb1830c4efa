"""Backups of a SQLite store taken while check-ins are recorded, and restores: consistent,
all-or-nothing, refused while the store is in use; and the durability setting."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from storage_fixtures import PG_URL, T0, Fleet

from regionlock.domain.errors import InvalidInput
from regionlock.geo import Locator
from regionlock.services.checkin import CheckinService
from regionlock.settings import Settings
from regionlock.signing import ReplayedNonce, StaleCounter
from regionlock.storage import Database, Stores
from regionlock.storage.backup import (
    BackupExists,
    StoreInUse,
    backup_sqlite,
    restore_sqlite,
)
from regionlock.storage.migrate import migrate

DUBAI = {"network": ["424-02"], "sim": ["424-02"], "gps": {"lat": 25.2048, "lon": 55.2708}}
SRC = str(Path(__file__).resolve().parents[2] / "src")


class Service:
    """The check-in service in process on a SQLite file, with a fleet registered there."""

    def __init__(self, path: Path, locator: Locator, fleet: Fleet, *, register: bool) -> None:
        self.url = f"sqlite:///{path}"
        self.db = Database(self.url)
        migrate(self.db)
        if register:
            fleet.register(self.db)
        self.stores = Stores.on(self.db)
        self.checkins = CheckinService.of(self.stores, locator, Settings(database_url=self.url))
        self.fleet = fleet

    def check_in(self, device: int, counter: int, minute: int, token: str = "") -> str:
        """Check device `device` in with `counter`; returns the token sent."""
        now = T0 + timedelta(minutes=minute)
        token = token or self.fleet.token(device, counter, now, DUBAI)
        self.checkins.check_in(token, peer_ip=None, now=now)
        return token

    def counter(self, device: int) -> int:
        found = self.stores.devices.get(self.fleet.records[device].id)
        assert found is not None
        return found.state.counter

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def fleet() -> Fleet:
    return Fleet(2)


@pytest.fixture
def live(tmp_path: Path, locator: Locator, fleet: Fleet) -> Iterator[Service]:
    service = Service(tmp_path / "live.db", locator, fleet, register=True)
    yield service
    service.close()


def consistent(path: Path) -> tuple[int, int]:
    """Check a store file as a whole: an intact audit chain, one audit entry per recorded
    check-in, and every device's counter the highest it recorded. Returns (check-ins, entries)."""
    db = Database(f"sqlite:///{path}")
    try:
        stores = Stores.on(db)
        result = stores.audit.verify()
        assert result.ok, result
        with db.read() as tx:
            rows = tx.all("SELECT device_id, MAX(counter), COUNT(*) FROM checkins GROUP BY 1")
            (verdicts,) = tx.one("SELECT COUNT(*) FROM audit WHERE action = 'checkin.verdict'")
        for device_id, highest, _ in rows:
            found = stores.devices.get(device_id)
            assert found is not None and found.state.counter == highest
        recorded = sum(n for _, _, n in rows)
        assert recorded == verdicts
        return recorded, result.checked
    finally:
        db.close()


def test_a_restored_store_refuses_the_counters_it_had_accepted(
    tmp_path: Path, live: Service, locator: Locator, fleet: Fleet
) -> None:
    for counter in (1, 2, 3):
        live.check_in(0, counter, minute=counter)
    backup = tmp_path / "backup.db"
    report = backup_sqlite(live.url, backup)
    assert report.pages > 0 and report.schema_version > 0
    after_backup = live.check_in(0, 4, minute=4)  # lost by the restore
    live.check_in(0, 5, minute=5)
    live.close()  # the service stops

    restore_sqlite(backup, live.url)
    assert consistent(tmp_path / "live.db") == (3, 5)  # and the policy's 2 entries
    again = Service(tmp_path / "live.db", locator, fleet, register=False)
    try:
        assert again.counter(0) == 3
        for stale in (3, 2):
            with pytest.raises(StaleCounter):
                again.check_in(0, stale, minute=6)
        # The device is ahead of the restored store: its next check-in goes through.
        again.check_in(0, 6, minute=6)
        assert again.counter(0) == 6
        # A check-in the restore undid is below the device's counter now.
        with pytest.raises(StaleCounter):
            again.check_in(0, 4, minute=6, token=after_backup)
    finally:
        again.close()
    assert consistent(tmp_path / "live.db") == (4, 6)


def test_a_checkin_lost_by_a_restore_is_accepted_once_more(
    tmp_path: Path, live: Service, locator: Locator, fleet: Fleet
) -> None:
    """What a restore undid, the store no longer knows: a check-in of the lost window can be
    sent again and is taken once (inside its clock window), then refused as a replay
    (docs/configuration.md, "Durability")."""
    live.check_in(0, 1, minute=1)
    backup = tmp_path / "backup.db"
    backup_sqlite(live.url, backup)
    lost = live.check_in(0, 2, minute=2)
    live.close()
    restore_sqlite(backup, live.url)
    again = Service(tmp_path / "live.db", locator, fleet, register=False)
    try:
        again.check_in(0, 2, minute=3, token=lost)  # its nonce and counter were forgotten
        with pytest.raises(ReplayedNonce):
            again.check_in(0, 2, minute=3, token=lost)
    finally:
        again.close()


def test_a_backup_taken_while_checkins_are_recorded_is_consistent(
    tmp_path: Path, live: Service
) -> None:
    live.check_in(0, 1, minute=0)
    go, committed = threading.Semaphore(0), threading.Semaphore(0)
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        """Records check-ins on its own thread and connection, one each time it is told."""
        counter = 1
        while not stop.is_set():
            if not go.acquire(timeout=0.1):
                continue
            counter += 1
            try:
                live.check_in(counter % 2, counter, minute=counter)
            except BaseException as exc:  # reported below
                failures.append(exc)
            committed.release()

    steps = [0]

    def between_steps(done: int, total: int) -> None:
        # Between every two steps of the copy a check-in commits, so the store changes under
        # the backup throughout, whatever the scheduler does.
        steps[0] += 1
        assert steps[0] <= total, "the copy started over: it did not read one snapshot"
        go.release()
        assert committed.acquire(timeout=60), "the writer stopped"

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        report = backup_sqlite(
            live.url, tmp_path / "backup.db", progress=between_steps, step_pages=1
        )
    finally:
        stop.set()
        thread.join()
    assert not failures, failures
    assert steps[0] == report.pages > 10  # one page a step: the copy took many steps
    in_backup, _ = consistent(tmp_path / "backup.db")
    in_live, _ = consistent(tmp_path / "live.db")
    assert in_backup == 1 and in_live == 1 + steps[0]  # the copy is the store as it began


def test_an_existing_file_is_kept_unless_replacing_is_asked_for(
    tmp_path: Path, live: Service
) -> None:
    target = tmp_path / "backup.db"
    target.write_bytes(b"yesterday's backup")
    with pytest.raises(BackupExists):
        backup_sqlite(live.url, target)
    assert target.read_bytes() == b"yesterday's backup"
    backup_sqlite(live.url, target, overwrite=True)
    assert consistent(target) == (0, 2)
    assert target.stat().st_mode & 0o777 == 0o600  # it holds the private keys
    assert sorted(p.name for p in tmp_path.iterdir() if "backup" in p.name) == ["backup.db"]


def test_a_missing_store_is_not_created_by_a_backup(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no database at"):
        backup_sqlite(f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "b.db")
    assert list(tmp_path.iterdir()) == []


def crash_during(code: str, tmp_path: Path, at: int = 3) -> None:
    """Run `code` in a process that dies (os._exit) once `at` pages are copied."""
    script = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from regionlock.storage.backup import backup_sqlite, restore_sqlite
        tmp = Path(sys.argv[1])
        def die(done, total):
            if done >= int(sys.argv[2]):
                os._exit(9)
        """
    ) + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(at)],
        env={"PYTHONPATH": SRC},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 9, done.stderr


def test_a_crash_during_a_backup_leaves_no_backup_file(tmp_path: Path, live: Service) -> None:
    live.check_in(0, 1, minute=1)
    crash_during(
        "backup_sqlite(f\"sqlite:///{tmp / 'live.db'}\", tmp / 'b.db', progress=die, step_pages=1)",
        tmp_path,
    )
    assert not (tmp_path / "b.db").exists()
    # It died part-way through the copy, which was left under a name of its own.
    assert [p.name for p in tmp_path.glob(".b.db.*.partial")]


def test_a_crash_during_a_restore_leaves_the_store_as_it_was(tmp_path: Path, live: Service) -> None:
    live.check_in(0, 1, minute=1)
    # Ballast: a backup larger than SQLite's page cache (2 MiB), so that a restore writes into
    # the database file before it commits.
    with live.db.write() as tx:
        tx.execute("CREATE TABLE ballast (b BLOB)")
        tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
            " INSERT INTO ballast SELECT randomblob(4000) FROM n"
        )
    backup_sqlite(live.url, tmp_path / "b.db")
    for counter in range(2, 30):
        live.check_in(counter % 2, counter, minute=counter)
    live.close()
    before = consistent(tmp_path / "live.db")
    crash_during(
        "restore_sqlite(tmp / 'b.db', f\"sqlite:///{tmp / 'live.db'}\", progress=die, "
        "step_pages=1)",
        tmp_path,
        at=900,
    )
    # It died with part of the backup written over the store: SQLite's journal of the pages
    # it replaced is there, and rolls them back when the store is next opened.
    assert (tmp_path / "live.db-journal").stat().st_size > 0
    assert consistent(tmp_path / "live.db") == before
    assert not (tmp_path / "live.db-journal").exists()
    restore_sqlite(tmp_path / "b.db", live.url)  # and it can still be restored
    assert consistent(tmp_path / "live.db") == (1, 3)


HOLD = """
import fcntl, os, sys
from regionlock.storage import Database
what, path = sys.argv[1], sys.argv[2]
if what == "open":  # a service between two writes
    db = Database(f"sqlite:///{path}")
    with db.write() as tx:
        tx.one("SELECT COUNT(*) FROM devices")
else:  # a process in the middle of a write
    fd = os.open(path + "-writer", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize(
    ("what", "message"), [("open", "another process has"), ("write", "a process is writing")]
)
def test_a_restore_is_refused_while_another_process_uses_the_store(
    tmp_path: Path, live: Service, what: str, message: str
) -> None:
    live.check_in(0, 1, minute=1)
    backup_sqlite(live.url, tmp_path / "b.db")
    live.check_in(0, 2, minute=2)
    live.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, what, str(tmp_path / "live.db")],
        env={"PYTHONPATH": SRC},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        with pytest.raises(StoreInUse, match=message):
            restore_sqlite(tmp_path / "b.db", live.url)
    finally:
        holder.communicate("")
    assert consistent(tmp_path / "live.db") == (2, 4)  # untouched
    restore_sqlite(tmp_path / "b.db", live.url)
    assert consistent(tmp_path / "live.db") == (1, 3)


def test_a_restore_is_refused_while_this_process_has_the_store_open(
    tmp_path: Path, live: Service
) -> None:
    backup_sqlite(live.url, tmp_path / "b.db")
    with pytest.raises(StoreInUse, match="another process has"):
        restore_sqlite(tmp_path / "b.db", live.url)


def test_a_restore_refuses_what_is_not_a_sound_backup(tmp_path: Path, live: Service) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    live.close()
    with pytest.raises(InvalidInput, match="not a SQLite database"):
        restore_sqlite(junk, live.url)
    newer = tmp_path / "newer.db"
    backup_sqlite(live.url, newer)
    db = Database(f"sqlite:///{newer}")
    with db.write() as tx:
        tx.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    db.close()
    with pytest.raises(InvalidInput, match="schema version 999, newer than"):
        restore_sqlite(newer, live.url)
    assert consistent(tmp_path / "live.db") == (0, 2)


def test_postgresql_is_refused_with_its_own_tools_named(tmp_path: Path) -> None:
    url = PG_URL or "postgresql://postgres@127.0.0.1:5432/test"
    with pytest.raises(InvalidInput, match="pg_dump -Fc"):
        backup_sqlite(url, tmp_path / "b.db")
    (tmp_path / "b.db").write_bytes(b"")
    with pytest.raises(InvalidInput, match="pg_restore"):
        restore_sqlite(tmp_path / "b.db", url)
    assert [p.name for p in tmp_path.iterdir()] == ["b.db"]


# -- durability: REGIONLOCK_SQLITE_SYNCHRONOUS ------------------------------------------------


@pytest.mark.parametrize(("level", "pragma"), [("NORMAL", 1), ("FULL", 2)])
def test_the_synchronous_level_reaches_every_connection(
    tmp_path: Path, level: str, pragma: int
) -> None:
    settings = Settings.from_env(
        {"REGIONLOCK_SQLITE_SYNCHRONOUS": level, "REGIONLOCK_DATABASE_URL": "sqlite:///x.db"}
    )
    db = Database(f"sqlite:///{tmp_path / 'd.db'}", sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with db.read() as tx:
            assert tx.one("PRAGMA synchronous") == (pragma,)
    finally:
        db.close()


def test_the_synchronous_level_is_validated() -> None:
    with pytest.raises(InvalidInput, match="REGIONLOCK_SQLITE_SYNCHRONOUS='OFF': expected"):
        Settings.from_env({"REGIONLOCK_SQLITE_SYNCHRONOUS": "OFF"})
    with pytest.raises(InvalidInput, match="expected one of NORMAL, FULL"):
        Database("sqlite:///x.db", sqlite_synchronous="OFF; DROP TABLE devices")
