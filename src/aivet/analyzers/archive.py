"""Archives and compressed streams: zip, tar, gzip/bz2/xz/zlib/lz4 and 7z.

Nothing is ever extracted to disk under a member's own name. Members are
decompressed into memory (small ones) or into a private temporary file, with
every byte counted against :class:`aivet.limits.Limits`: the size of one
member, the total per top-level archive and the compression ratio. Sizes are
checked twice, as declared in the headers and as actually produced, because
headers lie. Structural tricks that make a loader and a scanner see different
bytes (duplicate names, local headers that disagree with the central
directory, bytes hidden between members) are findings of their own.

Content decides what a zip is: a PyTorch checkpoint or TorchScript archive
goes to :mod:`aivet.analyzers.torch`, a Keras v3 file to :mod:`aivet.analyzers.keras`,
anything else has each member analysed through :meth:`Context.analyze`.
"""

from __future__ import annotations

import bz2
import contextlib
import contextvars
import copy
import enum
import io
import lzma
import os
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from aivet import rules
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.rules import ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, Rule
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source

# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------

PATH_TRAVERSAL = Rule(
    "ARCHIVE-PATH-TRAVERSAL",
    "Archive member name escapes the extraction directory",
    "A member name is absolute, contains '..' components, a drive letter, a backslash or a NUL "
    "byte. Tools that extract the archive (zip-slip) can overwrite files outside the target "
    "directory, e.g. a shell profile or a Python module that runs on the next start.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-22",),
)
BOMB = Rule(
    "ARCHIVE-BOMB",
    "Decompression bomb",
    "A member expands far beyond its compressed size, or members overlap so that the same "
    "compressed bytes are counted many times. Extracting it exhausts memory or disk. aivet stops "
    "reading at the configured ratio and does not analyse the rest of the member.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-409",),
)
DUPLICATE_MEMBER = Rule(
    "ARCHIVE-DUPLICATE-MEMBER",
    "Two archive members share one name",
    "Loaders and scanners may read different copies of a duplicated name (first versus last), "
    "a published way to show a scanner a clean pickle while the loader runs a malicious one. "
    "aivet analyses every copy.",
    Severity.HIGH,
    (ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-436",),
)
HEADER_MISMATCH = Rule(
    "ARCHIVE-HEADER-MISMATCH",
    "Zip local header disagrees with the central directory",
    "A member's local file header names a different file, or declares a different size or "
    "compression method, than its central directory entry. Readers that trust one structure and "
    "readers that trust the other see different archives: a published scanner bypass for "
    "PyTorch checkpoints.",
    Severity.HIGH,
    (ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-436",),
)
ENCRYPTED = Rule(
    "ARCHIVE-ENCRYPTED",
    "Encrypted archive member",
    "An encrypted member cannot be analysed. Model files have no reason to be encrypted inside a "
    "public repository; content that hides from scanners is treated as unsafe.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-311",),
)
LINK_MEMBER = Rule(
    "ARCHIVE-LINK-MEMBER",
    "Symbolic or hard link inside an archive",
    "A tar member is a symbolic or hard link. Extracting it can point later members (or the "
    "loader) at files outside the extraction directory. It was not followed.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-59",),
)
SPECIAL_MEMBER = Rule(
    "ARCHIVE-SPECIAL-MEMBER",
    "Device, FIFO or other special file inside an archive",
    "A tar member is a character or block device or a FIFO. Model archives hold regular files "
    "only; extracting a device node as root gives access to hardware or memory.",
    Severity.MEDIUM,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-73",),
)
PREPENDED_DATA = Rule(
    "ARCHIVE-PREPENDED-DATA",
    "Data before the first archive member",
    "Bytes precede the first zip member. Zip readers locate members from the end of the file, "
    "so the archive still opens, while readers that look at the start of the file (the pickle "
    "loader behind torch.load for non-zip files) see the prefix instead: a polyglot.",
    Severity.HIGH,
    (ATLAS_EVADE, ATLAS_UNSAFE_ARTIFACTS),
    ("CWE-434",),
)
HIDDEN_DATA = Rule(
    "ARCHIVE-HIDDEN-DATA",
    "Data between or after archive members",
    "Bytes that belong to no member sit between members or after the central directory. They are "
    "invisible to zip readers and can carry a payload for a reader that scans raw bytes. The "
    "bytes are analysed as a nested source.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-434",),
)
UNSUPPORTED_METHOD = Rule(
    "ARCHIVE-UNSUPPORTED-COMPRESSION",
    "Unsupported compression method",
    "A member uses a compression method this reader cannot decompress, so it was not analysed. "
    "Unusual methods are a way to hide content from scanners built on standard libraries.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-1104",),
)
CRC_MISMATCH = Rule(
    "ARCHIVE-CRC-MISMATCH",
    "Member checksum does not match",
    "The CRC-32 of a member's decompressed bytes differs from the one recorded in the archive: "
    "the member was altered after the archive was written, or the archive is corrupt. The bytes "
    "were analysed anyway.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-354",),
)
TOO_DEEP = Rule(
    "ARCHIVE-TOO-DEEP",
    "Archives nested too deeply",
    "An archive holds archives nested beyond the configured depth (a classic way to exhaust "
    "scanners or hide a payload below their recursion limit). The innermost level was not read.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-674",),
)

RULES = (PATH_TRAVERSAL, BOMB, DUPLICATE_MEMBER, HEADER_MISMATCH, ENCRYPTED, LINK_MEMBER, SPECIAL_MEMBER,
         PREPENDED_DATA, HIDDEN_DATA, UNSUPPORTED_METHOD, CRC_MISMATCH, TOO_DEEP)

_CHUNK = 1024 * 1024
# Below this output size the ratio is not judged: a few KiB of zeros legitimately compress 1000:1.
_RATIO_FLOOR = 1024 * 1024
# zipfile can decompress these: stored, deflate, bzip2, lzma.
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
_MIN_CD_ENTRY = 46  # fixed part of a central directory entry


# ---------------------------------------------------------------------------------------------
# Budgets and bounded materialisation of members
# ---------------------------------------------------------------------------------------------

@dataclass
class _Budget:
    """Uncompressed bytes still allowed for the outermost archive being read."""

    remaining: int


# Nested archives are read synchronously inside the outer one, so a context variable carries
# the outermost archive's budget down to every nested level without touching Source/Context.
_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("aivet_archive_budget", default=None)


@contextlib.contextmanager
def _budget(ctx: Context) -> Iterator[_Budget]:
    current = _BUDGET.get()
    if current is not None:
        yield current
        return
    budget = _Budget(ctx.limits.max_total_uncompressed)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


class _Sink:
    """Collects decompressed bytes: in memory up to a bound, then in a private temporary file."""

    def __init__(self, memory_limit: int) -> None:
        self._memory_limit = memory_limit
        self._buffer = io.BytesIO()
        self._path: str | None = None
        self._fh: IO[bytes] | None = None
        self.size = 0

    def write(self, chunk: bytes) -> None:
        if self._fh is None and self.size + len(chunk) > self._memory_limit:
            fd, self._path = tempfile.mkstemp(prefix="aivet-member-")
            self._fh = os.fdopen(fd, "wb")
            self._fh.write(self._buffer.getvalue())
            self._buffer = io.BytesIO()
        if self._fh is not None:
            self._fh.write(chunk)
        else:
            self._buffer.write(chunk)
        self.size += len(chunk)

    def source(self, parent: Source, name: str) -> Source:
        if self._fh is not None and self._path is not None:
            self._fh.close()
            path = self._path
            return parent.child(name, self.size, lambda: open(path, "rb"), Path(path))
        data = self._buffer.getvalue()
        return parent.child(name, len(data), lambda: io.BytesIO(data))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
        self._buffer = io.BytesIO()


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes at ``base`` of another stream.

    Large members stored without compression are analysed in place through a window, so that
    a reader which only needs a header (``.npy`` in an ``.npz``) never copies gigabytes.
    """

    def __init__(self, raw: BinaryIO, base: int, length: int) -> None:
        super().__init__()
        self._raw = raw
        self._base = base
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        else:
            pos = self._length + offset
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._length - self._pos)
        if n <= 0:
            return 0
        self._raw.seek(self._base + self._pos)
        data = self._raw.read(n)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _window_opener(parent: Source, base: int, length: int) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        return io.BufferedReader(_Window(parent.open(), base, length))
    return opener


class _Bounded(Exception):
    """Internal: a bound stopped materialisation (the finding is already recorded)."""


def _copy_bounded(read: Callable[[int], bytes], sink: _Sink, parent: Source, name: str, ctx: Context,
                  budget: _Budget, compressed_size: int | None) -> None:
    """Copy ``read`` into ``sink`` enforcing member size, archive total and compression ratio."""
    limits = ctx.limits
    loc = ctx.location(parent.child(name, 0, _never))
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            return
        produced = sink.size + len(chunk)
        if (compressed_size is not None and produced > _RATIO_FLOOR
                and produced > limits.max_compression_ratio * max(compressed_size, 1)):
            ctx.add(BOMB.finding(loc, f"expands past {limits.max_compression_ratio:g}x its compressed size "
                                      f"({compressed_size} bytes); stopped after {produced} bytes",
                                 compressed=compressed_size, produced=produced, measured="actual"))
            raise _Bounded
        if produced > limits.max_member_bytes:
            ctx.add(rules.LIMIT_EXCEEDED.finding(loc, f"member larger than {limits.max_member_bytes} bytes; "
                                                      "not analysed", limit="max_member_bytes"))
            raise _Bounded
        if len(chunk) > budget.remaining:
            ctx.add(rules.LIMIT_EXCEEDED.finding(loc, f"archive expands past {limits.max_total_uncompressed} "
                                                      "bytes in total; member not analysed",
                                                 limit="max_total_uncompressed"))
            budget.remaining = 0
            raise _Bounded
        budget.remaining -= len(chunk)
        sink.write(chunk)


def _never() -> BinaryIO:
    raise OSError("placeholder source is not readable")


def _bytes_opener(data: bytes) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        return io.BytesIO(data)
    return opener


def _reader_of(stream: IO[bytes]) -> Callable[[int], bytes]:
    def read(n: int) -> bytes:
        return stream.read(n)
    return read


# ---------------------------------------------------------------------------------------------
# Members of a container, as seen by the torch analyzer
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One member of an archive: its name, declared size and the reader's own handle."""

    name: str
    size: int
    handle: Any  # zipfile.ZipInfo or tarfile.TarInfo


class Members(Protocol):
    """What a container analyzer (torch) needs from an archive reader."""

    source: Source
    entries: list[Entry]
    partial: bool

    def materialize(self, entry: Entry) -> contextlib.AbstractContextManager[Source | None]:
        """Bounded bytes of ``entry`` as a nested source, or ``None`` when a bound stopped it."""
        ...

    def analyze(self, entry: Entry) -> None:
        """Materialise ``entry`` and analyse it with :meth:`Context.analyze`."""
        ...


class _MembersBase:
    def __init__(self, source: Source, ctx: Context, budget: _Budget, entries: list[Entry]) -> None:
        self.source = source
        self.ctx = ctx
        self.budget = budget
        self.entries = entries
        self.partial = False

    def _open(self, entry: Entry) -> tuple[IO[bytes], int | None, int | None]:
        """A stream of the member's bytes, its compressed size and its recorded CRC-32 (if any)."""
        raise NotImplementedError

    def _window(self, entry: Entry) -> tuple[int, int] | None:
        """``(offset, length)`` of the member's bytes in the archive when they are stored as is."""
        return None

    @contextlib.contextmanager
    def materialize(self, entry: Entry) -> Iterator[Source | None]:
        """Bounded bytes of ``entry`` as a nested source, or ``None`` when a bound stopped it."""
        window = self._window(entry) if entry.size > self.ctx.limits.in_memory_member_bytes else None
        if window is not None:
            base, length = window
            if length > self.budget.remaining:
                self.ctx.add(rules.LIMIT_EXCEEDED.finding(
                    ctx_loc(self.ctx, self.source, entry.name), f"archive expands past "
                    f"{self.ctx.limits.max_total_uncompressed} bytes in total; member not analysed",
                    limit="max_total_uncompressed"))
                self.budget.remaining = 0
                self.partial = True
                yield None
                return
            self.budget.remaining -= length
            yield self.source.child(entry.name, length, _window_opener(self.source, base, length))
            return
        sink = _Sink(self.ctx.limits.in_memory_member_bytes)
        crc = 0
        try:
            try:
                stream, compressed, expected_crc = self._open(entry)
                read = _reader_of(stream)

                def read_and_sum(n: int) -> bytes:
                    nonlocal crc
                    chunk = read(n)
                    crc = zlib.crc32(chunk, crc)
                    return chunk

                with stream:
                    _copy_bounded(read_and_sum, sink, self.source, entry.name, self.ctx, self.budget, compressed)
            except _Bounded:
                self.partial = True
                yield None
                return
            except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, ValueError, NotImplementedError,
                    RuntimeError, tarfile.TarError, struct.error, OSError) as exc:
                raise FormatError(f"member {entry.name!r} cannot be decompressed: {exc}") from exc
            if expected_crc is not None and crc != expected_crc:
                self.ctx.add(CRC_MISMATCH.finding(ctx_loc(self.ctx, self.source, entry.name),
                                                  f"member {entry.name!r}: CRC-32 {crc:08x}, recorded "
                                                  f"{expected_crc:08x}", actual=crc, recorded=expected_crc))
            yield sink.source(self.source, entry.name)
        finally:
            sink.close()

    def analyze(self, entry: Entry) -> None:
        """Materialise ``entry`` and analyse it with :meth:`Context.analyze`."""
        try:
            with self.materialize(entry) as child:
                if child is not None:
                    self.ctx.analyze(child)
        except FormatError as exc:
            # One broken member must not hide the others: report it and carry on.
            self.ctx.add(rules.PARSE_ERROR.finding(ctx_loc(self.ctx, self.source, entry.name), str(exc)))
            self.partial = True


def ctx_loc(ctx: Context, parent: Source, name: str, offset: int | None = None) -> Any:
    """The location of member ``name`` of ``parent``."""
    return ctx.location(parent.child(name, 0, _never), offset=offset)


class ZipMembers(_MembersBase):
    """Bounded access to the members of an open :class:`zipfile.ZipFile`."""

    def __init__(self, zf: zipfile.ZipFile, source: Source, ctx: Context, budget: _Budget,
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
        stream = self.zf.open(info)
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


class TarMembers(_MembersBase):
    """Bounded access to the regular members of an open :class:`tarfile.TarFile`."""

    def __init__(self, tf: tarfile.TarFile, source: Source, ctx: Context, budget: _Budget,
                 entries: list[Entry]) -> None:
        super().__init__(source, ctx, budget, entries)
        self.tf = tf

    def _open(self, entry: Entry) -> tuple[IO[bytes], int | None, int | None]:
        stream = self.tf.extractfile(entry.handle)
        if stream is None:
            raise FormatError(f"member {entry.name!r} is not a regular file")
        # Sparse members can expand beyond their stored bytes; judge them by the ratio too.
        stored = None if not entry.handle.issparse() else max(1, len(entry.handle.sparse or ()) * 512)
        return stream, stored, None

    def _window(self, entry: Entry) -> tuple[int, int] | None:
        info: tarfile.TarInfo = entry.handle
        if info.issparse() or info.offset_data + info.size > self.source.size:
            return None
        return info.offset_data, info.size


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

def unsafe_name(name: str) -> str | None:
    """Why ``name`` would escape an extraction directory, or ``None`` when it is a plain relative name."""
    if "\x00" in name:
        return "contains a NUL byte"
    if name.startswith(("/", "\\")):
        return "is absolute"
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        return "starts with a drive letter"
    if "\\" in name:
        return "contains a backslash (a path separator on Windows)"
    if ".." in name.split("/"):
        return "contains '..'"
    return None


def _check_names(names: list[tuple[str, int | None]], source: Source, ctx: Context) -> None:
    for name, offset in names:
        why = unsafe_name(name)
        if why:
            ctx.add(PATH_TRAVERSAL.finding(ctx.location(source, offset=offset), f"member {name!r} {why}",
                                           member=name))
    counts = Counter(name for name, _ in names)
    for name, n in counts.items():
        if n > 1:
            ctx.add(DUPLICATE_MEMBER.finding(ctx.location(source), f"member {name!r} appears {n} times",
                                             member=name, copies=n))


def _too_deep(source: Source, ctx: Context) -> Outcome | None:
    """Report and stop at an archive nested deeper than ``max_archive_depth``."""
    if source.depth <= ctx.limits.max_archive_depth:
        return None
    ctx.add(TOO_DEEP.finding(ctx.location(source), f"archive nested {source.depth} levels deep; "
                             f"limit is {ctx.limits.max_archive_depth}; not opened", depth=source.depth,
                             limit="max_archive_depth"))
    return Outcome("archive", ArtifactStatus.PARTIAL, "nested too deeply")


# ---------------------------------------------------------------------------------------------
# Zip
# ---------------------------------------------------------------------------------------------

class ZipKind(str, enum.Enum):
    """What a zip holds, decided from its member names."""

    PYTORCH = "pytorch-zip"
    TORCHSCRIPT = "torchscript"
    KERAS = "keras"
    NPZ = "npz"
    GENERIC = "zip"


def classify_zip(names: list[str]) -> ZipKind:
    """Tell PyTorch, TorchScript, Keras v3 and .npz zips apart from generic ones by member names."""
    nameset = set(names)
    prefixes = {n.split("/", 1)[0] for n in names if "/" in n}
    for p in sorted(prefixes):
        if f"{p}/data.pkl" in nameset or f"{p}/byteorder" in nameset:
            if f"{p}/constants.pkl" in nameset and any(n.startswith(f"{p}/code/") for n in names):
                return ZipKind.TORCHSCRIPT
            return ZipKind.PYTORCH
    if "data.pkl" in nameset:
        return ZipKind.PYTORCH
    if "config.json" in nameset and "metadata.json" in nameset:
        return ZipKind.KERAS
    files = [n for n in names if not n.endswith("/")]
    if files and all(n.endswith(".npy") for n in files):
        return ZipKind.NPZ
    return ZipKind.GENERIC


_EOCD = struct.Struct("<4s4H2LH")
_LOCAL = struct.Struct("<4s5H3L2H")


def _precheck_zip(fh: BinaryIO, size: int, ctx: Context) -> int:
    """Bound the central directory before zipfile reads it all into memory.

    Returns the offset just past the end-of-central-directory record and its comment.
    """
    tail_len = min(size, 65536 + _EOCD.size)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + _EOCD.size > len(tail):
        raise FormatError("no end of central directory record (truncated or not a zip)", size)
    _, _, _, _, total, cd_size, _, comment_len = _EOCD.unpack_from(tail, pos)
    if total != 0xFFFF and total > ctx.limits.max_archive_members:
        raise LimitExceeded("max_archive_members", f"zip declares {total} members", size - tail_len + pos)
    if cd_size != 0xFFFFFFFF and cd_size > _MIN_CD_ENTRY * ctx.limits.max_archive_members + ctx.limits.max_header_bytes:
        raise LimitExceeded("max_header_bytes", f"zip central directory of {cd_size} bytes", size - tail_len + pos)
    return size - tail_len + pos + _EOCD.size + int(comment_len)


def _open_zip(fh: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, struct.error, OverflowError,
            UnicodeDecodeError, NotImplementedError, KeyError, IndexError) as exc:
        raise FormatError(f"not a readable zip: {exc}") from exc


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "surrogateescape")


def _layout(fh: BinaryIO, zf: zipfile.ZipFile, source: Source, ctx: Context) -> tuple[dict[int, str], int]:
    """Compare local headers with the central directory and report bytes that belong to no member.

    Returns local names that differ (by header offset) and the number of findings made.
    """
    mismatched: dict[int, str] = {}
    spans: list[tuple[int, int, str]] = []
    infos = zf.infolist()
    for info in infos:
        if not 0 <= info.header_offset < source.size:
            raise FormatError(f"member {info.filename!r} points outside the file (offset {info.header_offset})")
        fh.seek(info.header_offset)
        head = fh.read(_LOCAL.size)
        if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
            ctx.add(HEADER_MISMATCH.finding(ctx.location(source, offset=info.header_offset),
                                            f"member {info.filename!r}: no local file header where the "
                                            "central directory points", member=info.filename))
            continue
        _, _, lflags, lmethod, _, _, _, lcsize, lusize, nlen, elen = _LOCAL.unpack(head)
        lname = fh.read(nlen)
        problems = []
        if lname != _raw_name(info):
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
            fh.seek(end)
            sig = fh.read(4)
            wide = info.file_size > 0xFFFFFFFF or info.compress_size > 0xFFFFFFFF
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
            _gap(source, ctx, cursor, start, first=(cursor == 0))
        cursor = max(cursor, end)
    if cd_start is not None and cd_start > cursor and spans:
        _gap(source, ctx, cursor, cd_start, first=False)
    elif not spans and cd_start:
        _gap(source, ctx, 0, cd_start, first=True)
    return mismatched, len(spans)


def _gap(source: Source, ctx: Context, start: int, end: int, *, first: bool, where: str = "") -> None:
    rule = PREPENDED_DATA if first else HIDDEN_DATA
    where = where or ("before the first member" if first else "between members")
    ctx.add(rule.finding(ctx.location(source, offset=start), f"{end - start} bytes {where} belong to no member",
                         start=start, end=end))
    size = end - start
    if size > ctx.limits.in_memory_member_bytes or source.depth + 1 > ctx.limits.max_archive_depth:
        return
    with source.open() as fh:
        fh.seek(start)
        data = fh.read(size)
    # The stray bytes may be a payload for a loader that reads raw bytes: analyse them as well.
    ctx.analyze(source.child(f"<bytes {start}-{end}>", len(data), lambda: io.BytesIO(data)))


def analyze_zip(source: Source, ctx: Context) -> Outcome:
    """Analyse a zip archive: structure checks, then its content by kind (torch, keras, npz, generic)."""
    if (deep := _too_deep(source, ctx)) is not None:
        return deep
    with _budget(ctx) as budget, source.open() as fh:
        archive_end = _precheck_zip(fh, source.size, ctx)
        zf = _open_zip(fh)
        with zf:
            if archive_end < source.size:
                _gap(source, ctx, archive_end, source.size, first=False, where="after the end of the archive")
            return _analyze_open_zip(zf, fh, source, ctx, budget)


def _analyze_open_zip(zf: zipfile.ZipFile, fh: BinaryIO, source: Source, ctx: Context, budget: _Budget) -> Outcome:
    infos = zf.infolist()
    partial = False
    if len(infos) > ctx.limits.max_archive_members:
        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source), f"{len(infos)} members; only the first "
                                             f"{ctx.limits.max_archive_members} analysed", limit="max_archive_members"))
        infos = infos[: ctx.limits.max_archive_members]
        partial = True
    _check_names([(i.orig_filename, i.header_offset) for i in infos], source, ctx)
    local_names, _ = _layout(fh, zf, source, ctx)
    entries: list[Entry] = []
    declared_total = 0
    for info in infos:
        if info.filename.endswith("/"):  # ZipInfo.is_dir() fails on an empty name
            continue
        loc = ctx_loc(ctx, source, info.filename)
        if info.create_system == 3 and (info.external_attr >> 16) & 0o170000 == 0o120000:
            # A Unix symlink stored in a zip: unzip and shutil recreate it as a link on extraction.
            target = _link_target(zf, info)
            why = unsafe_name(target)
            ctx.add(LINK_MEMBER.finding(loc, f"symbolic link {info.filename!r} -> {target!r}"
                                        + (f" (target {why})" if why else ""),
                                        member=info.filename, target=target, link="symbolic"))
            continue
        if info.flag_bits & 0x1:
            ctx.add(ENCRYPTED.finding(loc, f"member {info.filename!r} is encrypted; not analysed",
                                      member=info.filename))
            partial = True
            continue
        if info.compress_type not in _ZIP_METHODS:
            ctx.add(UNSUPPORTED_METHOD.finding(loc, f"member {info.filename!r} uses compression method "
                                               f"{info.compress_type}; not analysed", method=info.compress_type))
            partial = True
            continue
        if info.file_size > ctx.limits.max_member_bytes:
            ctx.add(rules.LIMIT_EXCEEDED.finding(loc, f"member declares {info.file_size} bytes; not analysed",
                                                 limit="max_member_bytes"))
            partial = True
            continue
        if (info.file_size > _RATIO_FLOOR
                and info.file_size > ctx.limits.max_compression_ratio * max(info.compress_size, 1)):
            ctx.add(BOMB.finding(loc, f"member {info.filename!r} declares {info.file_size} bytes from "
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
    if kind in (ZipKind.PYTORCH, ZipKind.TORCHSCRIPT):
        from aivet.analyzers import torch as torch_scan

        outcome = torch_scan.analyze_torch_zip(members, ctx, kind.value)
    elif kind is ZipKind.KERAS:
        outcome = _keras(zf, source, ctx, members)
    else:
        for entry in entries:
            members.analyze(entry)
        outcome = Outcome(kind.value)
    if (partial or members.partial) and outcome.status is ArtifactStatus.ANALYZED:
        outcome = Outcome(outcome.format, ArtifactStatus.PARTIAL, outcome.note or "some members were not analysed")
    return outcome


def _link_target(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
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


# ---------------------------------------------------------------------------------------------
# Tar
# ---------------------------------------------------------------------------------------------

LEGACY_TORCH_MEMBERS = frozenset({"sys_info", "pickle", "storages", "tensors"})


def analyze_tar(source: Source, ctx: Context) -> Outcome:
    """Analyse a tar archive: links, special files and names, then its members (or a legacy torch checkpoint)."""
    if (deep := _too_deep(source, ctx)) is not None:
        return deep
    with _budget(ctx) as budget, source.open() as fh:
        try:
            tf = tarfile.open(fileobj=fh, mode="r:")
        except (tarfile.TarError, EOFError, ValueError, OverflowError, UnicodeDecodeError) as exc:
            raise FormatError(f"not a readable tar: {exc}") from exc
        with tf:
            return _analyze_open_tar(tf, source, ctx, budget)


def _analyze_open_tar(tf: tarfile.TarFile, source: Source, ctx: Context, budget: _Budget) -> Outcome:
    partial = False
    infos: list[tarfile.TarInfo] = []
    while True:
        try:
            info = tf.next()
        except (tarfile.TarError, EOFError, ValueError, OverflowError, UnicodeDecodeError, struct.error) as exc:
            raise FormatError(f"corrupt tar header after {len(infos)} members: {exc}") from exc
        if info is None:
            break
        if len(infos) >= ctx.limits.max_archive_members:
            ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source), f"more than {len(infos)} members; the rest "
                                                 "were not analysed", limit="max_archive_members"))
            partial = True
            break
        infos.append(info)
    _check_names([(i.name, i.offset) for i in infos], source, ctx)
    entries: list[Entry] = []
    for info in infos:
        loc = ctx.location(source, offset=info.offset)
        if info.issym() or info.islnk():
            kind = "symbolic" if info.issym() else "hard"
            why = unsafe_name(info.linkname)
            ctx.add(LINK_MEMBER.finding(
                loc, f"{kind} link {info.name!r} -> {info.linkname!r}" + (f" (target {why})" if why else ""),
                member=info.name, target=info.linkname, link=kind))
        elif info.ischr() or info.isblk() or info.isfifo():
            ctx.add(SPECIAL_MEMBER.finding(loc, f"member {info.name!r} is a device or FIFO", member=info.name))
        elif info.isreg():
            if info.size > ctx.limits.max_member_bytes:
                ctx.add(rules.LIMIT_EXCEEDED.finding(ctx_loc(ctx, source, info.name),
                                                     f"member declares {info.size} bytes; not analysed",
                                                     limit="max_member_bytes"))
                partial = True
                continue
            entries.append(Entry(info.name, info.size, info))
    members = TarMembers(tf, source, ctx, budget, entries)
    names = {e.name for e in entries}
    if "pickle" in names and names & {"storages", "tensors", "sys_info"}:
        from aivet.analyzers import torch as torch_scan

        outcome = torch_scan.analyze_torch_tar(members, ctx)
    else:
        for entry in entries:
            members.analyze(entry)
        outcome = Outcome("tar")
    if (partial or members.partial) and outcome.status is ArtifactStatus.ANALYZED:
        outcome = Outcome(outcome.format, ArtifactStatus.PARTIAL, "some members were not analysed")
    return outcome


# ---------------------------------------------------------------------------------------------
# Single compressed streams
# ---------------------------------------------------------------------------------------------

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
    if (deep := _too_deep(source, ctx)) is not None:
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
        with _budget(ctx) as budget:
            sink = _Sink(ctx.limits.in_memory_member_bytes)
            try:
                reader = _StreamReader(fh, dec, codec, source.size)
                try:
                    _copy_bounded(reader.read, sink, source, name, ctx, budget, max(source.size - skip, 1))
                except _Bounded:
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
                _gap(source, ctx, start, start + size, first=False, where="after the compressed stream")
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
        data, self.pending = self.pending or self.fh.read(_CHUNK), b""
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


# ---------------------------------------------------------------------------------------------
# 7z
# ---------------------------------------------------------------------------------------------

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
    if (deep := _too_deep(source, ctx)) is not None:
        return deep
    try:
        import py7zr
        import py7zr.io
    except ModuleNotFoundError:
        ctx.add(rules.UNSUPPORTED.finding(ctx.location(source), "7z archive; install the 7z extra to analyse it: "
                                          "pip install 'aivet[archives]'", format="7z"))
        return Outcome("7z", ArtifactStatus.UNSUPPORTED, "py7zr not installed")
    limits = ctx.limits
    with _budget(ctx) as budget, source.open() as fh:
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
            _check_names([(f.filename, None) for f in listing], source, ctx)
            if encrypted:
                ctx.add(ENCRYPTED.finding(ctx.location(source), "7z archive is encrypted; not analysed"))
                return Outcome("7z", ArtifactStatus.UNSUPPORTED, "encrypted")
            total = sum(f.uncompressed for f in listing if f.is_file)
            compressed = max(source.size, 1)
            if total > _RATIO_FLOOR and total > limits.max_compression_ratio * compressed:
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
                ctx.analyze(source.child(f.filename, len(data), _bytes_opener(data)))
    return Outcome("7z", ArtifactStatus.PARTIAL if partial else ArtifactStatus.ANALYZED)
