"""The API against its own OpenAPI document, fuzzed by Schemathesis with all its default checks,
against the real server on both stores, with an admin key and with none (issue 11, part 4).

Every answer must be one the document declares (status, content type, schema), every refusal
a problem document, no 500, and every request that the schema calls valid accepted, except
where the schema cannot say what valid is (see `SCHEMA_CANNOT_SAY`)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from databases import database_url
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from serving import CLI, served

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
PG_URL = os.environ.get("REGIONLOCK_TEST_POSTGRES_URL")
# Examples per operation, per store and per key: bounded so the suite stays well under 15 min.
EXAMPLES_PER_OPERATION = int(os.environ.get("REGIONLOCK_FUZZ_EXAMPLES", "15"))

# Operations whose valid requests the schema cannot describe, so "schema-valid" data may be
# refused with 422 rightly: a policy is TOML whose meaning JSON Schema cannot express, and an
# exemption must end after today, which a schema has no way to say; a campaign's selection
# must match a registered device and its values name real countries, verdicts and batches,
# which only the fleet knows; an investigation's places must be real ISO codes, its dates in
# order, its batch one the fleet has, its case one that exists, and without places it needs an
# active policy (as does a case opened with `"investigate": true`); a webhook's URL must be
# one that can be sent to (a scheme, a host, a port that exists); an appeal's grant needs its
# days and a denial takes none. Every other check still
# runs on them, and negative data must still be refused.
SCHEMA_CANNOT_SAY = {
    "POST /v1/policies/activate",
    "POST /v1/policies/validate",
    "POST /v1/policies/simulate",
    "POST /v1/devices/{key}/exempt",
    "POST /v1/campaigns",
    "GET /v1/investigations/leaks",
    "GET /v1/investigations/ranges",
    "GET /v1/investigations/flows",
    "GET /v1/investigations/report",
    "GET /v1/investigations/report.html",
    "POST /v1/cases",
    "POST /v1/webhooks",
    "POST /v1/appeals/{appeal_id}/decide",
}


@schemathesis.serializer("application/jose", "application/toml", "text/csv")
def as_text(ctx: Any, value: Any) -> bytes:
    """The bodies that are documents of their own: sent as the UTF-8 text generated."""
    if isinstance(value, bytes):
        return value
    text = value if isinstance(value, str) else json.dumps(value)  # negative cases: any JSON
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The real server on a migrated store with a policy and an admin key; (base URL, key)."""
    with database_url(request.param, tmp_path_factory.mktemp("contract"), migrated=False) as url:
        env = {**os.environ, "REGIONLOCK_DATABASE_URL": url}
        run = lambda *args: subprocess.run(  # noqa: E731
            [*CLI, *args], check=True, env=env, capture_output=True, text=True
        )
        run("migrate")
        run("policy", "activate", str(EXAMPLES / "gray-market-2021.toml"), "--reason", "contract")
        token = run("apikey", "create", "--role", "admin", "--name", "contract").stdout.split()[-1]
        with served(env) as base:
            yield base, token


def fuzz(operation: Any, base: str, token: str, excluded: list[Any]) -> None:
    """Run the generated requests of one operation; raise on the first failing check."""

    cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    def keeps_contract(case: Any) -> None:
        # Every generated request twice: with the admin key, and with no key at all.
        for headers in ({"Authorization": f"Bearer {token}"}, {}):
            case.call_and_validate(base_url=base, headers=headers, excluded_checks=excluded)

    keeps_contract()


def test_the_api_keeps_its_contract(service: tuple[str, str]) -> None:
    """Each operation, its generated requests each sent with the admin key and with none; every
    failure of every operation is collected and reported together."""
    base, token = service
    api = schemathesis.openapi.from_url(base + "/openapi.json")
    # A malformed body larger than the operation takes is refused as 413 before it is read
    # (api/guards.py), which is a rejection too: the default list of statuses lacks it.
    rejection = api.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1
        label = f"{operation.method.upper()} {operation.path}"
        excluded = [positive_data_acceptance] if label in SCHEMA_CANNOT_SAY else []

        try:
            fuzz(operation, base, token, excluded)
        except (Exception, BaseExceptionGroup) as exc:  # every operation's, then one verdict
            failures.append(f"{label}: {exc}"[:3000])
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
