"""Property tests: mutated archive bytes give findings or FormatError/LimitExceeded, quickly, never a crash."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import lzma
import pickle
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.analyzers import archive
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import Limits
from tests.fixtures.archives import RawMember, raw_zip, tar_bytes, two_directory_zip, zip_bytes
from tests.fixtures.work import HANG_TIMEOUT

# Hostile archives must never hang a reader: a hang fails the test, a slow machine does not.
pytestmark = pytest.mark.timeout(HANG_TIMEOUT)

_PICKLE = pickle.dumps({"a": [1, 2, 3], "b": "text"}, protocol=2)
# Small limits so that mutations which inflate sizes hit the bounds instead of using memory.
_LIMITS = Limits(max_member_bytes=1 << 20, max_total_uncompressed=2 << 20, in_memory_member_bytes=1 << 16,
                 max_archive_members=64, max_archive_depth=3)
_TINY_MEMORY = dataclasses.replace(_LIMITS, in_memory_member_bytes=16)
_SEEDS: dict[str, tuple[bytes, Callable[[Source, Context], Outcome]]] = {
    "zip-deflate": (zip_bytes({"a/data.pkl": _PICKLE, "b.txt": b"hello " * 20}), archive.analyze_zip),
    "zip-stored": (zip_bytes({"archive/data.pkl": _PICKLE, "archive/data/0": b"\x00" * 16,
                              "archive/version": b"3\n"}, zipfile.ZIP_STORED), archive.analyze_zip),
    # zipfile refuses these and the lenient (PyTorch-like) reader takes over: mutations exercise it.
    "zip-lenient": (raw_zip([RawMember(b"archive/data.pkl", _PICKLE, method=zipfile.ZIP_DEFLATED),
                             RawMember(b"archive/version", b"3\n")], cd_junk=b"junk"), archive.analyze_zip),
    "zip-lenient-tail": (raw_zip([RawMember(b"archive/data.pkl", _PICKLE)], tail=b"PK\x05\x06"),
                         archive.analyze_zip),
    "zip-two-directories": (two_directory_zip([RawMember(b"a/data.pkl", _PICKLE), RawMember(b"a/version", b"3")],
                                              [RawMember(b"a/data.pkl", b"x"), RawMember(b"a/version", b"3")],
                                              zip64=True), archive.analyze_zip),
    "zip-bzip2": (zip_bytes({"x.pkl": _PICKLE}, zipfile.ZIP_BZIP2), archive.analyze_zip),
    "tar": (tar_bytes({"m.pkl": _PICKLE, "n.txt": b"words"}, {"l": ("m.pkl", tarfile.SYMTYPE)}), archive.analyze_tar),
    "tar-legacy-torch": (tar_bytes({"sys_info": _PICKLE, "pickle": _PICKLE, "storages": _PICKLE}), archive.analyze_tar),
    # storages/tensors laid out as torch's legacy loader reads them: pickles between raw blocks.
    "tar-legacy-records": (tar_bytes({
        "pickle": _PICKLE,
        "storages": pickle.dumps(1, protocol=2) + pickle.dumps((0, "cpu", "FloatStorage"), protocol=2)
        + struct.pack("<q", 2) + bytes(8) + pickle.dumps([], protocol=2),
        "tensors": pickle.dumps(1, protocol=2) + pickle.dumps((0, 0, "T"), protocol=2)
        + struct.pack("<ii", 1, 0) + struct.pack("<qqq", 2, 1, 0)}), archive.analyze_tar),
    "gzip": (gzip.compress(_PICKLE), archive.analyze_compressed),
    "bz2": (bz2.compress(_PICKLE), archive.analyze_compressed),
    "xz": (lzma.compress(_PICKLE), archive.analyze_compressed),
    "zlib": (zlib.compress(_PICKLE), archive.analyze_compressed),
}
try:
    import py7zr
except ModuleNotFoundError:  # optional extra
    py7zr = None
if py7zr is not None:
    _out = io.BytesIO()
    with py7zr.SevenZipFile(_out, "w") as _seven:
        _seven.writestr(_PICKLE, "m.pkl")
        _seven.writestr(b"hello " * 30, "t.txt")
    _SEEDS["7z"] = (_out.getvalue(), archive.analyze_7z)
_OURS = {"zip", "tar", "gzip", "bzip2", "xz", "zlib", "lz4", "7z", "pytorch-zip", "torchscript",
         "pytorch-legacy-tar", "npz", "keras", "archive"}


def _run(data: bytes, analyzer: Callable[[Source, Context], Outcome], limits: Limits = _LIMITS) -> None:
    ctx = Context(subject="p", options=ScanOptions(limits=limits))
    try:
        analyzer(Source.from_bytes(data, "f"), ctx)
    except (FormatError, LimitExceeded):
        pass
    # Nested members go through the engine, which turns any bug into an "internal" finding:
    # none of those may come from the archive readers themselves.
    internal = [f for f in ctx.findings if f.details.get("internal") and f.details.get("format") in _OURS]
    assert not internal, internal


_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, Callable[[Source, Context], Outcome], Limits]:
    seed, analyzer = _SEEDS[draw(st.sampled_from(sorted(_SEEDS)))]
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "u32"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            data = data[:pos]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "u32" and len(data) > pos + 4:
            data[pos:pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00"]))
    # A tiny in-memory bound sends members down the spill-to-file and read-in-place paths.
    limits = _TINY_MEMORY if draw(st.booleans()) else _LIMITS
    return bytes(data), analyzer, limits


@_settings
@given(mutated())
def test_mutated_archives_never_crash(case: tuple[bytes, Callable[[Source, Context], Outcome], Limits]) -> None:
    data, analyzer, limits = case
    _run(data, analyzer, limits)


@_settings
@given(st.binary(max_size=512), st.sampled_from(sorted(_SEEDS)))
def test_random_bytes_never_crash(data: bytes, seed: str) -> None:
    _, analyzer = _SEEDS[seed]
    _run(data, analyzer)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=256))
def test_random_zip_prefixes(prefix: bytes) -> None:
    # Anything glued in front of a zip: a prepended-data finding or a parse error, never a crash.
    seed, _ = _SEEDS["zip-stored"]
    _run(prefix + seed, archive.analyze_zip)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=2000),
       reads=st.lists(st.tuples(st.integers(0, 2100), st.integers(0, 700)), max_size=40))
def test_zip_read_ahead_reads_what_the_file_holds(tmp_path: object, data: bytes, reads: list[tuple[int, int]]) -> None:
    """The local-header reader's window never changes a read: on a file (pread) and a stream alike."""
    from pathlib import Path

    from aivet.analyzers.archive_zip import _ReadAhead

    path = Path(str(tmp_path)) / "f.bin"
    path.write_bytes(data)
    with path.open("rb") as fh:
        on_file, on_stream = _ReadAhead(fh).read, _ReadAhead(io.BytesIO(data)).read
        for offset, n in reads:
            assert on_file(offset, n) == on_stream(offset, n) == data[offset:offset + n]
