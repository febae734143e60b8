"""Model repositories: a local directory, a file, a Hugging Face cache, or an ``hf://`` reference.

:func:`resolve` turns what a user typed into one or more :class:`Target`
(a subject plus the files to read); :func:`resolve_model` is the same for
commands that work on exactly one model directory (``sign``, ``verify``,
``bom``, ``lineage``, ``gate``). Nothing here reads model content.

Hugging Face repositories come in three types, cached side by side as
``models--org--name``, ``datasets--org--name`` and ``spaces--org--name``. A
model keeps its plain hub id (``org/name``); a dataset or a Space is named
with its type first (``datasets/org/name``), as ``hf://`` spells it, so that
a dataset is never reported as the model of the same name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from aivet.errors import EnvironmentFailure, OfflineError, UsageError
from aivet.evidence import Subject

_HF_REF = re.compile(r"^hf://(?:(?P<kind>datasets|spaces)/)?(?P<repo>[A-Za-z0-9][\w.\-]*(?:/[\w.\-]+)?)"
                     r"(?:@(?P<rev>[\w.\-/]+))?$")
_CACHE_REPO = re.compile(r"^(?P<kind>models|datasets|spaces)--(?P<name>.+)$")
# The cache folder's prefix -> huggingface_hub's repo_type.
_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
HUB_KINDS = frozenset({"hf-cache", "hf-repo"})  # Subject kinds of a hub snapshot


@dataclass(frozen=True)
class Target:
    """One model to scan: where its files are, and which paths symlinks may resolve into."""

    subject: Subject
    path: Path  # a directory or a single file
    allowed_root: Path  # symlink targets must stay under this

    @property
    def hub_root(self) -> Path | None:
        """The cache repository folder (``models--org--name``) of a hub snapshot, else None.

        Readers pass it as ``allowed_root``; :func:`aivet.provenance.signing.sign_model`
        refuses to write a signature under it.
        """
        if self.subject.kind in HUB_KINDS and self.allowed_root != self.path:
            return self.allowed_root
        return None


def resolve(spec: str | os.PathLike[str]) -> list[Target]:
    """Resolve a path or ``hf://[datasets/|spaces/]org/name[@revision]`` into scan targets.

    A directory that is a Hugging Face hub cache (``HF_HUB_CACHE``, or
    ``HF_HOME`` holding ``hub/``) yields one target per snapshot of every
    repository in it; a single ``models--org--name`` (or ``datasets--``,
    ``spaces--``) directory one per snapshot; one of its
    ``snapshots/<commit>`` directories that snapshot; any other directory or
    file one target. Raises :class:`~aivet.errors.UsageError` for a path that
    does not exist and :class:`~aivet.errors.OfflineError` when an ``hf://``
    reference is neither cached nor downloadable.
    """
    text = _text(spec)
    shown = display(text)
    if text.startswith("hf://"):
        return [_resolve_hf_ref(text)]
    path = Path(text).expanduser()
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{shown}: no such file or directory")
    if path.is_dir():
        if _is_repo_cache(path):
            return _cache_repo_targets(path)
        snapshot = hub_snapshot(path)
        if snapshot is not None:
            return [snapshot]
        repos = _cache_repos(path)
        if not repos and (path / "hub").is_dir() and _only(path, _HF_HOME_ENTRIES):
            repos = _cache_repos(path / "hub")  # HF_HOME: the hub cache is its hub/ folder
        if repos:
            return [t for repo in repos for t in _cache_repo_targets(repo)]
        return [Target(Subject(id=shown, kind="directory", location=display(str(path))), path, path)]
    return [Target(Subject(id=shown, kind="file", location=display(str(path))), path, path.parent)]


def resolve_model(spec: str | os.PathLike[str]) -> Target:
    """The one model directory ``spec`` names: a directory, a hub snapshot or an ``hf://`` reference.

    The resolver of every command that works on one model (``gate``,
    ``sign``, ``verify``, ``bom``, ``lineage``): ``hf://`` references and hub
    caches go through :func:`resolve`, with the same offline errors as
    ``aivet scan``. Raises :class:`~aivet.errors.UsageError` when ``spec`` is
    not a directory, or names several models (a whole cache, or a cached
    repository with more than one snapshot).
    """
    text = _text(spec)
    shown = display(text)
    if not text.startswith("hf://") and not Path(text).expanduser().is_dir():
        raise UsageError(f"{shown}: not a model directory")
    targets = resolve(text)
    if len(targets) != 1:
        names = ", ".join(t.subject.id for t in targets[:5])
        raise UsageError(f"{shown}: holds {len(targets)} models ({names}{', ...' if len(targets) > 5 else ''}); "
                         "name one snapshot (.../snapshots/COMMIT) or hf://ORG/NAME@REVISION")
    target = targets[0]
    if not target.path.is_dir():
        raise UsageError(f"{shown}: not a model directory")
    return target


def hub_snapshot(path: Path) -> Target | None:
    """The :class:`Target` of a hub cache snapshot directory (``models--org--name/snapshots/<commit>``), else None.

    The path is resolved first, so ``.`` or a link to a snapshot is
    recognised too; links inside it may then resolve anywhere in its
    repository folder (``blobs/``). The subject is named as an ``hf://``
    reference to the same commit names it. Nothing is read besides names.
    """
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    repo_dir = real.parent.parent
    if not (real.is_dir() and real.parent.name == "snapshots" and _CACHE_REPO.match(repo_dir.name)):
        return None
    repo_id, commit, shown = display(_repo_id(repo_dir)), display(real.name), display(str(path))
    subject = Subject(id=f"{repo_id}@{commit[:12]}", kind="hf-cache", location=shown, repo_id=repo_id,
                      revision=commit)
    return Target(subject, Path(path), repo_dir)


def hub_repo_around(path: Path) -> Path | None:
    """The hub cache repository folder that ``path`` lies in, at any depth below a snapshot, else None.

    A folder inside a snapshot is cache content too: :mod:`aivet.cli.sign`
    uses this so that no signature is ever written anywhere in the cache.
    """
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    for inner in (real, *real.parents):
        if inner.parent.name == "snapshots" and _CACHE_REPO.match(inner.parent.parent.name):
            return inner.parent.parent
    return None


def display(text: str) -> str:
    """A printable, UTF-8-safe form of a path that may hold undecodable bytes (``\\xff``)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _text(spec: str | os.PathLike[str]) -> str:
    raw = os.fspath(spec)
    return raw if isinstance(raw, str) else os.fsdecode(raw)


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


def _typed_id(kind: str, repo_id: str) -> str:
    """``org/name`` for a model, ``datasets/org/name`` or ``spaces/org/name`` otherwise (as ``hf://`` spells it)."""
    return repo_id if kind == "models" else f"{kind}/{repo_id}"


def _repo_id(cache_dir: Path) -> str:
    m = _CACHE_REPO.match(cache_dir.name)
    assert m is not None
    return _typed_id(m.group("kind"), m.group("name").replace("--", "/"))


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
        raise UsageError(f"{display(text)}: expected hf://ORG/NAME or hf://ORG/NAME@REVISION "
                         "(hf://datasets/ORG/NAME or hf://spaces/ORG/NAME for a dataset or a Space)")
    kind = m.group("kind") or "models"
    repo_id, revision, repo_type = m.group("repo"), m.group("rev"), _REPO_TYPES[kind]
    typed = _typed_id(kind, repo_id)
    try:
        from huggingface_hub import errors as hf_errors
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a default dependency
        raise EnvironmentFailure("hf:// references need huggingface_hub: pip install huggingface_hub") from exc
    offline = _hub_offline()
    try:
        snap = Path(snapshot_download(repo_id=repo_id, repo_type=repo_type, revision=revision,
                                      cache_dir=_hub_cache_dir(), local_files_only=offline))
    except hf_errors.LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached"
        how = "hf download ORG/NAME" + ("" if kind == "models" else f" --repo-type {repo_type}")
        raise OfflineError(
            f"{display(text)}: not in the local Hugging Face cache and {why}. Download it on a connected "
            f"machine (`{how}`), or point HF_HUB_CACHE at a cache that holds it."
        ) from exc
    except hf_errors.HFValidationError as exc:
        raise UsageError(f"{display(text)}: not a valid Hugging Face repository id or revision: {exc}") from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise UsageError(f"{display(text)}: the hub has no revision {revision!r} of {typed}") from exc
    except hf_errors.GatedRepoError as exc:
        raise EnvironmentFailure(f"{display(text)}: a gated repository; log in (HF_TOKEN) with access to it") from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise UsageError(f"{display(text)}: no such repository on the hub (or it is private; set HF_TOKEN)") from exc
    except OSError as exc:
        raise OfflineError(f"{display(text)}: cannot download from the hub: {exc}") from exc
    except Exception as exc:  # huggingface_hub raises many types: auth, HTTP, validation
        raise EnvironmentFailure(f"{display(text)}: cannot download from the hub: {type(exc).__name__}: {exc}") from exc
    commit = snap.name
    subject = Subject(id=f"{typed}@{commit[:12]}", kind="hf-repo", location=display(text), repo_id=typed,
                      revision=commit)
    allowed = snap.parent.parent if snap.parent.name == "snapshots" else snap
    return Target(subject, snap, allowed)
