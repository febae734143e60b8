"""Merkle tree hashing and proofs: RFC 6962/9162 test vectors, a naive reference, and property tests."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aivet.ledger.merkle import (
    EMPTY_ROOT,
    consistency_ranges,
    fold,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_keys,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

# The leaf inputs and expected values of the Certificate Transparency reference tests (RFC 6962 trees).
LEAVES = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION_0_OF_8 = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]
CONSISTENCY = {
    (1, 8): INCLUSION_0_OF_8,
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}


# -- a naive reference, written straight from the RFC's recursive definitions ------------------------


def mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hash(d[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def stored_nodes(d: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect subtree root, as a store keeps them."""
    out = {(0, i): leaf_hash(x) for i, x in enumerate(d)}
    level = 0
    while True:
        nxt = {}
        for (lvl, i), h in list(out.items()):
            if lvl == level and i % 2 == 0 and (level, i + 1) in out:
                nxt[(level + 1, i // 2)] = node_hash(h, out[(level, i + 1)])
        if not nxt:
            return out
        out.update(nxt)
        level += 1


def via_store(ranges: list[tuple[int, int]], nodes: dict[tuple[int, int], bytes]) -> list[bytes]:
    return [fold([nodes[k] for k in range_keys(a, b)]) for a, b in ranges]


# -- vectors ----------------------------------------------------------------------------------------------


def test_rfc6962_roots() -> None:
    assert mth([]) == EMPTY_ROOT == root_from_leaves([])
    for n in range(1, 9):
        assert mth(LEAVES[:n]).hex() == ROOTS[n - 1]
        assert root_from_leaves([leaf_hash(x) for x in LEAVES[:n]]).hex() == ROOTS[n - 1]


def test_rfc6962_inclusion_and_consistency_vectors() -> None:
    nodes = stored_nodes(LEAVES)
    assert [h.hex() for h in via_store(inclusion_ranges(0, 8), nodes)] == INCLUSION_0_OF_8
    for (m, n), expected in CONSISTENCY.items():
        got = via_store(consistency_ranges(m, n), nodes)
        assert [h.hex() for h in got] == expected
        assert verify_consistency(m, n, bytes.fromhex(ROOTS[m - 1]), bytes.fromhex(ROOTS[n - 1]), got)


# -- the storage-backed computation equals the RFC definitions ------------------------------------------


@pytest.mark.parametrize("n", range(1, 70))
def test_store_backed_proofs_match_the_reference(n: int) -> None:
    d = [i.to_bytes(4, "big") for i in range(n)]
    nodes = stored_nodes(d)
    root = mth(d)
    assert via_store([(0, n)], nodes) == [root]
    for m in range(n):
        proof = via_store(inclusion_ranges(m, n), nodes)
        assert proof == path(m, d)
        assert verify_inclusion(leaf_hash(d[m]), m, n, proof, root)
        assert not verify_inclusion(leaf_hash(b"x"), m, n, proof, root)
        if proof:
            assert not verify_inclusion(leaf_hash(d[m]), m, n, proof[:-1], root)
            assert not verify_inclusion(leaf_hash(d[m]), (m + 1) % n, n, proof, root) or n == 1
    for m in range(1, n + 1):
        proof = via_store(consistency_ranges(m, n), nodes)
        assert proof == (subproof(m, d, True) if m < n else [])
        assert verify_consistency(m, n, mth(d[:m]), root, proof)
        if m < n:
            assert not verify_consistency(m, n, mth(d[:m]), node_hash(root, root), proof)
            assert not verify_consistency(m, n, leaf_hash(b"other"), root, proof)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3000), st.data())
def test_random_trees(n: int, data: st.DataObject) -> None:
    d = [i.to_bytes(4, "big") for i in range(n)]
    leaves = [leaf_hash(x) for x in d]
    root = root_from_leaves(leaves)
    m = data.draw(st.integers(0, n - 1))
    nodes = stored_nodes(d) if n <= 300 else None
    if nodes is not None:
        proof = via_store(inclusion_ranges(m, n), nodes)
        assert verify_inclusion(leaves[m], m, n, proof, root)
    old = data.draw(st.integers(1, n))
    if nodes is not None:
        cproof = via_store(consistency_ranges(old, n), nodes)
        assert verify_consistency(old, n, root_from_leaves(leaves[:old]), root, cproof)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.lists(st.binary(min_size=0, max_size=40), max_size=12), st.binary(max_size=40), st.binary(max_size=40))
def test_verifiers_never_raise_on_garbage(i: int, n: int, proof: list[bytes], a: bytes, b: bytes) -> None:
    assert verify_inclusion(a, i, n, proof, b) in (True, False)
    assert verify_consistency(i, n, a, b, proof) in (True, False)


def test_invalid_ranges_are_refused() -> None:
    with pytest.raises(ValueError):
        inclusion_ranges(5, 5)
    with pytest.raises(ValueError):
        consistency_ranges(6, 5)
    with pytest.raises(ValueError):
        range_keys(3, 7)  # not aligned: not a range of an RFC tree
    with pytest.raises(ValueError):
        fold([])
