"""`regionlock.domain.merkle` against RFC 9162 section 2.1's own definitions, written here as
plainly as the RFC states them; against the roots of the eight-leaf test tree published with
Certificate Transparency; and against a maintained library, pymerkle 7.0.0 (a test-only
dependency: it is GPL-3.0-or-later, the project Apache-2.0): same leaves and roots, same
inclusion paths, and its consistency proofs, rewritten into the RFC's layout, are ours. Every
proof built verifies, and a changed one, or one for another index or size, does not."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regionlock.domain import merkle
from regionlock.domain.merkle import Frontier, ProofError

Perfect = Callable[[int, int], bytes]

# -- RFC 9162 2.1, naively --------------------------------------------------------------------
# Straight from the RFC's text, recursion and all, sharing nothing with merkle.py.


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_below(n: int) -> int:
    """2.1.1: "k be the largest power of two smaller than n (i.e., k < n <= 2k)"."""
    k = 1
    while 2 * k < n:
        k *= 2
    return k


def mth(d: Sequence[bytes]) -> bytes:
    """2.1.1, MTH over raw entries."""
    if not d:
        return H(b"")
    if len(d) == 1:
        return H(b"\x00" + d[0])
    k = largest_power_below(len(d))
    return H(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """2.1.3.1, PATH(m, D[n])."""
    if len(d) <= 1:
        return []
    k = largest_power_below(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """2.1.4.1, SUBPROOF(m, D[n], b)."""
    if m == len(d):
        return [] if b else [mth(d)]
    k = largest_power_below(len(d))
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def recursion_ranges(start: int, end: int) -> list[tuple[int, int]]:
    """Every D[a:b] whose MTH the recursion of 2.1.1 computes for D[start:end]. PATH and
    SUBPROOF split exactly as MTH does, so theirs are among these."""
    if end - start <= 1:
        return [(start, end)]
    k = largest_power_below(end - start)
    return [(start, end), *recursion_ranges(start, start + k), *recursion_ranges(start + k, end)]


def entries(n: int) -> list[bytes]:
    return [i.to_bytes(3, "big") for i in range(n)]


ENTRIES = entries(5000)
LEAVES = [merkle.leaf_hash(x) for x in ENTRIES]


@functools.cache
def span(start: int, end: int) -> bytes:
    """MTH(D[start:end]) of the canonical entries, memoised."""
    return mth(ENTRIES[start:end])


def perfect_within(size: int, asked: list[tuple[int, int]] | None = None) -> Perfect:
    """`perfect` for the canonical tree of `size` leaves, which refuses any subtree not wholly
    inside it: storage has no others."""

    def perfect(level: int, index: int) -> bytes:
        assert level >= 0 and index >= 0 and (index + 1) << level <= size, (level, index)
        if asked is not None:
            asked.append((level, index))
        return span(index << level, (index + 1) << level)

    return perfect


def refused(call: Callable[[], object]) -> bool:
    """True if `call` answers False or raises ProofError; any other exception propagates."""
    try:
        return call() is False
    except ProofError:
        return True


def flip(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- Known answers ----------------------------------------------------------------------------


def test_split_is_the_largest_power_of_two_below_the_width() -> None:
    for n in range(2, 1100):
        assert merkle.split(n) == largest_power_below(n)
    for n in (1, 0, -5):
        with pytest.raises(ValueError):
            merkle.split(n)


def test_hashes_are_the_rfcs_with_their_domain_prefixes() -> None:
    a, b = H(b"a"), H(b"b")
    assert merkle.leaf_hash(b"abc") == H(b"\x00abc")
    assert merkle.node_hash(a, b) == H(b"\x01" + a + b)
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.root([]) == merkle.EMPTY_ROOT == Frontier.empty().root()


# The eight-leaf test tree of Certificate Transparency's test suites, and its roots for the
# first 1 to 8 leaves.
CT_TEST_ENTRIES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657"]
CT_TEST_ENTRIES.append("606162636465666768696a6b6c6d6e6f")
CT_TEST_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_the_published_certificate_transparency_test_tree() -> None:
    d = [bytes.fromhex(x) for x in CT_TEST_ENTRIES]
    leaves = [merkle.leaf_hash(x) for x in d]
    for n, expected in enumerate(CT_TEST_ROOTS, start=1):
        assert merkle.root(leaves[:n]).hex() == expected
        assert mth(d[:n]).hex() == expected


def test_every_root_path_and_proof_up_to_64_leaves_is_the_rfcs() -> None:
    for n in range(65):
        d = ENTRIES[:n]
        root = mth(d)
        assert merkle.root(LEAVES[:n]) == root
        perfect = perfect_within(n)
        for i in range(n):
            proof = merkle.inclusion_proof(i, n, perfect)
            assert proof == path(i, d)
            assert merkle.root_from_inclusion(i, n, LEAVES[i], proof) == root
            assert merkle.verify_inclusion(i, n, LEAVES[i], proof, root)
        for old in range(1, n + 1):
            proof = merkle.consistency_proof(old, n, perfect)
            assert proof == subproof(old, d, True)
            assert merkle.verify_consistency(old, n, mth(d[:old]), root, proof)


def test_range_root_is_the_mth_of_every_range_the_recursion_makes() -> None:
    for n in range(1, 65):
        for start, end in set(recursion_ranges(0, n)):
            asked: list[tuple[int, int]] = []
            assert merkle.range_root(start, end, perfect_within(n, asked)) == span(start, end)
            # Only perfect, aligned subtrees, which tile the range exactly.
            covered = sorted((ix << lv, (ix + 1) << lv) for lv, ix in asked)
            assert covered[0][0] == start and covered[-1][1] == end
            assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))


def test_range_root_is_the_mth_of_any_range_of_leaves() -> None:
    """MTH is defined over any list (2.1.1), so also over D[a:b] that the recursion of D[n]
    never makes; a perfect subtree is used only where the range holds one whole."""
    for start in range(40):
        for end in range(start + 1, 41):
            assert merkle.range_root(start, end, perfect_within(40)) == span(start, end)


def test_range_root_asks_for_the_fewest_subtrees() -> None:
    asked: list[tuple[int, int]] = []
    assert merkle.range_root(0, 37, perfect_within(37, asked)) == span(0, 37)
    assert asked == [(5, 0), (2, 8), (0, 36)]
    with pytest.raises(ValueError):
        merkle.range_root(3, 3, perfect_within(37))


# -- pymerkle 7.0.0 as an oracle --------------------------------------------------------------
# Its InmemoryTree keeps raw entries and leaf hashes; in its default ("security") mode it
# prefixes 0x00 to leaves and 0x01 to nodes and splits at the largest power of two below the
# width, as RFC 9162 does. Its indices count from one. An InclusionProof's path is the leaf
# itself followed by the RFC's audit path. A ConsistencyProof's path differs from the RFC's:
# where the RFC stops at the node covering the old tree's last part, pymerkle descends on into
# the new leaves beside it, down to the first of them (its path starts with that leaf), and marks
# with `subset` the hashes that fold into the old root. Folding the hashes below the first
# marked one (by its own `rule`) gives the RFC's next hash, so its proof can be rewritten into
# the RFC's exactly.


@functools.cache
def pymerkle_tree(size: int) -> Any:
    pymerkle = pytest.importorskip("pymerkle")
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    for x in ENTRIES[:size]:
        tree.append_entry(x)
    return tree


def rfc_consistency_from_pymerkle(old: int, new: int, tree: Any) -> list[bytes]:
    from pymerkle.proof import MerkleProof

    theirs = tree.prove_consistency(old, new)
    if old == new:
        assert theirs.path == [tree.get_root(new)] and theirs.subset == [1]
        return []
    j = theirs.subset.index(1)
    below = MerkleProof("sha256", True, new, theirs.rule, theirs.path[:j]).compute_root()
    head = [] if old & (old - 1) == 0 else [theirs.path[j]]  # SUBPROOF's b: old is the whole
    return [*head, below, *theirs.path[j + 1 :]]


def test_pymerkle_hashes_as_the_rfc_does() -> None:
    tree = pymerkle_tree(0)
    assert (tree.security, tree.leaf_prefix, tree.node_prefix) == (True, b"\x00", b"\x01")
    assert tree.hash_buff(b"x") == merkle.leaf_hash(b"x")
    assert tree.hash_pair(H(b"a"), H(b"b")) == merkle.node_hash(H(b"a"), H(b"b"))


def test_pymerkle_roots_and_leaves_for_every_size_up_to_300() -> None:
    tree = pymerkle_tree(300)
    assert [tree.get_leaf(i + 1) for i in range(300)] == LEAVES[:300]
    frontier = Frontier.empty()
    for n in range(301):
        assert tree.get_root(n) == merkle.root(LEAVES[:n]) == frontier.root()
        if n < 300:
            frontier = frontier.extend([LEAVES[n]])


@settings(max_examples=30, deadline=None)
@given(st.integers(301, len(ENTRIES)))
def test_pymerkle_roots_for_larger_sizes(n: int) -> None:
    tree = pymerkle_tree(len(ENTRIES))
    assert tree.get_root(n) == merkle.root(LEAVES[:n])


def test_pymerkle_inclusion_paths_are_the_leaf_then_ours() -> None:
    tree = pymerkle_tree(300)
    cases = [(i, n) for n in range(1, 65) for i in range(n)]
    cases += [(i, n) for n in (100, 255, 256, 257, 300) for i in range(0, n, 7)]
    for i, n in cases:
        theirs = tree.prove_inclusion(i + 1, n).path
        ours = merkle.inclusion_proof(i, n, perfect_within(n))
        assert theirs[0] == LEAVES[i] and theirs[1:] == ours
        assert merkle.verify_inclusion(i, n, theirs[0], theirs[1:], tree.get_root(n))


def test_pymerkle_consistency_proofs_rewritten_are_ours() -> None:
    tree = pymerkle_tree(300)
    cases = [(m, n) for n in range(1, 65) for m in range(1, n + 1)]
    cases += [(m, n) for n in (100, 256, 257, 300) for m in range(1, n + 1, 11)]
    for m, n in cases:
        old_root, new_root = tree.get_root(m), tree.get_root(n)
        # Its own check accepts our roots,
        tree.prove_consistency(m, n).verify(
            merkle.root(LEAVES[:m]), merkle.root(LEAVES[:n]), prior_size=m, later_size=n
        )
        # its proof in the RFC's layout is ours, and ours checks between its roots.
        ours = merkle.consistency_proof(m, n, perfect_within(n))
        assert rfc_consistency_from_pymerkle(m, n, tree) == ours
        assert merkle.verify_consistency(m, n, old_root, new_root, ours)


# -- Proofs that must not verify --------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300), st.data())
def test_a_changed_inclusion_proof_never_verifies(n: int, data: st.DataObject) -> None:
    root = span(0, n)
    i = data.draw(st.integers(0, n - 1), label="index")
    leaf = LEAVES[i]
    proof = merkle.inclusion_proof(i, n, perfect_within(n))
    assert merkle.verify_inclusion(i, n, leaf, proof, root)
    bit = data.draw(st.integers(0, 255), label="bit")
    # One flipped bit anywhere: a well-formed proof that does not check out.
    for j in range(len(proof)):
        changed = [*proof[:j], flip(proof[j], bit), *proof[j + 1 :]]
        assert merkle.verify_inclusion(i, n, leaf, changed, root) is False
    assert merkle.verify_inclusion(i, n, flip(leaf, bit), proof, root) is False
    assert merkle.verify_inclusion(i, n, leaf, proof, flip(root, bit)) is False
    # Another index of the same tree.
    other = data.draw(st.integers(0, n - 1), label="other index")
    if other != i:
        assert refused(lambda: merkle.verify_inclusion(other, n, leaf, proof, root))
    # Another size, against that size's own root (see the test of size binding below).
    size = data.draw(st.integers(1, 310), label="other size")
    if size != n and i < size:
        assert refused(lambda: merkle.verify_inclusion(i, size, leaf, proof, span(0, size)))
    # Cut short or made longer, at either end: the wrong length for the index and size.
    for bad in (proof[:-1], proof[1:], [*proof, root], [root, *proof]):
        if bad != proof:
            with pytest.raises(ProofError):
                merkle.verify_inclusion(i, n, leaf, bad, root)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 300), st.data())
def test_a_changed_consistency_proof_never_verifies(n: int, data: st.DataObject) -> None:
    m = data.draw(st.integers(1, n - 1), label="old size")
    old_root, new_root = span(0, m), span(0, n)
    proof = merkle.consistency_proof(m, n, perfect_within(n))
    assert proof and merkle.verify_consistency(m, n, old_root, new_root, proof)
    bit = data.draw(st.integers(0, 255), label="bit")
    for j in range(len(proof)):
        changed = [*proof[:j], flip(proof[j], bit), *proof[j + 1 :]]
        assert merkle.verify_consistency(m, n, old_root, new_root, changed) is False
    assert merkle.verify_consistency(m, n, flip(old_root, bit), new_root, proof) is False
    assert merkle.verify_consistency(m, n, old_root, flip(new_root, bit), proof) is False
    # Other sizes, against their own roots.
    m2 = data.draw(st.integers(0, 310), label="other old size")
    n2 = data.draw(st.integers(m2, 310), label="other new size")
    if (m2, n2) != (m, n):
        assert refused(lambda: merkle.verify_consistency(m2, n2, span(0, m2), span(0, n2), proof))
    for bad in (proof[:-1], proof[1:], [*proof, new_root], [old_root, *proof]):
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, old_root, new_root, bad)


def test_the_verifiers_bind_a_size_to_a_root_only_through_the_signed_head() -> None:
    """RFC 9162's algorithms take (size, root) as given. Where two sizes give the proven path the
    same shape, the same hashes pass for either size *with the same root*: a tree head pairs
    them, and a proof is checked against a signed head's pair or proves nothing. Pinned here
    so that no one mistakes it for a bug of ours; with the other size's own root it fails."""
    five = merkle.inclusion_proof(0, 5, perfect_within(5))
    assert merkle.verify_inclusion(0, 6, LEAVES[0], five, span(0, 5))
    assert not merkle.verify_inclusion(0, 6, LEAVES[0], five, span(0, 6))
    one_two = merkle.consistency_proof(1, 2, perfect_within(2))
    assert merkle.verify_consistency(2, 3, span(0, 1), span(0, 2), one_two)
    assert not merkle.verify_consistency(2, 3, span(0, 2), span(0, 3), one_two)


def test_trees_of_equal_size_and_the_empty_tree() -> None:
    r4, r5 = span(0, 4), span(0, 5)
    assert merkle.consistency_proof(5, 5, perfect_within(5)) == []
    assert merkle.verify_consistency(5, 5, r5, r5, [])
    assert merkle.verify_consistency(5, 5, r5, r4, []) is False
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, r5, [])
    assert merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    assert merkle.verify_consistency(0, 5, r5, r5, []) is False


HASHES = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-3, 70),
    st.integers(-3, 70),
    st.lists(HASHES, max_size=9),
    HASHES,
    HASHES,
)
def test_garbage_is_false_or_a_proof_error(
    a: int, b: int, proof: list[bytes], h1: bytes, h2: bytes
) -> None:
    with contextlib.suppress(ProofError):
        assert isinstance(merkle.verify_inclusion(a, b, h1, proof, h2), bool)
    with contextlib.suppress(ProofError):
        assert isinstance(merkle.verify_consistency(a, b, h1, h2, proof), bool)
    with contextlib.suppress(ProofError):
        assert len(merkle.root_from_inclusion(a, b, h1, proof)) == 32


@pytest.mark.parametrize(
    "call",
    [
        lambda: merkle.verify_inclusion(3, 3, H(b""), [], H(b"")),  # index outside
        lambda: merkle.verify_inclusion(-1, 3, H(b""), [], H(b"")),
        lambda: merkle.verify_inclusion(0, 0, H(b""), [], H(b"")),
        lambda: merkle.verify_inclusion(0, -1, H(b""), [], H(b"")),
        lambda: merkle.verify_inclusion(0, 2, b"short", [H(b"")], H(b"")),
        lambda: merkle.verify_inclusion(0, 2, H(b""), [b"short"], H(b"")),
        lambda: merkle.verify_inclusion(0, 2, H(b""), [H(b"")], b"short"),
        lambda: merkle.verify_inclusion(0, 2, H(b""), [H(b"") + b"x"], H(b"")),
        lambda: merkle.verify_consistency(3, 2, H(b""), H(b""), [H(b"")]),
        lambda: merkle.verify_consistency(-1, 2, H(b""), H(b""), [H(b"")]),
        lambda: merkle.verify_consistency(2, 2, H(b""), H(b""), [H(b"")]),
        lambda: merkle.verify_consistency(0, 2, H(b""), H(b""), [H(b"")]),
        lambda: merkle.verify_consistency(1, 2, H(b""), H(b""), []),
        lambda: merkle.verify_consistency(1, 2, H(b""), H(b""), ["text"]),  # type: ignore[list-item]
        lambda: merkle.inclusion_proof(2, 2, lambda level, index: H(b"")),
        lambda: merkle.inclusion_proof(-1, 2, lambda level, index: H(b"")),
        lambda: merkle.consistency_proof(0, 2, lambda level, index: H(b"")),
        lambda: merkle.consistency_proof(3, 2, lambda level, index: H(b"")),
    ],
)
def test_arguments_that_cannot_be_a_proof_are_a_proof_error(call: Callable[[], object]) -> None:
    with pytest.raises(ProofError):
        call()


# -- The frontier -----------------------------------------------------------------------------


def binary_decomposition(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees a tree of `size` leaves is made of, largest first, as ranges."""
    out, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((start, start + (1 << level)))
            start += 1 << level
    return out


def recorder(into: list[tuple[int, int, bytes]]) -> Callable[[int, int, bytes], None]:
    return lambda level, index, digest: into.append((level, index, digest))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=8))
def test_a_frontier_grown_in_any_steps_is_the_same_tree(steps: list[int]) -> None:
    size = sum(steps)
    frontier, at = Frontier.empty(), 0
    reported: list[tuple[int, int]] = []
    for step in steps:
        told: list[tuple[int, int, bytes]] = []
        frontier = frontier.extend(LEAVES[at : at + step], on_node=recorder(told))
        # Each call reports the perfect subtrees of level >= 1 that its leaves complete, with
        # their own roots.
        assert sorted((lv, ix) for lv, ix, _ in told) == sorted(
            (lv, ix)
            for lv in range(1, (at + step).bit_length())
            for ix in range(at >> lv, (at + step) >> lv)
        )
        for lv, ix, h in told:
            assert h == span(ix << lv, (ix + 1) << lv)
        reported += [(lv, ix) for lv, ix, _ in told]
        at += step
    # Over all calls: every such subtree of the final tree, once.
    assert sorted(reported) == sorted(
        (lv, ix) for lv in range(1, size.bit_length()) for ix in range(size >> lv)
    )
    assert frontier == Frontier.empty().extend(LEAVES[:size])
    assert frontier.size == size and frontier.root() == span(0, size)
    assert list(frontier.hashes) == [span(a, b) for a, b in binary_decomposition(size)]
    doc = frontier.to_json()
    assert all(h == h.lower() and len(h) == 64 for h in doc)
    assert Frontier.from_json(frontier.size, doc) == frontier


@pytest.mark.parametrize(
    ("size", "hashes"),
    [
        (3, ["00" * 32]),  # too few
        (1, ["00" * 32, "00" * 32]),  # too many
        (0, ["00" * 32]),
        (1, ["00" * 31]),
        (1, ["00" * 33]),
        (1, ["0" * 63]),
        (1, [""]),
        (1, ["zz" * 32]),
        (1, ["AB" * 32]),  # not the lowercase that to_json writes
        (1, [" " + "00" * 32]),
        (1, [7]),
        (1, [None]),
        (-1, []),
        (2, "ab"),
        (0, None),
    ],
)
def test_a_frontier_that_cannot_be_is_refused(size: int, hashes: list[str]) -> None:
    with pytest.raises(ValueError):
        Frontier.from_json(size, hashes)


# -- Found by mutation testing (docs/test-quality.md, "domain/merkle.py") ----------------------
# Each test below failed on a mutant of merkle.py that the tests above let live.

Z = H(b"")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: merkle.split(1), "no split of 1 leaves"),
        (lambda: merkle.range_root(3, 3, lambda lv, ix: Z), "no leaves from 3 to 3"),
        (lambda: Frontier.from_json(-1, ["00" * 32]), "a tree size is a natural number, not -1"),
        (lambda: Frontier.from_json(3, ["00" * 32]), "a tree of 3 leaves has 2 subtree roots"),
        (lambda: Frontier.from_json(1, ["zz" * 32]), "subtree roots are lowercase hex, not 'zz"),
        (lambda: Frontier.from_json(1, ["00" * 31]), "subtree roots are 32 bytes, not 31"),
        (
            lambda: merkle.inclusion_proof(2, 2, lambda lv, ix: Z),
            "leaf 2 is not in a tree of 2 leaves",
        ),
        (
            lambda: merkle.consistency_proof(3, 2, lambda lv, ix: Z),
            "no consistency proof from 3 to 2 leaves",
        ),
        (lambda: merkle.verify_inclusion(0, 2, b"x", [Z], Z), "every hash of a proof is 32 bytes"),
        (lambda: merkle.verify_inclusion(3, 3, Z, [Z], Z), "leaf 3 is not in a tree of 3 leaves"),
        (
            lambda: merkle.verify_inclusion(0, 2, Z, [Z, Z], Z),
            "the inclusion proof is longer than the tree is deep",
        ),
        (
            lambda: merkle.verify_inclusion(0, 4, Z, [Z], Z),
            "the inclusion proof is shorter than the tree is deep",
        ),
        (
            lambda: merkle.verify_consistency(3, 2, Z, Z, [Z]),
            "a tree of 3 leaves is not before one of 2",
        ),
        (
            lambda: merkle.verify_consistency(2, 2, Z, Z, [Z]),
            "equal trees are consistent with an empty proof only",
        ),
        (
            lambda: merkle.verify_consistency(0, 2, Z, Z, [Z]),
            "the empty tree is consistent with an empty proof only",
        ),
        (
            lambda: merkle.verify_consistency(1, 2, Z, Z, []),
            "a consistency proof between different trees is not empty",
        ),
        (
            lambda: merkle.verify_consistency(1, 2, Z, Z, [Z, Z]),
            "the consistency proof is longer than the tree is deep",
        ),
        (
            lambda: merkle.verify_consistency(3, 8, Z, Z, [Z]),
            "the consistency proof is shorter than the tree is deep",
        ),
        # Either root not 32 bytes: refused as garbage, not answered False.
        (lambda: merkle.verify_consistency(1, 2, b"x", Z, [Z]), "every hash of a proof is 32"),
        (lambda: merkle.verify_consistency(1, 2, Z, b"x", [Z]), "every hash of a proof is 32"),
    ],
)
def test_each_refusal_says_what_is_wrong(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(message)


def test_a_frontier_whose_roots_do_not_match_its_size_cannot_grow() -> None:
    """Made by hand with too few roots, it would otherwise drop a subtree without a word."""
    with pytest.raises(ValueError):
        Frontier(3, (Z,)).extend([Z])


def test_only_the_empty_tree_is_extended_by_every_tree_with_no_proof() -> None:
    perfect = perfect_within(6)
    for old in range(1, 6):
        proof = merkle.consistency_proof(old, 6, perfect)
        assert proof  # a real proof between different trees
        assert merkle.verify_consistency(old, 6, span(0, old), span(0, 6), proof)
        assert not merkle.verify_consistency(old, 6, span(0, old + 1), span(0, 6), proof)
