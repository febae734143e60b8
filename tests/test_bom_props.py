"""Property tests: model-card metadata parsers never raise anything but MetadataError, and finish quickly."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.provenance.hashing import walk
from aivet.provenance.modelcard import (
    FrontMatter,
    MetadataError,
    collect,
    extract_front_matter,
    parse_config,
    parse_front_matter,
)
from tests.fixtures.work import HANG_TIMEOUT

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Hostile input must never hang a parser: a hang fails the test, a slow machine does not.
pytestmark = pytest.mark.timeout(HANG_TIMEOUT)
VALID_FRONT = (b"---\nlicense: apache-2.0\nbase_model: [org/base]\ndatasets:\n  - a/b\nlanguage: en\n"
               b"pipeline_tag: text-generation\ntags: [x, y]\n---\n# body\n")
VALID_CONFIG = json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
                           "num_hidden_layers": 2, "text_config": {"vocab_size": 10}}).encode()
YAML_ALPHABET = st.sampled_from(list("-:[]{}&*!|>'\"#%@`?,\n\t ") + ["---\n", "\n---\n", "a", "1", "- ", "&x ",
                                                                     "*x", "!!python/object:os.system ", "<<: "])


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for pos, kind, chunk in edits:
        at = pos % (len(out) + 1)
        if kind == 0:
            out[at:at] = chunk
        elif kind == 1:
            del out[at:at + len(chunk) + 1]
        else:
            out[at:at + len(chunk)] = chunk
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 2), st.binary(min_size=1, max_size=8)),
                 max_size=6)


def _front_ok(data: bytes) -> None:
    try:
        result = parse_front_matter(data)
    except MetadataError:
        pass
    else:
        assert isinstance(result, FrontMatter)
        for value in (result.license, result.pipeline_tag, result.library_name):
            assert value is None or isinstance(value, str)
        assert all(isinstance(t, str) for t in result.tags + result.datasets + result.base_models)


@SETTINGS
@given(st.lists(YAML_ALPHABET, max_size=200).map("".join))
def test_front_matter_from_yaml_fragments(body: str) -> None:
    _front_ok(("---\n" + body + "\n---\n").encode())


@SETTINGS
@given(EDITS)
def test_front_matter_mutations(edits: list[tuple[int, int, bytes]]) -> None:
    _front_ok(mutate(VALID_FRONT, edits))


@SETTINGS
@given(st.binary(max_size=2000))
def test_front_matter_random_bytes(data: bytes) -> None:
    _front_ok(b"---\n" + data)


@SETTINGS
@given(st.text(max_size=500))
def test_extract_front_matter_text(text: str) -> None:
    try:
        out = extract_front_matter(text)
    except MetadataError:
        return
    assert out is None or isinstance(out, str)


def _config_ok(data: bytes) -> None:
    try:
        parse_config(data)
    except MetadataError:
        pass


@SETTINGS
@given(EDITS)
def test_config_mutations(edits: list[tuple[int, int, bytes]]) -> None:
    _config_ok(mutate(VALID_CONFIG, edits))


@SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(
                        st.sampled_from(["model_type", "architectures", "hidden_size", "text_config",
                                         "quantization_config", "quant_method", "vocab_size", "x"]), c, max_size=5),
                    max_leaves=30))
def test_config_any_json(value: object) -> None:
    _config_ok(json.dumps(value).encode())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["model.safetensors", "model.gguf", "README.md", "config.json"]))
def test_collect_never_raises_on_random_files(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / name).write_bytes(data)
        facts = collect(root, walk(root))
        assert all(p.path == name for p in facts.problems)
