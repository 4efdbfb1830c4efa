"""The audit trail's Merkle tree: sealing entries into it, signing its heads, and the proofs
an outsider checks them with (docs/audit.md, "Shards and the tree").

Appends only join their shard's chain; this service then puts every settled entry into the one
tree, in number order, and signs the tree's head: a JWS (signing/audit_head.py, version 2)
stating its size and root. Any node may seal: the store's lock on the tree lets one at a time
grow it, and a node that comes second finds the work done. `AuditSealer` looks every second
in each service process, and seals unless another node has since the last look;
`regionlock audit head` seals before it reads, and so does `Webhooks.fan_out` unless told
not to (a service's outbox reads what the sealers have sealed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from regionlock.domain.errors import NotFound
from regionlock.signing.audit_head import sign_audit_head, tree_head_claims
from regionlock.storage import Stores
from regionlock.storage.audit import AuditStore, InclusionProof, TreeHead, TreeState
from regionlock.storage.db import Transactions, epoch_ms
from regionlock.storage.keys import KeyStore

log = logging.getLogger(__name__)

# Entries sealed per transaction: a migrated trail of millions is sealed in steps.
SEAL_BATCH = 50_000
# A service signs a tree head at most this often (and `audit head` whenever it is run).
SIGN_EVERY = timedelta(minutes=1)


class NoSuchTree(NotFound):
    """A proof was asked of a tree or an entry the log does not hold."""


@dataclass
class AuditTree:
    db: Transactions
    audit: AuditStore
    keys: KeyStore
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @classmethod
    def of(cls, stores: Stores, clock: Callable[[], datetime] | None = None) -> AuditTree:
        return cls(stores.db, stores.audit, stores.keys, clock or (lambda: datetime.now(UTC)))

    def seal(
        self,
        *,
        sign_after: timedelta | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> TreeState:
        """Seal every settled entry; sign a head of the grown tree when the last signed one is
        older than `sign_after` (None: always, if the tree grew past it). The tree after."""
        upto = self.audit.settled()
        while True:
            # Read and hashed from a snapshot first: the writer, which every check-in's write
            # waits for on SQLite, is then held only to store the rows.
            plan = self.audit.plan_seal(upto=upto, limit=SEAL_BATCH)
            with self.db.write() as tx:
                before, after = self.audit.seal(tx, upto=upto, limit=SEAL_BATCH, plan=plan)
            if progress is not None and after.size > before.size:
                progress(after.size - before.size)
            if after.sealed_seq >= upto or after.size == before.size:
                break
        self.sign_if_due(after, sign_after)
        return after

    def sign_if_due(self, tree: TreeState, sign_after: timedelta | None) -> None:
        """Sign and keep a head of `tree` if the newest kept head is smaller and older than
        `sign_after` (None: whenever it is smaller)."""
        now = self.clock()
        last = self.audit.tree_heads(limit=1)
        if last and last[0].size >= tree.size:
            return
        if sign_after is not None and last and last[0].signed_at is not None:
            age_ms = epoch_ms(now) - last[0].signed_at
            if age_ms < sign_after.total_seconds() * 1000:
                return
        root = tree.root.hex()
        token = sign_audit_head(tree_head_claims(tree.size, root, now), self.keys.keyring(now))
        with self.db.write() as tx:
            self.audit.add_tree_head(tx, TreeHead(tree.size, root, epoch_ms(now), token))

    def head(self) -> TreeHead:
        """The signed head of the tree with every settled entry in it (signed now if needed)."""
        tree = self.seal()
        found = self.audit.tree_head(tree.size)
        if found is None:  # a signed head is larger than the tree: `audit verify` says why
            raise NoSuchTree(f"no signed head of the tree's {tree.size} entries could be kept")
        return found

    def latest_head(self) -> TreeHead:
        """The newest signed head kept (one signed now if there is none yet)."""
        found = self.audit.tree_heads(limit=1)
        return found[0] if found else self.head()

    def prove(self, seq: int, size: int | None = None) -> tuple[InclusionProof, TreeHead]:
        """That entry `seq` is in the tree of `size` leaves (a signed head's; None: the newest
        head, sealing first)."""
        head = self.head() if size is None else self._head_of(size)
        try:
            proof = self.audit.inclusion_proof(seq, head.size)
        except ValueError as exc:
            raise NoSuchTree(str(exc)) from exc
        if proof is None:
            raise NoSuchTree(f"entry {seq} is not in the tree of {head.size} leaves")
        return proof, head

    def consistency(self, old_size: int, new_size: int | None = None) -> tuple[list[str], TreeHead]:
        """That the tree of `new_size` leaves (None: the newest head) extends the one of
        `old_size`: RFC 9162's proof and the later head."""
        head = self.head() if new_size is None else self._head_of(new_size)
        if not 0 <= old_size <= head.size:
            raise NoSuchTree(
                f"a tree of {old_size} leaves cannot be extended by one of {head.size}: the log"
                " never held that many"
            )
        if old_size in (0, head.size):
            return [], head  # RFC 9162 2.1.4: nothing to prove
        return self.audit.consistency_proof(old_size, head.size), head

    def _head_of(self, size: int) -> TreeHead:
        head = self.audit.tree_head(size)
        if head is None:
            raise NoSuchTree(f"no signed tree head of {size} leaves is kept")
        return head


class AuditSealer:
    """One daemon thread per service process that seals the audit trail every `poll_s` and
    signs a tree head at most every `sign_every` (docs/audit.md). Errors are logged, retried.

    Nodes take turns: a round skips when another node has sealed since this one last looked
    (the tree's last sealed number moved without it). A seal first waits for a share of every
    shard's lock (`settled`), which holds up appends for as long; with every node sealing
    every second, nodes on one PostgreSQL made as many such waits (bench/README.md, "Several
    nodes"). Now the sealers seal about once a `poll_s` between them, and a node still seals
    when the one that did stops. A node that skips still signs a head that is due. A service's
    webhook outbox reads what the sealers have sealed rather than sealing itself
    (`WebhookDispatcher(seal=False)`)."""

    def __init__(
        self,
        tree: AuditTree,
        *,
        poll_s: float = 1.0,
        sign_every: timedelta = SIGN_EVERY,
        on_seal: Callable[[float], None] | None = None,
    ) -> None:
        """`on_seal(seconds)` is told of each round's wall-clock time (the node's metrics)."""
        self.tree = tree
        self.on_seal = on_seal
        self.poll_s = poll_s
        self.sign_every = sign_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="audit-sealer", daemon=True)
        self._last_seen: int | None = None  # the tree's last sealed number, last we looked

    def start(self) -> AuditSealer:
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def round(self) -> bool:
        """One round: seal, unless another node has sealed since the last round. Whether
        this one sealed."""
        current = self.tree.audit.tree()
        if self._last_seen is not None and current.sealed_seq != self._last_seen:
            self._last_seen = current.sealed_seq
            self.tree.sign_if_due(current, self.sign_every)  # whoever seals, heads are kept
            return False
        self._last_seen = self.tree.seal(sign_after=self.sign_every).sealed_seq
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            started = time.perf_counter()
            try:
                if not self.round():
                    continue
            except Exception:
                log.exception("sealing the audit trail failed; retrying")
                self._last_seen = None  # the next round seals
                continue
            if self.on_seal is not None:
                try:
                    self.on_seal(time.perf_counter() - started)
                except Exception:  # counting must never stop the sealing
                    log.exception("the seal's observer failed")
