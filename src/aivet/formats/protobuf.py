"""A small, bounded protobuf wire-format reader (no schema, no generated code, no copies).

ONNX models and TensorFlow SavedModels are protobuf messages. We read them
with this reader instead of the ``onnx``/``tensorflow`` packages so that a
hostile file is only ever *parsed*: every length is checked against the
enclosing message, nesting is capped by ``Limits.max_protobuf_depth``, groups
(deprecated wire types 3/4) are rejected, and large length-delimited fields
(tensor ``raw_data``, constant tensors) are skipped by offset arithmetic over a
``memoryview`` / ``mmap`` -- nothing is copied until a caller asks for a
field's bytes, and then at most ``Limits.max_string_bytes`` of it.
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS, Limits

VARINT = 0
I64 = 1
LEN = 2
SGROUP = 3
EGROUP = 4
I32 = 5

_MAX_FIELD_NUMBER = (1 << 29) - 1
DEADLINE_EVERY = 4096  # fields walked by validate() between two looks at the clock
Buffer = bytes | bytearray | memoryview | mmap.mmap


def read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return ``(value, next_pos)``. At most 10 bytes."""
    value = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise FormatError("truncated varint", start)
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise FormatError("varint longer than 10 bytes", start)


@dataclass(frozen=True)
class Field:
    """One field of a message. ``value`` is the integer for VARINT/I64/I32 and the length for LEN."""

    number: int
    wire_type: int
    value: int
    offset: int  # absolute offset of the field's tag
    start: int  # absolute offset of the payload (for LEN: first byte of the bytes)
    message: Message  # the message this field belongs to

    @property
    def end(self) -> int:
        return self.start + self.value if self.wire_type == LEN else self.start

    def bytes(self, limit: int | None = None) -> bytes:
        """Copy a LEN field's payload (refusing more than ``limit`` or ``max_string_bytes``)."""
        self._expect_len()
        cap = self.message.limits.max_string_bytes if limit is None else limit
        if self.value > cap:
            raise LimitExceeded("max_string_bytes", f"protobuf field {self.number} is {self.value} bytes",
                                self.offset)
        return bytes(self.message.buf[self.start:self.start + self.value])

    def text(self, limit: int | None = None) -> str:
        """A LEN field as text (invalid UTF-8 is replaced, never an error)."""
        return self.bytes(limit).decode("utf-8", "replace")

    def head_text(self, n: int = 4096) -> str:
        """The first ``n`` bytes of a LEN field as text: never raises for size, for names and labels.

        Callers use this for identifiers so that one huge name cannot stop the
        analysis of everything after it (an evasion), while the full value is
        still bounded.
        """
        self._expect_len()
        return bytes(self.message.buf[self.start:self.start + min(self.value, n)]).decode("utf-8", "replace")

    def submessage(self) -> Message:
        """The LEN field's payload as a nested message, one level deeper."""
        self._expect_len()
        depth = self.message.depth + 1
        if depth > self.message.limits.max_protobuf_depth:
            raise LimitExceeded("max_protobuf_depth", f"protobuf nesting deeper than {depth - 1}", self.offset)
        return Message(self.message.buf, self.start, self.start + self.value, self.message.limits, depth)

    def signed(self) -> int:
        """A VARINT read as a two's-complement int64 (protobuf ``int64``/``int32``)."""
        return self.value - (1 << 64) if self.value >= 1 << 63 else self.value

    def _expect_len(self) -> None:
        if self.wire_type != LEN:
            raise FormatError(f"protobuf field {self.number} has wire type {self.wire_type}, expected bytes",
                              self.offset)


class Message:
    """A view of ``buf[start:end]`` as a protobuf message; fields are decoded lazily on iteration."""

    __slots__ = ("buf", "start", "end", "limits", "depth")

    def __init__(self, buf: memoryview, start: int, end: int, limits: Limits = DEFAULT_LIMITS,
                 depth: int = 0) -> None:
        self.buf = buf
        self.start = start
        self.end = end
        self.limits = limits
        self.depth = depth

    @classmethod
    def parse(cls, data: Buffer, limits: Limits = DEFAULT_LIMITS) -> Message:
        """A top-level message over ``data`` (no copy)."""
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
        return cls(view, 0, len(view), limits, 0)

    def __iter__(self) -> Iterator[Field]:
        buf, pos, end = self.buf, self.start, self.end
        while pos < end:
            offset = pos
            key, pos = read_varint(buf, pos, end)
            number, wire = key >> 3, key & 7
            if number == 0 or number > _MAX_FIELD_NUMBER:
                raise FormatError(f"invalid protobuf field number {number}", offset)
            if wire == VARINT:
                value, pos = read_varint(buf, pos, end)
                yield Field(number, wire, value, offset, pos, self)
            elif wire == I64 or wire == I32:
                size = 8 if wire == I64 else 4
                if pos + size > end:
                    raise FormatError("truncated fixed-width protobuf field", offset)
                value = int.from_bytes(buf[pos:pos + size], "little")
                yield Field(number, wire, value, offset, pos + size, self)
                pos += size
            elif wire == LEN:
                length, pos = read_varint(buf, pos, end)
                if length > end - pos:
                    raise FormatError(f"protobuf field {number} claims {length} bytes, only {end - pos} left",
                                      offset)
                yield Field(number, wire, length, offset, pos, self)
                pos += length  # the payload is skipped, never copied
            elif wire in (SGROUP, EGROUP):
                raise FormatError("protobuf groups (wire types 3/4) are not used by model formats", offset)
            else:
                raise FormatError(f"invalid protobuf wire type {wire}", offset)

    def fields(self, *numbers: int) -> Iterator[Field]:
        """Fields whose number is in ``numbers`` (all fields when none are given)."""
        for f in self:
            if not numbers or f.number in numbers:
                yield f

    def validate(self, deadline: float | None = None) -> int:
        """Walk every field once so that framing errors surface as :class:`FormatError`; return the count.

        A memory-mapped file is not bounded by ``max_protobuf_bytes``, so with ``deadline`` (a
        ``time.monotonic()`` value) the walk raises :class:`LimitExceeded` for
        ``max_seconds_per_file`` once it has passed; the clock is read every
        :data:`DEADLINE_EVERY` fields.
        """
        count = 0
        for f in self:
            count += 1
            if deadline is not None and count % DEADLINE_EVERY == 0 and time.monotonic() > deadline:
                raise LimitExceeded("max_seconds_per_file",
                                    f"protobuf framing check ran out of time after {count} fields", f.offset)
        return count


@contextmanager
def open_message(opener: Callable[[], BinaryIO], size: int, fs_path: Path | None,
                 limits: Limits) -> Iterator[Message]:
    """Map a file (or read an in-memory member) and yield its top-level :class:`Message`.

    Files on disk are memory-mapped, so skipped weights cost nothing and no
    size cap is needed; other sources are read whole, which
    ``max_protobuf_bytes`` bounds.
    """
    if fs_path is not None and size > 0:
        with open(fs_path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                yield Message(view, 0, len(view), limits)
            finally:
                view.release()
        return
    if size > limits.max_protobuf_bytes:
        raise LimitExceeded("max_protobuf_bytes", f"protobuf member of {size} bytes is too large to read")
    with opener() as stream:
        data = stream.read(limits.max_protobuf_bytes + 1)
    if len(data) > limits.max_protobuf_bytes:
        raise LimitExceeded("max_protobuf_bytes", "protobuf member is too large to read")
    yield Message.parse(data, limits)


# Top-level field numbers and wire types of the messages we look for (see scan/protobuf.py).
_ONNX_MODEL = {1: VARINT, 2: LEN, 3: LEN, 4: LEN, 5: VARINT, 6: LEN, 7: LEN, 8: LEN, 14: LEN, 20: LEN,
               25: LEN, 26: LEN}
_SAVED_MODEL = {1: VARINT, 2: LEN}
_GRAPH_DEF = {1: LEN, 2: LEN, 3: VARINT, 4: LEN, 5: LEN}
# FingerprintDef (fingerprint.pb): five uint64 hashes and a VersionDef.
_FINGERPRINT = {1: VARINT, 2: VARINT, 3: VARINT, 4: VARINT, 5: VARINT, 6: LEN}


def plausible_message(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) plausibly starts an ONNX model or TF SavedModel/GraphDef.

    Conservative: every field in the head must be well framed, its number and
    wire type must belong to one of those top-level messages, and either two
    fields are complete or one is and the next runs past the head (the head is
    a prefix of a larger file). Nested messages that fit in the head must frame
    as messages too.
    """
    if len(head) < 2:
        return False
    view = memoryview(head)
    if any(_matches(view, schema) for schema in (_ONNX_MODEL, _SAVED_MODEL, _GRAPH_DEF)):
        return True
    # A fingerprint is tiny and all varints: demand the whole head frame with at least 3 fields.
    return len(head) < 256 and _matches(view, _FINGERPRINT, min_complete=3)


_NESTED = {id(_ONNX_MODEL): (7, 8, 14), id(_SAVED_MODEL): (2,), id(_GRAPH_DEF): (1, 2, 4), id(_FINGERPRINT): (6,)}


def _matches(view: memoryview, schema: dict[int, int], min_complete: int = 1) -> bool:
    # ``structural``: a field that must hold a nested message did (or runs past the head), so a
    # couple of lucky varint bytes are never enough for the message kinds with nested fields.
    pos, end, complete, structural = 0, len(view), 0, schema is _FINGERPRINT
    nested = _NESTED[id(schema)]
    try:
        while pos < end:
            key, pos = read_varint(view, pos, end)
            number, wire = key >> 3, key & 7
            if schema.get(number) != wire:
                return False
            if wire == VARINT:
                _, pos = read_varint(view, pos, end)
            else:
                length, pos = read_varint(view, pos, end)
                if length > end - pos:
                    return complete >= 1 and min_complete == 1 and (structural or number in nested)
                if number in nested:
                    if not _frames(view, pos, pos + length):
                        return False
                    structural = True
                pos += length
            complete += 1
    except FormatError:
        return complete >= 2 and min_complete == 1 and structural
    return complete >= min_complete and structural  # the head was consumed exactly: a whole small message


def _frames(view: memoryview, start: int, end: int) -> bool:
    """Whether ``view[start:end]`` is a non-empty, well-framed message."""
    if start == end:
        return False
    try:
        for _ in Message(view, start, end):
            pass
    except FormatError:
        return False
    return True
