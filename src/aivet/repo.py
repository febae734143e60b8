"""Model repositories: a local directory, a file, a Hugging Face cache, or an ``hf://`` reference.

:func:`resolve` turns what a user typed into one or more :class:`Target`
(a subject plus the files to read). Nothing here reads model content.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from aivet.errors import EnvironmentFailure, OfflineError, UsageError
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
    """Resolve a path or ``hf://org/name[@revision]`` into scan targets.

    A directory that is a Hugging Face hub cache (``HF_HUB_CACHE``, or
    ``HF_HOME`` holding ``hub/``) yields one target per snapshot of every
    repository in it; a single ``models--org--name`` directory one per
    snapshot; any other directory or file one target. Raises
    :class:`~aivet.errors.UsageError` for a path that does not exist and
    :class:`~aivet.errors.OfflineError` when an ``hf://`` reference is neither
    cached nor downloadable.
    """
    raw = os.fspath(spec)
    text = raw if isinstance(raw, str) else os.fsdecode(raw)
    shown = display(text)
    if text.startswith("hf://"):
        return [_resolve_hf_ref(text)]
    path = Path(text).expanduser()
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{shown}: no such file or directory")
    if path.is_dir():
        if _is_repo_cache(path):
            return _cache_repo_targets(path)
        repos = _cache_repos(path)
        if not repos and (path / "hub").is_dir() and _only(path, _HF_HOME_ENTRIES):
            repos = _cache_repos(path / "hub")  # HF_HOME: the hub cache is its hub/ folder
        if repos:
            return [t for repo in repos for t in _cache_repo_targets(repo)]
        return [Target(Subject(id=shown, kind="directory", location=display(str(path))), path, path)]
    return [Target(Subject(id=shown, kind="file", location=display(str(path))), path, path.parent)]


def display(text: str) -> str:
    """A printable, UTF-8-safe form of a path that may hold undecodable bytes (``\\xff``)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# What a hub cache or HF_HOME holds besides repositories. A directory with anything else in it is
# scanned as a plain directory: a model repository must not be able to hide its files from the
# scan by shipping a folder that looks like a cache entry.
_CACHE_ENTRIES = frozenset({".locks", "version.txt", "CACHEDIR.TAG", "version_diffusers_cache.txt"})
_HF_HOME_ENTRIES = frozenset({"hub", "token", "stored_tokens", "xet", "datasets", "modules", "assets",
                              "accelerate", ".locks", "version.txt", "CACHEDIR.TAG"})


def _only(path: Path, allowed: frozenset[str]) -> bool:
    try:
        return all(entry.name in allowed for entry in path.iterdir())
    except OSError:
        return False


def _cache_repos(path: Path) -> list[Path]:
    """The repositories of a hub cache directory, or ``[]`` if ``path`` is not purely a hub cache."""
    try:
        entries = list(path.iterdir())
    except OSError as exc:
        raise UsageError(f"{display(str(path))}: cannot list directory: {exc.strerror or exc}") from exc
    repos = sorted(p for p in entries if p.is_dir() and _is_repo_cache(p))
    if not repos or any(p not in repos and p.name not in _CACHE_ENTRIES for p in entries):
        return []
    return repos


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
        label = display(f"{repo_id}@{snap.name[:12]}" + (f" ({', '.join(names)})" if names else ""))
        subject = Subject(id=label, kind="hf-cache", location=display(str(snap)), repo_id=display(repo_id),
                          revision=display(snap.name))
        targets.append(Target(subject, snap, cache_dir))
    if not targets:
        raise UsageError(f"{display(str(cache_dir))}: a hub cache entry with no snapshots")
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


def _hub_cache_dir() -> str | None:
    # Read at call time: huggingface_hub reads these once, at import, which is too early for
    # a process that sets them later (tests, or a wrapper that points at another cache).
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return os.environ[name]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _resolve_hf_ref(text: str) -> Target:
    m = _HF_REF.match(text)
    if not m:
        raise UsageError(f"{display(text)}: expected hf://ORG/NAME or hf://ORG/NAME@REVISION")
    repo_id, revision = m.group("repo"), m.group("rev")
    try:
        from huggingface_hub import errors as hf_errors
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a default dependency
        raise EnvironmentFailure("hf:// references need huggingface_hub: pip install huggingface_hub") from exc
    offline = _hub_offline()
    try:
        snap = Path(snapshot_download(repo_id=repo_id, revision=revision, cache_dir=_hub_cache_dir(),
                                      local_files_only=offline))
    except hf_errors.LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached"
        raise OfflineError(
            f"{display(text)}: not in the local Hugging Face cache and {why}. Download it on a connected "
            "machine (`hf download ORG/NAME`), or point HF_HUB_CACHE at a cache that holds it."
        ) from exc
    except hf_errors.HFValidationError as exc:
        raise UsageError(f"{display(text)}: not a valid Hugging Face repository id or revision: {exc}") from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise UsageError(f"{display(text)}: the hub has no revision {revision!r} of {repo_id}") from exc
    except hf_errors.GatedRepoError as exc:
        raise EnvironmentFailure(f"{display(text)}: a gated repository; log in (HF_TOKEN) with access to it") from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise UsageError(f"{display(text)}: no such repository on the hub (or it is private; set HF_TOKEN)") from exc
    except OSError as exc:
        raise OfflineError(f"{display(text)}: cannot download from the hub: {exc}") from exc
    except Exception as exc:  # huggingface_hub raises many types: auth, HTTP, validation
        raise EnvironmentFailure(f"{display(text)}: cannot download from the hub: {type(exc).__name__}: {exc}") from exc
    commit = snap.name
    subject = Subject(id=f"{repo_id}@{commit[:12]}", kind="hf-repo", location=display(text), repo_id=repo_id,
                      revision=commit)
    allowed = snap.parent.parent if snap.parent.name == "snapshots" else snap
    return Target(subject, snap, allowed)
