"""Model repositories: a local directory, a file, a Hugging Face cache, or an ``hf://`` reference.

:func:`resolve` turns what a user typed into one or more :class:`Target`
(a subject plus the files to read). Nothing here reads model content.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from aivet.errors import OfflineError, UsageError
from aivet.evidence import Subject

_HF_REF = re.compile(r"^hf://(?P<repo>[A-Za-z0-9][\w.\-]*(?:/[\w.\-]+)?)(?:@(?P<rev>[\w.\-/]+))?$")
_CACHE_REPO = re.compile(r"^(?P<kind>models|datasets|spaces)--(?P<name>.+)$")


@dataclass(frozen=True)
class Target:
    """One model to scan: where its files are, and which paths symlinks may resolve into."""

    subject: Subject
    path: Path  # a directory or a single file
    allowed_root: Path  # symlink targets must stay under this


def resolve(spec: str | os.PathLike[str]) -> list[Target]:
    """Resolve a path or ``hf://org/name[@revision]`` into scan targets."""
    text = os.fspath(spec)
    if text.startswith("hf://"):
        return [_resolve_hf_ref(text)]
    path = Path(text).expanduser()
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{text}: no such file or directory")
    if path.is_dir():
        if _is_repo_cache(path):
            return _cache_repo_targets(path)
        repos = sorted(p for p in path.iterdir() if p.is_dir() and _is_repo_cache(p))
        if repos:
            return [t for repo in repos for t in _cache_repo_targets(repo)]
        return [Target(Subject(id=text, kind="directory", location=str(path)), path, path)]
    return [Target(Subject(id=text, kind="file", location=str(path)), path, path.parent)]


def _is_repo_cache(path: Path) -> bool:
    return bool(_CACHE_REPO.match(path.name)) and (path / "snapshots").is_dir()


def _repo_id(cache_dir: Path) -> str:
    m = _CACHE_REPO.match(cache_dir.name)
    assert m is not None
    return m.group("name").replace("--", "/")


def _cache_repo_targets(cache_dir: Path) -> list[Target]:
    """Every snapshot of one repository in a hub cache, labelled by repo id and revision."""
    repo_id = _repo_id(cache_dir)
    refs = _read_refs(cache_dir)
    targets = []
    for snap in sorted((cache_dir / "snapshots").iterdir()):
        if not snap.is_dir():
            continue
        names = refs.get(snap.name)
        label = f"{repo_id}@{snap.name[:12]}" + (f" ({', '.join(names)})" if names else "")
        subject = Subject(id=label, kind="hf-cache", location=str(snap), repo_id=repo_id, revision=snap.name)
        targets.append(Target(subject, snap, cache_dir))
    if not targets:
        raise UsageError(f"{cache_dir}: a hub cache entry with no snapshots")
    return targets


def _read_refs(cache_dir: Path) -> dict[str, list[str]]:
    by_commit: dict[str, list[str]] = {}
    refs = cache_dir / "refs"
    if refs.is_dir():
        for ref in sorted(refs.rglob("*")):
            if ref.is_file():
                try:
                    commit = ref.read_text(encoding="ascii").strip()
                except (OSError, UnicodeDecodeError):
                    continue
                by_commit.setdefault(commit, []).append(str(ref.relative_to(refs)))
    return by_commit


def _resolve_hf_ref(text: str) -> Target:
    m = _HF_REF.match(text)
    if not m:
        raise UsageError(f"{text}: expected hf://ORG/NAME or hf://ORG/NAME@REVISION")
    repo_id, revision = m.group("repo"), m.group("rev")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - a default dependency
        raise UsageError("hf:// references need huggingface_hub: pip install huggingface_hub") from exc
    try:
        snap = Path(snapshot_download(repo_id=repo_id, revision=revision))
    except LocalEntryNotFoundError as exc:
        raise OfflineError(
            f"{text}: not in the local Hugging Face cache and the hub cannot be reached "
            "(offline, or HF_HUB_OFFLINE=1). Download it on a connected machine, or point "
            "HF_HUB_CACHE at a cache that holds it."
        ) from exc
    except Exception as exc:  # huggingface_hub raises many types: auth, not found, HTTP
        raise OfflineError(f"{text}: cannot download from the hub: {type(exc).__name__}: {exc}") from exc
    commit = snap.name
    subject = Subject(id=f"{repo_id}@{commit[:12]}", kind="hf-repo", location=text, repo_id=repo_id, revision=commit)
    allowed = snap.parent.parent if snap.parent.name == "snapshots" else snap
    return Target(subject, snap, allowed)
