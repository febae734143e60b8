"""Single compressed streams: gzip, bzip2, xz/lzma, zlib (joblib) and lz4.

The stream is decompressed chunk by chunk against the member, total and ratio
bounds of :mod:`aivet.analyzers.archive`, and what comes out is analysed as a
nested source named after the file without its compression suffix. Concatenated
streams of one codec are followed; anything else after the end is stray bytes.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Any, BinaryIO

from aivet import rules
from aivet.analyzers.archive import (
    CHUNK,
    Bounded,
    MemberSink,
    copy_bounded,
    outermost_budget,
    report_gap,
    too_deep,
)
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus
from aivet.formats import FormatError

_JOBLIB_ZF_HEADER = 2 + 19  # b"ZF" + hex length padded to 19 characters (joblib < 0.10)
_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".lzma", ".z", ".zlib", ".lz4", ".tgz")


def _decompressor(head: bytes) -> tuple[str, Any] | None:
    """The codec for a stream starting with ``head`` and a decompressor object for it."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip", zlib.decompressobj(16 + zlib.MAX_WBITS)
    if head.startswith(b"BZh"):
        return "bzip2", bz2.BZ2Decompressor()
    if head.startswith(b"\xfd7zXZ\x00") or head.startswith(b"\x5d\x00\x00"):
        return "xz", lzma.LZMADecompressor(lzma.FORMAT_AUTO)
    if head[:1] == b"\x78":
        return "zlib", zlib.decompressobj()
    if head.startswith(b"\x04\x22\x4d\x18"):
        try:
            import lz4.frame  # type: ignore[import-not-found,unused-ignore]
        except ModuleNotFoundError:
            return "lz4", None
        return "lz4", lz4.frame.LZ4FrameDecompressor()
    return None


def _decompressed_name(name: str) -> str:
    """``model.pkl.gz`` -> ``model.pkl``; a name without a compression suffix -> ``decompressed``."""
    base = name.rsplit("/", 1)[-1]
    lower = base.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix) and len(base) > len(suffix):
            stem = base[: -len(suffix)]
            return stem + ".tar" if suffix == ".tgz" else stem
    return "decompressed"


def analyze_compressed(source: Source, ctx: Context) -> Outcome:
    """Decompress a gzip, bzip2, xz/lzma, zlib (joblib) or lz4 stream within bounds and analyse the result."""
    if (deep := too_deep(source, ctx)) is not None:
        return deep
    with source.open() as fh:
        head = fh.read(_JOBLIB_ZF_HEADER + 1)
        skip = 0
        if head.startswith(b"ZF"):  # joblib's legacy z-file: "ZF" + hex length, then zlib
            skip = _JOBLIB_ZF_HEADER + (1 if head[_JOBLIB_ZF_HEADER:_JOBLIB_ZF_HEADER + 1] == b" " else 0)
        picked = _decompressor(head[skip:])
        if picked is None:
            raise FormatError("not a recognised compressed stream", 0)
        codec, dec = picked
        if dec is None:
            ctx.add(rules.UNSUPPORTED.finding(ctx.location(source), "lz4 stream; install the lz4 extra to "
                                              "analyse it: pip install 'aivet[lz4]'", format="lz4"))
            return Outcome("lz4", ArtifactStatus.UNSUPPORTED, "lz4 module not installed")
        fh.seek(skip)
        name = _decompressed_name(source.name)
        with outermost_budget(ctx) as budget:
            sink = MemberSink(ctx.limits.in_memory_member_bytes)
            try:
                reader = _StreamReader(fh, dec, codec, source.size)
                try:
                    copy_bounded(reader.read, sink, source, name, ctx, budget, max(source.size - skip, 1))
                except Bounded:
                    return Outcome(codec, ArtifactStatus.PARTIAL, "decompression stopped at a limit")
                except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
                    raise FormatError(f"corrupt {codec} stream: {exc}") from exc
                except Exception as exc:  # noqa: BLE001 - third-party (lz4) errors have no common base
                    raise FormatError(f"corrupt {codec} stream: {type(exc).__name__}: {exc}") from exc
                ctx.analyze(sink.source(source, name))
            finally:
                sink.close()
            if reader.trailing is not None:
                start, size = reader.trailing
                report_gap(source, ctx, start, start + size, first=False, where="after the compressed stream")
    return Outcome(codec)


class _StreamReader:
    """``read(n)`` over a decompressed stream, never holding more than ``n`` output bytes.

    Concatenated streams of the same codec (multi-member gzip, multi-stream bzip2/xz) are
    followed, as the stdlib openers do; anything else after the end of the stream is
    remembered as ``trailing`` (offset, size) for the caller to report.
    """

    def __init__(self, fh: BinaryIO, dec: Any, codec: str, size: int) -> None:
        self.fh = fh
        self.dec = dec
        self.codec = codec
        self.size = size
        self.pending = b""
        self.done = False
        self.trailing: tuple[int, int] | None = None

    def read(self, n: int) -> bytes:
        while not self.done:
            out = self._step(n)
            if out:
                return bytes(out)
        return b""

    def _input(self) -> bytes:
        data, self.pending = self.pending or self.fh.read(CHUNK), b""
        return data

    def _step(self, n: int) -> bytes:
        dec = self.dec
        if dec.eof:
            rest = bytes(dec.unused_data) + self._input()
            if not rest:
                self.done = True
                return b""
            picked = _decompressor(rest) if self.codec in ("gzip", "bzip2", "xz") else None
            if picked is not None and picked[0] == self.codec and picked[1] is not None:
                self.dec, self.pending = picked[1], rest
                return b""
            remaining = len(rest) + max(self.size - self.fh.tell(), 0)
            if rest.strip(b"\0") or remaining > len(rest):  # zero padding after a stream is common
                self.trailing = (self.size - remaining, remaining)
            self.done = True
            return b""
        if hasattr(dec, "unconsumed_tail"):  # zlib-style: unconsumed input is handed back to us
            data = dec.unconsumed_tail or self._input()
            if not data:
                raise EOFError("stream is truncated")
            out: bytes = dec.decompress(data, n)
            return out
        data = b""
        if getattr(dec, "needs_input", True):
            data = self._input()
            if not data:
                raise EOFError("stream is truncated")
        out = dec.decompress(data, n)
        return out

