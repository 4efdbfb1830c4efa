"""A list of devices by IMEI, one a line (a campaign's `--imeis FILE`), checked and resolved to
the ids of registered devices.

The list is read as a stream, in batches: only the resolved ids are kept (a million lines fit),
and the problems are counted, the first few kept to report by line number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from regionlock.domain.campaign import Selection
from regionlock.domain.device import Imei, device_id, parse_imei
from regionlock.domain.errors import InvalidInput
from regionlock.storage import CampaignStore, DeviceStore, Transactions

BATCH = 500
KEPT_PROBLEMS = 50


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A line that names no registered device, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class ImeiList:
    """What a list resolved to: the registered devices it names, and its bad lines."""

    device_ids: set[str] = field(default_factory=set)
    imeis: int = 0  # lines naming an IMEI, good or bad
    bad: int = 0  # lines that are not an IMEI or name no registered device
    problems: list[LineProblem] = field(default_factory=list)  # the first KEPT_PROBLEMS

    def refuse(self, problem: LineProblem) -> None:
        self.bad += 1
        if len(self.problems) < KEPT_PROBLEMS:
            self.problems.append(problem)


def _imei_lines(lines: Iterable[str], found: ImeiList) -> Iterator[tuple[int, Imei]]:
    """(line number, IMEI) of each line that holds a valid IMEI; blank lines and `#` comments
    are passed over, other lines counted as bad."""
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        found.imeis += 1
        try:
            yield number, parse_imei(text)
        except InvalidInput as exc:
            found.refuse(LineProblem(number, exc.message))


def resolve_imeis(
    lines: Iterable[str], *, db: Transactions, devices: DeviceStore, campaigns: CampaignStore
) -> ImeiList:
    """Check each line's IMEI (format and check digit) and find its registered device.

    A device's id derives from its first IMEI, so a batch is looked up by id in one query; an
    IMEI that derives no registered id (a device's second IMEI, or an unknown one) is looked up
    on its own."""
    found = ImeiList()
    key = devices.device_id_key()
    valid = _imei_lines(lines, found)
    while batch := list(islice(valid, BATCH)):
        ids = [device_id(imei, key) for _, imei in batch]
        with db.read() as tx:
            registered = set(campaigns.select_devices(tx, Selection(), among=ids, limit=len(ids)))
        for (number, imei), derived in zip(batch, ids, strict=True):
            if derived in registered:
                found.device_ids.add(derived)
                continue
            other = devices.get(imei.digits)
            if other is None:
                found.refuse(LineProblem(number, f"no registered device has IMEI {imei}"))
            else:
                found.device_ids.add(other.record.id)
    return found
