"""Turn a model directory into a :class:`Manifest` (walk, ignore rules, hash).

A Hugging Face hub cache snapshot (``models--org--name/snapshots/<commit>``)
is a directory of relative links into ``../../blobs/``. :func:`hub_repo_root`
recognises one, and its ``models--org--name`` folder becomes the *allowed
root* that links may resolve into (see :func:`aivet.provenance.hashing.walk`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aivet.provenance import hashing
from aivet.provenance.manifest import (
    DEFAULT_IGNORE,
    DEFAULT_SIGNATURE_NAME,
    Manifest,
    Serialization,
    make_manifest,
)

_HUB_REPO = re.compile(r"^(models|datasets|spaces)--.+$")


def hub_repo_root(path: Path) -> Path | None:
    """The cache repository folder (``models--org--name``) when ``path`` is a hub snapshot, else None.

    A snapshot is a directory whose parent is ``snapshots`` inside a
    ``models--*`` folder; the path is resolved first, so ``.`` or a link to a
    snapshot is recognised too. Nothing is read besides directory names.
    """
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if real.is_dir() and real.parent.name == "snapshots" and _HUB_REPO.match(real.parent.parent.name):
        return real.parent.parent
    return None


def allowed_root_for(root: Path, allowed_root: Path | None = None) -> Path:
    """``allowed_root`` when given, else the hub cache repository around a snapshot, else ``root`` itself."""
    if allowed_root is not None:
        return Path(allowed_root)
    return hub_repo_root(root) or Path(root)


def model_digest(root: Path, *, allowed_root: Path | None = None) -> str:
    """``sha256:<root digest>`` of a default-signed manifest of ``root`` (the ledger's model key).

    The same digest as :func:`aivet.ledger.model.model_digest_of_directory`
    for a plain directory; a hub snapshot (auto-detected when ``allowed_root``
    is None) gets the digest of the same files copied into a plain directory.
    """
    path = Path(root)
    serialization = Serialization(ignore_paths=ignore_list(path, path / DEFAULT_SIGNATURE_NAME))
    return "sha256:" + manifest_of(path, serialization, allowed_root=allowed_root_for(path, allowed_root)).root_digest()


def ignore_list(
    root: Path, signature: Path | None, extra: Iterable[str] = (), *, ignore_git: bool = True
) -> tuple[str, ...]:
    """The ignore paths recorded in the manifest: git files, the signature itself, and ``extra``.

    Paths are relative to the model root; one outside it is dropped (it can
    never match a file we hash), as the specification does.
    """
    out: list[str] = list(DEFAULT_IGNORE) if ignore_git else []
    # ``extra`` is relative to the model root; the signature path is as the user gave it (cwd-relative).
    candidates = [p if p.is_absolute() else Path(root) / p for p in map(Path, extra)]
    if signature is not None:
        candidates.append(Path(signature))
    real = Path(root).resolve()
    for full_path in candidates:
        # The last component is not followed: in a hub snapshot model.sig is a link into the cache's
        # blobs, and it must still be ignored under its own name.
        last = full_path.name
        full = full_path.resolve() if last in ("", ".", "..") else full_path.parent.resolve() / last
        try:
            rel = full.relative_to(real).as_posix()
        except ValueError:
            continue
        if rel not in out and rel != ".":
            out.append(rel)
    return tuple(out)


def model_name(root: Path) -> str:
    """The subject name: the directory's final component (informative only)."""
    return Path(root).name or os.path.basename(Path(root).resolve())


def manifest_of(
    root: Path,
    serialization: Serialization,
    *,
    only: Iterable[str] | None = None,
    workers: int | None = None,
    progress: hashing.ProgressFn | None = None,
    cache: hashing.DigestCache | None = None,
    max_files: int = 1_000_000,
    model_card: dict[str, Any] | None = None,
    on_total: Callable[[int], None] | None = None,
    allowed_root: Path | None = None,
) -> Manifest:
    """Hash ``root`` as ``serialization`` says; ``only`` restricts to some files (partial verification).

    Links may resolve inside ``allowed_root`` (default ``root``; a hub cache
    repository for a snapshot); they are hashed under the link's name.
    """
    entries = hashing.walk(
        Path(root), serialization.ignore_paths, allow_symlinks=serialization.allow_symlinks, max_files=max_files,
        allowed_root=allowed_root,
    )
    if only is not None:
        wanted = set(only)
        # Files asked for but absent simply do not appear: the caller's diff reports them as removed.
        entries = [e for e in entries if e.name in wanted]
    if on_total is not None:
        on_total(sum(e.size for e in entries))
    units = hashing.units_for(entries, serialization.shard_size)
    digests = hashing.hash_with_cache(units, serialization.hash_type, cache=cache, workers=workers, progress=progress)
    pairs = [(u.name, d) for u, d in zip(units, digests, strict=True)]
    return make_manifest(model_name(root), serialization, pairs, model_card)
