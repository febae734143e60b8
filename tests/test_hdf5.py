"""HDF5 read in pure Python (aivet.formats.hdf5) and Keras configs found wherever HDF5 can keep them.

Issue #2: a byte scan for ``{"class_name"`` is bypassed by ``\\u``-escaped keys, dense attribute
storage (fractal heap objects), variable-length strings (global heap) or a config on another
object than the root. Files are made with h5py (libver 'earliest' and 'latest') and, for
structures h5py will not write (continuation cycles), by a small builder in this file.
"""

from __future__ import annotations

import functools
import io
import json
import re
import struct
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aivet
from aivet.analyzers import keras_hdf5
from aivet.analyzers.context import Context
from aivet.analyzers.source import Source
from aivet.evidence import Evidence, Severity
from aivet.formats import FormatError, LimitExceeded, hdf5, hdf5_storage
from aivet.limits import DEFAULT_LIMITS
from tests.fixtures.keras_files import k2_dense, k2_lambda, k2_sequential, write_h5
from tests.fixtures.work import HANG_TIMEOUT, Tally, counting_source, memory_peak

h5py = pytest.importorskip("h5py")
np = pytest.importorskip("numpy")

LIBVERS = ("earliest", "latest")


def rules_of(evidence: Evidence) -> set[str]:
    return {f.rule_id for f in evidence.findings}


def lambda_config(marker_dir: Path, name: str, pad: int = 0) -> dict[str, Any]:
    config = k2_sequential([k2_dense("dense", 2), k2_lambda(marker_dir, name)])
    if pad:
        config["config"]["padding"] = "x" * pad  # pushes the attribute past the compact/managed sizes
    return config


def write(path: Path, attrs: dict[str, Any], libver: str = "earliest", *, where: str = "/",
          filler: int = 0, track_order: bool = False) -> Path:
    """An HDF5 file with ``attrs`` on the object at ``where`` (created as a group, or a dataset if it ends in ':0')."""
    with h5py.File(path, "w", libver=libver, track_order=track_order) as f:
        f.attrs["keras_version"] = "2.12.0"
        f.attrs["backend"] = "tensorflow"
        for i in range(filler):
            f.attrs[f"filler{i:03d}"] = f"value {i}"
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = [b"dense"]
        layer = weights.create_group("dense").create_group("dense")
        layer.create_dataset("kernel:0", data=np.zeros((4, 2), dtype="float32"))
        if where == "/":
            target: Any = f
        elif where.endswith(":0"):
            target = f.create_dataset(where, data=np.zeros(2, dtype="float32"))
        else:
            target = f.require_group(where)
        for name, value in attrs.items():
            target.attrs[name] = value
    return path


def as_text(config: Any, kind: str) -> Any:
    text = json.dumps(config)
    return text if kind == "vlen" else np.bytes_(text.encode())


def read(path: Path, limits: hdf5.Hdf5Limits = hdf5.HDF5_LIMITS) -> hdf5.Hdf5Contents:
    with open(path, "rb") as fh:
        return hdf5.read_attributes(fh, path.stat().st_size, limits)


def assert_lambda_found(evidence: Evidence, pointer_prefix: str = "/@model_config") -> None:
    findings = [f for f in evidence.findings if f.rule_id == "KERAS-LAMBDA-LAYER"]
    assert findings, evidence.findings
    assert findings[0].severity is Severity.CRITICAL
    assert {"os", "system"} <= set(findings[0].details["suspicious"])
    assert (findings[0].location.pointer or "").startswith(pointer_prefix), findings[0].location
    (artifact,) = evidence.artifacts
    assert artifact.format == "keras-hdf5" and artifact.status.value == "analyzed", artifact
    assert "structure parsed" in artifact.note and "byte-scan" not in artifact.note


# ---------------------------------------------------------------------------------------------
# Keras configs, wherever h5py puts them
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("libver", LIBVERS)
@pytest.mark.parametrize("kind", ["vlen", "fixed"])
def test_lambda_in_model_config(tmp_path: Path, marker_dir: Path, libver: str, kind: str) -> None:
    path = write(tmp_path / "m.h5", {"model_config": as_text(lambda_config(marker_dir, "plain"), kind)}, libver)
    contents = read(path)
    (attr,) = [a for a in contents.attributes if a.name == "model_config"]
    assert attr.type_class == ("vlen-string" if kind == "vlen" else "string") and attr.path == "/"
    assert contents.superblock_version == (0 if libver == "earliest" else 3)
    assert_lambda_found(aivet.scan(path))


@pytest.mark.parametrize("libver", LIBVERS)
def test_unicode_escaped_keys_are_decoded(tmp_path: Path, marker_dir: Path, libver: str) -> None:
    text = json.dumps(lambda_config(marker_dir, "escaped")).replace('"class_name"', '"\\u0063lass_name"')
    assert json.loads(text)["class_name"] == "Sequential"
    path = write(tmp_path / "m.h5", {"model_config": text}, libver)
    with open(path, "rb") as fh:  # what the old byte scan saw: nothing
        assert keras_hdf5.find_json_configs(fh, path.stat().st_size, 1 << 20) == []
    assert_lambda_found(aivet.scan(path))


def _heap_kinds(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    kinds: Counter[int] = Counter()
    real = hdf5_storage.FractalHeap.get

    def spy(self: hdf5_storage.FractalHeap, heap_id: bytes) -> tuple[bytes, int]:
        kinds[(heap_id[0] >> 4) & 3] += 1
        return real(self, heap_id)

    monkeypatch.setattr(hdf5_storage.FractalHeap, "get", spy)
    return kinds


def _root_header(path: Path) -> Any:
    with open(path, "rb") as fh:
        f = hdf5._File(fh, path.stat().st_size, hdf5.HDF5_LIMITS)
        _, root = f.superblock()
        return f.header(root)


@pytest.mark.parametrize("kind,pad,heap_kind", [
    ("vlen", 0, 0), ("vlen", 8000, 0),  # the message holds a global heap reference: a managed heap object
    ("fixed", 0, 0), ("fixed", 8000, 1)])  # a fixed-length string over 4 KiB: a huge heap object
def test_dense_attribute_storage(tmp_path: Path, marker_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                 kind: str, pad: int, heap_kind: int) -> None:
    config = as_text(lambda_config(marker_dir, "dense", pad), kind)
    path = write(tmp_path / "m.h5", {"model_config": config}, "latest", filler=30)
    header = _root_header(path)
    assert header.attribute_info is not None and header.attributes == []  # really dense: nothing compact
    kinds = _heap_kinds(monkeypatch)
    evidence = aivet.scan(path)
    assert_lambda_found(evidence)
    assert kinds[heap_kind] >= 1, kinds


def test_track_order_uses_dense_storage_even_with_earliest(tmp_path: Path, marker_dir: Path) -> None:
    path = write(tmp_path / "m.h5", {"model_config": json.dumps(lambda_config(marker_dir, "order"))},
                 "earliest", filler=12, track_order=True)
    assert _root_header(path).attribute_info is not None
    assert_lambda_found(aivet.scan(path))


@pytest.mark.parametrize("libver", LIBVERS)
@pytest.mark.parametrize("where", ["model_weights/dense", "hidden/deeper/still", "model_weights/dense/dense/bias:0"])
def test_config_on_another_object(tmp_path: Path, marker_dir: Path, libver: str, where: str) -> None:
    path = write(tmp_path / "m.h5", {"cfg": json.dumps(lambda_config(marker_dir, "sub"))}, libver, where=where)
    assert_lambda_found(aivet.scan(path), f"/{where}/@cfg")


def test_many_groups_and_links_are_walked(tmp_path: Path, marker_dir: Path) -> None:
    # Dense link storage (latest) and a multi-level symbol table B-tree (earliest) both reach the last group.
    for libver in LIBVERS:
        path = tmp_path / f"{libver}.h5"
        with h5py.File(path, "w", libver=libver) as f:
            group = f.create_group("layers")
            for i in range(300):
                group.create_group(f"g{i:04d}")
            group["g0299"].attrs["cfg"] = json.dumps(lambda_config(marker_dir, "links"))
        contents = read(path)
        assert contents.objects == 302 and not contents.problems
        assert_lambda_found(aivet.scan(path), "/layers/g0299/@cfg")


def test_config_in_a_continuation_block(tmp_path: Path, marker_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.h5"
    with h5py.File(path, "w", libver="earliest") as f:
        f.attrs["a"] = 1
        f.create_dataset("x", data=np.zeros(3))
    with h5py.File(path, "a") as f:  # the root header is full: libhdf5 adds a continuation block
        f.attrs["model_config"] = json.dumps(lambda_config(marker_dir, "cont"))
    blocks: list[int] = []
    real = hdf5._File._messages

    def spy(self: hdf5._File, b: Any, version: int, order: bool) -> Any:
        blocks.append(b.origin)
        return real(self, b, version, order)

    monkeypatch.setattr(hdf5._File, "_messages", spy)
    assert_lambda_found(aivet.scan(path))
    assert len(blocks) > 2  # root: first block and a continuation (then the datasets' headers)


def test_training_config_and_other_json_attributes(tmp_path: Path) -> None:
    path = write(tmp_path / "m.h5", {
        "model_config": json.dumps(k2_sequential([k2_dense("d", 2)])),
        "training_config": json.dumps({"loss": {"class_name": "function", "module": "os", "config": "system"}}),
        "notes": json.dumps({"x": [{"module": "subprocess", "class_name": "Popen", "config": {}}]}),
        "names": [b"plain", b'{"class_name": "TFOpLambda", "config": {"function": "io.write_file"}}'],
    })
    evidence = aivet.scan(path)
    assert {"KERAS-FUNCTION-REFERENCE", "KERAS-UNSAFE-MODULE", "KERAS-TF-OP-LAMBDA"} <= rules_of(evidence)
    pointers = {f.location.pointer for f in evidence.findings}
    assert "/@training_config/loss" in pointers and "/@names/1" in pointers


@pytest.mark.parametrize("libver", LIBVERS)
def test_clean_keras_like_file_is_clean(tmp_path: Path, libver: str) -> None:
    config = k2_sequential([k2_dense("dense", 2)])
    path = write(tmp_path / "clean.h5", {"model_config": json.dumps(config),
                                         "training_config": json.dumps({"loss": "mse"})}, libver, filler=20)
    evidence = aivet.scan(path)
    assert evidence.findings == ()
    (artifact,) = evidence.artifacts
    assert artifact.status.value == "analyzed" and artifact.format == "keras-hdf5"
    assert "2 Keras config(s) read from attributes" in artifact.note


def test_fixture_writer_file_reads_completely(tmp_path: Path) -> None:
    contents = read(write_h5(tmp_path / "k.h5", k2_sequential([k2_dense("d", 2)]), {"loss": "mse"}))
    names = {(a.path, a.name): a for a in contents.attributes}
    assert names[("/", "keras_version")].value == b"2.12.0"
    assert names[("/model_weights", "layer_names")].value == (b"dense",)
    assert contents.problems == ()


def test_numbers_are_decoded(tmp_path: Path) -> None:
    path = write(tmp_path / "n.h5", {"i": np.int16(-3), "u": np.uint64(7), "f": np.float32(2.5),
                                     "d": np.float64(-1.25), "be": np.array(5, dtype=">i4"),
                                     "v": np.arange(3, dtype="int32")})
    values = {a.name: a.value for a in read(path).attributes}
    assert (values["i"], values["u"], values["f"], values["d"], values["be"]) == (-3, 7, 2.5, -1.25, 5)
    assert values["v"] == (0, 1, 2)


def test_model_config_that_is_not_a_string(tmp_path: Path) -> None:
    path = write(tmp_path / "m.h5", {"model_config": np.arange(4)})
    evidence = aivet.scan(path)
    assert "KERAS-CONFIG-UNREADABLE" in rules_of(evidence)
    assert evidence.artifacts[0].status.value == "partial"


def test_hard_link_cycle_is_walked_once(tmp_path: Path, marker_dir: Path) -> None:
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("a")
        g["loop"] = f  # a hard link back to the root: legal HDF5, a cycle for a naive walker
        g.attrs["cfg"] = json.dumps(lambda_config(marker_dir, "cycle"))
    contents = read(path)
    assert contents.objects == 2 and not contents.problems
    assert_lambda_found(aivet.scan(path), "/a/@cfg")


# ---------------------------------------------------------------------------------------------
# Hand-built files: structures h5py will not write
# ---------------------------------------------------------------------------------------------

UNDEF = b"\xff" * 8
BLOCK = 512


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def msg(kind: int, data: bytes, flags: int = 0) -> bytes:
    return struct.pack("<BHB", kind, len(data), flags) + data


def ohdr(*messages: bytes) -> bytes:
    body = b"".join(messages)
    return b"OHDR" + bytes([2, 0x02]) + struct.pack("<I", len(body)) + body + b"\0" * 4


def ochk(*messages: bytes) -> bytes:
    return b"OCHK" + b"".join(messages) + b"\0" * 4


def continuation(block: int, data: bytes) -> bytes:
    return msg(0x10, u64(48 + block * BLOCK) + u64(len(data)))


def string_attribute(name: str, value: bytes) -> bytes:
    dt = bytes([0x13, 0, 0, 0]) + struct.pack("<I", len(value))
    ds = bytes([2, 0, 0, 0])  # version 2, scalar
    raw = name.encode() + b"\0"
    return msg(0x0C, struct.pack("<BBHHHB", 3, 0, len(raw), len(dt), len(ds), 0) + raw + dt + ds + value)


def hard_link(name: str, block: int) -> bytes:
    return msg(0x06, bytes([1, 0, len(name)]) + name.encode() + u64(48 + block * BLOCK))


def build(*blocks: bytes) -> bytes:
    """Superblock v2, then ``blocks`` at 48 + i * BLOCK (padded to BLOCK); block 0 is the root object header."""
    body = b"".join(b.ljust(BLOCK, b"\0") for b in blocks)
    eof = 48 + len(body)
    return b"\x89HDF\r\n\x1a\n" + bytes([2, 8, 8, 0]) + u64(0) + UNDEF + u64(eof) + u64(48) + b"\0" * 4 + body


def analyze(data: bytes) -> tuple[Context, Any]:
    ctx = Context(subject="s")
    return ctx, keras_hdf5.analyze_hdf5(Source.from_bytes(data, "m.h5"), ctx)


CONFIG = json.dumps({"class_name": "Lambda", "config": {"function": ["b3Muc3lzdGVt", None, None]}}).encode()


def test_built_file_with_attribute_in_a_continuation_block() -> None:
    cont = ochk(string_attribute("model_config", CONFIG.replace(b'"class_name"', b'"\\u0063lass_name"')))
    ctx, outcome = analyze(build(ohdr(continuation(1, cont)), cont))
    assert [f.rule_id for f in ctx.findings] == ["KERAS-LAMBDA-LAYER"]
    assert outcome.status.value == "analyzed" and outcome.format == "keras-hdf5"


def test_continuation_cycle_is_a_finding_not_a_hang() -> None:
    cont = ochk(continuation(1, ochk(continuation(1, b"\0" * 0))))  # points at itself
    ctx, outcome = analyze(build(ohdr(continuation(1, cont)), cont))
    assert "SCAN-PARSE-ERROR" in {f.rule_id for f in ctx.findings}
    assert outcome.status.value == "partial" and "byte-scan fallback" in outcome.note


def test_group_cycle_between_two_groups() -> None:
    data = build(ohdr(hard_link("a", 1), string_attribute("x", b"1")), ohdr(hard_link("back", 0)))
    contents = hdf5.read_attributes(io.BytesIO(data), len(data))
    assert contents.objects == 2 and contents.problems == ()


def test_group_btree_cycle_is_a_finding() -> None:
    tree = b"TREE" + bytes([0, 1]) + struct.pack("<H", 1) + UNDEF + UNDEF + u64(0) + u64(48 + BLOCK) + u64(0)
    heap = b"HEAP" + b"\0" * 4 + u64(8) + UNDEF + u64(48 + 2 * BLOCK + 64)
    root = ohdr(msg(0x11, u64(48 + BLOCK) + u64(48 + 2 * BLOCK)), string_attribute("model_config", CONFIG))
    ctx, outcome = analyze(build(root, tree, heap.ljust(64, b"\0") + b"\0" * 8))
    assert {f.rule_id for f in ctx.findings} == {"SCAN-PARSE-ERROR", "KERAS-LAMBDA-LAYER"}
    assert any("cycle" in f.message for f in ctx.findings) and outcome.status.value == "partial"


def test_bad_child_is_a_problem_and_the_rest_is_read() -> None:
    data = build(ohdr(hard_link("bad", 1), hard_link("good", 2)), b"JUNK" * 8,
                 ohdr(string_attribute("model_config", CONFIG)))
    ctx, outcome = analyze(data)
    assert {f.rule_id for f in ctx.findings} == {"SCAN-PARSE-ERROR", "KERAS-LAMBDA-LAYER"}
    assert outcome.status.value == "partial"
    (parse,) = [f for f in ctx.findings if f.rule_id == "SCAN-PARSE-ERROR"]
    assert parse.location.pointer == "/bad"
    # the byte scan ran as a fallback but did not report the config a second time
    assert len([f for f in ctx.findings if f.rule_id == "KERAS-LAMBDA-LAYER"]) == 1


def test_shared_attribute_message_is_unsupported_not_clean() -> None:
    shared = msg(0x0C, bytes([3, 2]) + u64(48 + BLOCK), flags=0x02)
    ctx, outcome = analyze(build(ohdr(shared)))
    assert [f.rule_id for f in ctx.findings] == ["SCAN-UNSUPPORTED"]
    assert outcome.status.value == "partial"


def test_over_limit_attribute_is_a_limit_finding() -> None:
    data = build(ohdr(string_attribute("model_config", CONFIG)))
    contents = hdf5.read_attributes(io.BytesIO(data), len(data), replace(hdf5.HDF5_LIMITS, max_attributes=0))
    assert contents.problems[0].kind == hdf5.OVER_LIMIT and contents.problems[0].limit == "max_attributes"


@pytest.mark.parametrize("cut", [9, 40, 60, 200, 600])
def test_truncated_built_file(cut: int) -> None:
    data = build(ohdr(string_attribute("model_config", CONFIG)), b"x" * 100)[:cut]
    ctx, outcome = analyze(data)
    assert ctx.findings and outcome.status.value == "partial"


@pytest.mark.parametrize("libver", LIBVERS)
def test_truncated_h5py_files_give_findings(tmp_path: Path, libver: str) -> None:
    path = write(tmp_path / "t.h5", {"model_config": json.dumps(k2_sequential([k2_dense("d", 2)]))}, libver)
    data = path.read_bytes()
    for cut in range(16, len(data), max(1, len(data) // 40)):
        ctx, outcome = analyze(data[:cut])
        assert ctx.findings, cut
        assert outcome.status.value == "partial", cut


def test_no_superblock_signature() -> None:
    with pytest.raises(FormatError):
        hdf5.read_attributes(io.BytesIO(b"\x89HDF\r\n\x1a\n"), 8)
    with pytest.raises(FormatError):
        analyze(b"not an hdf5 file at all")


# ---------------------------------------------------------------------------------------------
# Properties: mutated files never raise anything but FormatError/LimitExceeded, and work is bounded
# ---------------------------------------------------------------------------------------------

@functools.cache
def h5_bases() -> tuple[bytes, ...]:
    """Small h5py files: earliest/latest, with and without creation order (dense storage)."""
    out = []
    for libver in LIBVERS:
        for track in (False, True):
            buf = io.BytesIO()
            with h5py.File(buf, "w", libver=libver, track_order=track) as f:
                f.attrs["model_config"] = json.dumps(k2_sequential([k2_dense("d", 2)]))
                f.attrs["fixed"] = np.bytes_(b'{"class_name": "Dense"}')
                for i in range(10):
                    f.attrs[f"a{i}"] = i
                for i in range(10):
                    f.create_group(f"g{i}").attrs["x"] = "y"
                f["g0"]["soft"] = h5py.SoftLink("/g1")  # a symbol table soft link with 'earliest'
                f["g2"]["ext"] = h5py.ExternalLink("other.h5", "/w")
                f["g2"]["via"] = h5py.SoftLink("ext/x")
                f.create_dataset("d", shape=(2,), dtype="f4", external=[("data.bin", 0, 8)])
                layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
                layout[0:2] = h5py.VirtualSource("src.h5", "w", shape=(2,))
                layout[2:4] = h5py.VirtualSource(".", "/d", shape=(2,))
                f.create_virtual_dataset("v", layout)
            out.append(buf.getvalue())
    return tuple(out)


_STRUCTURES = re.compile(rb"OHDR|OCHK|TREE|SNOD|HEAP|GCOL|FRHP|FHDB|FHIB|BTHD|BTIN|BTLF|\x89HDF")
SMALL = replace(hdf5.HDF5_LIMITS, max_read_bytes=2 * 1024 * 1024, max_messages=20_000)


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_files_only_raise_format_errors(data: st.DataObject) -> None:
    base = bytearray(h5_bases()[data.draw(st.integers(0, len(h5_bases()) - 1))])
    anchors = [m.start() for m in _STRUCTURES.finditer(base)]
    for _ in range(data.draw(st.integers(1, 8))):
        if data.draw(st.booleans()):  # near a structure's signature, where the fields that matter are
            pos = min(len(base) - 8, max(8, data.draw(st.sampled_from(anchors)) + data.draw(st.integers(0, 64))))
        else:
            pos = data.draw(st.integers(8, len(base) - 8))  # the signature stays: the analyzer's own check
        value = data.draw(st.sampled_from([b"\xff" * 8, b"\0", b"\x01", b"\x7f\xff\xff\xff", b"\x10\x00",
                                           b"\x30\x00\x00\x00\x00\x00\x00\x00"]) | st.binary(min_size=1, max_size=8))
        base[pos:pos + len(value)] = value
    if data.draw(st.booleans()):
        del base[data.draw(st.integers(8, len(base))):]
    blob = bytes(base)
    tally = Tally()
    try:
        hdf5.read_attributes(counting_source(blob, "m.h5", tally).open(), len(blob), SMALL)
    except (FormatError, LimitExceeded):
        pass
    # A page cache reads each page once per cache; the budget bounds the rest.
    assert tally.bytes_read <= SMALL.max_read_bytes + 64 * 1024
    ctx = Context(subject="s")
    outcome = keras_hdf5.analyze_hdf5(Source.from_bytes(blob, "m.h5"), ctx)
    if outcome.status.value == "analyzed":
        assert not any(f.rule_id in ("SCAN-PARSE-ERROR", "SCAN-LIMIT-EXCEEDED") for f in ctx.findings)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_after_a_signature(data: bytes) -> None:
    for version in (0, 2):
        blob = b"\x89HDF\r\n\x1a\n" + bytes([version]) + data
        try:
            hdf5.read_attributes(io.BytesIO(blob), len(blob), SMALL)
        except (FormatError, LimitExceeded):
            pass
        ctx, _ = analyze(blob)


def test_user_block_before_the_superblock(tmp_path: Path, marker_dir: Path) -> None:
    # h5py/Keras open files with a user block; the superblock then sits at 512, 1024, ...
    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=1024) as f:
        f.attrs["model_config"] = json.dumps(lambda_config(marker_dir, "userblock"))
    data = path.read_bytes()
    assert data[:8] != b"\x89HDF\r\n\x1a\n" and data[1024:1032] == b"\x89HDF\r\n\x1a\n"
    ctx, outcome = analyze(data)
    assert "KERAS-LAMBDA-LAYER" in {f.rule_id for f in ctx.findings} and outcome.status.value == "analyzed"


@pytest.mark.timeout(HANG_TIMEOUT)
def test_many_links_to_one_object_are_read_once() -> None:
    child = ohdr(*[msg(0, b"\0" * 60)] * 200)  # 12 KiB of NIL messages
    links = [msg(0x06, bytes([1, 0, 5]) + f"l{i:04d}".encode() + u64(48 + 64 * BLOCK)) for i in range(1000)]
    data = build(ohdr(*links).ljust(64 * BLOCK, b"\0"), child)
    tally = Tally()
    contents = hdf5.read_attributes(counting_source(data, "m.h5", tally).open(), len(data))
    assert contents.objects == 2 and contents.problems == ()
    assert tally.bytes_read <= 2 * len(data)


def test_object_budget_is_a_limit_finding(tmp_path: Path) -> None:
    path = write(tmp_path / "m.h5", {"model_config": json.dumps(k2_sequential([k2_dense("d", 2)]))})
    evidence = aivet.scan(path, limits=replace(DEFAULT_LIMITS, max_hdf5_objects=2))
    (limit,) = [f for f in evidence.findings if f.rule_id == "SCAN-LIMIT-EXCEEDED"]
    assert limit.details["limit"] == "max_hdf5_objects"
    assert evidence.artifacts[0].status.value == "partial"


def test_claimed_huge_header_block_is_not_read() -> None:
    root = b"OHDR" + bytes([2, 0x03]) + u64(1 << 40)  # chunk 0 of a TiB
    ctx, outcome = analyze(build(root))
    assert "SCAN-LIMIT-EXCEEDED" in {f.rule_id for f in ctx.findings} and outcome.status.value == "partial"


def test_many_broken_children_are_counted_not_listed() -> None:
    data = build(ohdr(*[hard_link(f"b{i:03d}", 1 + i % 3) for i in range(60)]), b"JUNK" * 8, b"BAD!" * 8,
                 b"\0" * 64)
    ctx, outcome = analyze(data)
    parse = [f for f in ctx.findings if f.rule_id == "SCAN-PARSE-ERROR"]
    assert len(parse) == 3 and outcome.status.value == "partial"  # three distinct objects, each read once
    data = build(ohdr(*[msg(0x0C, b"\x09" + b"\0" * 15) for _ in range(50)]))  # 50 bad attribute messages
    ctx, _ = analyze(data)
    parse = [f for f in ctx.findings if f.rule_id == "SCAN-PARSE-ERROR"]
    assert len(parse) == 21 and parse[-1].details["more"] == 30


# ---------------------------------------------------------------------------------------------
# Regressions: amplification through structures shared between objects or entries
# ---------------------------------------------------------------------------------------------

def at(block: int, offset: int = 0) -> bytes:
    return u64(48 + block * BLOCK + offset)


def symbol_table(tree: int, heap: int) -> bytes:
    return msg(0x11, at(tree) + at(heap))


def local_heap(block: int, names: bytes) -> bytes:
    """A local heap whose data segment follows its 32-byte header in the same block."""
    return b"HEAP" + b"\0" * 4 + u64(len(names)) + UNDEF + at(block, 32) + names


def group_leaf(*nodes: int) -> bytes:
    """A level-0 group B-tree node listing the symbol table nodes in ``nodes``."""
    return (b"TREE" + bytes([0, 0]) + struct.pack("<H", len(nodes)) + UNDEF + UNDEF
            + b"".join(u64(0) + at(n) for n in nodes) + u64(0))


def symbol_node(*targets: bytes) -> bytes:
    """A symbol table node whose entries all name the heap's first string and point at ``targets``."""
    return b"SNOD" + bytes([1, 0]) + struct.pack("<H", len(targets)) + b"".join(
        u64(0) + t + b"\0" * 24 for t in targets)


def attribute(name: str, dt: bytes, ds: bytes, raw: bytes, flags: int = 0) -> bytes:
    encoded = name.encode() + b"\0"
    return msg(0x0C, struct.pack("<BBHHHB", 3, flags, len(encoded), len(dt), len(ds), 0) + encoded + dt + ds + raw)


def read_bytes(data: bytes, **limits: int) -> hdf5.Hdf5Contents:
    return hdf5.read_attributes(io.BytesIO(data), len(data), replace(hdf5.HDF5_LIMITS, **limits))


def test_symbol_table_node_listed_many_times_is_read_once() -> None:
    # Thirty B-tree entries name one node of ten links: it used to be read thirty times (300 links listed).
    data = build(ohdr(symbol_table(1, 2)), group_leaf(*[4] * 30), local_heap(2, b"m\0"), ohdr(),
                 symbol_node(*[at(3)] * 10))
    contents = read_bytes(data, max_links=50)
    assert contents.objects == 2 and contents.problems == ()


def test_index_entries_are_bounded_over_all_objects() -> None:
    # Eight groups share one symbol table: cached pages cost no read budget, so entries are counted.
    children = b"".join(ohdr(symbol_table(5, 2)).ljust(64, b"\0") for _ in range(8))
    data = build(ohdr(symbol_table(1, 2)), group_leaf(4), local_heap(2, b"m\0"), children,
                 symbol_node(*[at(3, 64 * k) for k in range(8)]), group_leaf(6), symbol_node(*[UNDEF] * 12))
    assert read_bytes(data).objects == 9 and read_bytes(data).problems == ()
    contents = read_bytes(data, max_index_entries=60)
    assert contents.objects < 9
    (problem,) = contents.problems
    assert problem.kind == hdf5.OVER_LIMIT and problem.limit == "max_index_entries"


def test_empty_variable_length_strings_are_charged() -> None:
    # An array of empty vlen strings cost nothing against max_total_value_bytes, yet each kept element is memory.
    vlen_string = bytes([0x19, 0x01, 0, 0]) + struct.pack("<I", 16) + bytes([0x13, 0, 0, 0]) + struct.pack("<I", 1)
    data = build(ohdr(attribute("names", vlen_string, bytes([2, 1, 0, 1]) + u64(3000), b"\0" * 16 * 3000)))
    (attr,) = read_bytes(data).attributes
    assert attr.type_class == "vlen-string" and attr.value == (b"",) * 3000
    contents = read_bytes(data, max_total_value_bytes=3000 * 16 - 1)
    (problem,) = contents.problems
    assert problem.limit == "max_total_value_bytes" and contents.attributes == ()


def test_one_long_name_shared_by_many_links_is_charged() -> None:
    # Twelve entries share one 20 000-byte name: each copy (and each path built on it) is kept in memory.
    data = build(ohdr(symbol_table(1, 4)), group_leaf(3), ohdr(), symbol_node(*[at(2)] * 12),
                 local_heap(4, b"n" * 20_000 + b"\0"))
    assert read_bytes(data).objects == 2 and read_bytes(data).problems == ()
    (problem,) = read_bytes(data, max_name_bytes=100_000).problems
    assert problem.kind == hdf5.OVER_LIMIT and problem.limit == "max_name_bytes"


def test_named_datatypes_sharing_one_long_message_are_kept_small() -> None:
    # A hundred committed datatypes whose headers all continue into one 60 KB datatype message: the reader
    # used to keep the message once per datatype (6 MB here, gigabytes from a few megabytes of file).
    named, per_block = 96, 8
    header_blocks = named // per_block  # blocks 1 .. header_blocks, headers 64 bytes apart
    attrs = ochk(*[attribute(f"a{i:03d}", bytes([3, 2]) + at(1 + i // per_block, 64 * (i % per_block)),
                             bytes([2, 0, 0, 0]), b"x", flags=0x01)  # the datatype is shared (committed)
                   for i in range(named)])
    string_type = bytes([0x13, 0, 0, 0]) + struct.pack("<I", 1)
    shared = ochk(msg(0x03, string_type.ljust(60_000, b"\0")))
    shared_at = 48 + (1 + header_blocks) * BLOCK + len(attrs)  # right after the (long) attribute block
    link = msg(0x10, u64(shared_at) + u64(len(shared)))
    headers = [ohdr(link).ljust(64, b"\0") * per_block] * header_blocks
    root = ohdr(msg(0x10, at(1 + header_blocks) + u64(len(attrs))))
    data = build(root, *headers, attrs, shared)
    contents, peak = memory_peak(lambda: read_bytes(data))
    assert contents.problems == () and len(contents.attributes) == named
    assert {a.value for a in contents.attributes} == {b"x"}
    assert peak < 3 * 1024 * 1024, peak


def test_global_heap_collections_parsed_again_are_charged() -> None:
    # Elements alternating between two collections that the collection cache cannot hold together: each
    # lookup parsed a collection again, charged to nothing (a cached page costs no read budget).
    def collection() -> bytes:
        obj = struct.pack("<HH4x", 1, 1) + u64(1) + b"a".ljust(8, b"\0")
        return b"GCOL" + bytes([1, 0, 0, 0]) + u64(16 + len(obj)) + obj

    vlen_string = bytes([0x19, 0x01, 0, 0]) + struct.pack("<I", 16) + bytes([0x13, 0, 0, 0]) + struct.pack("<I", 1)
    elements = b"".join(struct.pack("<I", 1) + at(1 + i % 2) + struct.pack("<I", 1) for i in range(1000))
    names = ochk(attribute("names", vlen_string, bytes([2, 1, 0, 1]) + u64(1000), elements))
    data = build(ohdr(continuation(3, names)), collection(), collection(), names)
    (attr,) = read_bytes(data, max_heap_bytes=60).attributes  # one collection (40 bytes) at a time
    assert attr.value == (b"a",) * 1000
    (problem,) = read_bytes(data, max_heap_bytes=60, max_index_entries=500).problems
    assert problem.kind == hdf5.OVER_LIMIT and problem.limit == "max_index_entries"
    assert read_bytes(data, max_index_entries=500).problems == ()  # both cached: each parsed once


# ---------------------------------------------------------------------------------------------
# Links that name paths (soft, external) and datasets stored in other files
# ---------------------------------------------------------------------------------------------

def findings_of(evidence: Evidence, rule: str) -> list[Any]:
    return [f for f in evidence.findings if f.rule_id == rule]


@pytest.mark.parametrize("libver", LIBVERS)
def test_external_link_and_external_storage_are_findings(tmp_path: Path, libver: str) -> None:
    # h5py/Keras open the linked file (or read the dataset's bytes from it) when the member is read.
    path = tmp_path / "m.h5"
    with h5py.File(path, "w", libver=libver) as f:
        f.attrs["model_config"] = json.dumps(k2_sequential([k2_dense("d", 2)]))
        f["model_weights"] = h5py.ExternalLink("/etc/secrets.h5", "/model_weights")
        f.create_dataset("leak", shape=(16,), dtype="u1", external=[("../../home/u/.aws/credentials", 0, 16)])
    evidence = aivet.scan(path)
    (link,) = findings_of(evidence, "HDF5-EXTERNAL-LINK")
    assert link.severity is Severity.HIGH and link.location.pointer == "/model_weights"
    assert link.details["file"] == "/etc/secrets.h5" and link.details["target"] == "/model_weights"
    (storage,) = findings_of(evidence, "HDF5-EXTERNAL-STORAGE")
    assert storage.severity is Severity.HIGH and storage.details["file"] == "../../home/u/.aws/credentials"
    assert storage.details["size"] == 16 and storage.location.pointer == "/leak"
    assert evidence.artifacts[0].status.value == "analyzed"


def test_external_file_severity_follows_where_it_leads(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "inside.h5").write_bytes(b"")
    (repo / "escape.h5").symlink_to(tmp_path / "outside.h5")
    (tmp_path / "outside.h5").write_bytes(b"")
    path = repo / "m.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f["inside"] = h5py.ExternalLink("inside.h5", "/")
        f["missing"] = h5py.ExternalLink("missing.h5", "/")
        f["escape"] = h5py.ExternalLink("escape.h5", "/")
        f["url"] = h5py.ExternalLink("C:\\Users\\x.h5", "/")
    severities = {f.location.pointer: f.severity for f in findings_of(aivet.scan(repo), "HDF5-EXTERNAL-LINK")}
    assert severities == {"/inside": Severity.LOW, "/missing": Severity.MEDIUM, "/escape": Severity.HIGH,
                          "/url": Severity.HIGH}
    # Inside an archive nothing is on disk: a relative name resolves against the loader's working directory.
    ctx = Context(subject="s")
    keras_hdf5.analyze_hdf5(Source.from_bytes(path.read_bytes(), "a.zip!m.h5"), ctx)
    assert {f.location.pointer: f.severity for f in ctx.findings}["/inside"] is Severity.MEDIUM


@pytest.mark.parametrize("libver", LIBVERS)
def test_soft_link_through_an_external_link_is_named(tmp_path: Path, libver: str) -> None:
    path = tmp_path / "m.h5"
    with h5py.File(path, "w", libver=libver) as f:
        hidden = f.create_group("a").create_group("b")
        hidden["ext"] = h5py.ExternalLink("/tmp/w.h5", "/")
        f["alias"] = f["a"]  # a second hard path to the same group: resolution must see through it
        f["model_weights"] = h5py.SoftLink("/alias/b/./ext/layer")
        f["chain"] = h5py.SoftLink("model_weights")
        f["local"] = h5py.SoftLink("/a/b")
    contents = read(path)
    through = {link.path: link.through for link in contents.links if link.kind == hdf5.SOFT}
    assert through == {"/model_weights": "/a/b/ext", "/chain": "/a/b/ext", "/local": None}
    (finding,) = findings_of(aivet.scan(path), "HDF5-EXTERNAL-LINK")
    assert set(finding.details["soft_links"]) == {"/model_weights", "/chain"}


def test_symbol_table_soft_links_are_listed_and_their_targets_read(tmp_path: Path, marker_dir: Path) -> None:
    # With libver 'earliest' a soft link is a symbol table entry whose scratch pad points at the path.
    path = tmp_path / "m.h5"
    with h5py.File(path, "w", libver="earliest") as f:
        f.create_group("real").attrs["cfg"] = json.dumps(lambda_config(marker_dir, "soft"))
        f["model_weights"] = h5py.SoftLink("/real")
        f["dangling"] = h5py.SoftLink("/nowhere/x")
    contents = read(path)
    assert {(link.path, link.target) for link in contents.links} == {("/model_weights", "/real"),
                                                                     ("/dangling", "/nowhere/x")}
    assert all(link.through is None for link in contents.links) and contents.problems == ()
    assert_lambda_found(aivet.scan(path), "/real/@cfg")  # the object behind the soft link is read


def test_external_link_in_dense_link_storage(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    with h5py.File(path, "w", libver="latest") as f:
        g = f.create_group("model_weights")
        for i in range(40):  # past the compact link limit: a fractal heap and a name index
            g.create_group(f"layer{i:02d}")
        g["layer99"] = h5py.ExternalLink("../x.h5", "/")
    contents = read(path)
    assert [(link.path, link.file) for link in contents.links] == [("/model_weights/layer99", "../x.h5")]
    assert contents.objects == 42


@pytest.mark.timeout(HANG_TIMEOUT)
def test_soft_link_cycles_and_long_paths_are_bounded() -> None:
    def soft(name: str, target: bytes) -> bytes:
        return msg(0x06, bytes([1, 0x08, 1, len(name)]) + name.encode() + struct.pack("<H", len(target)) + target)

    # a -> b -> a: libhdf5 gives up after 16 soft links, and so does the resolver.
    contents = read_bytes(build(ohdr(soft("a", b"/b/x"), soft("b", b"/a/y"))))
    assert [link.through for link in contents.links] == [None, None] and contents.problems == ()
    # Long targets stepping through a group that links to itself cost work: the index budget bounds it.
    loop = hard_link("g", 1)
    data = build(ohdr(loop, soft("s0", b"/g" * 100), soft("s1", b"/g" * 100 + b"/s0")), ohdr(loop))
    assert [link.through for link in read_bytes(data).links] == [None, None]
    contents = read_bytes(data, max_index_entries=150)
    assert [p.limit for p in contents.problems] == ["max_index_entries"] and len(contents.links) == 2


def test_reserved_link_type_and_bad_external_value_are_problems() -> None:
    bad_type = msg(0x06, bytes([1, 0x08, 7, 1]) + b"x" + struct.pack("<H", 0))
    bad_ext = msg(0x06, bytes([1, 0x08, 64, 1]) + b"y" + struct.pack("<H", 3) + b"\x10a\0")
    user = msg(0x06, bytes([1, 0x08, 65, 1]) + b"u" + struct.pack("<H", 2) + b"zz")
    contents = read_bytes(build(ohdr(bad_type, bad_ext, user)))
    assert len(contents.problems) == 2
    assert [(link.kind, link.link_type) for link in contents.links] == [(hdf5.USER_DEFINED, 65)]


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from([1, 64, 65, 2]), value=st.binary(max_size=300),
       storage=st.binary(max_size=64))
def test_random_link_values_and_external_storage_messages(kind: int, value: bytes, storage: bytes) -> None:
    link = msg(0x06, bytes([1, 0x08, kind, 1]) + b"n" + struct.pack("<H", len(value)) + value)
    link2 = msg(0x06, bytes([1, 0x08, 1, 1]) + b"m" + struct.pack("<H", len(value)) + value)
    ext = msg(0x07, storage)
    data = build(ohdr(link, link2, ext, hard_link("g", 1)), ohdr(ext))
    contents = read_bytes(data)
    assert len(contents.links) + len(contents.problems) >= 1
    ctx, outcome = analyze(data)  # findings, never an exception
    assert outcome.status.value in ("analyzed", "partial")


@pytest.mark.parametrize("kind", ["compound", "enum", "opaque", "reference"])
@pytest.mark.parametrize("name", ["model_config", "training_config"])
def test_keras_attribute_of_an_undecoded_type_fails_closed(tmp_path: Path, kind: str, name: str) -> None:
    # Keras json-decodes these two attributes; one this reader does not decode must not pass silently.
    path = write(tmp_path / "m.h5", {})
    with h5py.File(path, "a") as f:
        if kind == "compound":
            f.attrs[name] = np.array([(1, b"{}")], dtype=[("x", "i4"), ("cfg", "S8")])[0]
        elif kind == "enum":
            f.attrs.create(name, 1, dtype=h5py.enum_dtype({"A": 0, "B": 1}, basetype="i1"))
        elif kind == "opaque":
            f.attrs[name] = np.void(b'{"class_name": "Lambda"}')
        else:
            f.attrs[name] = f["model_weights"].ref
    assert next(a for a in read(path).attributes if a.name == name).type_class == kind
    evidence = aivet.scan(path)
    (finding,) = findings_of(evidence, "KERAS-CONFIG-UNREADABLE")
    assert finding.location.pointer == f"/@{name}"
    assert evidence.artifacts[0].status.value == "partial"


def test_dataset_declaring_far_more_than_the_file_holds(tmp_path: Path) -> None:
    # CVE-2026-0897: a weight whose declared shape is huge; reading it allocates the whole array.
    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as f:
        vars_ = f.create_group("layers").create_group("dense").create_group("vars")
        vars_.create_dataset("0", shape=(1 << 20, 1 << 20), dtype="f4", chunks=(16, 16))
        vars_.create_dataset("1", data=np.zeros((2,), dtype="float32"))
        f["f8"] = np.dtype("f8")  # a committed datatype: its size is found through the reference
        vars_.create_dataset("2", shape=(1 << 18, 1 << 18), dtype=f["f8"], chunks=(16, 16))
    contents = read(path)
    assert {(d.path, d.nbytes) for d in contents.datasets} == {("/layers/dense/vars/0", 4 << 40),
                                                                ("/layers/dense/vars/1", 8),
                                                                ("/layers/dense/vars/2", 8 << 36)}
    findings = findings_of(aivet.scan(path), "HDF5-OVERSIZED-DATASET")
    assert [f.location.pointer for f in findings] == ["/layers/dense/vars/0", "/layers/dense/vars/2"]
    assert findings[0].severity is Severity.MEDIUM and list(findings[0].details["shape"]) == [1 << 20, 1 << 20]


@pytest.mark.parametrize("libver", LIBVERS)
def test_virtual_dataset_sources_in_other_files(tmp_path: Path, libver: str) -> None:
    # Reading a virtual dataset opens every source file of its mapping ("." is this file).
    path = tmp_path / "m.h5"
    with h5py.File(path, "w", libver=libver) as f:
        f.create_dataset("local", data=np.zeros(4, dtype="f4"))
        layout = h5py.VirtualLayout(shape=(16,), dtype="f4")
        layout[0:4] = h5py.VirtualSource("/srv/other/secrets.h5", "data", shape=(4,))
        layout[4:8] = h5py.VirtualSource(".", "/local", shape=(4,))[::1]
        layout[8:12] = h5py.VirtualSource(".", "/local", shape=(4,))
        layout[12:16] = h5py.VirtualSource("/srv/other/secrets.h5", "more", shape=(4,))
        f.create_virtual_dataset("model_weights", layout)
    contents = read(path)
    assert [(e.kind, e.file, e.source_dataset) for e in contents.external_storage] == [
        ("virtual", "/srv/other/secrets.h5", "data"), ("virtual", "/srv/other/secrets.h5", "more")]
    (finding,) = findings_of(aivet.scan(path), "HDF5-EXTERNAL-STORAGE")  # one per (dataset, file)
    assert finding.severity is Severity.HIGH and finding.details["kind"] == "virtual"
    assert finding.location.pointer == "/model_weights"


def test_external_link_in_keras_v3_weights(tmp_path: Path) -> None:
    # Keras 3 opens model.weights.h5 from inside the zip: a relative link resolves against its cwd.
    import zipfile

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("layers")["dense"] = h5py.ExternalLink("weights/dense.h5", "/vars")
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps({"module": "keras", "class_name": "Sequential", "config": {}}))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        zf.writestr("model.weights.h5", buf.getvalue())
    (finding,) = findings_of(aivet.scan(path), "HDF5-EXTERNAL-LINK")
    assert finding.severity is Severity.MEDIUM and finding.location.path.endswith("m.keras!model.weights.h5")


_SELECTIONS = st.sampled_from([
    struct.pack("<II", 3, 1) + bytes(8),  # all
    struct.pack("<IIBBI", 2, 3, 1, 2, 1) + bytes(8),  # regular hyperslab, 2-byte values, rank 1
    struct.pack("<IIII", 2, 1, 0, 12) + bytes(12),  # version 1 hyperslab with its length
])


@settings(max_examples=200, deadline=None)
@given(entries=st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=6), _SELECTIONS, _SELECTIONS,
                                  st.sampled_from([0, 4, 1])), max_size=4),
       encoding=st.sampled_from([0, 1, 2]), claimed=st.integers(0, 2**64 - 1) | st.just(-1),
       noise=st.binary(max_size=24))
def test_virtual_dataset_mappings_never_raise(entries: list[tuple[bytes, bytes, bytes, bytes, int]], encoding: int,
                                              claimed: int, noise: bytes) -> None:
    # Built mappings (some valid, some not) behind a version 4 layout message, read through the walk.
    body = b""
    for file, dataset, src, vds, flags in entries:
        body += (bytes([flags]) if encoding == 1 else b"") + file + b"\0" + dataset + b"\0" + src + vds
    count = len(entries) if claimed < 0 else claimed
    obj = bytes([encoding]) + u64(count) + body + noise
    gcol_size = 16 + 16 + pad8(len(obj)) + 16
    gcol = (b"GCOL" + bytes([1, 0, 0, 0]) + u64(gcol_size) + struct.pack("<HH4x", 1, 0) + u64(len(obj))
            + obj.ljust(pad8(len(obj)), b"\0"))
    layout = msg(0x08, bytes([4, 3]) + at(1) + struct.pack("<I", 1))
    space = msg(0x01, bytes([2, 1, 1, 0]) + u64(4))
    data = build(ohdr(hard_link("v", 2)), gcol.ljust(BLOCK * 1, b"\0")[:BLOCK], ohdr(space, layout))
    try:
        contents = read_bytes(data)
    except (FormatError, LimitExceeded):
        return
    assert all(e.kind == "virtual" and e.file != "." for e in contents.external_storage)
    analyze(data)


def pad8(n: int) -> int:
    return (n + 7) & ~7


# ---------------------------------------------------------------------------------------------
# Filter plugins: native code libhdf5 loads by filter id when a dataset is read
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("libver", LIBVERS)
def test_datasets_needing_filter_plugins_are_findings(tmp_path: Path, libver: str) -> None:
    # h5py writes an unavailable filter id only as optional; libhdf5 still looks the id up in its plugin
    # path when the dataset is read. gzip, shuffle, fletcher32 and h5py's own LZF need no plugin.
    path = tmp_path / "m.h5"
    with h5py.File(path, "w", libver=libver) as f:
        f.attrs["model_config"] = json.dumps(k2_sequential([k2_dense("d", 2)]))
        w = f.create_group("model_weights")
        w.create_dataset("plain", data=np.zeros(8, dtype="f4"), compression="gzip", shuffle=True, fletcher32=True)
        w.create_dataset("lzf", data=np.zeros(8, dtype="f4"), compression="lzf")
        for i in range(7):
            w.create_dataset(f"blosc{i}", data=np.zeros(8, dtype="f4"), compression=32001, allow_unknown_filter=True)
        w.create_dataset("zstd", shape=(8,), dtype="f4", compression=32015, compression_opts=(3,),
                         allow_unknown_filter=True)
        w.create_dataset("test", shape=(8,), dtype="f4", compression=300, allow_unknown_filter=True)
        f.create_group("g").attrs["x"] = 1
    contents = read(path)
    ids = {p.path: [flt.filter_id for flt in p.filters] for p in contents.filter_pipelines}
    assert ids["/model_weights/plain"] == [2, 1, 3] and ids["/model_weights/lzf"] == [32000]
    assert ids["/model_weights/zstd"] == [32015] and ids["/model_weights/blosc0"] == [32001]
    assert all(flt.optional for flt in contents.filter_pipelines[-1].filters)
    evidence = aivet.scan(path)
    found = {f.details["filter_id"]: f for f in findings_of(evidence, "HDF5-FILTER-PLUGIN")}
    assert set(found) == {300, 32001, 32015}
    assert all(f.severity is Severity.LOW for f in found.values())
    blosc = found[32001]
    assert blosc.details["filter_name"] == "Blosc" and blosc.details["count"] == 7
    assert blosc.location.pointer == "/model_weights/blosc0" and "and 2 more" in blosc.message
    assert "Zstandard" in found[32015].message and found[300].details["filter_name"] == ""
    assert evidence.artifacts[0].status.value == "analyzed"


def filter_pipeline(version: int, *filters: tuple[int, bytes, int, int]) -> bytes:
    """A filter pipeline message: (id, name, flags, client data values) per filter, laid out as ``version`` says."""
    out = bytes([version, len(filters)]) + (bytes(6) if version == 1 else b"")
    for fid, name, flags, values in filters:
        raw = name + b"\0" if name else b""
        if version == 1:
            raw = raw.ljust(pad8(len(raw)), b"\0")
            out += struct.pack("<HHHH", fid, len(raw), flags, values)
        elif fid >= 256:
            out += struct.pack("<HHHH", fid, len(raw), flags, values)
        else:
            out += struct.pack("<HHH", fid, flags, values)
            raw = b""
        out += raw + struct.pack(f"<{values}I", *range(values))
        out += bytes(4) if version == 1 and values % 2 else b""
    return msg(0x0B, out)


LAYOUT = msg(0x08, bytes([3, 2, 1]) + bytes(8 + 4 + 4))  # version 3, chunked, rank 1: enough for the walk
SPACE = msg(0x01, bytes([2, 1, 1, 0]) + u64(4))


def test_filter_pipeline_versions_names_and_padding() -> None:
    v1 = filter_pipeline(1, (1, b"deflate", 0, 1), (32008, b"bitshuffle", 1, 3), (32004, b"", 0, 0))
    v2 = filter_pipeline(2, (2, b"shuffle", 0, 1), (32001, b"deflate", 0, 7), (32015, b"", 1, 0))
    data = build(ohdr(hard_link("a", 1), hard_link("b", 2), hard_link("g", 3)), ohdr(SPACE, LAYOUT, v1),
                 ohdr(SPACE, LAYOUT, v2), ohdr(v1))  # /g has no layout: a group, never read as a dataset
    contents = read_bytes(data)
    assert contents.problems == ()
    got = {p.path: [(f.filter_id, f.name, f.optional) for f in p.filters] for p in contents.filter_pipelines}
    assert got == {"/a": [(1, "deflate", False), (32008, "bitshuffle", True), (32004, "", False)],
                   "/b": [(2, "", False), (32001, "deflate", False), (32015, "", True)]}
    ctx, _ = analyze(data)
    found = {f.details["filter_id"]: f for f in ctx.findings if f.rule_id == "HDF5-FILTER-PLUGIN"}
    assert set(found) == {32001, 32004, 32008, 32015}
    # A stored name is only a label (libhdf5 finds filters by id): a plugin calling itself "deflate" is still one.
    assert found[32001].details["stored_name"] == "deflate" and found[32001].details["filter_name"] == "Blosc"


def test_malformed_and_shared_filter_pipelines_are_problems() -> None:
    too_many = filter_pipeline(2, *[(32001, b"", 0, 0)] * 33)
    truncated = msg(0x0B, filter_pipeline(1, (32001, b"blosc", 0, 3))[4:-6])
    unknown = msg(0x0B, bytes([3, 0]))
    shared = msg(0x0B, bytes([2, 0]) + u64(0), flags=0x02)
    objects = [ohdr(SPACE, LAYOUT, m) for m in (too_many, truncated, unknown, shared)]
    data = build(ohdr(*[hard_link(f"d{i}", i + 1) for i in range(len(objects))]), *objects)
    contents = read_bytes(data)
    assert contents.filter_pipelines == ()
    kinds = {p.path: p.kind for p in contents.problems}
    assert kinds == {"/d0": hdf5.MALFORMED, "/d1": hdf5.MALFORMED, "/d2": hdf5.MALFORMED, "/d3": hdf5.UNSUPPORTED}
    assert {d.path for d in contents.datasets} == {"/d0", "/d1", "/d2", "/d3"}  # sizes are still read
    ctx, outcome = analyze(data)
    assert outcome.status.value == "partial" and not [f for f in ctx.findings if f.rule_id == "HDF5-FILTER-PLUGIN"]


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=80), version=st.sampled_from([1, 2, 3]), count=st.integers(0, 40))
def test_random_filter_pipeline_messages_never_raise(body: bytes, version: int, count: int) -> None:
    data = build(ohdr(hard_link("d", 1)), ohdr(SPACE, LAYOUT, msg(0x0B, bytes([version, count]) + body)))
    contents = read_bytes(data)
    assert len(contents.filter_pipelines) + len(contents.problems) == 1
    assert all(len(p.filters) <= 32 for p in contents.filter_pipelines)
    analyze(data)
