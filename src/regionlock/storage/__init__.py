"""Storage behind small role interfaces, on SQLite (default) or PostgreSQL (scale-out)."""

from regionlock.storage.db import DEFAULT_URL, Database, DatabaseUrl, Transaction

__all__ = ["DEFAULT_URL", "Database", "DatabaseUrl", "Transaction", "open_database"]


def open_database(url: str, *, migrate_sqlite: bool = True) -> Database:
    """Open the store at `url`. SQLite is brought up to date on open (nothing to configure);
    PostgreSQL must be migrated explicitly (`regionlock migrate`) and is checked here."""
    from regionlock.domain.errors import DataUnavailable
    from regionlock.storage.migrate import available, current_version, migrate

    db = Database(url)
    if db.dialect == "sqlite" and migrate_sqlite:
        migrate(db)
    else:
        have, want = current_version(db), len(available(db.dialect))
        if have < want:
            db.close()
            raise DataUnavailable(
                f"database {url} is at schema version {have}, this regionlock needs {want}: "
                "run `regionlock migrate`"
            )
    return db
