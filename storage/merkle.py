"""RFC 6962 / RFC 9162 Merkle tree over SHA-256 (byte-level description: docs/ledger-crypto.md).

Hashing: a leaf is ``SHA-256(0x00 || data)``, an inner node ``SHA-256(0x01 || left || right)``,
the empty tree ``SHA-256("")``. A tree of ``n > 1`` leaves splits at ``k``, the largest power of
two strictly less than ``n``: the left subtree holds leaves ``[0, k)``, the right ``[k, n)``.

What raises and what does not:

* Building roots and proofs (:func:`root`, :func:`inclusion_proof`, :func:`consistency_proof`,
  :class:`MerkleTree`, :class:`CompactRange`) raises :class:`ProofError` for impossible
  arguments (an index outside the tree, sizes out of order, a leaf hash that is not 32 bytes).
* Verifying (:func:`verify_inclusion`, :func:`verify_consistency`) never raises: any malformed
  input (wrong types, negative or oversized numbers, hashes that are not 32 bytes, proofs of the
  wrong length) gives ``False``, exactly like a proof that does not match.

Costs: :class:`MerkleTree` keeps the hash of every perfect subtree (``2n`` hashes, 64 MB for a
million leaves), so after an ``O(n)`` build an append costs ``O(1)`` amortized and a root or a
proof for any tree size ``<= n`` costs ``O(log^2 n)`` hashes at worst. :class:`CompactRange` keeps
only the perfect-subtree roots of the current tree (``O(log n)`` hashes) and gives the new root
after each append in ``O(log n)``. The free functions build a :class:`MerkleTree` and are ``O(n)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import TypeGuard

from storage.errors import EvidockError

HASH_SIZE = 32
"""Bytes in every hash: leaf hashes, node hashes, roots and proof elements."""

MAX_TREE_SIZE = (1 << 64) - 1
"""Tree sizes and indexes are unsigned 64-bit numbers, as in RFC 9162."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the tree with no leaves: SHA-256 of the empty string."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(EvidockError, ValueError):
    """A root or proof was asked for with impossible arguments; the message says which."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf (RFC 6962 section 2.1)."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an inner node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        got = (f"{len(value)} bytes" if isinstance(value, bytes | bytearray)
               else type(value).__name__)
        raise ProofError(f"{what} must be {HASH_SIZE} bytes (a SHA-256 hash), got {got}")
    return bytes(value)


def _check_size(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"{what} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= MAX_TREE_SIZE:
        raise ProofError(f"{what} {value} is outside 0..2^64-1")
    return value


class CompactRange:
    """The O(log n) state of an append-only tree: the roots of its perfect subtrees.

    For a tree of ``size`` leaves, ``hashes`` holds one hash per set bit of ``size``, left to
    right: the largest perfect subtree first (for 7 leaves: the roots of leaves [0, 4), [4, 6)
    and [6, 7)). That is enough to compute the root and to keep appending, so a ledger needs to
    store only these few hashes next to its size to go on after a restart.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Restore a range saved as ``(size, hashes)``; the count must match ``size``."""
        size = _check_size(size, "tree size")
        if isinstance(hashes, str | bytes | bytearray):
            raise ProofError("compact range hashes must be a sequence of 32-byte hashes")
        expected = size.bit_count()
        if len(hashes) != expected:
            raise ProofError(f"a compact range of size {size} has {expected} hashes "
                             f"(one per set bit of the size), got {len(hashes)}")
        restored = cls()
        restored._size = size
        restored._hashes = [_check_hash(h, f"compact range hash {i}")
                            for i, h in enumerate(hashes)]
        return restored

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        return CompactRange.from_hashes(self._size, self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (``leaf_hash(data)``, not the data): O(log n) hashes at worst."""
        if self._size >= MAX_TREE_SIZE:
            raise ProofError("the tree is full (2^64-1 leaves)")
        self._hashes.append(_check_hash(leaf, "leaf hash"))
        # Each trailing 1 bit of the old size is a perfect subtree the new leaf completes.
        size = self._size
        hashes = self._hashes
        while size & 1:
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            size >>= 1
        self._size += 1

    def root(self) -> bytes:
        """The tree's root: the perfect-subtree roots folded right to left."""
        if not self._hashes:
            return EMPTY_ROOT
        result = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            result = node_hash(h, result)
        return result


class MerkleTree:
    """All perfect-subtree hashes of an append-only tree, for roots and proofs at any size.

    ``_levels[k]`` holds, 32 bytes each, the roots of the perfect subtrees of ``2^k`` leaves
    starting at leaf ``i * 2^k`` for every complete one. Level 0 is the leaf hashes.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        parts = []
        for i, h in enumerate(leaf_hashes):
            if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
                _check_hash(h, f"leaf hash {i}")
            parts.append(h)
        self._levels: list[bytearray] = []
        self._build(bytearray(b"".join(parts)))

    @classmethod
    def from_concatenated(cls, leaf_hashes: bytes) -> MerkleTree:
        """The tree of leaf hashes given end to end, 32 bytes each."""
        if len(leaf_hashes) % HASH_SIZE:
            raise ProofError(f"{len(leaf_hashes)} bytes is not a whole number of leaf hashes")
        tree = cls()
        tree._build(bytearray(leaf_hashes))
        return tree

    def _build(self, level: bytearray) -> None:
        if len(level) // HASH_SIZE > MAX_TREE_SIZE:  # pragma: no cover - cannot fit in memory
            raise ProofError("more than 2^64-1 leaves")
        self._levels = [level]
        while len(level) >= 2 * HASH_SIZE:
            level = _hash_pairs(level)
            self._levels.append(level)

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def __len__(self) -> int:
        return self.size

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash: O(1) hashes amortized, O(log n) at worst."""
        data = _check_hash(leaf, "leaf hash")
        if self.size >= MAX_TREE_SIZE:
            raise ProofError("the tree is full (2^64-1 leaves)")
        levels = self._levels
        levels[0] += data
        k = 0
        while (len(levels[k]) // HASH_SIZE) % 2 == 0:
            end = len(levels[k])
            parent = node_hash(bytes(levels[k][end - 2 * HASH_SIZE:end - HASH_SIZE]),
                               bytes(levels[k][end - HASH_SIZE:end]))
            if k + 1 == len(levels):
                levels.append(bytearray())
            levels[k + 1] += parent
            k += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def leaf_hash(self, index: int) -> bytes:
        index = self._check_index(index, self.size)
        return bytes(self._levels[0][index * HASH_SIZE:(index + 1) * HASH_SIZE])

    def compact_range(self, size: int | None = None) -> CompactRange:
        """The :class:`CompactRange` of the first ``size`` leaves (default: all)."""
        size = self._check_tree_size(size)
        hashes = []
        start = 0
        for k in range(size.bit_length() - 1, -1, -1):
            if size >> k & 1:
                hashes.append(self._perfect(k, start >> k))
                start += 1 << k
        return CompactRange.from_hashes(size, hashes)

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all); ``EMPTY_ROOT`` for size 0."""
        size = self._check_tree_size(size)
        return self._subtree(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 PATH(index, D[size]): sibling hashes from the leaf up to the root."""
        size = self._check_tree_size(size)
        index = self._check_index(index, size)
        proof: list[bytes] = []
        start, n, m = 0, size, index
        # Walk down from the root, remembering each sibling; the PATH lists them bottom-up.
        while n > 1:
            k = _split(n)
            if m < k:
                proof.append(self._subtree(start + k, n - k))
                n = k
            else:
                proof.append(self._subtree(start, k))
                start, n, m = start + k, n - k, m - k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 6962 PROOF(old_size, D[new_size]) = SUBPROOF(old_size, D[new_size], true).

        Empty when ``old_size`` is 0 or equals ``new_size`` (nothing to prove).
        """
        new_size = self._check_tree_size(new_size)
        old_size = _check_size(old_size, "old tree size")
        if old_size > new_size:
            raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
        if old_size in (0, new_size):
            return []
        proof: list[bytes] = []
        start, n, m, whole = 0, new_size, old_size, True
        while m != n:
            k = _split(n)
            if m <= k:
                proof.append(self._subtree(start + k, n - k))
                n = k
            else:
                proof.append(self._subtree(start, k))
                start, n, m, whole = start + k, n - k, m - k, False
        if not whole:
            # The old tree's root is not a node of the new tree: give the subtree it ends in.
            proof.append(self._subtree(start, m))
        proof.reverse()
        return proof

    def _check_tree_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        size = _check_size(size, "tree size")
        if size > self.size:
            raise ProofError(f"tree size {size} is larger than the {self.size} leaves known")
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> int:
        if not isinstance(index, int) or isinstance(index, bool):
            raise ProofError(f"leaf index must be an integer, got {type(index).__name__}")
        if not 0 <= index < size:
            raise ProofError(f"leaf index {index} is not in a tree of {size} leaves")
        return index

    def _perfect(self, level: int, i: int) -> bytes:
        return bytes(self._levels[level][i * HASH_SIZE:(i + 1) * HASH_SIZE])

    def _subtree(self, start: int, n: int) -> bytes:
        """MTH of leaves ``[start, start + n)``, ``n >= 1``, from stored perfect subtrees.

        Every range the RFC recursion asks for starts at a multiple of the largest power of
        two not above its length, so its perfect parts are stored nodes.
        """
        if n & (n - 1) == 0 and start % n == 0:
            return self._perfect(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self._subtree(start, k), self._subtree(start + k, n - k))


def _hash_pairs(level: bytearray) -> bytearray:
    """The next level up: one node hash per complete pair, an odd last hash left out."""
    out = bytearray()
    sha256 = hashlib.sha256
    view = memoryview(level)
    for off in range(0, len(level) - 2 * HASH_SIZE + 1, 2 * HASH_SIZE):
        out += sha256(_NODE_PREFIX + view[off:off + 2 * HASH_SIZE]).digest()
    return out


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 section 2.1 over the given leaf hashes; O(n)."""
    return MerkleTree(leaf_hashes).root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962 section 2.1.1, n = len(leaf_hashes); O(n)."""
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 6962 section 2.1.2 over the first new_size leaves.

    ``leaf_hashes`` must hold at least ``new_size`` hashes; O(new_size).
    """
    new_size = _check_size(new_size, "new tree size")
    if new_size > len(leaf_hashes):
        raise ProofError(f"new tree size {new_size} is larger than the "
                         f"{len(leaf_hashes)} leaf hashes given")
    return MerkleTree(leaf_hashes[:new_size]).consistency_proof(old_size, new_size)


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TREE_SIZE


def _is_hash(value: object) -> TypeGuard[bytes | bytearray]:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def _is_proof(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: is ``leaf_hash`` leaf ``index`` of the tree with ``root``?

    Never raises: every malformed input is ``False``. Note that the algorithm binds the
    index fully but the tree size only through the proof's shape; the size is bound to the
    root by the signed checkpoint that carries both.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_size(index) and _is_size(tree_size)
            and _is_proof(proof)):
        return False
    # 1. leaf_index >= tree_size fails.
    if index >= tree_size:
        return False
    # 2.-3. fn = leaf_index, sn = tree_size - 1, r = hash.
    fn, sn = index, tree_size - 1
    r = bytes(leaf_hash)
    # 4. For each p in inclusion_path:
    for element in proof:
        if not _is_hash(element):
            return False
        p = bytes(element)
        # 4a. sn == 0: more elements than the tree has levels.
        if sn == 0:
            return False
        # 4b. p is a left sibling when fn is a right child or the last node of its level.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # Skip the levels where this node was promoted without a sibling.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        # 4c.
        fn >>= 1
        sn >>= 1
    # 5. All levels used and the root reached.
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree ``(old_size, old_root)`` a prefix of the new one?

    Never raises: every malformed input is ``False``. The cases the RFC algorithm leaves out
    (it needs ``0 < old_size < new_size``) are decided here as follows:

    * ``old_size == 0``: true iff the proof is empty and ``old_root`` is ``EMPTY_ROOT``
      (and so is ``new_root`` if ``new_size`` is 0 too): the empty tree is a prefix of every
      tree, but its root is known;
    * ``old_size == new_size > 0``: true iff the proof is empty and the roots are equal;
    * ``old_size > new_size``: false.
    """
    if not (_is_size(old_size) and _is_size(new_size) and _is_hash(old_root)
            and _is_hash(new_root) and _is_proof(proof)):
        return False
    if old_size > new_size:
        return False
    if old_size == 0:
        return (len(proof) == 0 and old_root == EMPTY_ROOT
                and (new_size > 0 or new_root == EMPTY_ROOT))
    if old_size == new_size:
        return len(proof) == 0 and old_root == new_root
    # 1. An empty consistency_path fails.
    if len(proof) == 0:
        return False
    # 2. If first is an exact power of 2, prepend first_hash (here: start from it, and
    #    take the rest from the proof's first element on; the proof is never copied).
    if old_size & (old_size - 1) == 0:
        first: object = old_root
        rest = islice(proof, 0, None)
    else:
        first = proof[0]
        rest = islice(proof, 1, None)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # 4. Shift out the levels where the old tree's last node is a right child.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = the first value.
    if not _is_hash(first):
        return False
    fr = sr = bytes(first)
    # 6. For each subsequent value c (at most 64 are read: 6a stops a longer proof):
    for element in rest:
        if not _is_hash(element):
            return False
        c = bytes(element)
        # 6a.
        if sn == 0:
            return False
        # 6b.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        # 6c.
        fn >>= 1
        sn >>= 1
    # 7.
    return sn == 0 and fr == old_root and sr == new_root
