"""What an investigation report holds (`regionlock investigate report`): the findings, and the
case they belong to.

Without a case: the findings made now. With a case that kept a whole findings snapshot when it
was opened (`case open --investigate`, or `--findings` given `investigate report --json`): that
snapshot, as the case's decisions were taken on it, with the case's story. With a case that
kept none (or only some rows): the findings made now, beside the case, and a note that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regionlock.domain.errors import InvalidInput
from regionlock.services.cases import Cases
from regionlock.services.investigations import Investigations, Question, is_findings
from regionlock.storage import Stores
from regionlock.storage.analytics import Progress

# A case's snapshot keeps this many rows of each ranking, and every flagged one: enough to read
# the ranking, and within a case's size limit on a fleet with tens of thousands of batches.
SNAPSHOT_TOP = 100


def current_findings(
    stores: Stores,
    *,
    progress: Progress | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """The findings as they stand (the active policy's places, every check-in), as a case
    keeps them (`case open --investigate`, `POST /v1/cases` with `"investigate": true`)."""
    findings = Investigations.of(stores, clock=clock, progress=progress).findings(Question())
    return findings.to_json(top=SNAPSHOT_TOP)


def report_data(
    stores: Stores,
    question: Question,
    *,
    case_id: str | None = None,
    snapshot: Path | None = None,
    progress: Progress | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """The report's content as JSON-ready data: `Findings.to_json()`, and with `case_id` the
    case (`Case.to_json(events)`, its findings left out) under "case". UnknownCase for a
    case that does not exist; InvalidInput when a case's kept findings already answer the
    question and a different one (places, dates) or a snapshot file is asked for."""
    case_json: dict[str, Any] | None = None
    if case_id is not None:
        cases = Cases.of(stores, clock=clock)
        case = cases.get(case_id)
        case_json = case.to_json(cases.history(case_id))
        kept = case_json.pop("findings")
        if is_findings(kept):
            if question != Question():
                raise InvalidInput(
                    f"case {case.id} keeps the findings it was decided on; its report shows"
                    " them: leave out --country, --since and --until"
                )
            if snapshot is not None:
                raise InvalidInput(
                    f"case {case.id} keeps findings made {kept['made_at']}; the data they were"
                    " made from cannot be written now. Its SHA-256 is in the report"
                )
            return dict(kept) | {"case": case_json}
    findings = Investigations.of(stores, clock=clock, progress=progress).findings(
        question, snapshot=snapshot
    )
    data = findings.to_json()
    if case_json is not None:
        data["notes"] = [
            *data["notes"],
            f"case {case_json['id']} kept no findings snapshot: these findings were made"
            f" {data['made_at']}, for this report",
        ]
        data["case"] = case_json
    return data
