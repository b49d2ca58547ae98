"""RFC 6962 Merkle tree: published vectors, an independent reference, and properties.

The vectors in tests/data/merkle/rfc6962-vectors.json were copied from transparency-dev/merkle
and google/certificate-transparency (the file names its sources). The reference functions
below restate RFC 6962 section 2.1 literally (recursion on lists), so the fast code in
storage.merkle is checked against the definition, not against itself.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads(
    (Path(__file__).parents[1] / "data" / "merkle" / "rfc6962-vectors.json").read_text())
LEAVES = [leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaf_inputs"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def hexes(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


# ---- reference: RFC 6962 section 2.1, literally ------------------------------------------

def split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_root(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = split(len(d))
    return node_hash(ref_root(d[:k]), ref_root(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = split(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_root(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_root(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_root(d)]
    k = split(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_root(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_root(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return [] if m in (0, len(d)) else ref_subproof(m, d, True)


def path_shape(m: int, n: int) -> list[bool]:
    """For each PATH element, bottom-up: is the sibling on the left? (from the recursion)"""
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*path_shape(m, k), False]
    return [*path_shape(m - k, n - k), True]


def leaves(count: int, seed: bytes = b"") -> list[bytes]:
    """Distinct leaf hashes (equal leaves would make some corruptions undetectable)."""
    return [leaf_hash(seed + i.to_bytes(4, "big")) for i in range(count)]


# ---- corruptions (the cases the Go and C++ verifier tests probe) -------------------------

def flipped(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    changed = bytearray(proof[i])
    changed[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:i], bytes(changed), *proof[i + 1:]]


def inclusion_corruptions(index: int, size: int, proof: list[bytes], top: bytes,
                          leaf: bytes) -> list[tuple[str, tuple[Any, ...]]]:
    probes: list[tuple[str, tuple[Any, ...]]] = [
        ("index - 1", (leaf, index - 1, size, proof, top)),
        ("index + 1", (leaf, index + 1, size, proof, top)),
        ("index ^ 2", (leaf, index ^ 2, size, proof, top)),
        ("size * 2", (leaf, index, size * 2, proof, top)),
        ("size / 2", (leaf, index, size // 2, proof, top)),
        ("wrong leaf", (leaf_hash(b"WrongLeaf"), index, size, proof, top)),
        ("empty root", (leaf, index, size, proof, EMPTY_ROOT)),
        ("random root", (leaf, index, size, proof, SOME_HASH)),
        ("trailing empty", (leaf, index, size, [*proof, b""], top)),
        ("trailing root", (leaf, index, size, [*proof, top], top)),
        ("preceding empty", (leaf, index, size, [b"", *proof], top)),
        ("preceding root", (leaf, index, size, [top, *proof], top)),
    ]
    for i in range(len(proof)):
        probes.append((f"proof[{i}] bit 3", (leaf, index, size, flipped(proof, i, 3), top)))
        probes.append((f"proof[{i}] bit 255", (leaf, index, size, flipped(proof, i, 255), top)))
    if proof:
        probes.append(("removed last", (leaf, index, size, proof[:-1], top)))
        probes.append(("short element", (leaf, index, size, [proof[0][:31], *proof[1:]], top)))
    if len(proof) > 1:
        probes.append(("inserted", (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], top)))
        probes.append(("swapped", (leaf, index, size, [proof[1], proof[0], *proof[2:]], top)))
    if index == 0 and size == 1:  # the index probes are meaningful only inside the tree
        probes = [p for p in probes if not p[0].startswith("index")]
    return probes


def consistency_corruptions(old: int, new: int, old_root: bytes, new_root: bytes,
                            proof: list[bytes]) -> list[tuple[str, tuple[Any, ...]]]:
    probes: list[tuple[str, tuple[Any, ...]]] = [
        ("old - 1", (old - 1, new, old_root, new_root, proof)),
        ("old + 1", (old + 1, new, old_root, new_root, proof)),
        ("old ^ 2", (old ^ 2, new, old_root, new_root, proof)),
        ("new * 2", (old, new * 2, old_root, new_root, proof)),
        ("new / 2", (old, new // 2, old_root, new_root, proof)),
        ("wrong old root", (old, new, SOME_HASH, new_root, proof)),
        ("wrong new root", (old, new, old_root, SOME_HASH, proof)),
        ("swapped roots", (old, new, new_root, old_root, proof)),
        ("empty proof", (old, new, old_root, new_root, [])),
        ("trailing empty", (old, new, old_root, new_root, [*proof, b""])),
        ("trailing old root", (old, new, old_root, new_root, [*proof, old_root])),
        ("trailing new root", (old, new, old_root, new_root, [*proof, new_root])),
        ("preceding empty", (old, new, old_root, new_root, [b"", *proof])),
        ("preceding old root", (old, new, old_root, new_root, [old_root, *proof])),
        ("preceding new root", (old, new, old_root, new_root, [new_root, *proof])),
        ("preceding proof[0]", (old, new, old_root, new_root, [proof[0], *proof])),
        ("truncated", (old, new, old_root, new_root, proof[:-1])),
    ]
    for i in range(len(proof)):
        probes.append((f"proof[{i}] bit 4", (old, new, old_root, new_root, flipped(proof, i, 4))))
        probes.append((f"proof[{i}] bit 200",
                       (old, new, old_root, new_root, flipped(proof, i, 200))))
    return probes


def assert_all_fail(check: Callable[..., bool],
                    probes: list[tuple[str, tuple[Any, ...]]]) -> None:
    wrongly = [desc for desc, args in probes if check(*args)]
    assert not wrongly, f"verified although corrupted: {', '.join(wrongly)}"


# ---- published vectors --------------------------------------------------------------------

def test_the_hasher_matches_the_rfc6962_vectors() -> None:
    assert EMPTY_ROOT.hex() == VECTORS["empty_root"]
    for case in VECTORS["hasher"]:
        if case["kind"] == "leaf":
            got = leaf_hash(bytes.fromhex(case["input"]))
        else:
            got = node_hash(bytes.fromhex(case["left"]), bytes.fromhex(case["right"]))
        assert got.hex() == case["hash"]
    assert leaf_hash(b"") != EMPTY_ROOT  # an empty leaf is not an empty tree


def test_roots_of_every_size_match_the_vectors_however_the_tree_is_built() -> None:
    whole = MerkleTree(LEAVES)
    grown = MerkleTree()
    frontier = CompactRange()
    for n in range(len(LEAVES) + 1):
        if n:
            grown.append(LEAVES[n - 1])
            frontier.append(LEAVES[n - 1])
        assert root(LEAVES[:n]) == ROOTS[n] == ref_root(LEAVES[:n])
        assert whole.root(n) == grown.root() == frontier.root() == ROOTS[n]
        assert frontier.size == grown.size == n
        want = hexes(VECTORS["compact_ranges"][n])
        assert list(frontier.hashes) == list(whole.compact_range(n).hashes) == want


def test_perfect_subtree_hashes_match_the_vectors() -> None:
    for level, row in enumerate(VECTORS["node_hashes"]):
        width = 1 << level
        for i, h in enumerate(hexes(row)):
            assert root(LEAVES[i * width:(i + 1) * width]) == h


@pytest.mark.parametrize("case", VECTORS["inclusion_proofs"],
                         ids=lambda c: f"{c['index']}of{c['tree_size']}")
def test_inclusion_vectors_are_made_and_verified(case: dict[str, Any]) -> None:
    index, size, want = case["index"], case["tree_size"], hexes(case["proof"])
    assert inclusion_proof(LEAVES[:size], index) == want
    assert MerkleTree(LEAVES).inclusion_proof(index, size) == want
    assert ref_path(index, LEAVES[:size]) == want
    assert verify_inclusion(LEAVES[index], index, size, want, ROOTS[size])
    assert_all_fail(verify_inclusion,
                    inclusion_corruptions(index, size, want, ROOTS[size], LEAVES[index]))


@pytest.mark.parametrize("case", VECTORS["consistency_proofs"],
                         ids=lambda c: f"{c['old_size']}to{c['new_size']}")
def test_consistency_vectors_are_made_and_verified(case: dict[str, Any]) -> None:
    old, new, want = case["old_size"], case["new_size"], hexes(case["proof"])
    assert consistency_proof(LEAVES, old, new) == want
    assert MerkleTree(LEAVES).consistency_proof(old, new) == want
    assert ref_proof(old, LEAVES[:new]) == want
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], want)
    if want:
        assert_all_fail(verify_consistency,
                        consistency_corruptions(old, new, ROOTS[old], ROOTS[new], want))


# ---- edge cases of the verifiers ----------------------------------------------------------

def test_inclusion_in_impossible_trees_never_verifies() -> None:
    for index, size in [(0, 0), (0, 1), (1, 0), (2, 1)]:
        for leaf, top in [(SOME_HASH, b""), (b"", EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)]:
            assert not verify_inclusion(leaf, index, size, [], top)
    single = leaf_hash(b"data")
    assert verify_inclusion(single, 0, 1, [], single)  # a one-leaf tree's root is the leaf
    assert not verify_inclusion(single, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], single)
    assert not verify_inclusion(single, 0, 1, [single], single)


def test_consistency_edge_cases_follow_the_documented_rules() -> None:
    r1, r2 = leaf_hash(b"one"), leaf_hash(b"two")
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, r2, [])  # the empty tree precedes every tree
    assert not verify_consistency(0, 5, r1, r2, [])  # ... but its root is known
    assert not verify_consistency(0, 0, EMPTY_ROOT, r2, [])
    assert not verify_consistency(0, 1, EMPTY_ROOT, r2, [EMPTY_ROOT])
    assert verify_consistency(1, 1, r2, r2, [])
    assert not verify_consistency(1, 1, r1, r2, [])
    assert not verify_consistency(1, 1, r2, r2, [r2])  # equal roots but a proof
    assert not verify_consistency(1, 0, r1, r2, [])  # time travel
    assert not verify_consistency(2, 1, r1, r2, [])
    assert not verify_consistency(1, 2, r1, r2, [])  # a real step needs a proof


def test_a_tree_size_is_bound_only_through_the_proof_shape() -> None:
    """Leaf 0's proof in a tree of 3 also fits a tree of 4 with the same root.

    RFC 9162 verification depends on the size only through the left/right pattern of the
    path, which is the same for (0, 3) and (0, 4). This is harmless because no honest root
    of size 4 equals the root of size 3: evidock trusts a (size, root) pair only from a
    signed checkpoint, which binds the two together.
    """
    proof = inclusion_proof(LEAVES[:3], 0)
    assert path_shape(0, 3) == path_shape(0, 4)
    assert verify_inclusion(LEAVES[0], 0, 4, proof, ROOTS[3])
    assert not verify_inclusion(LEAVES[0], 0, 4, proof, ROOTS[4])


def test_malformed_hashes_and_numbers_are_false_not_errors() -> None:
    proof = inclusion_proof(LEAVES, 5)
    as_bytearrays: list[Any] = [bytearray(p) for p in proof]
    assert verify_inclusion(bytearray(LEAVES[5]), 5, 8, as_bytearrays,  # type: ignore[arg-type]
                            bytearray(ROOTS[8]))  # type: ignore[arg-type]
    assert not verify_inclusion(LEAVES[5], True, 8, proof, ROOTS[8])
    assert not verify_inclusion(LEAVES[5], 5, 8.0, proof, ROOTS[8])  # type: ignore[arg-type]
    assert not verify_inclusion(LEAVES[5], 5, 2**64, proof, ROOTS[8])
    assert not verify_inclusion(LEAVES[5], -1, 8, proof, ROOTS[8])
    assert not verify_inclusion(LEAVES[5], 5, 8, b"".join(proof), ROOTS[8])  # type: ignore[arg-type]
    assert not verify_inclusion(LEAVES[5], 5, 8, [p.hex() for p in proof], ROOTS[8])  # type: ignore[misc]
    assert not verify_inclusion(LEAVES[5], 5, 8, [*proof, *([SOME_HASH] * 10**5)], ROOTS[8])
    cproof = consistency_proof(LEAVES, 6, 8)
    assert not verify_consistency(6, 8, ROOTS[6], ROOTS[8], iter(cproof))  # type: ignore[arg-type]
    assert not verify_consistency(6, 8, ROOTS[6][:31], ROOTS[8], cproof)
    assert not verify_consistency(6, 8, ROOTS[6], ROOTS[8], [None, *cproof[1:]])  # type: ignore[list-item]
    assert not verify_consistency(6, 8, ROOTS[6], ROOTS[8], [*cproof, *([SOME_HASH] * 10**5)])


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(),
                 st.binary(max_size=40), st.text(max_size=4),
                 st.lists(st.binary(min_size=31, max_size=33), max_size=4),
                 st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=2)), max_size=3))


@settings(max_examples=300, deadline=None)
@given(args=st.tuples(JUNK, JUNK, JUNK, JUNK, JUNK), which=st.integers(0, 31))
def test_verifiers_never_raise(args: tuple[Any, ...], which: int) -> None:
    """Any mix of junk and valid arguments gives False (or True only if all are valid)."""
    valid_inc = (LEAVES[5], 5, 8, inclusion_proof(LEAVES, 5), ROOTS[8])
    valid_con = (6, 8, ROOTS[6], ROOTS[8], consistency_proof(LEAVES, 6, 8))
    for valid, check in ((valid_inc, verify_inclusion), (valid_con, verify_consistency)):
        mixed: list[Any] = [a if which >> i & 1 else v
                            for i, (a, v) in enumerate(zip(args, valid, strict=True))]
        assert check(*mixed) in (True, False)
        assert check(*args) is False


def test_impossible_requests_raise_proof_error() -> None:
    tree = MerkleTree(LEAVES)
    with pytest.raises(ProofError, match="leaf index 8 is not in a tree of 8 leaves"):
        tree.inclusion_proof(8)
    with pytest.raises(ProofError, match="leaf index -1"):
        inclusion_proof(LEAVES, -1)
    with pytest.raises(ProofError, match="must be an integer"):
        tree.inclusion_proof(True)
    with pytest.raises(ProofError, match="not in a tree of 0 leaves"):
        inclusion_proof([], 0)
    with pytest.raises(ProofError, match="old tree size 5 is larger than new tree size 3"):
        consistency_proof(LEAVES, 5, 3)
    with pytest.raises(ProofError, match="new tree size 9 is larger than the 8 leaf hashes"):
        consistency_proof(LEAVES, 5, 9)
    with pytest.raises(ProofError, match="tree size 9 is larger than the 8 leaves known"):
        tree.root(9)
    with pytest.raises(ProofError, match=r"leaf hash 1 must be 32 bytes .* got 3 bytes"):
        root([LEAVES[0], b"abc"])
    with pytest.raises(ProofError, match="leaf hash must be 32 bytes"):
        CompactRange().append(b"short")
    with pytest.raises(ProofError, match=r"has 2 hashes .* got 1"):
        CompactRange.from_hashes(3, [LEAVES[0]])
    with pytest.raises(ProofError, match=r"outside 0\.\.2"):
        CompactRange.from_hashes(-1, [])


# ---- exhaustive small trees and random larger ones ---------------------------------------

def check_tree(d: list[bytes], indexes: Sequence[int], pairs: Sequence[tuple[int, int]],
               corrupt: bool) -> None:
    n = len(d)
    tree = MerkleTree(d)
    assert tree.root() == ref_root(d) == root(d)
    for i in range(n):  # every inclusion proof verifies
        assert verify_inclusion(d[i], i, n, tree.inclusion_proof(i), tree.root())
    for m in range(n + 1):  # every consistency proof from every older size verifies
        assert verify_consistency(m, n, tree.root(m), tree.root(), tree.consistency_proof(m))
    for i in indexes:
        proof = tree.inclusion_proof(i)
        assert proof == ref_path(i, d)
        for j in range(n):  # the index is bound: no other index verifies
            assert verify_inclusion(d[i], j, n, proof, tree.root()) == (j == i)
        for other in range(max(1, n - 3), n + 4):  # the size is bound up to the path shape
            same = i < other and path_shape(i, other) == path_shape(i, n)
            assert verify_inclusion(d[i], i, other, proof, tree.root()) == same
        if corrupt:
            assert_all_fail(verify_inclusion,
                            inclusion_corruptions(i, n, proof, tree.root(), d[i]))
    for m, k in pairs:
        proof = tree.consistency_proof(m, k)
        assert proof == ref_proof(m, d[:k]) == consistency_proof(d, m, k)
        for m2 in range(max(0, m - 3), m + 4):  # a proof of the wrong length never verifies
            for k2 in range(max(m2, k - 3), min(k + 4, n + 1)):
                if len(tree.consistency_proof(m2, k2)) != len(proof):
                    assert not verify_consistency(m2, k2, tree.root(m), tree.root(k), proof)
        if corrupt and proof:
            assert_all_fail(verify_consistency,
                            consistency_corruptions(m, k, tree.root(m), tree.root(k), proof))


def test_every_proof_in_every_tree_up_to_32_leaves() -> None:
    for n in range(33):
        d = leaves(n, b"small")
        check_tree(d, range(n), [(m, k) for k in range(n + 1) for m in range(k + 1)],
                   corrupt=True)


@st.composite
def random_tree(draw: st.DrawFn) -> tuple[list[bytes], list[int], list[tuple[int, int]]]:
    n = draw(st.integers(0, 300))
    d = leaves(n, draw(st.binary(min_size=1, max_size=8)))
    indexes = draw(st.lists(st.integers(0, n - 1), max_size=4)) if n else []
    pairs = []
    for k in draw(st.lists(st.integers(0, n), min_size=1, max_size=4)):
        pairs.append((draw(st.integers(0, k)), k))
    return d, indexes, pairs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_tree())
def test_random_trees_up_to_300_leaves(case: tuple[list[bytes], list[int],
                                                    list[tuple[int, int]]]) -> None:
    d, indexes, pairs = case
    check_tree(d, indexes, pairs, corrupt=True)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), cut=st.integers(0, 300), seed=st.binary(max_size=4))
def test_incremental_structures_agree_with_root_after_every_append(
        n: int, cut: int, seed: bytes) -> None:
    d = leaves(n, seed)
    frontier = CompactRange()
    grown = MerkleTree()
    for i, h in enumerate(d):
        if i == min(cut, n):  # a restart: the saved (size, hashes) carry on
            frontier = CompactRange.from_hashes(frontier.size, frontier.hashes)
        frontier.append(h)
        grown.append(h)
        assert frontier.root() == grown.root() == ref_root(d[:i + 1])
    whole = MerkleTree(d)
    assert whole.root() == frontier.root() == root(d)
    assert whole.compact_range().hashes == frontier.hashes
    for i in range(n):
        assert grown.leaf_hash(i) == d[i]
        assert grown.inclusion_proof(i) == whole.inclusion_proof(i)


@pytest.mark.slow
def test_a_million_leaves_in_seconds() -> None:
    n = 1_000_000
    d = leaves(n, b"big")
    started = time.perf_counter()
    tree = MerkleTree(d)
    frontier = CompactRange()
    for h in d:
        frontier.append(h)
    top = tree.root()
    assert frontier.root() == top == root(d[:n])
    index, old = 765_432, 654_321
    assert verify_inclusion(d[index], index, n, inclusion_proof(d, index), top)
    assert verify_consistency(old, n, tree.root(old), top, consistency_proof(d, old, n))
    assert time.perf_counter() - started < 120  # about 5 s on the CI machine
