"""Bounded, read-only reader for HDF5 metadata: the attributes of the objects reachable from the root.

HDF5 files are never handed to libhdf5 (C code parsing hostile bytes in-process). This
reader walks the structures libhdf5 and h5py write, in pure Python, and only as far as
attributes go; dataset contents are never read.

What it understands (HDF5 file format specification, version 3.0):

* superblock versions 0 to 3 (signature at 0, 512, 1024, ... for files with a user block);
* object headers version 1 and version 2 (``OHDR``), with their continuation blocks
  (``OCHK`` in version 2);
* attribute messages version 1 to 3, compact (in the header) and dense (attribute info
  message -> fractal heap + version 2 B-tree name index; managed, huge and tiny heap objects);
* datatypes: fixed-length strings, variable-length strings and byte sequences (data in
  global heap collections), integers and floats; other classes are named, not decoded;
* groups: symbol tables (version 1 B-tree + local heap) and link messages, compact or dense
  (link info message -> fractal heap + version 2 B-tree), hard links only.

Every structure is bounded by :class:`Hdf5Limits` (objects, messages, header blocks, heap
and B-tree sizes, value bytes, total bytes read); cycles in continuation chains, B-trees,
fractal heaps and the group graph are detected. Malformed input raises
:class:`~aivet.formats.FormatError`; a malformed or over-limit *child* object becomes a
:class:`Problem` and the walk goes on. Checksums are not verified: libhdf5 refuses a bad
checksum, so reading past one only ever shows more than a loader would.
"""

from __future__ import annotations

import bisect
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from aivet.formats import FormatError, LimitExceeded

SIGNATURE = b"\x89HDF\r\n\x1a\n"
KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Hdf5Limits:
    """Bounds on one HDF5 file's metadata walk.

    The analyzer sets ``max_objects``, ``max_messages``, ``max_read_bytes`` and ``max_value_bytes``
    from :class:`aivet.limits.Limits` (``max_hdf5_objects``, ``max_hdf5_messages``,
    ``max_hdf5_metadata_bytes``, ``max_string_bytes``); the others are fixed structural bounds.
    """

    max_objects: int = 20_000  # object headers visited: the root and groups/datasets reachable from it
    max_depth: int = 32  # group nesting followed below the root
    max_messages: int = 1_000_000  # header messages over all objects
    max_header_blocks: int = 1_000  # continuation blocks of one object header
    max_header_block_bytes: int = 16 * MiB  # one object header block
    max_attributes: int = 100_000  # attributes returned, all objects together
    max_links: int = 1_000_000  # links (group members) listed, all groups together
    max_heap_bytes: int = 64 * MiB  # one local heap, global heap collection or B-tree node
    max_heap_blocks: int = 100_000  # fractal heap blocks and B-tree nodes of one structure
    max_value_bytes: int = 16 * MiB  # one attribute value, variable-length data included
    max_total_value_bytes: int = 256 * MiB  # attribute values, all attributes together
    max_read_bytes: int = 1024 * MiB  # metadata read from the file in total
    max_problems: int = 1_000  # unreadable parts noted before the walk stops


HDF5_LIMITS = Hdf5Limits()

# Datatype classes (datatype message, low nibble of the first byte)
_CLASS_NAMES = ("integer", "float", "time", "string", "bitfield", "opaque", "compound", "reference",
                "enum", "vlen", "array")
_INTEGER, _FLOAT, _STRING, _VLEN, _ARRAY = 0, 1, 3, 9, 10

# Header message types
_MSG_LINK_INFO = 0x02
_MSG_LINK = 0x06
_MSG_ATTRIBUTE = 0x0C
_MSG_CONTINUATION = 0x10
_MSG_SYMBOL_TABLE = 0x11
_MSG_ATTRIBUTE_INFO = 0x15
_MSG_DATATYPE = 0x03
_FLAG_SHARED = 0x02

_BTREE2_LINK_NAME = 5
_BTREE2_ATTRIBUTE_NAME = 8
_BTREE2_HUGE_INDIRECT = 1
_MAX_STRING_ELEMENTS = 65_536  # strings kept from one string array attribute
_MAX_NUMBER_ELEMENTS = 64  # numbers kept from one numeric attribute


Value = bytes | int | float | tuple[bytes, ...] | tuple[int, ...] | tuple[float, ...] | None


@dataclass(frozen=True)
class Attribute:
    """One attribute: where it is, its type and, when decoded, its value.

    ``value`` is ``bytes`` for a scalar string (fixed or variable length; trailing NULs
    removed, as h5py returns it), a tuple of bytes for a string array, an ``int``/``float``
    (or a short tuple of them) for numbers, and ``None`` for anything not decoded.
    An attribute whose value could not be read is not listed here but in
    :attr:`Hdf5Contents.problems`, under its name.
    """

    path: str  # object path, "/" for the root group
    name: str
    type_class: str  # "string", "vlen-string", "vlen-bytes", "integer", "float", or another class name
    shape: tuple[int, ...] | None  # None for a scalar
    value: Value
    offset: int  # file offset of the attribute message (or heap object)


MALFORMED = "malformed"
OVER_LIMIT = "limit"
UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Problem:
    """A part of the file that was not read: malformed, over a bound (``limit`` names it), or unsupported."""

    path: str
    message: str
    offset: int | None
    kind: str = MALFORMED  # MALFORMED, OVER_LIMIT or UNSUPPORTED
    limit: str | None = None  # the Hdf5Limits field, for OVER_LIMIT
    attribute: str | None = None  # the attribute's name, when one attribute could not be read


@dataclass(frozen=True)
class Hdf5Contents:
    """What :func:`read_attributes` found."""

    superblock_version: int
    objects: int  # object headers visited
    attributes: tuple[Attribute, ...]
    problems: tuple[Problem, ...] = ()


def read_attributes(stream: BinaryIO, size: int, limits: Hdf5Limits = HDF5_LIMITS) -> Hdf5Contents:
    """Read the attributes of the root group and of every object reachable from it.

    ``stream`` is a seekable binary stream of ``size`` bytes. Raises
    :class:`FormatError` when the superblock or the root group cannot be read; problems
    below the root are returned in :attr:`Hdf5Contents.problems`.
    """
    return _File(stream, size, limits).walk()


def superblock_offset(stream: BinaryIO, size: int) -> int | None:
    """Where the superblock is: offset 0, or 512, 1024, 2048, ... after a user block (as libhdf5 searches)."""
    pos = 0
    while pos + 8 <= size:
        stream.seek(pos)
        if stream.read(8) == SIGNATURE:
            return pos
        pos = 512 if pos == 0 else pos * 2
    return None


# ---------------------------------------------------------------------------------------------
# Low-level reading
# ---------------------------------------------------------------------------------------------

class _Unsupported(FormatError):
    """Valid HDF5 that this reader does not decode (reported as unsupported, not malformed)."""


# Budgets over the whole file: once one is spent, the walk stops.
_FILE_BUDGETS = frozenset({"max_read_bytes", "max_messages", "max_attributes", "max_links",
                           "max_total_value_bytes", "max_problems"})


class _Buf:
    """A cursor over bytes read from the file; ``origin`` is their file offset (for errors)."""

    __slots__ = ("data", "pos", "origin", "osize", "lsize")

    def __init__(self, data: bytes, origin: int, osize: int, lsize: int) -> None:
        self.data = data
        self.pos = 0
        self.origin = origin
        self.osize = osize
        self.lsize = lsize

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str = "field") -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"truncated {what}", self.origin + self.pos)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int, what: str = "field") -> int:
        return int.from_bytes(self.take(n, what), "little")

    def u8(self) -> int:
        return self.uint(1)

    def u16(self) -> int:
        return self.uint(2)

    def u32(self) -> int:
        return self.uint(4)

    def addr(self) -> int | None:
        """An address (``None`` for the undefined address, all bits set)."""
        raw = self.take(self.osize, "address")
        return None if raw == b"\xff" * self.osize else int.from_bytes(raw, "little")

    def length(self) -> int:
        return self.uint(self.lsize, "length")

    def expect(self, signature: bytes, what: str) -> None:
        if self.take(len(signature), what) != signature:
            raise FormatError(f"bad {what} signature", self.origin + self.pos - len(signature))


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _log2(n: int) -> int:
    return max(n, 1).bit_length() - 1


def _enc_size(n: int) -> int:
    """Bytes libhdf5 uses to encode numbers up to ``n`` (H5VM_limit_enc_size)."""
    return _log2(n) // 8 + 1


@dataclass
class _Dtype:
    cls: int
    version: int
    bits: int
    size: int
    base: _Dtype | None = None
    dims: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        if self.cls == _VLEN:
            if self.bits & 0xF == 1:
                return "vlen-string"
            if self.base is not None and self.base.cls == _INTEGER and self.base.size == 1:
                return "vlen-bytes"
        return _CLASS_NAMES[self.cls]


@dataclass
class _Object:
    """What one object header holds that the walk needs."""

    attributes: list[tuple[bytes, int]] = field(default_factory=list)  # (message, offset)
    shared_attributes: list[int] = field(default_factory=list)  # offsets of shared attribute messages
    attribute_info: tuple[bytes, int] | None = None
    link_info: tuple[bytes, int] | None = None
    links: list[tuple[bytes, int]] = field(default_factory=list)
    symbol_table: tuple[bytes, int] | None = None
    datatype: tuple[bytes, int] | None = None


class _File:
    _PAGE = 4096
    _CACHE_PAGES = 4096  # 16 MiB of metadata pages kept

    def __init__(self, stream: BinaryIO, size: int, limits: Hdf5Limits) -> None:
        self.stream = stream
        self.size = size
        self.limits = limits
        self.base = 0
        self.eof: int | None = None  # end of file the superblock claims
        self.osize = 8
        self.lsize = 8
        self.read_total = 0
        self.messages = 0
        self.value_total = 0
        self.attr_count = 0
        self.link_count = 0
        self.pages: dict[int, bytes] = {}
        self.global_heaps: dict[int, dict[int, tuple[int, int]]] = {}
        self.global_heap_data: dict[int, bytes] = {}
        self.global_heap_cached = 0  # bytes in global_heap_data
        self.named_datatypes: dict[int | None, bytes] = {}
        self.attributes: list[Attribute] = []
        self.problems: list[Problem] = []

    # -- bytes ---------------------------------------------------------------------------------
    def read(self, addr: int | None, n: int, what: str) -> bytes:
        """``n`` bytes at relative address ``addr``, through a small page cache."""
        if addr is None:
            raise FormatError(f"{what} at the undefined address")
        pos = self.base + addr
        if n < 0 or pos < 0 or pos + n > self.size:
            raise FormatError(f"{what} ({n} bytes at {pos}) lies outside the file of {self.size} bytes", pos)
        if n > 64 * KiB:
            return self._raw(pos, n)
        out = bytearray()
        page = pos // self._PAGE
        while len(out) < n:
            data = self.pages.get(page)
            if data is None:
                start = page * self._PAGE
                data = self._raw(start, min(self._PAGE, self.size - start))
                if len(self.pages) >= self._CACHE_PAGES:
                    self.pages.clear()
                self.pages[page] = data
            lo = pos + len(out) - page * self._PAGE
            out += data[lo:lo + n - len(out)]
            page += 1
        return bytes(out)

    def _raw(self, pos: int, n: int) -> bytes:
        self.read_total += n
        if self.read_total > self.limits.max_read_bytes:
            raise LimitExceeded("max_read_bytes", f"more than {self.limits.max_read_bytes} bytes of HDF5 metadata",
                                pos)
        self.stream.seek(pos)
        data = self.stream.read(n)
        if len(data) != n:
            raise FormatError("file ends early", pos + len(data))
        return data

    def buf(self, addr: int | None, n: int, what: str) -> _Buf:
        return _Buf(self.read(addr, n, what), self.base + (addr or 0), self.osize, self.lsize)

    # -- superblock ----------------------------------------------------------------------------
    def superblock(self) -> tuple[int, int | None]:
        pos = superblock_offset(self.stream, self.size)
        if pos is None:
            raise FormatError("no HDF5 superblock signature", 0)
        self.base = pos  # libhdf5 rebases on the superblock when the stored base address disagrees
        b = _Buf(self.read(0, min(self.size - pos, 256), "superblock"), pos, 8, 8)
        b.take(8)
        version = b.u8()
        if version in (0, 1):
            b.take(4)  # free-space, root symbol table entry and shared header versions, reserved
            b.osize, b.lsize = b.u8(), b.u8()
            self._sizes(b.osize, b.lsize, pos)
            b.take(1 + 2 + 2 + 4 + (4 if version == 1 else 0))  # reserved, group K values, flags
            b.take(2 * b.osize)  # base and free-space addresses
            self.eof = b.addr()
            b.take(b.osize)  # driver information
            b.take(b.osize)  # root entry: link name offset
            root = b.addr()
        elif version in (2, 3):
            b.osize, b.lsize = b.u8(), b.u8()
            self._sizes(b.osize, b.lsize, pos)
            b.take(1 + 2 * b.osize)  # flags, base and superblock extension addresses
            self.eof = b.addr()
            root = b.addr()
        else:
            raise FormatError(f"unsupported superblock version {version}", pos + 8)
        return version, root

    def _sizes(self, osize: int, lsize: int, pos: int) -> None:
        if osize not in (2, 4, 8) or lsize not in (2, 4, 8):
            raise FormatError(f"unsupported address/length sizes {osize}/{lsize}", pos + 9)
        self.osize, self.lsize = osize, lsize

    # -- object headers ------------------------------------------------------------------------
    def header(self, addr: int | None) -> _Object:
        """Read an object header and its continuation blocks; keep the messages the walk needs."""
        obj = _Object()
        head = self.read(addr, 4, "object header")
        blocks: deque[tuple[int | None, int, bool]] = deque()
        if head == b"OHDR":
            b = self.buf(addr, min(34, self.size - self.base - (addr or 0)), "object header")
            b.take(4)
            if b.u8() != 2:
                raise FormatError("unsupported version 2 object header version", b.origin + 4)
            flags = b.u8()
            if flags & 0x20:
                b.take(16)  # access, modification, change and birth times
            if flags & 0x10:
                b.take(4)  # attribute storage phase change values
            chunk0 = b.uint(1 << (flags & 3), "chunk size")
            version = 2
            creation_order = bool(flags & 0x04)
            blocks.append(((addr or 0) + b.pos, chunk0, False))
        else:
            b = self.buf(addr, 16, "object header")
            if b.u8() != 1:
                raise FormatError("unknown object header version", b.origin)
            b.take(7)  # reserved, message count, reference count
            version = 1
            creation_order = False
            blocks.append(((addr or 0) + 16, b.u32(), False))
        seen: set[int | None] = set()
        while blocks:
            start, length, is_continuation = blocks.popleft()
            if start in seen:
                raise FormatError("object header continuation cycle", self.base + (start or 0))
            seen.add(start)
            if len(seen) > self.limits.max_header_blocks:
                raise LimitExceeded("max_header_blocks", "too many object header continuation blocks")
            if length > self.limits.max_header_block_bytes:
                raise LimitExceeded("max_header_block_bytes", f"object header block of {length} bytes",
                                    self.base + (start or 0))
            b = self.buf(start, length, "object header block")
            if version == 2 and is_continuation:
                b.expect(b"OCHK", "object header continuation")
                b.data = b.data[:-4] if len(b.data) >= 8 else b.data  # the checksum
            for mtype, mflags, data, offset in self._messages(b, version, creation_order):
                if mtype == _MSG_CONTINUATION:
                    c = _Buf(data, offset, self.osize, self.lsize)
                    blocks.append((c.addr(), c.length(), True))
                elif mtype == _MSG_ATTRIBUTE:
                    if mflags & _FLAG_SHARED:
                        obj.shared_attributes.append(offset)
                    else:
                        obj.attributes.append((data, offset))
                elif mtype == _MSG_ATTRIBUTE_INFO:
                    obj.attribute_info = (data, offset)
                elif mtype == _MSG_LINK_INFO:
                    obj.link_info = (data, offset)
                elif mtype == _MSG_LINK:
                    obj.links.append((data, offset))
                elif mtype == _MSG_SYMBOL_TABLE:
                    obj.symbol_table = (data, offset)
                elif mtype == _MSG_DATATYPE and not mflags & _FLAG_SHARED:
                    obj.datatype = (data, offset)
        return obj

    def _messages(self, b: _Buf, version: int, creation_order: bool) -> list[tuple[int, int, bytes, int]]:
        out: list[tuple[int, int, bytes, int]] = []
        header = 8 if version == 1 else 4 + (2 if creation_order else 0)
        while b.remaining >= header:
            if version == 1:
                mtype, size, mflags = b.u16(), b.u16(), b.u8()
                b.take(3)
            else:
                mtype, size, mflags = b.u8(), b.u16(), b.u8()
                if creation_order:
                    b.take(2)
            offset = b.origin + b.pos
            data = b.take(size, "header message")
            self.messages += 1
            if self.messages > self.limits.max_messages:
                raise LimitExceeded("max_messages", "too many object header messages", offset)
            out.append((mtype, mflags, data, offset))
        return out

    # -- the walk ------------------------------------------------------------------------------
    def walk(self) -> Hdf5Contents:
        version, root = self.superblock()
        if self.eof is not None and self.eof > self.size:
            # libhdf5 refuses such a file; whatever it held past the end is gone. (libhdf5 stores the
            # end of file as an absolute offset, user block included, unlike the other addresses.)
            self.problems.append(Problem("/", f"file is truncated: {self.size} bytes, the superblock says "
                                         f"{self.eof}", self.size))
        queue: deque[tuple[int | None, str, int]] = deque([(root, "/", 0)])
        visited: set[int | None] = set()
        while queue:
            addr, path, depth = queue.popleft()
            if addr in visited:
                continue  # hard links may form cycles and share objects
            visited.add(addr)
            if len(visited) > self.limits.max_objects:
                self.problems.append(Problem(path, f"more than {self.limits.max_objects} objects; the rest "
                                             "were not read", None, OVER_LIMIT, "max_objects"))
                break
            try:
                children = self.visit(addr, path)
            except FormatError as exc:
                if addr == root:
                    raise
                self.problems.append(Problem(path, str(exc), exc.offset))
                continue
            except LimitExceeded as exc:
                self.problems.append(Problem(path, str(exc), exc.offset, OVER_LIMIT, exc.limit))
                if exc.limit in _FILE_BUDGETS:
                    break  # nothing more can be read
                continue
            if children and depth >= self.limits.max_depth:
                self.problems.append(Problem(path, f"groups nested deeper than {self.limits.max_depth}; "
                                             "members not read", None, OVER_LIMIT, "max_depth"))
                continue
            for name, child in children:
                queue.append((child, f"{path.rstrip('/')}/{name}", depth + 1))
        return Hdf5Contents(version, len(visited), tuple(self.attributes), tuple(self.problems))

    def visit(self, addr: int | None, path: str) -> list[tuple[str, int]]:
        """Collect one object's attributes; return its hard-linked members.

        Only a malformed object header is raised; a bad attribute, attribute index or
        member list becomes a problem and the rest of the object is still read.
        """
        obj = self.header(addr)
        for data, offset in obj.attributes:
            self._guard(path, offset, self.attribute, data, offset, path)
        for offset in obj.shared_attributes:
            self.problem(Problem(path, "attribute stored as a shared message (shared object header "
                                         "message storage) was not read", offset, UNSUPPORTED))
        if obj.attribute_info is not None:
            self._guard(path, obj.attribute_info[1], self.dense_attributes, obj.attribute_info, path)
        children: list[tuple[str, int]] = []
        if obj.link_info is not None:
            self._guard(path, obj.link_info[1], self.dense_links, obj.link_info, children)
        if obj.symbol_table is not None:
            self._guard(path, obj.symbol_table[1], self.symbol_table, obj.symbol_table, children)
        for data, offset in obj.links:
            self._guard(path, offset, self._link, data, offset, children)
        return children

    def _guard(self, path: str, offset: int, read: Callable[..., None], *args: object) -> None:
        """Run one part of an object's reading; a malformed part becomes a problem."""
        try:
            read(*args)
        except _Unsupported as exc:
            self.problem(Problem(path, f"{exc} was not read", exc.offset if exc.offset is not None else offset,
                                         UNSUPPORTED))
        except FormatError as exc:
            self.problem(Problem(path, str(exc), exc.offset if exc.offset is not None else offset))
        except LimitExceeded as exc:
            if exc.limit in _FILE_BUDGETS:
                raise
            self.problem(Problem(path, str(exc), exc.offset if exc.offset is not None else offset,
                                         OVER_LIMIT, exc.limit))

    def problem(self, problem: Problem) -> None:
        if len(self.problems) >= self.limits.max_problems:
            raise LimitExceeded("max_problems", f"more than {self.limits.max_problems} unreadable parts",
                                problem.offset)
        self.problems.append(problem)

    def _add(self, attribute: Attribute) -> None:
        self.attr_count += 1
        if self.attr_count > self.limits.max_attributes:
            raise LimitExceeded("max_attributes", f"more than {self.limits.max_attributes} attributes",
                                attribute.offset)
        self.attributes.append(attribute)

    # -- attributes ----------------------------------------------------------------------------
    def attribute(self, data: bytes, offset: int, path: str) -> None:
        """Decode one attribute message and add it (or a problem naming it)."""
        b = _Buf(data, offset, self.osize, self.lsize)
        version = b.u8()
        if version == 1:
            b.take(1)
            name_size, dt_size, ds_size = b.u16(), b.u16(), b.u16()
            raw_name = b.take(_pad8(name_size), "attribute name")[:name_size]
            dt = b.take(_pad8(dt_size), "attribute datatype")[:dt_size]
            ds = b.take(_pad8(ds_size), "attribute dataspace")[:ds_size]
            flags = 0
        elif version in (2, 3):
            flags = b.u8()
            name_size, dt_size, ds_size = b.u16(), b.u16(), b.u16()
            if version == 3:
                b.take(1)  # name character set
            raw_name = b.take(name_size, "attribute name")
            dt = b.take(dt_size, "attribute datatype")
            ds = b.take(ds_size, "attribute dataspace")
        else:
            raise FormatError(f"unknown attribute message version {version}", offset)
        name = raw_name.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
        try:
            if flags & 0x02:
                raise _Unsupported("attribute with a shared dataspace")
            if flags & 0x01:
                dt = self.shared_datatype(dt, offset)
            dtype = self.datatype(_Buf(dt, offset, self.osize, self.lsize), 0)
            count, shape = self.dataspace(_Buf(ds, offset, self.osize, self.lsize))
            value = self.value(dtype, count, shape is None, b.data[b.pos:], offset)
        except _Unsupported as exc:
            self.problem(Problem(path, f"attribute {name!r}: {exc} was not read", offset, UNSUPPORTED,
                                         attribute=name))
        except FormatError as exc:
            self.problem(Problem(path, f"attribute {name!r}: {exc}", offset, attribute=name))
        except LimitExceeded as exc:
            if exc.limit in _FILE_BUDGETS:
                raise
            self.problem(Problem(path, f"attribute {name!r}: {exc}", offset, OVER_LIMIT, exc.limit,
                                         attribute=name))
        else:
            self._add(Attribute(path, name, dtype.name, shape, value, offset))

    def shared_datatype(self, ref: bytes, offset: int) -> bytes:
        """Resolve a committed (named) datatype: the datatype message of another object header."""
        b = _Buf(ref, offset, self.osize, self.lsize)
        version, kind = b.u8(), b.u8()
        if version == 1:
            b.take(6)
        elif version == 3 and kind != 2:
            raise _Unsupported("datatype in the shared message heap")
        elif version not in (2, 3):
            raise FormatError(f"unknown shared message version {version}", offset)
        addr = b.addr()
        if addr not in self.named_datatypes:
            target = self.header(addr)
            if target.datatype is None:
                raise FormatError("shared datatype reference to an object without a datatype", offset)
            self.named_datatypes[addr] = target.datatype[0]
        return self.named_datatypes[addr]

    def datatype(self, b: _Buf, depth: int) -> _Dtype:
        if depth > 8:
            raise FormatError("datatype nested too deeply", b.origin)
        first = b.u8()
        cls, version = first & 0x0F, first >> 4
        bits = b.uint(3)
        size = b.u32()
        if cls >= len(_CLASS_NAMES):
            raise FormatError(f"unknown datatype class {cls}", b.origin)
        dtype = _Dtype(cls, version, bits, size)
        if cls == _VLEN:
            dtype.base = self.datatype(b, depth + 1)
            dtype.size = 4 + self.osize + 4  # length, global heap collection address, object index
        elif cls == _ARRAY:
            ndims = b.u8()
            if version < 3:
                b.take(3)
            dtype.dims = tuple(b.u32() for _ in range(ndims))
            if version < 3:
                b.take(4 * ndims)  # permutation indices
            dtype.base = self.datatype(b, depth + 1)
        return dtype

    def dataspace(self, b: _Buf) -> tuple[int, tuple[int, ...] | None]:
        version, rank, _flags = b.u8(), b.u8(), b.u8()
        if rank > 32:
            raise FormatError(f"dataspace of rank {rank}", b.origin)
        if version == 1:
            b.take(5)
            kind = 1 if rank else 0
        elif version == 2:
            kind = b.u8()
        else:
            raise FormatError(f"unknown dataspace version {version}", b.origin)
        dims = tuple(b.length() for _ in range(rank))
        if kind == 0:
            return 1, None
        if kind == 2:
            return 0, dims
        count = 1
        for d in dims:
            count *= d
        return count, dims

    def value(self, dtype: _Dtype, count: int, scalar: bool, raw: bytes, offset: int) -> Value:
        if count and dtype.size <= 0:
            raise FormatError("attribute datatype of size 0", offset)
        if count * dtype.size > len(raw):
            raise FormatError(f"attribute data needs {count * dtype.size} bytes, message holds {len(raw)}", offset)
        if dtype.cls == _STRING:
            self._spend(min(count, _MAX_STRING_ELEMENTS) * dtype.size, offset)
            items = [raw[i * dtype.size:(i + 1) * dtype.size].rstrip(b"\0")
                     for i in range(min(count, _MAX_STRING_ELEMENTS))]
            return items[0] if scalar else tuple(items)
        if dtype.name in ("vlen-string", "vlen-bytes"):
            items = [self.vlen(raw[i * dtype.size:(i + 1) * dtype.size], offset)
                     for i in range(min(count, _MAX_STRING_ELEMENTS))]
            return items[0] if scalar else tuple(items)
        if dtype.cls in (_INTEGER, _FLOAT) and dtype.size in (1, 2, 4, 8):
            numbers = [self._number(dtype, raw[i * dtype.size:(i + 1) * dtype.size])
                       for i in range(min(count, _MAX_NUMBER_ELEMENTS))]
            if any(n is None for n in numbers):
                return None
            if scalar:
                return numbers[0]
            return tuple(numbers)  # type: ignore[return-value]  # all ints or all floats
        return None

    def _spend(self, n: int, offset: int) -> None:
        """Count string bytes kept in memory against the file-wide budget."""
        self.value_total += n
        if self.value_total > self.limits.max_total_value_bytes:
            raise LimitExceeded("max_total_value_bytes", "attribute values too large in total", offset)

    @staticmethod
    def _number(dtype: _Dtype, raw: bytes) -> int | float | None:
        big = bool(dtype.bits & 1)
        if dtype.cls == _INTEGER:
            return int.from_bytes(raw, "big" if big else "little", signed=bool(dtype.bits & 0x08))
        if dtype.bits & 0x40 or dtype.size not in (4, 8):
            return None  # VAX order, half precision
        fmt = (">" if big else "<") + ("f" if dtype.size == 4 else "d")
        number: float = struct.unpack(fmt, raw)[0]
        return number

    def vlen(self, element: bytes, offset: int) -> bytes:
        b = _Buf(element, offset, self.osize, self.lsize)
        length = b.u32()
        collection = b.addr()
        index = b.u32()
        if length == 0 or collection is None or collection == 0:
            return b""
        if length > self.limits.max_value_bytes:
            raise LimitExceeded("max_value_bytes", f"variable-length value of {length} bytes", offset)
        self._spend(length, offset)
        data = self.global_heap_object(collection, index)
        if len(data) < length:
            raise FormatError(f"variable-length value of {length} bytes in a heap object of {len(data)}", offset)
        return data[:length].rstrip(b"\0")

    def global_heap_object(self, addr: int, index: int) -> bytes:
        objects = self.global_heaps.get(addr)
        if objects is None:
            head = self.buf(addr, 8 + self.lsize, "global heap collection")
            head.expect(b"GCOL", "global heap collection")
            head.take(4)  # version, reserved
            size = head.length()
            if size > self.limits.max_heap_bytes:
                raise LimitExceeded("max_heap_bytes", f"global heap collection of {size} bytes", head.origin)
            data = self.read(addr, size, "global heap collection")
            objects = {}
            pos = 8 + self.lsize
            while pos + 8 + self.lsize <= size:
                obj_index = int.from_bytes(data[pos:pos + 2], "little")
                obj_size = int.from_bytes(data[pos + 8:pos + 8 + self.lsize], "little")
                if obj_index == 0:
                    break  # free space to the end of the collection
                start = pos + 8 + self.lsize
                if start + obj_size > size:
                    raise FormatError("global heap object runs past its collection", self.base + addr + pos)
                objects[obj_index] = (start, obj_size)
                pos = start + _pad8(obj_size)
            self.global_heap_cached += len(data)
            if self.global_heap_cached > self.limits.max_heap_bytes:
                self.global_heap_data.clear()
                self.global_heaps.clear()
                self.global_heap_cached = len(data)
            self.global_heaps[addr] = objects
            self.global_heap_data[addr] = data
        found = objects.get(index)
        if found is None:
            raise FormatError(f"no object {index} in the global heap collection at {addr}", self.base + addr)
        start, length = found
        return self.global_heap_data[addr][start:start + length]

    def dense_attributes(self, info: tuple[bytes, int], path: str) -> None:
        b = _Buf(info[0], info[1], self.osize, self.lsize)
        if b.u8() != 0:
            raise FormatError("unknown attribute info message version", info[1])
        flags = b.u8()
        if flags & 1:
            b.take(2)
        heap_addr, name_index = b.addr(), b.addr()
        if heap_addr is None:
            return
        heap = _FractalHeap(self, heap_addr)
        for record in self.btree2_records(name_index, _BTREE2_ATTRIBUTE_NAME):
            if len(record) < 9:
                raise FormatError("attribute name index record too short", self.base + heap_addr)
            heap_id, mflags = record[:-9], record[-9]
            data, offset = heap.get(heap_id)
            if mflags & _FLAG_SHARED:
                self.problem(Problem(path, "attribute stored as a shared message (shared object header "
                                             "message storage) was not read", offset, UNSUPPORTED))
                continue
            self.attribute(data, offset, path)

    # -- groups --------------------------------------------------------------------------------
    def _link(self, data: bytes, offset: int, children: list[tuple[str, int]]) -> None:
        b = _Buf(data, offset, self.osize, self.lsize)
        if b.u8() != 1:
            raise FormatError("unknown link message version", offset)
        flags = b.u8()
        kind = b.u8() if flags & 0x08 else 0
        if flags & 0x04:
            b.take(8)  # creation order
        if flags & 0x10:
            b.take(1)  # name character set
        name = b.take(b.uint(1 << (flags & 3), "link name length"), "link name")
        if kind == 0:  # soft and external links name paths, not objects; the targets are reached otherwise
            target = b.addr()
            if target is not None:
                self._child(children, name, target, offset)

    def _child(self, children: list[tuple[str, int]], name: bytes, target: int, offset: int) -> None:
        self.link_count += 1
        if self.link_count > self.limits.max_links:
            raise LimitExceeded("max_links", f"more than {self.limits.max_links} group members", offset)
        text = name.decode("utf-8", "backslashreplace").replace("~", "~0").replace("/", "~1")
        children.append((text, target))

    def dense_links(self, info: tuple[bytes, int], children: list[tuple[str, int]]) -> None:
        b = _Buf(info[0], info[1], self.osize, self.lsize)
        if b.u8() != 0:
            raise FormatError("unknown link info message version", info[1])
        if b.u8() & 1:
            b.take(8)
        heap_addr, name_index = b.addr(), b.addr()
        if heap_addr is None:
            return
        heap = _FractalHeap(self, heap_addr)
        for record in self.btree2_records(name_index, _BTREE2_LINK_NAME):
            data, offset = heap.get(record[4:])
            self._link(data, offset, children)

    def symbol_table(self, msg: tuple[bytes, int], children: list[tuple[str, int]]) -> None:
        b = _Buf(msg[0], msg[1], self.osize, self.lsize)
        tree, heap_addr = b.addr(), b.addr()
        h = self.buf(heap_addr, 8 + 2 * self.lsize + self.osize, "local heap")
        h.expect(b"HEAP", "local heap")
        h.take(4)
        heap_size = h.length()
        h.length()  # free list
        if heap_size > self.limits.max_heap_bytes:
            raise LimitExceeded("max_heap_bytes", f"local heap of {heap_size} bytes", h.origin)
        names = self.read(h.addr(), heap_size, "local heap data")
        entry = 2 * self.osize + 24
        for node in self._btree1_group_nodes(tree):
            s = self.buf(node, 8, "symbol table node")
            s.expect(b"SNOD", "symbol table node")
            s.take(2)
            count = s.u16()
            s = self.buf(node + 8, count * entry, "symbol table node")
            for _ in range(count):
                name_offset, target = s.uint(self.osize, "link name offset"), s.addr()
                s.take(24)
                if name_offset >= len(names):
                    raise FormatError("symbol name outside the local heap", s.origin)
                end = names.find(b"\0", name_offset)
                name = names[name_offset:end if end >= 0 else len(names)]
                if target is not None:
                    self._child(children, name, target, s.origin)

    def _btree1_group_nodes(self, root: int | None) -> list[int]:
        """Addresses of the symbol table nodes under a version 1 group B-tree."""
        out: list[int] = []
        stack: list[tuple[int | None, int | None]] = [(root, None)]
        seen: set[int | None] = set()
        while stack:
            addr, level_expected = stack.pop()
            if addr in seen:
                raise FormatError("cycle in a group B-tree", self.base + (addr or 0))
            seen.add(addr)
            if len(seen) > self.limits.max_heap_blocks:
                raise LimitExceeded("max_heap_blocks", "group B-tree has too many nodes")
            b = self.buf(addr, 8 + 2 * self.osize, "group B-tree node")
            b.expect(b"TREE", "group B-tree node")
            kind, level, entries = b.u8(), b.u8(), b.u16()
            b.take(2 * self.osize)  # siblings
            if kind != 0:
                raise FormatError("group B-tree node of another type", b.origin)
            if level_expected is not None and level != level_expected:
                raise FormatError("group B-tree levels are inconsistent", b.origin)
            body = self.buf((addr or 0) + b.pos, (entries + 1) * self.lsize + entries * self.osize,
                            "group B-tree node")
            for _ in range(entries):
                body.length()  # key
                child = body.addr()
                if child is None:
                    raise FormatError("undefined child in a group B-tree", body.origin)
                if level == 0:
                    out.append(child)
                else:
                    stack.append((child, level - 1))
        return out

    # -- version 2 B-trees ---------------------------------------------------------------------
    def btree2_records(self, addr: int | None, kind: int) -> list[bytes]:
        """Every record of a version 2 B-tree of type ``kind``, in no particular order."""
        if addr is None:
            return []
        h = self.buf(addr, 16 + self.osize + 2 + self.lsize, "v2 B-tree header")
        h.expect(b"BTHD", "v2 B-tree header")
        h.take(1)
        if h.u8() != kind:
            raise FormatError("v2 B-tree of an unexpected type", h.origin)
        node_size, record_size, depth = h.u32(), h.u16(), h.u16()
        h.take(2)
        root, root_records = h.addr(), h.u16()
        if record_size == 0 or node_size <= 10 + record_size or node_size > self.limits.max_heap_bytes:
            raise FormatError("implausible v2 B-tree node or record size", h.origin)
        if depth > 16:
            raise FormatError(f"implausible v2 B-tree depth {depth}", h.origin)
        # Node capacities, as libhdf5 derives them: they fix the size of the child pointers.
        max_records = [(node_size - 10) // record_size]
        cumulative = [max_records[0]]
        cumulative_size = [0]
        nrec_size = _enc_size(max_records[0])
        for d in range(1, depth + 1):
            pointer = self.osize + nrec_size + (cumulative_size[d - 1] if d > 1 else 0)
            max_records.append(max(0, (node_size - 10 - pointer) // (record_size + pointer)))
            cumulative.append((max_records[d] + 1) * cumulative[d - 1] + max_records[d])
            cumulative_size.append(_enc_size(cumulative[d]))
        records: list[bytes] = []
        stack: list[tuple[int | None, int, int]] = [(root, root_records, depth)]
        seen: set[int | None] = set()
        while stack:
            node, count, d = stack.pop()
            if node is None or count == 0:
                continue
            if node in seen:
                raise FormatError("cycle in a v2 B-tree", self.base + node)
            seen.add(node)
            if len(seen) > self.limits.max_heap_blocks:
                raise LimitExceeded("max_heap_blocks", "v2 B-tree has too many nodes")
            if count > max_records[d]:
                raise FormatError("v2 B-tree node holds more records than fit", self.base + node)
            # Read what the records and child pointers take, not the whole (claimed) node size.
            pointers = (count + 1) * (self.osize + nrec_size + (cumulative_size[d - 1] if d > 1 else 0)) if d else 0
            b = self.buf(node, 6 + count * record_size + pointers, "v2 B-tree node")
            b.expect(b"BTIN" if d else b"BTLF", "v2 B-tree node")
            b.take(1)
            if b.u8() != kind:
                raise FormatError("v2 B-tree node of an unexpected type", b.origin)
            records.extend(b.take(record_size, "v2 B-tree record") for _ in range(count))
            if len(records) > self.limits.max_links:
                raise LimitExceeded("max_links", "v2 B-tree has too many records", b.origin)
            if d:
                for _ in range(count + 1):
                    child = b.addr()
                    child_count = b.uint(nrec_size)
                    if d > 1:
                        b.uint(cumulative_size[d - 1])
                    stack.append((child, child_count, d - 1))
        return records


class _FractalHeap:
    """The parts of a fractal heap needed to fetch objects by heap ID (unfiltered heaps only)."""

    def __init__(self, f: _File, addr: int) -> None:
        self.f = f
        o, ln = f.osize, f.lsize
        b = f.buf(addr, 4 + 1 + 2 + 2 + 1 + 4 + 12 * ln + 3 * o + 2 + 2 + 2 + 2 + 4, "fractal heap header")
        b.expect(b"FRHP", "fractal heap header")
        b.take(1)
        self.id_len, filter_len = b.u16(), b.u16()
        b.take(1)  # flags (checksummed direct blocks: checksums are not verified)
        self.max_managed = b.u32()
        b.length()  # next huge object ID
        self.huge_tree = b.addr()
        b.take(ln + o)  # free space in managed blocks, free-space manager address
        b.take(8 * ln)  # managed space amounts, iterator offset, managed/huge/tiny object counts and sizes
        self.width = b.u16()
        self.start_block, self.max_direct = b.length(), b.length()
        self.max_heap_bits = b.u16()
        b.take(2)  # starting rows of the root indirect block
        self.root, self.root_rows = b.addr(), b.u16()
        if filter_len:
            raise _Unsupported("fractal heap with I/O filters")
        for value, what in ((self.width, "table width"), (self.start_block, "starting block size"),
                            (self.max_direct, "maximum direct block size")):
            if value <= 0 or value & (value - 1):
                raise FormatError(f"fractal heap {what} {value} is not a power of two", b.origin)
        if self.max_direct < self.start_block or not 0 < self.max_heap_bits <= 64:
            raise FormatError("implausible fractal heap geometry", b.origin)
        self.off_size = (self.max_heap_bits + 7) // 8
        self.len_size = min((_log2(self.max_direct) + 7) // 8, _enc_size(self.max_managed))
        self.max_direct_rows = _log2(self.max_direct) - _log2(self.start_block) + 2
        self.blocks: list[tuple[int, int, int]] | None = None  # (heap offset, size, address), sorted
        self.huge: dict[int, tuple[int, int]] | None = None
        self.checked: set[int] = set()  # direct blocks whose signature was seen

    def _row_size(self, row: int) -> int:
        return self.start_block if row == 0 else self.start_block << (row - 1)

    def _direct_blocks(self) -> list[tuple[int, int, int]]:
        if self.blocks is not None:
            return self.blocks
        f = self.f
        blocks: list[tuple[int, int, int]] = []
        if self.root is not None and self.root_rows == 0:
            blocks.append((0, self.start_block, self.root))
        elif self.root is not None:
            stack: list[tuple[int, int, int]] = [(self.root, self.root_rows, 0)]
            seen: set[int] = set()
            while stack:
                addr, rows, heap_offset = stack.pop()
                if addr in seen:
                    raise FormatError("cycle in a fractal heap", f.base + addr)
                seen.add(addr)
                if rows > 64:
                    raise FormatError(f"fractal heap indirect block of {rows} rows", f.base + addr)
                entries = rows * self.width
                if len(seen) + len(blocks) + entries > f.limits.max_heap_blocks:
                    raise LimitExceeded("max_heap_blocks", "fractal heap has too many blocks", f.base + addr)
                b = f.buf(addr, 5 + f.osize + self.off_size + entries * f.osize, "fractal heap indirect block")
                b.expect(b"FHIB", "fractal heap indirect block")
                b.take(1 + f.osize + self.off_size)
                position = heap_offset
                for row in range(rows):
                    size = self._row_size(row)
                    for _ in range(self.width):
                        child = b.addr()
                        if child is not None:
                            if row < self.max_direct_rows:
                                blocks.append((position, size, child))
                            else:
                                child_rows = _log2(size) - _log2(self.start_block * self.width) + 1
                                stack.append((child, child_rows, position))
                        position += size
        blocks.sort()
        self.blocks = blocks
        return blocks

    def get(self, heap_id: bytes) -> tuple[bytes, int]:
        """The object a heap ID names, and its file offset (tiny objects: the ID's own)."""
        if not heap_id or len(heap_id) != self.id_len:
            raise FormatError("heap ID of the wrong length")
        f = self.f
        kind = (heap_id[0] >> 4) & 3
        if heap_id[0] >> 6:
            raise FormatError("unknown heap ID version")
        if kind == 0:
            b = _Buf(heap_id[1:], 0, f.osize, f.lsize)
            offset, length = b.uint(self.off_size), b.uint(self.len_size)
            self._budget(length)
            blocks = self._direct_blocks()
            i = bisect.bisect_right(blocks, (offset, 1 << 80, 1 << 80)) - 1
            if i < 0 or offset + length > blocks[i][0] + blocks[i][1]:
                raise FormatError(f"heap object at heap offset {offset} lies in no direct block")
            block_offset, _size, block = blocks[i]
            if block not in self.checked:
                if f.read(block, 4, "fractal heap direct block") != b"FHDB":
                    raise FormatError("bad fractal heap direct block signature", f.base + block)
                self.checked.add(block)
            where = block + offset - block_offset
            return f.read(where, length, "fractal heap object"), f.base + where
        if kind == 1:
            if self.id_len >= 1 + f.osize + f.lsize:
                b = _Buf(heap_id[1:], 0, f.osize, f.lsize)
                addr, length = b.addr(), b.length()
            else:
                addr_len = self._huge_objects().get(int.from_bytes(heap_id[1:], "little"))
                if addr_len is None:
                    raise FormatError("huge heap object not in its B-tree")
                addr, length = addr_len
            self._budget(length)
            return f.read(addr, length, "huge heap object"), f.base + (addr or 0)
        if kind == 2:
            if self.id_len <= 18:
                length, start = (heap_id[0] & 0x0F) + 1, 1
            else:
                length, start = ((heap_id[0] & 0x0F) << 8 | heap_id[1]) + 1, 2
            if start + length > len(heap_id):
                raise FormatError("tiny heap object longer than its ID")
            return heap_id[start:start + length], 0
        raise FormatError("unknown heap ID type")

    def _budget(self, length: int) -> None:
        if length > self.f.limits.max_value_bytes:
            raise LimitExceeded("max_value_bytes", f"heap object of {length} bytes")

    def _huge_objects(self) -> dict[int, tuple[int, int]]:
        if self.huge is None:
            self.huge = {}
            f = self.f
            for record in f.btree2_records(self.huge_tree, _BTREE2_HUGE_INDIRECT):
                b = _Buf(record, 0, f.osize, f.lsize)
                addr, length, ident = b.addr(), b.length(), b.length()
                if addr is not None:
                    self.huge[ident] = (addr, length)
        return self.huge


__all__ = ["HDF5_LIMITS", "MALFORMED", "OVER_LIMIT", "SIGNATURE", "UNSUPPORTED", "Attribute", "Hdf5Contents",
           "Hdf5Limits", "Problem", "Value", "read_attributes", "superblock_offset"]
