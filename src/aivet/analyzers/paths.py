"""Does a file name that a model gives for another file lead out of the model's directory?

Several formats make their loader open a second file named inside the first: ONNX
external data, HDF5 external links, external raw data and virtual dataset sources.
The loader joins that name to the model's directory (or to its working directory) and
opens whatever is there, so a hostile name reads any file the loader can. These
checks are in one place so that every such format judges a name the same way:

* :func:`escape_reason` and :func:`escapes_syntactically` look at the spelling alone (they
  work for files inside archives, where there is no directory to look in; archive member
  names and SavedModel asset names are judged by :func:`escape_reason` too);
* :func:`resolve_sibling` looks on disk, symbolic links included, for a file next to a
  model that is on disk;
* :func:`reference_verdict` combines the two into a severity and a reason.

Both judge the name as the loader would use it; neither opens the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from aivet.evidence import Severity

# Verdicts of resolve_sibling
ESCAPES = "escapes"
MISSING = "missing"
INSIDE = "inside"


def escape_reason(name: str) -> str | None:
    """Why ``name``, joined to a directory, leaves it by its spelling alone; ``None`` when it does not.

    A NUL byte (C loaders cut the name there), an absolute name (POSIX or Windows root, a
    drive letter, a UNC share) or a ``..`` component, with ``/`` or ``\\`` as separators:
    a loader on either Windows or POSIX may be the one that reads it.
    """
    if "\x00" in name:
        return "contains a NUL byte"
    if name.startswith(("/", "\\")):
        return "is absolute"
    if name[1:2] == ":" and name[0].isalpha():  # cheap enough for every member of an archive
        return "starts with a drive letter"
    if ".." in name.replace("\\", "/").split("/"):
        return "contains '..'"
    return None


def escapes_syntactically(location: str) -> bool:
    """Whether a file name a model gives for another file leaves its directory by its spelling alone.

    :func:`escape_reason`, and also an empty name (the directory itself) and ``~`` (expanded
    to a home directory by loaders that call ``expanduser``).
    """
    return not location or location.startswith("~") or escape_reason(location) is not None


def resolve_sibling(location: str, model: Path, root: Path | None) -> tuple[str, Path | None]:
    """Resolve a relative file name against the directory of ``model`` on disk, symbolic links included.

    Returns ``(MISSING, None)`` when nothing is there, ``(ESCAPES, resolved)`` when it resolves
    outside both the model's directory and the repository ``root``, else ``(INSIDE, resolved)``.
    Check :func:`escapes_syntactically` first: an absolute ``location`` replaces the directory.
    """
    base = model.parent.resolve()
    allowed = root.resolve() if root is not None else base
    target = Path(os.path.normpath(base / location))
    try:
        resolved = target.resolve(strict=True)
    except (OSError, RuntimeError):
        return MISSING, None
    if not (resolved.is_relative_to(base) or resolved.is_relative_to(allowed)):
        return ESCAPES, resolved
    return INSIDE, resolved


def reference_verdict(location: str, model: Path | None, root: Path | None) -> tuple[Severity, str]:
    """How far a file a model names may lead: a severity and the reason, in words.

    High when the name escapes by its spelling or resolves outside the model directory and the
    repository ``root``; medium when it cannot be checked (``model`` is not on disk, e.g. inside
    an archive: the name resolves against the loader's working directory) or nothing is there;
    low for a file of the repository (scanned on its own).
    """
    if escapes_syntactically(location):
        return Severity.HIGH, "absolute or '..' path"
    if model is None:
        return Severity.MEDIUM, "relative to the loader's working directory"
    verdict, _resolved = resolve_sibling(location, model, root)
    if verdict == ESCAPES:
        return Severity.HIGH, "resolves outside the model directory"
    if verdict == MISSING:
        return Severity.MEDIUM, "no such file next to the model"
    return Severity.LOW, "a file of the repository"


__all__ = ["ESCAPES", "INSIDE", "MISSING", "escape_reason", "escapes_syntactically", "reference_verdict", "resolve_sibling"]
