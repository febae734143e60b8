"""Analyzer for NumPy ``.npy`` files: header checks, and the pickle inside object arrays.

A ``.npy`` file is a magic string, a version, a header length and a Python dict
literal (``{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}``), then
the raw array bytes. The header is parsed with :func:`ast.literal_eval`, a
literal parser that evaluates nothing, on at most ``Limits.max_header_bytes``.
When the dtype holds Python objects (``'O'``, also inside structured dtypes)
the data is a pickle, which numpy would run on load when pickles are allowed; it is
emulated with :func:`aivet.analyzers.pickle.analyze_pickle`.
"""

from __future__ import annotations

import ast
import struct
from typing import Any, BinaryIO

from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS
from aivet.rules import ATLAS_EVADE, ATLAS_UNSAFE_ARTIFACTS, Rule

MAGIC = b"\x93NUMPY"
FORMAT = "numpy"

OBJECT_ARRAY = Rule(
    "NUMPY-OBJECT-ARRAY",
    "NumPy array of Python objects (a pickle)",
    "The array's dtype holds Python objects, so its data is a pickle that np.load runs when "
    "allow_pickle=True. The pickle was emulated and its globals are reported separately; model "  # safe-load: rule text
    "weights never need object arrays.",
    Severity.MEDIUM,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-502",),
)
SIZE_MISMATCH = Rule(
    "NUMPY-SIZE-MISMATCH",
    "NumPy file size does not match its header",
    "The header's shape and dtype imply a data size that differs from the bytes in the file: the "
    "file is truncated, or extra bytes are hidden after the array where loaders do not look.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-20",),
)

RULES = (OBJECT_ARRAY, SIZE_MISMATCH)

_KINDS_WITH_SIZE = {"b": 1, "i": 1, "u": 1, "f": 1, "c": 1, "m": 1, "M": 1, "S": 1, "a": 1, "V": 1, "U": 4}
_MAX_DIMS = 64
# The header is parsed with ast.literal_eval, whose syntax tree holds about a kilobyte per
# token at its peak: a 4 MB header of "0," took 2 GB. numpy writes headers under 10,000 bytes
# and refuses larger ones unless allow_pickle is set; Limits.max_npy_header_bytes bounds it.


def parse_header(fh: BinaryIO, max_header: int,
                 max_literal: int = DEFAULT_LIMITS.max_npy_header_bytes) -> tuple[dict[str, Any], int]:
    """Read and validate a ``.npy`` header; return (header dict, offset of the array data).

    ``max_header`` bounds the header length read (``max_header_bytes``); ``max_literal`` the
    length parsed as a Python literal (``max_npy_header_bytes``).
    """
    pre = fh.read(10)
    if len(pre) < 10 or not pre.startswith(MAGIC):
        raise FormatError("not a .npy file (bad magic)", 0)
    major, minor = pre[6], pre[7]
    if major not in (1, 2, 3) or minor != 0:
        raise FormatError(f"unsupported .npy version {major}.{minor}", 6)
    if major == 1:
        (hlen,) = struct.unpack("<H", pre[8:10])
        start = 10
    else:
        more = fh.read(2)
        if len(more) < 2:
            raise FormatError("truncated .npy header length", 8)
        (hlen,) = struct.unpack("<I", pre[8:10] + more)
        start = 12
    if hlen > max_header:
        raise LimitExceeded("max_header_bytes", f".npy header of {hlen} bytes", 8)
    raw = fh.read(min(hlen, max_literal + 1))
    if len(raw) < min(hlen, max_literal + 1):
        raise FormatError(".npy header runs past the end of the file", start)
    if hlen > max_literal:
        raise LimitExceeded("max_npy_header_bytes", f".npy header of {hlen} bytes is too large to parse "
                            f"(numpy itself refuses more than 10,000 unless trusted)", 8)
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
    except UnicodeDecodeError as exc:
        raise FormatError(f".npy header is not valid text: {exc}", start) from None
    if len(text) > 10_000 and text.count("(") + text.count("[") > 1_000:
        raise FormatError(".npy header nests too deeply", start)
    try:
        header = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as exc:
        raise FormatError(f".npy header is not a Python literal: {type(exc).__name__}", start) from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise FormatError(".npy header must be a dict with exactly descr, fortran_order and shape", start)
    if not isinstance(header["fortran_order"], bool):
        raise FormatError(".npy fortran_order must be a bool", start)
    shape = header["shape"]
    if not isinstance(shape, tuple) or len(shape) > _MAX_DIMS or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise FormatError(".npy shape must be a tuple of non-negative ints", start)
    return header, start + hlen


def itemsize(descr: Any, depth: int = 0) -> tuple[int, bool]:
    """Bytes per element of a ``descr`` and whether it contains Python objects."""
    if depth > 16:
        raise FormatError(".npy dtype nests too deeply", None)
    if isinstance(descr, str):
        code = descr.lstrip("<>|=")
        if code.startswith("O") or code in ("object", "object_"):  # np.dtype('object') holds objects too
            return 8, True
        if code in ("?", "b1"):
            return 1, False
        unit = code.split("[", 1)[0]
        kind, digits = unit[:1], unit[1:]
        if kind in _KINDS_WITH_SIZE and digits.isdigit():
            return int(digits) * _KINDS_WITH_SIZE[kind], False
        raise FormatError(f"unsupported .npy dtype {descr!r}", None)
    if isinstance(descr, list):
        total, has_object = 0, False
        for field in descr:
            if not isinstance(field, tuple) or len(field) not in (2, 3):
                raise FormatError("malformed structured .npy dtype", None)
            size, obj = itemsize(field[1], depth + 1)
            if len(field) == 3:
                sub = field[2]
                if not isinstance(sub, tuple) or not all(isinstance(d, int) and d >= 0 for d in sub):
                    raise FormatError("malformed sub-array shape in .npy dtype", None)
                for d in sub:
                    size *= d
            total += size
            has_object = has_object or obj
        return total, has_object
    if isinstance(descr, tuple) and len(descr) == 2:
        # numpy's descr_to_dtype reads (base, shape) as a sub-array dtype
        size, obj = itemsize(descr[0], depth + 1)
        sub = descr[1] if isinstance(descr[1], tuple) else (descr[1],)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in sub):
            raise FormatError("malformed sub-array shape in .npy dtype", None)
        for d in sub:
            size *= d
        return size, obj
    raise FormatError(f"unsupported .npy dtype {descr!r}", None)


def analyze(source: Source, ctx: Context) -> Outcome:
    """Analyze a ``.npy`` file: validate the header, check the size, emulate object-array pickles."""
    with source.open() as fh:
        header, data_offset = parse_header(fh, ctx.limits.max_header_bytes, ctx.limits.max_npy_header_bytes)
    size, has_object = itemsize(header["descr"])
    count = 1
    for d in header["shape"]:
        count *= d
    if has_object:
        ctx.add(OBJECT_ARRAY.finding(
            ctx.location(source, offset=data_offset),
            f"array of Python objects (dtype {header['descr']!r}): its data is a pickle",
            descr=str(header["descr"]), shape=list(header["shape"])))
        from aivet.analyzers.pickle import analyze_pickle

        def opener() -> BinaryIO:
            fh = source.open()
            fh.seek(data_offset)
            return fh

        payload = Source(source.path, source.size - data_offset, opener, None, source.depth)
        outcome = analyze_pickle(payload, ctx, ecosystem="numpy", format_name=FORMAT)
        return Outcome(FORMAT, outcome.status, "object array; " + outcome.note)
    expected = data_offset + count * size
    if expected != source.size:
        what = "truncated" if source.size < expected else f"{source.size - expected} bytes after the array"
        ctx.add(SIZE_MISMATCH.finding(
            ctx.location(source, offset=min(expected, source.size)),
            f"header implies {expected} bytes but the file has {source.size} ({what})",
            expected=expected, actual=source.size))
        if source.size < expected:
            return Outcome(FORMAT, ArtifactStatus.ERROR, "truncated array data")
    return Outcome(FORMAT, ArtifactStatus.ANALYZED, f"dtype {header['descr']!r}, shape {header['shape']}")
