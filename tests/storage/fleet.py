"""Registered test devices with keys, and their signed check-ins (check-in pipeline tests)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regionlock.domain.device import DeviceRecord, luhn_check_digit, parse_imei
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.services.registry import Registry
from regionlock.signing import CheckinRequest, SigningKey, sign_checkin
from regionlock.storage import Database

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)


def imei(n: int) -> str:
    body = f"35693803{n:06d}"
    return body + str(luhn_check_digit(body))


def checkin(
    key: SigningKey,
    kid: str,
    counter: int,
    at: datetime,
    signals: Mapping[str, Any],
    nonce: str | None = None,
) -> str:
    req = CheckinRequest(nonce or secrets.token_urlsafe(16), counter, int(at.timestamp()), signals)
    return sign_checkin(req, key, kid)


class Fleet:
    """`n` devices sold in the UAE, each with its own key, in no store yet."""

    def __init__(self, n: int) -> None:
        id_key = secrets.token_bytes(32)
        self.keys = [SigningKey.generate(T0) for _ in range(n)]
        self.records = [
            DeviceRecord.create(
                imeis=(parse_imei(imei(i + 1)),),
                id_key=id_key,
                serial=f"SN{i + 1}",
                model="X1",
                sales_region="AE",
                distributor="D7",
                batch="B1",
                public_key=k.private_key.public_key().public_bytes_raw(),
            )
            for i, k in enumerate(self.keys)
        ]

    def register(self, db: Database) -> None:
        """Import the devices into `db` and activate the 2021 gray-market policy there."""
        with db.write() as tx:
            Registry(db).devices.import_batch(tx, self.records, at=0)
        PolicyAdmin(db).activate(
            (EXAMPLES / "gray-market-2021.toml").read_text(),
            source="t",
            actor="test",
            reason="test",
            now=T0,
        )

    def token(
        self, i: int, counter: int, at: datetime, signals: Mapping[str, Any], nonce: str = ""
    ) -> str:
        return checkin(self.keys[i], self.records[i].id, counter, at, signals, nonce or None)
