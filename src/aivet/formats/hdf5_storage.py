"""The storage layer of the HDF5 reader: bounded byte access, heaps and B-trees.

:mod:`aivet.formats.hdf5` walks object headers and attributes and holds the public API;
:mod:`aivet.formats.hdf5_links` reads group members and the references by name (links,
data in other files, filter pipelines). Both read every byte of the file through a
:class:`Storage` from this module. Here is what lies below the objects, addressed by them
and shared between them:

* :class:`Storage`: the file's addressing (base address, address and length sizes), a
  small page cache, and the byte budget every read is charged to;
* :class:`Cursor`: a bounds-checked cursor over bytes read, decoding HDF5's little-endian
  fields and undefined addresses;
* local heaps and version 1 group B-trees (symbol tables), global heap collections
  (variable-length data), fractal heaps (:class:`FractalHeap`: managed, huge and tiny
  objects) and version 2 B-trees (dense attribute and link name indexes);
* :class:`Hdf5Limits`, the bounds of the whole walk, defined here so that this module
  never imports :mod:`aivet.formats.hdf5` (which re-exports it).

This module knows nothing of objects, attributes or links: B-tree records and heap
objects come back as bytes for the walk to decode. Cycles in B-trees and fractal heaps are
detected; every structure is bounded per structure (``max_heap_bytes``,
``max_heap_blocks``) and, because many objects may point at one structure, the entries
scanned in all of them together are bounded too (``max_index_entries``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import BinaryIO

from aivet.formats import FormatError, LimitExceeded

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
    max_name_bytes: int = 256 * MiB  # member names and the paths built from them, all groups together
    max_heap_bytes: int = 64 * MiB  # one local heap, global heap collection or B-tree node
    max_heap_blocks: int = 100_000  # fractal heap blocks and B-tree nodes of one structure
    # B-tree records and child pointers, symbol table entries and fractal heap block pointers scanned,
    # all structures together: objects may share one index, and cached pages cost no read budget.
    max_index_entries: int = 4_000_000
    max_value_bytes: int = 16 * MiB  # one attribute value, variable-length data included
    max_total_value_bytes: int = 256 * MiB  # attribute values, all attributes together
    max_read_bytes: int = 1024 * MiB  # metadata read from the file in total
    max_problems: int = 1_000  # unreadable parts noted before the walk stops


# Budgets over the whole file: once one is spent, the walk stops.
FILE_BUDGETS = frozenset({"max_read_bytes", "max_messages", "max_attributes", "max_links", "max_name_bytes",
                          "max_index_entries", "max_total_value_bytes", "max_problems"})

# Version 2 B-tree types
BTREE2_HUGE_INDIRECT = 1
BTREE2_LINK_NAME = 5
BTREE2_ATTRIBUTE_NAME = 8


class Unsupported(FormatError):
    """Valid HDF5 that this reader does not decode (reported as unsupported, not malformed)."""


class Cursor:
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
        """Bytes after the cursor."""
        return len(self.data) - self.pos

    def take(self, n: int, what: str = "field") -> bytes:
        """The next ``n`` bytes; :class:`FormatError` when fewer are left."""
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"truncated {what}", self.origin + self.pos)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int, what: str = "field") -> int:
        """An ``n``-byte little-endian unsigned integer."""
        return int.from_bytes(self.take(n, what), "little")

    def u8(self) -> int:
        """A one-byte unsigned integer."""
        return self.uint(1)

    def u16(self) -> int:
        """A two-byte unsigned integer."""
        return self.uint(2)

    def u32(self) -> int:
        """A four-byte unsigned integer."""
        return self.uint(4)

    def addr(self) -> int | None:
        """An address (``None`` for the undefined address, all bits set)."""
        raw = self.take(self.osize, "address")
        return None if raw == b"\xff" * self.osize else int.from_bytes(raw, "little")

    def length(self) -> int:
        """A length field (the superblock's size of lengths)."""
        return self.uint(self.lsize, "length")

    def expect(self, signature: bytes, what: str) -> None:
        """Consume ``signature``; :class:`FormatError` when the bytes differ."""
        if self.take(len(signature), what) != signature:
            raise FormatError(f"bad {what} signature", self.origin + self.pos - len(signature))


def pad8(n: int) -> int:
    """``n`` rounded up to a multiple of 8."""
    return (n + 7) & ~7


def log2(n: int) -> int:
    """The integer base-2 logarithm of ``n`` (0 for ``n <= 1``)."""
    return max(n, 1).bit_length() - 1


def enc_size(n: int) -> int:
    """Bytes libhdf5 uses to encode numbers up to ``n`` (H5VM_limit_enc_size)."""
    return log2(n) // 8 + 1


class Storage:
    """Bounded access to one HDF5 file's bytes and to the heaps and B-trees in it.

    Addresses are relative to ``base`` (the superblock's offset, after any user block);
    ``osize`` and ``lsize`` are the superblock's sizes of addresses and lengths. The reader
    of the superblock sets all three.
    """

    _PAGE = 4096
    _CACHE_PAGES = 4096  # 16 MiB of metadata pages kept

    def __init__(self, stream: BinaryIO, size: int, limits: Hdf5Limits) -> None:
        self.stream = stream
        self.size = size
        self.limits = limits
        self.base = 0
        self.osize = 8
        self.lsize = 8
        self.read_total = 0
        self.index_entries = 0
        self.pages: dict[int, bytes] = {}
        self.global_heaps: dict[int, dict[int, tuple[int, int]]] = {}
        self.global_heap_data: dict[int, bytes] = {}
        self.global_heap_cached = 0  # bytes in global_heap_data

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
        self.charge(n, pos)
        self.stream.seek(pos)
        data = self.stream.read(n)
        if len(data) != n:
            raise FormatError("file ends early", pos + len(data))
        return data

    def charge(self, n: int, pos: int) -> None:
        """Charge ``n`` bytes read at file offset ``pos`` to the file-wide read budget."""
        self.read_total += n
        if self.read_total > self.limits.max_read_bytes:
            raise LimitExceeded("max_read_bytes", f"more than {self.limits.max_read_bytes} bytes of HDF5 metadata",
                                pos)

    def cursor_at(self, addr: int | None, n: int, what: str) -> Cursor:
        """A cursor over ``n`` bytes read at relative address ``addr``."""
        return Cursor(self.read(addr, n, what), self.base + (addr or 0), self.osize, self.lsize)

    def cursor(self, data: bytes, origin: int) -> Cursor:
        """A cursor over bytes already read (a message body, a record) from file offset ``origin``."""
        return Cursor(data, origin, self.osize, self.lsize)

    def count_entries(self, n: int, addr: int | None) -> None:
        """Charge ``n`` index entries about to be scanned (at relative ``addr``) to the file-wide budget."""
        self.index_entries += max(n, 0)
        if self.index_entries > self.limits.max_index_entries:
            raise LimitExceeded("max_index_entries", f"more than {self.limits.max_index_entries} B-tree and heap "
                                "index entries", self.base + (addr or 0))

    # -- local heaps and version 1 group B-trees -------------------------------------------------
    def local_heap(self, addr: int | None) -> bytes:
        """The data segment of the local heap at ``addr`` (a symbol table's names)."""
        h = self.cursor_at(addr, 8 + 2 * self.lsize + self.osize, "local heap")
        h.expect(b"HEAP", "local heap")
        h.take(4)
        heap_size = h.length()
        h.length()  # free list
        if heap_size > self.limits.max_heap_bytes:
            raise LimitExceeded("max_heap_bytes", f"local heap of {heap_size} bytes", h.origin)
        return self.read(h.addr(), heap_size, "local heap data")

    def btree1_group_nodes(self, root: int | None) -> list[int]:
        """Addresses of the symbol table nodes under a version 1 group B-tree, each once."""
        out: list[int] = []
        leaves: set[int] = set()
        stack: list[tuple[int | None, int | None]] = [(root, None)]
        seen: set[int | None] = set()
        while stack:
            addr, level_expected = stack.pop()
            if addr in seen:
                raise FormatError("cycle in a group B-tree", self.base + (addr or 0))
            seen.add(addr)
            if len(seen) > self.limits.max_heap_blocks:
                raise LimitExceeded("max_heap_blocks", "group B-tree has too many nodes")
            b = self.cursor_at(addr, 8 + 2 * self.osize, "group B-tree node")
            b.expect(b"TREE", "group B-tree node")
            kind, level, entries = b.u8(), b.u8(), b.u16()
            b.take(2 * self.osize)  # siblings
            if kind != 0:
                raise FormatError("group B-tree node of another type", b.origin)
            if level_expected is not None and level != level_expected:
                raise FormatError("group B-tree levels are inconsistent", b.origin)
            self.count_entries(entries, addr)
            body = self.cursor_at((addr or 0) + b.pos, (entries + 1) * self.lsize + entries * self.osize,
                                  "group B-tree node")
            for _ in range(entries):
                body.length()  # key
                child = body.addr()
                if child is None:
                    raise FormatError("undefined child in a group B-tree", body.origin)
                if level == 0:
                    # One symbol table node listed twice would list its members twice: read it once.
                    if child not in leaves:
                        leaves.add(child)
                        out.append(child)
                else:
                    stack.append((child, level - 1))
        return out

    # -- global heap collections ---------------------------------------------------------------
    def global_heap_object(self, addr: int, index: int) -> bytes:
        """Object ``index`` of the global heap collection at ``addr`` (variable-length data)."""
        objects = self.global_heaps.get(addr)
        if objects is None:
            head = self.cursor_at(addr, 8 + self.lsize, "global heap collection")
            head.expect(b"GCOL", "global heap collection")
            head.take(4)  # version, reserved
            size = head.length()
            if size > self.limits.max_heap_bytes:
                raise LimitExceeded("max_heap_bytes", f"global heap collection of {size} bytes", head.origin)
            data = self.read(addr, size, "global heap collection")
            if size <= 64 * KiB:
                # Served from cached pages: charge each parse, or references hopping between collections
                # (each dropping the last from the collection cache) would parse them again and again for free.
                self.charge(size, self.base + addr)
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
                pos = start + pad8(obj_size)
                self.count_entries(1, addr)
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

    # -- version 2 B-trees ---------------------------------------------------------------------
    def btree2_records(self, addr: int | None, kind: int) -> list[bytes]:
        """Every record of a version 2 B-tree of type ``kind``, in no particular order."""
        if addr is None:
            return []
        h = self.cursor_at(addr, 16 + self.osize + 2 + self.lsize, "v2 B-tree header")
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
        nrec_size = enc_size(max_records[0])
        for d in range(1, depth + 1):
            pointer = self.osize + nrec_size + (cumulative_size[d - 1] if d > 1 else 0)
            max_records.append(max(0, (node_size - 10 - pointer) // (record_size + pointer)))
            cumulative.append((max_records[d] + 1) * cumulative[d - 1] + max_records[d])
            cumulative_size.append(enc_size(cumulative[d]))
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
            self.count_entries(2 * count + 1 if d else count, node)
            # Read what the records and child pointers take, not the whole (claimed) node size.
            pointers = (count + 1) * (self.osize + nrec_size + (cumulative_size[d - 1] if d > 1 else 0)) if d else 0
            b = self.cursor_at(node, 6 + count * record_size + pointers, "v2 B-tree node")
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


class FractalHeap:
    """The parts of a fractal heap needed to fetch objects by heap ID (unfiltered heaps only)."""

    def __init__(self, f: Storage, addr: int) -> None:
        self.f = f
        o, ln = f.osize, f.lsize
        b = f.cursor_at(addr, 4 + 1 + 2 + 2 + 1 + 4 + 12 * ln + 3 * o + 2 + 2 + 2 + 2 + 4, "fractal heap header")
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
            raise Unsupported("fractal heap with I/O filters")
        for value, what in ((self.width, "table width"), (self.start_block, "starting block size"),
                            (self.max_direct, "maximum direct block size")):
            if value <= 0 or value & (value - 1):
                raise FormatError(f"fractal heap {what} {value} is not a power of two", b.origin)
        if self.max_direct < self.start_block or not 0 < self.max_heap_bits <= 64:
            raise FormatError("implausible fractal heap geometry", b.origin)
        self.off_size = (self.max_heap_bits + 7) // 8
        self.len_size = min((log2(self.max_direct) + 7) // 8, enc_size(self.max_managed))
        self.max_direct_rows = log2(self.max_direct) - log2(self.start_block) + 2
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
                if not 0 <= rows <= 64:  # a child's rows derive from its row: a wide table can make them negative
                    raise FormatError(f"fractal heap indirect block of {rows} rows", f.base + addr)
                entries = rows * self.width
                if len(seen) + len(blocks) + entries > f.limits.max_heap_blocks:
                    raise LimitExceeded("max_heap_blocks", "fractal heap has too many blocks", f.base + addr)
                f.count_entries(entries, addr)
                b = f.cursor_at(addr, 5 + f.osize + self.off_size + entries * f.osize, "fractal heap indirect block")
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
                                child_rows = log2(size) - log2(self.start_block * self.width) + 1
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
            b = f.cursor(heap_id[1:], 0)
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
                b = f.cursor(heap_id[1:], 0)
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
            for record in f.btree2_records(self.huge_tree, BTREE2_HUGE_INDIRECT):
                b = f.cursor(record, 0)
                addr, length, ident = b.addr(), b.length(), b.length()
                if addr is not None:
                    self.huge[ident] = (addr, length)
        return self.huge


__all__ = ["BTREE2_ATTRIBUTE_NAME", "BTREE2_HUGE_INDIRECT", "BTREE2_LINK_NAME", "FILE_BUDGETS", "Cursor",
           "FractalHeap", "Hdf5Limits", "Storage", "Unsupported", "enc_size", "log2", "pad8"]
