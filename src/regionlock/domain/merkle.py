"""The Merkle tree of RFC 9162, section 2.1 (Certificate Transparency version 2; the same tree as
RFC 6962): tree hashes, the compact range a log appends to, inclusion and consistency proofs,
and their verification.

Pure: SHA-256 from the standard library, no I/O. Whoever holds the tree supplies the roots of
its perfect subtrees through a callback, `perfect(level, index)`: the root of leaves
`[index << level, (index + 1) << level)`; level 0 is a leaf hash. The audit trail keeps some of
them in its store (storage/audit.py) and hashes the rest from leaves.

Leaves here are leaf *hashes* (`leaf_hash` of the data), as the RFC's algorithms take them.

A proof binds a tree size to a root only through the tree head that signs both: the verification
algorithms of 2.1.3.2 and 2.1.4.2 take the size and the root as given, and the same hashes can
satisfy another size whose tree has the same shape along the proven path (a proof for leaf 0 of
5 leaves also passes as one for leaf 0 of 6 leaves *with the 5-leaf root*). So check proofs only
against a (size, root) pair taken together from one signed tree head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

Perfect = Callable[[int, int], bytes]

HASH_SIZE = 32
_HEX_DIGITS = frozenset("0123456789abcdef")
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = HASH() (2.1.1)


class ProofError(ValueError):
    """A proof, or the sizes and index it is about, cannot be one: wrong lengths, hashes that are
    not 32 bytes, an index outside the tree, an old size larger than the new."""


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = HASH(0x00 || d) (2.1.1)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || left || right): an interior node (2.1.1)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(width: int) -> int:
    """k, the largest power of two smaller than `width` (>= 2): where the RFC splits D[n]."""
    if width < 2:
        raise ValueError(f"no split of {width} leaves")
    return 1 << ((width - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of already leaf-hashed entries (2.1.1)."""
    return Frontier.empty().extend(leaf_hashes).root()


def _is_perfect(start: int, width: int) -> bool:
    return width & (width - 1) == 0 and start % width == 0


def range_root(start: int, end: int, perfect: Perfect) -> bytes:
    """MTH(D[start:end]) (2.1.1) from perfect subtrees only, split as the RFC splits: the
    ranges its recursion makes are aligned perfect subtrees on the left and such a range on
    the right, so `perfect(level, index)` answers them in at most one call per set bit of
    their width. Correct for any non-empty range; ValueError for an empty one."""
    width = end - start
    if width < 1:
        raise ValueError(f"no leaves from {start} to {end}")
    if _is_perfect(start, width):
        return perfect(width.bit_length() - 1, start // width)
    k = split(width)
    return node_hash(range_root(start, start + k, perfect), range_root(start + k, end, perfect))


def _levels(size: int) -> list[int]:
    """The levels of a tree's perfect subtrees, largest first: its set bits."""
    return [b for b in range(size.bit_length() - 1, -1, -1) if size >> b & 1]


@dataclass(frozen=True)
class Frontier:
    """The compact range of a tree of `size` leaves: the roots of its perfect subtrees, one per
    set bit of `size`, largest first. Enough to append leaves and to compute the root."""

    size: int
    hashes: tuple[bytes, ...]

    @classmethod
    def empty(cls) -> Frontier:
        """The frontier of the tree of no leaves."""
        return cls(0, ())

    def extend(
        self,
        leaf_hashes: Iterable[bytes],
        on_node: Callable[[int, int, bytes], None] | None = None,
    ) -> Frontier:
        """The tree with `leaf_hashes` appended. `on_node(level, index, hash)` is told, once, of
        every perfect subtree of level 1 or more that the appends complete: the root of leaves
        `[index << level, (index + 1) << level)`, as `perfect` later needs it. ValueError if
        `hashes` does not hold one root per set bit of `size`."""
        stack = list(zip(_levels(self.size), self.hashes, strict=True))
        n = self.size
        for leaf in leaf_hashes:
            digest, level = leaf, 0
            while stack and stack[-1][0] == level:
                digest = node_hash(stack.pop()[1], digest)
                level += 1
                if on_node is not None:
                    on_node(level, n >> level, digest)
            stack.append((level, digest))
            n += 1
        return Frontier(n, tuple(h for _, h in stack))

    def root(self) -> bytes:
        """MTH of the whole tree (EMPTY_ROOT for no leaves)."""
        if not self.hashes:
            return EMPTY_ROOT
        digest = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            digest = node_hash(h, digest)
        return digest

    def to_json(self) -> list[str]:
        """The subtree roots as lowercase hex, largest first; `size` is kept beside them."""
        return [h.hex() for h in self.hashes]

    @classmethod
    def from_json(cls, size: int, hashes: list[str]) -> Frontier:
        """The frontier `to_json` wrote for a tree of `size` leaves: one root per set bit of
        `size`, each 64 lowercase hex digits (32 bytes); ValueError if it cannot be."""
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"a tree size is a natural number, not {size!r}")
        if not isinstance(hashes, list) or len(hashes) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} subtree roots")
        for h in hashes:
            if not isinstance(h, str) or not _HEX_DIGITS.issuperset(h) or len(h) % 2:
                raise ValueError(f"subtree roots are lowercase hex, not {h!r}")
            if len(h) != 2 * HASH_SIZE:
                raise ValueError(f"subtree roots are 32 bytes, not {len(h) // 2}")
        return cls(size, tuple(bytes.fromhex(h) for h in hashes))


def inclusion_proof(index: int, size: int, perfect: Perfect) -> list[bytes]:
    """PATH(index, D[size]) (2.1.3.1): the siblings from the leaf up, each the MTH of a range
    the RFC's recursion makes, from `perfect` subtrees that lie wholly within the tree."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split(end - start)
        if index < start + k:
            path.append(range_root(start + k, end, perfect))
            end = start + k
        else:
            path.append(range_root(start, start + k, perfect))
            start += k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, perfect: Perfect) -> list[bytes]:
    """PROOF(old_size, D[new_size]) = SUBPROOF(old_size, D[new_size], true) (2.1.4.1), from the
    lowest node up; [] when the sizes are equal. Asks `perfect` only for subtrees wholly within
    the new tree."""
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency proof from {old_size} to {new_size} leaves")
    path: list[bytes] = []
    start, end, whole = 0, new_size, True  # SUBPROOF(m, D[start:end], whole)
    while old_size != end:
        k = split(end - start)
        if old_size <= start + k:
            path.append(range_root(start + k, end, perfect))
            end = start + k
        else:
            path.append(range_root(start, start + k, perfect))
            start += k
            whole = False
    if not whole:
        path.append(range_root(start, end, perfect))
    path.reverse()
    return path


def _hashes(proof: Sequence[bytes], *more: bytes) -> None:
    if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in (*proof, *more)):
        raise ProofError("every hash of a proof is 32 bytes")


def _to_odd(fn: int, sn: int) -> tuple[int, int]:
    """Both shifted right together until `fn` is odd or 0: the inner shift of the loops of
    2.1.3.2 and 2.1.4.2, after a proof hash that joined on the left."""
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` gives for `leaf` at `index` in a tree of `size` leaves, by the
    verification algorithm of 2.1.3.2 (without its last comparison, with the root). ProofError
    if the proof has the wrong length for that index and size, a hash is not 32 bytes, or the
    index is outside the tree."""
    _hashes(proof, leaf)
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _to_odd(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether `proof` shows `leaf` at `index` in the tree of `size` leaves with `root` (2.1.3.2).
    False for a well-formed proof that does not check out; ProofError for one that cannot be a
    proof for that index and size (see `root_from_inclusion`), or a root not 32 bytes."""
    _hashes((), root)
    return root_from_inclusion(index, size, leaf, proof) == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether `proof` shows the tree of `new_size` leaves with `new_root` extends the one of
    `old_size` leaves with `old_root`, by the algorithm of 2.1.4.2 (for 0 < old_size < new_size;
    the first tree is prepended when its size is a power of two). Equal sizes need an empty
    proof and equal roots; the empty tree (size 0, EMPTY_ROOT) is extended by every tree, with an
    empty proof. False for a well-formed proof that does not check out; ProofError for a proof
    of the wrong length for these sizes, a hash not 32 bytes, or sizes out of order."""
    _hashes(proof, old_root, new_root)
    if not 0 <= old_size <= new_size:
        raise ProofError(f"a tree of {old_size} leaves is not before one of {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("equal trees are consistent with an empty proof only")
        return old_root == new_root
    if old_size == 0:  # every tree extends the empty one
        if proof:
            raise ProofError("the empty tree is consistent with an empty proof only")
        return old_root == EMPTY_ROOT
    if not proof:
        raise ProofError("a consistency proof between different trees is not empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _to_odd(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is deep")
    return fr == old_root and sr == new_root
