"""Storage behind small role interfaces, on SQLite (default) or PostgreSQL (scale-out).

`Stores` bundles one implementation of every role for one database. It is built once per
process (the service's state, the command line's context) and services take the roles they
need from it; nothing outside this package writes SQL or builds a `Sql*Store`.
"""

from __future__ import annotations

from dataclasses import dataclass

from regionlock.storage.analytics import AnalyticsSource, default_cache
from regionlock.storage.apikeys import ApiKeyStore, SqlApiKeyStore
from regionlock.storage.appeals import AppealStore, SqlAppealStore
from regionlock.storage.audit import AuditStore, SqlAuditStore
from regionlock.storage.campaigns import CampaignStore, SqlCampaignStore
from regionlock.storage.cases import CaseStore, SqlCaseStore
from regionlock.storage.checkins import CheckinStore, SqlCheckinStore
from regionlock.storage.db import DEFAULT_URL, Database, DatabaseUrl, Transaction, Transactions
from regionlock.storage.devices import DeviceStore, SqlDeviceStore
from regionlock.storage.keys import KeyStore, SqlKeyStore
from regionlock.storage.overview import OverviewStore, SqlOverviewStore
from regionlock.storage.policies import PolicyStore, SqlPolicyStore
from regionlock.storage.privacy import PrivacyStore, SqlPrivacyStore
from regionlock.storage.webhooks import SqlWebhookStore, WebhookStore

__all__ = [
    "DEFAULT_URL",
    "AnalyticsSource",
    "ApiKeyStore",
    "AuditStore",
    "CampaignStore",
    "CaseStore",
    "CheckinStore",
    "Database",
    "DatabaseUrl",
    "DeviceStore",
    "KeyStore",
    "PolicyStore",
    "PrivacyStore",
    "Stores",
    "Transaction",
    "Transactions",
    "open_database",
    "open_stores",
]


def open_database(
    url: str, *, migrate_sqlite: bool = True, sqlite_synchronous: str = "NORMAL"
) -> Database:
    """Open the store at `url`. SQLite is brought up to date on open (nothing to configure);
    PostgreSQL must be migrated explicitly (`regionlock migrate`) and is checked here.
    `sqlite_synchronous`: REGIONLOCK_SQLITE_SYNCHRONOUS (ignored by PostgreSQL)."""
    from regionlock.domain.errors import DataUnavailable
    from regionlock.storage.migrate import available, current_version, migrate

    db = Database(url, sqlite_synchronous=sqlite_synchronous)
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


@dataclass(frozen=True, slots=True)
class Stores:
    """Every storage role on one database; `db` gives the transactions they run in."""

    db: Database
    devices: DeviceStore
    checkins: CheckinStore
    audit: AuditStore
    policies: PolicyStore
    keys: KeyStore
    apikeys: ApiKeyStore
    campaigns: CampaignStore
    cases: CaseStore
    webhooks: WebhookStore
    privacy: PrivacyStore
    appeals: AppealStore
    overview: OverviewStore
    analytics: AnalyticsSource

    @classmethod
    def on(cls, db: Database) -> Stores:
        """The SQL implementation of every role on `db` (either backend)."""
        return cls(
            db=db,
            devices=SqlDeviceStore(db),
            checkins=SqlCheckinStore(db),
            audit=SqlAuditStore(db),
            policies=SqlPolicyStore(db),
            keys=SqlKeyStore(db),
            apikeys=SqlApiKeyStore(db),
            campaigns=SqlCampaignStore(db),
            cases=SqlCaseStore(db),
            webhooks=SqlWebhookStore(db),
            privacy=SqlPrivacyStore(db),
            appeals=SqlAppealStore(db),
            overview=SqlOverviewStore(db),
            analytics=AnalyticsSource(db, default_cache(db)),
        )

    def close(self) -> None:
        self.db.close()


def open_stores(url: str, *, sqlite_synchronous: str = "NORMAL") -> Stores:
    """`open_database` and every role on it."""
    return Stores.on(open_database(url, sqlite_synchronous=sqlite_synchronous))
