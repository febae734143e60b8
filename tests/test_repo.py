"""Scan targets: directories, files, Hugging Face caches (HF_HUB_CACHE layout) and hf:// references."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aivet import repo
from aivet.analyzers import scan
from aivet.cli import main as cli
from aivet.errors import OfflineError, UsageError
from aivet.evidence import Severity
from aivet.report import ReportFormat, ReportOptions, render

PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
C1 = "1" * 40
C2 = "2" * 40


def make_cache_repo(cache: Path, repo_id: str, snapshots: dict[str, dict[str, bytes]],
                    refs: dict[str, str] | None = None, kind: str = "models") -> Path:
    """Lay out one repository as huggingface_hub does: blobs by hash, snapshots of relative symlinks."""
    top = cache / f"{kind}--{repo_id.replace('/', '--')}"
    (top / "blobs").mkdir(parents=True, exist_ok=True)
    for commit, files in snapshots.items():
        for name, data in files.items():
            blob = top / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            link = top / "snapshots" / commit / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    for ref, commit in (refs or {}).items():
        path = top / "refs" / ref
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(commit)
    return top


@pytest.fixture
def hub_cache(tmp_path: Path) -> Path:
    cache = tmp_path / "hub"
    make_cache_repo(cache, "org/model", {C1: {"logo.png": PNG, "sub/empty.txt": b""},
                                         C2: {"logo.png": PNG, "extra.png": PNG}},
                    refs={"main": C2, "v1": C1})
    make_cache_repo(cache, "other/thing", {C1: {"a.png": PNG}}, refs={"main": C1})
    (cache / "version.txt").write_text("1")
    (cache / ".locks").mkdir()
    return cache


def go_offline(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point huggingface_hub at ``cache`` and forbid the network."""
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(cache.parent / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return cache


@pytest.fixture
def offline_hub(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return go_offline(hub_cache, monkeypatch)


def test_plain_directory_and_file(tmp_path: Path) -> None:
    (tmp_path / "m.png").write_bytes(PNG)
    (target,) = repo.resolve(tmp_path)
    assert target.subject.kind == "directory" and target.path == tmp_path and target.allowed_root == tmp_path
    (file_target,) = repo.resolve(str(tmp_path / "m.png"))
    assert file_target.subject.kind == "file" and file_target.allowed_root == tmp_path


def test_missing_path() -> None:
    with pytest.raises(UsageError, match="no such file or directory"):
        repo.resolve("/definitely/not/here")


def test_whole_cache_yields_every_snapshot(hub_cache: Path) -> None:
    targets = repo.resolve(hub_cache)
    labels = [(t.subject.repo_id, t.subject.revision, t.subject.kind) for t in targets]
    assert labels == [("org/model", C1, "hf-cache"), ("org/model", C2, "hf-cache"), ("other/thing", C1, "hf-cache")]
    assert targets[0].subject.id == f"org/model@{C1[:12]} (v1)"
    assert targets[1].subject.id == f"org/model@{C2[:12]} (main)"
    assert all(t.allowed_root.name.startswith("models--") for t in targets)


def test_hf_home_and_single_repo_dir(hub_cache: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "hub").symlink_to(hub_cache)
    assert len(repo.resolve(home)) == 3
    single = repo.resolve(hub_cache / "models--org--model")
    assert [t.subject.revision for t in single] == [C1, C2]


def test_scan_cache_reports_by_repo_and_revision(hub_cache: Path) -> None:
    evidence = scan(hub_cache / "models--org--model")
    assert [(s.repo_id, s.revision) for s in evidence.subjects] == [("org/model", C1), ("org/model", C2)]
    by_subject = {s.revision: {a.path for a in evidence.artifacts if a.subject == s.id} for s in evidence.subjects}
    assert by_subject == {C1: {"logo.png", "sub/empty.txt"}, C2: {"extra.png", "logo.png"}}
    assert not evidence.findings
    out = render(evidence, ReportFormat.TERMINAL)
    assert f"org/model @ {C1} (v1)" in out and f"org/model @ {C2} (main)" in out


def test_symlink_escaping_the_cache_repo(hub_cache: Path, tmp_path: Path) -> None:
    snap = hub_cache / "models--org--model" / "snapshots" / C2
    (tmp_path / "outside.txt").write_text("host file\n")
    (snap / "stolen.txt").symlink_to(tmp_path / "outside.txt")
    # a link into *another* repository's blobs also leaves this repository
    other_blob = next((hub_cache / "models--other--thing" / "blobs").iterdir())
    (snap / "borrowed.png").symlink_to(os.path.relpath(other_blob, snap))
    (snap / "dangling.bin").symlink_to(snap / "nowhere")
    evidence = scan(hub_cache / "models--org--model")
    escapes = sorted(f.location.path for f in evidence.findings if f.rule_id == "REPO-SYMLINK-ESCAPE")
    assert escapes == ["borrowed.png", "dangling.bin", "stolen.txt"]
    assert all(f.severity >= Severity.HIGH for f in evidence.findings if f.rule_id == "REPO-SYMLINK-ESCAPE")
    skipped = {a.path for a in evidence.artifacts if a.status.value == "skipped"}
    assert skipped == {"borrowed.png", "dangling.bin", "stolen.txt"}


def test_hf_reference_offline_default_branch(offline_hub: Path) -> None:
    (target,) = repo.resolve("hf://org/model")
    assert target.subject.kind == "hf-repo"
    assert (target.subject.repo_id, target.subject.revision) == ("org/model", C2)
    assert target.path == offline_hub / "models--org--model" / "snapshots" / C2
    assert target.allowed_root == offline_hub / "models--org--model"


@pytest.mark.parametrize(("ref", "commit"), [("@v1", C1), (f"@{C1}", C1), ("@main", C2)])
def test_hf_reference_offline_revision(offline_hub: Path, ref: str, commit: str) -> None:
    evidence = scan(f"hf://org/model{ref}")
    (subject,) = evidence.subjects
    assert subject.revision == commit
    expected = {"logo.png", "sub/empty.txt"} if commit == C1 else {"logo.png", "extra.png"}
    assert {a.path for a in evidence.artifacts} == expected


def test_hf_reference_unknown_repo_offline(offline_hub: Path) -> None:
    with pytest.raises(OfflineError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
        repo.resolve("hf://org/unknown")
    with pytest.raises(OfflineError):
        repo.resolve(f"hf://org/model@{'9' * 40}")
    result = CliRunner().invoke(cli.app, ["scan", "hf://org/unknown"], env={"CI": "true"})
    assert result.exit_code == 2
    assert "hf://org/unknown: not in the local Hugging Face cache" in result.stderr
    assert "Traceback" not in result.output


def test_hf_reference_through_the_cli(offline_hub: Path) -> None:
    result = CliRunner().invoke(cli.app, ["scan", "hf://org/model@v1", "-f", "json"], env={"CI": "true"})
    assert result.exit_code == 0, result.output
    (subject,) = json.loads(result.stdout)["subjects"]
    assert subject == {"id": f"org/model@{C1[:12]}", "kind": "hf-repo", "location": "hf://org/model@v1",
                       "repo_id": "org/model", "revision": C1}


@pytest.mark.parametrize("bad", ["hf://", "hf://org/name/extra", "hf://org/na me", "hf://-org/x"])
def test_bad_hf_reference(bad: str) -> None:
    with pytest.raises(UsageError, match="expected hf://ORG/NAME"):
        repo.resolve(bad)


def test_non_utf8_file_names_are_readable(tmp_path: Path) -> None:
    top = tmp_path / "m"
    top.mkdir()
    name = os.fsdecode(b"w\xffeights.xyz")
    (top / name).write_bytes(b"\x00\xff\x00\xfe" * 16)  # unknown format: a finding on that file
    odd_dir = os.fsdecode(os.fsencode(str(tmp_path)) + b"/d\xfeir")
    os.mkdir(odd_dir)
    Path(odd_dir, "x.png").write_bytes(PNG)
    evidence = scan(top, odd_dir)
    (finding,) = evidence.findings
    assert finding.location.path == "w\\xffeights.xyz"
    assert evidence.subjects[1].id.endswith("d\\xfeir")
    options = ReportOptions(base=tmp_path, width=200)
    terminal = render(evidence, ReportFormat.TERMINAL, options)
    assert "w\\xffeights.xyz" in terminal and "d\\xfeir" in terminal
    data = json.loads(render(evidence, ReportFormat.JSON, options))
    assert data["findings"][0]["location"]["path"] == "w\\xffeights.xyz"
    assert data["subjects"][1]["location"].endswith("d\\xfeir")
    sarif = json.loads(render(evidence, ReportFormat.SARIF, options))
    (res,) = sarif["runs"][0]["results"]
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "m/w%5Cxffeights.xyz"
    assert res["properties"]["path"] == "w\\xffeights.xyz"
    result = CliRunner().invoke(cli.app, ["scan", str(top), "--fail-on", "low"], env={"CI": "true"})
    assert result.exit_code == 1 and "w\\xffeights.xyz" in result.stdout


def test_a_fake_cache_folder_cannot_hide_a_repository(tmp_path: Path) -> None:
    """A model repository that ships a ``models--x--y/snapshots`` folder is still scanned whole."""
    top = tmp_path / "repo"
    make_cache_repo(top, "decoy/model", {C1: {"a.png": PNG}})
    (top / "weights.xyz").write_bytes(b"\x00\xff\x00\xfe" * 16)
    (target,) = repo.resolve(top)
    assert target.subject.kind == "directory"
    evidence = scan(top)
    assert "weights.xyz" in {f.location.path for f in evidence.findings}
    home = tmp_path / "home"
    (home / "hub").mkdir(parents=True)
    make_cache_repo(home / "hub", "org/model", {C1: {"a.png": PNG}})
    assert repo.resolve(home)[0].subject.kind == "hf-cache"
    (home / "model.bin").write_bytes(b"x")
    assert repo.resolve(home)[0].subject.kind == "directory"


# -- datasets and Spaces: cached beside models, named with their type ---------------------------


@pytest.fixture
def typed_cache(tmp_path: Path) -> Path:
    """A hub cache holding a model, a dataset and a Space that share the id org/model."""
    cache = tmp_path / "typed-hub"
    make_cache_repo(cache, "org/model", {C1: {"logo.png": PNG}}, refs={"main": C1})
    make_cache_repo(cache, "org/model", {C1: {"train.png": PNG}, C2: {"train.png": PNG, "test.png": PNG}},
                    refs={"main": C2, "v1": C1}, kind="datasets")
    make_cache_repo(cache, "org/model", {C2: {"app.png": PNG}}, refs={"main": C2}, kind="spaces")
    (cache / ".locks").mkdir()
    return cache


@pytest.fixture
def offline_typed(typed_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return go_offline(typed_cache, monkeypatch)


def test_whole_cache_reports_datasets_and_spaces_with_their_type(typed_cache: Path) -> None:
    targets = repo.resolve(typed_cache)
    assert [(t.subject.id, t.subject.repo_id, t.subject.revision) for t in targets] == [
        (f"datasets/org/model@{C1[:12]} (v1)", "datasets/org/model", C1),
        (f"datasets/org/model@{C2[:12]} (main)", "datasets/org/model", C2),
        (f"org/model@{C1[:12]} (main)", "org/model", C1),  # a model keeps its plain hub id
        (f"spaces/org/model@{C2[:12]} (main)", "spaces/org/model", C2),
    ]
    assert [t.allowed_root.name for t in targets] == ["datasets--org--model"] * 2 + ["models--org--model",
                                                                                    "spaces--org--model"]
    assert all(t.subject.kind == "hf-cache" and t.hub_root == t.allowed_root for t in targets)


def test_scan_of_one_cached_dataset_reads_its_files_through_the_blobs(typed_cache: Path) -> None:
    evidence = scan(typed_cache / "datasets--org--model")
    assert [s.repo_id for s in evidence.subjects] == ["datasets/org/model"] * 2
    assert {(a.subject, a.path) for a in evidence.artifacts} == {
        (f"datasets/org/model@{C1[:12]} (v1)", "train.png"), (f"datasets/org/model@{C2[:12]} (main)", "train.png"),
        (f"datasets/org/model@{C2[:12]} (main)", "test.png")}
    assert not evidence.findings  # the snapshot links into ../../blobs are inside the repository
    out = render(evidence, ReportFormat.TERMINAL)
    assert f"datasets/org/model @ {C2}" in out


def test_a_snapshot_directory_is_a_hub_target(typed_cache: Path, tmp_path: Path) -> None:
    """A snapshot named by its path (or through a link) may follow its links into its own repository only."""
    snap = typed_cache / "spaces--org--model" / "snapshots" / C2
    (target,) = repo.resolve(snap)
    assert (target.subject.id, target.subject.kind, target.subject.repo_id) == \
        (f"spaces/org/model@{C2[:12]}", "hf-cache", "spaces/org/model")
    assert target.path == snap and target.allowed_root == (typed_cache / "spaces--org--model").resolve()
    link = tmp_path / "space-link"
    link.symlink_to(snap)
    assert repo.resolve_model(link).hub_root == target.allowed_root
    evidence = scan(snap)
    assert [a.path for a in evidence.artifacts] == ["app.png"] and not evidence.findings
    # A link from the Space into the model of the same name leaves the Space's repository.
    model_blob = next((typed_cache / "models--org--model" / "blobs").iterdir())
    (snap / "borrowed.png").symlink_to(os.path.relpath(model_blob, snap))
    assert [f.rule_id for f in scan(snap).findings] == ["REPO-SYMLINK-ESCAPE"]
    # Below a snapshot, a folder is a plain directory again.
    (snap / "sub").mkdir()
    assert repo.resolve(snap / "sub")[0].subject.kind == "directory"
    assert repo.hub_repo_around(snap / "sub") == repo.hub_repo_around(snap) == target.allowed_root
    assert repo.hub_repo_around(tmp_path) is None and repo.hub_repo_around(tmp_path / "missing") is None


@pytest.mark.parametrize(("ref", "repo_id", "commit", "files"), [
    ("hf://datasets/org/model", "datasets/org/model", C2, {"train.png", "test.png"}),
    ("hf://datasets/org/model@v1", "datasets/org/model", C1, {"train.png"}),
    (f"hf://datasets/org/model@{C1}", "datasets/org/model", C1, {"train.png"}),
    ("hf://spaces/org/model@main", "spaces/org/model", C2, {"app.png"}),
    ("hf://org/model", "org/model", C1, {"logo.png"}),  # never the dataset or Space of the same name
])
def test_typed_hf_references_offline(offline_typed: Path, ref: str, repo_id: str, commit: str,
                                     files: set[str]) -> None:
    (target,) = repo.resolve(ref)
    assert (target.subject.id, target.subject.kind, target.subject.location) == \
        (f"{repo_id}@{commit[:12]}", "hf-repo", ref)
    assert (target.subject.repo_id, target.subject.revision) == (repo_id, commit)
    folder = repo_id.replace("/", "--") if repo_id.count("/") == 2 else "models--" + repo_id.replace("/", "--")
    assert target.allowed_root == target.hub_root == offline_typed / folder
    assert target.path == offline_typed / folder / "snapshots" / commit
    assert {a.path for a in scan(ref).artifacts} == files


def test_an_uncached_dataset_offline_says_how_to_get_it(offline_typed: Path) -> None:
    with pytest.raises(OfflineError, match="hf download ORG/NAME --repo-type dataset"):
        repo.resolve("hf://datasets/org/absent")
    with pytest.raises(OfflineError, match="hf download ORG/NAME --repo-type space"):
        repo.resolve("hf://spaces/org/model@v9")
    result = CliRunner().invoke(cli.app, ["scan", "hf://datasets/org/absent"], env={"CI": "true"})
    assert result.exit_code == 2 and "not in the local Hugging Face cache" in result.stderr


def test_typed_reference_through_the_cli(offline_typed: Path) -> None:
    result = CliRunner().invoke(cli.app, ["scan", "hf://datasets/org/model@v1", "-f", "json"], env={"CI": "true"})
    assert result.exit_code == 0, result.output
    (subject,) = json.loads(result.stdout)["subjects"]
    assert subject == {"id": f"datasets/org/model@{C1[:12]}", "kind": "hf-repo",
                       "location": "hf://datasets/org/model@v1", "repo_id": "datasets/org/model", "revision": C1}


@pytest.mark.parametrize("bad", ["hf://datasets/org/name/extra", "hf://models/org/name", "hf://spaces/",
                                 "hf://datasets/org/na me"])
def test_bad_typed_hf_reference(bad: str) -> None:
    with pytest.raises(UsageError, match="hf://datasets/ORG/NAME"):
        repo.resolve(bad)


# -- one model directory: the resolver of gate, sign, verify, bom and lineage --------------------


def test_resolve_model_wants_exactly_one_directory(typed_cache: Path, tmp_path: Path) -> None:
    assert repo.resolve_model(tmp_path).subject.kind == "directory"
    assert repo.resolve_model(tmp_path).hub_root is None
    one = repo.resolve_model(typed_cache / "models--org--model")  # a cached repository with one snapshot
    assert one.subject.revision == C1 and one.hub_root == typed_cache / "models--org--model"
    with pytest.raises(UsageError, match="holds 4 models"):
        repo.resolve_model(typed_cache)
    with pytest.raises(UsageError, match=r"holds 2 models \(datasets/org/model@"):
        repo.resolve_model(typed_cache / "datasets--org--model")
    (tmp_path / "f.png").write_bytes(PNG)
    for bad in (tmp_path / "f.png", tmp_path / "missing"):
        with pytest.raises(UsageError, match="not a model directory"):
            repo.resolve_model(bad)
