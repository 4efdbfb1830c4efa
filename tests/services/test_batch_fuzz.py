"""Whatever a batch file holds, `regionlock locate --input` answers every line with one JSON
line (a location or an error naming that line), in order, that can be written as UTF-8: no
line raises, and none sinks the others.
"""

from __future__ import annotations

import json
from typing import Any

from fuzz_inputs import deep_json_texts, integers, json_bytes, json_like, signal_dicts, texts
from hypothesis import given, settings
from hypothesis import strategies as st

from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import text_problem
from regionlock.domain.signals import Signals
from regionlock.geo import Locator
from regionlock.services.batch_locate import BatchStats, _parse_line, locate_lines

FUZZ = settings(max_examples=200, deadline=None)


def _line(obj: Any, ascii_only: bool) -> str:
    data = json_bytes(obj, ascii_only=ascii_only)
    return "null" if data is None else data.decode("utf-8", "surrogatepass")


_ids = st.text(max_size=8) | st.integers(-(2**63), 2**63) | integers | json_like(max_leaves=3)
_objects = st.builds(lambda ident, signals: {"id": ident, **signals}, _ids, signal_dicts)
lines = (
    st.builds(_line, _objects | json_like(), st.booleans())
    | texts(40)
    | deep_json_texts
    | st.sampled_from(
        [
            "",
            "  \n",
            "{}",
            '{"id": 1e400}',
            '{"id": "a", "gps": {"lat": 1e400, "lon": 0}}',
            '{"id": "a", "ip": "fe80::1%\\ud800"}',
            '{"id": "a", "ip": "fe80::1%\\u0000"}',
            '{"id": "a", "sim": [{"mcc": "432\\n"}]}',
            '{"id": ' + "9" * 4301 + "}",
        ]
    )
)


@FUZZ
@given(lines)
def test_any_line_is_signals_or_refused(line: str) -> None:
    try:
        device_id, signals = _parse_line(line)
    except InvalidInput as exc:
        assert exc.message
        return
    assert isinstance(device_id, str | int) and not isinstance(device_id, bool)
    assert isinstance(signals, Signals)
    for text in (signals.ip, signals.timezone, signals.locale):
        assert text is None or text_problem(text) is None


@FUZZ
@given(batch=st.lists(lines, max_size=6), explain=st.booleans())
def test_every_line_gets_one_answer_in_order(
    batch: list[str], explain: bool, locator: Locator
) -> None:
    stats = BatchStats()
    out = list(locate_lines(batch, locator, stats=stats, explain=explain))
    assert len(out) == len(batch) == stats.lines
    errors = 0
    for n, text in enumerate(out, start=1):
        text.encode("utf-8")  # written to a file or a pipe as UTF-8
        record = json.loads(text)
        assert isinstance(record, dict) and "id" in record
        if "error" in record:
            errors += 1
            assert record["line"] == n and record["error"]
        else:
            assert "evidence" in record and ("explanation" in record) is explain
    assert errors == stats.errors
