"""One judgement of "does this name leave its directory", shared by archives, SavedModel assets and references."""

from __future__ import annotations

from pathlib import Path

import pytest

import aivet
from aivet.analyzers import archive, paths
from tests.fixtures.tf_files import base_nodes, graph_def, saved_model


@pytest.mark.parametrize("name, reason", [
    ("a/b.bin", None), ("..data", None), ("a..b/c", None), ("1:x", None), ("~/.ssh/id_rsa", None),
    ("../x", "contains '..'"), ("a/../../x", "contains '..'"), ("a\\..\\..\\x", "contains '..'"),
    ("/etc/passwd", "is absolute"), ("\\\\server\\share\\x", "is absolute"), ("//server/share/x", "is absolute"),
    ("C:\\x.dll", "starts with a drive letter"), ("c:x", "starts with a drive letter"),
    ("ok.bin\x00.txt", "contains a NUL byte"),
])
def test_escape_reason(name: str, reason: str | None) -> None:
    assert paths.escape_reason(name) == reason


def test_references_also_refuse_empty_and_home() -> None:
    # A referenced file named "" is the directory itself; "~" is expanded by loaders that call expanduser.
    assert paths.escapes_syntactically("")
    assert paths.escapes_syntactically("~/.aws/credentials")
    assert not paths.escapes_syntactically("weights.bin")


def test_archive_names_add_the_windows_separator() -> None:
    # Not a traversal on POSIX, but an extractor on Windows makes a directory of it.
    assert archive.unsafe_name("a\\b") == "contains a backslash (a path separator on Windows)"
    assert archive.unsafe_name("..\\evil") == "contains '..'"
    assert archive.unsafe_name("a/b") is None


@pytest.mark.parametrize("asset", ["\\\\attacker\\share\\vocab.txt", "vocab.txt\x00../../x", "C:/Windows/x"])
def test_savedmodel_assets_use_the_same_judgement(tmp_path: Path, asset: str) -> None:
    # The finding names the reason the shared judgement gives.
    model = tmp_path / "m"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(saved_model(graph_def(base_nodes()), assets=[asset]))
    found = [f for f in aivet.scan(model).findings if f.rule_id == "TF-ASSET-PATH"]
    assert len(found) == 1
    assert paths.escape_reason(asset) in found[0].message
