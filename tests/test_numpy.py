"""The .npy analyzer: header validation, size checks and pickles inside object arrays."""

from __future__ import annotations

import io
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aivet
from aivet.analyzers.numpy import itemsize, parse_header
from aivet.evidence import Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS
from tests.fixtures import marker_path, marker_shell
from tests.fixtures.pickles import Ops


def _npy(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array, allow_pickle=True)
    else:
        np.lib.format.write_array(buf, array, version=version, allow_pickle=True)
    return buf.getvalue()


def _scan(tmp_path: Path, data: bytes, name: str = "a.npy") -> aivet.Evidence:
    path = tmp_path / name
    path.write_bytes(data)
    return aivet.scan(path)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("array", [np.arange(12, dtype="<f4").reshape(3, 4), np.zeros((0, 5)),
                                   np.array(["ab", "cde"]), np.asfortranarray(np.ones((2, 3), dtype=np.int16)),
                                   np.zeros(3, dtype=[("x", "<f8"), ("y", "<i4", (2,))]), np.float64(3.5)])
def test_clean_arrays_are_analyzed(tmp_path: Path, version: tuple[int, int], array: np.ndarray) -> None:
    evidence = _scan(tmp_path, _npy(np.asarray(array), version))
    assert [a.format for a in evidence.artifacts] == ["numpy"]
    assert evidence.artifacts[0].status.value == "analyzed"
    assert not evidence.findings


def test_object_array_pickle_is_emulated(tmp_path: Path, marker_dir: Path) -> None:
    array = np.array([{"a": 1}, None], dtype=object)
    evidence = _scan(tmp_path, _npy(array))
    assert {f.rule_id for f in evidence.findings} == {"NUMPY-OBJECT-ARRAY"}
    # A hand-made object array whose pickle runs os.system (np.load(allow_pickle=True) would run it).
    header = _npy(np.array([None], dtype=object))
    offset = header.index(b"\n", 10) + 1
    evil = Ops(2).call1("os", "system", marker_shell(marker_dir, "npy")).stop()
    evidence = _scan(tmp_path, header[:offset] + evil, "evil.npy")
    found = {f.rule_id: f for f in evidence.findings}
    assert found["PICKLE-DANGEROUS-GLOBAL"].severity is Severity.CRITICAL
    assert found["PICKLE-DANGEROUS-GLOBAL"].details["global"] == "os.system"
    assert not marker_path(marker_dir, "npy").exists()


def test_structured_dtype_with_object_field_is_a_pickle() -> None:
    assert itemsize([("a", "<f8"), ("b", "|O")]) == (16, True)
    assert itemsize("<U3") == (12, False)
    assert itemsize([("a", "<i4", (2, 3))]) == (24, False)


def test_truncated_and_trailing_data(tmp_path: Path) -> None:
    data = _npy(np.arange(10, dtype="<i8"))
    evidence = _scan(tmp_path, data[:-8], "short.npy")
    assert [f.rule_id for f in evidence.findings] == ["NUMPY-SIZE-MISMATCH"]
    assert evidence.artifacts[0].status.value == "error"
    evidence = _scan(tmp_path, data + b"\x80\x02cos\nsystem\n.", "long.npy")
    assert [f.rule_id for f in evidence.findings] == ["NUMPY-SIZE-MISMATCH"]
    assert "after the array" in evidence.findings[0].message


def _with_header(text: bytes, version: int = 1) -> bytes:
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(text)) + text


@pytest.mark.parametrize("header", [
    b"{'descr': '<f4', 'fortran_order': False}\n",  # missing shape
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}\n",
    b"{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}\n",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n",
    b"__import__('os').system('id')\n",  # not a literal: never evaluated
    b"{'descr': 'zz', 'fortran_order': False, 'shape': (1,)}\n",
    b"[" * 5000 + b"]" * 5000,
])
def test_bad_headers_are_parse_errors(tmp_path: Path, header: bytes) -> None:
    evidence = _scan(tmp_path, _with_header(header))
    assert [f.rule_id for f in evidence.findings] == ["SCAN-PARSE-ERROR"]


def test_huge_header_length_is_bounded(tmp_path: Path) -> None:
    data = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{"
    with pytest.raises(LimitExceeded):
        parse_header(io.BytesIO(data), 1 << 20)
    with pytest.raises(FormatError, match="runs past"):
        parse_header(io.BytesIO(data), 1 << 32)


def test_header_parsed_as_a_literal_is_bounded_by_its_limit(tmp_path: Path) -> None:
    data = _npy(np.arange(4, dtype="<f4"), version=(2, 0))
    (hlen,) = struct.unpack_from("<I", data, 8)
    with pytest.raises(LimitExceeded) as exc:
        parse_header(io.BytesIO(data), 1 << 20, hlen - 1)
    assert exc.value.limit == "max_npy_header_bytes"
    path = tmp_path / "a.npy"
    path.write_bytes(data)
    assert not aivet.scan(path).findings
    evidence = aivet.scan(path, limits=replace(DEFAULT_LIMITS, max_npy_header_bytes=hlen - 1))
    assert [f.details["limit"] for f in evidence.findings if f.rule_id == "SCAN-LIMIT-EXCEEDED"] == [
        "max_npy_header_bytes"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(0, 200), value=st.integers(0, 255), cut=st.integers(0, 300))
def test_mutated_headers_only_raise_format_errors(pos: int, value: int, cut: int) -> None:
    data = bytearray(_npy(np.arange(6, dtype="<f8").reshape(2, 3)))
    data[pos % len(data)] = value
    try:
        header, offset = parse_header(io.BytesIO(bytes(data[:cut])), 1 << 20)
        itemsize(header["descr"])
    except (FormatError, LimitExceeded):
        pass
