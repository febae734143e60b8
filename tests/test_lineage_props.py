"""Property tests: lineage parsers take hostile input without raising anything unexpected, and quickly."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.formats import FormatError, LimitExceeded
from aivet.provenance.fingerprint import Fingerprint, FingerprintError, compare, fingerprint_files
from aivet.provenance.lineage import parse_config, parse_front_matter, parse_tokenizer, parse_vocab_merges
from tests.fixtures.work import HANG_TIMEOUT

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Hostile files must never hang a parser: a hang fails the test, a slow machine does not.
pytestmark = pytest.mark.timeout(HANG_TIMEOUT)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
config_keys = st.sampled_from(["model_type", "architectures", "vocab_size", "hidden_size", "rope_theta",
                               "rope_scaling", "text_config", "num_key_value_heads", "_name_or_path", "head_dim"])
configs = st.dictionaries(config_keys, json_values, max_size=8)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@SETTINGS
@given(st.binary(max_size=512) | configs.map(_dumps) | json_values.map(_dumps))
def test_config_parser_raises_only_format_errors(data: bytes) -> None:
    try:
        facts = parse_config(data)
    except (FormatError, LimitExceeded):
        return
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in facts.shape.values())
    assert facts.shape_digest.startswith("sha256:")


tokenizers = st.fixed_dictionaries({
    "model": st.fixed_dictionaries({
        "vocab": st.dictionaries(st.text(max_size=6), json_values, max_size=10) | st.lists(json_values, max_size=10),
        "merges": st.lists(st.text(max_size=8) | st.lists(json_values, max_size=3), max_size=10) | json_values,
    }),
    "added_tokens": json_values,
})


@SETTINGS
@given(st.binary(max_size=512) | tokenizers.map(_dumps) | json_values.map(_dumps))
def test_tokenizer_parser_raises_only_format_errors(data: bytes) -> None:
    try:
        facts = parse_tokenizer(data)
    except (FormatError, LimitExceeded):
        return
    assert facts.vocab_hash.startswith("sha256:") and facts.vocab_size >= 0


@SETTINGS
@given(st.binary(max_size=256), st.none() | st.binary(max_size=256))
def test_vocab_merges_parser_raises_only_format_errors(vocab: bytes, merges: bytes | None) -> None:
    try:
        parse_vocab_merges(vocab, merges)
    except (FormatError, LimitExceeded):
        pass


front = st.text(max_size=300) | st.builds(lambda body: f"---\n{body}\n---\n# card", st.text(max_size=300))


@SETTINGS
@given(front)
def test_front_matter_never_raises(text: str) -> None:
    bases, relation = parse_front_matter(text)
    assert all(isinstance(b, str) and b for b in bases)
    assert relation is None or isinstance(relation, str)


def _valid_model() -> bytes:
    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    return save({"a": rng.normal(size=(64, 64)).astype(np.float32), "b": rng.normal(size=(64, 80)).astype(np.float16),
                 "c": rng.normal(size=(96, 64)).astype(np.float32), "n": np.ones(64, np.float32)})


VALID = _valid_model()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "header"]))
        if kind == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[draw(st.integers(0, len(data))):]
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "header" and len(data) > 16:  # aim at the JSON header, where the structure lives
            data[draw(st.integers(8, min(len(data) - 1, 400)))] = draw(st.sampled_from(list(b'{}[]":,0123456789')))
    return bytes(data)


@SETTINGS
@given(mutated() | st.binary(max_size=64))
def test_fingerprint_of_mutated_safetensors_is_a_result_or_a_fingerprint_error(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        path.write_bytes(blob)
        try:
            fp = fingerprint_files([path])
        except FingerprintError:
            fp = None
    if fp is not None:
        assert compare(fp, fp).score == (1.0 if fp.tensors else 0.0)
        assert Fingerprint.from_dict(json.loads(fp.to_json())) == fp


@SETTINGS
@given(json_values | st.fixed_dictionaries({
    "version": st.just(1), "files": json_values, "skipped": json_values, "truncated": json_values,
    "tensors": st.lists(json_values | st.fixed_dictionaries({"shape": json_values, "bits": json_values,
                                                             "scale": json_values}), max_size=4)}))
def test_stored_fingerprints_that_do_not_parse_raise_value_or_type_errors(value: Any) -> None:
    try:
        Fingerprint.from_dict(value) if isinstance(value, dict) else None
    except (ValueError, TypeError):
        pass
