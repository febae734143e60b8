"""Zip archives: bounded central directory, structural checks, then members by kind.

The central directory is bounded before :mod:`zipfile` reads it; local headers are
compared with it and bytes that belong to no member are reported and analysed. What
the members are then decides who reads them: :mod:`aivet.analyzers.torch` for
PyTorch and TorchScript archives, :mod:`aivet.analyzers.keras` for Keras v3 files,
:meth:`Context.analyze` for each member of anything else.
"""

from __future__ import annotations

import copy
import io
import lzma
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from aivet import rules
from aivet.analyzers.archive import (
    BOMB,
    CHUNK,
    ENCRYPTED,
    HEADER_MISMATCH,
    LINK_MEMBER,
    RATIO_FLOOR,
    READER_DIFFERENTIAL,
    UNSUPPORTED_METHOD,
    Budget,
    Entry,
    MembersBase,
    Window,
    ZipKind,
    check_names,
    classify_zip,
    ctx_loc,
    outermost_budget,
    report_gap,
    too_deep,
    unsafe_name,
)
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Location
from aivet.formats import FormatError, LimitExceeded

if TYPE_CHECKING:
    from aivet.analyzers.archive_sequence import ZipSequence

# zipfile can decompress these: stored, deflate, bzip2, lzma.
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
_MIN_CD_ENTRY = 46  # fixed part of a central directory entry

_EOCD = struct.Struct("<4s4H2LH")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
# The methods PyTorch's reader (miniz) decompresses: the lenient view reads no others.
_LENIENT_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})


def _read_tail(fh: BinaryIO, size: int) -> bytes:
    """The last bytes of the file where zipfile and miniz look for the end record (one read for both)."""
    tail_len = min(size, 65536 + _EOCD.size)
    fh.seek(size - tail_len)
    return fh.read(tail_len)


def _precheck_zip(fh: BinaryIO, size: int, ctx: Context, tail: bytes | None = None) -> tuple[int, int]:
    """Bound the central directory before zipfile reads it all into memory.

    Returns the offset just past the end-of-central-directory record and its comment, and the
    directory offset the record declares (zipfile shifts member offsets by the difference
    between that and where it actually reads the directory). ``tail``: :func:`_read_tail`'s bytes.
    """
    if tail is None:
        tail = _read_tail(fh, size)
    tail_len = len(tail)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + _EOCD.size > len(tail):
        raise FormatError("no end of central directory record (truncated or not a zip)", size)
    eocd_at = size - tail_len + pos
    _, _, _, _, total, cd_size, cd_offset, comment_len = _EOCD.unpack_from(tail, pos)
    # zipfile takes the counts from a zip64 end record wherever one sits just before the
    # locator, whatever the classic record says: so must the bound, or it is a bypass.
    zip64 = _zip64_counts(fh, eocd_at)
    if zip64 is not None:
        total, cd_size, cd_offset = zip64
    if total > ctx.limits.max_archive_members:
        raise LimitExceeded("max_archive_members", f"zip declares {total} members", eocd_at)
    if cd_size > _MIN_CD_ENTRY * ctx.limits.max_archive_members + ctx.limits.max_header_bytes:
        raise LimitExceeded("max_header_bytes", f"zip central directory of {cd_size} bytes", eocd_at)
    return eocd_at + _EOCD.size + int(comment_len), int(cd_offset)


def _zip64_counts(fh: BinaryIO, eocd_at: int) -> tuple[int, int, int] | None:
    """Members, directory size and offset from the zip64 end record zipfile would use, if there is one."""
    start = eocd_at - _EOCD64_LOCATOR.size - _EOCD64.size
    if start < 0:
        return None
    fh.seek(start)
    data = fh.read(_EOCD64.size + _EOCD64_LOCATOR.size)
    if len(data) < _EOCD64.size + _EOCD64_LOCATOR.size or data[:4] != b"PK\x06\x06" \
            or data[_EOCD64.size:_EOCD64.size + 4] != b"PK\x06\x07":
        return None
    fields = _EOCD64.unpack_from(data)
    return int(fields[7]), int(fields[8]), int(fields[9])


def _open_zip(fh: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, struct.error, OverflowError,
            UnicodeDecodeError, NotImplementedError, KeyError, IndexError) as exc:
        raise FormatError(f"not a readable zip: {exc}") from exc


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "surrogateescape")


def _layout(fh: BinaryIO, zf: zipfile.ZipFile | LenientZip, source: Source, ctx: Context) -> dict[int, str]:
    """Compare local headers with the central directory and report bytes that belong to no member.

    Returns the local header names that differ from the central directory, by header offset.
    """
    mismatched: dict[int, str] = {}
    spans: list[tuple[int, int, str]] = []
    infos = zf.infolist()
    read_at = _ReadAhead(fh).read
    size = source.size
    for info in infos:
        if not 0 <= info.header_offset < size:
            raise FormatError(f"member {info.filename!r} points outside the file (offset {info.header_offset})")
        # _raw_name, inline: this loop runs once per member, thousands of times in a checkpoint.
        raw_name = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "surrogateescape")
        # One read for the header and the name it should carry (they almost always agree in length).
        head = read_at(info.header_offset, _LOCAL.size + len(raw_name))
        if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
            ctx.add(HEADER_MISMATCH.finding(ctx.location(source, offset=info.header_offset),
                                            f"member {info.filename!r}: no local file header where the "
                                            "central directory points", member=info.filename))
            continue
        _, _, lflags, lmethod, _, _, _, lcsize, lusize, nlen, elen = _LOCAL.unpack_from(head)
        lname = head[_LOCAL.size:] if nlen == len(raw_name) else read_at(info.header_offset + _LOCAL.size, nlen)
        problems = []
        if lname != raw_name:
            problems.append(f"local name {lname.decode('utf-8', 'backslashreplace')!r}")
            try:
                mismatched[info.header_offset] = lname.decode("utf-8" if lflags & 0x800 else "cp437")
            except UnicodeDecodeError:
                pass
        if lmethod != info.compress_type:
            problems.append(f"local method {lmethod} vs {info.compress_type}")
        if not lflags & 0x8 and lcsize != 0xFFFFFFFF and lusize != 0xFFFFFFFF and (
                lcsize != info.compress_size or lusize != info.file_size):
            problems.append(f"local sizes {lcsize}/{lusize} vs {info.compress_size}/{info.file_size}")
        if problems:
            ctx.add(HEADER_MISMATCH.finding(
                ctx.location(source, offset=info.header_offset),
                f"member {info.filename!r}: central directory and local header differ: " + "; ".join(problems),
                member=info.filename, local_name=lname.decode("utf-8", "backslashreplace")))
        end = info.header_offset + _LOCAL.size + nlen + elen + info.compress_size
        if info.flag_bits & 0x8:  # a data descriptor follows the data
            sig = read_at(end, 4)
            wide = info.file_size > 0xFFFFFFFF or info.compress_size > 0xFFFFFFFF
            # The flag promises a descriptor; a header right after the data means there is none
            # (readers take the sizes from the central directory, so the member still reads).
            if sig not in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"):
                end += (4 if sig == b"PK\x07\x08" else 0) + (20 if wide else 12)
        spans.append((info.header_offset, end, info.filename))
    spans.sort()
    cd_start = zf.start_dir if hasattr(zf, "start_dir") else None
    cursor = 0
    for start, end, name in spans:
        if start < cursor:
            ctx.add(BOMB.finding(ctx.location(source, offset=start),
                                 f"member {name!r} overlaps the previous member (overlapping-entry zip bomb "
                                 "or two names for the same bytes)", member=name, measured="overlap"))
        elif start > cursor:
            report_gap(source, ctx, cursor, start, first=(cursor == 0))
        cursor = max(cursor, end)
    if cd_start is not None and cd_start > cursor and spans:
        report_gap(source, ctx, cursor, cd_start, first=False)
    elif not spans and cd_start:
        report_gap(source, ctx, 0, cd_start, first=True)
    return mismatched


_READ_AHEAD = 512  # a local header, its name, and the next member's data descriptor or header


class _ReadAhead:
    """``read(offset, n)`` for many small reads at rising offsets.

    Each fetch takes at least :data:`_READ_AHEAD` bytes, and a read inside the last fetch is a
    slice of it: the data descriptor that ends one member and the local header of the next are
    one fetch, not two. Fetches are ``pread`` on a real file (no seek, no 8 KiB buffer refill),
    else seek and read.
    """

    def __init__(self, fh: BinaryIO) -> None:
        raw = getattr(fh, "raw", fh)
        self._fd = raw.fileno() if isinstance(raw, io.FileIO) else None  # a file on disk, not a view of one
        self._fh = fh
        self._buf = b""
        self._at = 0

    def read(self, offset: int, n: int) -> bytes:
        rel = offset - self._at
        if rel >= 0 and rel + n <= len(self._buf):
            return self._buf[rel:rel + n]
        size = max(n, _READ_AHEAD)
        if self._fd is not None:
            self._buf = os.pread(self._fd, size, offset)
        else:
            self._fh.seek(offset)
            self._buf = self._fh.read(size)
        self._at = offset
        return self._buf[:n]


def analyze_zip(source: Source, ctx: Context) -> Outcome:
    """Analyse a zip archive: structure checks, then its content by kind (torch, keras, npz, generic)."""
    if (deep := too_deep(source, ctx)) is not None:
        return deep
    with outermost_budget(ctx) as budget, source.open() as fh:
        # Where PyTorch's reader finds the directory: a few small reads, so every zip pays it.
        tail = _read_tail(fh, source.size)
        lenient = _lenient_directory(fh, source.size, ctx, tail)
        try:
            archive_end, declared_offset = _precheck_zip(fh, source.size, ctx, tail)
            zf = _open_zip(fh)
        except FormatError as exc:
            if lenient is None:
                raise
            return _analyze_lenient_only(fh, source, ctx, budget, lenient, exc)
        if declared_offset < zf.start_dir and (sequence := _sequence(source, fh, ctx)) is not None:
            zf.close()  # bytes before the archive are whole archives: each is analysed on its own
            from aivet.analyzers import archive_sequence

            return archive_sequence.analyze_zip_sequence(source, ctx, sequence)
        with zf:
            if archive_end < source.size:
                report_gap(source, ctx, archive_end, source.size, first=False, where="after the end of the archive")
            outcome = _analyze_open_zip(zf, fh, source, ctx, budget)
            # zipfile and miniz read the same members only when they start at the same
            # directory, zipfile shifts no offsets, and miniz counts no entries zipfile skips.
            if lenient is not None and (lenient.offset != zf.start_dir or declared_offset != zf.start_dir
                                        or lenient.count > len(zf.infolist())):
                outcome = _analyze_other_directory(zf, fh, source, ctx, budget, lenient, declared_offset,
                                                   outcome)
            return outcome


def _sequence(source: Source, fh: BinaryIO, ctx: Context) -> ZipSequence | None:
    """Archives back to back (a Distributed Checkpoint shard), asked only when bytes precede the archive."""
    from aivet.analyzers import archive_sequence

    return archive_sequence.sequence_or_none(source, fh, ctx)


def _analyze_open_zip(zf: zipfile.ZipFile | LenientZip, fh: BinaryIO, source: Source, ctx: Context,
                      budget: Budget, *, structure: bool = True) -> Outcome:
    """Analyse the members of ``zf``; ``structure=False`` skips names and layout (a second view)."""
    infos = zf.infolist()
    partial = False
    if len(infos) > ctx.limits.max_archive_members:
        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source), f"{len(infos)} members; only the first "
                                             f"{ctx.limits.max_archive_members} analysed", limit="max_archive_members"))
        infos = infos[: ctx.limits.max_archive_members]
        partial = True
    local_names: dict[int, str] = {}
    if structure:
        check_names([(i.orig_filename, i.header_offset) for i in infos], source, ctx)
        local_names = _layout(fh, zf, source, ctx)
    entries: list[Entry] = []
    declared_total = 0

    def here(member: str) -> Location:  # built only for a finding: thousands of members have none
        return ctx_loc(ctx, source, member)

    for info in infos:
        if info.filename.endswith("/"):  # ZipInfo.is_dir() fails on an empty name
            continue
        if info.create_system == 3 and (info.external_attr >> 16) & 0o170000 == 0o120000:
            # A Unix symlink stored in a zip: unzip and shutil recreate it as a link on extraction.
            target = _link_target(zf, info)
            why = unsafe_name(target)
            ctx.add(LINK_MEMBER.finding(here(info.filename), f"symbolic link {info.filename!r} -> {target!r}"
                                        + (f" (target {why})" if why else ""),
                                        member=info.filename, target=target, link="symbolic"))
            # Not skipped: loaders that ignore mode bits (torch) read the "link" as a regular
            # member, so its content is analysed like any other member's.
        if info.flag_bits & 0x1:
            ctx.add(ENCRYPTED.finding(here(info.filename), f"member {info.filename!r} is encrypted; not analysed",
                                      member=info.filename))
            partial = True
            continue
        if info.compress_type not in _ZIP_METHODS:
            ctx.add(UNSUPPORTED_METHOD.finding(here(info.filename), f"member {info.filename!r} uses compression method "
                                               f"{info.compress_type}; not analysed", method=info.compress_type))
            partial = True
            continue
        if info.file_size > ctx.limits.max_member_bytes:
            ctx.add(rules.LIMIT_EXCEEDED.finding(here(info.filename),
                                                 f"member declares {info.file_size} bytes; not analysed",
                                                 limit="max_member_bytes"))
            partial = True
            continue
        if (info.file_size > RATIO_FLOOR
                and info.file_size > ctx.limits.max_compression_ratio * max(info.compress_size, 1)):
            ctx.add(BOMB.finding(here(info.filename), f"member {info.filename!r} declares {info.file_size} bytes from "
                                      f"{info.compress_size} compressed; not analysed",
                                 compressed=info.compress_size, declared=info.file_size, measured="declared"))
            partial = True
            continue
        declared_total += info.file_size
        entries.append(Entry(info.filename, info.file_size, info))
    if declared_total > budget.remaining:
        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source), f"members declare {declared_total} bytes in "
                                             "total; analysis stops at the limit", limit="max_total_uncompressed"))
        partial = True
    members = ZipMembers(zf, source, ctx, budget, entries, local_names)
    kind = classify_zip([i.filename for i in infos])
    if kind is ZipKind.PT2:
        from aivet.analyzers import torch_formats

        outcome = torch_formats.analyze_pt2(members, ctx)
    elif kind in (ZipKind.PYTORCH, ZipKind.TORCHSCRIPT):
        from aivet.analyzers import torch as torch_scan

        outcome = torch_scan.analyze_torch_zip(members, ctx, kind.value)
    elif kind is ZipKind.KERAS and isinstance(zf, zipfile.ZipFile):
        outcome = _keras(zf, source, ctx, members)
    else:
        for entry in entries:
            members.analyze(entry)
        outcome = Outcome(kind.value)
    if (partial or members.partial) and outcome.status is ArtifactStatus.ANALYZED:
        outcome = Outcome(outcome.format, ArtifactStatus.PARTIAL, outcome.note or "some members were not analysed")
    return outcome


def _link_target(zf: zipfile.ZipFile | LenientZip, info: zipfile.ZipInfo) -> str:
    """The target a zip symlink member names (its content), or ``"?"`` when it cannot be read."""
    if info.file_size > 4096 or info.flag_bits & 0x1:
        return "?"
    try:
        return zf.read(info).decode("utf-8", "backslashreplace")
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError):
        return "?"


def _keras(zf: zipfile.ZipFile, source: Source, ctx: Context, members: ZipMembers) -> Outcome:
    from aivet.analyzers import keras as keras_scan

    by_name = {e.name: e for e in members.entries}
    result: Outcome = keras_scan.analyze_keras_zip(
        zf, source, ctx, analyze_member=lambda name: members.analyze(by_name[name]))
    return result


class ZipMembers(MembersBase):
    """Bounded access to the members of an open :class:`zipfile.ZipFile`."""

    def __init__(self, zf: zipfile.ZipFile | LenientZip, source: Source, ctx: Context, budget: Budget,
                 entries: list[Entry], local_names: dict[int, str]) -> None:
        super().__init__(source, ctx, budget, entries)
        self.zf = zf
        self._local_names = local_names  # header offset -> local header name, where it differs

    def _open(self, entry: Entry) -> tuple[IO[bytes], int | None, int | None]:
        info: zipfile.ZipInfo = entry.handle
        local = self._local_names.get(info.header_offset)
        if local is not None:
            # zipfile refuses a name mismatch; loaders that trust the central directory read the
            # data anyway, so do we (the mismatch itself is already a finding).
            info = copy.copy(info)
            info.orig_filename = local
        try:
            stream: IO[bytes] = self.zf.open(info)
        except (zipfile.BadZipFile, NotImplementedError, UnicodeDecodeError) as exc:
            # zipfile refuses what miniz reads (a local header flag or name encoding that
            # disagrees with the directory): read it as torch.load would, and say so.
            raw = raw_member_stream(self.source, info)  # FormatError where miniz refuses it too
            self.ctx.add(READER_DIFFERENTIAL.finding(
                ctx_loc(self.ctx, self.source, entry.name), f"zipfile refuses member {entry.name!r} ({exc}); "
                "read it as PyTorch's reader does", member=entry.name, zipfile_error=str(exc)))
            return raw, info.compress_size, info.CRC
        # We compare the CRC ourselves, after the bytes are in: a mismatch is a finding, and the
        # altered bytes are exactly what a lenient loader would read, so they are still analysed.
        if hasattr(stream, "_expected_crc"):
            stream._expected_crc = None
        return stream, info.compress_size, info.CRC

    def _window(self, entry: Entry) -> tuple[int, int] | None:
        info: zipfile.ZipInfo = entry.handle
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 or info.compress_size != info.file_size:
            return None
        with self.source.open() as fh:
            fh.seek(info.header_offset)
            head = fh.read(_LOCAL.size)
        if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
            return None
        nlen, elen = struct.unpack_from("<HH", head, 26)
        base = info.header_offset + _LOCAL.size + nlen + elen
        if base + info.file_size > self.source.size:
            raise FormatError(f"member {entry.name!r} runs past the end of the archive", info.header_offset)
        return base, info.file_size



# ---------------------------------------------------------------------------------------------
# The lenient view: the archive as PyTorch's reader (miniz) sees it
# ---------------------------------------------------------------------------------------------
#
# torch.load reads zips with miniz, not zipfile. The two disagree in ways attackers use:
# miniz takes the last end record with 22 bytes after it (zipfile gives up when the last
# signature is closer to the end), follows a zip64 locator to a record anywhere in the file
# (zipfile only looks right before the locator), reads the directory at the offset the end
# record gives (zipfile reads the bytes just before the end record and shifts every member
# offset by the difference), reads as many entries as the end record counts (zipfile walks
# the whole directory size and fails on trailing bytes), and ignores extra fields and the
# UTF-8 flag (zipfile fails the whole archive on a malformed extra field or name).

@dataclass(frozen=True)
class LenientDirectory:
    """Where miniz finds the central directory: its offset, size, entry count and the archive's end."""

    offset: int
    size: int
    count: int
    end: int


def _lenient_directory(fh: BinaryIO, size: int, ctx: Context, tail: bytes | None = None) -> LenientDirectory | None:
    """The central directory miniz would read, or ``None`` when miniz would not open the file.

    ``tail``: :func:`_read_tail`'s bytes; miniz searches one byte less far back than zipfile.
    """
    tail_len = min(size, 65535 + _EOCD.size)
    if tail is None:
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
    else:
        tail = tail[len(tail) - tail_len:]
    pos = tail.rfind(b"PK\x05\x06", 0, max(len(tail) - _EOCD.size + 4, 0))
    if pos < 0:
        return None
    eocd_at = size - tail_len + pos
    _, _, _, _, count, cd_size, cd_offset, comment_len = _EOCD.unpack_from(tail, pos)
    if eocd_at >= _EOCD64.size + _EOCD64_LOCATOR.size:
        fh.seek(eocd_at - _EOCD64_LOCATOR.size)
        locator = fh.read(_EOCD64_LOCATOR.size)
        if len(locator) == _EOCD64_LOCATOR.size and locator[:4] == b"PK\x06\x07":
            _, _, record_at, disks = _EOCD64_LOCATOR.unpack(locator)
            record = _zip64_record(fh, eocd_at - _EOCD64_LOCATOR.size - _EOCD64.size)
            if record is None and record_at <= size - _EOCD64.size:
                record = _zip64_record(fh, record_at)
            if record is None or disks != 1:
                return None
            count, cd_size, cd_offset = record
    if cd_offset + cd_size > size or cd_size < count * _MIN_CD_ENTRY:
        return None
    if count > ctx.limits.max_archive_members:
        raise LimitExceeded("max_archive_members", f"zip declares {count} members", eocd_at)
    if cd_size > _MIN_CD_ENTRY * ctx.limits.max_archive_members + ctx.limits.max_header_bytes:
        raise LimitExceeded("max_header_bytes", f"zip central directory of {cd_size} bytes", eocd_at)
    return LenientDirectory(int(cd_offset), int(cd_size), int(count),
                            min(size, eocd_at + _EOCD.size + int(comment_len)))


def _zip64_record(fh: BinaryIO, at: int) -> tuple[int, int, int] | None:
    """Entry count, directory size and offset from a zip64 end record at ``at``, if one is there."""
    if at < 0:
        return None
    fh.seek(at)
    data = fh.read(_EOCD64.size)
    if len(data) < _EOCD64.size or data[:4] != b"PK\x06\x06":
        return None
    fields = _EOCD64.unpack(data)
    return int(fields[7]), int(fields[8]), int(fields[9])


def _lenient_infos(fh: BinaryIO, directory: LenientDirectory) -> list[zipfile.ZipInfo]:
    """The entries miniz reads from ``directory``, as :class:`zipfile.ZipInfo` objects."""
    fh.seek(directory.offset)
    data = fh.read(directory.size)
    infos: list[zipfile.ZipInfo] = []
    at = 0
    for _ in range(directory.count):
        if at + _CENTRAL.size > len(data) or data[at:at + 4] != b"PK\x01\x02":
            raise FormatError("central directory entry expected", directory.offset + at)
        (_, made, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen, _, _, ext_attr,
         offset) = _CENTRAL.unpack_from(data, at)
        name_at = at + _CENTRAL.size
        at = name_at + nlen + elen + clen
        if at > len(data):
            raise FormatError("central directory entry runs past the directory", directory.offset + name_at)
        raw = data[name_at:name_at + nlen]
        info = zipfile.ZipInfo(raw.decode("utf-8" if flags & 0x800 else "cp437", "surrogateescape"))
        info.orig_filename = raw.decode("utf-8" if flags & 0x800 else "cp437", "surrogateescape")
        info.flag_bits, info.compress_type, info.CRC = flags, method, crc
        info.compress_size, info.file_size, info.header_offset = csize, usize, offset
        info.create_system, info.external_attr = made >> 8, ext_attr
        if 0xFFFFFFFF in (csize, usize, offset):
            _zip64_extra(info, data[name_at + nlen:name_at + nlen + elen])
        infos.append(info)
    return infos


def _zip64_extra(info: zipfile.ZipInfo, extra: bytes) -> None:
    """Replace the 0xFFFFFFFF placeholders of ``info`` from its zip64 extra field, as miniz does."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        body = extra[at + 4:at + 4 + length]
        at += 4 + length
        if tag != 1:
            continue
        for field in ("file_size", "compress_size", "header_offset"):
            if getattr(info, field) == 0xFFFFFFFF and len(body) >= 8:
                setattr(info, field, struct.unpack_from("<Q", body)[0])
                body = body[8:]
        return


class LenientZip:
    """The few :class:`zipfile.ZipFile` methods the zip analysis uses, over the lenient view."""

    def __init__(self, source: Source, infos: list[zipfile.ZipInfo], start_dir: int) -> None:
        self._source = source
        self._infos = infos
        self.start_dir = start_dir

    def infolist(self) -> list[zipfile.ZipInfo]:
        """The entries, in directory order."""
        return self._infos

    def open(self, info: zipfile.ZipInfo) -> IO[bytes]:
        """The member's bytes, read the way miniz reads them."""
        return raw_member_stream(self._source, info)

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """A small member's bytes (symbolic link targets)."""
        with self.open(info) as stream:
            return stream.read(4096)


def raw_member_stream(source: Source, info: zipfile.ZipInfo) -> IO[bytes]:
    """Member ``info`` of ``source`` read as miniz does: sizes and method from the directory entry,
    only the name and extra lengths from the local header; stored or deflated only.
    """
    if info.compress_type not in _LENIENT_METHODS:
        raise FormatError(f"member {info.filename!r} uses method {info.compress_type}, which PyTorch's reader "
                          "does not read either", info.header_offset)
    with source.open() as fh:
        fh.seek(info.header_offset)
        head = fh.read(_LOCAL.size)
    if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
        raise FormatError(f"member {info.filename!r}: no local file header", info.header_offset)
    nlen, elen = struct.unpack_from("<HH", head, 26)
    base = info.header_offset + _LOCAL.size + nlen + elen
    if base + info.compress_size > source.size:
        raise FormatError(f"member {info.filename!r} runs past the end of the archive", info.header_offset)
    window = Window(source.open(), base, info.compress_size)
    if info.compress_type == zipfile.ZIP_STORED:
        return cast(IO[bytes], io.BufferedReader(window))
    return cast(IO[bytes], io.BufferedReader(_Inflate(window)))


class _Inflate(io.RawIOBase):
    """Raw deflate over a window, producing at most the requested bytes per read."""

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__()
        self._raw = raw
        self._dec = zlib.decompressobj(-15)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        while True:
            data = self._dec.unconsumed_tail
            if not data and not self._dec.eof:
                data = self._raw.read(CHUNK) or b""
            if not data:
                return 0
            out = self._dec.decompress(data, want)
            if out:
                buffer[:len(out)] = out
                return len(out)
            if self._dec.eof:
                return 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def _analyze_lenient_only(fh: BinaryIO, source: Source, ctx: Context, budget: Budget,
                          directory: LenientDirectory, error: FormatError) -> Outcome:
    """zipfile cannot open the archive but miniz can: analyse what torch.load would read."""
    try:
        infos = _lenient_infos(fh, directory)
    except FormatError:
        raise error from None  # miniz fails too: zipfile's reason is the one to report
    ctx.add(READER_DIFFERENTIAL.finding(ctx.location(source, offset=directory.offset),
                                        f"Python's zipfile cannot open the archive ({error}), PyTorch's "
                                        f"reader can: its {len(infos)} members analysed as that reader sees them",
                                        zipfile_error=str(error), members=len(infos)))
    if directory.end < source.size:
        report_gap(source, ctx, directory.end, source.size, first=False, where="after the end of the archive")
    return _analyze_open_zip(LenientZip(source, infos, directory.offset), fh, source, ctx, budget)


def _analyze_other_directory(zf: zipfile.ZipFile, fh: BinaryIO, source: Source, ctx: Context, budget: Budget,
                             directory: LenientDirectory, declared_offset: int, outcome: Outcome) -> Outcome:
    """zipfile and miniz read different central directories: analyse the members only miniz sees."""
    try:
        infos = _lenient_infos(fh, directory)
    except FormatError:
        return outcome  # miniz cannot read its directory either: torch.load fails on this file
    seen = {(_raw_name(i), i.header_offset) for i in zf.infolist()}
    other = [i for i in infos if (_raw_name(i), i.header_offset) not in seen]
    ctx.add(READER_DIFFERENTIAL.finding(
        ctx.location(source, offset=directory.offset),
        f"zipfile reads the central directory at offset {zf.start_dir} (member offsets shifted by "
        f"{zf.start_dir - declared_offset}), PyTorch's reader reads {directory.count} entries at {directory.offset}; "
        f"{len(other)} members only the latter sees are analysed as well",
        zipfile_directory=zf.start_dir, lenient_directory=directory.offset, members=len(other),
        names=[i.filename for i in other[:20]]))
    if not other:
        return outcome
    second = _analyze_open_zip(LenientZip(source, other, directory.offset), fh, source, ctx, budget, structure=False)
    if second.status is not ArtifactStatus.ANALYZED and outcome.status is ArtifactStatus.ANALYZED:
        return Outcome(outcome.format, ArtifactStatus.PARTIAL, second.note or "some members were not analysed")
    return outcome
