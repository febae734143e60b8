"""ONNX analysis: external-data traversal, custom-op domains, subgraphs, hostile bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aivet
from aivet.analyzers import paths
from aivet.analyzers import protobuf as protobuf_scan
from aivet.analyzers.context import Context
from aivet.analyzers.source import Source
from aivet.evidence import Evidence, Severity
from aivet.formats import FormatError, LimitExceeded
from tests.fixtures import Sample, onnx_files, unmet_expectation
from tests.fixtures.onnx_files import external_weights, make_model, save
from tests.fixtures.work import HANG_TIMEOUT

pytest.importorskip("onnx")


def rules_of(evidence: Evidence) -> set[str]:
    return {f.rule_id for f in evidence.findings}


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, Evidence]]:
    root = tmp_path_factory.mktemp("onnx")
    markers = tmp_path_factory.mktemp("onnx-markers")
    return {s.name: (s, aivet.scan(s.path)) for s in onnx_files.build(root, markers)}


def test_fixture_expectations(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    for name, (sample, evidence) in samples.items():
        assert all(a.format == "onnx" and a.status.value == "analyzed" for a in evidence.artifacts), name
        assert unmet_expectation(sample, evidence, clean_below=Severity.LOW) is None


def test_traversal_finding_names_tensor_and_path(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    _, evidence = samples["onnx-external-traversal"]
    (finding,) = [f for f in evidence.findings if f.rule_id == "ONNX-EXTERNAL-DATA-ESCAPE"]
    assert finding.details["path"] == "../../etc/passwd"
    assert finding.details["tensor"] == "W"
    assert finding.location.offset is not None


def test_symlink_escape_is_resolved(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    if "onnx-external-symlink" not in samples:
        pytest.skip("no symlinks here")
    _, evidence = samples["onnx-external-symlink"]
    (finding,) = [f for f in evidence.findings if f.rule_id == "ONNX-EXTERNAL-DATA-ESCAPE"]
    assert "outside-secret.bin" in finding.details["resolved"]


def test_nested_custom_op_is_found_in_subgraph(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    _, evidence = samples["onnx-nested-custom-op"]
    (finding,) = [f for f in evidence.findings if f.rule_id == "ONNX-CUSTOM-OP"]
    assert finding.details["op"] == "Steal" and finding.details["domain"] == "com.evil.ops"
    assert "subgraph" in finding.details["where"]


def test_metadata_props_are_reported_as_info(samples: dict[str, tuple[Sample, Evidence]]) -> None:
    _, evidence = samples["onnx-clean"]
    (finding,) = evidence.findings
    assert finding.rule_id == "ONNX-METADATA" and finding.severity is Severity.INFO
    assert finding.details["properties"] == {"author": "tests"}


def test_missing_external_data(tmp_path: Path) -> None:
    path = save(make_model(initializers=[external_weights("not-there.bin")]), tmp_path / "m.onnx")
    evidence = aivet.scan(path)
    assert rules_of(evidence) == {"ONNX-EXTERNAL-DATA-MISSING"}


def test_contrib_domain_is_low(tmp_path: Path) -> None:
    from onnx import helper

    node = helper.make_node("FusedMatMul", ["X", "W"], ["Y"], name="fm", domain="com.microsoft")
    evidence = aivet.scan(save(make_model([node], opsets={"com.microsoft": 1}), tmp_path / "m.onnx"))
    assert [(f.rule_id, f.severity) for f in evidence.findings] == [("ONNX-CUSTOM-OP", Severity.LOW)]


def test_structure_decides_not_the_name(tmp_path: Path) -> None:
    path = save(make_model(initializers=[external_weights("/etc/shadow")]), tmp_path / "weights.pb")
    evidence = aivet.scan(path)
    assert evidence.artifacts[0].format == "onnx"
    assert "ONNX-EXTERNAL-DATA-ESCAPE" in rules_of(evidence)


def test_in_archive_only_syntactic_checks() -> None:
    data = make_model(initializers=[external_weights("weights.bin")]).SerializeToString()
    ctx = Context(subject="s")
    outcome = protobuf_scan.analyze(Source.from_bytes(data, "a.zip!model.onnx", depth=1), ctx)
    assert outcome.format == "onnx" and ctx.findings == []
    bad = make_model(initializers=[external_weights("C:\\Windows\\win.ini")]).SerializeToString()
    protobuf_scan.analyze(Source.from_bytes(bad, "a.zip!model.onnx", depth=1), ctx)
    assert [f.rule_id for f in ctx.findings] == ["ONNX-EXTERNAL-DATA-ESCAPE"]


def test_truncated_model_is_a_parse_error(tmp_path: Path) -> None:
    data = make_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) - 7])
    evidence = aivet.scan(path)
    assert "SCAN-PARSE-ERROR" in rules_of(evidence)
    assert evidence.artifacts[0].status.value == "error"


def test_deeply_nested_subgraphs_hit_the_depth_limit() -> None:
    from onnx import TensorProto, helper

    out = helper.make_tensor_value_info("Z", TensorProto.FLOAT, [1])
    leaf = helper.make_graph([helper.make_node("Identity", ["X"], ["Z"])], "g", [], [out])
    graph = leaf
    for i in range(30):  # each level nests node -> attribute -> graph: 3 message levels
        node = helper.make_node("If", ["c"], ["Z"], then_branch=graph, else_branch=leaf, name=f"if{i}")
        graph = helper.make_graph([node], f"g{i}", [], [out])
    model = helper.make_model(graph)
    ctx = Context(subject="s")
    with pytest.raises(LimitExceeded):
        protobuf_scan.analyze(Source.from_bytes(model.SerializeToString(), "deep.onnx"), ctx)



def _base() -> bytes:
    from onnx import helper

    node = helper.make_node("Steal", ["X"], ["Y"], name="steal", domain="x.y")
    fn = helper.make_function("local.fns", "F", [], ["Y"], [helper.make_node("Identity", ["X"], ["Y"])],
                              [helper.make_opsetid("", 17)])
    fn.attribute_proto.append(helper.make_attribute("w", external_weights("../d.bin")))
    model = make_model([node], initializers=[external_weights("../w.bin")], metadata={"k": "v"})
    model.functions.append(fn)
    return model.SerializeToString()


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_models_never_crash(data: st.DataObject) -> None:
    base = bytearray(_base())
    for _ in range(data.draw(st.integers(1, 6))):
        base[data.draw(st.integers(0, len(base) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(base)))
    try:
        protobuf_scan.analyze(Source.from_bytes(bytes(base[:cut]), "model.onnx"), Context(subject="s"))
    except (FormatError, LimitExceeded):
        pass


def test_external_data_in_a_function_default_attribute() -> None:
    # FunctionProto.attribute_proto (field 11) holds default attribute values that are substituted
    # into the body when the function is inlined; a default tensor can name external data too.
    from onnx import AttributeProto, helper

    body = helper.make_node("Constant", [], ["Y"], name="c")
    ref = AttributeProto(name="value", ref_attr_name="w", type=AttributeProto.TENSOR)
    body.attribute.append(ref)
    default = helper.make_attribute("w", external_weights("../../../../home/u/.aws/credentials"))
    fn = helper.make_function("local.fns", "Leak", [], ["Y"], [body], [helper.make_opsetid("", 17)])
    fn.attribute_proto.append(default)
    call = helper.make_node("Leak", [], ["Y"], name="call", domain="local.fns")
    model = make_model([call], opsets={"local.fns": 1})
    model.functions.append(fn)
    ctx = Context(subject="s")
    protobuf_scan.analyze(Source.from_bytes(model.SerializeToString(), "m.onnx"), ctx)
    (finding,) = ctx.findings
    assert finding.rule_id == "ONNX-EXTERNAL-DATA-ESCAPE" and finding.severity is Severity.HIGH
    assert finding.details["path"] == "../../../../home/u/.aws/credentials"


def test_url_like_location_is_a_missing_file_not_a_download(tmp_path: Path) -> None:
    # Runtimes join `location` to the model directory; a URL is never fetched, only looked up as a file.
    path = save(make_model(initializers=[external_weights("https://evil.invalid/w.bin")]), tmp_path / "m.onnx")
    findings = [f for f in aivet.scan(path).findings if f.rule_id.startswith("ONNX-EXTERNAL")]
    assert [(f.rule_id, f.severity) for f in findings] == [("ONNX-EXTERNAL-DATA-MISSING", Severity.MEDIUM)]


@pytest.mark.parametrize(("name", "escapes"), [
    ("weights.bin", False), ("sub/w.bin", False), ("a..b.bin", False), ("", True), ("/etc/passwd", True),
    ("\\\\host\\share\\w", True), ("C:w.bin", True), ("c:\\w.bin", True), ("~/.ssh/id_rsa", True),
    ("sub/../../w", True), ("sub\\..\\w", True), ("w\x00.bin", True),
])
def test_shared_path_judgement(tmp_path: Path, name: str, escapes: bool) -> None:
    # One judgement for every format that names another file (ONNX external data, HDF5 links and storage).
    assert paths.escapes_syntactically(name) is escapes
    severity, _why = paths.reference_verdict(name, None, None)
    assert severity is (Severity.HIGH if escapes else Severity.MEDIUM)
    (tmp_path / "w.bin").write_bytes(b"")
    assert paths.resolve_sibling("w.bin", tmp_path / "m.onnx", None)[0] == paths.INSIDE
    assert paths.resolve_sibling("nope.bin", tmp_path / "m.onnx", None) == (paths.MISSING, None)
