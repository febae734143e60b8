"""HDF5 group members, and what a file names by path or id rather than by address.

Most of an HDF5 file names objects by address, inside the file, and :mod:`aivet.formats.hdf5`
walks them. Groups name their members by link, and some links (and a few dataset messages)
name things by path instead; following those takes the loader out of the file:

* group members: link messages (in the object header, or dense: link info message ->
  fractal heap + version 2 B-tree) and symbol tables (version 1 B-tree + local heap).
  Hard links name an object header and are returned for the walk to follow; soft,
  external and user-defined links name a path and are kept as :class:`Link`. An external
  link makes libhdf5 open another file by name; a soft link is resolved by path to say
  whether it leads through one;
* a dataset's external data files message (its raw bytes read from files named by path) and
  a virtual dataset's mapping (source datasets in other HDF5 files) (:class:`ExternalStorage`);
* a dataset's filter pipeline (:class:`FilterPipeline`): libhdf5 loads a filter it does not
  have built in, by id, from whatever shared library in its plugin directory registers it.

The walk in :mod:`aivet.formats.hdf5` hands the message bytes it found to the functions here;
they read through :class:`~aivet.formats.hdf5_storage.Storage` (every read bounded and charged)
and never import :mod:`aivet.formats.hdf5`, which re-exports the public types. Group members
come back one at a time and names kept in memory are charged through the ``spend`` callback
the walk passes in, entry by entry, so a budget hit keeps what was read before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from aivet.formats import FormatError
from aivet.formats.hdf5_storage import BTREE2_LINK_NAME, Cursor, FractalHeap, Storage, Unsupported, pad8

# Link types (link message): hard links name an object header, the others a path
LINK_HARD, LINK_SOFT, LINK_EXTERNAL = 0, 1, 64
# Symbol table entry cache type of a soft link: the scratch pad holds the link value's heap offset
CACHE_SOFT_LINK = 2
_MAX_SOFT_HOPS = 16  # soft links followed in one lookup (libhdf5's default nlinks property)
_LAYOUT_VIRTUAL = 3  # data layout class of a virtual dataset
_MAX_FILTERS = 32  # filters in one pipeline (libhdf5 refuses more: H5Z_MAX_NFILTERS)
_MAX_FILTER_NAME = 64  # characters kept of a filter's stored name (libhdf5 never uses it to find the filter)

SOFT = "soft"
EXTERNAL = "external"
USER_DEFINED = "user-defined"

# Charges ``n`` bytes of names kept in memory to the walk's budget (offset for the error).
Spend = Callable[[int, "int | None"], None]
# A group member: (name, link type, object address for hard links, value for the others, offset)
Member = tuple[bytes, int, "int | None", bytes, int]


@dataclass(frozen=True)
class Link:
    """A group member that names a path rather than an object: a soft, external or user-defined link.

    ``target`` is the path the link names (in ``file`` for an external link; the raw value,
    decoded leniently, for a user-defined one). For a soft link, ``through`` is the path of the
    external (or user-defined) link that following it passes through, if any: the object it
    reaches is then in another file. Soft links that reach an object of this file add nothing
    to the walk (every object reachable by path is reachable by hard links, and is read).
    """

    path: str  # the link's own path
    kind: str  # SOFT, EXTERNAL or USER_DEFINED
    target: str
    file: str | None  # external links: the file libhdf5 opens
    offset: int  # file offset of the link message (or symbol table entry)
    link_type: int  # 1 soft, 64 external, 65-255 user-defined
    through: str | None = None  # soft links: the external/user-defined link on their way


@dataclass(frozen=True)
class ExternalStorage:
    """A dataset whose data lives in another file: external raw data, or a virtual dataset's source.

    ``kind`` is ``"external"`` (the external data files message: raw bytes read from ``file``)
    or ``"virtual"`` (a virtual dataset mapping: dataset ``source_dataset`` of HDF5 file ``file``).
    """

    path: str  # the dataset
    file: str  # the file name, as stored; libhdf5 opens it when the data is read
    file_offset: int  # where in that file the data starts (0 for virtual sources)
    size: int  # bytes of data taken from it (0 for virtual sources)
    offset: int  # file offset of the message
    kind: str = "external"
    source_dataset: str | None = None  # virtual sources: the dataset read in ``file``


@dataclass(frozen=True)
class Filter:
    """One filter of a pipeline: libhdf5 runs the code registered for ``filter_id`` on every chunk read."""

    filter_id: int
    name: str  # the name stored with it, if any (at most 64 characters kept); libhdf5 finds filters by id
    optional: bool  # the writer let chunks skip it; chunks it did filter still need it to be read


@dataclass(frozen=True)
class FilterPipeline:
    """A dataset's filter pipeline message: the filters its chunks pass through, in writing order."""

    path: str  # the dataset
    filters: tuple[Filter, ...]
    offset: int  # file offset of the message


# -- group members -------------------------------------------------------------------------------
def read_link_message(store: Storage, data: bytes, offset: int) -> Member:
    """Decode a link message (at file offset ``offset``) into a :data:`Member`.

    Hard links (type 0) carry an object address and an empty value; the others a value (the
    path, or an external link's file and path) and no address.
    """
    b = store.cursor(data, offset)
    if b.u8() != 1:
        raise FormatError("unknown link message version", offset)
    flags = b.u8()
    kind = b.u8() if flags & 0x08 else LINK_HARD
    if flags & 0x04:
        b.take(8)  # creation order
    if flags & 0x10:
        b.take(1)  # name character set
    name = b.take(b.uint(1 << (flags & 3), "link name length"), "link name")
    if kind == LINK_HARD:
        return name, kind, b.addr(), b"", offset
    if 1 < kind < LINK_EXTERNAL:
        raise FormatError(f"reserved link type {kind}", offset)
    return name, kind, None, b.take(b.u16(), "link value"), offset


def link_messages(store: Storage, messages: list[tuple[bytes, int]]) -> Iterator[Member]:
    """The members named by link messages in an object header (``(message, offset)`` pairs)."""
    for data, offset in messages:
        yield read_link_message(store, data, offset)


def dense_links(store: Storage, info: tuple[bytes, int]) -> Iterator[Member]:
    """The members of a group whose links are stored densely (its link info message)."""
    b = store.cursor(info[0], info[1])
    if b.u8() != 0:
        raise FormatError("unknown link info message version", info[1])
    if b.u8() & 1:
        b.take(8)
    heap_addr, name_index = b.addr(), b.addr()
    if heap_addr is None:
        return
    heap = FractalHeap(store, heap_addr)
    for record in store.btree2_records(name_index, BTREE2_LINK_NAME):
        data, offset = heap.get(record[4:])
        yield read_link_message(store, data, offset)


def symbol_table(store: Storage, msg: tuple[bytes, int]) -> Iterator[Member]:
    """The members of an old-style group (its symbol table message): hard links, and soft links cached as such."""
    b = store.cursor(msg[0], msg[1])
    tree, heap_addr = b.addr(), b.addr()
    names = store.local_heap(heap_addr)
    entry = 2 * store.osize + 24
    for node in store.btree1_group_nodes(tree):
        s = store.cursor_at(node, 8, "symbol table node")
        s.expect(b"SNOD", "symbol table node")
        s.take(2)
        count = s.u16()
        store.count_entries(count, node)
        s = store.cursor_at(node + 8, count * entry, "symbol table node")
        for _ in range(count):
            at = s.origin + s.pos
            name_offset, target = s.uint(store.osize, "link name offset"), s.addr()
            cache_type = s.u32()
            s.take(4)
            scratch = s.take(16)
            name = _heap_string(names, name_offset, at)
            if cache_type == CACHE_SOFT_LINK:
                # A soft link: its value (the path) is in the same local heap, at the scratch pad's offset.
                yield name, LINK_SOFT, None, _heap_string(names, int.from_bytes(scratch[:4], "little"), at), at
            else:
                yield name, LINK_HARD, target, b"", at


def path_link(path: str, name: bytes, kind: int, value: bytes, offset: int) -> Link:
    """The :class:`Link` for member ``name`` of group ``path``: a soft, external or user-defined link."""
    link_path = f"{path.rstrip('/')}/{escape_name(name)}"
    if kind == LINK_SOFT:
        return Link(link_path, SOFT, text(value.split(b"\0", 1)[0]), None, offset, kind)
    if kind == LINK_EXTERNAL:
        # Version and flags (one byte), then the file name and the object path, each NUL-terminated.
        if not value or value[0] >> 4:
            raise FormatError("unknown external link version", offset)
        parts = value[1:].split(b"\0")
        if len(parts) < 3:
            raise FormatError("external link value is not a file name and a path", offset)
        return Link(link_path, EXTERNAL, text(parts[1]), text(parts[0]), offset, kind)
    return Link(link_path, USER_DEFINED, text(value), None, offset, kind)


def resolve_soft_link(link: Link, others: dict[str, Link], hard: dict[str, int], canonical: dict[int, str],
                      store: Storage) -> Link:
    """Follow a soft link by path, as libhdf5 would, and note an external link on its way.

    ``others`` are all the file's path links by their path, ``hard`` every hard link's path
    and the object it names, ``canonical`` the path each object's members were read under.
    Each step is charged to ``max_index_entries`` (long paths through many links cost work).
    """
    if link.kind != SOFT:
        return link
    current = "/" if link.target.startswith("/") else (link.path.rsplit("/", 1)[0] or "/")
    pending = components(link.target)
    hops = 0
    while pending:
        store.count_entries(1, None)
        step = f"{current.rstrip('/')}/{pending.pop(0)}"
        other = others.get(step)
        if other is not None:
            if other.kind != SOFT:
                return replace(link, through=other.path)
            hops += 1
            if hops > _MAX_SOFT_HOPS:
                return link  # libhdf5 gives up too: nothing is reached
            if other.target.startswith("/"):
                current = "/"
            pending[:0] = components(other.target)
            continue
        addr = hard.get(step)
        if addr is None:
            return link  # dangling: h5py raises KeyError, nothing is reached
        current = canonical.get(addr, step)  # the path its members were read under
    return link


# -- data in other files -------------------------------------------------------------------------
def external_files(store: Storage, msg: tuple[bytes, int], path: str, spend: Spend) -> Iterator[ExternalStorage]:
    """The external data files message: the files a dataset's raw data is read from."""
    b = store.cursor(msg[0], msg[1])
    if b.u8() != 1:
        raise FormatError("unknown external data files message version", msg[1])
    b.take(3)
    b.u16()  # allocated slots
    used = b.u16()
    heap_addr = b.addr()
    store.count_entries(used, heap_addr)
    names = store.local_heap(heap_addr)
    for _ in range(used):
        name_offset, file_offset, size = b.length(), b.length(), b.length()
        name = _heap_string(names, name_offset, msg[1])
        spend(len(path) + len(name), msg[1])
        yield ExternalStorage(path, text(name), file_offset, size, msg[1])


def virtual_sources(store: Storage, msg: tuple[bytes, int], path: str, spend: Spend) -> Iterator[ExternalStorage]:
    """A virtual dataset's mapping (from its data layout message): the source files libhdf5 opens to read it."""
    b = store.cursor(msg[0], msg[1])
    version, layout_class = b.u8(), b.u8()
    if version < 3 or layout_class != _LAYOUT_VIRTUAL:
        return  # compact, contiguous or chunked data lives in this file
    addr, index = b.addr(), b.u32()
    if addr is None:
        return  # no mapping yet: nothing is read from anywhere
    for file, dataset in virtual_mapping(store, addr, index, msg[1]):
        if file != b".":  # "." is this file: nothing else is opened
            spend(len(path) + len(file) + len(dataset), msg[1])
            yield ExternalStorage(path, text(file), 0, 0, msg[1], "virtual", text(dataset))


def virtual_mapping(store: Storage, addr: int, index: int, origin: int) -> list[tuple[bytes, bytes]]:
    """The (source file, source dataset) of each entry of a virtual dataset's mapping.

    The mapping is global heap object ``index`` of the collection at ``addr``: an encoding
    version, an entry count and, per entry, the source file and dataset names (NUL-terminated)
    and the source and virtual selections, stepped over. Encoding version 1 (libhdf5 2.x) adds
    a flags byte per entry: 0x04 the source is this file (returned as ``b"."``), 0x01/0x02 the
    file/dataset name is an earlier entry's, by index; other flags are :class:`Unsupported`.
    """
    heap = store.cursor(store.global_heap_object(addr, index), origin)
    encoding = heap.u8()
    if encoding > 1:
        raise Unsupported(f"virtual dataset mapping encoding version {encoding}")
    count = heap.length()
    store.count_entries(count, addr)
    files: list[bytes] = []
    datasets: list[bytes] = []
    for _ in range(count):
        flags = heap.u8() if encoding == 1 else 0
        if flags & ~(_VDS_SAME_FILE | _VDS_FILE_REF | _VDS_DATASET_REF):
            raise Unsupported(f"virtual dataset mapping flags {flags:#x}")
        if flags & _VDS_SAME_FILE:
            file = b"."
        elif flags & _VDS_FILE_REF:
            file = _earlier(files, heap.length(), heap, "virtual source file name")
        else:
            file = _cstring(heap, "virtual source file name")
        if flags & _VDS_DATASET_REF:
            dataset = _earlier(datasets, heap.length(), heap, "virtual source dataset name")
        else:
            dataset = _cstring(heap, "virtual source dataset name")
        files.append(file)
        datasets.append(dataset)
        _skip_selection(heap)
        _skip_selection(heap)
    return list(zip(files, datasets, strict=True))


# Virtual dataset mapping entry flags (encoding version 1) and dataspace selection types
_VDS_FILE_REF, _VDS_DATASET_REF, _VDS_SAME_FILE = 0x01, 0x02, 0x04
_SEL_NONE, _SEL_POINTS, _SEL_HYPERSLABS, _SEL_ALL = 0, 1, 2, 3


def _cstring(b: Cursor, what: str) -> bytes:
    """A NUL-terminated string at the cursor (the NUL consumed)."""
    end = b.data.find(b"\0", b.pos)
    if end < 0:
        raise FormatError(f"unterminated {what}", b.origin + b.pos)
    return b.take(end - b.pos + 1, what)[:-1]


def _earlier(names: list[bytes], index: int, b: Cursor, what: str) -> bytes:
    """A name an entry of a virtual dataset mapping takes from an earlier entry."""
    if index >= len(names):
        raise FormatError(f"{what} refers to entry {index} of {len(names)}", b.origin + b.pos)
    return names[index]


def _skip_selection(b: Cursor) -> None:
    """Step over one serialized dataspace selection (none, all, points or hyperslabs; versions 1-3)."""
    kind, version = b.u32(), b.u32()
    if kind in (_SEL_NONE, _SEL_ALL) and version == 1:
        b.take(8, "selection")  # reserved, length (0)
    elif kind in (_SEL_POINTS, _SEL_HYPERSLABS) and version == 1:
        b.take(4, "selection")  # reserved
        b.take(b.u32(), "selection")
    elif kind == _SEL_HYPERSLABS and version == 2:
        b.take(1, "selection")  # flags
        b.take(b.u32(), "selection")
    elif kind == _SEL_POINTS and version == 2:
        size = b.u8()
        rank = b.u32()
        b.take(b.uint(size, "selection") * rank * size, "selection")
    elif kind == _SEL_HYPERSLABS and version == 3:
        flags, size = b.u8(), b.u8()
        rank = b.u32()
        if flags & 1:  # regular: start, stride, count and block per dimension
            b.take(4 * rank * size, "selection")
        else:
            b.take(b.uint(size, "selection") * 2 * rank * size, "selection")
    else:
        raise Unsupported(f"dataspace selection type {kind} version {version}")


# -- filter plugins ------------------------------------------------------------------------------
def filter_pipelines(store: Storage, msg: tuple[bytes, int], path: str, spend: Spend) -> Iterator[FilterPipeline]:
    """Decode a dataset's filter pipeline message (versions 1 and 2): one pipeline, yielded like the others.

    Version 1 stores every filter's name length and pads names and odd client data to 8 and 4
    bytes; version 2 stores a name length only for ids from 256 (ids below name the library's own
    filters) and pads nothing. Client data values are stepped over; a stored name is charged to
    ``spend`` as far as it is kept.
    """
    b = store.cursor(msg[0], msg[1])
    version, count = b.u8(), b.u8()
    if version not in (1, 2):
        raise FormatError(f"unknown filter pipeline message version {version}", msg[1])
    if count > _MAX_FILTERS:
        raise FormatError(f"filter pipeline of {count} filters (at most {_MAX_FILTERS})", msg[1])
    if version == 1:
        b.take(6)  # reserved
    filters: list[Filter] = []
    for _ in range(count):
        filter_id = b.u16()
        name_length = b.u16() if version == 1 or filter_id >= 256 else 0
        flags, values = b.u16(), b.u16()
        raw = b.take(pad8(name_length) if version == 1 else name_length, "filter name")
        b.take(4 * values + (4 if version == 1 and values % 2 else 0), "filter client data")
        name = text(raw.split(b"\0", 1)[0][:_MAX_FILTER_NAME])
        spend(len(name), msg[1])
        filters.append(Filter(filter_id, name, bool(flags & 1)))
    yield FilterPipeline(path, tuple(filters), msg[1])


# -- names ---------------------------------------------------------------------------------------
def _heap_string(names: bytes, offset: int, origin: int) -> bytes:
    """The NUL-terminated string at ``offset`` in a local heap's data."""
    if offset >= len(names):
        raise FormatError("name outside the local heap", origin)
    end = names.find(b"\0", offset)
    return names[offset:end if end >= 0 else len(names)]


def text(raw: bytes) -> str:
    """Bytes from the file as text, undecodable bytes kept visible as escapes."""
    return raw.decode("utf-8", "backslashreplace")


def escape_name(name: bytes) -> str:
    """A member name as one JSON-pointer-like path component (a '/' in a hostile name cannot split it)."""
    return text(name).replace("~", "~0").replace("/", "~1")


def components(path: str) -> list[str]:
    """The escaped components of an HDF5 path ('.' and empty ones dropped, as libhdf5 does)."""
    return [escape_name(part.encode()) for part in path.split("/") if part not in ("", ".")]


__all__ = ["CACHE_SOFT_LINK", "EXTERNAL", "LINK_EXTERNAL", "LINK_HARD", "LINK_SOFT", "SOFT", "USER_DEFINED",
           "ExternalStorage", "Filter", "FilterPipeline", "Link", "Member", "Spend", "components", "dense_links",
           "escape_name", "external_files", "filter_pipelines", "link_messages", "path_link", "read_link_message", "resolve_soft_link",
           "symbol_table", "text", "virtual_mapping", "virtual_sources"]
