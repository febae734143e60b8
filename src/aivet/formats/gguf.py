"""Bounded reader for GGUF files (llama.cpp): header, typed metadata and tensor infos.

Layout (little-endian; a byte-swapped file is big-endian throughout)::

    "GGUF" | u32 version | tensor_count | kv_count        (counts are u64; u32 in version 1)
    kv_count     x  (string key | u32 value type | value)
    tensor_count x  (string name | u32 n_dims | n_dims x dim | u32 ggml type | u64 offset)
    padding to general.alignment (default 32) | tensor data

Strings are a length (u64; u32 in version 1) followed by UTF-8 bytes. Arrays are
a u32 item type, a length and the items. Nothing is allocated from a claimed
size before the claim is checked against the file size and :class:`Limits`;
numeric arrays are skipped, not materialised; tensor data is never read here.
"""

from __future__ import annotations

import enum
import math
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

from aivet.formats import FormatError, LimitExceeded
from aivet.limits import Limits

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_TENSOR_NAME = 63  # GGML_MAX_NAME is 64 including the terminating NUL
ARRAY_SAMPLE = 8  # array items kept for reports
SAMPLE_CHARS = 200  # a sampled string array item is cut to this
_CHUNK = 64 * 1024
_DEADLINE_EVERY = 4096  # entries parsed between two looks at the clock


class ValueType(enum.IntEnum):
    """GGUF metadata value types (gguf_type)."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


_SCALAR_FORMATS: Mapping[ValueType, str] = {
    ValueType.UINT8: "B",
    ValueType.INT8: "b",
    ValueType.UINT16: "H",
    ValueType.INT16: "h",
    ValueType.UINT32: "I",
    ValueType.INT32: "i",
    ValueType.FLOAT32: "f",
    ValueType.BOOL: "B",  # a byte; 0 or 1 in a valid file
    ValueType.UINT64: "Q",
    ValueType.INT64: "q",
    ValueType.FLOAT64: "d",
}

# ggml tensor types: id -> (name, elements per block, bytes per block).
GGML_TYPES: Mapping[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}
# Ids that ggml once used and has since removed: current loaders reject them.
REMOVED_GGML_TYPES: Mapping[int, str] = {
    4: "Q4_2", 5: "Q4_3", 31: "Q4_0_4_4", 32: "Q4_0_4_8", 33: "Q4_0_8_8",
    36: "IQ4_NL_4_4", 37: "IQ4_NL_4_8", 38: "IQ4_NL_8_8",
}


@dataclass(frozen=True)
class ArrayValue:
    """An array value, summarised: its item type, length and the first few items."""

    item_type: ValueType
    count: int
    sample: tuple[object, ...]
    nested_depth: int = 0  # > 0 when items are themselves arrays


Scalar = int | float | bool | bytes
Value = Scalar | ArrayValue


@dataclass(frozen=True)
class KeyValue:
    """One metadata entry. String values stay ``bytes`` (see :meth:`text`); keys are decoded."""

    key: str  # decoded; invalid UTF-8 shown as backslash escapes
    raw_key: bytes
    type: ValueType
    value: Value
    offset: int  # where the entry (its key) starts
    value_offset: int  # where its value starts

    @property
    def c_key(self) -> str:
        """The key as llama.cpp looks it up: C string comparison stops at the first NUL byte.

        ``gguf_find_key`` compares with ``strcmp`` and returns the first match, while the
        duplicate check at load compares whole keys: ``tokenizer.chat_template\\0x`` is a
        distinct key that nevertheless answers lookups of ``tokenizer.chat_template``.
        """
        return self.key.split("\x00", 1)[0]

    def text(self) -> str | None:
        """The value as text for a string entry (invalid UTF-8 replaced), else ``None``."""
        if self.type is ValueType.STRING and isinstance(self.value, bytes):
            return self.value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's description; ``offset`` is relative to the start of the data section."""

    name: str
    raw_name: bytes
    dims: tuple[int, ...]
    ggml_type: int
    offset: int
    info_offset: int  # where this description starts in the file

    @property
    def elements(self) -> int:
        count = 1
        for d in self.dims:
            count *= d
        return count

    def nbytes(self) -> int | None:
        """Size of the tensor data, or ``None`` for an unknown type or a row not a whole block."""
        known = GGML_TYPES.get(self.ggml_type)
        if known is None or not self.dims:
            return None if known is None else known[2]
        _, block, size = known
        if self.dims[0] % block:
            return None
        return self.elements // block * size


@dataclass(frozen=True)
class GGUFFile:
    """The parsed header of a GGUF file."""

    version: int
    byte_order: str  # "<" little-endian, ">" big-endian
    metadata: tuple[KeyValue, ...]
    tensors: tuple[TensorInfo, ...]
    alignment: int  # the alignment actually used to place the data section
    data_start: int  # file offset of the tensor data section
    infos_end: int  # file offset just after the last tensor info
    size: int  # file size

    def get(self, key: str) -> KeyValue | None:
        """The entry llama.cpp reads for ``key``: the first whose key, up to any NUL byte, is ``key``."""
        for kv in self.metadata:
            if kv.c_key == key:
                return kv
        return None


class _Reader:
    """A forward reader over a stream with its own buffer, checking every claim first."""

    def __init__(self, fh: BinaryIO, size: int, max_bytes: int, order: str) -> None:
        self._fh = fh
        self.size = size
        self._max = max_bytes
        self.order = order
        self._buf = b""
        self._base = 0  # file offset of _buf[0]
        self._i = 0

    @property
    def pos(self) -> int:
        return self._base + self._i

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def _check(self, n: int, what: str) -> None:
        if n < 0 or n > self.remaining:
            raise FormatError(f"{what} needs {n} bytes but only {max(self.remaining, 0)} remain", self.pos)
        if self.pos + n > self._max:
            raise LimitExceeded("max_header_bytes",
                                f"GGUF header and metadata extend past {self._max} bytes", self.pos)

    def read(self, n: int, what: str = "value") -> bytes:
        self._check(n, what)
        end = self._i + n
        if end <= len(self._buf):
            out = self._buf[self._i:end]
            self._i = end
            return out
        rest = self._buf[self._i:]
        need = n - len(rest)
        chunk = self._fh.read(max(need, _CHUNK))
        if len(chunk) < need:
            raise FormatError(f"{what}: file ended early", self.pos + len(rest) + len(chunk))
        self._base = self.pos + len(rest)
        self._buf = chunk
        self._i = need
        return rest + chunk[:need]

    def skip(self, n: int, what: str) -> None:
        self._check(n, what)
        if self._i + n <= len(self._buf):
            self._i += n
            return
        target = self.pos + n
        self._fh.seek(target)
        self._base, self._buf, self._i = target, b"", 0

    def skip_strings(self, count: int, length_size: int, max_string: int) -> None:
        """Skip ``count`` length-prefixed strings (a vocabulary: 10^5 items) without slicing each."""
        code = self.order + ("I" if length_size == 4 else "Q")
        unpack_from = struct.unpack_from
        done = 0
        while done < count:
            buf, i, end = self._buf, self._i, len(self._buf)
            # Fast path: walk the strings that lie wholly inside the current buffer.
            while done < count and i + length_size <= end:
                (n,) = unpack_from(code, buf, i)
                if n > max_string or i + length_size + n > end:
                    break
                i += length_size + n
                done += 1
            self._i = i
            if self.pos > self._max:
                raise LimitExceeded("max_header_bytes",
                                    f"GGUF header and metadata extend past {self._max} bytes", self.pos)
            if done < count:  # a string crosses the buffer's end (or is hostile): the checked path
                at = self.pos
                n = int(self.unpack(code[1:], "array string length"))
                if n > self.remaining:
                    raise FormatError(f"array string claims {n} bytes, past the end of the file", at)
                if n > max_string:
                    raise LimitExceeded("max_string_bytes", f"array string of {n} bytes", at)
                self.skip(n, "array string")
                done += 1
                if self._i >= len(self._buf):
                    self._refill()

    def _refill(self) -> None:
        """Drop consumed bytes and read the next chunk (at EOF the buffer is simply left short)."""
        self._fh.seek(self.pos)
        self._base, self._i = self.pos, 0
        self._buf = self._fh.read(min(_CHUNK, max(self.size - self.pos, 0)))

    def unpack(self, fmt: str, what: str) -> int | float:
        code = self.order + fmt
        value: int | float = struct.unpack(code, self.read(struct.calcsize(code), what))[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.unpack("I", what))

    def u64(self, what: str) -> int:
        return int(self.unpack("Q", what))


class _Parser:
    def __init__(self, reader: _Reader, version: int, limits: Limits, deadline: float = math.inf) -> None:
        self.r = reader
        self.limits = limits
        self.v1 = version == 1  # version 1 used 32-bit lengths and counts
        self.count = reader.u32 if self.v1 else reader.u64
        self.deadline = deadline
        self.entries = 0  # entries parsed one by one: key/values, tensor infos, arrays inside arrays

    def tick(self) -> None:
        """Count one entry parsed in Python, against ``max_metadata_entries`` and the deadline.

        Per-array checks alone let arrays of arrays multiply: a million arrays of a million.
        """
        self.entries += 1
        if self.entries > self.limits.max_metadata_entries:
            raise LimitExceeded("max_metadata_entries", f"more than {self.limits.max_metadata_entries} "
                                "metadata entries, tensor infos and nested arrays", self.r.pos)
        if self.entries % _DEADLINE_EVERY == 0 and time.monotonic() > self.deadline:
            raise LimitExceeded("max_seconds_per_file", "GGUF header parsing ran out of time", self.r.pos)

    def string(self, what: str) -> bytes:
        start = self.r.pos
        n = self.count(f"{what} length")
        if n > self.r.remaining:
            raise FormatError(f"{what} claims {n} bytes, past the end of the file", start)
        if n > self.limits.max_string_bytes:
            raise LimitExceeded("max_string_bytes", f"{what} of {n} bytes", start)
        return self.r.read(n, what)

    def value_type(self, what: str) -> ValueType:
        at = self.r.pos
        raw = self.r.u32(what)
        try:
            return ValueType(raw)
        except ValueError:
            raise FormatError(f"{what}: unknown value type {raw}", at) from None

    def value(self, vtype: ValueType, depth: int) -> Value:
        if vtype is ValueType.STRING:
            return self.string("string value")
        if vtype is ValueType.ARRAY:
            return self.array(depth + 1)
        fmt = _SCALAR_FORMATS[vtype]
        raw = self.r.unpack(fmt, vtype.name.lower())
        return bool(raw) if vtype is ValueType.BOOL and raw in (0, 1) else raw

    def array(self, depth: int) -> ArrayValue:
        start = self.r.pos
        if depth > self.limits.max_metadata_depth:
            raise LimitExceeded("max_metadata_depth", f"GGUF arrays nested more than {depth - 1} deep", start)
        item_type = self.value_type("array item type")
        count = self.count("array length")
        length_size = 4 if self.v1 else 8
        if item_type is ValueType.ARRAY:
            min_item = 4 + length_size
        elif item_type is ValueType.STRING:
            min_item = length_size
        else:
            min_item = struct.calcsize(_SCALAR_FORMATS[item_type])
        if count * min_item > self.r.remaining:
            raise FormatError(f"array claims {count} items, more than the file can hold", start)
        # Numeric arrays are skipped in one step, so only max_header_bytes bounds them; strings are
        # walked without being kept (vocabularies and merge lists hold 10^5 of them).
        if item_type is ValueType.ARRAY and count > self.limits.max_metadata_entries:
            raise LimitExceeded("max_metadata_entries", f"array of {count} arrays", start)
        if item_type is ValueType.STRING and count > self.limits.max_array_strings:
            raise LimitExceeded("max_array_strings", f"array of {count} strings", start)
        if item_type in _SCALAR_FORMATS:
            size = struct.calcsize(_SCALAR_FORMATS[item_type])
            head = min(count, ARRAY_SAMPLE)
            sample: tuple[object, ...] = ()
            if head:
                sample = struct.unpack(f"{self.r.order}{head}{_SCALAR_FORMATS[item_type]}",
                                       self.r.read(head * size, "array items"))
            self.r.skip((count - head) * size, "array items")  # never materialised
            return ArrayValue(item_type, count, sample)
        items: list[object] = []
        nested = 0
        if item_type is ValueType.STRING:
            head = min(count, ARRAY_SAMPLE)
            for _ in range(head):
                items.append(self.string("array string")[:SAMPLE_CHARS].decode("utf-8", "replace"))
            self.r.skip_strings(count - head, 4 if self.v1 else 8, self.limits.max_string_bytes)
            return ArrayValue(item_type, count, tuple(items))
        for i in range(count):
            self.tick()
            inner = self.array(depth + 1)
            nested = max(nested, inner.nested_depth + 1)
            if i < ARRAY_SAMPLE:
                items.append(inner)
        return ArrayValue(item_type, count, tuple(items), nested)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def read_gguf(fh: BinaryIO, size: int, limits: Limits, deadline: float = math.inf) -> GGUFFile:
    """Parse the header, metadata and tensor infos of the GGUF file in ``fh`` (``size`` bytes).

    Raises :class:`FormatError` for malformed input and :class:`LimitExceeded`
    when a bound in ``limits`` is reached, or when ``time.monotonic()`` passes
    ``deadline``. Tensor data is not read.
    """
    head = fh.read(8)
    if len(head) < 8 or head[:4] != MAGIC:
        raise FormatError("not a GGUF file (bad magic or too short)", 0)
    order = "<"
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (1, 2, 3):
        (swapped,) = struct.unpack(">I", head[4:8])
        if swapped not in (2, 3):
            raise FormatError(f"unsupported GGUF version {version}", 4)
        order, version = ">", swapped
    reader = _Reader(fh, size, limits.max_header_bytes, order)
    reader.skip(8, "header")
    parser = _Parser(reader, version, limits, deadline)
    tensor_count = parser.count("tensor count")
    kv_count = parser.count("metadata count")
    # Smallest possible entries: length + type + a 1-byte value; length + n_dims + type + offset.
    # A count that cannot fit in the rest of the file is malformed, whatever the limits say.
    kv_least, info_least = (9, 20) if parser.v1 else (13, 24)
    for count, least, what in ((kv_count, kv_least, "metadata entries"), (tensor_count, info_least, "tensor infos")):
        if count * least > reader.remaining:
            raise FormatError(f"header claims {count} {what}, more than the file can hold", 8)
        if count > limits.max_metadata_entries:
            raise LimitExceeded("max_metadata_entries", f"header claims {count} {what}", 8)

    metadata: list[KeyValue] = []
    for _ in range(kv_count):
        parser.tick()
        at = reader.pos
        raw_key = parser.string("metadata key")
        vtype = parser.value_type(f"type of {_decode(raw_key)!r}")
        value_at = reader.pos
        value = parser.value(vtype, 0)
        metadata.append(KeyValue(_decode(raw_key), raw_key, vtype, value, at, value_at))

    tensors: list[TensorInfo] = []
    for _ in range(tensor_count):
        parser.tick()
        at = reader.pos
        raw_name = parser.string("tensor name")
        n_dims = reader.u32("tensor n_dims")
        if n_dims > MAX_DIMS:
            raise FormatError(f"tensor {_decode(raw_name)!r} has {n_dims} dimensions (at most {MAX_DIMS})", at)
        dims = tuple(parser.count("tensor dimension") for _ in range(n_dims))
        ggml_type = reader.u32("tensor type")
        offset = reader.u64("tensor offset")
        tensors.append(TensorInfo(_decode(raw_name), raw_name, dims, ggml_type, offset, at))

    infos_end = reader.pos
    alignment = DEFAULT_ALIGNMENT
    for kv in metadata:
        if kv.key == "general.alignment":
            if isinstance(kv.value, int) and not isinstance(kv.value, bool) and kv.value > 0 \
                    and kv.value & (kv.value - 1) == 0:
                alignment = kv.value
            break
    data_start = infos_end + (-infos_end % alignment)
    return GGUFFile(version, order, tuple(metadata), tuple(tensors), alignment, data_start, infos_end, size)
