"""Bounded decoders for payloads found in Python source, and cheap size estimates of source.

Everything here works on untrusted text or bytes with an explicit output limit
(decompression stops one byte past it), never builds more than it is allowed to,
and never runs a codec whose cost grows with the square of its input.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import codecs
import lzma
import re
import warnings
import zlib

# Pure-Python codecs whose cost grows with the square of the input: a hostile literal (or coding
# cookie) would stall the scan for hours, so nothing is encoded or decoded with them.
_SLOW_CODECS = frozenset({"punycode", "idna"})


def bounded_decompress(kind: str, data: bytes, limit: int) -> bytes:
    """``data`` decompressed by ``kind`` (zlib, gzip, bz2, lzma); ValueError past ``limit`` bytes."""
    if kind == "zlib":
        return bounded_zlib(data, limit)
    if kind == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(data, limit + 1)
    elif kind == "bz2":
        out = bz2.BZ2Decompressor().decompress(data, limit + 1)
    else:
        out = lzma.LZMADecompressor().decompress(data, limit + 1)
    if len(out) > limit:
        raise ValueError("decompressed payload over the limit")
    return out


def bounded_zlib(data: bytes, limit: int) -> bytes:
    """``data`` inflated by zlib; ValueError past ``limit`` bytes."""
    out = zlib.decompressobj().decompress(data, limit + 1)
    if len(out) > limit:
        raise ValueError("decompressed payload over the limit")
    return out


def decode_blob(text: str, kind: str, limit: int) -> str | None:
    """Decode a long hex/base64 literal (and a zlib layer inside it) to text, if it is text."""
    compact = "".join(text.split())
    try:
        raw = bytes.fromhex(compact) if kind == "hex" else base64.b64decode(compact + "=" * (-len(compact) % 4))
        if raw[:1] == b"\x78":
            try:
                raw = bounded_zlib(raw, limit)
            except (zlib.error, ValueError):
                pass
        return raw[:limit].decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


_TOKEN = re.compile(r"\w+|[^\w\s)\]}]")


def token_estimate(text: str) -> int:
    """An upper estimate of the Python tokens in ``text``, counted in C without building anything.

    Words and every punctuation character but closing brackets count; the syntax tree that
    :func:`ast.parse` builds has at most about two objects per counted token (a statement
    wrapping a single name is the worst case), and holds about a kilobyte per object at its peak.
    """
    return _TOKEN.subn("", text)[1]


def parse_quietly(text: str) -> ast.Module:
    """:func:`ast.parse` without warnings: invalid escapes in hostile text are not the scanner's to
    report, and under ``-W error`` they would turn into syntax errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text)


def looks_like_python(text: str, max_tokens: int | None = None) -> bool:
    """Whether decoded ``text`` is printable Python that calls or imports something.

    Printable text of more than ``max_tokens`` tokens is not parsed here and counts as
    code: the caller's own bound then reports it (never a silent pass).
    """
    if not text.isprintable() and not all(c.isprintable() or c in "\n\r\t" for c in text[:4096]):
        return False
    if max_tokens is not None and token_estimate(text) > max_tokens:
        return True
    try:
        tree = parse_quietly(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(n, (ast.Call, ast.Import, ast.ImportFrom)) for n in ast.walk(tree))


def slow_codec(name: str) -> bool:
    """Whether ``name`` is a codec too slow to run on untrusted input (see ``_SLOW_CODECS``)."""
    try:
        return codecs.lookup(name).name in _SLOW_CODECS
    except LookupError:
        return False
