"""TensorFlow SavedModel, frozen GraphDef and keras_metadata.pb analysis (TensorFlow not needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aivet
from aivet.analyzers import protobuf as protobuf_scan
from aivet.analyzers import savedmodel
from aivet.analyzers.context import Context
from aivet.analyzers.source import Source
from aivet.evidence import Evidence, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.formats.protobuf import Message
from tests.fixtures import Sample, tf_files, unmet_expectation
from tests.fixtures.tf_files import attr_func, attr_s, base_nodes, function, graph_def, node, saved_model
from tests.fixtures.work import HANG_TIMEOUT


def rules_of(evidence: Evidence) -> set[str]:
    return {f.rule_id for f in evidence.findings}


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, Evidence]]:
    root = tmp_path_factory.mktemp("tf")
    markers = tmp_path_factory.mktemp("tf-markers")
    return {s.name: (s, aivet.scan(s.path)) for s in tf_files.build(root, markers)}


def test_fixture_expectations(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    for name, (sample, evidence) in samples.items():
        assert all(a.status.value == "analyzed" for a in evidence.artifacts), (name, evidence.artifacts)
        assert unmet_expectation(sample, evidence, clean_below=Severity.LOW) is None


def test_formats_are_named(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    _, evidence = samples["tf-keras-metadata-clean"]
    formats = {a.path.rsplit("/", 1)[-1]: a.format for a in evidence.artifacts}
    assert formats == {"saved_model.pb": "tf-savedmodel", "keras_metadata.pb": "keras-metadata",
                       "fingerprint.pb": "tf-fingerprint"}
    _, frozen = samples["tf-frozen-graph-pyfunc"]
    assert frozen.artifacts[0].format == "tf-graphdef"


def test_hidden_op_reports_function_and_node(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    _, evidence = samples["tf-hidden-in-function"]
    ops = {(f.details["op"], f.details["node"], f.details["function"]) for f in evidence.findings}
    assert ops == {("ReadFile", "r", "__inference_call_7"), ("WriteFile", "w", "__inference_call_7")}


def test_pyfunc_is_critical(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    _, evidence = samples["tf-pyfunc"]
    (finding,) = evidence.findings
    assert finding.rule_id == "TF-PYTHON-OP" and finding.severity is Severity.CRITICAL
    assert finding.details["node"] == "py"


def test_debug_url_is_reported(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    _, evidence = samples["tf-debug-grpc"]
    (finding,) = evidence.findings
    assert finding.details["target"] == "grpc://attacker.invalid:6064"


def test_keras_lambda_in_metadata(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    _, evidence = samples["tf-keras-metadata-lambda"]
    (finding,) = [f for f in evidence.findings if f.rule_id == "KERAS-LAMBDA-LAYER"]
    assert finding.location.path.endswith("keras_metadata.pb")
    assert "system" not in finding.details["suspicious"]  # names come from the bytecode...
    assert "os" in finding.details["suspicious"]  # ...which imports os
    assert any("PWNED-tf-keras-metadata-lambda" in s for s in finding.details["strings"])


def test_print_to_file_and_decode_proto_descriptor() -> None:
    graph = graph_def(base_nodes() + [
        node("p", "PrintV2", ["x"], {"output_stream": attr_s("file:///tmp/leak.txt")}),
        node("d", "DecodeProtoV2", ["x"], {"descriptor_source": attr_s("/etc/descriptors.bin")}),
        node("ok", "DecodeProtoV2", ["x"], {"descriptor_source": attr_s("local://")}),
    ])
    ctx = Context(subject="s")
    protobuf_scan.analyze(Source.from_bytes(saved_model(graph), "saved_model.pb"), ctx)
    assert sorted((f.rule_id, f.details["node"]) for f in ctx.findings) == [
        ("TF-FILE-OP", "d"), ("TF-NETWORK-OP", "p")]


def test_undefined_called_function_is_reported() -> None:
    graph = graph_def([node("call", "PartitionedCall", [], {"f": attr_func("missing_fn")})],
                      [function("present", [node("a", "Identity")])])
    ctx = Context(subject="s")
    savedmodel.analyze_graph_def(Message.parse(graph), Source.from_bytes(graph, "g.pb"), ctx)
    assert [(f.rule_id, f.severity) for f in ctx.findings] == [("TF-CUSTOM-OP", Severity.MEDIUM)]


def test_library_function_used_as_op_is_not_custom() -> None:
    graph = graph_def([node("call", "my_fn")], [function("my_fn", [node("a", "Identity")])])
    ctx = Context(subject="s")
    savedmodel.analyze_graph_def(Message.parse(graph), Source.from_bytes(graph, "g.pb"), ctx)
    assert ctx.findings == []


def test_many_identical_findings_are_summarised() -> None:
    graph = graph_def([node(f"r{i}", "ReadFile") for i in range(30)])
    ctx = Context(subject="s")
    savedmodel.analyze_graph_def(Message.parse(graph), Source.from_bytes(graph, "g.pb"), ctx)
    assert len(ctx.findings) == 21
    assert ctx.findings[-1].details["count"] == 30


def test_unknown_protobuf_is_unsupported(tmp_path: Path) -> None:
    from tests.fixtures.tf_files import f_bytes, f_varint

    data = f_varint(9, 1) + f_bytes(11, b"\x00hello")
    ctx = Context(subject="s")
    outcome = protobuf_scan.analyze(Source.from_bytes(data, "thing.pb"), ctx)
    assert outcome.format == "protobuf" and outcome.status.value == "unsupported"
    assert [f.rule_id for f in ctx.findings] == ["SCAN-UNKNOWN-FORMAT"]


def test_corrupt_saved_model_is_a_parse_error(tmp_path: Path) -> None:
    data = saved_model(graph_def(base_nodes()))
    (tmp_path / "saved_model.pb").write_bytes(data[:-3])
    evidence = aivet.scan(tmp_path)
    assert "SCAN-PARSE-ERROR" in rules_of(evidence)


def _base() -> bytes:
    from tests.fixtures.tf_files import f_bytes

    # A second meta graph with an object graph whose user object carries Keras metadata.
    user = f_bytes(4, f_bytes(1, "_tf_keras_layer") + f_bytes(3, '{"class_name": "Lambda", "config": {}}'))
    return saved_model(graph_def(base_nodes() + [node("r", "ReadFile", ["x"]), node("s", "SaveV2", ["c"]),
                                                 _const_string("c", "/tmp/x")],
                                 [function("f", [node("p", "PyFunc", [], {"token": attr_s("t")})])]),
                       assets=["a.txt"]) + f_bytes(2, f_bytes(7, f_bytes(1, user)))


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(["saved_model.pb", "graph.pb", "keras_metadata.pb"]))
def test_mutated_saved_models_never_crash(data: st.DataObject, name: str) -> None:
    base = bytearray(_base())
    for _ in range(data.draw(st.integers(1, 6))):
        base[data.draw(st.integers(0, len(base) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(base)))
    try:
        protobuf_scan.analyze(Source.from_bytes(bytes(base[:cut]), name), Context(subject="s"))
    except (FormatError, LimitExceeded):
        pass


def test_huge_names_do_not_stop_the_analysis() -> None:
    graph = graph_def([node("n" * 100_000, "Identity"), node("py", "PyFunc", [], {"token": attr_s("t")})])
    ctx = Context(subject="s")
    outcome = savedmodel.analyze_graph_def(Message.parse(graph), Source.from_bytes(graph, "g.pb"), ctx)
    assert outcome.status.value == "analyzed"
    assert [f.rule_id for f in ctx.findings] == ["TF-PYTHON-OP"]


def test_keras_lambda_in_object_graph_user_metadata(marker_dir: Path) -> None:
    # tf.keras loads a SavedModel without keras_metadata.pb from SavedUserObject.metadata (MetaGraphDef
    # field 7 -> SavedObjectGraph.nodes -> SavedObject.user_object): a Lambda there runs on load too.
    from tests.fixtures.tf_files import f_bytes, f_varint, lambda_bytecode

    layer = json.dumps({"class_name": "Lambda", "config": {
        "name": "l", "function": [lambda_bytecode(marker_dir, "object-graph"), None, None],
        "function_type": "lambda"}})
    user = f_bytes(1, "_tf_keras_layer") + f_bytes(3, layer)
    objects = f_bytes(1, f_bytes(4, f_bytes(1, "_generic_user_object"))) + f_bytes(1, f_bytes(4, user))
    data = f_varint(1, 1) + f_bytes(2, f_bytes(2, graph_def(base_nodes())) + f_bytes(7, objects))
    ctx = Context(subject="s")
    outcome = protobuf_scan.analyze(Source.from_bytes(data, "saved_model.pb"), ctx)
    assert outcome.format == "tf-savedmodel"
    (finding,) = ctx.findings
    assert finding.rule_id == "KERAS-LAMBDA-LAYER" and finding.severity is Severity.CRITICAL
    assert finding.location.pointer == "/object_graph_def/nodes/1/user_object/metadata"


@pytest.mark.parametrize(("op", "rule"), [("DataServiceDatasetV4", "TF-NETWORK-OP"),
                                          ("RegisterDatasetV2", "TF-NETWORK-OP"),
                                          ("FileSystemSetConfiguration", "TF-FILE-OP"),
                                          ("MatchingFilesDataset", "TF-FILE-OP"),
                                          ("DistributedSave", "TF-FILE-OP")])
def test_data_service_and_file_system_ops_inside_nested_functions(op: str, rule: str) -> None:
    # Hidden two calls deep: a library function that only another library function calls.
    graph = graph_def(base_nodes() + [node("call", "StatefulPartitionedCall", [], {"f": attr_func("outer")})],
                      [function("outer", [node("c", "PartitionedCall", [], {"f": attr_func("inner")})]),
                       function("inner", [node("hidden", op, [], {"address": attr_s("grpc://x.invalid:1")})])])
    ctx = Context(subject="s")
    savedmodel.analyze_graph_def(Message.parse(graph), Source.from_bytes(graph, "g.pb"), ctx)
    assert [(f.rule_id, f.details["function"]) for f in ctx.findings] == [(rule, "inner")]


def _const_string(name: str, value: str) -> bytes:
    from tests.fixtures.tf_files import f_bytes, f_varint

    # AttrValue{tensor 8: TensorProto{dtype 1 = DT_STRING (7), string_val 8}}
    return node(name, "Const", attrs={"value": f_bytes(8, f_varint(1, 7) + f_bytes(8, value))})


@pytest.mark.parametrize("function_name", ["__inference__traced_restore_77", "my_checkpoint_helper"])
def test_checkpoint_op_behind_a_saver_name_with_a_path_constant_is_high(function_name: str) -> None:
    # Saver names are the author's: a "restore" function (run at load time) whose MergeV2Checkpoints
    # moves files to a constant absolute path must not pass as the saver.
    graph = graph_def(base_nodes(), [function(function_name, [
        node("merge", "MergeV2Checkpoints", ["src", "dst"], {"delete_old_dirs": f_varint_attr(1)}),
        _const_string("dst", "/home/user/.bashrc"), _const_string("src", "variables/variables")])])
    ctx = Context(subject="s")
    savedmodel.analyze_graph_def(Message.parse(graph), Source.from_bytes(graph, "g.pb"), ctx)
    (finding,) = ctx.findings
    assert finding.rule_id == "TF-CHECKPOINT-OP" and finding.severity is Severity.HIGH
    assert list(finding.details["paths"]) == ["/home/user/.bashrc"] and finding.details["node"] == "merge"


def test_saver_without_path_constants_stays_quiet_and_outside_it_is_medium() -> None:
    graph = graph_def(base_nodes() + [node("w", "SaveV2", ["p"]), _const_string("p", "ckpt/model")],
                      [function("__inference__traced_save_40", [
                          node("SaveV2", "SaveV2", ["file_prefix"]), _const_string("part", "_temp/part")])])
    ctx = Context(subject="s")
    savedmodel.analyze_graph_def(Message.parse(graph), Source.from_bytes(graph, "g.pb"), ctx)
    assert [(f.rule_id, f.severity, f.details["node"]) for f in ctx.findings] == [
        ("TF-CHECKPOINT-OP", Severity.MEDIUM, "w")]


def f_varint_attr(value: int) -> bytes:
    from tests.fixtures.tf_files import f_varint

    return f_varint(5, value)  # AttrValue{b 5}
