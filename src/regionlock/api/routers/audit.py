"""The audit trail for operators."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from regionlock.api.deps import StateDep, TextQuery, Viewer
from regionlock.api.problems import AS_VIEWER, responses
from regionlock.domain.errors import NotFound
from regionlock.storage.audit import TreeHead

_SIZE = Query(ge=1, le=2**53 - 1)

api = APIRouter(prefix="/v1/audit", tags=["audit"])


@api.get("", responses=AS_VIEWER)
def audit(
    state: StateDep,
    _: Viewer,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # a sequence number (BIGINT)
    subject: TextQuery = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    sealed: bool = False,
) -> dict[str, Any]:
    """Entries after sequence number `after`, oldest first; `subject` narrows them to one
    device (id or IMEI), policy (id@version) or key. `sealed`: only entries already sealed
    into the tree, whose order is final (on PostgreSQL an entry may commit after one with a
    higher number until then): what a client tailing the trail by `after` asks for."""
    if subject is not None:
        found = state.stores.devices.get(subject)
        if found is not None:  # entries about a device name it by id
            subject = found.record.id
    audit = state.stores.audit
    upto = audit.tree().sealed_seq if sealed else None
    entries = audit.entries(after=after, subject=subject, limit=limit, upto=upto)
    return {"entries": [e.to_json() for e in entries]}


def _head_json(head: TreeHead) -> dict[str, Any]:
    return {"tree_size": head.size, "root": head.root, "head": head.token}


@api.get("/head", responses=AS_VIEWER)
async def tree_head(state: StateDep, _: Viewer) -> dict[str, Any]:
    """The latest signed head of the audit trail's Merkle tree (docs/audit.md): `tree_size`,
    `root` and `head`, the JWS to keep. The service signs one at most every minute."""
    return _head_json(await run_in_threadpool(state.audit_tree.latest_head))


@api.get("/proof", responses=AS_VIEWER | responses(NotFound))
async def inclusion_proof(
    state: StateDep,
    _: Viewer,
    seq: Annotated[int, Query(ge=1, le=2**63 - 1)],
    size: Annotated[int | None, _SIZE] = None,
) -> dict[str, Any]:
    """RFC 9162's proof that entry `seq` is in the signed tree of `size` entries (default: the
    latest signed head): `leaf_index` and `inclusion_path` (hex, from the leaf up). 404 while
    the entry is not in that tree (it is sealed within a second, signed within a minute)."""
    tree = state.audit_tree
    proof, head = await run_in_threadpool(
        tree.prove, seq, size if size is not None else tree.latest_head().size
    )
    return {
        "seq": proof.seq,
        "entry_hash": proof.entry_hash,
        "leaf_index": proof.leaf,
        "inclusion_path": list(proof.path),
        **_head_json(head),
    }


@api.get("/consistency", responses=AS_VIEWER | responses(NotFound))
async def consistency_proof(
    state: StateDep,
    _: Viewer,
    first: Annotated[int, Query(ge=0, le=2**53 - 1)],
    second: Annotated[int | None, _SIZE] = None,
) -> dict[str, Any]:
    """RFC 9162's proof that the signed tree of `second` entries (default: the latest signed
    head) extends the tree of `first` entries: `consistency_path` (hex)."""
    tree = state.audit_tree
    path, head = await run_in_threadpool(
        tree.consistency, first, second if second is not None else tree.latest_head().size
    )
    return {"first_tree_size": first, "consistency_path": path, **_head_json(head)}
