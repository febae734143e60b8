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

This module holds the rules, the handling every reader shares (budgets, bounded
materialisation of members, member names, stray bytes) and the entry points the
engine dispatches to. The readers live beside it: :mod:`~aivet.analyzers.archive_zip`,
:mod:`~aivet.analyzers.archive_tar`, :mod:`~aivet.analyzers.archive_stream` (single
compressed streams) and :mod:`~aivet.analyzers.archive_7z`. They build on this module,
so it imports them only when an archive is analysed.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import io
import lzma
import os
import struct
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from aivet import rules
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.paths import escape_reason
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Location, Severity
from aivet.formats import FormatError
from aivet.rules import ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, Rule

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

READER_DIFFERENTIAL = Rule(
    "ARCHIVE-READER-DIFFERENTIAL",
    "Zip readers disagree about this archive",
    "Python's zipfile (numpy, Keras, most scanners) and the lenient reader inside PyTorch (miniz) "
    "see different members: zipfile refuses the archive or a member that miniz reads, or the two "
    "follow different central directories (zip64 locator, offsets that zipfile shifts and miniz "
    "does not). A scanner built on one reader is shown a harmless view while torch.load runs the "
    "other. aivet analyses the members as both readers see them.",
    Severity.HIGH,
    (ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-436",),
)

RULES = (PATH_TRAVERSAL, BOMB, DUPLICATE_MEMBER, HEADER_MISMATCH, ENCRYPTED, LINK_MEMBER, SPECIAL_MEMBER,
         PREPENDED_DATA, HIDDEN_DATA, UNSUPPORTED_METHOD, CRC_MISMATCH, TOO_DEEP, READER_DIFFERENTIAL)

CHUNK = 1024 * 1024  # bytes read or decompressed per step, so no step holds more
# Below this output size the ratio is not judged: a few KiB of zeros legitimately compress 1000:1.
RATIO_FLOOR = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Budgets and bounded materialisation of members
# ---------------------------------------------------------------------------------------------

@dataclass
class Budget:
    """Uncompressed bytes still allowed for the outermost archive being read."""

    remaining: int


# Nested archives are read synchronously inside the outer one, so a context variable carries
# the outermost archive's budget down to every nested level without touching Source/Context.
_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("aivet_archive_budget", default=None)


@contextlib.contextmanager
def outermost_budget(ctx: Context) -> Iterator[Budget]:
    """The budget of the outermost archive being read: a fresh one at the top level, else the one in force."""
    current = _BUDGET.get()
    if current is not None:
        yield current
        return
    budget = Budget(ctx.limits.max_total_uncompressed)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


class MemberSink:
    """Collects decompressed bytes: in memory up to a bound, then in a private temporary file."""

    def __init__(self, memory_limit: int) -> None:
        self._memory_limit = memory_limit
        self._buffer = io.BytesIO()
        self._path: str | None = None
        self._fh: IO[bytes] | None = None
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``, moving to a temporary file once the memory bound is passed."""
        if self._fh is None and self.size + len(chunk) > self._memory_limit:
            import tempfile  # only for members too big for memory

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
        """The collected bytes as member ``name`` of ``parent`` (valid until :meth:`close`)."""
        if self._fh is not None and self._path is not None:
            self._fh.close()
            path = self._path
            return parent.child(name, self.size, lambda: open(path, "rb"), Path(path))
        data = self._buffer.getvalue()
        return parent.child(name, len(data), bytes_opener(data))

    def close(self) -> None:
        """Drop the bytes and delete the temporary file, if one was made."""
        if self._fh is not None:
            self._fh.close()
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
        self._buffer = io.BytesIO()


def _tar_error() -> type[Exception]:
    """tarfile's error class, without importing tarfile for scans that never open a tar."""
    tarfile = sys.modules.get("tarfile")
    return tarfile.TarError if tarfile is not None else _NeverRaised


class _NeverRaised(Exception):
    """Stands in for an error class whose module was never imported (so it cannot have been raised)."""


class Window(io.RawIOBase):
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
        return io.BufferedReader(Window(parent.open(), base, length))
    return opener


class Bounded(Exception):
    """A bound stopped materialisation; the finding is already recorded, so callers only stop."""


def copy_bounded(read: Callable[[int], bytes], sink: MemberSink, parent: Source, name: str, ctx: Context,
                  budget: Budget, compressed_size: int | None) -> None:
    """Copy ``read`` into ``sink`` enforcing member size, archive total and compression ratio."""
    limits = ctx.limits
    loc = ctx_loc(ctx, parent, name)
    while True:
        chunk = read(CHUNK)
        if not chunk:
            return
        produced = sink.size + len(chunk)
        if (compressed_size is not None and produced > RATIO_FLOOR
                and produced > limits.max_compression_ratio * max(compressed_size, 1)):
            ctx.add(BOMB.finding(loc, f"expands past {limits.max_compression_ratio:g}x its compressed size "
                                      f"({compressed_size} bytes); stopped after {produced} bytes",
                                 compressed=compressed_size, produced=produced, measured="actual"))
            raise Bounded
        if produced > limits.max_member_bytes:
            ctx.add(rules.LIMIT_EXCEEDED.finding(loc, f"member larger than {limits.max_member_bytes} bytes; "
                                                      "not analysed", limit="max_member_bytes"))
            raise Bounded
        if len(chunk) > budget.remaining:
            ctx.add(rules.LIMIT_EXCEEDED.finding(loc, f"archive expands past {limits.max_total_uncompressed} "
                                                      "bytes in total; member not analysed",
                                                 limit="max_total_uncompressed"))
            budget.remaining = 0
            raise Bounded
        budget.remaining -= len(chunk)
        sink.write(chunk)


def _never() -> BinaryIO:
    raise OSError("placeholder source is not readable")


def bytes_opener(data: bytes) -> Callable[[], BinaryIO]:
    """An opener for :class:`Source` that serves ``data`` from memory."""
    def opener() -> BinaryIO:
        return io.BytesIO(data)
    return opener


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


class MembersBase:
    """Bounded access to the members of one open archive; readers supply ``_open`` and ``_window``."""

    def __init__(self, source: Source, ctx: Context, budget: Budget, entries: list[Entry]) -> None:
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
        sink = MemberSink(self.ctx.limits.in_memory_member_bytes)
        crc = 0
        try:
            try:
                stream, compressed, expected_crc = self._open(entry)
                read = stream.read

                def read_and_sum(n: int) -> bytes:
                    nonlocal crc
                    chunk = read(n)
                    crc = zlib.crc32(chunk, crc)
                    return chunk

                with stream:
                    copy_bounded(read_and_sum, sink, self.source, entry.name, self.ctx, self.budget, compressed)
            except Bounded:
                self.partial = True
                yield None
                return
            except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, ValueError, NotImplementedError,
                    RuntimeError, _tar_error(), struct.error, OSError) as exc:
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


def ctx_loc(ctx: Context, parent: Source, name: str, offset: int | None = None) -> Location:
    """The location of member ``name`` of ``parent``."""
    return ctx.location(parent.child(name, 0, _never), offset=offset)


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

def unsafe_name(name: str) -> str | None:
    """Why ``name`` would escape an extraction directory, or ``None`` when it is a plain relative name.

    :func:`aivet.analyzers.paths.escape_reason`, and any backslash: extractors on Windows
    split on it, so ``a\\b`` becomes a directory there even where it is no traversal.
    """
    why = escape_reason(name)
    if why is None and "\\" in name:
        return "contains a backslash (a path separator on Windows)"
    return why


def check_names(names: list[tuple[str, int | None]], source: Source, ctx: Context) -> None:
    """Report member names (``(name, offset)`` pairs) that escape the extraction directory or repeat."""
    for name, offset in names:
        why = unsafe_name(name)
        if why:
            ctx.add(PATH_TRAVERSAL.finding(ctx.location(source, offset=offset), f"member {name!r} {why}",
                                           member=name))
    # PyTorch's reader (miniz) looks names up without regard to case: "DATA.PKL" answers for
    # "data.pkl". Names that differ only in case are duplicates to it, so they are to us.
    counts = Counter(name.lower() for name, _ in names)
    if len(counts) == len(names):
        return
    spellings: dict[str, list[str]] = {}
    for name, _ in names:
        if counts[name.lower()] > 1:
            spellings.setdefault(name.lower(), []).append(name)
    for group in spellings.values():
        name, n = group[0], len(group)
        if len(set(group)) == 1:
            ctx.add(DUPLICATE_MEMBER.finding(ctx.location(source), f"member {name!r} appears {n} times",
                                             member=name, copies=n))
        else:
            ctx.add(DUPLICATE_MEMBER.finding(ctx.location(source), f"members {sorted(set(group))!r} differ only in "
                                             "case (one name to case-insensitive readers such as PyTorch's)",
                                             member=name, copies=n, spellings=sorted(set(group))))


def too_deep(source: Source, ctx: Context) -> Outcome | None:
    """Report and stop at an archive nested deeper than ``max_archive_depth``."""
    if source.depth <= ctx.limits.max_archive_depth:
        return None
    ctx.add(TOO_DEEP.finding(ctx.location(source), f"archive nested {source.depth} levels deep; "
                             f"limit is {ctx.limits.max_archive_depth}; not opened", depth=source.depth,
                             limit="max_archive_depth"))
    return Outcome("archive", ArtifactStatus.PARTIAL, "nested too deeply")


# ---------------------------------------------------------------------------------------------
# Bytes that belong to no member
# ---------------------------------------------------------------------------------------------

def report_gap(source: Source, ctx: Context, start: int, end: int, *, first: bool, where: str = "") -> None:
    """Report bytes ``start``-``end`` of ``source`` that belong to no member, and analyse them."""
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
    ctx.analyze(source.child(f"<bytes {start}-{end}>", len(data), bytes_opener(data)))


# ---------------------------------------------------------------------------------------------
# Entry points (Format -> analyzer in aivet.analyzers.engine) and what a zip holds
# ---------------------------------------------------------------------------------------------

# The readers import the shared handling above from this module, so they are imported when an
# archive is analysed rather than at the top (which would be an import cycle).

def analyze_zip(source: Source, ctx: Context) -> Outcome:
    """Analyse a zip archive: structure checks, then its content by kind (torch, keras, npz, generic)."""
    from aivet.analyzers import archive_zip

    return archive_zip.analyze_zip(source, ctx)


def analyze_tar(source: Source, ctx: Context) -> Outcome:
    """Analyse a tar archive: links, special files and names, then its members (or a legacy torch checkpoint)."""
    from aivet.analyzers import archive_tar

    return archive_tar.analyze_tar(source, ctx)


def analyze_compressed(source: Source, ctx: Context) -> Outcome:
    """Decompress a gzip, bzip2, xz/lzma, zlib (joblib) or lz4 stream within bounds and analyse the result."""
    from aivet.analyzers import archive_stream

    return archive_stream.analyze_compressed(source, ctx)


def analyze_7z(source: Source, ctx: Context) -> Outcome:
    """Analyse a 7z archive with py7zr (optional): bound declared sizes, extract in memory, recurse."""
    from aivet.analyzers import archive_7z

    return archive_7z.analyze_7z(source, ctx)


class ZipKind(str, enum.Enum):
    """What a zip holds, decided from its member names."""

    PYTORCH = "pytorch-zip"
    PT2 = "pt2"  # torch.export / AOTInductor package: aivet.analyzers.torch_formats
    TORCHSCRIPT = "torchscript"
    KERAS = "keras"
    NPZ = "npz"
    GENERIC = "zip"


def is_pt2(names: Sequence[str], nameset: AbstractSet[str] | None = None) -> bool:
    """Whether zip member ``names`` (in archive order) form a PT2 archive (torch.export, AOTInductor).

    As torch's own ``is_pt2_package`` does, the root is the directory of the first member and the
    archive is PT2 when ``<root>/archive_format`` is a member. ``nameset``, the same names as a
    set when the caller has one, makes the check O(1); without it the last names are looked at
    first (PT2ArchiveWriter writes ``archive_format`` when it closes), then all of them.
    """
    if not names:
        return False
    first = names[0]
    wanted = first.split("/", 1)[0] + "/archive_format" if "/" in first else "archive_format"
    if nameset is not None:
        return wanted in nameset
    return wanted in names[-8:] or wanted in names


def classify_zip(names: list[str]) -> ZipKind:
    """Tell PyTorch, PT2, TorchScript, Keras v3 and .npz zips apart from generic ones by member names."""
    nameset = set(names)
    if is_pt2(names, nameset):
        return ZipKind.PT2
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

