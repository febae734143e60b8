"""Parallel, bounded hashing: same digests as a plain hashlib loop, shards, walk rules, cache."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.errors import ArtifactError, UsageError
from aivet.provenance import hashing


def _tree(root: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    out = {}
    for name, size in sizes.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        p.write_bytes(data)
        out[name] = data
    return out


def test_parallel_digests_equal_hashlib(tmp_path: Path) -> None:
    files = _tree(tmp_path, {"a.bin": 9 * 1024 * 1024 + 7, "b/c.bin": 0, "b/d.txt": 10, "e": 5 * 1024 * 1024})
    entries = hashing.walk(tmp_path)
    assert [e.name for e in entries] == ["a.bin", "b/c.bin", "b/d.txt", "e"]
    for algorithm in ("sha256", "blake2b"):
        digests = hashing.hash_units(hashing.units_for(entries, None), algorithm, workers=4, buffer_size=1 << 20)
        want = [hashlib.new(algorithm, files[e.name]).digest() for e in entries]
        assert digests == want


def test_shards_match_spec_ranges(tmp_path: Path) -> None:
    files = _tree(tmp_path, {"big": 1000, "empty": 0})
    units = hashing.units_for(hashing.walk(tmp_path), 300)
    assert [u.name for u in units] == ["big:0:300", "big:300:600", "big:600:900", "big:900:1000", "empty:0:0"]
    digests = hashing.hash_units(units, "sha256", workers=3)
    assert digests[1] == hashlib.sha256(files["big"][300:600]).digest()
    assert digests[4] == hashlib.sha256(b"").digest()


def test_progress_counts_every_byte(tmp_path: Path) -> None:
    _tree(tmp_path, {"x": 3_000_000, "y": 1234})
    seen: list[int] = []
    lock = threading.Lock()

    def progress(n: int) -> None:
        with lock:
            seen.append(n)

    hashing.hash_units(hashing.units_for(hashing.walk(tmp_path), 1 << 20), "sha256", progress=progress, workers=2)
    assert sum(seen) == 3_001_234


def test_blake3_if_available(tmp_path: Path) -> None:
    blake3 = pytest.importorskip("blake3")
    files = _tree(tmp_path, {"x": 100_000})
    [d] = hashing.hash_units(hashing.units_for(hashing.walk(tmp_path), None), "blake3")
    assert d == blake3.blake3(files["x"]).digest()


def test_unknown_algorithm(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        hashing.hash_units([], "md5")


def test_ignore_rules_are_directory_aware() -> None:
    assert hashing.is_ignored(".git/objects/ab", [".git"])
    assert hashing.is_ignored("model.sig", ["model.sig"])
    assert not hashing.is_ignored(".gitignore2", [".gitignore"])
    assert not hashing.is_ignored("sub/.git", [".git"])  # ignore paths are relative to the root
    assert not hashing.is_ignored("x", ["../x"])


def test_walk_refuses_links_and_special_files(tmp_path: Path) -> None:
    model = tmp_path / "m"
    _tree(model, {"a": 1})
    (model / "inside").symlink_to(model / "a")
    with pytest.raises(ArtifactError, match="symbolic link"):
        hashing.walk(model)
    assert [e.name for e in hashing.walk(model, allow_symlinks=True)] == ["a", "inside"]
    (model / "escape").symlink_to(tmp_path)
    with pytest.raises(ArtifactError, match="leaves the model directory"):
        hashing.walk(model, allow_symlinks=True)
    (model / "escape").unlink()
    (model / "loop").symlink_to(model / "loop")
    with pytest.raises(ArtifactError, match="broken or looping"):
        hashing.walk(model, allow_symlinks=True)
    (model / "loop").unlink()
    os.mkfifo(model / "fifo")
    with pytest.raises(ArtifactError, match="pipe"):
        hashing.walk(model, allow_symlinks=True)


def test_walk_max_files(tmp_path: Path) -> None:
    _tree(tmp_path, {f"f{i}": 1 for i in range(20)})
    with pytest.raises(ArtifactError, match="max_files"):
        hashing.walk(tmp_path, max_files=10)


def test_file_shrinking_during_hash_is_an_error(tmp_path: Path) -> None:
    _tree(tmp_path, {"x": 5000})
    [entry] = hashing.walk(tmp_path)
    (tmp_path / "x").write_bytes(b"short")
    with pytest.raises(ArtifactError, match="changed size"):
        hashing.hash_units([hashing.Unit(entry)], "sha256")


def test_cache_reuses_only_unchanged_files(tmp_path: Path) -> None:
    model = tmp_path / "m"
    _tree(model, {"a": 100, "b": 200})
    cache_path = tmp_path / "cache.json"
    units = hashing.units_for(hashing.walk(model), None)
    first = hashing.hash_with_cache(units, "sha256", cache=hashing.DigestCache(cache_path))
    (model / "b").write_bytes(b"new content")
    units = hashing.units_for(hashing.walk(model), None)
    cache = hashing.DigestCache(cache_path)
    second = hashing.hash_with_cache(units, "sha256", cache=cache)
    assert cache.hits == 1 and second[0] == first[0]
    assert second[1] == hashlib.sha256(b"new content").digest()
    # a different algorithm never reuses a digest
    cache = hashing.DigestCache(cache_path)
    hashing.hash_with_cache(units, "blake2b", cache=cache)
    assert cache.hits == 0


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    _tree(tmp_path / "m", {"a": 10})
    (tmp_path / "c.json").write_text('{"version": 1, "entries": {"sha256\\u0000a": {"stamp": 1, "digest": "zz"}}')
    units = hashing.units_for(hashing.walk(tmp_path / "m"), None)
    [d] = hashing.hash_with_cache(units, "sha256", cache=hashing.DigestCache(tmp_path / "c.json"))
    assert d == hashlib.sha256((tmp_path / "m" / "a").read_bytes()).digest()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=5000), shard=st.integers(min_value=1, max_value=6000))
def test_shards_reassemble_any_file(tmp_path: Path, data: bytes, shard: int) -> None:
    p = tmp_path / "f"
    p.write_bytes(data)
    units = hashing.units_for(hashing.walk(tmp_path), shard)
    assert units[0].start == 0 and units[-1].end == len(data)
    assert all(a.end == b.start for a, b in zip(units, units[1:], strict=False))
    digests = hashing.hash_units(units, "sha256", workers=2, buffer_size=7)
    assert digests == [hashlib.sha256(data[u.start: u.end]).digest() for u in units]


def test_directory_link_loop_terminates(tmp_path: Path) -> None:
    model = tmp_path / "m"
    _tree(model, {"sub/a": 1})
    (model / "sub" / "up").symlink_to(model)
    with pytest.raises(ArtifactError, match="loop"):
        hashing.walk(model, allow_symlinks=True)


def test_blake3_one_big_file_uses_tree_threads(tmp_path: Path) -> None:
    blake3 = pytest.importorskip("blake3")
    files = _tree(tmp_path, {"big": 3 * 1024 * 1024 + 5, "small": 10})
    entries = hashing.walk(tmp_path)
    digests = hashing.hash_units(hashing.units_for(entries, None), "blake3", workers=4)
    assert digests == [blake3.blake3(files[e.name]).digest() for e in entries]


def test_memory_is_bounded_for_a_large_file(tmp_path: Path) -> None:
    import tracemalloc

    big = tmp_path / "sparse.bin"
    with open(big, "wb") as fh:
        fh.truncate(96 * 1024 * 1024)  # sparse: reading it costs no disk, only hashing
    units = hashing.units_for(hashing.walk(tmp_path), 32 * 1024 * 1024)
    tracemalloc.start()
    try:
        digests = hashing.hash_units(units, "sha256", workers=2, buffer_size=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digests[0] == hashlib.sha256(bytes(32 * 1024 * 1024)).digest()
    assert peak < 8 * 1024 * 1024  # two 1 MiB buffers and bookkeeping, not the file
