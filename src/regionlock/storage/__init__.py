"""Storage behind small role interfaces, on SQLite (default) or PostgreSQL (scale-out)."""

from regionlock.storage.db import DEFAULT_URL, Database, DatabaseUrl, Transaction

__all__ = ["DEFAULT_URL", "Database", "DatabaseUrl", "Transaction"]
