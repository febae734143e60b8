"""GGUF: bounded header parsing, metadata and tensor checks, embedded chat templates."""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import aivet
from aivet.analyzers import gguf as scan_gguf
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.source import Source
from aivet.evidence import Finding, Severity
from aivet.formats import FormatError, LimitExceeded, gguf
from aivet.limits import Limits
from tests.fixtures import gguf_files as fx
from tests.fixtures import unmet_expectation
from tests.fixtures.gguf_files import ARRAY, BOOL, F32, STRING, U8, U32, GGUFSpec, Tensor, gguf_bytes
from tests.fixtures.templates import CHATML, payloads
from tests.fixtures.work import HANG_TIMEOUT, growth, memory_peak, python_lines


def run(data: bytes, limits: Limits | None = None) -> list[Finding]:
    ctx = Context("t", ScanOptions(limits=limits or Limits()))
    scan_gguf.analyze(Source.from_bytes(data, "m.gguf"), ctx)
    return ctx.findings


def parse(data: bytes, limits: Limits | None = None) -> gguf.GGUFFile:
    return gguf.read_gguf(io.BytesIO(data), len(data), limits or Limits())


def rule_ids(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


def spec_with(**changes: object) -> GGUFSpec:
    spec = fx.clean_spec()
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list:
    return fx.build(tmp_path_factory.mktemp("gguf"), tmp_path_factory.mktemp("markers"))


def test_corpus_samples_meet_their_expectations(samples: list) -> None:
    problems = [unmet_expectation(s, aivet.scan(s.path), clean_below=Severity.LOW) for s in samples]
    assert not any(problems), [p for p in problems if p]


def test_llama_cpp_writer_file_parses_exactly(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    path = tmp_path / "real.gguf"
    assert fx.write_with_llama_cpp_writer(path)
    data = path.read_bytes()
    parsed = parse(data)
    assert parsed.version == 3 and parsed.byte_order == "<"
    assert parsed.get("general.architecture") is not None
    assert parsed.get("general.architecture").text() == "llama"  # type: ignore[union-attr]
    assert parsed.get("tokenizer.chat_template").text() == CHATML  # type: ignore[union-attr]
    tokens = parsed.get("tokenizer.ggml.tokens")
    assert tokens is not None and isinstance(tokens.value, gguf.ArrayValue) and tokens.value.count == 4
    assert [(t.name, t.dims, t.ggml_type) for t in parsed.tensors] == [
        ("token_embd.weight", (8, 4), 0), ("output.weight", (8, 4), 1)]
    assert parsed.data_start % 32 == 0
    last = parsed.tensors[-1]
    assert parsed.data_start + last.offset + (last.nbytes() or 0) <= len(data)
    assert run(data) == []


def test_handwritten_clean_file_round_trips() -> None:
    parsed = parse(gguf_bytes(fx.clean_spec()))
    scores = parsed.get("tokenizer.ggml.scores")
    assert scores is not None and isinstance(scores.value, gguf.ArrayValue)
    assert scores.value.sample == (0.0, 0.0, -1.0, -2.0)
    assert [t.offset for t in parsed.tensors] == [0, 128]


def test_version_1_uses_32_bit_counts_and_lengths() -> None:
    parsed = parse(gguf_bytes(spec_with(version=1)))
    assert parsed.version == 1 and parsed.get("general.name").text() == "tiny-test"  # type: ignore[union-attr]
    assert [t.dims for t in parsed.tensors] == [(8, 4), (8, 4)]


def test_big_endian_header_is_recognised() -> None:
    data = b"GGUF" + struct.pack(">IQQ", 3, 0, 1) + struct.pack(">Q", 4) + b"key." + struct.pack(">II", 4, 7)
    parsed = parse(data)
    assert parsed.byte_order == ">" and parsed.metadata[0].value == 7


@pytest.mark.parametrize("data, text", [
    (b"GGUF", "bad magic"),
    (b"GGML" + bytes(20), "bad magic"),
    (b"GGUF" + struct.pack("<I", 9) + bytes(16), "unsupported GGUF version"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 2**63), "more than the file can hold"),
    (b"GGUF" + struct.pack("<IQQ", 3, 2**62, 0), "more than the file can hold"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**40) + b"k" * 16, "past the end"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99), "unknown value"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", ARRAY, U8, 2**60),
     "more than the file can hold"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", U32) + b"\x01",
     "only 1 remain"),
])
def test_impossible_claims_are_format_errors_without_allocation(data: bytes, text: str) -> None:
    tracemalloc.start()
    with pytest.raises(FormatError, match=text):
        parse(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000


def test_five_dimensions_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="dimensions"):
        parse(gguf_bytes(spec_with(tensors=[Tensor("a", (1, 1, 1, 1, 4))])))


@pytest.mark.parametrize("limits, field", [
    (Limits(max_metadata_entries=3), "max_metadata_entries"),
    (Limits(max_string_bytes=100), "max_string_bytes"),
    (Limits(max_header_bytes=200), "max_header_bytes"),
])
def test_limits_are_enforced(limits: Limits, field: str) -> None:
    with pytest.raises(LimitExceeded) as exc:
        parse(gguf_bytes(fx.clean_spec()), limits)
    assert exc.value.limit == field


def test_deeply_nested_arrays_hit_the_depth_limit() -> None:
    value: tuple = (U8, [1])
    for _ in range(40):
        value = (ARRAY, [value])
    data = gguf_bytes(spec_with(kvs=[("deep", ARRAY, value)], tensors=[]))
    with pytest.raises(LimitExceeded) as exc:
        parse(data)
    assert exc.value.limit == "max_metadata_depth"


def test_shallow_nested_array_is_malformed_metadata() -> None:
    data = gguf_bytes(spec_with(kvs=fx.base_kvs() + [("x.nested", ARRAY, (ARRAY, [(U8, [1, 2]), (U8, [3])]))]))
    findings = run(data)
    assert rule_ids(findings) == {"GGUF-MALFORMED-METADATA"}


def test_numeric_arrays_are_skipped_not_materialised() -> None:
    n = 5_000_000
    data = (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 3) + b"big"
            + struct.pack("<IIQ", ARRAY, U8, n) + b"\x01" * n)
    parsed, peak = memory_peak(lambda: parse(data))
    value = parsed.get("big").value  # type: ignore[union-attr]
    assert isinstance(value, gguf.ArrayValue) and value.count == n and len(value.sample) == gguf.ARRAY_SAMPLE
    assert peak < 1_000_000  # a list of 5 million ints would take over 40 MB


@pytest.mark.parametrize("changes, rule, severity", [
    ({"kvs": fx.base_kvs(CHATML) + [("general.alignment", U32, 0)]}, "GGUF-BAD-ALIGNMENT", Severity.HIGH),
    ({"kvs": fx.base_kvs(CHATML) + [("general.alignment", STRING, "32")]}, "GGUF-BAD-ALIGNMENT", Severity.HIGH),
    ({"tensors": [Tensor("a", (8, 4), offset=4)]}, "GGUF-BAD-ALIGNMENT", Severity.HIGH),
    ({"tensors": [Tensor("a", (8, 4)), Tensor("a", (8, 4))]}, "GGUF-DUPLICATE-TENSOR", Severity.HIGH),
    ({"tensors": [Tensor("a", (10, 1), ggml_type=fx.Q8_0_TYPE, nbytes=34)]}, "GGUF-MALFORMED-TENSOR",
     Severity.HIGH),
    ({"tensors": [Tensor("x" * 80, (8, 4))]}, "GGUF-MALFORMED-TENSOR", Severity.MEDIUM),
    ({"tensors": [Tensor("a", (2**40, 2**40))], "data_bytes": 0}, "GGUF-MALFORMED-TENSOR", Severity.HIGH),
    ({"tensors": [Tensor("a", (8, 4), ggml_type=77)]}, "GGUF-UNKNOWN-TENSOR-TYPE", Severity.MEDIUM),
    ({"tensors": [Tensor("a", (8, 4)), Tensor("b", (8, 4), offset=1024)], "data_bytes": 1152}, None, None),
    ({"trailing": b"\x07" * 100}, "GGUF-UNREFERENCED-DATA", Severity.MEDIUM),
    ({"kvs": fx.base_kvs(CHATML) + [("general.alignment", U32, 32), ("general.alignment", U32, 64)]},
     "GGUF-DUPLICATE-KEY", Severity.HIGH),
    ({"kvs": fx.base_kvs(CHATML) + [(b"bad\xffkey", U32, 1)]}, "GGUF-INVALID-KEY", Severity.LOW),
    ({"kvs": fx.base_kvs(CHATML) + [("has space", U32, 1)]}, "GGUF-INVALID-KEY", Severity.LOW),
    ({"kvs": fx.base_kvs(CHATML) + [("x.flag", BOOL, 1)]}, None, None),
    ({"kvs": fx.base_kvs(CHATML) + [("x.blob", STRING, b"\x00\x01binary")]}, "GGUF-BINARY-METADATA",
     Severity.MEDIUM),
    ({"kvs": [("general.architecture", STRING, "nonesuch-arch")]}, "GGUF-UNKNOWN-ARCHITECTURE", Severity.INFO),
    ({"kvs": [("general.name", STRING, "x")]}, "GGUF-UNKNOWN-ARCHITECTURE", Severity.INFO),
    ({"kvs": fx.base_kvs() + [("tokenizer.chat_template", ARRAY, (STRING, ["a"]))]}, "GGUF-MALFORMED-METADATA",
     Severity.MEDIUM),
])
def test_layout_and_metadata_checks(changes: dict, rule: str | None, severity: Severity | None) -> None:
    findings = run(gguf_bytes(spec_with(**changes)))
    if rule is None:
        assert findings == []
        return
    matching = [f for f in findings if f.rule_id == rule]
    assert matching, findings
    assert matching[0].severity is severity


def test_gap_holding_data_between_tensors_is_reported(tmp_path: Path) -> None:
    spec = spec_with(tensors=[Tensor("a", (8, 4)), Tensor("b", (8, 4), offset=1024)], data_bytes=1152)
    data = bytearray(gguf_bytes(spec))
    start = parse(bytes(data)).data_start + 128
    payload = fx.pickle_payload(tmp_path, "gap")
    data[start:start + len(payload)] = payload
    (finding,) = [f for f in run(bytes(data)) if f.rule_id == "GGUF-UNREFERENCED-DATA"]
    assert finding.severity is Severity.HIGH and finding.details["content"] == "pickle"
    assert finding.location.offset == start


def test_bool_with_a_byte_other_than_0_or_1() -> None:
    data = bytearray(gguf_bytes(spec_with(kvs=fx.base_kvs() + [("x.flag", BOOL, True)])))
    at = data.index(b"x.flag") + len(b"x.flag") + 4
    data[at] = 7
    assert rule_ids(run(bytes(data))) == {"GGUF-MALFORMED-METADATA"}


def test_template_findings_point_at_the_metadata_value(tmp_path: Path) -> None:
    text = payloads(tmp_path)["ssti-lipsum-globals"][0]
    data = gguf_bytes(spec_with(kvs=fx.base_kvs("\n\n" + text)))
    findings = [f for f in run(data) if f.rule_id == "TEMPLATE-SANDBOX-ESCAPE"]
    assert findings
    kv = parse(data).get("tokenizer.chat_template")
    assert kv is not None
    assert all(f.location.pointer == "tokenizer.chat_template" and f.location.offset == kv.value_offset
               for f in findings)
    assert findings[0].details["template_line"] == 3


def test_a_template_stopped_by_its_budget_makes_the_file_partial() -> None:
    from aivet.evidence import ArtifactStatus

    def status(limits: Limits) -> tuple[ArtifactStatus, list[Finding]]:
        ctx = Context("t", ScanOptions(limits=limits))
        outcome = scan_gguf.analyze(Source.from_bytes(gguf_bytes(spec_with(kvs=fx.base_kvs(CHATML))), "m.gguf"), ctx)
        return outcome.status, ctx.findings

    assert status(Limits())[0] is ArtifactStatus.ANALYZED
    stopped, findings = status(Limits(max_template_steps=5))
    assert stopped is ArtifactStatus.PARTIAL
    assert [f.details["limit"] for f in findings if f.rule_id == "SCAN-LIMIT-EXCEEDED"] == ["max_template_steps"]


def test_gap_of_padding_only_is_not_reported() -> None:
    # A writer aligns each tensor: 8 bytes of data then 24 bytes of zero padding is normal.
    spec = spec_with(tensors=[Tensor("a", (2,)), Tensor("b", (2,))])
    parsed = parse(gguf_bytes(spec))
    assert [t.offset for t in parsed.tensors] == [0, 32]
    assert run(gguf_bytes(spec)) == []


# -- property tests ------------------------------------------------------------------------------

def _check_bounded(data: bytes) -> None:
    try:
        run(data, Limits(max_header_bytes=1 << 16, max_string_bytes=1 << 14, max_metadata_entries=4096))
    except (FormatError, LimitExceeded):
        pass


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.integers(0, 4), hs.binary(max_size=600))
def test_random_bytes_after_the_magic_are_bounded(version: int, tail: bytes) -> None:
    _check_bounded(b"GGUF" + struct.pack("<I", version) + tail)


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.data())
def test_mutated_files_are_bounded(data: hs.DataObject) -> None:
    base = bytearray(gguf_bytes(fx.clean_spec()))
    for _ in range(data.draw(hs.integers(1, 8))):
        i = data.draw(hs.integers(0, len(base) - 1))
        base[i] = data.draw(hs.sampled_from([0, 1, 0x7F, 0x80, 0xFF, data.draw(hs.integers(0, 255))]))
    cut = data.draw(hs.integers(0, len(base)))
    _check_bounded(bytes(base[:cut]))


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.lists(hs.tuples(hs.text(max_size=12), hs.sampled_from([U8, U32, F32, STRING])), max_size=6),
       hs.lists(hs.tuples(hs.lists(hs.integers(0, 64), min_size=1, max_size=4), hs.integers(0, 45),
                          hs.integers(0, 512)), max_size=4))
def test_generated_structures_are_bounded(kvs: list, tensors: list) -> None:
    values = {U8: 1, U32: 7, F32: 1.5, STRING: "v"}
    spec = GGUFSpec([(k, t, values[t]) for k, t in kvs],
                    [Tensor(f"t{i}", tuple(dims), ggml_type=ty, offset=off, nbytes=16)
                     for i, (dims, ty, off) in enumerate(tensors)], data_bytes=256)
    _check_bounded(gguf_bytes(spec))


def _with_merges(n: int) -> bytes:
    tokens = [f"tok{i}\u0120x" * (1 + i % 7) for i in range(n)]
    return gguf_bytes(spec_with(kvs=fx.base_kvs(CHATML) + [("tokenizer.ggml.merges", ARRAY, (STRING, tokens))]))


def test_string_array_walk_is_linear_in_its_length() -> None:
    def work(n: int) -> int:
        data = _with_merges(n)
        return python_lines(lambda: parse(data))[1]

    assert growth(work, 2000) <= 5  # linear gives about 4, quadratic about 16


@pytest.mark.timeout(HANG_TIMEOUT)
def test_vocabulary_sized_string_arrays_are_walked() -> None:
    parsed = parse(_with_merges(200_000))
    merges = parsed.get("tokenizer.ggml.merges")
    assert merges is not None and isinstance(merges.value, gguf.ArrayValue) and merges.value.count == 200_000
    assert merges.value.sample[:2] == ("tok0\u0120x", "tok1\u0120xtok1\u0120x")
    assert [t.name for t in parsed.tensors] == ["token_embd.weight", "output.weight"]  # the walk ended exactly


def test_string_arrays_have_their_own_bound() -> None:
    """Vocabularies and merge lists (10^5 strings, walked not kept) are not metadata entries."""
    data = _with_merges(5_000)
    assert parse(data, Limits(max_metadata_entries=100)).get("tokenizer.ggml.merges") is not None
    with pytest.raises(LimitExceeded) as exc:
        parse(data, Limits(max_array_strings=4_999))
    assert exc.value.limit == "max_array_strings"


@pytest.mark.parametrize("bad_length, error", [(2**40, FormatError), (300, LimitExceeded)])
def test_hostile_string_inside_a_long_array(bad_length: int, error: type) -> None:
    items = [b"x" * 10] * 20_000 + [b"y" * 300] + [b"z"] * 10
    data = bytearray(gguf_bytes(spec_with(kvs=[("a", ARRAY, (STRING, items))], tensors=[])))
    at = data.index(struct.pack("<Q", 300) + b"y")
    data[at:at + 8] = struct.pack("<Q", bad_length)
    with pytest.raises(error):
        parse(bytes(data), Limits(max_string_bytes=200))


def test_key_with_a_nul_shadows_the_real_chat_template(tmp_path: Path) -> None:
    # llama.cpp's duplicate check compares whole keys but gguf_find_key uses strcmp: a key
    # "tokenizer.chat_template\0x" placed first answers lookups of the chat template.
    hostile = payloads(tmp_path)["ssti-lipsum-globals"][0]
    kvs = fx.base_kvs()
    kvs.insert(1, (b"tokenizer.chat_template\x00shadow", STRING, hostile))
    kvs.append(("tokenizer.chat_template", STRING, CHATML))
    data = gguf_bytes(spec_with(kvs=kvs))
    kv = parse(data).get("tokenizer.chat_template")
    assert kv is not None and kv.raw_key == b"tokenizer.chat_template\x00shadow"
    findings = run(data)
    assert "TEMPLATE-SANDBOX-ESCAPE" in rule_ids(findings)  # the shadowing template is analysed
    (dup,) = [f for f in findings if f.rule_id == "GGUF-DUPLICATE-KEY"]
    assert dup.severity is Severity.HIGH and dup.details["key"] == "tokenizer.chat_template"
    assert dup.details["first_key"] == "tokenizer.chat_template\x00shadow"


def test_nul_key_shadows_the_alignment_llama_cpp_uses() -> None:
    kvs = [(b"general.alignment\x00", STRING, "x"), *fx.base_kvs(CHATML), ("general.alignment", U32, 32)]
    findings = run(gguf_bytes(spec_with(kvs=kvs)))
    assert {"GGUF-DUPLICATE-KEY", "GGUF-BAD-ALIGNMENT"} <= rule_ids(findings)


def test_huge_dimension_hidden_by_a_zero_dimension_is_malformed() -> None:
    # Elements multiply to 0, but the first dimension is negative as ggml's int64_t ne[0].
    findings = run(gguf_bytes(spec_with(tensors=[Tensor("a", (2**63 + 8, 0))], data_bytes=0)))
    assert [f.severity for f in findings if f.rule_id == "GGUF-MALFORMED-TENSOR"] == [Severity.HIGH]


def test_tensor_names_equal_up_to_a_nul_are_duplicates() -> None:
    # ggml_set_name copies a C string: "output.weight\0x" and "output.weight" name one tensor.
    tensors = [Tensor("output.weight", (8, 4)), Tensor("output.weight\x00x", (8, 4), offset=128)]
    findings = run(gguf_bytes(spec_with(tensors=tensors, data_bytes=256)))
    assert "GGUF-DUPLICATE-TENSOR" in rule_ids(findings)
