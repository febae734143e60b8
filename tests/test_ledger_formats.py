"""Canonical JSON, checkpoints, keys and the export format: exact bytes, and hostile input never escapes."""

from __future__ import annotations

import base64
import hashlib
import io
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.ledger import Ledger, LedgerCorrupt, LedgerKeyError, NewEntry, parse_verifier_key, verify_export
from aivet.ledger.canonical import CanonicalError, canonical_json
from aivet.ledger.checkpoint import parse_checkpoint, sign_checkpoint, verify_checkpoint
from aivet.ledger.entry import EntryKind, envelope_bytes, parse_envelope
from aivet.ledger.keys import LogKey, key_id
from aivet.ledger.verify import read_export

rfc8785 = pytest.importorskip("rfc8785")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)


# -- canonical JSON -----------------------------------------------------------------------------------


@pytest.fixture(params=["orjson", "stdlib"])
def serializer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run canonical-JSON tests with and without the optional orjson fast path."""
    from aivet.ledger import canonical

    if request.param == "stdlib":
        monkeypatch.setattr(canonical, "_orjson", None)
    elif canonical._orjson is None:
        pytest.skip("orjson is not installed")
    return str(request.param)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_canonical_json_matches_an_independent_rfc8785_encoder(serializer: str, value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except Exception:  # noqa: BLE001 - the reference refuses (e.g. lone surrogates); so must we
        with pytest.raises(CanonicalError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


def test_canonical_json_edge_cases(serializer: str) -> None:
    assert canonical_json({"b": 1, "a": [True, None, 1.0, 1e21, 1e-7, -0.0]}) == b'{"a":[true,null,1,1e+21,1e-7,0],"b":1}'
    # UTF-16 ordering: U+E000 sorts after a supplementary character (its UTF-16 lead surrogate is D83D).
    assert canonical_json({"\ue000": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ue000":1}'.encode()
    assert canonical_json({"t": (1, 2)}) == b'{"t":[1,2]}'
    assert canonical_json({"c": "\u0001\n\"\\\u007f"}) == b'{"c":"\\u0001\\n\\"\\\\\x7f"}'
    for bad in (float("nan"), float("inf"), 2**60, {1: 2}, b"bytes", object(), "\ud800"):
        with pytest.raises(CanonicalError):
            canonical_json(bad)
    deep: object = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CanonicalError):
        canonical_json(deep)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**40), st.sampled_from(list(EntryKind)), st.none() | st.just("sha256:" + "0f" * 32), st.integers(0, 2**40))
def test_envelopes_are_canonical(index: int, kind: EntryKind, model: str | None, size: int) -> None:
    sha = hashlib.sha256(str(size).encode()).hexdigest()
    env = envelope_bytes(index, kind, model, "2026-11-23T16:00:00.123456Z", sha, size)
    expected = {"body": {"sha256": sha, "size": size}, "index": index, "kind": kind.value, "model": model,
                "time": "2026-11-23T16:00:00.123456Z", "v": 1}
    assert env == canonical_json(expected) == rfc8785.dumps(expected)
    assert parse_envelope(env).index == index


def test_non_canonical_envelopes_are_refused() -> None:
    env = envelope_bytes(1, EntryKind.SCAN, None, "2026-11-23T16:00:00.123456Z", "a" * 64, 3)
    for bad in (env.replace(b'"v":1}', b'"v":1,"x":2}'), env.replace(b":", b": "), env.replace(b'"scan"', b'"other"'), b"[]", b"{", b"\xff"):
        with pytest.raises(LedgerCorrupt):
            parse_envelope(bad)


# -- keys and checkpoints --------------------------------------------------------------------------------


def make_key(name: str = "example.com/log") -> LogKey:
    return LogKey(name, Ed25519PrivateKey.generate())


def test_key_id_and_verifier_key_follow_the_signed_note_spec() -> None:
    key = make_key()
    raw = key.public.raw
    assert key_id(key.name, raw) == hashlib.sha256(key.name.encode() + b"\n\x01" + raw).digest()[:4]
    vkey = key.public.verifier_key()
    name, hexid, blob = vkey.split("+", 2)
    assert name == key.name and bytes.fromhex(hexid) == key.public.key_id
    assert base64.b64decode(blob) == b"\x01" + raw
    assert parse_verifier_key(vkey) == key.public
    for bad in ("", "name", "a+b+c", vkey.replace(hexid, "00000000"), f"{name}+{hexid}+" + base64.b64encode(b"\x02" + raw).decode()):
        with pytest.raises(LedgerKeyError):
            parse_verifier_key(bad)


def test_checkpoint_layout_and_verification() -> None:
    key = make_key()
    root = hashlib.sha256(b"r").digest()
    note = sign_checkpoint(key, 42, root)
    text, sigline = note.split("\n\n")
    assert text == f"example.com/log\n42\n{base64.b64encode(root).decode()}"
    assert sigline.startswith("\u2014 example.com/log ") and sigline.endswith("\n")
    sig = base64.b64decode(sigline.split(" ")[-1])
    assert sig[:4] == key.public.key_id and len(sig) == 68
    cp = verify_checkpoint(note, key.public)
    assert (cp.size, cp.root) == (42, root) and cp.note() == note
    with pytest.raises(LedgerCorrupt, match="not signed by the log key"):
        verify_checkpoint(note, make_key().public)
    with pytest.raises(LedgerCorrupt, match="invalid signature"):
        verify_checkpoint(note.replace("\n42\n", "\n43\n"), key.public)
    with pytest.raises(LedgerCorrupt, match="is for log"):
        verify_checkpoint(note, make_key("other").public)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_random_notes_only_raise_ledger_corrupt(text: str) -> None:
    try:
        parse_checkpoint(text)
    except LedgerCorrupt:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 255))
def test_mutated_notes_never_verify(pos: int, byte: int) -> None:
    key = LogKey("example.com/log", Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))
    note = sign_checkpoint(key, 7, b"\x01" * 32)
    data = bytearray(note.encode())
    pos %= len(data)
    if data[pos] == byte:
        return
    data[pos] = byte
    try:
        verify_checkpoint(data.decode("utf-8", "replace"), key.public)
    except LedgerCorrupt:
        return
    # Only a change outside the signed text and the signature bytes could still verify; there is none.
    raise AssertionError(f"mutated note verified (byte {pos})")


# -- exports --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def export_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, LogKey]:
    d = tmp_path_factory.mktemp("exp")
    with Ledger.open(str(d / "l.db"), key_path=d / "l.key") as log:
        log.append("scan", {"a": 1})
        log.append_many([NewEntry("bom", {"i": i}) for i in range(6)])
        log.export(d / "e.jsonl")
        key = log._signing_key()
    return (d / "e.jsonl").read_bytes(), key


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_exports_never_verify_and_never_raise(export_file: tuple[bytes, LogKey], tmp_path: Path, data: st.DataObject) -> None:
    original, key = export_file
    blob = bytearray(original)
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    for _ in range(data.draw(st.integers(1, 4))):
        op = rng.randrange(3)
        pos = rng.randrange(len(blob))
        if op == 0:
            blob[pos] = rng.randrange(256)
        elif op == 1:
            del blob[pos : pos + rng.randrange(1, 40)]
        else:
            blob[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 10)))
    path = tmp_path / "m.jsonl"
    path.write_bytes(bytes(blob))
    report = verify_export(path, key.public)
    if bytes(blob) != original:
        assert not report.ok


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=500))
def test_read_export_on_random_bytes_raises_only_ledger_corrupt(blob: bytes) -> None:
    try:
        list(read_export(io.BytesIO(blob)))
    except LedgerCorrupt:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_envelopes_raise_only_ledger_corrupt(blob: bytes) -> None:
    try:
        parse_envelope(blob)
    except LedgerCorrupt:
        pass


proof_like = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["logIndex", "treeSize", "rootHash", "hashes", "checkpoint", "envelope", "inclusionProof",
                         "canonicalizedBody", "oldSize", "newSize", "oldRootHash", "newRootHash"]), inner, max_size=6),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(proof_like)
def test_hostile_proof_documents_raise_only_ledger_corrupt(doc: object) -> None:
    from aivet.ledger import verify_consistency_document, verify_entry_proof

    key = LogKey("example.com/log", Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)).public
    for check in (verify_entry_proof, verify_consistency_document):
        try:
            check(doc, key)  # type: ignore[arg-type]
        except LedgerCorrupt:
            pass
