"""Check-in records: what was decided, where, from which kinds of signal (never raw values).

Contract (both backends): `record` runs in the caller's write transaction and raises
`DuplicateNonce` when the device used the nonce before, so a replay writes nothing;
`recent` returns a device's check-ins newest first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from regionlock.domain.decision import join_candidates, split_candidates
from regionlock.storage.db import Database, Transaction, epoch_ms


class DuplicateNonce(Exception):
    """The (device, nonce) pair is already recorded."""


class SqlCheckinStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        tx: Transaction,
        *,
        device_id: str,
        at: datetime,
        counter: int,
        nonce: str,
        country: str | None,
        subdivision: str | None,
        confidence: float,
        subdivision_candidates: Sequence[str] = (),
        flags: Sequence[str],
        signal_kinds: Sequence[str],
        verdict: str,
        reasons: Sequence[str],
        policy_id: str,
        policy_version: str,
    ) -> None:
        try:
            tx.execute(
                "INSERT INTO checkins (device_id, at, counter, nonce, country, subdivision,"
                " confidence, flags, signal_kinds, verdict, reasons, policy_id,"
                " policy_version, subdivision_candidates)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    device_id,
                    epoch_ms(at),
                    counter,
                    nonce,
                    country,
                    subdivision,
                    confidence,
                    json.dumps(list(flags)),
                    json.dumps(list(signal_kinds)),
                    verdict,
                    json.dumps(list(reasons)),
                    policy_id,
                    policy_version,
                    join_candidates(subdivision_candidates) or None,
                ),
            )
        except Exception as exc:
            if self.db.is_unique_violation(exc):
                raise DuplicateNonce(nonce) from None
            raise

    def recent(self, device_id: str, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT at, counter, country, subdivision, confidence, flags,"
                " signal_kinds, verdict, reasons, policy_id, policy_version,"
                " subdivision_candidates"
                " FROM checkins WHERE device_id = ? ORDER BY at DESC, id DESC LIMIT ?",
                (device_id, limit),
            )
        return [
            {
                "at": datetime.fromtimestamp(r[0] / 1000, UTC).isoformat(),
                "counter": r[1],
                "country": r[2],
                "subdivision": r[3],
                "subdivision_candidates": split_candidates(r[11]) if r[11] else [],
                "confidence": r[4],
                "flags": json.loads(r[5]),
                "signals": json.loads(r[6]),
                "verdict": r[7],
                "reasons": json.loads(r[8]),
                "policy": f"{r[9]}@{r[10]}",
            }
            for r in rows
        ]
