"""Pickle opcodes (protocols 0-5): a table, a bounded decoder, a plausibility check, a data-only walk.

Nothing here unpickles. :func:`iter_ops` walks an opcode stream and yields
``(offset, opcode, argument)``; every length field is checked against the
end of the data before it is used, so a hostile length is a
:class:`~aivet.formats.FormatError` carrying the offset, never a huge read.
The symbolic emulator (:mod:`aivet.analyzers.pickle_vm`) inlines the same
decoding in its own loop for speed and shares the tables below. :func:`inert_pickle_end`
recognises streams of plain data with one regular expression, so the emulator can skip them.
"""

from __future__ import annotations

import enum
import functools
import re
import struct
from collections.abc import Iterator
from typing import Any

from aivet.formats import FormatError


class Arg(enum.IntEnum):
    """How an opcode's inline argument is encoded."""

    NONE = 0
    U1 = 1  # one unsigned byte
    U2 = 2  # two bytes, little-endian unsigned
    S4 = 3  # four bytes, little-endian signed (BININT)
    U4 = 4  # four bytes, little-endian unsigned
    U8 = 5  # eight bytes, little-endian unsigned (FRAME)
    F8 = 6  # eight-byte big-endian IEEE double (BINFLOAT)
    LEN1 = 7  # one-byte length, then that many bytes
    LEN4 = 8  # four-byte unsigned length, then bytes
    LEN4S = 9  # four-byte signed length (BINSTRING; negative is an error)
    LEN8 = 10  # eight-byte length, then bytes
    LINE = 11  # bytes up to a newline
    LINE2 = 12  # two newline-terminated lines (GLOBAL, INST)


# code -> (name, argument encoding). Names follow the CPython pickle module.
OPCODES: dict[int, tuple[str, Arg]] = {
    0x28: ("MARK", Arg.NONE), 0x2E: ("STOP", Arg.NONE), 0x30: ("POP", Arg.NONE),
    0x31: ("POP_MARK", Arg.NONE), 0x32: ("DUP", Arg.NONE), 0x46: ("FLOAT", Arg.LINE),
    0x49: ("INT", Arg.LINE), 0x4A: ("BININT", Arg.S4), 0x4B: ("BININT1", Arg.U1),
    0x4C: ("LONG", Arg.LINE), 0x4D: ("BININT2", Arg.U2), 0x4E: ("NONE", Arg.NONE),
    0x50: ("PERSID", Arg.LINE), 0x51: ("BINPERSID", Arg.NONE), 0x52: ("REDUCE", Arg.NONE),
    0x53: ("STRING", Arg.LINE), 0x54: ("BINSTRING", Arg.LEN4S), 0x55: ("SHORT_BINSTRING", Arg.LEN1),
    0x56: ("UNICODE", Arg.LINE), 0x58: ("BINUNICODE", Arg.LEN4), 0x61: ("APPEND", Arg.NONE),
    0x62: ("BUILD", Arg.NONE), 0x63: ("GLOBAL", Arg.LINE2), 0x64: ("DICT", Arg.NONE),
    0x7D: ("EMPTY_DICT", Arg.NONE), 0x65: ("APPENDS", Arg.NONE), 0x67: ("GET", Arg.LINE),
    0x68: ("BINGET", Arg.U1), 0x69: ("INST", Arg.LINE2), 0x6A: ("LONG_BINGET", Arg.U4),
    0x6C: ("LIST", Arg.NONE), 0x5D: ("EMPTY_LIST", Arg.NONE), 0x6F: ("OBJ", Arg.NONE),
    0x70: ("PUT", Arg.LINE), 0x71: ("BINPUT", Arg.U1), 0x72: ("LONG_BINPUT", Arg.U4),
    0x73: ("SETITEM", Arg.NONE), 0x74: ("TUPLE", Arg.NONE), 0x29: ("EMPTY_TUPLE", Arg.NONE),
    0x75: ("SETITEMS", Arg.NONE), 0x47: ("BINFLOAT", Arg.F8),
    # protocol 2
    0x80: ("PROTO", Arg.U1), 0x81: ("NEWOBJ", Arg.NONE), 0x82: ("EXT1", Arg.U1),
    0x83: ("EXT2", Arg.U2), 0x84: ("EXT4", Arg.S4), 0x85: ("TUPLE1", Arg.NONE),
    0x86: ("TUPLE2", Arg.NONE), 0x87: ("TUPLE3", Arg.NONE), 0x88: ("NEWTRUE", Arg.NONE),
    0x89: ("NEWFALSE", Arg.NONE), 0x8A: ("LONG1", Arg.LEN1), 0x8B: ("LONG4", Arg.LEN4S),
    # protocol 3
    0x42: ("BINBYTES", Arg.LEN4), 0x43: ("SHORT_BINBYTES", Arg.LEN1),
    # protocol 4
    0x8C: ("SHORT_BINUNICODE", Arg.LEN1), 0x8D: ("BINUNICODE8", Arg.LEN8), 0x8E: ("BINBYTES8", Arg.LEN8),
    0x8F: ("EMPTY_SET", Arg.NONE), 0x90: ("ADDITEMS", Arg.NONE), 0x91: ("FROZENSET", Arg.NONE),
    0x92: ("NEWOBJ_EX", Arg.NONE), 0x93: ("STACK_GLOBAL", Arg.NONE), 0x94: ("MEMOIZE", Arg.NONE),
    0x95: ("FRAME", Arg.U8),
    # protocol 5
    0x96: ("BYTEARRAY8", Arg.LEN8), 0x97: ("NEXT_BUFFER", Arg.NONE), 0x98: ("READONLY_BUFFER", Arg.NONE),
}

NAMES: dict[int, str] = {code: name for code, (name, _) in OPCODES.items()}
CODES: dict[str, int] = {name: code for code, name in NAMES.items()}
HIGHEST_PROTOCOL = 5
MAX_LINE = 1 << 16  # a text-protocol argument longer than this is hostile or not a pickle

_FIXED = {Arg.U1: 1, Arg.U2: 2, Arg.S4: 4, Arg.U4: 4, Arg.U8: 8, Arg.F8: 8}
_S4 = struct.Struct("<i")
_U4 = struct.Struct("<I")
_U8 = struct.Struct("<Q")
_F8 = struct.Struct(">d")


def opname(code: int) -> str:
    """The opcode's name, or ``0xNN`` for a byte that is not an opcode."""
    return NAMES.get(code, f"0x{code:02x}")


def read_line(data: bytes | memoryview, pos: int, end: int) -> tuple[bytes, int]:
    """Return the bytes from ``pos`` up to a newline and the position after it."""
    limit = min(end, pos + MAX_LINE)
    nl = bytes(data[pos:limit]).find(b"\n")
    if nl < 0:
        if limit < end:
            raise FormatError("text argument longer than 64 KiB", pos)
        raise FormatError("truncated text argument (no newline)", pos)
    return bytes(data[pos:pos + nl]), pos + nl + 1


def _length(data: bytes | memoryview, pos: int, end: int, kind: Arg, offset: int) -> tuple[int, int]:
    if kind is Arg.LEN1:
        if pos >= end:
            raise FormatError("truncated length", offset)
        return data[pos], pos + 1
    size = 8 if kind is Arg.LEN8 else 4
    if pos + size > end:
        raise FormatError("truncated length", offset)
    raw = bytes(data[pos:pos + size])
    if kind is Arg.LEN8:
        n = _U8.unpack(raw)[0]
    elif kind is Arg.LEN4S:
        n = _S4.unpack(raw)[0]
        if n < 0:
            raise FormatError("negative length", offset)
    else:
        n = _U4.unpack(raw)[0]
    return n, pos + size


def iter_ops(data: bytes | memoryview, start: int = 0, end: int | None = None,
             *, stop_at_stop: bool = True) -> Iterator[tuple[int, int, object]]:
    """Yield ``(offset, opcode, argument)`` for each opcode from ``start``.

    Arguments are ints, floats, bytes (string payloads, undecoded) or a pair of
    bytes for GLOBAL/INST. Stops after STOP when ``stop_at_stop``. Raises
    :class:`FormatError` for an unknown opcode or an argument that runs past ``end``.
    """
    end = len(data) if end is None else min(end, len(data))
    pos = start
    while pos < end:
        offset = pos
        code = data[pos]
        pos += 1
        info = OPCODES.get(code)
        if info is None:
            raise FormatError(f"unknown opcode 0x{code:02x}", offset)
        kind = info[1]
        arg: object = None
        if kind is Arg.NONE:
            pass
        elif kind in _FIXED:
            size = _FIXED[kind]
            if pos + size > end:
                raise FormatError(f"truncated {info[0]} argument", offset)
            raw = bytes(data[pos:pos + size])
            pos += size
            if kind is Arg.S4:
                arg = _S4.unpack(raw)[0]
            elif kind is Arg.F8:
                arg = _F8.unpack(raw)[0]
            else:
                arg = int.from_bytes(raw, "little")
        elif kind is Arg.LINE:
            arg, pos = read_line(data, pos, end)
        elif kind is Arg.LINE2:
            first, pos = read_line(data, pos, end)
            second, pos = read_line(data, pos, end)
            arg = (first, second)
        else:
            n, pos = _length(data, pos, end, kind, offset)
            if n > end - pos:
                raise FormatError(f"{info[0]} length {n} runs past the end of the data", offset)
            arg = bytes(data[pos:pos + n])
            pos += n
        yield offset, code, arg
        if code == 0x2E and stop_at_stop:
            return
    raise FormatError("pickle ends without STOP", end)


# Effect of each no-argument opcode on the stack depth, for the plausibility check:
# (items popped, items pushed, pops to the mark). Unlisted opcodes push one item.
_EFFECT: dict[str, tuple[int, int, bool]] = {
    "MARK": (0, 0, False), "STOP": (1, 0, False), "POP": (1, 0, False), "POP_MARK": (0, 0, True),
    "DUP": (1, 2, False), "BINPERSID": (1, 1, False), "REDUCE": (2, 1, False), "APPEND": (2, 1, False),
    "BUILD": (2, 1, False), "DICT": (0, 1, True), "APPENDS": (1, 1, True), "LIST": (0, 1, True),
    "OBJ": (0, 1, True), "SETITEM": (3, 1, False), "TUPLE": (0, 1, True), "SETITEMS": (1, 1, True),
    "NEWOBJ": (2, 1, False), "TUPLE1": (1, 1, False), "TUPLE2": (2, 1, False), "TUPLE3": (3, 1, False),
    "ADDITEMS": (1, 1, True), "FROZENSET": (0, 1, True), "NEWOBJ_EX": (3, 1, False),
    "STACK_GLOBAL": (2, 1, False), "MEMOIZE": (1, 1, False), "PUT": (1, 1, False), "BINPUT": (1, 1, False),
    "LONG_BINPUT": (1, 1, False), "PROTO": (0, 0, False), "FRAME": (0, 0, False), "INST": (0, 1, True),
    "READONLY_BUFFER": (1, 1, False),
}


def _line_ok(name: str, arg: bytes) -> bool:
    """Text-protocol arguments must look like what the pickler writes, or it is prose."""
    text = arg.decode("latin-1")
    if name in ("INT", "LONG", "GET", "PUT"):
        body = text[:-1] if name == "LONG" and text.endswith("L") else text
        return body.lstrip("-").isdigit() or (name == "INT" and body in ("00", "01"))
    if name == "FLOAT":
        try:
            float(text)
        except ValueError:
            return False
        return True
    if name == "STRING":
        return len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""
    return True


def _dotted(arg: bytes) -> bool:
    text = arg.decode("latin-1")
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def plausible_stream(head: bytes) -> bool:
    """True if ``head`` starts like a header-less (protocol 0/1) pickle stream.

    The sniffer calls this for content that matched no other format. The first
    opcodes must decode, their text arguments must be well formed (numbers,
    quoted strings, dotted names), the stack must never underflow, and there
    must be at least three opcodes or a STOP: ordinary prose fails one of these
    within a few bytes. A stream cut off by the end of ``head`` still counts.
    """
    depth = 0
    marks: list[int] = []
    count = 0
    try:
        for offset, code, arg in iter_ops(head):
            name = NAMES[code]
            count += 1
            kind = OPCODES[code][1]
            if kind is Arg.LINE and isinstance(arg, bytes) and not _line_ok(name, arg):
                return False
            if kind is Arg.LINE2 and isinstance(arg, tuple):
                if not (_dotted(arg[0]) and _dotted(arg[1])):
                    return False
                if name == "INST":
                    if not marks:
                        return False
                    depth = marks.pop()
                depth += 1
                continue
            effect = _EFFECT.get(name)
            if effect is None:
                depth += 1
                continue
            pops, pushes, to_mark = effect
            if name == "MARK":
                marks.append(depth)
                continue
            if to_mark:
                if not marks:
                    return False
                depth = marks.pop()
            if depth < pops:
                return False
            depth += pushes - pops
            if name == "STOP":
                # "N." is a complete pickle, and also the start of "N.B."; short ones must fill the head.
                return depth == 0 and (count >= 3 or offset == len(head) - 1) and count >= 2
    except FormatError as exc:
        # Running off the end of the head is fine; an unknown opcode or bad argument is not.
        msg = str(exc)
        return count >= 3 and ("truncated" in msg or "without STOP" in msg or "runs past" in msg)
    return count >= 3


# ---------------------------------------------------------------------------------------------
# Data-only streams
# ---------------------------------------------------------------------------------------------
# A pickle of plain data (dicts, lists, strings, numbers) never imports or calls anything, so its
# symbolic emulation finds nothing; only its bytes need walking. The regular expression below
# walks such a stream in C instead of opcode by opcode in Python (about 4x faster). It accepts
# only opcodes that push constants or build containers, so any GLOBAL, STACK_GLOBAL, INST, OBJ,
# REDUCE, NEWOBJ, BUILD, EXT, PERSID, long string, or bytes that could hold a nested pickle stops
# the match and the caller emulates the stream as usual. It is anchored at an opcode boundary
# and consumes whole opcodes (every length-prefixed payload is skipped by its exact length), so
# an opcode byte inside string data is never mistaken for an opcode. Every mark must be closed
# by an opcode that consumes it; marks nest at most _INERT_LEVELS deep and each level holds a
# bounded number of items, which bounds the loader's stack as max_pickle_stack_depth does for
# emulation. Repeats are possessive, so the match never backtracks: linear time on any input.
# Not checked (the emulator reports them as parse errors): how many values APPEND, SETITEM and
# TUPLE1-3 find, memo indices, UTF-8 in strings. In a stream that cannot import or call, such
# a fault can only make loading fail, so skipping it costs a diagnostic, never a detection.

_INERT_LEVELS = 4


def _sized(width: int) -> bytes:
    """Alternatives for a ``width``-byte little-endian length below 256 followed by that many bytes."""
    pad = b"\x00" * (width - 1)
    return b"(?:" + b"|".join(re.escape(bytes([n]) + pad) + (b".{%d}" % n if n else b"") for n in range(256)) + b")"


def _inert_grammar(max_items: int) -> bytes:
    """The data-only grammar as a regular expression (nesting unrolled ``_INERT_LEVELS`` times).

    Written for the ``re`` engine's speed: alternatives ordered by how common they are, optional
    parts as empty alternatives rather than ``?`` (cheaper), one shared table of string lengths.
    """
    value = b"|".join((
        b"h.", b"J.{4}", b"K.",
        # SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES unless it starts like a nested pickle
        b"(?:\\x8c|U|C(?![\\x01-\\xff]\\x80))" + _sized(1),
        b"G.{8}", b"N", b"\\}", b"\\]", b"M..", b"X" + _sized(4), b"j.{4}", b"\\)", b"\\x88", b"\\x89", b"\\x8f",
    ))
    memo = b"(?:\\x94|q.|r.{4}|)"
    level = b""  # what a mark may enclose at the innermost level: no further marks
    for _ in range(_INERT_LEVELS + 1):
        marked = b"\\(" + level + b"[ue\\x90tld\\x91]|" if level else b""  # first: MARK is common
        unit = b"(?:" + marked + value + b")" + memo
        # APPEND, SETITEM and TUPLE1-3 consume values; FRAME only marks a read-ahead boundary.
        level = b"(?:" + unit + b"|[as\\x85\\x86\\x87]" + memo + b"|\\x95.{8}){0,%d}+" % max_items
    return level


# The opcodes the grammar accepts, for a cheap look at the head of a stream before compiling it.
_INERT_CODES = frozenset(b"hjJK\x8cUCGN}]MX)\x88\x89\x8f\x94qr(ue\x90tld\x91as\x85\x86\x87\x95\x80.")


def _head_is_inert(data: Any, pos: int, end: int) -> bool:
    """False if one of the first opcodes cannot appear in a data-only stream (a model's pickle
    usually names a class within a few opcodes): saves compiling the grammar for nothing."""
    head = bytes(data[pos:min(end, pos + 4096)])
    try:
        for count, (_, code, _) in enumerate(iter_ops(head)):
            if code not in _INERT_CODES:
                return False
            if count >= 256:
                break
    except FormatError:
        pass  # the window cut an opcode short; the grammar decides
    return True


@functools.lru_cache(maxsize=4)
def _inert_pattern(max_items: int) -> re.Pattern[bytes]:
    return re.compile(_inert_grammar(max_items), re.DOTALL)


def inert_pickle_end(data: Any, pos: int, end: int, max_stack: int) -> int | None:
    """If the pickle at ``pos`` is data-only, return the position after its STOP, else None.

    Data-only means it consists solely of opcodes that push constants, fetch or store memo
    entries and build containers, with marks nested at most a few levels deep and the loader's
    stack never deeper than ``max_stack``: loading it cannot import or call anything. None
    means "emulate it" (it may be malicious, malformed, or just unusual); it is never an error.
    Memo references and the UTF-8 of strings are not checked here: in a data-only stream a bad
    one can only make loading fail. ``data`` is bytes or any buffer (an mmap).
    """
    if not _head_is_inert(data, pos, end):
        return None
    if pos + 2 < end and data[pos] == 0x80:
        if data[pos + 1] > HIGHEST_PROTOCOL:
            return None
        pos += 2
    max_items = max(1, max_stack // (_INERT_LEVELS + 2))
    match = _inert_pattern(max_items).match(data, pos, end)
    if match is None:
        return None
    stop = int(match.end())
    if stop == pos or stop >= end or data[stop] != 0x2E:
        return None
    return stop + 1
