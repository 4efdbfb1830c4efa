"""`regionlock policy`: check, explain (--as-of), diff and simulate, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from regionlock.cli.main import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
OFAC = str(EXAMPLES / "us-ofac.toml")
GRAY = str(EXAMPLES / "gray-market-2021.toml")
LIFTED = str(EXAMPLES / "gray-market-2021-lifted.toml")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_accepts_the_examples() -> None:
    code, out, _ = run("policy", "check", OFAC, GRAY)
    assert code == 0
    assert "us-ofac.toml: OK: policy us-ofac" in out
    assert "gray-market-2021.toml: OK" in out


def test_check_rejects_a_bad_policy_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[policy]\nid = "p"\nversion = "1"\n\n[[restriction]]\nid = "r"\n'
        'action = "lokc"\njurisdictions = ["IR"]\nfrom = 2021-09-15\n'
    )
    code, _, err = run("policy", "check", str(bad))
    assert code == 2
    assert "line 7: restriction[0].action: 'lokc' is not one of allow, warn, lock" in err


def test_explain_recomputes_the_past() -> None:
    args = [
        "policy",
        "explain",
        OFAC,
        "--lat",
        "33.5138",
        "--lon",
        "36.2765",
        "--network",
        "417-01",
        "--days-present",
        "5",
        "--json",
    ]
    code, out, _ = run(*args, "--as-of", "2021-09-15")
    assert code == 0
    then = json.loads(out)
    assert then["verdict"] == "lock"
    assert "jurisdiction.restricted" in then["reasons"]
    assert then["location"]["country"] == "SY"
    code, out, _ = run(*args, "--as-of", "2026-01-01")
    now = json.loads(out)
    assert now["verdict"] == "allow" and now["reasons"] == ["policy.no_match"]


def test_explain_human_output_names_rule_and_grace() -> None:
    code, out, _ = run(
        "policy",
        "explain",
        GRAY,
        "--lat",
        "29.61",
        "--lon",
        "52.5311",
        "--sim",
        "208-01",
        "--network",
        "432-11",
        "--as-of",
        "2026-11-27",
        "--days-present",
        "1",
    )
    assert code == 0
    assert out.startswith("WARN")
    assert "presence.grace" in out
    assert "traveller grace" in out


def test_diff_lists_the_lifted_rule() -> None:
    code, out, _ = run("policy", "diff", GRAY, LIFTED)
    assert code == 0
    assert "- restriction company-block-2021: lock in IR from 2021-09-15" in out
    assert "policy: gray-market-2021 2021-09-15 -> gray-market-2021 2021-11-01-lifted" in out
    # The message changed in every language: a line for each.
    changed = [line for line in out.splitlines() if line.startswith("~ policy.message.")]
    assert [line.split(":")[0] for line in changed] == [
        f"~ policy.message.{language}" for language in ("en", "fa", "ar", "es", "ko", "ru", "uk")
    ]
    assert "'This device cannot be used in this territory" in changed[0]


def test_simulate_counts_changes_and_skips_bad_rows(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.jsonl"
    rows = [
        {
            "id": "a",
            "country": "IR",
            "subdivision": "IR-23",
            "confidence": 0.95,
            "days_present": 10,
        },
        {"id": "b", "country": "SD", "confidence": 0.9, "days_present": 10},
        {"id": "c", "country": "DE", "confidence": 0.99},
        {"id": "d", "country": "IR", "confidence": 0.95, "days_present": 1},
        {
            "id": "e",
            "country": "IR",
            "confidence": 0.95,
            "flags": ["vpn_suspected"],  # GPS and network say Iran: the VPN changes nothing
            "days_present": 10,
        },
        {
            "id": "f",
            "country": "IR",
            "confidence": 0.95,
            "flags": ["no_presence_evidence"],  # only SIM and IP say Iran: never a lock
            "days_present": 10,
        },
    ]
    fleet.write_text("\n".join(json.dumps(r) for r in rows) + "\n{oops\n")
    code, out, err = run(
        "policy",
        "simulate",
        GRAY,
        "--fleet",
        str(fleet),
        "--against",
        LIFTED,
        "--as-of",
        "2026-11-27",
        "--json",
    )
    report = json.loads(out)
    assert report["devices"] == 6 and report["errors"] == 1
    # Lifting the company block: Sudan is no longer locked; Iran stays locked (OFAC).
    assert report["changes"] == [{"country": "SD", "from": "allow", "to": "lock", "devices": 1}]
    assert report["after"] == {"allow": 1, "lock": 3, "warn": 2}
    assert code == 1 and "1 bad record(s) skipped" in err


def test_simulate_reads_csv(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(
        "id,country,subdivision,confidence,days_present,flags\n"
        "a,UA,UA-43,0.9,5,\nb,UA,UA-30,0.9,5,roaming\n"
    )
    code, out, _ = run("policy", "simulate", GRAY, "--fleet", str(fleet), "--as-of", "2026-11-27")
    assert code == 0
    assert "2 device(s)" in out
    assert "UA: allow -> lock: 1" in out
