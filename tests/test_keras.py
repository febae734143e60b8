"""Keras: config checks, legacy HDF5 (parsed; byte scan only as a fallback), Keras 3 .keras archives.

HDF5 structure cases (escaped keys, dense storage, subgroups, libver) are in tests/test_hdf5.py.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aivet
from aivet.analyzers import keras, keras_hdf5
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.source import Source
from aivet.evidence import Evidence, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS
from tests.fixtures import keras_files
from tests.fixtures.keras_files import k2_dense, k2_sequential, k3_dense, k3_model, write_h5, write_keras
from tests.fixtures.work import HANG_TIMEOUT, Tally, counting_source

pytest.importorskip("h5py")


def rules_of(evidence: Evidence) -> set[str]:
    return {f.rule_id for f in evidence.findings}


def check(config: Any) -> Context:
    ctx = Context(subject="s")
    keras.check_keras_config(config, Source.from_bytes(b"", "config.json"), ctx)
    return ctx


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, Evidence]]:
    root = tmp_path_factory.mktemp("keras")
    markers = tmp_path_factory.mktemp("keras-markers")
    return {s.name: (s, aivet.scan(s.path)) for s in keras_files.build(root, markers)}


def test_fixture_expectations(samples: dict[str, tuple[object, Evidence]]) -> None:
    for name, (sample, evidence) in samples.items():
        if sample.malicious:  # type: ignore[attr-defined]
            assert set(sample.expect_rules) <= rules_of(evidence), (name, evidence.findings)  # type: ignore[attr-defined]
            assert evidence.max_severity is not None
            assert evidence.max_severity >= sample.min_severity, name  # type: ignore[attr-defined]
        else:
            assert not evidence.at_or_above(Severity.LOW), (name, evidence.findings)
            assert all(a.status.value == "analyzed" for a in evidence.artifacts), evidence.artifacts


def test_formats(samples: dict[str, tuple[object, Evidence]]) -> None:
    _, h5 = samples["keras-h5-clean"]
    assert [a.format for a in h5.artifacts] == ["keras-hdf5"]
    note = h5.artifacts[0].note
    assert "structure parsed" in note and "2 Keras config(s) read from attributes" in note
    assert "byte-scan" not in note and "keras_version 2.12.0" in note
    _, k3 = samples["keras-v3-clean"]
    formats = {a.path.rsplit("!", 1)[-1]: a.format for a in k3.artifacts}
    assert formats["model.weights.h5"] == "hdf5"
    assert "keras-v3" in formats.values()


def test_h5_lambda_strings_come_from_bytecode(samples: dict[str, tuple[object, Evidence]]) -> None:
    _, evidence = samples["keras-h5-lambda"]
    (finding,) = [f for f in evidence.findings if f.rule_id == "KERAS-LAMBDA-LAYER"]
    assert {"os", "system"} <= set(finding.details["suspicious"])
    assert finding.location.offset is not None
    assert finding.location.pointer == "/@model_config/config/layers/2"
    assert finding.details["kind"] == "legacy Lambda"


def test_v3_lambda_pointer(samples: dict[str, tuple[object, Evidence]]) -> None:
    _, evidence = samples["keras-v3-lambda"]
    (finding,) = [f for f in evidence.findings if f.rule_id == "KERAS-LAMBDA-LAYER"]
    assert finding.location.path.endswith("lambda.keras!config.json")
    assert finding.location.pointer == "/config/layers/2/config/function"
    assert finding.details["kind"] == "Keras 3 __lambda__"


def test_function_reference_details() -> None:
    ctx = check(k3_model([k3_dense(activation={"module": "posix", "class_name": "function", "config": "system"})]))
    (finding,) = ctx.findings
    assert finding.rule_id == "KERAS-FUNCTION-REFERENCE" and finding.severity is Severity.CRITICAL
    assert (finding.details["module"], finding.details["function"]) == ("posix", "system")


def test_keras_functions_are_allowed() -> None:
    ctx = check(k3_model([k3_dense(activation={"module": "keras.activations", "class_name": "function",
                                               "config": "relu", "registered_name": "function"})]))
    assert ctx.findings == []


def test_tensorflow_keras_and_tf_keras_modules_are_allowed() -> None:
    for module in ("tensorflow.keras.layers", "tf_keras.src.layers", "keras.src.layers.core.dense", "keras_hub"):
        assert check({"module": module, "class_name": "Dense", "config": {}}).findings == []


def test_unknown_module_is_high_dangerous_is_critical() -> None:
    (f,) = check({"module": "some_pkg.layers", "class_name": "X", "config": {}}).findings
    assert f.severity is Severity.HIGH
    (f,) = check({"module": "subprocess", "class_name": "Popen", "config": {}}).findings
    assert f.severity is Severity.CRITICAL


@pytest.mark.parametrize("fn,severity", [("math.add", Severity.LOW), ("io.write_file", Severity.HIGH),
                                          ("compat.v1.py_func", Severity.HIGH),
                                          # tf.raw_ops reaches every op, and load_op_library native code
                                          ("raw_ops.WriteFile", Severity.HIGH), ("raw_ops.EagerPyFunc", Severity.HIGH),
                                          ("raw_ops.DataServiceDatasetV4", Severity.HIGH),
                                          ("load_op_library", Severity.HIGH), ("raw_ops.AddV2", Severity.LOW)])
def test_tf_op_lambda(fn: str, severity: Severity) -> None:
    (f,) = check({"class_name": "TFOpLambda", "config": {"name": "t", "function": fn}}).findings
    assert f.rule_id == "KERAS-TF-OP-LAMBDA" and f.severity is severity


def test_gadget_string_anywhere() -> None:
    ctx = check({"class_name": "Dense", "config": {"x": ["keras.config.enable_unsafe_deserialization"]}})
    assert [f.rule_id for f in ctx.findings] == ["KERAS-GADGET"]


def test_printable_strings_never_unmarshal() -> None:
    import marshal

    raw = marshal.dumps(compile("import subprocess; subprocess.call('x')", "<l>", "exec"))
    names = keras.printable_strings(raw)
    assert "subprocess" in names and "call" in names


def test_find_json_configs_handles_whitespace_strings_and_nesting() -> None:
    blob = (b"\x89HDF\r\n\x1a\n" + b"\x00" * 100 + b'{ "class_name" : "A", "s": "}{\\"", "c": {"class_name": "B"}}'
            + b"\x00" * 10 + b'{"module": "keras", "x": [1, {"y": 2}]}' + b"\x00")
    found = keras_hdf5.find_json_configs(io.BytesIO(blob), len(blob), 1 << 20)
    assert [json.loads(t)["class_name"] if t and b"class_name" in t[:20] else json.loads(t or b"{}").get("module")
            for _, t in found] == ["A", "keras"]
    assert found[0][0] == 108


def test_find_json_configs_across_chunk_boundary() -> None:
    pad = b"\x00" * (1024 * 1024 - 5)
    blob = pad + b'{"class_name": "Lambda", "config": {"function": "b3M="}}'
    found = keras_hdf5.find_json_configs(io.BytesIO(blob), len(blob), 1 << 20)
    assert [o for o, _ in found] == [len(pad)]


def test_unparseable_structure_falls_back_to_byte_scan_and_is_partial(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b'{"class_name": "Sequential", "config": {"layers": [' + b" " * 5000)
    ctx = Context(subject="s", options=ScanOptions(limits=replace(DEFAULT_LIMITS, max_string_bytes=1000)))
    outcome = keras_hdf5.analyze_hdf5(Source.from_file(path, "m.h5"), ctx)
    assert outcome.status.value == "partial" and "byte-scan fallback" in outcome.note
    assert [f.rule_id for f in ctx.findings] == ["SCAN-PARSE-ERROR", "SCAN-LIMIT-EXCEEDED"]


def test_invalid_json_config_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b'{"class_name": Lambda}' + b"\x00")
    ctx = Context(subject="s")
    outcome = keras_hdf5.analyze_hdf5(Source.from_file(path, "m.h5"), ctx)
    assert [f.rule_id for f in ctx.findings] == ["SCAN-PARSE-ERROR", "KERAS-CONFIG-UNREADABLE"]
    assert outcome.status.value == "partial"


def test_fallback_still_finds_a_lambda(tmp_path: Path, marker_dir: Path) -> None:
    # A file whose structure is broken (superblock version byte) still gets its config checked.
    path = write_h5(tmp_path / "l.h5", k2_sequential([keras_files.k2_lambda(marker_dir, "fallback")]))
    data = bytearray(path.read_bytes())
    data[8] = 9
    path.write_bytes(bytes(data))
    evidence = aivet.scan(path)
    assert {"SCAN-PARSE-ERROR", "KERAS-LAMBDA-LAYER"} <= rules_of(evidence)
    (artifact,) = evidence.artifacts
    assert artifact.status.value == "partial" and "byte-scan fallback located 1" in artifact.note


def test_not_hdf5_is_a_format_error() -> None:
    with pytest.raises(FormatError):
        keras_hdf5.analyze_hdf5(Source.from_bytes(b"nothdf5!" + b"\x00" * 10, "x.h5"), Context(subject="s"))


def test_plain_hdf5_without_config(tmp_path: Path) -> None:
    import h5py
    import numpy as np

    with h5py.File(tmp_path / "data.h5", "w") as f:
        f.create_dataset("x", data=np.arange(10))
    evidence = aivet.scan(tmp_path / "data.h5")
    assert [a.format for a in evidence.artifacts] == ["hdf5"] and evidence.findings == ()


def test_training_config_is_checked_too(tmp_path: Path) -> None:
    path = write_h5(tmp_path / "t.h5", k2_sequential([k2_dense("d", 2)]),
                    {"loss": {"class_name": "function", "module": "os", "config": "system"}})
    evidence = aivet.scan(path)
    assert "KERAS-FUNCTION-REFERENCE" in rules_of(evidence)


def test_keras_zip_without_config(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", "{}")
    ctx = Context(subject="s")
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        outcome = keras.analyze_keras_zip(zf, Source.from_bytes(buf.getvalue(), "m.keras"), ctx)
    assert outcome.format == "keras-v3" and outcome.status.value == "partial"
    assert [f.rule_id for f in ctx.findings] == ["KERAS-CONFIG-UNREADABLE"]


def test_keras_zip_direct_finds_lambda_in_config(tmp_path: Path) -> None:
    path = write_keras(tmp_path / "m.keras", k3_model([k3_dense(), {"class_name": "Lambda", "config": {
        "function": {"class_name": "__lambda__", "config": {"value": ["ZXhlYw==", None, None]}}}}]))
    ctx = Context(subject="s")
    with zipfile.ZipFile(path) as zf:
        keras.analyze_keras_zip(zf, Source.from_file(path, "m.keras"), ctx)
    assert "KERAS-LAMBDA-LAYER" in {f.rule_id for f in ctx.findings}
    assert any(a.path == "m.keras!model.weights.h5" for a in ctx.artifacts)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.sampled_from(["Lambda", "__lambda__", "function", "os", "keras", "get_file", "TFOpLambda"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["class_name", "module", "config", "function", "function_type",
                                       "registered_name", "code", "value", "x"]), children, max_size=5),
    max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_check_keras_config_never_raises(config: Any) -> None:
    check(config)


@pytest.fixture(scope="module")
def h5_base(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = write_h5(tmp_path_factory.mktemp("h5") / "b.h5", k2_sequential([k2_dense("d", 2)]))
    return path.read_bytes()


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_hdf5_never_crashes(h5_base: bytes, data: st.DataObject) -> None:
    base = bytearray(h5_base)
    start_cfg = base.find(b'{"class_name"')
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(max(0, start_cfg - 50), min(len(base) - 1, start_cfg + 400)))
        base[pos] = data.draw(st.sampled_from([0x22, 0x7B, 0x7D, 0x5C, 0x00, 0x41]))
    try:
        keras_hdf5.analyze_hdf5(Source.from_bytes(bytes(base), "m.h5"), Context(subject="s"))
    except (FormatError, LimitExceeded):
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_in_hdf5(data: bytes) -> None:
    blob = b"\x89HDF\r\n\x1a\n" + data
    keras_hdf5.analyze_hdf5(Source.from_bytes(blob, "r.h5"), Context(subject="s"))


@pytest.mark.timeout(HANG_TIMEOUT)
def test_many_unclosed_configs_stay_linear() -> None:
    # 200k config starts, none closed: re-reading max_string_bytes from each start would read
    # 200 GiB; resuming after the bytes already examined reads each byte about once.
    data = b"\x89HDF\r\n\x1a\n" + b'{"class_name": [' * 200_000
    ctx = Context(subject="s", options=ScanOptions(limits=replace(DEFAULT_LIMITS, max_string_bytes=1 << 20)))
    tally = Tally()
    outcome = keras_hdf5.analyze_hdf5(counting_source(data, "bomb.h5", tally), ctx)
    assert outcome.status.value == "partial"
    assert len(ctx.findings) <= 5
    assert tally.bytes_read <= 3 * len(data), (tally.bytes_read, len(data))  # about 2x: chunk scan, then the object


def test_escaped_quotes_across_read_blocks() -> None:
    body = b'{"class_name": "A", "s": "' + b"x" * (64 * 1024 - 27) + b'\\"}", "t": 1}'
    blob = b"\x89HDF\r\n\x1a\n" + body + b"\x00"
    (found,) = keras_hdf5.find_json_configs(io.BytesIO(blob), len(blob), 1 << 20)
    assert found[1] == body


def test_keras_zip_hands_members_to_the_archive_analyzer(tmp_path: Path) -> None:
    path = write_keras(tmp_path / "m.keras", k3_model([k3_dense()]))
    seen: list[str] = []
    ctx = Context(subject="s")
    with zipfile.ZipFile(path) as zf:
        keras.analyze_keras_zip(zf, Source.from_file(path, "m.keras"), ctx, analyze_member=seen.append)
    assert seen == ["model.weights.h5"] and ctx.findings == []


# -- safe_mode bypasses through Keras's own layers and functions ------------------------------

@pytest.mark.parametrize(("class_name", "key", "path", "remote"), [
    ("StringLookup", "vocabulary", "/etc/passwd", False),
    ("IntegerLookup", "vocabulary", "../../home/u/.ssh/id_rsa", False),
    ("TextVectorization", "vocabulary", "http://169.254.169.254/latest/meta-data/iam", True),
    ("IndexLookup", "vocabulary", "gs://attacker-bucket/vocab.txt", True),
    ("TFSMLayer", "filepath", "/tmp/dropped_saved_model", False),
])
def test_layer_that_reads_a_file_named_in_its_config(class_name: str, key: str, path: str, remote: bool) -> None:
    # CVE-2025-12058: lookup layers read a vocabulary *path* while the model is rebuilt (safe_mode on);
    # TFSMLayer loads whatever SavedModel its filepath names.
    layer = keras_files.k3_layer(class_name, {"name": "lookup", key: path, "max_tokens": None})
    (finding,) = check(k3_model([layer])).findings
    assert finding.rule_id == "KERAS-FILE-REFERENCE" and finding.severity is Severity.HIGH
    assert (finding.details["path"], finding.details["remote"]) == (path, remote)
    assert finding.location.pointer == "/config/layers/1"


def test_lookup_layer_with_inline_or_saved_vocabulary_is_clean() -> None:
    # What Keras writes: the vocabulary inline (a list) or null, kept as an asset in the archive.
    layers = [keras_files.k3_layer("StringLookup", {"name": "a", "vocabulary": ["x", "y"]}),
              keras_files.k3_layer("StringLookup", {"name": "b", "vocabulary": None})]
    assert check(k3_model(layers)).findings == []


@pytest.mark.parametrize(("module", "function"), [("keras.saving", "load_model"),
                                                  ("keras.src.utils.python_utils", "func_load"),
                                                  ("keras.src.legacy.saving.legacy_h5_format", "load_model")])
def test_keras_function_that_loads_code_or_models_is_a_gadget(module: str, function: str) -> None:
    # The module allowlist passes them; a Lambda calls them with arguments from the config.
    fn = {"module": module, "class_name": "function", "config": function, "registered_name": function}
    layer = keras_files.k3_layer("Lambda", {"name": "l", "function": fn, "arguments": {"filepath": "/tmp/x"}})
    assert "KERAS-GADGET" in {f.rule_id for f in check(k3_model([layer])).findings}


@pytest.mark.parametrize("key", ["output_shape", "mask"])
def test_legacy_lambda_output_shape_or_mask_bytecode_is_critical(tmp_path: Path, key: str) -> None:
    # Keras 2 Lambda.from_config func_load()s output_shape and mask too when their *_type is "lambda":
    # a harmless-looking function does not make the layer safe.
    layer = {"class_name": "Lambda", "config": {
        "name": "l", "function": "relu", "function_type": "function", "module": "keras.activations",
        key: [keras_files.lambda_b64(tmp_path, key), None, None], f"{key}_type": "lambda",
        f"{key}_module": "__main__"}}
    findings = check(keras_files.k2_sequential([layer])).findings
    (critical,) = [f for f in findings if f.rule_id == "KERAS-LAMBDA-LAYER"]
    assert critical.severity is Severity.CRITICAL and "os" in critical.details["suspicious"]
    assert critical.location.pointer == f"/config/layers/1/config/{key}"
    assert critical.details["kind"] == f"legacy Lambda {key}"


def test_code_nested_in_wrappers_shared_objects_and_compile_config(tmp_path: Path) -> None:
    # A Functional model whose nested Sequential wraps a Lambda (TimeDistributed) with __lambda__ code in
    # output_shape only, a shared object reused by id, and a loss naming builtins.exec.
    code = {"class_name": "__lambda__", "config": {"code": keras_files.lambda_b64(tmp_path, "nested"),
                                                   "defaults": None, "closure": None}}
    lam = keras_files.k3_layer("Lambda", {"name": "l", "function": {"module": "keras.ops", "class_name": "function",
                                                                    "config": "abs", "registered_name": None},
                                          "output_shape": code})
    wrapped = keras_files.k3_layer("TimeDistributed", {"name": "td", "layer": lam})
    inner = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [wrapped]},
             "shared_object_id": 140001}
    model = {"module": "keras", "class_name": "Functional", "config": {"name": "f", "layers": [
        {**inner, "name": "s", "inbound_nodes": []},
        {"shared_object_id": 140001, "class_name": "Sequential", "module": "keras", "config": {}}]},
        "compile_config": {"loss": {"module": "builtins", "class_name": "function", "config": "exec"}}}
    findings = check(model).findings
    lambdas = [f for f in findings if f.rule_id == "KERAS-LAMBDA-LAYER"]
    assert [f.location.pointer for f in lambdas] == [
        "/config/layers/0/config/layers/0/config/layer/config/output_shape"]
    (loss,) = [f for f in findings if f.rule_id == "KERAS-FUNCTION-REFERENCE"]
    assert loss.severity is Severity.CRITICAL and loss.location.pointer == "/compile_config/loss"
