"""Bounded reader for safetensors headers. Tensor data is never read.

Layout: ``u64 little-endian N`` | ``N bytes of UTF-8 JSON`` (may end in spaces, for
alignment) | the data buffer. The JSON maps tensor names to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the
buffer) and may hold a ``__metadata__`` map of strings.

The reader checks the claimed header length against the file size *before*
reading, so a header that claims 100 GB allocates nothing. It keeps every
key/value pair in order, duplicates included, because loaders disagree about
which of two duplicate keys wins.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from aivet.formats import FormatError, LimitExceeded
from aivet.limits import Limits

METADATA_KEY = "__metadata__"

# dtype -> bits per element, as the safetensors reference implementation (0.8) knows them.
DTYPE_BITS: Mapping[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}


@dataclass(frozen=True)
class RawHeader:
    """The decoded header: top-level pairs in file order plus what the decoder noticed."""

    header_len: int
    file_size: int
    pairs: tuple[tuple[str, Any], ...]  # top-level (key, value), duplicates kept
    duplicates: tuple[str, ...]  # keys seen twice in any object (JSON pointers of the object)
    padding: int  # trailing spaces after the JSON text
    leading: int = 0  # JSON whitespace before the '{' (the specification forbids it; the loader skips it)

    @property
    def data_start(self) -> int:
        return 8 + self.header_len

    @property
    def buffer_size(self) -> int:
        return self.file_size - self.data_start


@dataclass(frozen=True)
class TensorSpec:
    """One valid-looking tensor entry. ``begin``/``end`` are relative to the data buffer."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        """Number of elements (the product of the shape; 1 for a scalar)."""
        numel = 1
        for d in self.shape:
            numel *= d
        return numel

    def expected_bytes(self) -> int | None:
        """``numel * itemsize`` in bytes, or ``None`` for an unknown dtype or a partial byte."""
        bits = DTYPE_BITS.get(self.dtype)
        if bits is None:
            return None
        total = self.numel * bits
        return None if total % 8 else total // 8


# What json.loads allocates, at most, per container (its first value included) and per further
# value, one per comma (measured on CPython 3.11 with the hooks used here: an empty object in a
# list ~200 bytes, a short string ~64).
JSON_CONTAINER_COST = 256
JSON_VALUE_COST = 64
# Limits.max_json_cost bounds the memory a decoded header may take. A header of 100 MB of "{},"
# would otherwise take 16 GB; real headers (thousands of tensors) estimate below 10 MB.


def json_cost(text: str | bytes) -> int:
    """An upper estimate of the bytes :func:`json.loads` allocates to decode ``text``.

    Counts brackets and commas in C (inside strings too, which only over-estimates), so
    a hostile document is refused before a single object is built.
    """
    if isinstance(text, bytes):
        containers = text.count(b"{") + text.count(b"[")
        values = text.count(b",")
    else:
        containers = text.count("{") + text.count("[")
        values = text.count(",")
    return containers * JSON_CONTAINER_COST + values * JSON_VALUE_COST


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def read_header(fh: BinaryIO, size: int, limits: Limits) -> RawHeader:
    """Read and decode the header of the safetensors file in ``fh`` (``size`` bytes long).

    Raises :class:`FormatError` when the length prefix or the JSON is invalid and
    :class:`LimitExceeded` when the header is larger than ``limits.max_header_bytes`` or would
    take more than ``limits.max_json_cost`` to decode.
    """
    prefix = fh.read(8)
    if len(prefix) < 8:
        raise FormatError("file too short for a safetensors header length", 0)
    (n,) = struct.unpack("<Q", prefix)
    if n > size - 8:
        raise FormatError(f"header claims {n} bytes but the file holds only {max(size - 8, 0)} after the length", 0)
    if n > limits.max_header_bytes:
        raise LimitExceeded("max_header_bytes", f"safetensors header of {n} bytes", 0)
    raw = fh.read(n)
    if len(raw) < n:
        raise FormatError("file ended inside the header", 8 + len(raw))
    # serde_json, in the reference loader, skips JSON whitespace before the object: so do we, and
    # the analyzer reports it (the specification says the header starts with '{').
    leading = len(raw) - len(raw.lstrip(b" \t\n\r"))
    if not raw[leading:].startswith(b"{"):
        raise FormatError("header does not start with '{'", 8 + leading)
    cost = json_cost(raw)
    if cost > limits.max_json_cost:
        raise LimitExceeded("max_json_cost", f"safetensors header would take about {cost >> 20} MiB to "
                            f"decode (more than {limits.max_json_cost >> 20} MiB)", 8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"header is not UTF-8: {exc.reason}", 8 + exc.start) from None
    stripped = text.rstrip(" ")
    duplicates: list[str] = []

    def pairs_hook(items: list[tuple[str, Any]]) -> dict[str, Any] | _Pairs:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                duplicates.append(key)
            seen.add(key)
        return _Pairs(items)

    try:
        decoded = json.loads(stripped, object_pairs_hook=pairs_hook, parse_constant=_reject_constant)
    except RecursionError:
        raise LimitExceeded("max_header_bytes", "header JSON nested too deeply to decode", 8) from None
    except ValueError as exc:  # JSONDecodeError, huge integers, NaN/Infinity
        pos = getattr(exc, "pos", None)
        raise FormatError(f"header is not valid JSON: {exc}", 8 + pos if isinstance(pos, int) else 8) from None
    if not isinstance(decoded, _Pairs):
        raise FormatError("header JSON is not an object", 8)
    return RawHeader(n, size, tuple(decoded.items_list), tuple(duplicates), len(text) - len(stripped), leading)


class _Pairs(dict[str, Any]):
    """A JSON object that also remembers every pair in order (duplicates included)."""

    __slots__ = ("items_list",)  # no per-object __dict__: a header may hold a million objects

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        super().__init__(items)
        self.items_list = items


def parse_tensor(name: str, value: Any) -> TensorSpec | str:
    """Check one tensor entry's structure; return a :class:`TensorSpec` or a description of the problem.

    The dtype is not checked against :data:`DTYPE_BITS` here (an unknown dtype
    is its own finding); everything else must be well-formed.
    """
    if not isinstance(value, dict):
        return f"entry is a JSON {json_type(value)}, not an object"
    keys = set(value)
    missing = {"dtype", "shape", "data_offsets"} - keys
    if missing:
        return f"missing field(s) {', '.join(sorted(missing))}"
    extra = keys - {"dtype", "shape", "data_offsets"}
    if extra:
        return f"unexpected field(s) {', '.join(sorted(extra))}"
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(dtype, str):
        return "dtype is not a string"
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        return "shape is not a list of non-negative integers"
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_uint(o) for o in offsets):
        return "data_offsets is not [begin, end] with non-negative integers"
    begin, end = offsets
    if begin > end:
        return f"data_offsets begin {begin} is after end {end}"
    return TensorSpec(name, dtype, tuple(shape), begin, end)


def tensors(header: RawHeader) -> Iterator[TensorSpec]:
    """Every tensor entry of ``header`` in file order, for readers that need a well-formed file.

    A malformed entry raises :class:`~aivet.formats.FormatError` (the scan
    analyzer reports each problem as a finding instead, with :func:`parse_tensor`).
    """
    for name, value in header.pairs:
        if name == METADATA_KEY:
            continue
        spec = parse_tensor(name, value)
        if isinstance(spec, str):
            raise FormatError(f"tensor {name!r}: {spec}", 8)
        yield spec


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "number"
