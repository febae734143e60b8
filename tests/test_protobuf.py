"""The bounded protobuf wire-format reader and the sniffing guess."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aivet
from aivet.analyzers.protobuf import classify
from aivet.evidence import ArtifactStatus
from aivet.formats import FormatError, LimitExceeded
from aivet.formats.protobuf import (
    DEADLINE_EVERY,
    I32,
    I64,
    LEN,
    VARINT,
    Message,
    open_message,
    plausible_message,
    read_varint,
)
from aivet.formats.sniff import Format, sniff
from aivet.limits import DEFAULT_LIMITS
from tests.fixtures.tf_files import f_bytes, f_fixed32, f_varint, graph_def, node, saved_model, varint
from tests.fixtures.work import HANG_TIMEOUT, growth, python_lines


def walk(msg: Message, depth_budget: int = 8) -> int:
    """Visit every field, descending into LEN fields that frame as messages."""
    count = 0
    for f in msg:
        count += 1
        if f.wire_type == LEN and depth_budget:
            try:
                count += walk(f.submessage(), depth_budget - 1)
            except FormatError:
                pass
    return count


def test_varint_round_trip() -> None:
    for n in (0, 1, 127, 128, 300, 2**32, 2**63, 2**64 - 1):
        data = varint(n)
        assert read_varint(memoryview(data), 0, len(data)) == (n, len(data))


def test_varint_errors() -> None:
    with pytest.raises(FormatError):
        read_varint(memoryview(b"\x80\x80"), 0, 2)
    with pytest.raises(FormatError, match="10 bytes"):
        read_varint(memoryview(b"\xff" * 11 + b"\x01"), 0, 12)


def test_fields_of_every_wire_type() -> None:
    data = f_varint(1, 150) + f_bytes(2, b"hello") + f_fixed32(3, b"\x01\x00\x00\x00")
    data += varint(4 << 3 | I64) + (7).to_bytes(8, "little")
    fields = list(Message.parse(data))
    assert [(f.number, f.wire_type) for f in fields] == [(1, VARINT), (2, LEN), (3, I32), (4, I64)]
    assert fields[0].value == 150
    assert fields[1].bytes() == b"hello" and fields[1].text() == "hello"
    assert fields[2].value == 1 and fields[3].value == 7
    assert fields[1].offset == 3 and fields[1].start == 5


def test_negative_int64() -> None:
    (f,) = Message.parse(f_varint(1, -5))
    assert f.signed() == -5


def test_nested_messages_and_skipping_without_copy() -> None:
    big = b"\x00" * 100_000
    data = f_bytes(1, f_bytes(9, big) + f_bytes(8, "weights")) + f_varint(2, 3)
    outer = list(Message.parse(data))
    inner = {f.number: f for f in outer[0].submessage()}
    assert inner[8].text() == "weights"
    assert inner[9].value == len(big)  # length known, bytes never copied
    assert outer[1].value == 3


@pytest.mark.parametrize("data,match", [
    (f_bytes(1, b"abc")[:-1], "claims"),
    (varint(1 << 3 | 3), "groups"),
    (varint(1 << 3 | 4), "groups"),
    (varint(1 << 3 | 6), "wire type"),
    (varint(0 << 3 | 0) + b"\x00", "field number"),
    (varint(1 << 3 | I64) + b"\x00\x00", "truncated"),
])
def test_malformed_input_raises_format_error_with_offset(data: bytes, match: str) -> None:
    with pytest.raises(FormatError, match=match) as info:
        list(Message.parse(data))
    assert info.value.offset is not None


def test_depth_limit() -> None:
    data = b""
    for _ in range(10):
        data = f_bytes(1, data or f_varint(1, 1))
    limits = replace(DEFAULT_LIMITS, max_protobuf_depth=4)
    msg = Message.parse(data, limits)
    with pytest.raises(LimitExceeded) as info:
        while True:
            msg = next(iter(msg)).submessage()
    assert info.value.limit == "max_protobuf_depth"


def test_string_limit() -> None:
    limits = replace(DEFAULT_LIMITS, max_string_bytes=10)
    (f,) = Message.parse(f_bytes(1, b"x" * 11), limits)
    with pytest.raises(LimitExceeded):
        f.bytes()
    assert f.text(100) == "x" * 11


def test_wrong_wire_type_for_bytes() -> None:
    (f,) = Message.parse(f_varint(1, 1))
    with pytest.raises(FormatError):
        f.submessage()


def test_open_message_memory_maps_files_and_bounds_streams(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = f_varint(1, 7) + f_bytes(2, b"x" * 50)
    path = tmp_path / "m.pb"
    path.write_bytes(data)
    with open_message(lambda: open(path, "rb"), len(data), path, DEFAULT_LIMITS) as msg:
        assert [f.number for f in msg] == [1, 2]
    with open_message(lambda: io.BytesIO(data), len(data), None, DEFAULT_LIMITS) as msg:
        assert [f.number for f in msg] == [1, 2]
    small = replace(DEFAULT_LIMITS, max_protobuf_bytes=10)
    with pytest.raises(LimitExceeded):
        with open_message(lambda: io.BytesIO(data), len(data), None, small):
            pass


def test_plausible_message_accepts_model_protobufs() -> None:
    import onnx  # noqa: F401  - test-only fixture builder

    from tests.fixtures.onnx_files import make_model

    assert plausible_message(make_model().SerializeToString()[:4096])
    graph = graph_def([node("x", "Placeholder"), node("y", "Identity", ["x"])])
    assert plausible_message(saved_model(graph)[:4096])
    assert plausible_message(graph[:4096])
    big = saved_model(graph_def([node(f"n{i}", "Const", attrs={"value": b"\x00" * 50}) for i in range(200)]))
    assert plausible_message(big[:4096])  # a prefix whose field runs past the head


@pytest.mark.parametrize("head", [
    b"\x00" * 64,
    b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56,
    bytes(range(256)),
    b"MZ\x90\x00\x03\x00\x00\x00",
    f_varint(1, 1),  # one lone varint is not enough
    f_bytes(7, b"") + f_varint(1, 1),  # ONNX graph that is empty
])
def test_plausible_message_rejects_other_binaries(head: bytes) -> None:
    assert not plausible_message(head)


def test_sniff_routes_model_protobufs_here() -> None:
    from tests.fixtures.onnx_files import make_model

    data = make_model().SerializeToString()
    assert sniff(data[:4096], "model.onnx", len(data)) is Format.PROTOBUF


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_format_errors(data: bytes) -> None:
    try:
        walk(Message.parse(data))
    except (FormatError, LimitExceeded):
        pass
    plausible_message(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_messages_only_raise_format_errors(data: st.DataObject) -> None:
    base = bytearray(saved_model(graph_def([node("x", "Placeholder"), node("r", "ReadFile", ["x"])])))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(base) - 1))
        base[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    try:
        walk(Message.parse(bytes(base[:cut])))
    except (FormatError, LimitExceeded):
        pass


def test_head_text_truncates_instead_of_failing() -> None:
    limits = replace(DEFAULT_LIMITS, max_string_bytes=4)
    (f,) = Message.parse(f_bytes(1, "abcdefgh"), limits)
    assert f.head_text(3) == "abc"


# ---------------------------------------------------------------------------------------------
# The top-level walks before dispatch (validate, classify) read a memory-mapped file, which no
# byte limit bounds: they keep the per-file deadline.
# ---------------------------------------------------------------------------------------------

def _many_fields(n: int) -> bytes:
    return f_varint(99, 1) * n  # an unknown schema: only validate and classify ever walk it


@pytest.mark.timeout(HANG_TIMEOUT)
def test_validate_stops_at_a_passed_deadline_whatever_the_size() -> None:
    def work(n: int) -> int:
        def run() -> None:
            with pytest.raises(LimitExceeded) as exc:
                Message.parse(_many_fields(n)).validate(deadline=0.0)
            assert exc.value.limit == "max_seconds_per_file"
        return python_lines(run)[1]

    assert growth(work, 4 * DEADLINE_EVERY) <= 1.2  # the walk stops at the first look at the clock
    assert Message.parse(_many_fields(10)).validate() == 10  # no deadline: every field, counted


@pytest.mark.timeout(HANG_TIMEOUT)
@pytest.mark.parametrize("shape", ["top-level", "meta-graph"])
def test_classify_stops_at_a_passed_deadline(shape: str) -> None:
    inner = f_bytes(1, b"x") * 20_000
    data = _many_fields(20_000) if shape == "top-level" else f_varint(1, 1) + f_bytes(2, inner)
    assert classify(Message.parse(data), "model.pb") in ("", "savedmodel")  # no deadline: an answer
    with pytest.raises(LimitExceeded) as exc:
        classify(Message.parse(data), "model.pb", deadline=0.0)
    assert exc.value.limit == "max_seconds_per_file"


@pytest.mark.timeout(HANG_TIMEOUT)
def test_a_memory_mapped_protobuf_is_walked_within_the_deadline(tmp_path: Path) -> None:
    nodes = f_bytes(1, f_bytes(1, b"n") + f_bytes(2, b"Const")) * 50_000  # a frozen GraphDef, sniffed as one
    (tmp_path / "model.pb").write_bytes(nodes)
    evidence = aivet.scan(tmp_path, limits=replace(DEFAULT_LIMITS, max_seconds_per_file=0.0))
    [artifact] = evidence.artifacts
    assert artifact.status is ArtifactStatus.PARTIAL
    hits = [f for f in evidence.findings if f.rule_id == "SCAN-LIMIT-EXCEEDED"]
    assert [f.details["limit"] for f in hits] == ["max_seconds_per_file"]
    assert "framing check" in hits[0].message  # validate() stopped, before any analyzer walked
