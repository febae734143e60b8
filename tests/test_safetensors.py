"""Safetensors: header-only reading, layout checks, metadata checks, bounded on hostile input."""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import aivet
from aivet.analyzers import safetensors as scan_st
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.source import Source
from aivet.evidence import Finding, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.formats import safetensors as st
from aivet.limits import Limits
from tests.fixtures import safetensors_files as fx
from tests.fixtures import unmet_expectation
from tests.fixtures.work import HANG_TIMEOUT, count_file_reads


def run(data: bytes, limits: Limits | None = None) -> list[Finding]:
    ctx = Context("t", ScanOptions(limits=limits or Limits()))
    scan_st.analyze(Source.from_bytes(data, "m.safetensors"), ctx)
    return ctx.findings


def rule_ids(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list:
    return fx.build(tmp_path_factory.mktemp("st"), tmp_path_factory.mktemp("markers"))


def test_corpus_samples_meet_their_expectations(samples: list) -> None:
    problems = [unmet_expectation(s, aivet.scan(s.path), clean_below=Severity.LOW) for s in samples]
    assert not any(problems), [p for p in problems if p]


def test_clean_file_has_no_findings_and_reports_tensor_count() -> None:
    ctx = Context("t")
    outcome = scan_st.analyze(Source.from_bytes(fx.st_bytes(fx.clean_header(), bytes(32)), "m.safetensors"), ctx)
    assert ctx.findings == []
    assert outcome.format == "safetensors" and outcome.note == "2 tensors"


def test_reference_writer_output_is_clean(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    path = tmp_path / "ref.safetensors"
    assert fx.write_reference(path)
    assert run(path.read_bytes()) == []


def test_reference_writer_dtypes_are_all_known(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    save_file = pytest.importorskip("safetensors.numpy").save_file
    arrays = {str(dt): np.zeros(3, dtype=dt) for dt in
              (np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.float16, np.int32, np.uint32, np.float32,
               np.float64, np.int64, np.uint64, np.complex64)}
    path = tmp_path / "all.safetensors"
    save_file(arrays, str(path))
    assert run(path.read_bytes()) == []


def test_header_claiming_100_gb_allocates_nothing() -> None:
    data = fx.st_bytes(fx.clean_header(), bytes(32), header_len=100 * 10**9)
    tracemalloc.start()
    with pytest.raises(FormatError, match="header claims"):
        run(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000


def test_header_over_the_limit_is_a_limit_not_a_read() -> None:
    data = fx.st_bytes(fx.clean_header(), bytes(32))
    with pytest.raises(LimitExceeded) as exc:
        run(data, Limits(max_header_bytes=16))
    assert exc.value.limit == "max_header_bytes"


@pytest.mark.parametrize("raw, why", [
    (b"\x01\x00", "too short"),
    (struct.pack("<Q", 4) + b"[1] ", "start with '{'"),
    (struct.pack("<Q", 4) + b"{\"a\"", "not valid JSON"),
    (struct.pack("<Q", 2) + b"\xff\xfe", "start with"),
    (struct.pack("<Q", 3) + b"{\xff}", "not UTF-8"),
    (struct.pack("<Q", 13) + b'{"a":NaN}    ', "not valid JSON"),
])
def test_malformed_headers_are_format_errors(raw: bytes, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        run(raw)


def test_trailing_spaces_in_the_header_are_allowed() -> None:
    header = json.dumps(fx.clean_header()) + " " * 13
    assert run(fx.st_bytes(header, bytes(32))) == []


def test_duplicate_keys_inside_a_tensor_entry_are_found() -> None:
    header = '{"a":{"dtype":"F32","dtype":"I32","shape":[4],"data_offsets":[0,16]}}'
    findings = run(fx.st_bytes(header, bytes(16)))
    assert "SAFETENSORS-DUPLICATE-KEY" in rule_ids(findings)


@pytest.mark.parametrize("entry, text", [
    ([1, 2], "not an object"),
    ({"dtype": "F32", "shape": [4]}, "missing field"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "hidden": "x"}, "unexpected field"),
    ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "shape"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}, "after end"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0]}, "data_offsets"),
    ({"dtype": 3, "shape": [4], "data_offsets": [0, 16]}, "dtype"),
    ({"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}, "whole number of bytes"),
])
def test_malformed_tensor_entries(entry: object, text: str) -> None:
    findings = run(fx.st_bytes({"a": entry}, bytes(16)))
    assert any(f.rule_id == "SAFETENSORS-MALFORMED-TENSOR" and text in f.message for f in findings), findings


def test_sub_byte_dtypes_use_bits() -> None:
    assert run(fx.st_bytes(fx.tensors(("a", "F4", [4, 2], 0, 4)), bytes(4))) == []
    assert run(fx.st_bytes(fx.tensors(("a", "F6_E2M3", [4], 0, 3)), bytes(3))) == []


def test_trailing_pickle_is_high_and_names_the_format(tmp_path: Path) -> None:
    data = fx.st_bytes(fx.clean_header(), bytes(32)) + fx.pickle_payload(tmp_path, "x")
    findings = [f for f in run(data) if f.rule_id == "SAFETENSORS-TRAILING-DATA"]
    assert len(findings) == 1
    assert findings[0].severity is Severity.HIGH and findings[0].details["content"] == "pickle"


def test_trailing_junk_is_medium() -> None:
    findings = run(fx.st_bytes(fx.clean_header(), bytes(32)) + b"\x07" * 40)
    (finding,) = [f for f in findings if f.rule_id == "SAFETENSORS-TRAILING-DATA"]
    assert finding.severity is Severity.MEDIUM and finding.details["length"] == 40


def test_zero_sized_tensors_do_not_overlap() -> None:
    header = fx.tensors(("e", "F32", [0], 0, 0), ("a", "F32", [4], 0, 16), ("z", "F32", [0, 3], 16, 16))
    assert run(fx.st_bytes(header, bytes(16))) == []


@pytest.mark.parametrize("metadata, text, severity", [
    ({"format": "exe"}, "expected one of", Severity.LOW),
    ({"note": "x" * 70_000}, "characters long", Severity.LOW),
    ({"note": "ok\x01\x02"}, "control characters", Severity.LOW),
    ({"blob": "PK\u0003\u0004rest-of-zip"}, "zip archive", Severity.HIGH),
])
def test_suspicious_metadata(metadata: dict, text: str, severity: Severity) -> None:
    header = {"__metadata__": metadata, **fx.tensors(("a", "F32", [1], 0, 4))}
    (finding,) = run(fx.st_bytes(header, bytes(4)))
    assert finding.rule_id == "SAFETENSORS-SUSPICIOUS-METADATA" and text in finding.message
    assert finding.severity is severity


def test_metadata_must_be_an_object() -> None:
    header = {"__metadata__": ["pt"], **fx.tensors(("a", "F32", [1], 0, 4))}
    assert rule_ids(run(fx.st_bytes(header, bytes(4)))) == {"SAFETENSORS-BAD-METADATA"}


def test_findings_per_rule_are_capped() -> None:
    header = {f"t{i}": {"dtype": "X", "shape": [1], "data_offsets": [0, 0]} for i in range(100)}
    findings = run(fx.st_bytes(header, b""))
    dtype = [f for f in findings if f.rule_id == "SAFETENSORS-UNKNOWN-DTYPE"]
    assert len(dtype) == scan_st.MAX_PER_RULE + 1
    assert dtype[-1].details["omitted"] == 100 - scan_st.MAX_PER_RULE


@pytest.mark.timeout(HANG_TIMEOUT)
def test_ten_gigabytes_of_shards_are_scanned_by_their_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sparse 512 MiB shards: only the headers are read (counted, not timed)."""
    shard = 512 * 1024 * 1024
    for i in range(20):
        header = {"__metadata__": {"format": "pt"}}
        header.update({f"layer.{j}.weight": {"dtype": "BF16", "shape": [shard // 64 // 2],
                                             "data_offsets": [j * shard // 64, (j + 1) * shard // 64]}
                       for j in range(64)})
        prefix = fx.st_bytes(header, b"")
        path = tmp_path / f"model-{i:05d}-of-00020.safetensors"
        with open(path, "wb") as fh:
            fh.write(prefix)
            fh.truncate(len(prefix) + shard)
    assert sum(os.path.getsize(p) for p in tmp_path.iterdir()) > 10 * 10**9
    tally = count_file_reads(monkeypatch, tmp_path)
    evidence = aivet.scan(tmp_path)
    assert evidence.findings == () and len(evidence.artifacts) == 20
    assert tally.opens >= 20  # every shard was opened through the counter
    # Each shard's header (about 6 KiB) plus read-ahead; reading the weights would be 10 GiB.
    assert tally.bytes_read <= 20 * 256 * 1024, tally


# -- property tests: hostile bytes never escape as anything but FormatError / LimitExceeded ---------

def _check_bounded(data: bytes) -> None:
    try:
        run(data, Limits(max_header_bytes=1 << 16))
    except (FormatError, LimitExceeded):
        pass


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.binary(max_size=512))
def test_random_bytes_are_bounded(data: bytes) -> None:
    _check_bounded(data)


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.data())
def test_mutated_files_are_bounded(data: hs.DataObject) -> None:
    base = bytearray(fx.st_bytes(fx.clean_header(), bytes(32)))
    for _ in range(data.draw(hs.integers(1, 8))):
        i = data.draw(hs.integers(0, len(base) - 1))
        base[i] = data.draw(hs.integers(0, 255))
    cut = data.draw(hs.integers(0, len(base)))
    _check_bounded(bytes(base[:cut]))


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None)
@given(hs.recursive(hs.none() | hs.booleans() | hs.integers(-(2**70), 2**70) | hs.text(max_size=8),
                    lambda c: hs.lists(c, max_size=4) | hs.dictionaries(hs.text(max_size=6), c, max_size=4),
                    max_leaves=20))
def test_random_json_headers_are_bounded(value: object) -> None:
    header = {"a": value, "__metadata__": value, "b": {"dtype": "F32", "shape": value, "data_offsets": value}}
    _check_bounded(fx.st_bytes(header, bytes(16)))


def test_parse_tensor_never_trusts_types() -> None:
    assert isinstance(st.parse_tensor("a", {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}), str)
    assert isinstance(st.parse_tensor("a", {"dtype": "F32", "shape": [1], "data_offsets": [0, 2**64]}), str)
