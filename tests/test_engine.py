"""The engine: sniffing by content, the walk, symlinks, odd names, and failing closed."""

from __future__ import annotations

import importlib
import os
import struct
import zlib
from pathlib import Path

import pytest

import aivet
from aivet import rules
from aivet.analyzers import engine
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats.sniff import Format, sniff


def test_every_format_has_an_analyzer_that_imports() -> None:
    assert set(engine.ANALYZERS) == set(Format)
    for fmt, (module, name) in engine.ANALYZERS.items():
        assert callable(getattr(importlib.import_module(module), name)), fmt


def test_every_rule_module_exists_and_rules_are_documented() -> None:
    for name in rules.RULE_MODULES:
        importlib.import_module(name)
    catalogue = rules.catalogue()
    assert len(catalogue) >= 40
    for rule in catalogue.values():
        assert rule.id == rule.id.upper() and " " not in rule.id
        assert len(rule.description) > 40, rule.id
        assert all(c.startswith("CWE-") for c in rule.cwe), rule.id
        if rule.severity > Severity.INFO:  # informational rules need not map to a weakness
            assert rule.cwe, rule.id
        assert all(a.startswith("AML.T") for a in rule.atlas), rule.id


@pytest.mark.parametrize(
    ("head", "name", "fmt"),
    [
        (b"\x80\x04\x95", "x.bin", Format.PICKLE),
        (b"PK\x03\x04rest", "model.safetensors", Format.ZIP),
        (b"\x93NUMPY\x01\x00", "a", Format.NUMPY),
        (b"GGUF\x03\x00\x00\x00", "a", Format.GGUF),
        (b"\x89HDF\r\n\x1a\n", "a", Format.HDF5),
        (struct.pack("<Q", 2) + b"{}", "weights.bin", Format.SAFETENSORS),
        (b"\x1f\x8b\x08", "a", Format.GZIP),
        (b"import os\n", "modeling_x.py", Format.PYTHON),
        (b'{"a": 1}', "config.json", Format.JSON),
        (b"# Title\nsome text", "README.md", Format.TEXT),
        (b"\x89PNG\r\n\x1a\n....", "logo.bin", Format.BENIGN_BINARY),
        (b"", "empty", Format.EMPTY),
    ],
)
def test_sniff_by_content(head: bytes, name: str, fmt: Format) -> None:
    size = len(head) if fmt is not Format.SAFETENSORS else 10
    assert sniff(head, name, size) is fmt


def test_sniff_ignores_misleading_names() -> None:
    assert sniff(b"\x80\x02}q\x00.", "model.safetensors", 6) is Format.PICKLE
    assert sniff(b"\x80\x02}q\x00.", "notes.txt", 6) is Format.PICKLE


def test_pickle_named_safetensors_is_flagged(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\x80\x02}q\x00.")
    ev = aivet.scan(tmp_path)
    mismatch = [f for f in ev.findings if f.rule_id == rules.NAME_MISMATCH.id]
    assert mismatch and mismatch[0].severity is Severity.HIGH
    assert ev.artifacts[0].format == "pickle"


def test_unknown_binary_is_reported_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "blob.xyz").write_bytes(b"\x00\x01\x02\xff" * 100)
    ev = aivet.scan(tmp_path)
    by_path = {f.location.path: f for f in ev.findings if f.rule_id == rules.UNKNOWN_FORMAT.id}
    assert by_path["weights.bin"].severity is Severity.HIGH  # named like a model
    assert by_path["blob.xyz"].severity is Severity.LOW
    assert {a.status for a in ev.artifacts} == {ArtifactStatus.UNSUPPORTED}
    strict = aivet.scan(tmp_path, strict=True)
    assert all(f.severity is Severity.HIGH for f in strict.findings if f.rule_id == rules.UNKNOWN_FORMAT.id)


def test_symlink_leaving_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.pkl").write_bytes(b"\x80\x02}q\x00.")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "link.pkl").symlink_to(outside / "secret.pkl")
    (repo / "dirlink").symlink_to(outside, target_is_directory=True)
    (repo / "dangling").symlink_to(tmp_path / "missing")
    (repo / "inside.json").write_text("{}")
    (repo / "alias.json").symlink_to(repo / "inside.json")
    ev = aivet.scan(repo)
    escapes = sorted(f.location.path for f in ev.findings if f.rule_id == rules.SYMLINK_ESCAPE.id)
    assert escapes == ["dangling", "dirlink", "link.pkl"]
    analysed = sorted(a.path for a in ev.artifacts if a.status is ArtifactStatus.ANALYZED)
    assert analysed == ["alias.json", "inside.json"]


def test_non_utf8_names_are_reported_readably(tmp_path: Path) -> None:
    raw = os.fsencode(str(tmp_path)) + b"/mod\xffel.pkl"
    with open(raw, "wb") as fh:
        fh.write(bytes(range(256)))
    ev = aivet.scan(tmp_path)
    assert ev.artifacts[0].path == "mod\\xffel.pkl"
    ev.to_json()  # must not raise on the odd name


def test_git_metadata_is_noted(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    ev = aivet.scan(tmp_path)
    assert [(a.path, a.status) for a in ev.artifacts] == [(".git", ArtifactStatus.SKIPPED)]


def test_a_crashing_reader_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + b"\x00" * 60)

    def boom(source: object, ctx: object) -> object:
        raise KeyError("reader bug")

    import aivet.analyzers.gguf as gguf_mod

    monkeypatch.setattr(gguf_mod, "analyze", boom)
    ev = aivet.scan(tmp_path)
    [finding] = [f for f in ev.findings if f.rule_id == rules.PARSE_ERROR.id]
    assert "internal error" in finding.message and finding.severity is Severity.HIGH
    assert ev.artifacts[0].status is ArtifactStatus.ERROR


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    from aivet.errors import UsageError

    with pytest.raises(UsageError, match="no such file"):
        aivet.scan(tmp_path / "nope")


def test_file_limit_is_enforced(tmp_path: Path) -> None:
    from aivet.limits import Limits

    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text("hello")
    ev = aivet.scan(tmp_path, limits=Limits(max_files=2))
    assert any(f.rule_id == rules.LIMIT_EXCEEDED.id for f in ev.findings)
    assert len(ev.artifacts) <= 3


def test_python_that_starts_like_a_zlib_header_is_python(tmp_path: Path) -> None:
    # 'x ' is 0x78 0x20, a valid zlib header checksum: it must not hide remote code from the Python checks.
    source = b"x = __import__('os')\nx.system('echo hi')\n"
    assert (source[0] * 256 + source[1]) % 31 == 0
    assert sniff(source, "modeling_evil.py", len(source)) is Format.PYTHON
    path = tmp_path / "modeling_evil.py"
    path.write_bytes(source)
    assert "CODE-PROCESS" in {f.rule_id for f in aivet.scan(path).findings}
    blob = zlib.compress(b"x" * 100)
    assert sniff(blob, "blob", len(blob)) is Format.ZLIB
