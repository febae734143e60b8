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
* groups (symbol tables, link messages compact or dense), soft, external and user-defined links
  (:class:`Link`), data kept in other files (:class:`ExternalStorage`) and filter pipelines
  (:class:`FilterPipeline`), read by :mod:`aivet.formats.hdf5_links`; the declared size of
  every dataset (:class:`Dataset`).

This module holds the public API and the walk over objects: superblock, object headers,
attribute messages and their datatypes and values. Group members and what the file names by
path or filter id are decoded in :mod:`aivet.formats.hdf5_links`; the storage below the
objects (bounded reads, local/global/fractal heaps, version 1 and 2 B-trees) lives in
:mod:`aivet.formats.hdf5_storage`. Neither imports this module; :class:`Hdf5Limits` and the
public types of :mod:`~aivet.formats.hdf5_links` are re-exported here.

Every structure is bounded by :class:`Hdf5Limits` (objects, messages, header blocks, heap
and B-tree sizes, index entries, names, value bytes, total bytes read); cycles in continuation
chains, B-trees, fractal heaps and the group graph are detected. Malformed input raises
:class:`~aivet.formats.FormatError`; a malformed or over-limit *child* object becomes a
:class:`Problem` and the walk goes on. Checksums are not verified: libhdf5 refuses a bad
checksum, so reading past one only ever shows more than a loader would.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from aivet.formats import FormatError, LimitExceeded
from aivet.formats import hdf5_links as hl
from aivet.formats.hdf5_links import EXTERNAL, SOFT, USER_DEFINED, ExternalStorage, Filter, FilterPipeline, Link
from aivet.formats.hdf5_storage import (
    BTREE2_ATTRIBUTE_NAME,
    FILE_BUDGETS,
    Cursor,
    FractalHeap,
    Hdf5Limits,
    Storage,
    Unsupported,
    pad8,
)
from aivet.formats.sniff import HDF5_SIGNATURE, hdf5_superblock_offset

SIGNATURE = HDF5_SIGNATURE

HDF5_LIMITS = Hdf5Limits()

# Datatype classes (datatype message, low nibble of the first byte)
_CLASS_NAMES = ("integer", "float", "time", "string", "bitfield", "opaque", "compound", "reference",
                "enum", "vlen", "array")
_INTEGER, _FLOAT, _STRING, _VLEN, _ARRAY = 0, 1, 3, 9, 10

# Header message types
_MSG_DATASPACE = 0x01
_MSG_LINK_INFO = 0x02
_MSG_LAYOUT = 0x08
_MSG_EXTERNAL_FILES = 0x07
_MSG_FILTER_PIPELINE = 0x0B
_MSG_LINK = 0x06
_MSG_ATTRIBUTE = 0x0C
_MSG_CONTINUATION = 0x10
_MSG_SYMBOL_TABLE = 0x11
_MSG_ATTRIBUTE_INFO = 0x15
_MSG_DATATYPE = 0x03
_FLAG_SHARED = 0x02

_MAX_STRING_ELEMENTS = 65_536  # strings kept from one string array attribute
_MAX_NUMBER_ELEMENTS = 64  # numbers kept from one numeric attribute
# Memory a kept string element costs beyond its bytes (tuple slot, object header): charged to
# max_total_value_bytes with them, so arrays of empty or one-byte strings are not free.
_ELEMENT_COST = 16


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
class Dataset:
    """A dataset's declared size (its dataspace times its element size); the data itself is never read."""

    path: str
    shape: tuple[int, ...] | None  # None for a scalar
    element_size: int  # bytes per element (1 when the object header has no datatype message)
    nbytes: int  # elements times element size: what a loader reading it whole allocates
    offset: int  # file offset of the dataspace message


@dataclass(frozen=True)
class Hdf5Contents:
    """What :func:`read_attributes` found."""

    superblock_version: int
    objects: int  # object headers visited
    attributes: tuple[Attribute, ...]
    problems: tuple[Problem, ...] = ()
    links: tuple[Link, ...] = ()  # soft, external and user-defined links
    external_storage: tuple[ExternalStorage, ...] = ()
    datasets: tuple[Dataset, ...] = ()
    filter_pipelines: tuple[FilterPipeline, ...] = ()  # of datasets, the library's own filters included


def read_attributes(stream: BinaryIO, size: int, limits: Hdf5Limits = HDF5_LIMITS) -> Hdf5Contents:
    """Read the attributes of the root group and of every object reachable from it.

    ``stream`` is a seekable binary stream of ``size`` bytes. Raises
    :class:`FormatError` when the superblock or the root group cannot be read; problems
    below the root are returned in :attr:`Hdf5Contents.problems`.
    """
    return _File(stream, size, limits).walk()


def superblock_offset(stream: BinaryIO, size: int) -> int | None:
    """Where the superblock is: offset 0, or 512, 1024, 2048, ... after a user block (as libhdf5 searches)."""
    return hdf5_superblock_offset(stream, size)


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
    datatype_ref: tuple[bytes, int] | None = None
    external_files: tuple[bytes, int] | None = None
    dataspace: tuple[bytes, int] | None = None
    layout: tuple[bytes, int] | None = None  # a data layout message: the object is a dataset
    filters: tuple[bytes, int] | None = None  # a filter pipeline message
    shared_filters: int | None = None  # offset of a filter pipeline stored as a shared message


class _File:
    """One file's walk: the superblock, then object headers breadth-first from the root group."""

    def __init__(self, stream: BinaryIO, size: int, limits: Hdf5Limits) -> None:
        self.stream = stream
        self.size = size
        self.limits = limits
        self.store = Storage(stream, size, limits)
        self.eof: int | None = None  # end of file the superblock claims
        self.messages = 0
        self.value_total = 0
        self.attr_count = 0
        self.link_count = 0
        self.name_bytes = 0
        self.named_datatypes: dict[int | None, _Dtype] = {}  # decoded: the messages may be long
        self.attributes: list[Attribute] = []
        self.problems: list[Problem] = []
        self.links: list[Link] = []
        self.external: list[ExternalStorage] = []
        self.datasets: list[Dataset] = []
        self.pipelines: list[FilterPipeline] = []
        self.hard: dict[str, int] = {}  # every hard link's path -> the object it names
        self.canonical: dict[int, str] = {}  # object -> the path it was read under

    # -- superblock ----------------------------------------------------------------------------
    def superblock(self) -> tuple[int, int | None]:
        pos = superblock_offset(self.stream, self.size)
        if pos is None:
            raise FormatError("no HDF5 superblock signature", 0)
        self.store.base = pos  # libhdf5 rebases on the superblock when the stored base address disagrees
        b = Cursor(self.store.read(0, min(self.size - pos, 256), "superblock"), pos, 8, 8)
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
        self.store.osize, self.store.lsize = osize, lsize

    # -- object headers ------------------------------------------------------------------------
    def header(self, addr: int | None) -> _Object:
        """Read an object header and its continuation blocks; keep the messages the walk needs."""
        obj = _Object()
        head = self.store.read(addr, 4, "object header")
        blocks: deque[tuple[int | None, int, bool]] = deque()
        if head == b"OHDR":
            b = self.store.cursor_at(addr, min(34, self.size - self.store.base - (addr or 0)), "object header")
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
            b = self.store.cursor_at(addr, 16, "object header")
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
                raise FormatError("object header continuation cycle", self.store.base + (start or 0))
            seen.add(start)
            if len(seen) > self.limits.max_header_blocks:
                raise LimitExceeded("max_header_blocks", "too many object header continuation blocks")
            if length > self.limits.max_header_block_bytes:
                raise LimitExceeded("max_header_block_bytes", f"object header block of {length} bytes",
                                    self.store.base + (start or 0))
            b = self.store.cursor_at(start, length, "object header block")
            if version == 2 and is_continuation:
                b.expect(b"OCHK", "object header continuation")
                b.data = b.data[:-4] if len(b.data) >= 8 else b.data  # the checksum
            for mtype, mflags, data, offset in self._messages(b, version, creation_order):
                if mtype == _MSG_CONTINUATION:
                    c = self.store.cursor(data, offset)
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
                elif mtype == _MSG_DATATYPE:
                    obj.datatype_ref = (data, offset)  # a committed datatype, resolved when needed
                elif mtype == _MSG_EXTERNAL_FILES:
                    obj.external_files = (data, offset)
                elif mtype == _MSG_DATASPACE and not mflags & _FLAG_SHARED:
                    obj.dataspace = (data, offset)
                elif mtype == _MSG_LAYOUT:
                    obj.layout = (data, offset)
                elif mtype == _MSG_FILTER_PIPELINE and not mflags & _FLAG_SHARED:
                    obj.filters = (data, offset)
                elif mtype == _MSG_FILTER_PIPELINE:
                    obj.shared_filters = offset
        return obj

    def _messages(self, b: Cursor, version: int, creation_order: bool) -> list[tuple[int, int, bytes, int]]:
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
            if addr is not None:
                self.canonical[addr] = path
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
                if exc.limit in FILE_BUDGETS:
                    break  # nothing more can be read
                continue
            if children and depth >= self.limits.max_depth:
                self.problems.append(Problem(path, f"groups nested deeper than {self.limits.max_depth}; "
                                             "members not read", None, OVER_LIMIT, "max_depth"))
                continue
            for name, child in children:
                child_path = f"{path.rstrip('/')}/{name}"
                self.hard.setdefault(child_path, child)
                queue.append((child, child_path, depth + 1))
        others = {link.path: link for link in self.links}
        links: list[Link] = []
        for link in self.links:
            try:
                links.append(hl.resolve_soft_link(link, others, self.hard, self.canonical, self.store))
            except LimitExceeded as exc:  # only the file-wide index budget: the rest stay unresolved
                self.problems.append(Problem(link.path, f"soft links not followed: {exc}", link.offset, OVER_LIMIT,
                                             exc.limit))
                links.extend(self.links[len(links):])
                break
        return Hdf5Contents(version, len(visited), tuple(self.attributes), tuple(self.problems), tuple(links),
                            tuple(self.external), tuple(self.datasets), tuple(self.pipelines))

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
        if obj.external_files is not None:
            self._guard(path, obj.external_files[1], self.keep, self.external,
                        hl.external_files(self.store, obj.external_files, path, self._spend_names))
        if obj.layout is not None and obj.dataspace is not None:
            self._guard(path, obj.dataspace[1], self.dataset, obj.dataspace, obj.datatype, obj.datatype_ref, path)
        if obj.layout is not None:
            self._guard(path, obj.layout[1], self.keep, self.external,
                        hl.virtual_sources(self.store, obj.layout, path, self._spend_names))
        if obj.layout is not None and obj.filters is not None:
            self._guard(path, obj.filters[1], self.keep, self.pipelines,
                        hl.filter_pipelines(self.store, obj.filters, path, self._spend_names))
        if obj.layout is not None and obj.shared_filters is not None:
            self.problem(Problem(path, "filter pipeline stored as a shared message (shared object header "
                                       "message storage) was not read", obj.shared_filters, UNSUPPORTED))
        children: list[tuple[str, int]] = []
        if obj.link_info is not None:
            self._guard(path, obj.link_info[1], self.members, hl.dense_links(self.store, obj.link_info), children,
                        path)
        if obj.symbol_table is not None:
            self._guard(path, obj.symbol_table[1], self.members, hl.symbol_table(self.store, obj.symbol_table),
                        children, path)
        for data, offset in obj.links:
            self._guard(path, offset, self.members, hl.link_messages(self.store, [(data, offset)]), children, path)
        self._spend_names((len(path) + 1) * len(children), None)  # each member's path repeats this one
        return children

    def _guard(self, path: str, offset: int, read: Callable[..., None], *args: object) -> None:
        """Run one part of an object's reading; a malformed part becomes a problem."""
        try:
            read(*args)
        except Unsupported as exc:
            self.problem(Problem(path, f"{exc} was not read", exc.offset if exc.offset is not None else offset,
                                         UNSUPPORTED))
        except FormatError as exc:
            self.problem(Problem(path, str(exc), exc.offset if exc.offset is not None else offset))
        except LimitExceeded as exc:
            if exc.limit in FILE_BUDGETS:
                raise
            self.problem(Problem(path, str(exc), exc.offset if exc.offset is not None else offset,
                                         OVER_LIMIT, exc.limit))

    def _spend_names(self, n: int, offset: int | None) -> None:
        """Count member names and paths kept in memory against the file-wide budget."""
        self.name_bytes += n
        if self.name_bytes > self.limits.max_name_bytes:
            raise LimitExceeded("max_name_bytes", f"member names longer than {self.limits.max_name_bytes} bytes "
                                "in total", offset)

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
        b = self.store.cursor(data, offset)
        version = b.u8()
        if version == 1:
            b.take(1)
            name_size, dt_size, ds_size = b.u16(), b.u16(), b.u16()
            raw_name = b.take(pad8(name_size), "attribute name")[:name_size]
            dt = b.take(pad8(dt_size), "attribute datatype")[:dt_size]
            ds = b.take(pad8(ds_size), "attribute dataspace")[:ds_size]
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
                raise Unsupported("attribute with a shared dataspace")
            if flags & 0x01:
                dtype = self.shared_datatype(dt, offset)
            else:
                dtype = self.datatype(self.store.cursor(dt, offset), 0)
            count, shape = self.dataspace(self.store.cursor(ds, offset))
            value = self.value(dtype, count, shape is None, b.data[b.pos:], offset)
        except Unsupported as exc:
            self.problem(Problem(path, f"attribute {name!r}: {exc} was not read", offset, UNSUPPORTED,
                                         attribute=name))
        except FormatError as exc:
            self.problem(Problem(path, f"attribute {name!r}: {exc}", offset, attribute=name))
        except LimitExceeded as exc:
            if exc.limit in FILE_BUDGETS:
                raise
            self.problem(Problem(path, f"attribute {name!r}: {exc}", offset, OVER_LIMIT, exc.limit,
                                         attribute=name))
        else:
            self._add(Attribute(path, name, dtype.name, shape, value, offset))

    def shared_datatype(self, ref: bytes, offset: int) -> _Dtype:
        """Resolve a committed (named) datatype: the datatype message of another object header."""
        b = self.store.cursor(ref, offset)
        version, kind = b.u8(), b.u8()
        if version == 1:
            b.take(6)
        elif version == 3 and kind != 2:
            raise Unsupported("datatype in the shared message heap")
        elif version not in (2, 3):
            raise FormatError(f"unknown shared message version {version}", offset)
        addr = b.addr()
        if addr not in self.named_datatypes:
            target = self.header(addr)
            if target.datatype is None:
                raise FormatError("shared datatype reference to an object without a datatype", offset)
            # Keep the decoded type, not the message: many small headers may share one long message.
            self.named_datatypes[addr] = self.datatype(self.store.cursor(target.datatype[0], offset), 0)
        return self.named_datatypes[addr]

    def datatype(self, b: Cursor, depth: int) -> _Dtype:
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
            dtype.size = 4 + self.store.osize + 4  # length, global heap collection address, object index
        elif cls == _ARRAY:
            ndims = b.u8()
            if version < 3:
                b.take(3)
            dtype.dims = tuple(b.u32() for _ in range(ndims))
            if version < 3:
                b.take(4 * ndims)  # permutation indices
            dtype.base = self.datatype(b, depth + 1)
        return dtype

    def dataspace(self, b: Cursor) -> tuple[int, tuple[int, ...] | None]:
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
            self._spend(min(count, _MAX_STRING_ELEMENTS) * (dtype.size + _ELEMENT_COST), offset)
            items = [raw[i * dtype.size:(i + 1) * dtype.size].rstrip(b"\0")
                     for i in range(min(count, _MAX_STRING_ELEMENTS))]
            return items[0] if scalar else tuple(items)
        if dtype.name in ("vlen-string", "vlen-bytes"):
            self._spend(min(count, _MAX_STRING_ELEMENTS) * _ELEMENT_COST, offset)  # the data is counted in vlen()
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
        b = self.store.cursor(element, offset)
        length = b.u32()
        collection = b.addr()
        index = b.u32()
        if length == 0 or collection is None or collection == 0:
            return b""
        if length > self.limits.max_value_bytes:
            raise LimitExceeded("max_value_bytes", f"variable-length value of {length} bytes", offset)
        self._spend(length, offset)
        data = self.store.global_heap_object(collection, index)
        if len(data) < length:
            raise FormatError(f"variable-length value of {length} bytes in a heap object of {len(data)}", offset)
        return data[:length].rstrip(b"\0")

    def dense_attributes(self, info: tuple[bytes, int], path: str) -> None:
        b = self.store.cursor(info[0], info[1])
        if b.u8() != 0:
            raise FormatError("unknown attribute info message version", info[1])
        flags = b.u8()
        if flags & 1:
            b.take(2)
        heap_addr, name_index = b.addr(), b.addr()
        if heap_addr is None:
            return
        heap = FractalHeap(self.store, heap_addr)
        for record in self.store.btree2_records(name_index, BTREE2_ATTRIBUTE_NAME):
            if len(record) < 9:
                raise FormatError("attribute name index record too short", self.store.base + heap_addr)
            heap_id, mflags = record[:-9], record[-9]
            data, offset = heap.get(heap_id)
            if mflags & _FLAG_SHARED:
                self.problem(Problem(path, "attribute stored as a shared message (shared object header "
                                             "message storage) was not read", offset, UNSUPPORTED))
                continue
            self.attribute(data, offset, path)

    # -- groups and datasets ----------------------------------------------------------------------
    def members(self, found: Iterable[hl.Member], children: list[tuple[str, int]], path: str) -> None:
        """Keep a group's members: hard links to follow in ``children``, the others as :class:`Link`."""
        for name, kind, target, value, offset in found:
            if kind == hl.LINK_HARD and target is None:
                continue
            self.link_count += 1
            if self.link_count > self.limits.max_links:
                raise LimitExceeded("max_links", f"more than {self.limits.max_links} group members", offset)
            if kind != hl.LINK_HARD:
                self._spend_names(len(path) + 1 + len(name) + len(value), offset)
                self.links.append(hl.path_link(path, name, kind, value, offset))
            elif target is not None:
                # Many links may share one long name (a local or fractal heap object): count each copy kept.
                self._spend_names(len(name), offset)
                children.append((hl.escape_name(name), target))

    @staticmethod
    def keep(kept: list[Any], found: Iterable[Any]) -> None:
        """Keep what a reader of :mod:`.hdf5_links` yields as it comes (a budget hit keeps what came before)."""
        for item in found:
            kept.append(item)

    def dataset(self, dataspace: tuple[bytes, int], datatype: tuple[bytes, int] | None,
                datatype_ref: tuple[bytes, int] | None, path: str) -> None:
        """Note a dataset's declared size: a loader reading it whole allocates that much."""
        data, offset = dataspace
        count, shape = self.dataspace(self.store.cursor(data, offset))
        size = 1
        if datatype is not None:
            size = max(1, self.datatype(self.store.cursor(datatype[0], datatype[1]), 0).size)
        elif datatype_ref is not None:
            size = max(1, self.shared_datatype(datatype_ref[0], datatype_ref[1]).size)
        self.datasets.append(Dataset(path, shape, size, count * size, offset))


__all__ = ["EXTERNAL", "HDF5_LIMITS", "MALFORMED", "OVER_LIMIT", "SIGNATURE", "SOFT", "UNSUPPORTED", "USER_DEFINED",
           "Attribute", "Dataset", "ExternalStorage", "Filter", "FilterPipeline", "Hdf5Contents", "Hdf5Limits", "Link",
           "Problem", "Value", "read_attributes", "superblock_offset"]
