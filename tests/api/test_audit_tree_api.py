"""The audit tree over HTTP (docs/operator-api.md): what an outside auditor with a viewer key
fetches, the signed head and RFC 9162 proofs, checked here with nothing but the JWKS-free
store keys and `regionlock.domain.merkle` (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from test_api import imei, post_checkin, setup

from regionlock.domain import merkle
from regionlock.signing.audit_head import verify_audit_head
from regionlock.storage.audit import leaf_of


def test_an_auditor_checks_an_entry_and_that_the_log_only_grew(client: TestClient) -> None:
    state = client.app.state.regionlock  # type: ignore[attr-defined]
    key, tokens = setup(client)
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    assert post_checkin(client, key, imei(1), 1).status_code == 200

    first = client.get("/v1/audit/head", headers=viewer)
    assert first.status_code == 200
    first_head = first.json()
    keyring = state.stores.keys.keyring(datetime.now(UTC))
    _, claims = verify_audit_head(first_head["head"], keyring)
    assert (claims["ver"], claims["size"], claims["root"]) == (
        2,
        first_head["tree_size"],
        first_head["root"],
    )

    for counter in (2, 3):
        assert post_checkin(client, key, imei(1), counter).status_code == 200
    state.audit_tree.head()  # the sealer signs once a minute; an operator's `audit head` now
    latest = client.get("/v1/audit/head", headers=viewer).json()
    assert latest["tree_size"] > first_head["tree_size"]

    entries = client.get("/v1/audit?sealed=true&limit=5000", headers=viewer).json()["entries"]
    assert len(entries) == latest["tree_size"]
    root = bytes.fromhex(latest["root"])
    for e in entries:
        proof = client.get(f"/v1/audit/proof?seq={e['seq']}", headers=viewer).json()
        assert proof["entry_hash"] == e["hash"] and proof["tree_size"] == latest["tree_size"]
        path = [bytes.fromhex(h) for h in proof["inclusion_path"]]
        assert merkle.verify_inclusion(
            proof["leaf_index"], latest["tree_size"], leaf_of(e["hash"]), path, root
        )

    grown = client.get(
        f"/v1/audit/consistency?first={first_head['tree_size']}", headers=viewer
    ).json()
    path = [bytes.fromhex(h) for h in grown["consistency_path"]]
    assert merkle.verify_consistency(
        first_head["tree_size"],
        grown["tree_size"],
        bytes.fromhex(first_head["root"]),
        bytes.fromhex(grown["root"]),
        path,
    )


def test_proofs_of_what_the_tree_does_not_hold_are_404_problems(client: TestClient) -> None:
    _, tokens = setup(client)
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    head = client.get("/v1/audit/head", headers=viewer).json()
    for url in (
        "/v1/audit/proof?seq=999999",
        f"/v1/audit/proof?seq=1&size={head['tree_size'] + 7}",
        f"/v1/audit/consistency?first=1&second={head['tree_size'] + 7}",
    ):
        answer = client.get(url, headers=viewer)
        assert answer.status_code == 404, url
        assert answer.headers["content-type"] == "application/problem+json"
    answer = client.get(f"/v1/audit/consistency?first={head['tree_size'] + 1}", headers=viewer)
    assert answer.status_code == 404  # the log never held a tree that large
    assert client.get("/v1/audit/head").status_code == 401
