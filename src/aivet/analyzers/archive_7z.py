"""7z archives, through the optional py7zr package.

Declared sizes are bounded before anything is extracted, members are extracted
into memory by writers that keep no more than the size each member declared, and
every member is then analysed as a nested source.
"""

from __future__ import annotations

import io
from typing import Any

from aivet import rules
from aivet.analyzers.archive import (
    BOMB,
    ENCRYPTED,
    LINK_MEMBER,
    RATIO_FLOOR,
    bytes_opener,
    check_names,
    ctx_loc,
    outermost_budget,
    too_deep,
)
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus
from aivet.formats import FormatError, LimitExceeded


class _BoundedWriter:
    """A py7zr writer that keeps at most ``limit`` bytes and remembers when more arrived."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = io.BytesIO()
        self.overflow = False
        self._size = 0

    def write(self, s: bytes | bytearray) -> int:
        room = self.limit - self._size
        if len(s) > room:
            self.overflow = True
            s = s[: max(room, 0)]
        self.buffer.write(s)
        self._size += len(s)
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return self.buffer.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.buffer.seek(offset, whence)

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        return None


def analyze_7z(source: Source, ctx: Context) -> Outcome:
    """Analyse a 7z archive with py7zr (optional): bound declared sizes, extract in memory, recurse."""
    if (deep := too_deep(source, ctx)) is not None:
        return deep
    try:
        import py7zr
        import py7zr.io
    except ModuleNotFoundError:
        ctx.add(rules.UNSUPPORTED.finding(ctx.location(source), "7z archive; install the 7z extra to analyse it: "
                                          "pip install 'aivet[archives]'", format="7z"))
        return Outcome("7z", ArtifactStatus.UNSUPPORTED, "py7zr not installed")
    limits = ctx.limits
    with outermost_budget(ctx) as budget, source.open() as fh:
        try:
            archive = py7zr.SevenZipFile(fh, mode="r")
        except py7zr.PasswordRequired:
            ctx.add(ENCRYPTED.finding(ctx.location(source), "7z archive headers are encrypted; not analysed"))
            return Outcome("7z", ArtifactStatus.UNSUPPORTED, "encrypted")
        except Exception as exc:  # noqa: BLE001 - py7zr raises many unrelated types for bad input
            raise FormatError(f"not a readable 7z archive: {type(exc).__name__}: {exc}") from exc
        with archive:
            try:
                listing = archive.list()
                encrypted = archive.needs_password()
            except Exception as exc:  # noqa: BLE001
                raise FormatError(f"corrupt 7z directory: {type(exc).__name__}: {exc}") from exc
            if len(listing) > limits.max_archive_members:
                raise LimitExceeded("max_archive_members", f"7z archive lists {len(listing)} members")
            check_names([(f.filename, None) for f in listing], source, ctx)
            if encrypted:
                ctx.add(ENCRYPTED.finding(ctx.location(source), "7z archive is encrypted; not analysed"))
                return Outcome("7z", ArtifactStatus.UNSUPPORTED, "encrypted")
            total = sum(f.uncompressed for f in listing if f.is_file)
            compressed = max(source.size, 1)
            if total > RATIO_FLOOR and total > limits.max_compression_ratio * compressed:
                ctx.add(BOMB.finding(ctx.location(source), f"members declare {total} bytes from a {source.size}-byte "
                                     "archive; not extracted", declared=total, measured="declared"))
                return Outcome("7z", ArtifactStatus.PARTIAL, "decompression bomb")
            targets = []
            partial = False
            for f in listing:
                if f.is_symlink:
                    ctx.add(LINK_MEMBER.finding(ctx_loc(ctx, source, f.filename),
                                                f"symbolic link member {f.filename!r}", member=f.filename))
                elif f.is_file:
                    if f.uncompressed > min(limits.max_member_bytes, limits.in_memory_member_bytes):
                        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx_loc(ctx, source, f.filename),
                                                             f"member declares {f.uncompressed} bytes; not analysed",
                                                             limit="in_memory_member_bytes"))
                        partial = True
                    elif f.uncompressed > budget.remaining:
                        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx_loc(ctx, source, f.filename),
                                                             "archive total exceeded; member not analysed",
                                                             limit="max_total_uncompressed"))
                        partial = True
                    else:
                        budget.remaining -= f.uncompressed
                        targets.append(f)
            writers: dict[str, _BoundedWriter] = {}
            limit_of = {f.filename: f.uncompressed for f in targets}

            class _Factory(py7zr.io.WriterFactory):  # type: ignore[misc,unused-ignore]
                def create(self, filename: str) -> Any:
                    # The declared size bounds what we keep; a stream that lies is cut and reported.
                    writer = _BoundedWriter(limit_of.get(filename, 0))
                    writers[filename] = writer
                    return writer

            if targets:
                try:
                    archive.extract(targets=[f.filename for f in targets], factory=_Factory())
                except Exception as exc:  # noqa: BLE001
                    raise FormatError(f"7z members cannot be decompressed: {type(exc).__name__}: {exc}") from exc
            for f in targets:
                writer = writers.get(f.filename)
                if writer is None:
                    continue
                if writer.overflow:
                    ctx.add(BOMB.finding(ctx_loc(ctx, source, f.filename), "member expands beyond its declared size",
                                         declared=f.uncompressed, measured="actual"))
                    partial = True
                data = writer.buffer.getvalue()
                ctx.analyze(source.child(f.filename, len(data), bytes_opener(data)))
    return Outcome("7z", ArtifactStatus.PARTIAL if partial else ArtifactStatus.ANALYZED)
