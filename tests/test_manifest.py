"""Manifest and bundle parsing: strict, and hostile input only ever raises ArtifactError subclasses."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aivet.errors import ArtifactError
from aivet.provenance.bundle import Bundle, BundleError, pae, parse_bundle
from aivet.provenance.manifest import (
    PREDICATE_TYPE,
    Manifest,
    PredicateError,
    Serialization,
    check_name,
    diff,
    make_manifest,
)
from tests.fixtures.work import HANG_TIMEOUT


def _manifest(**digests: bytes) -> Manifest:
    return make_manifest("m", Serialization(ignore_paths=("model.sig",)), list(digests.items()))


def test_statement_round_trip_and_order() -> None:
    m = make_manifest("m", Serialization(), [("a.txt", b"\1" * 32), ("a/b", b"\2" * 32), ("Z", b"\3" * 32)])
    # ordered by path components: "Z" < "a" (parts of "a/b") < "a.txt"
    assert [r.name for r in m.resources] == ["Z", "a/b", "a.txt"]
    st_ = m.to_statement()
    assert st_["predicateType"] == PREDICATE_TYPE
    assert Manifest.from_statement(json.loads(json.dumps(st_))) == m


def test_shard_serialization_accepts_protobuf_floats() -> None:
    ser = Serialization.from_dict({"method": "shards", "hash_type": "sha256", "shard_size": 4.0,
                                   "allow_symlinks": False})
    assert ser.shard_size == 4 and ser.algorithm == "sha256-sharded-4"
    for bad in (4.5, True, -1, "4", None):
        with pytest.raises(ArtifactError):
            Serialization.from_dict({"method": "shards", "hash_type": "sha256", "shard_size": bad})


@pytest.mark.parametrize("name", ["../etc/passwd", "/abs", "a/../b", "a\\b", "", "a//b", "./a", "a\0b"])
def test_names_that_leave_the_model_are_refused(name: str) -> None:
    with pytest.raises(PredicateError):
        check_name(name, sharded=False)


def test_shard_names() -> None:
    check_name("w:x.bin:0:10", sharded=True)  # a colon in the file name is fine
    for bad in ("w.bin", "w.bin:10:0", "w.bin:a:1", "../w:0:1"):
        with pytest.raises(PredicateError):
            check_name(bad, sharded=True)


def _edit(m: Manifest, fn: Any) -> dict[str, Any]:
    st_ = m.to_statement()
    fn(st_)
    return st_


@pytest.mark.parametrize(
    "fn",
    [
        lambda s: s.update(_type="x"),
        lambda s: s.update(predicateType="https://model_signing/Digests/v0.1"),
        lambda s: s.update(subject=[]),
        lambda s: s["predicate"]["resources"].append(dict(s["predicate"]["resources"][0])),
        lambda s: s["predicate"]["resources"][0].update(digest="XYZ"),
        lambda s: s["predicate"]["resources"][0].update(algorithm="md5"),
        lambda s: s["predicate"]["serialization"].update(hash_type="md5"),
        lambda s: s["predicate"].update(resources="nope"),
        lambda s: s["subject"][0]["digest"].update(sha256="00"),
    ],
    ids=["type", "old-predicate", "no-subject", "duplicate", "digest", "algorithm", "hash-type", "resources",
         "root-digest"],
)
def test_strict_statement_parsing(fn: Any) -> None:
    with pytest.raises(ArtifactError):
        Manifest.from_statement(_edit(_manifest(a=b"\1" * 32), fn))


def test_diff_detects_renames() -> None:
    old = _manifest(a=b"\1" * 32, b=b"\2" * 32, c=b"\3" * 32)
    new = _manifest(a=b"\x09" * 32, b2=b"\2" * 32, d=b"\4" * 32)
    d = diff(old, new)
    assert d.modified == ("a",) and d.renamed == (("b", "b2"),) and d.removed == ("c",) and d.added == ("d",)
    assert diff(old, old).clean


def test_bundle_round_trip_and_pae() -> None:
    b = Bundle(b'{"x":1}', (b"sig",), key_hint="ab")
    assert parse_bundle(b.to_json().encode()) == b
    assert pae("application/vnd.in-toto+json", b"hello") == b"DSSEv1 28 application/vnd.in-toto+json 5 hello"


def _valid_bundle_bytes() -> bytes:
    st_ = _manifest(a=b"\1" * 32).to_statement()
    return Bundle(json.dumps(st_).encode(), (b"\x30\x06\x02\x01\x01\x02\x01\x01",), key_hint="00").to_json().encode()


def _parse_all(data: bytes) -> None:
    """Parse a bundle and its statement as verify does; only ArtifactError may escape."""
    try:
        bundle = parse_bundle(data)
        Manifest.from_statement(bundle.statement())
    except ArtifactError:
        pass


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_never_crash(data: bytes) -> None:
    _parse_all(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_bundles_never_crash(data: st.DataObject) -> None:
    raw = bytearray(_valid_bundle_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del raw[i:]
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=16))
    _parse_all(bytes(raw))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(_json, st.sampled_from(["subject", "predicate", "resources", "serialization"]))
def test_hostile_statement_fields(value: Any, where: str) -> None:
    st_ = _manifest(a=b"\1" * 32).to_statement()
    if where in ("subject", "predicate"):
        st_[where] = value
    else:
        st_["predicate"][where] = value
    payload = base64.b64encode(json.dumps(st_).encode()).decode()
    doc = json.loads(_valid_bundle_bytes())
    doc["dsseEnvelope"]["payload"] = payload
    _parse_all(json.dumps(doc).encode())


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    with pytest.raises(BundleError):
        parse_bundle(b"[" * 100_000 + b"]" * 100_000)


def test_model_card_is_bounded() -> None:
    m = make_manifest("m", Serialization(), [("a", b"\1" * 32)], {"license": "mit"})
    assert Manifest.from_statement(m.to_statement()).model_card == {"license": "mit"}
    deep: Any = "x"
    for _ in range(40):
        deep = {"k": deep}
    st_ = m.to_statement()
    st_["predicate"]["aivet.dev/model_card/v1"] = deep
    with pytest.raises(PredicateError):
        Manifest.from_statement(st_)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([b"", b"-----BEGIN PRIVATE KEY-----\n", b"-----BEGIN PUBLIC KEY-----\n"]))
def test_random_key_files_raise_only_aivet_errors(tmp_path_factory: Any, data: bytes, prefix: bytes) -> None:
    from aivet.errors import AivetError
    from aivet.provenance import keys

    p = tmp_path_factory.mktemp("k") / "key.pem"
    p.write_bytes(prefix + data)
    for load in (keys.load_private_key, keys.load_public_key):
        with pytest.raises(AivetError):
            load(p)
    with pytest.raises(AivetError):
        keys.load_private_key(p, "password")
