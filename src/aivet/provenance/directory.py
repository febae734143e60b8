"""Turn a model directory into a :class:`Manifest` (walk, ignore rules, hash)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aivet.provenance import hashing
from aivet.provenance.manifest import DEFAULT_IGNORE, Manifest, Serialization, make_manifest


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
        full = full_path.resolve()
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
) -> Manifest:
    """Hash ``root`` as ``serialization`` says; ``only`` restricts to some files (partial verification)."""
    entries = hashing.walk(
        Path(root), serialization.ignore_paths, allow_symlinks=serialization.allow_symlinks, max_files=max_files
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
