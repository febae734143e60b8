"""Provenance and ``aivet gate`` on Hugging Face cache snapshots and ``hf://`` references.

A snapshot (``models--org--name/snapshots/<commit>``) is a directory of
relative links into ``../../blobs/``. Every reader that opens model files
follows such a link only when it resolves inside the repository's cache
folder (the *allowed root*), hashes it under the link's name, and refuses a
link that leaves the folder (CWE-59, link following: a hostile cache entry
pointing at ``/etc/...`` or at another repository's blobs).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aivet.cli import main as cli_main
from aivet.errors import ArtifactError, UsageError
from aivet.gate import gate
from aivet.policy.licenses import identify_license
from aivet.policy.origin import origin_facts
from aivet.provenance import hashing
from aivet.provenance.bom import build_bom
from aivet.provenance.directory import hub_repo_root, manifest_of, model_digest
from aivet.provenance.fingerprint import FingerprintError, fingerprint_model
from aivet.provenance.lineage import describe
from aivet.provenance.manifest import Serialization
from aivet.provenance.signing import KeySigner, sign_model
from aivet.provenance.verify import SIGN_DIRECTORY_INVALID, KeyVerifier, verify_model
from aivet.repo import resolve
from tests.fixtures.gate_repos import Keys, make_repo, write_keys
from tests.test_repo import make_cache_repo

COMMIT = "c" * 40
REPO_ID = "Qwen/tiny-model"


def _files(model: Path) -> dict[str, bytes]:
    return {p.relative_to(model).as_posix(): p.read_bytes() for p in sorted(model.rglob("*")) if p.is_file()}


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """A plain model directory: safetensors weights, config.json, a README with license and base model."""
    model = make_repo(tmp_path, "tiny-model", base_model="Qwen/Qwen2-0.5B")
    (model / "sub").mkdir()
    (model / "sub" / "extra.txt").write_bytes(b"nested file\n")
    return model


@pytest.fixture
def cache(tmp_path: Path, plain: Path) -> Path:
    """A hub cache holding the plain directory's files as snapshot COMMIT of REPO_ID (refs/main)."""
    hub = tmp_path / "hub"
    make_cache_repo(hub, REPO_ID, {COMMIT: _files(plain)}, refs={"main": COMMIT})
    make_cache_repo(hub, "other/model", {COMMIT: {"secret.bin": b"another repository's blob\n"}},
                    refs={"main": COMMIT})
    return hub


@pytest.fixture
def snapshot(cache: Path) -> Path:
    return cache / "models--Qwen--tiny-model" / "snapshots" / COMMIT


@pytest.fixture
def offline(cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("AIVET_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("AIVET_RECORD", raising=False)
    monkeypatch.delenv("AIVET_LEDGER", raising=False)
    return cache


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return write_keys(tmp_path / "keys")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_main.app, list(args), env={"CI": "true"})
    return result.exit_code, result.stdout, result.stderr


def _escape(snapshot: Path, name: str, target: Path) -> None:
    """Replace the snapshot's link ``name`` by one to ``target`` (relative, as the hub writes links)."""
    link = snapshot / name
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(target, link.parent))


# -- hashing: a snapshot digests like a plain copy --------------------------------------------


def test_snapshot_is_recognised_and_its_links_refused_without_an_allowed_root(snapshot: Path, plain: Path) -> None:
    assert hub_repo_root(snapshot) == snapshot.parent.parent.resolve()
    assert hub_repo_root(plain) is None and hub_repo_root(snapshot.parent.parent) is None
    with pytest.raises(ArtifactError, match="leaves the model directory"):
        hashing.walk(snapshot)  # today's default: the model root is the allowed root


def test_snapshot_digest_equals_plain_copy(snapshot: Path, plain: Path) -> None:
    ser = Serialization(ignore_paths=(".git", "model.sig"))
    from_plain = manifest_of(plain, ser)
    from_snapshot = manifest_of(snapshot, ser, allowed_root=snapshot.parent.parent)
    assert [r.name for r in from_snapshot.resources] == ["README.md", "config.json", "model.safetensors",
                                                          "sub/extra.txt"]
    assert from_snapshot.resources == from_plain.resources
    assert from_snapshot.root_digest() == from_plain.root_digest()
    assert model_digest(snapshot) == model_digest(plain)  # the ledger key: auto-detected allowed root
    # Shards hash the same way.
    sharded = Serialization(method="shards", shard_size=7)
    assert manifest_of(snapshot, sharded, allowed_root=snapshot.parent.parent).root_digest() == \
        manifest_of(plain, sharded).root_digest()


def test_walk_refuses_a_model_root_outside_the_allowed_root(snapshot: Path, plain: Path) -> None:
    with pytest.raises(UsageError, match="not inside the allowed root"):
        hashing.walk(plain, allowed_root=snapshot.parent.parent)


# -- gate on hf:// and on a snapshot path -----------------------------------------------------


def _origin(evidence_records: tuple[object, ...]) -> dict[str, object]:
    return next(r.data for r in evidence_records if getattr(r, "kind", None) == "origin")  # type: ignore[attr-defined]


def test_gate_library_on_an_hf_reference(offline: Path) -> None:
    (target,) = resolve(f"hf://{REPO_ID}")
    result = gate(target.path, subject=target.subject, allowed_root=target.allowed_root,
                  model_label=f"hf://{REPO_ID}")
    origin = _origin(result.evidence.records)
    assert origin["publisher"]["source"] == "hub repo id org 'Qwen'"  # type: ignore[index]
    assert [dict(b) for b in origin["base_models"]] == [  # type: ignore[attr-defined]
        {"value": "Qwen/Qwen2-0.5B", "source": "README front matter: base_model"}]
    assert result.evidence.subjects[0].repo_id == REPO_ID
    assert result.decision.model == f"hf://{REPO_ID}"
    bom = next(r.data for r in result.evidence.records if r.kind == "bom")
    assert bom["files"] == 4 and bom["license"] == "apache-2.0"
    lic = next(r.data for r in result.evidence.records if r.kind == "license")
    assert lic["license"]["id"] == "apache-2.0"
    assert not [f for f in result.evidence.findings if "symbolic link" in f.message]


def test_gate_cli_on_an_hf_reference_and_on_a_snapshot_path(offline: Path, snapshot: Path) -> None:
    for spec in (f"hf://{REPO_ID}", f"hf://{REPO_ID}@main", str(snapshot)):
        code, out, err = run("gate", spec, "--format", "json", "--no-record")
        assert code == 0, (spec, err)
        doc = json.loads(out)
        origin = next(r for r in doc["evidence"]["records"] if r["kind"] == "origin")
        assert origin["data"]["publisher"]["value"].startswith("Alibaba"), spec
        assert "Qwen" in origin["data"]["publisher"]["source"]
        subject = doc["evidence"]["subjects"][0]
        assert subject["repo_id"] == REPO_ID and subject["id"] == f"{REPO_ID}@{COMMIT[:12]}"


def test_gate_cli_on_an_unknown_hf_reference_offline_exits_2(offline: Path) -> None:
    code, _, err = run("gate", "hf://nobody/absent", "--no-record")
    assert code == 2
    assert "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in err


def test_gate_cli_refuses_a_cache_with_several_models(offline: Path) -> None:
    code, _, err = run("gate", str(offline), "--no-record")
    assert code == 2 and "holds 2 models" in err


# -- sign, verify, bom ------------------------------------------------------------------------


def test_signature_made_on_a_plain_copy_verifies_the_snapshot(plain: Path, snapshot: Path, keys: Keys,
                                                               tmp_path: Path) -> None:
    sig = tmp_path / "tiny.sig"
    sign_model(plain, KeySigner(keys.private), signature=sig)
    result = verify_model(snapshot, KeyVerifier(keys.public), signature=sig)
    assert result.ok, result.findings
    assert result.checked == ("README.md", "config.json", "model.safetensors", "sub/extra.txt")
    code, out, err = run("verify", str(snapshot), "--key", str(keys.public), "--signature", str(sig),
                         "--no-progress", "--no-record")
    assert code == 0 and "verified: 4 files" in out, err
    # A changed blob is caught under the snapshot's name.
    blob = (snapshot / "config.json").resolve()
    blob.chmod(0o644)
    blob.write_bytes(b'{"model_type": "llama"}')
    bad = verify_model(snapshot, KeyVerifier(keys.public), signature=sig)
    assert not bad.ok
    assert [(f.rule_id, f.location.path) for f in bad.findings] == [("SIGN-FILE-MODIFIED", "config.json")]


def test_publisher_signature_shipped_in_the_repository_verifies(plain: Path, keys: Keys, tmp_path: Path) -> None:
    sign_model(plain, KeySigner(keys.private))  # writes plain/model.sig, which the publisher uploads
    hub = tmp_path / "hub2"
    make_cache_repo(hub, REPO_ID, {COMMIT: _files(plain)}, refs={"main": COMMIT})
    snap = hub / "models--Qwen--tiny-model" / "snapshots" / COMMIT
    assert (snap / "model.sig").is_symlink()
    result = verify_model(snap, KeyVerifier(keys.public))
    assert result.ok, result.findings
    assert model_digest(snap) == model_digest(plain)  # model.sig is ignored under its own name


def test_sign_refuses_to_write_into_the_cache(snapshot: Path, keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not write model.sig into the cache"):
        sign_model(snapshot, KeySigner(keys.private))
    with pytest.raises(UsageError, match="inside the Hugging Face cache"):
        sign_model(snapshot, KeySigner(keys.private), signature=snapshot.parent.parent / "x.sig")
    code, _, err = run("sign", str(snapshot), "--key", str(keys.private), "--no-progress", "--no-record")
    assert code == 2 and "--signature PATH outside the cache" in err
    assert not (snapshot / "model.sig").exists()
    sig = tmp_path / "outside.sig"
    code, out, err = run("sign", str(snapshot), "--key", str(keys.private), "--signature", str(sig),
                         "--no-progress", "--no-record")
    assert code == 0 and sig.is_file(), err
    assert verify_model(snapshot, KeyVerifier(keys.public), signature=sig).ok


def test_bom_of_a_snapshot_lists_the_snapshot_names(snapshot: Path, plain: Path, tmp_path: Path) -> None:
    result = build_bom(snapshot)
    names = [f.name for f in result.inventory.files]
    assert names == ["README.md", "config.json", "model.safetensors", "sub/extra.txt"]
    assert result.inventory.content_digest() == build_bom(plain).inventory.content_digest()
    assert result.inventory.facts.front.license == "apache-2.0"
    out = tmp_path / "bom.json"
    code, _, err = run("bom", str(snapshot), "--output", str(out), "--no-progress", "--no-record")
    assert code == 0, err
    doc = json.loads(out.read_text())
    text = json.dumps(doc)
    assert "sub/extra.txt" in text and "blobs" not in text


# -- links out of the repository cache are refused everywhere ---------------------------------


@pytest.mark.parametrize("where", ["outside", "other-repo"])
def test_links_out_of_the_repository_cache_are_refused_everywhere(
    snapshot: Path, plain: Path, cache: Path, tmp_path: Path, keys: Keys, offline: Path, where: str
) -> None:
    secret = tmp_path / "hostname"
    secret.write_text("SECRET-HOST apache-2.0 license: mit\n")
    target = secret if where == "outside" else \
        (cache / "models--other--model" / "snapshots" / COMMIT / "secret.bin").resolve()
    allowed = snapshot.parent.parent
    for name in ("README.md", "config.json", "LICENSE", "model.safetensors"):
        _escape(snapshot, name, target)

    with pytest.raises(ArtifactError, match="leaves the model directory"):
        hashing.walk(snapshot, allowed_root=allowed)
    with pytest.raises(ArtifactError, match="leaves the model directory"):
        model_digest(snapshot)
    with pytest.raises(ArtifactError, match="leaves the model directory"):
        build_bom(snapshot)
    with pytest.raises(ArtifactError, match="leaves the model directory"):
        sign_model(snapshot, KeySigner(keys.private), signature=tmp_path / "s.sig")
    sig = tmp_path / "plain.sig"
    sign_model(plain, KeySigner(keys.private), signature=sig)
    result = verify_model(snapshot, KeyVerifier(keys.public), signature=sig)
    assert [f.rule_id for f in result.findings] == [SIGN_DIRECTORY_INVALID.id]
    assert "leaves the model directory" in result.findings[0].message

    report = identify_license(snapshot, allowed_root=allowed)
    assert report.license.id == "unknown"
    assert all(s.confidence == 0.0 for s in report.sources)
    facts = origin_facts(snapshot, allowed_root=allowed, repo_id=REPO_ID)
    assert facts.base_models == () and facts.family is None
    lineage = describe(snapshot, fingerprint=False)
    assert lineage.config is None and any("config.json" in n for n in lineage.notes)
    with pytest.raises(FingerprintError, match="leaves the model directory"):
        fingerprint_model(snapshot, allowed_root=allowed)

    code, out, err = run("gate", f"hf://{REPO_ID}", "--format", "json", "--no-record")
    assert code in (0, 1), err
    doc = json.loads(out)
    assert "SECRET-HOST" not in out
    notes = [r["data"]["message"] for r in doc["evidence"]["records"] if r["kind"] == "note"]
    assert any("leaves the model directory" in n for n in notes)


def test_verify_refuses_a_shipped_signature_that_links_out(plain: Path, keys: Keys, tmp_path: Path) -> None:
    sig = tmp_path / "elsewhere.sig"
    sign_model(plain, KeySigner(keys.private), signature=sig)
    hub = tmp_path / "hub3"
    make_cache_repo(hub, REPO_ID, {COMMIT: _files(plain)}, refs={"main": COMMIT})
    snap = hub / "models--Qwen--tiny-model" / "snapshots" / COMMIT
    _escape(snap, "model.sig", sig)
    result = verify_model(snap, KeyVerifier(keys.public))
    assert not result.ok and "not read" in result.findings[0].message


def test_a_plain_copy_of_the_snapshot_still_behaves_as_before(snapshot: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(snapshot, copy, symlinks=False)
    assert model_digest(copy) == model_digest(snapshot)
    (copy / "escape").symlink_to(snapshot / "config.json")
    with pytest.raises(ArtifactError, match="leaves the model directory"):
        model_digest(copy)


# -- property: random link targets never escape the allowed root ------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["..", "blobs", "snapshots", COMMIT, "x", "etc", "hostname", "sub"]),
                min_size=1, max_size=6))
def test_random_links_are_followed_only_inside_the_allowed_root(snapshot: Path, parts: list[str]) -> None:
    allowed = snapshot.parent.parent.resolve()
    link = snapshot / "random-link"
    if link.is_symlink():
        link.unlink()
    link.symlink_to("/".join(parts))
    try:
        entries = hashing.walk(snapshot, allowed_root=allowed)
    except (ArtifactError, UsageError):
        return
    for e in entries:
        real = e.path.resolve()
        assert real == allowed or allowed in real.parents


def test_scanning_a_hub_cache_with_record_links_each_snapshot_to_its_model(
        offline: Path, snapshot: Path, plain: Path, tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.db")
    code, _, err = run("scan", str(snapshot.parent.parent), "--no-progress", "--record", "--ledger", ledger)
    assert code in (0, 1) and "Recorded as entry 0" in err, err
    code, out, _ = run("ledger", "model", str(plain), "--ledger", ledger, "--json")
    assert code == 0
    assert [e["kind"] for e in json.loads(out)["entries"]] == ["scan"]  # the plain copy has the same digest


# -- sign, verify, bom and lineage take hf:// references, as scan and gate do -------------------


def _model_name(bom: dict[str, object]) -> str:
    (model,) = [c for c in bom["components"] if c.get("bom-ref") == "model"]  # type: ignore[attr-defined]
    return str(model["name"])


def test_verify_bom_and_lineage_on_an_hf_reference(offline: Path, plain: Path, keys: Keys, tmp_path: Path) -> None:
    sig = tmp_path / "tiny.sig"
    sign_model(plain, KeySigner(keys.private), signature=sig)
    ledger = str(tmp_path / "ledger.db")
    code, out, err = run("verify", f"hf://{REPO_ID}@main", "--key", str(keys.public), "--signature", str(sig),
                         "--no-progress", "--record", "--ledger", ledger)
    assert code == 0 and "verified: 4 files" in out, err
    code, out, _ = run("ledger", "model", str(plain), "--ledger", ledger, "--json")
    assert code == 0 and [e["kind"] for e in json.loads(out)["entries"]] == ["verify"]  # linked like a copy

    bom_out = tmp_path / "bom.json"
    code, _, err = run("bom", f"hf://{REPO_ID}", "--output", str(bom_out), "--no-progress", "--no-record")
    assert code == 0, err
    doc = json.loads(bom_out.read_text())
    assert _model_name(doc) == REPO_ID  # not the snapshot folder's commit hash
    assert "sub/extra.txt" in json.dumps(doc) and "blobs" not in json.dumps(doc)

    code, out, err = run("lineage", "show", f"hf://{REPO_ID}", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["subject"] == f"hf://{REPO_ID}"
    assert record["data"]["declared_base_models"] == ["Qwen/Qwen2-0.5B"]
    assert record["data"]["model_type"] == "llama"  # config.json was read through the cache's links
    assert not [n for n in record["data"]["notes"] if "leaves the model directory" in n]


@pytest.mark.parametrize("command", [
    ["verify", "REF", "--key", "PUBLIC", "--no-record"], ["bom", "REF", "--no-record"], ["lineage", "show", "REF"],
    ["lineage", "register", "REF", "--name", "x"], ["sign", "REF", "--key", "PRIVATE", "--signature", "SIG"],
    ["gate", "REF", "--no-record"],
])
def test_an_uncached_hf_reference_offline_exits_2_everywhere(offline: Path, keys: Keys, tmp_path: Path,
                                                             command: list[str]) -> None:
    swap = {"REF": "hf://nobody/absent", "PUBLIC": str(keys.public), "PRIVATE": str(keys.private),
            "SIG": str(tmp_path / "x.sig")}
    code, _, err = run(*(swap.get(a, a) for a in command))
    assert code == 2, err
    assert "hf://nobody/absent: not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in err
    assert "Traceback" not in err and not (tmp_path / "x.sig").exists()


def test_sign_an_hf_reference_only_outside_the_cache(offline: Path, snapshot: Path, keys: Keys,
                                                     tmp_path: Path) -> None:
    code, _, err = run("sign", f"hf://{REPO_ID}", "--key", str(keys.private), "--no-progress", "--no-record")
    assert code == 2 and "does not write model.sig into the cache" in err and "--signature PATH" in err
    assert not (snapshot / "model.sig").exists()
    inside = snapshot.parent.parent / "refs" / "x.sig"
    code, _, err = run("sign", f"hf://{REPO_ID}", "--key", str(keys.private), "--signature", str(inside),
                       "--no-progress", "--no-record")
    assert code == 2 and "inside the Hugging Face cache" in err and not inside.exists()
    sig = tmp_path / "outside.sig"
    code, _, err = run("sign", f"hf://{REPO_ID}", "--key", str(keys.private), "--signature", str(sig),
                       "--no-progress", "--no-record")
    assert code == 0 and sig.is_file(), err
    code, out, err = run("verify", str(snapshot), "--key", str(keys.public), "--signature", str(sig),
                         "--no-progress", "--no-record")
    assert code == 0 and "verified: 4 files" in out, err
    # A folder below the snapshot is cache content too.
    code, _, err = run("sign", str(snapshot / "sub"), "--key", str(keys.private), "--no-progress", "--no-record")
    assert code == 2 and "does not write model.sig into the cache" in err
    assert sorted(p.name for p in (snapshot / "sub").iterdir()) == ["extra.txt"]


def test_commands_that_want_one_model_refuse_a_whole_cache(offline: Path, keys: Keys) -> None:
    for args in (["bom", str(offline)], ["verify", str(offline), "--key", str(keys.public)],
                 ["lineage", "show", str(offline)]):
        code, _, err = run(*args)
        assert code == 2 and "holds 2 models" in err, args


def test_a_cached_dataset_snapshot_is_signed_outside_and_verified_inside(plain: Path, keys: Keys,
                                                                         tmp_path: Path) -> None:
    """The same files cached as a dataset: links into datasets--…/blobs are followed, the cache is never written."""
    hub = tmp_path / "hub-datasets"
    make_cache_repo(hub, REPO_ID, {COMMIT: _files(plain)}, refs={"main": COMMIT}, kind="datasets")
    snap = hub / "datasets--Qwen--tiny-model" / "snapshots" / COMMIT
    code, _, err = run("sign", str(snap), "--key", str(keys.private), "--no-progress", "--no-record")
    assert code == 2 and "does not write model.sig into the cache" in err
    assert sorted(p.name for p in snap.iterdir()) == ["README.md", "config.json", "model.safetensors", "sub"]
    sig = tmp_path / "dataset.sig"
    code, _, err = run("sign", str(snap), "--key", str(keys.private), "--signature", str(sig), "--no-progress",
                       "--no-record")
    assert code == 0, err
    assert verify_model(plain, KeyVerifier(keys.public), signature=sig).ok  # the same digests as a plain copy
    code, out, err = run("verify", str(snap), "--key", str(keys.public), "--signature", str(sig), "--no-progress",
                         "--no-record")
    assert code == 0 and "verified: 4 files" in out, err
    out_file = tmp_path / "dataset-bom.json"
    code, _, err = run("bom", str(snap), "-o", str(out_file), "--no-progress", "--no-record")
    assert code == 0, err
    assert _model_name(json.loads(out_file.read_text())) == f"datasets/{REPO_ID}"


# -- one model-card parser: BOM, origin and lineage read the same front matter ------------------


CARD = """---
license: apache-2.0
base_model:
  - Qwen/Qwen2-0.5B
  - 7
  - {nested: map}
  - 'Qwen/Qwen2-1.5B'
base_model_relation: finetune
---
# tiny
"""


def test_every_reader_sees_the_same_base_models(plain: Path) -> None:
    from aivet.provenance.modelcard import parse_front_matter

    (plain / "README.md").write_text(CARD, encoding="utf-8")
    expected = ("Qwen/Qwen2-0.5B", "Qwen/Qwen2-1.5B")  # ids are strings: 7 and the map are left out
    front = parse_front_matter(CARD.encode())
    assert front.base_models == expected and front.ignored == ("base_model",)
    assert build_bom(plain).inventory.facts.front.base_models == expected
    assert tuple(f.value for f in origin_facts(plain).base_models) == expected
    info = describe(plain, fingerprint=False)
    assert (info.declared_base_models, info.base_model_relation) == (expected, "finetune")


def test_a_broken_model_index_hides_nothing_from_any_reader(plain: Path) -> None:
    """The card is read entry by entry when the whole does not parse; the problem is still reported."""
    from aivet.policy.licenses import identify_license
    from aivet.provenance.modelcard import parse_front_matter

    card = "---\nlicense: mit\nmodel-index:\n- name: x\n  results: [\n'base_model':\n  - a/b\n---\n"
    front = parse_front_matter(card)
    assert (front.license, front.base_models) == ("mit", ("a/b",))
    assert front.salvaged is not None and "not valid YAML" in front.salvaged
    assert parse_front_matter(card, only=("base_model",)).base_models == ("a/b",)
    (plain / "README.md").write_text(card, encoding="utf-8")
    assert describe(plain, fingerprint=False).declared_base_models == ("a/b",)
    problems = build_bom(plain).inventory.facts.problems
    assert [p.kind for p in problems] == ["front-matter"] and "only the entries license" in problems[0].message
    assert build_bom(plain).inventory.facts.front.license == "mit"
    source = identify_license(plain).sources[0]
    assert source.kind == "front-matter" and source.value == "mit" and "not valid YAML" in source.detail
    assert any("not valid YAML" in note for note in origin_facts(plain).notes)


def test_selected_entries_are_bounded_and_never_reach_other_tags() -> None:
    from aivet.provenance.modelcard import MAX_ENTRY_BYTES, parse_front_matter

    hostile = "---\nlicense: !!python/object/apply:os.system ['true']\nbase_model: a/b\n---\n"
    assert parse_front_matter(hostile, only=("base_model",)).base_models == ("a/b",)
    long = "---\nbase_model:\n" + "".join(f"- org/m{i}\n" for i in range(20_000)) + "base_model_relation: merge\n---\n"
    front = parse_front_matter(long, only=("base_model", "base_model_relation"))
    assert 100 < len(front.base_models) < MAX_ENTRY_BYTES // 8  # cut line by line, not dropped
    assert front.base_model_relation == "merge"  # a long entry does not starve the next one


YAML_LINES = st.lists(st.sampled_from(["base_model:", "base_model: a/b", "'base_model': [x, {y: 1}]", "- a/b",
                                       "  - c/d", "license: mit", "key: [", "  nested: {", "- &a x", "- *a",
                                       "? [k]", ": v", "!!binary x", "#c", "", "\t- tab", "base_model_relation: 3",
                                       "base_model: !!float 1e400", "\"base_model\": |", "  text"]),
                        max_size=25)


@settings(max_examples=150, deadline=None)
@given(YAML_LINES, st.booleans())
def test_front_matter_never_raises_but_metadata_error(lines: list[str], select: bool) -> None:
    from aivet.provenance.modelcard import MetadataError, parse_front_matter

    text = "---\n" + "\n".join(lines) + "\n---\n"
    try:
        front = parse_front_matter(text, only=("base_model", "base_model_relation") if select else None)
    except MetadataError:
        return
    assert all(isinstance(b, str) and b for b in front.base_models)


def test_an_oversized_model_index_still_yields_the_license_and_base_model() -> None:
    from aivet.limits import Limits
    from aivet.provenance.modelcard import parse_front_matter

    results = "".join(f"  - task: t{i}\n    metrics: [{{type: acc, value: 0.{i}}}]\n" for i in range(2000))
    card = "---\nlicense: apache-2.0\nbase_model: org/base\nmodel-index:\n- name: m\n  results:\n" + results + "---\n"
    limits = Limits(max_front_matter_bytes=16 * 1024)
    assert len(card) > 4 * limits.max_front_matter_bytes
    front = parse_front_matter(card, limits)
    assert (front.license, front.base_models) == ("apache-2.0", ("org/base",))
    assert front.salvaged is not None and "max_front_matter_bytes" in front.salvaged
