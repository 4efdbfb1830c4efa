"""`regionlock case ...` as an operator runs it, on SQLite and on PostgreSQL: open (with a
findings file, or its JSON on standard input), note, link, close, list and show; refusals
exit 2 and change nothing."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from storage_fixtures import T0, open_store

from regionlock.cli.main import cli
from regionlock.domain.campaign import Campaign, CampaignAction, Selection
from regionlock.storage import Database, Stores
from regionlock.storage.campaigns import new_campaign_id

CASE_ID = re.compile(r"case_[a-z2-7]{8}")
LEAKS = [
    {"group": "B7", "devices": 150, "restricted": 30, "flagged": True},
    {"group": "B8", "devices": 150, "restricted": 1, "flagged": False},
]


@dataclass
class Store:
    """A migrated, empty store, as the test sees it (`db`) and as the command line names it."""

    db: Database
    url: str


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    for db in open_store(request.param, tmp_path):
        if db.dialect == "sqlite":
            yield Store(db, f"sqlite:///{tmp_path / 'test.db'}")
        else:  # the command line finds the test's own schema through the search path
            glue = "&" if "?" in db.url.url else "?"
            yield Store(db, f"{db.url.url}{glue}options=-csearch_path%3D{db.schema}")


def run(s: Store, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["case", *args, "--db", s.url], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def opened(s: Store, *args: str) -> str:
    code, out, err = run(s, "open", *args)
    assert code == 0, err
    case_id = out.splitlines()[-1]
    assert CASE_ID.fullmatch(case_id), out
    return case_id


def campaign(s: Store) -> str:
    c = Campaign(
        id=new_campaign_id(),
        name="lock B7",
        action=CampaignAction.LOCK,
        reason="B7 leaked",
        selection=Selection.parse(["batch=B7"]),
        created_by="test",
        created_at=T0,
    )
    with s.db.write() as tx:
        Stores.on(s.db).campaigns.create(tx, c, [])
    return c.id


def actions(s: Store) -> list[tuple[str, str]]:
    return [(e.action, e.subject) for e in Stores.on(s.db).audit.entries()]


def test_a_case_from_opening_to_closing(store: Store, tmp_path: Path) -> None:
    findings = tmp_path / "leaks.json"
    findings.write_text(json.dumps(LEAKS))
    case_id = opened(store, "--title", "Batch B7 leaks to IR", "--findings", str(findings))
    cid = campaign(store)
    assert run(store, "note", case_id, "carton 12\nwent to Dubai")[0] == 0
    code, out, _ = run(store, "link", case_id, "--campaign", cid)
    assert code == 0 and cid in out
    code, out, _ = run(store, "close", case_id, "--outcome", "block lifted")
    assert code == 0 and "block lifted" in out

    code, out, _ = run(store, "show", case_id)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{case_id}  Batch B7 leaks to IR"
    assert "status: closed" in lines
    assert "  rows: 2 row(s), 1 flagged" in lines
    assert f"campaigns: {cid}" in lines
    steps = ["opened:", "findings kept", "note: carton 12", "went to Dubai"]
    steps += [f"decision: campaign {cid}", "closed: block lifted"]
    story = [n for n, line in enumerate(lines) for step in steps if step in line]
    assert story == sorted(story) and len(story) == 6  # in the order it happened
    assert lines[-1].startswith("outcome: block lifted (closed ")
    assert actions(store) == [
        ("case.open", case_id),
        ("case.note", case_id),
        ("case.link", case_id),
        ("case.close", case_id),
    ]

    code, out, _ = run(store, "show", case_id, "--json")
    doc = json.loads(out)
    assert doc["findings"] == {"rows": LEAKS}
    assert doc["campaigns"] == [cid] and doc["status"] == "closed"
    assert [e["kind"] for e in doc["history"]] == ["open", "findings", "note", "link", "close"]
    assert doc["history"][2]["text"] == "carton 12\nwent to Dubai"


def test_findings_from_standard_input_as_an_object(store: Store) -> None:
    doc = {"by": "distributor", "leaks": LEAKS}
    args = ["open", "--title", "D3", "--findings", "-", "--json"]
    code, out, err = run(store, *args, stdin=json.dumps(doc))
    assert code == 0, err
    case_id = json.loads(out)["id"]
    assert json.loads(out)["findings"] == doc
    code, out, _ = run(store, "show", case_id)
    assert '  by: "distributor"' in out.splitlines()
    assert "  leaks: 2 row(s), 1 flagged" in out.splitlines()


def test_a_case_without_findings_says_so(store: Store) -> None:
    case_id = opened(store, "--title", "D3", "--reason", "the distributor's own report")
    code, out, _ = run(store, "show", case_id)
    assert code == 0 and "findings: none kept" in out and "campaigns: none linked" in out
    assert "outcome:" not in out
    [entry] = Stores.on(store.db).audit.entries()
    assert entry.reason == "the distributor's own report"


def test_listing_newest_first_and_by_status(store: Store) -> None:
    first = opened(store, "--title", "first")
    second = opened(store, "--title", "second")
    run(store, "close", first, "--outcome", "no leak")
    code, out, _ = run(store, "list")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["ID", "STATUS", "OPENED", "BY", "TITLE"]
    assert [r.split()[0] for r in rows[1:]] == [second, first]
    assert rows[2].split()[1] == "closed" and rows[2].endswith("  first")
    code, out, _ = run(store, "list", "--status", "open", "--json")
    listed = json.loads(out)
    assert [c["id"] for c in listed] == [second]
    assert "findings" not in listed[0]  # a listing stays small
    assert json.loads(run(store, "list", "--status", "closed", "--json")[1])[0]["id"] == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["open", "--title", " "], "the title is empty"),
        (["open", "--title", "x" * 201], "longer than 200"),
        (["note", "case_nothere", "n"], "no case 'case_nothere'"),
        (["link", "case_nothere", "--campaign", "cmp_x"], "no case"),
        (["close", "case_nothere", "--outcome", "o"], "no case"),
        (["show", "case_nothere"], "no case"),
    ],
)
def test_refusals_exit_2_and_change_nothing(store: Store, args: list[str], message: str) -> None:
    code, _, err = run(store, *args)
    assert code == 2 and message in err
    assert actions(store) == []


def test_refusals_on_an_existing_case(store: Store) -> None:
    case_id = opened(store, "--title", "B7")
    code, _, err = run(store, "link", case_id, "--campaign", "cmp_nothere")
    assert code == 2 and "no campaign 'cmp_nothere'" in err
    code, _, err = run(store, "note", case_id, "")
    assert code == 2 and "the note is empty" in err
    assert run(store, "close", case_id, "--outcome", "done")[0] == 0
    code, _, err = run(store, "close", case_id, "--outcome", "again")
    assert code == 2 and "is closed" in err and "done" in err
    code, _, err = run(store, "note", case_id, "late")
    assert code == 2 and "is closed" in err
    assert actions(store) == [("case.open", case_id), ("case.close", case_id)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("42", "a JSON object or array"),
        ('{"p": NaN}', "not valid JSON"),
        (b"\xff\xfe{}", "cannot read"),
    ],
)
def test_a_bad_findings_file_opens_nothing(
    store: Store, tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "f.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, _, err = run(store, "open", "--title", "B7", "--findings", str(path))
    assert code == 2 and message in err
    code, _, err = run(store, "open", "--title", "B7", "--findings", str(tmp_path / "none"))
    assert code == 2 and "cannot read" in err
    assert actions(store) == [] and run(store, "list", "--json")[1].strip() == "[]"
