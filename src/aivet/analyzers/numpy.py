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
import io
import re
import struct
import tokenize
from typing import Any, BinaryIO

from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS
from aivet.rules import ATLAS_EVADE, ATLAS_UNSAFE_ARTIFACTS, LIMIT_EXCEEDED, PARSE_ERROR, Rule

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
# One-character type codes (numpy's, for a 64-bit platform) and their sizes in bytes.
_CHAR_SIZES = {"?": 1, "b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": 8, "L": 8, "q": 8, "Q": 8, "p": 8,
               "P": 8, "n": 8, "N": 8, "e": 2, "f": 4, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32, "S": 0, "a": 0,
               "U": 0, "V": 0, "c": 1, "M": 8, "m": 8}
# Type names np.dtype() accepts as well; those holding Python objects are checked first.
_NAMED_SIZES = {"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8,
                "uint64": 8, "intp": 8, "uintp": 8, "float16": 2, "float32": 4, "float64": 8, "float128": 16,
                "longdouble": 16, "complex64": 8, "complex128": 16, "complex256": 32, "int": 8, "float": 8,
                "complex": 16, "str": 0, "bytes": 0, "void": 0, "byte": 1, "ubyte": 1, "short": 2, "ushort": 2,
                "intc": 4, "uintc": 4, "long": 8, "ulong": 8, "longlong": 8, "ulonglong": 8, "half": 2,
                "single": 4, "double": 8, "datetime64": 8, "timedelta64": 8}
_OBJECT_CODE = re.compile(r"^(O[48]?|object_?|T|StringDType\(\))$")  # 'T' (StringDType) is pickled like 'O'
_REPEAT = re.compile(r"^\s*(\(\s*[0-9]*(?:\s*,\s*[0-9]+)*\s*,?\s*\)|[0-9]+)\s*")
_DIGITS = re.compile(r"[0-9]{1,18}")
_MAX_DIMS = 64
# The header is parsed with ast.literal_eval, whose syntax tree holds about a kilobyte per
# token at its peak: a 4 MB header of "0," took 2 GB. numpy writes headers under 10,000 bytes
# and refuses larger ones unless allow_pickle is set; Limits.max_npy_header_bytes bounds it.


def _read_header_text(fh: BinaryIO, max_header: int, max_literal: int) -> tuple[str, int, int]:
    """Read the magic, version and header length; return (header text, major version, data offset).

    A header longer than ``max_literal`` raises :class:`_HeaderTooLarge`, which carries the data
    offset: numpy reads such headers when pickles are allowed, so the caller still looks at the data.
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
        raise _HeaderTooLarge(start + hlen, f".npy header of {hlen} bytes is too large to parse "
                              "(numpy itself refuses more than 10,000 unless trusted)")
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
    except UnicodeDecodeError as exc:
        raise _Unreadable(start + hlen, f".npy header is not valid text: {exc}", start) from None
    return text, major, start + hlen


class _HeaderTooLarge(LimitExceeded):
    """The header is longer than max_npy_header_bytes; ``data_offset`` is where the array starts."""

    def __init__(self, data_offset: int, message: str) -> None:
        super().__init__("max_npy_header_bytes", message, 8)
        self.data_offset = data_offset


class _Unreadable(FormatError):
    """The header cannot be interpreted; ``data_offset`` is where the array starts."""

    def __init__(self, data_offset: int, message: str, offset: int | None) -> None:
        super().__init__(message, offset)
        self.data_offset = data_offset


def _literal(text: str, major: int, start: int, data_offset: int) -> Any:
    if len(text) > 10_000 and text.count("(") + text.count("[") > 1_000:
        raise _Unreadable(data_offset, ".npy header nests too deeply", start)
    try:
        return ast.literal_eval(text.strip())
    except SyntaxError:
        if major > 2:
            raise _Unreadable(data_offset, ".npy header is not a Python literal: SyntaxError", start) from None
    except (ValueError, MemoryError, RecursionError, TypeError) as exc:
        raise _Unreadable(data_offset, f".npy header is not a Python literal: {type(exc).__name__}", start) from None
    # numpy retries version 1 and 2 headers without Python 2 long suffixes ("(3L,)"): so do we.
    try:
        return ast.literal_eval(_drop_long_suffixes(text).strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError, tokenize.TokenError) as exc:
        raise _Unreadable(data_offset, f".npy header is not a Python literal: {type(exc).__name__}", start) from None


def _drop_long_suffixes(text: str) -> str:
    """``text`` without the ``L`` that Python 2 wrote after integers (as numpy filters old headers)."""
    out: list[tokenize.TokenInfo] = []
    after_number = False
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if not (after_number and token.type == tokenize.NAME and token.string == "L"):
            out.append(token)
        after_number = token.type == tokenize.NUMBER
    return str(tokenize.untokenize(out))


def _read_header(fh: BinaryIO, max_header: int, max_literal: int) -> tuple[dict[str, Any], int]:
    """The header dict as numpy accepts it (shape: a tuple of ints, any sign) and the data offset."""
    text, major, data_offset = _read_header_text(fh, max_header, max_literal)
    start = 10 if major == 1 else 12
    header = _literal(text, major, start, data_offset)
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise _Unreadable(data_offset, ".npy header must be a dict with exactly descr, fortran_order and shape",
                          start)
    if not isinstance(header["fortran_order"], bool):
        raise _Unreadable(data_offset, ".npy fortran_order must be a bool", start)
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        raise _Unreadable(data_offset, ".npy shape must be a tuple of ints", start)
    return header, data_offset


def parse_header(fh: BinaryIO, max_header: int,
                 max_literal: int = DEFAULT_LIMITS.max_npy_header_bytes) -> tuple[dict[str, Any], int]:
    """Read and validate a ``.npy`` header; return (header dict, offset of the array data).

    ``max_header`` bounds the header length read (``max_header_bytes``); ``max_literal`` the
    length parsed as a Python literal (``max_npy_header_bytes``). The shape must be at most 64
    non-negative ints (numpy itself ignores the shape of an object array: see :func:`analyze`).
    """
    header, data_offset = _read_header(fh, max_header, max_literal)
    shape = header["shape"]
    if len(shape) > _MAX_DIMS or not all(not isinstance(d, bool) and d >= 0 for d in shape):
        raise FormatError(".npy shape must be a tuple of non-negative ints", 8)
    return header, data_offset


def itemsize(descr: Any, depth: int = 0) -> tuple[int, bool]:
    """Bytes per element of a ``descr`` and whether it contains Python objects.

    Follows numpy's ``descr_to_dtype``: a string is a dtype string (``'<f4'``, ``'i4,O'``,
    ``'(2,)O'``), a tuple is ``(base, shape)``, and anything else is iterated as fields
    of two or three items (a list of tuples, but also a dict's keys or a set: ``{'xO'}`` is a field
    ``x`` holding objects). Unknown descriptions raise :class:`FormatError`.
    """
    if depth > 16:
        raise FormatError(".npy dtype nests too deeply", None)
    if isinstance(descr, str):
        return _string_itemsize(descr)
    if isinstance(descr, tuple) and len(descr) == 2:
        # numpy's descr_to_dtype reads (base, shape) as a sub-array dtype
        size, obj = itemsize(descr[0], depth + 1)
        return size * _count(descr[1] if isinstance(descr[1], tuple) else (descr[1],)), obj
    if isinstance(descr, (list, dict, set, frozenset)):
        total, has_object = 0, False
        for field in list(descr)[:4096]:
            items = list(field) if isinstance(field, (tuple, list, str, dict)) and len(field) <= 3 else None
            if items is None or len(items) not in (2, 3):
                raise FormatError("malformed structured .npy dtype", None)
            size, obj = itemsize(items[1], depth + 1)
            if len(items) == 3:
                size *= _count(items[2] if isinstance(items[2], tuple) else (items[2],))
            total += size
            has_object = has_object or obj
        return total, has_object
    raise FormatError(f"unsupported .npy dtype {str(descr)[:100]!r}", None)


def _count(shape: tuple[Any, ...]) -> int:
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise FormatError("malformed sub-array shape in .npy dtype", None)
    n = 1
    for d in shape:
        n *= d
    return n


def _string_itemsize(descr: str) -> tuple[int, bool]:
    """A numpy dtype string: comma-separated fields, each with an optional ``(2,3)`` or ``2`` repeat."""
    if len(descr) > 4096:
        raise FormatError(".npy dtype string too long", None)
    parts = _split_fields(descr)
    total, has_object = 0, False
    for part in parts:
        m = _REPEAT.match(part)
        repeat = 1
        if m is not None and m.end() < len(part):
            numbers = [int(n) for n in re.findall(r"[0-9]+", m.group(1))]
            repeat = _count(tuple(numbers))
            part = part[m.end():]
        size, obj = _code_itemsize(part.strip())
        total += size * repeat
        has_object = has_object or obj
    return total, has_object


def _split_fields(descr: str) -> list[str]:
    """Split at commas outside parentheses; a trailing comma (``'O,'``) makes a one-field record."""
    parts, depth, current = [], 0, ""
    for ch in descr:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip() or not parts:
        parts.append(current)
    return parts


def _code_itemsize(code: str) -> tuple[int, bool]:
    bare = code.lstrip("<>|=!")
    if _OBJECT_CODE.match(bare):
        return 8, True
    if bare in ("?", "b1"):
        return 1, False
    if bare in _NAMED_SIZES:
        return _NAMED_SIZES[bare], False
    unit = bare.split("[", 1)[0]
    if unit in _CHAR_SIZES:
        return _CHAR_SIZES[unit], False
    kind, digits = unit[:1], unit[1:]
    if kind in _KINDS_WITH_SIZE and _DIGITS.fullmatch(digits):
        return int(digits) * _KINDS_WITH_SIZE[kind], False
    raise FormatError(f"unsupported .npy dtype {code[:100]!r}", None)


def analyze(source: Source, ctx: Context) -> Outcome:
    """Analyze a ``.npy`` file: validate the header, check the size, emulate object-array pickles.

    Fails closed on a header aivet cannot interpret (an unknown dtype string, an oversized or
    Python-2 header): numpy may still read it, and when its dtype holds objects numpy unpickles the
    data whatever the shape says. So when the data then starts like a pickle it is emulated anyway.
    """
    try:
        with source.open() as fh:
            header, data_offset = _read_header(fh, ctx.limits.max_header_bytes, ctx.limits.max_npy_header_bytes)
        size, has_object = itemsize(header["descr"])
    except (_Unreadable, _HeaderTooLarge) as exc:
        return _unreadable(source, ctx, exc, exc.data_offset)
    except FormatError as exc:  # the header read, the dtype not
        return _unreadable(source, ctx, exc, data_offset)
    if has_object:
        # numpy's read_array runs pickle.load on the data of any dtype with objects; it never
        # looks at the shape, so a negative or absurd shape hides nothing.
        ctx.add(OBJECT_ARRAY.finding(
            ctx.location(source, offset=data_offset),
            f"array of Python objects (dtype {str(header['descr'])[:200]!r}): its data is a pickle",
            descr=str(header["descr"])[:200], shape=list(header["shape"])[:_MAX_DIMS]))
        outcome = _emulate(source, ctx, data_offset)
        return Outcome(FORMAT, outcome.status, "object array; " + outcome.note)
    shape = header["shape"]
    if len(shape) > _MAX_DIMS or not all(not isinstance(d, bool) and d >= 0 for d in shape):
        raise FormatError(".npy shape must be a tuple of non-negative ints", 8)
    count = 1
    for d in shape:
        count *= d
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


def _emulate(source: Source, ctx: Context, data_offset: int) -> Outcome:
    from aivet.analyzers.pickle import analyze_pickle

    def opener() -> BinaryIO:
        fh = source.open()
        fh.seek(data_offset)
        return fh

    payload = Source(source.path, max(source.size - data_offset, 0), opener, None, source.depth)
    return analyze_pickle(payload, ctx, ecosystem="numpy", format_name=FORMAT)


def _unreadable(source: Source, ctx: Context, exc: FormatError | LimitExceeded, data_offset: int) -> Outcome:
    """Report a header aivet cannot interpret; emulate the data when it starts like a pickle."""
    if isinstance(exc, LimitExceeded):
        ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source, offset=exc.offset), str(exc), limit=exc.limit))
    else:
        ctx.add(PARSE_ERROR.finding(ctx.location(source, offset=exc.offset), f".npy header: {exc}", format=FORMAT))
    with source.open() as fh:
        fh.seek(data_offset)
        head = fh.read(2)
    if not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
        # As the engine reports them: a bound hit leaves the file partial, a parse error is an error.
        status = ArtifactStatus.PARTIAL if isinstance(exc, LimitExceeded) else ArtifactStatus.ERROR
        return Outcome(FORMAT, status, "header not interpreted")
    ctx.add(OBJECT_ARRAY.finding(
        ctx.location(source, offset=data_offset),
        "the header could not be interpreted and the data is a pickle: numpy unpickles it when the dtype holds "
        "objects and the caller allows pickles", descr="unknown"))
    outcome = _emulate(source, ctx, data_offset)
    return Outcome(FORMAT, ArtifactStatus.PARTIAL, "header not interpreted; pickle data emulated; " + outcome.note)
