"""Linking entries to models: the model digest of a directory.

Entries name their model by the *manifest digest* of the OpenSSF model
signing manifest (``sha256:<root digest>``, see :mod:`aivet.provenance`),
so ``aivet sign``, ``aivet verify`` and ``aivet scan --record`` on the same
files all land under one key, whoever computed it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["model_digest_of_directory"]


def model_digest_of_directory(root: str | Path) -> str:
    """``sha256:<manifest root digest>`` of the model directory ``root`` (hashes every file once).

    The signed manifest's root digest of a default ``aivet sign`` (git files and
    ``model.sig`` left out), so re-signing keeps the key; a hub cache snapshot
    gets the digest of the same files in a plain directory.
    """
    from aivet.provenance.directory import model_digest

    return model_digest(Path(root))
