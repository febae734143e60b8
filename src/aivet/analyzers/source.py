"""Byte sources the analyzers read: a file on disk, or a member of an archive."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class Source:
    """Something to analyse.

    ``path`` is the display path (repository-relative; archive members joined
    with ``!``). ``open()`` returns a new seekable binary stream each call.
    ``fs_path`` is set when the bytes are a plain file on disk (readers may
    memory-map it). ``depth`` counts enclosing archives.
    """

    path: str
    size: int
    opener: Callable[[], BinaryIO] = field(repr=False, compare=False)
    fs_path: Path | None = None
    depth: int = 0

    @property
    def name(self) -> str:
        """The innermost name (``a.zip!dir/data.pkl`` -> ``dir/data.pkl``)."""
        return self.path.rsplit("!", 1)[-1]

    def open(self) -> BinaryIO:
        return self.opener()

    def head(self, n: int) -> bytes:
        with self.open() as fh:
            return fh.read(n)

    def child(self, member: str, size: int, opener: Callable[[], BinaryIO], fs_path: Path | None = None) -> Source:
        """A member of this source (an archive entry), one level deeper."""
        return Source(f"{self.path}!{member}", size, opener, fs_path, self.depth + 1)

    @classmethod
    def from_file(cls, fs_path: Path, display: str) -> Source:
        size = os.stat(fs_path).st_size
        return cls(display, size, lambda: open(fs_path, "rb"), fs_path)

    @classmethod
    def from_bytes(cls, data: bytes, display: str, depth: int = 0) -> Source:
        return cls(display, len(data), lambda: io.BytesIO(data), None, depth)
