"""Merkle tree hashing and proofs as specified by RFC 9162 (Certificate Transparency 2.0), section 2.1.

Pure functions over hashes; no storage. The tree over ``n`` leaves is the
RFC's ``MTH(D[n])``: leaves hash as ``SHA-256(0x00 || data)`` and interior
nodes as ``SHA-256(0x01 || left || right)``, the left subtree always holding
the largest power of two strictly below ``n`` leaves.

Every hash a proof needs is the root of a *range* of leaves, and every such
range splits into perfect, aligned subtrees (a power-of-two number of leaves
starting at a multiple of that power). A store that keeps each perfect
subtree's root, keyed by ``(level, index)`` (``level`` = log2 of its leaf
count), can therefore answer any root or proof with O(log n) lookups:
:func:`range_keys` names the lookups, :func:`fold` combines them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

__all__ = [
    "HASH_SIZE",
    "leaf_hash",
    "node_hash",
    "range_keys",
    "fold",
    "inclusion_ranges",
    "consistency_ranges",
    "verify_inclusion",
    "verify_consistency",
    "root_from_leaves",
    "NodeKey",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
NodeKey = tuple[int, int]  # (level, index): the perfect subtree over leaves [index << level, (index + 1) << level)


def leaf_hash(data: bytes) -> bytes:
    """``MTH({d}) = SHA-256(0x00 || d)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_keys(start: int, end: int) -> list[NodeKey]:
    """The perfect subtrees that make up leaves ``[start, end)``, left to right, largest first.

    Only ranges that arise in RFC 9162 trees are valid: ``start`` must be a
    multiple of every subtree size used, which holds for ``start = 0`` and for
    every range :func:`inclusion_ranges` and :func:`consistency_ranges` return.
    """
    if not 0 <= start < end:
        raise ValueError(f"empty or negative leaf range [{start}, {end})")
    keys: list[NodeKey] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start & ((1 << level) - 1):
            raise ValueError(f"leaf range [{start}, {end}) is not aligned to its subtrees")
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the roots of :func:`range_keys` (in that order) into the range's root."""
    if not hashes:
        raise ValueError("no subtree hashes to combine")
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def range_root(start: int, end: int, nodes: Mapping[NodeKey, bytes]) -> bytes:
    """The root over leaves ``[start, end)`` from perfect-subtree roots."""
    return fold([nodes[k] for k in range_keys(start, end)])


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose roots form the inclusion proof ``PATH(index, D[size])``, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose roots form the consistency proof ``PROOF(old_size, D[new_size])``."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    out: list[tuple[int, int]] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:
        size = end - start
        if m == size:
            if not complete:
                out.append((start, end))
            break
        k = _split(size)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
            m -= k
            complete = False
    out.reverse()
    return out


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` show leaf hash ``leaf`` at ``index`` in the tree with ``root``?"""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree ``new_root`` an append-only extension of ``old_root``?"""
    if not 0 <= old_size <= new_size or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof  # the empty tree is a prefix of every tree
    if not proof:
        return False
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
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """The root over leaf hashes, computed with a stack in O(n) time and O(log n) memory."""
    if not leaves:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        level, h = 0, leaf
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))
    return fold([h for _, h in stack])
