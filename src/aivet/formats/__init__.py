"""Content sniffing and bounded readers. Nothing here executes model content.

Readers raise :class:`FormatError` for malformed input and
:class:`LimitExceeded` when a bound in :class:`aivet.limits.Limits` is hit;
the scan engine turns both into findings (fail closed), never a traceback.
"""

from __future__ import annotations


class FormatError(Exception):
    """The bytes are not a valid instance of the format (truncated, corrupt, hostile)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class LimitExceeded(Exception):
    """A configured bound was reached; ``limit`` names the field of ``Limits``."""

    def __init__(self, limit: str, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.offset = offset
