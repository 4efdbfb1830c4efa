"""Found by mutation testing (docs/test-quality.md, "`domain/case.py`"): each test failed on
mutants of the investigation cases' values that every other test let through. They pin what
an operator is told when a case refuses a word, the canonical form a findings snapshot is
stored and hashed in, and a case's wire format."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from regionlock.domain.case import (
    FINDINGS_MAX_BYTES,
    Case,
    CaseClosed,
    CaseEvent,
    CaseStatus,
    EventKind,
    close,
    closed_message,
    findings_digest,
    findings_json,
    linked_campaigns,
    summarize_findings,
    words,
)
from regionlock.domain.errors import InvalidInput

OPENED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
CLOSED = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)


def refusal(call: object, *args: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.message


# --- words ---------------------------------------------------------------------------------------


def test_words_are_kept_without_surrounding_space_up_to_their_limit() -> None:
    assert words("  block lifted\n", "the outcome", 12) == "block lifted"
    assert words(" " + "x" * 10 + " ", "the note", 10) == "x" * 10


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00b", "the note contains a NUL character"),
        ("a\ud800", "the note contains a lone surrogate (not valid Unicode text)"),
        (" \t\n", "the note is empty"),
        ("", "the note is empty"),
        ("x" * 11, "the note is longer than 10 characters"),
    ],
)
def test_a_refused_word_says_what_and_why(value: str, message: str) -> None:
    assert refusal(words, value, "the note", 10) == message


# --- the findings snapshot -----------------------------------------------------------------------


def test_findings_are_stored_as_compact_sorted_utf8_json_and_hashed_so() -> None:
    text = findings_json({"rows": [{"group": "B7", "flagged": True}], "by": "batch", "é": 1.5})
    assert text == '{"by":"batch","rows":[{"flagged":true,"group":"B7"}],"é":1.5}'
    assert findings_digest(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert findings_digest(text) == (
        "65de68ac478266ac1adde6d7ffc918a875c1011eb884c4f680dc9fe8dc003ea5"
    )


# A type whose name makes json's refusal run past 100 characters.
LONG_NAMED = type("Long" * 20, (), {})


def test_findings_that_json_cannot_hold_are_refused_with_at_most_100_characters_of_why() -> None:
    assert refusal(findings_json, {"p": float("nan")}).startswith("findings: not JSON: ")
    message = refusal(findings_json, {"x": LONG_NAMED()})
    why = f"Object of type {'Long' * 20} is not JSON serializable"
    assert len(why) > 100
    assert message == "findings: not JSON: " + why[:100]
    assert refusal(findings_json, {"a": "\ud800"}) == (
        "findings: a string contains a lone surrogate (not valid Unicode)"
    )


def test_findings_nested_past_the_bound_are_refused_and_at_it_are_not() -> None:
    def nested(depth: int) -> dict[str, object]:
        doc: dict[str, object] = {}
        for _ in range(depth - 1):
            doc = {"x": doc}
        return doc

    assert findings_json(nested(32)).count("{") == 32
    assert refusal(findings_json, nested(33)) == "findings: nested more than 32 levels deep"


def test_findings_are_bounded_in_bytes_of_utf8_not_in_characters() -> None:
    frame = len('{"a":""}')
    assert len(findings_json({"a": "x" * (FINDINGS_MAX_BYTES - frame)})) == FINDINGS_MAX_BYTES
    assert refusal(findings_json, {"a": "x" * (FINDINGS_MAX_BYTES - frame + 1)}) == (
        f"findings: {FINDINGS_MAX_BYTES + 1} bytes as JSON, more than {FINDINGS_MAX_BYTES}:"
        " keep the rows that matter (the flagged groups)"
    )
    # 600,000 "é": 600,008 characters, 1,200,008 bytes.
    assert refusal(findings_json, {"a": "é" * 600_000}).startswith("findings: 1200008 bytes")


# --- a case and its history ----------------------------------------------------------------------


def a_case(**fields: object) -> Case:
    values: dict[str, object] = {
        "id": "case_7",
        "title": "B7 in Iran",
        "opened_at": OPENED,
        "opened_by": "cli:ops",
    } | fields
    return Case(**values)  # type: ignore[arg-type]


def test_closing_a_case_keeps_what_it_was_and_records_how_it_ended() -> None:
    findings: dict[str, object] = {"rows": []}
    closed = close(a_case(findings=findings), "block lifted", actor="apikey:k2", at=CLOSED)
    assert closed == Case(
        "case_7",
        "B7 in Iran",
        OPENED,
        "cli:ops",
        CaseStatus.CLOSED,
        findings,
        CLOSED,
        "apikey:k2",
        "block lifted",
    )
    with pytest.raises(CaseClosed) as caught:
        close(closed, "again", actor="cli:ops", at=CLOSED)
    assert (
        caught.value.message
        == closed_message(closed)
        == ("case case_7 is closed (by apikey:k2: block lifted): nothing more can be added to it")
    )


EVENTS = [
    CaseEvent("case_7", 1, OPENED, "cli:ops", EventKind.OPEN, text="B7 in Iran"),
    CaseEvent(
        "case_7", 2, OPENED, "cli:ops", EventKind.FINDINGS, data={"sha256": "ab", "bytes": 9}
    ),
    CaseEvent("case_7", 3, CLOSED, "cli:ops", EventKind.LINK, campaign_id="cmp_2"),
    CaseEvent("case_7", 4, CLOSED, "cli:ops", EventKind.NOTE, text="called D7"),
    CaseEvent("case_7", 5, CLOSED, "cli:ops", EventKind.LINK, campaign_id="cmp_1"),
]


def test_the_campaigns_linked_are_listed_in_the_order_they_were_linked() -> None:
    assert linked_campaigns(EVENTS) == ["cmp_2", "cmp_1"]
    assert linked_campaigns(EVENTS[:2]) == []
    # Only a link links: a note that names a campaign does not, nor a link without one.
    note = CaseEvent("case_7", 6, CLOSED, "cli:ops", EventKind.NOTE, "see", campaign_id="cmp_9")
    bare = CaseEvent("case_7", 7, CLOSED, "cli:ops", EventKind.LINK, campaign_id="")
    assert linked_campaigns([*EVENTS, note, bare]) == ["cmp_2", "cmp_1"]


def test_a_case_reads_out_in_its_wire_format() -> None:
    open_case = a_case()
    assert list(open_case.summary().items()) == [
        ("id", "case_7"),
        ("title", "B7 in Iran"),
        ("status", "open"),
        ("opened_at", "2026-12-01T09:30:00+00:00"),
        ("opened_by", "cli:ops"),
        ("closed_at", None),
        ("closed_by", None),
        ("outcome", None),
    ]
    assert open_case.to_json() == open_case.summary() | {"findings": None}
    closed = close(a_case(findings={"by": "batch"}), "done", actor="apikey:k2", at=CLOSED)
    out = closed.to_json(EVENTS)
    assert list(out) == [
        "id", "title", "status", "opened_at", "opened_by", "closed_at", "closed_by", "outcome",
        "findings", "campaigns", "history",
    ]  # fmt: skip
    assert (out["status"], out["closed_at"], out["closed_by"], out["outcome"]) == (
        "closed",
        "2026-12-03T17:00:00+00:00",
        "apikey:k2",
        "done",
    )
    assert out["findings"] == {"by": "batch"}
    assert out["campaigns"] == ["cmp_2", "cmp_1"]
    assert out["history"][1] == {
        "seq": 2,
        "at": "2026-12-01T09:30:00+00:00",
        "actor": "cli:ops",
        "kind": "findings",
        "text": None,
        "campaign": None,
        "data": {"sha256": "ab", "bytes": 9},
    }
    assert out["history"][2] == {
        "seq": 3,
        "at": "2026-12-03T17:00:00+00:00",
        "actor": "cli:ops",
        "kind": "link",
        "text": None,
        "campaign": "cmp_2",
        "data": None,
    }
    assert [e["kind"] for e in out["history"]] == ["open", "findings", "link", "note", "link"]


# --- findings in a terminal ----------------------------------------------------------------------


def test_findings_read_in_a_few_lines_for_a_terminal() -> None:
    findings = {
        "rows": [{"group": "B7", "flagged": True}, {"group": "B8", "flagged": False}, "x"],
        "windows": [{"first_index": 3}],
        "question": {"by": "batch", "since": "2026-11-01"},
        "note": "é" * 80,
        "long": "x" * 79,
        "alpha": 0.01,
    }
    assert summarize_findings(findings) == [
        "alpha: 0.01",
        'long: "' + "x" * 76 + "...",  # 81 characters as JSON: cut to 77 and "..."
        'note: "' + "é" * 76 + "...",  # not \u-escaped
        "question: 2 member(s)",
        "rows: 3 row(s), 1 flagged",
        "windows: 1 row(s)",
    ]
    assert summarize_findings({"short": "x" * 78}) == ['short: "' + "x" * 78 + '"']  # 80
