"""Zip archives laid back to back in one file, such as Distributed Checkpoint ``.distcp`` shards.

``torch.distributed.checkpoint.save`` writes each tensor or object of a shard with
``torch.save`` into the same file, one complete zip after another (``.metadata``, a pickle,
holds the offsets). A zip reader opens only the last archive, and the ones before it look like
bytes prepended to it. :func:`zip_sequence` finds the chain of archives from the end of the
file, and :func:`analyze_zip_sequence` analyses each one as its own archive; bytes that belong
to none of them are still reported as prepended or hidden data. The zip reader
(:mod:`aivet.analyzers.archive_zip`) asks only when bytes precede the archive it opened.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from aivet import rules
from aivet.analyzers.archive import _window_opener, outermost_budget, report_gap
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus
from aivet.limits import DEFAULT_LIMITS

_EOCD = struct.Struct("<4s4H2LH")  # signature, disk, cd disk, entries here, entries, cd size, cd offset, comment
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # ..., entries here, entries, cd size, cd offset
_LOCATOR = struct.Struct("<4sLQL")
_MAX_COMMENT = 65535
# Searching back for an end record costs up to 64 KiB a step; archives written back to back
# (DCP) never need it, so a whole walk gets this much, not that much per archive.
_MAX_SEARCH_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ZipSequence:
    """Complete zip archives found back to back in one file, in file order."""

    spans: tuple[tuple[int, int], ...]  # (start, end) of each archive; end is past its end record
    truncated: bool  # the walk stopped at max_zip_sequence: bytes before the first span were not examined


def _read_at(fh: BinaryIO, offset: int, n: int) -> bytes:
    fh.seek(offset)
    return fh.read(n)


def _archive_ending_at(fh: BinaryIO, eocd_at: int) -> tuple[int, int] | None:
    """``(start, end)`` of the zip whose end-of-central-directory record is at ``eocd_at``, or ``None``.

    Offsets inside a zip are relative to its own first byte: the central directory sits just
    before the end record (or the zip64 end record), so its declared offset gives the start.
    """
    record = _read_at(fh, eocd_at, _EOCD.size)
    if len(record) < _EOCD.size or record[:4] != b"PK\x05\x06":
        return None
    _, _, _, _, total, cd_size, cd_offset, comment = _EOCD.unpack(record)
    cd_end = eocd_at
    at = eocd_at - _LOCATOR.size - _EOCD64.size
    if at >= 0:
        block = _read_at(fh, at, _EOCD64.size + _LOCATOR.size)
        if block[:4] == b"PK\x06\x06" and block[_EOCD64.size:_EOCD64.size + 4] == b"PK\x06\x07":
            fields = _EOCD64.unpack_from(block)
            total, cd_size, cd_offset = int(fields[7]), int(fields[8]), int(fields[9])
            locator_rel = _LOCATOR.unpack_from(block, _EOCD64.size)[2]
            cd_end = at
            if cd_end - cd_size - cd_offset + locator_rel != at:
                return None  # the locator does not point where this record is
    cd_start = cd_end - cd_size
    start = cd_start - cd_offset
    if cd_start < 0 or start < 0:
        return None
    if cd_size and _read_at(fh, cd_start, 4) != b"PK\x01\x02":
        return None
    if total and _read_at(fh, start, 4) != b"PK\x03\x04":
        return None
    return start, eocd_at + _EOCD.size + comment


@dataclass
class _Search:
    """Bytes the walk may still read looking for end records that do not sit right before an archive."""

    remaining: int


def _previous_archive(fh: BinaryIO, before: int, search: _Search) -> tuple[int, int] | None:
    """The archive that ends at or shortly before offset ``before`` (an end record within a comment's reach)."""
    if before >= _EOCD.size:
        found = _archive_ending_at(fh, before - _EOCD.size)  # torch writes no comment: the usual case
        if found is not None and found[1] == before:
            return found
    lo = max(0, before - _MAX_COMMENT - _EOCD.size)
    if before - lo > search.remaining:
        return None  # many archives with comments or gaps: stop and let the gap be reported
    search.remaining -= before - lo
    window = _read_at(fh, lo, before - lo)
    pos = len(window)
    for _ in range(16):  # a few candidates: stray signatures in data are possible, many are hostile
        pos = window.rfind(b"PK\x05\x06", 0, pos)
        if pos < 0:
            return None
        found = _archive_ending_at(fh, lo + pos)
        if found is not None and found[1] <= before:
            return found
    return None


def zip_sequence(fh: BinaryIO, size: int, max_archives: int = DEFAULT_LIMITS.max_zip_sequence) -> ZipSequence | None:
    """Zip archives laid back to back that make up ``fh`` (``size`` bytes), or ``None`` for one archive.

    The walk starts at the last end record (the archive a zip reader opens) and steps back to the
    archive ending where the current one starts, until the file's first byte, a gap with no
    archive before it, or ``max_archives``. Reads are small and bounded per step; nothing
    is decompressed. Callers analyse each span and report the bytes between spans.
    """
    if size < _EOCD.size:
        return None
    # Called for every zip: an end record without a comment (what torch writes) costs one small read.
    if _read_at(fh, size - _EOCD.size, 4) == b"PK\x05\x06":
        eocd_at = size - _EOCD.size
    else:
        tail_len = min(size, _MAX_COMMENT + _EOCD.size)
        pos = _read_at(fh, size - tail_len, tail_len).rfind(b"PK\x05\x06")
        if pos < 0:
            return None
        eocd_at = size - tail_len + pos
    last = _archive_ending_at(fh, eocd_at)
    if last is None or last[0] == 0 or last[1] > size:
        return None  # one archive from the first byte (the common case), or a comment cut short
    spans = [last]
    truncated = False
    search = _Search(_MAX_SEARCH_BYTES)
    while spans[-1][0] > 0:
        if len(spans) >= max_archives:
            truncated = True
            break
        found = _previous_archive(fh, spans[-1][0], search)
        if found is None:
            break
        spans.append(found)
    if len(spans) < 2:
        return None  # one archive with bytes before it: the ordinary prepended-data checks apply
    spans.reverse()
    return ZipSequence(tuple(spans), truncated)


def analyze_zip_sequence(source: Source, ctx: Context, sequence: ZipSequence) -> Outcome:
    """Analyse each archive of ``sequence`` as a nested source; report bytes that belong to none.

    All archives share the outermost archive budget, so a file of many archives cannot multiply
    ``max_total_uncompressed``.
    """
    n = len(sequence.spans)
    status = ArtifactStatus.ANALYZED
    with outermost_budget(ctx):
        cursor = 0
        if sequence.truncated:
            ctx.add(rules.LIMIT_EXCEEDED.finding(
                ctx.location(source), f"more than {ctx.limits.max_zip_sequence} zip archives back to back; the "
                f"{sequence.spans[0][0]} bytes before the last {n} were not analysed", limit="max_zip_sequence"))
            status = ArtifactStatus.PARTIAL
            cursor = sequence.spans[0][0]
        for i, (start, end) in enumerate(sequence.spans):
            if start > cursor:
                report_gap(source, ctx, cursor, start, first=(cursor == 0),
                           where="before the first archive" if cursor == 0 else "between archives")
            child = source.child(f"<archive {i + 1} of {n} at {start}>", end - start,
                                 _window_opener(source, start, end - start))
            if ctx.analyze(child) in (ArtifactStatus.ERROR, ArtifactStatus.PARTIAL, ArtifactStatus.UNSUPPORTED):
                status = ArtifactStatus.PARTIAL
            cursor = end
        if cursor < source.size:
            report_gap(source, ctx, cursor, source.size, first=False, where="after the last archive")
    return Outcome("zip-sequence", status, f"{n} zip archives back to back")


def sequence_or_none(source: Source, fh: BinaryIO, ctx: Context) -> ZipSequence | None:
    """:func:`zip_sequence` that treats unreadable or malformed tails as "not a sequence".

    The zip reader that calls this reports such files itself; this check must never be the
    reason a file fails.
    """
    try:
        return zip_sequence(fh, source.size, ctx.limits.max_zip_sequence)
    except (OSError, ValueError, struct.error, OverflowError):
        return None

