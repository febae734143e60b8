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
    """``sha256:<manifest root digest>`` of the model directory ``root`` (hashes every file once)."""
    from aivet.provenance.directory import ignore_list, manifest_of
    from aivet.provenance.manifest import DEFAULT_SIGNATURE_NAME, Serialization

    path = Path(root)
    # The same ignore list as a default `aivet sign`: git files and the signature itself, so the
    # digest is the signed manifest's root digest and does not change when the model is re-signed.
    serialization = Serialization(ignore_paths=ignore_list(path, path / DEFAULT_SIGNATURE_NAME))
    return "sha256:" + manifest_of(path, serialization).root_digest()
