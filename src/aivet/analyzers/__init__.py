"""Analyzers that turn model files into findings, and :func:`scan`, the entry point.

(The package is not called ``scan``: that name belongs to the function ``aivet.scan``.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.engine import iter_files, scan_files
from aivet.evidence import Evidence
from aivet.limits import DEFAULT_LIMITS, Limits
from aivet.repo import Target, resolve

if TYPE_CHECKING:
    from aivet.suppressions import SuppressionFile

__all__ = ["scan", "scan_targets", "ScanOptions"]

Progress = Callable[[str, int], None]


def scan(
    *paths: str | os.PathLike[str],
    limits: Limits = DEFAULT_LIMITS,
    strict: bool = False,
    progress: Progress | None = None,
    on_start: Callable[[int, int], None] | None = None,
    suppressions: SuppressionFile | None = None,
) -> Evidence:
    """Scan model repositories, files, hub caches or ``hf://`` references without executing them.

    Returns one :class:`~aivet.evidence.Evidence` covering every subject.
    ``progress(path, nbytes)`` is called after each file; ``on_start(files, bytes)``
    once the files to scan are known. ``suppressions`` (:func:`aivet.suppressions.load`)
    moves the findings its entries accept to ``Evidence.suppressed``. Raises :class:`~aivet.errors.AivetError`
    only for problems with the request itself (a missing path, an offline hub);
    everything wrong with the content becomes a finding.
    """
    if not paths:
        raise TypeError("scan() needs at least one path")
    targets = [t for p in paths for t in resolve(p)]
    return scan_targets(targets, ScanOptions(limits=limits, strict=strict), progress, on_start, suppressions)


def scan_targets(
    targets: Iterable[Target],
    options: ScanOptions,
    progress: Progress | None = None,
    on_start: Callable[[int, int], None] | None = None,
    suppressions: SuppressionFile | None = None,
) -> Evidence:
    """Scan resolved targets (see :func:`scan`)."""
    targets = list(targets)
    evidence = Evidence()
    plans = []
    total_files = total_bytes = 0
    for target in targets:
        ctx = Context(subject=target.subject.id, options=options, root=target.allowed_root)
        if target.path.is_dir():
            files = list(iter_files(target.path, target.allowed_root, ctx))
        else:
            files = [(target.path, target.path.name)]
        ctx.repo_files = frozenset(d for _, d in files)
        for fs_path, _ in files:
            try:
                total_bytes += fs_path.stat().st_size
            except OSError:
                pass
        total_files += len(files)
        plans.append((target, ctx, files))
    if on_start is not None:
        on_start(total_files, total_bytes)
    for target, ctx, files in plans:
        scan_files(files, ctx, progress)
        evidence = replace(
            evidence,
            subjects=evidence.subjects + (target.subject,),
            artifacts=evidence.artifacts + tuple(ctx.artifacts),
            findings=evidence.findings + tuple(ctx.findings),
        )
    if suppressions is not None:
        from aivet import suppressions as accepted

        hasher = accepted.TargetHasher({t.subject.id: (t.path, t.allowed_root) for t in targets})
        evidence = accepted.apply(evidence, suppressions, hasher)
    return evidence

