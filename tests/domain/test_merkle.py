"""`regionlock.domain.merkle` against RFC 9162's own definitions, written here as plainly as the
RFC states them, and against a maintained library, pymerkle (a test-only dependency: it is
GPL-3.0-or-later, the project Apache-2.0): same roots, same inclusion paths, and every proof
built verifies while a changed one does not."""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regionlock.domain import merkle
from regionlock.domain.merkle import Frontier, ProofError


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(d: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.1, MTH over raw entries."""
    if not d:
        return H(b"")
    if len(d) == 1:
        return H(b"\x00" + d[0])
    k = merkle.split(len(d))
    return H(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1, PATH(m, D[n])."""
    if len(d) <= 1:
        return []
    k = merkle.split(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1, SUBPROOF(m, D[n], b)."""
    if m == len(d):
        return [] if b else [mth(d)]
    k = merkle.split(len(d))
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def entries(n: int) -> list[bytes]:
    return [i.to_bytes(3, "big") for i in range(n)]


def perfect_of(d: Sequence[bytes]) -> Callable[[int, int], bytes]:
    return lambda level, index: mth(d[index << level : (index + 1) << level])


def test_every_root_path_and_proof_up_to_64_leaves_is_the_rfcs() -> None:
    for n in range(65):
        d = entries(n)
        leaves = [merkle.leaf_hash(x) for x in d]
        root = mth(d)
        assert merkle.root(leaves) == root
        perfect = perfect_of(d)
        for i in range(n):
            proof = merkle.inclusion_proof(i, n, perfect)
            assert proof == path(i, d)
            assert merkle.verify_inclusion(i, n, leaves[i], proof, root)
        for old in range(1, n + 1):
            proof = merkle.consistency_proof(old, n, perfect)
            assert proof == subproof(old, d, True)
            assert merkle.verify_consistency(old, n, mth(d[:old]), root, proof)


def test_roots_and_inclusion_paths_agree_with_pymerkle() -> None:
    pymerkle = pytest.importorskip("pymerkle")
    for n in [*range(1, 40), 63, 64, 65, 100, 255, 256, 257]:
        tree = pymerkle.InmemoryTree(algorithm="sha256")
        d = entries(n)
        for x in d:
            tree.append_entry(x)
        leaves = [merkle.leaf_hash(x) for x in d]
        assert tree.get_root() == merkle.root(leaves)
        assert [tree.get_leaf(i + 1) for i in range(n)] == leaves
        perfect = perfect_of(d)
        for i in range(0, n, max(1, n // 17)):
            # pymerkle's path starts with the leaf itself, then RFC 9162's audit path.
            theirs = tree.prove_inclusion(i + 1, n).serialize()["path"]
            assert theirs[1:] == [h.hex() for h in merkle.inclusion_proof(i, n, perfect)]
        for old in range(1, n, max(1, n // 13)):
            # pymerkle lays consistency proofs out its own way: its roots must check out with
            # our proofs.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                old_root, new_root = tree.get_root(old), tree.get_root(n)
            proof = merkle.consistency_proof(old, n, perfect)
            assert merkle.verify_consistency(old, n, old_root, new_root, proof)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.data())
def test_a_changed_proof_never_verifies(n: int, data: st.DataObject) -> None:
    d = entries(n)
    leaves = [merkle.leaf_hash(x) for x in d]
    root, perfect = mth(d), perfect_of(d)
    i = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(i, n, perfect)
    assert merkle.verify_inclusion(i, n, leaves[i], proof, root)
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        changed = list(proof)
        changed[j] = bytes([changed[j][0] ^ (1 + bit % 255)]) + changed[j][1:]
        assert not merkle.verify_inclusion(i, n, leaves[i], changed, root)
    other = data.draw(st.integers(0, n - 1))
    if other != i:  # refused: a wrong root, or a path of another length (ProofError)
        with contextlib.suppress(ProofError):
            assert not merkle.verify_inclusion(other, n, leaves[i], proof, root)
    for bad in (proof[:-1], [*proof, root]):
        if bad != proof:
            with pytest.raises(ProofError):
                merkle.verify_inclusion(i, n, leaves[i], bad, root)
    old = data.draw(st.integers(1, n))
    cproof = merkle.consistency_proof(old, n, perfect)
    assert merkle.verify_consistency(old, n, mth(d[:old]), root, cproof)
    if old < n:
        assert not merkle.verify_consistency(old, n, mth(d[:old]), H(b"x"), cproof)
        assert not merkle.verify_consistency(old, n, H(b"x"), root, cproof)
        changed = list(cproof)
        changed[-1] = H(changed[-1])
        with contextlib.suppress(ProofError):
            assert not merkle.verify_consistency(old, n, mth(d[:old]), root, changed)
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, n, mth(d[:old]), root, [*cproof, root])


@pytest.mark.parametrize(
    "call",
    [
        lambda: merkle.verify_inclusion(3, 3, H(b""), [], H(b"")),  # index outside
        lambda: merkle.verify_inclusion(-1, 3, H(b""), [], H(b"")),
        lambda: merkle.verify_inclusion(0, 2, b"short", [H(b"")], H(b"")),
        lambda: merkle.verify_inclusion(0, 2, H(b""), [b"short"], H(b"")),
        lambda: merkle.verify_inclusion(0, 2, H(b""), [H(b"")], b"short"),
        lambda: merkle.verify_consistency(3, 2, H(b""), H(b""), [H(b"")]),
        lambda: merkle.verify_consistency(2, 2, H(b""), H(b""), [H(b"")]),
        lambda: merkle.verify_consistency(0, 2, H(b""), H(b""), [H(b"")]),
        lambda: merkle.verify_consistency(1, 2, H(b""), H(b""), []),
        lambda: merkle.verify_consistency(1, 2, H(b""), H(b""), ["text"]),  # type: ignore[list-item]
        lambda: merkle.inclusion_proof(2, 2, lambda level, index: H(b"")),
        lambda: merkle.consistency_proof(0, 2, lambda level, index: H(b"")),
        lambda: merkle.consistency_proof(3, 2, lambda level, index: H(b"")),
    ],
)
def test_arguments_that_cannot_be_a_proof_are_a_proof_error(call: Callable[[], object]) -> None:
    with pytest.raises(ProofError):
        call()


def test_trees_of_equal_size_and_the_empty_tree() -> None:
    d = entries(5)
    assert merkle.verify_consistency(5, 5, mth(d), mth(d), [])
    assert not merkle.verify_consistency(5, 5, mth(d), mth(d[:4]), [])
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, mth(d), [])
    assert not merkle.verify_consistency(0, 5, mth(d), mth(d), [])
    assert merkle.root([]) == merkle.EMPTY_ROOT == H(b"")
    assert Frontier.empty().root() == merkle.EMPTY_ROOT


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=8))
def test_a_frontier_grown_in_any_steps_is_the_same_tree(steps: list[int]) -> None:
    d = entries(sum(steps))
    leaves = [merkle.leaf_hash(x) for x in d]
    nodes: dict[tuple[int, int], bytes] = {}
    frontier, at = Frontier.empty(), 0
    for step in steps:
        frontier = frontier.extend(
            leaves[at : at + step], on_node=lambda lv, ix, h: nodes.__setitem__((lv, ix), h)
        )
        at += step
    assert frontier == Frontier.empty().extend(leaves)
    assert frontier.size == len(d) and frontier.root() == mth(d)
    # Exactly the perfect subtrees of level 1 and up, each with its own root.
    expected = {
        (level, index)
        for level in range(1, len(d).bit_length())
        for index in range(len(d) >> level)
    }
    assert set(nodes) == expected
    for (level, index), digest in nodes.items():
        assert digest == mth(d[index << level : (index + 1) << level])
    assert Frontier.from_json(frontier.size, frontier.to_json()) == frontier


@pytest.mark.parametrize(
    ("size", "hashes"),
    [(3, ["00" * 32]), (1, ["00" * 31]), (1, ["zz" * 32]), (-1, []), (2, "ab")],
)
def test_a_frontier_that_cannot_be_is_refused(size: int, hashes: list[str]) -> None:
    with pytest.raises(ValueError):
        Frontier.from_json(size, hashes)


def test_range_roots_are_built_from_perfect_subtrees_only() -> None:
    d = entries(37)
    asked: list[tuple[int, int]] = []

    def perfect(level: int, index: int) -> bytes:
        asked.append((level, index))
        return mth(d[index << level : (index + 1) << level])

    assert merkle.range_root(0, 37, perfect) == mth(d)
    assert asked == [(5, 0), (2, 8), (0, 36)]
    assert merkle.range_root(32, 37, perfect) == mth(d[32:])
    with pytest.raises(ValueError):
        merkle.range_root(3, 3, perfect)
    with pytest.raises(ValueError):
        merkle.split(1)


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
        (lambda: Frontier.from_json(1, ["zz" * 32]), "subtree roots are hex: "),
        (lambda: Frontier.from_json(1, ["00" * 31]), "subtree roots are 32 bytes"),
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
    d = entries(6)
    perfect = perfect_of(d)
    for old in range(1, 6):
        proof = merkle.consistency_proof(old, 6, perfect)
        assert proof  # a real proof between different trees
        assert merkle.verify_consistency(old, 6, mth(d[:old]), mth(d), proof)
        assert not merkle.verify_consistency(old, 6, mth(d[: old + 1]), mth(d), proof)
