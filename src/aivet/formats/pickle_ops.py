"""Pickle opcodes (protocols 0-5): a table, a bounded decoder, a plausibility check, a data-only walk.

Nothing here unpickles. :func:`iter_ops` walks an opcode stream and yields
``(offset, opcode, argument)``; every length field is checked against the
end of the data before it is used, so a hostile length is a
:class:`~aivet.formats.FormatError` carrying the offset, never a huge read.
The symbolic emulator (:mod:`aivet.analyzers.pickle_vm`) inlines the same
decoding in its own loop for speed and shares the tables below. :func:`inert_pickle_end`
recognises well-formed streams of plain data with regular expressions, so the emulator can skip
them.
"""

from __future__ import annotations

import array
import enum
import functools
import itertools
import re
import struct
import sys
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
# walks such a stream in C instead of opcode by opcode in Python (see the measurements below). It accepts
# only opcodes that push constants or build containers, so any GLOBAL, STACK_GLOBAL, INST, OBJ,
# REDUCE, NEWOBJ, BUILD, EXT, PERSID, long or non-ASCII string, or bytes that could hold a nested
# pickle stops the match and the caller emulates the stream as usual. It is anchored at an opcode
# boundary and consumes whole opcodes (every length-prefixed payload is skipped by its exact
# length), so an opcode byte inside string data is never mistaken for an opcode. Repeats are
# possessive, so the match never backtracks: linear time on any input.
#
# Fail closed: a stream the walk accepts must be one the emulator reads without error, or a
# malformed file would scan clean where emulation reports a parse error (issue #2). So the
# grammar only matches well-formed streams, and what it cannot see is checked around it:
# - Stack arity. Each frame (the top level, or the items after a MARK) opens with a value, and
#   after that never holds fewer than one item: values push one; MEMOIZE, BINPUT and TUPLE1
#   need one and keep it; a batch (MARK, items, APPENDS/SETITEMS/ADDITEMS) needs one under its
#   mark and keeps it; APPEND and TUPLE2 are accepted only right after a value that does not
#   open its frame, so they find two and leave one. Nothing can underflow. Other opcodes that
#   take values (SETITEM, TUPLE3, POP...) and marks closed by TUPLE, LIST, DICT or FROZENSET
#   are not accepted at all: such streams are emulated.
# - Marks are balanced by construction (each MARK is part of a batch that closes it), nest at
#   most _INERT_LEVELS deep, and each frame holds a bounded number of items, which bounds the
#   loader's stack as max_pickle_stack_depth does for emulation. STOP finds exactly one value.
# - Memo. The loader numbers memo entries densely: a GET must name an entry already stored and
#   a PUT may not skip ahead. _memo_head counts the first entries (a scan in C, a step in
#   Python per memo opcode) up to 256; past them any one-byte index is valid by itself. If the
#   stream has fewer, the grammar limits one-byte indices to those. LONG_BINGET and LONG_BINPUT
#   need a count: the grammar admits them only in a second variant, after which _memo_tail
#   counts (in bulk for the consecutive LONG_BINPUTs of protocols 2 and 3).
# - Strings: SHORT_BINUNICODE and BINUNICODE payloads must be ASCII (so valid UTF-8); others
#   are emulated.
# - FRAME lengths may not run past the end of the data. The grammar caps them at _FRAME_CAP, so
#   only frames in the last _FRAME_CAP bytes can, and _frames_fit reads those.
# Measured on the benchmark's 15 MB pickle: protocol 4 about 1.2x the old unchecked walk and
# 4x faster than emulation; protocols 2 and 3 (the LONG_BINPUT count is a second scan) about
# 1.5x faster than emulation.

_INERT_LEVELS = 4
_MEMO_DENSE = 256  # memo entries after which any one-byte memo index is valid
_HEAD_OPS = 4096  # memo opcodes walked in Python to reach _MEMO_DENSE entries
_TAIL_BYTES = 4 << 20  # memo opcodes in a tail this long are captured at once (< 10 MB of objects)
_TAIL_CHUNK = 1 << 16  # or else this many at a time
_FRAME_CAP = 0x11000  # the pickler's frames hold 64 KiB and at most one more value; longer ones are emulated
_ANY = b"."  # with re.DOTALL
_ASCII = b"[\\x00-\\x7f]"


def _sized(width: int, byte: bytes = _ANY) -> bytes:
    """Alternatives for a ``width``-byte little-endian length below 256, then that many ``byte``."""
    pad = b"\x00" * (width - 1)
    return b"(?:" + b"|".join(re.escape(bytes([n]) + pad) + (byte + b"{%d}" % n if n else b"")
                              for n in range(256)) + b")"


def _below(count: int) -> bytes:
    """A byte class for one-byte memo indices below ``count`` (every byte from _MEMO_DENSE on)."""
    if count >= _MEMO_DENSE:
        return b"."
    return b"[\\x00-\\x%02x]" % (count - 1) if count else b"(?!)"


def _values(memo: int, long_memo: bool, framed: bool | None = None) -> bytes:
    """Alternatives for one opcode that pushes a constant or an empty container.

    ``long_memo`` admits LONG_BINGET, whose index the caller then checks by counting.
    ``framed``: True for protocols 4 and 5 (short strings are SHORT_BINUNICODE), False for the
    older ones (BINUNICODE, SHORT_BINSTRING), None for both; each table of lengths is large,
    so a stream's grammar carries only those its protocol writes. Alternatives are ordered by
    how common they are, for the ``re`` engine's speed.
    """
    strings = []
    if framed is not False:
        strings.append(b"\\x8c" + _sized(1, _ASCII))
    # SHORT_BINBYTES unless it starts like a nested pickle (and SHORT_BINSTRING, protocol < 3)
    strings.append((b"C" if framed else b"[UC]") + b"(?![\\x01-\\xff]\\x80)" + _sized(1))
    if framed is False:
        strings.insert(0, b"X" + _sized(4, _ASCII))  # protocols 2 and 3 write every str so: first
    elif framed is None:
        strings.append(b"X" + _sized(4, _ASCII))
    return b"|".join((
        b"h" + _below(memo), b"J.{4}", b"K.", strings[0], b"G.{8}", b"N", b"\\}", b"\\]", b"M..", *strings[1:],
        b"\\)", b"\\x88", b"\\x89", b"\\x8f", *((b"j.{4}",) if long_memo else ()),
    ))


def _inert_grammar(max_items: int, memo: int, long_memo: bool, framed: bool) -> bytes:
    """The data-only grammar as a regular expression (nesting unrolled ``_INERT_LEVELS`` times).

    ``memo``: how many memo entries the stream has once its head is walked (capped at
    _MEMO_DENSE); one-byte GETs must name one of them, one-byte PUTs at most the next. Named
    groups: ``first`` is the value that opens the stream, ``stop`` its STOP; the caller checks
    both, so one pattern can also resume the top level after a split (see
    :func:`inert_pickle_end`). ``long_memo`` admits LONG_BINGET and LONG_BINPUT, whose indices
    the caller then checks by counting (:func:`_memo_tail`). ``framed``: see :func:`_values`.
    """
    value = b"(?:" + _values(memo, long_memo, framed) + b")"
    # MEMOIZE or BINPUT of the value just pushed, or TUPLE1 of it (and then maybe one of those)
    put = b"\\x94|q" + _below(memo + 1) + (b"|r.{4}" if long_memo else b"")
    post = b"(?:" + put + b"|\\x85(?:" + put + b"|)|)"
    # APPEND or TUPLE2 right after a value that is not the first of its frame: the value and
    # the one under it are there to take.
    take = b"[a\\x86]" + post
    frame = b"\\x95.(?:.\\x00|[\\x00-\\x0f]\\x01)\\x00{5}"  # FRAME shorter than _FRAME_CAP
    level = b""  # what a mark may enclose at the innermost level: no further marks
    for _ in range(_INERT_LEVELS):
        batch = b"\\(" + level + b"[ue\\x90]" + post + b"|" if level else b""
        # A frame opens with a value (so a batch always has an item under its mark).
        level = (b"(?:" + frame + b")*+(?:" + value + post + b"(?:" + batch + value + post + b"(?:" + take
                 + b"|)|" + frame + b"){0,%d}+)?+" % max_items)
    first = b"(?P<first>(?:" + frame + b")*+" + value + post + b")?"
    rest = b"(?:\\(" + level + b"[ue\\x90]" + post + b"|" + frame + b")*+"
    return first + rest + b"(?P<stop>\\.)?"


# The opcodes the grammar accepts, for a cheap look at the head of a stream before compiling it.
_INERT_CODES = frozenset(b"hJK\x8cUCGN}]MX)\x88\x89\x8f\x94q\x85a\x86(ue\x90\x95\x80.")


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


@functools.lru_cache(maxsize=8)
def _inert_pattern(max_items: int, memo: int, long_memo: bool, framed: bool) -> re.Pattern[bytes]:
    return re.compile(_inert_grammar(max_items, memo, long_memo, framed), re.DOTALL)


# The scans below step over whole opcodes of the grammar (of the same protocol family) and
# capture some; they run only where the grammar decides too (_memo_head checks that its steps
# stay contiguous), so they keep to opcode boundaries.
def _skip(framed: bool, gets: bool) -> bytes:
    """Opcodes to step over (one-byte GETs too if ``gets``), as an unclosed group to extend."""
    return b"(?:" + _values(_MEMO_DENSE if gets else 0, False, framed) + b"|\\x85|[(ue\\x90a\\x86]"


@functools.lru_cache(maxsize=2)
def _scan_ops(framed: bool) -> re.Pattern[bytes]:
    """Steps to the next memo opcode, STOP or the end; captures it."""
    return re.compile(_skip(framed, False) + b"|\\x95.{8})*+(\\x94|q.|r.{4}|h.|j.{4}|\\.|\\Z)", re.DOTALL)


@functools.lru_cache(maxsize=2)
def _scan_counted(framed: bool) -> re.Pattern[bytes]:
    """Steps to the next memo opcode whose index needs a count (or the end); captures it."""
    return re.compile(_skip(framed, True) + b"|\\x95.{8})*+(\\x94|q.|r.{4}|j.{4}|\\Z)", re.DOTALL)


@functools.lru_cache(maxsize=2)
def _scan_frames(framed: bool) -> re.Pattern[bytes]:
    """Steps to the next FRAME (or the end); captures it."""
    return re.compile(_skip(framed, True) + b"|\\x94|q.|r.{4}|j.{4}|\\.)*+(\\x95.{8}|\\Z)", re.DOTALL)


def _memo_head(data: Any, pos: int, end: int, framed: bool) -> tuple[int, int] | None:
    """Walk the first memo opcodes as the loader numbers its memo entries.

    Returns (entries stored, an opcode boundary where the walk stopped), or None if a memo
    index is wrong there or the stream leaves the grammar's opcodes before its STOP. Stops at
    _MEMO_DENSE entries, after _HEAD_OPS memo opcodes, or at STOP (the position is then ``end``).
    """
    count = 0
    at = pos
    for n, found in enumerate(_scan_ops(framed).finditer(data, pos, end)):
        if found.start() != at:
            return None  # skipped a byte: not an opcode the grammar knows
        op = found.group(1)
        if not op or op == b".":
            return count, end
        at = found.end()
        if count >= _MEMO_DENSE or n >= _HEAD_OPS:
            return count, found.start(1)
        code = op[0]
        if code == 0x94:  # MEMOIZE
            count += 1
            continue
        index = int.from_bytes(op[1:], "little")
        if code in (0x68, 0x6A):  # BINGET, LONG_BINGET
            if index >= count:
                return None
        elif index > count:  # BINPUT, LONG_BINPUT
            return None
        else:
            count += index == count
    return count, end


def _memo_tail(data: Any, pos: int, stop: int, count: int, framed: bool) -> bool:
    """Check the memo indices from ``pos`` (an opcode boundary) to ``stop`` by counting entries.

    ``count`` entries exist at ``pos``. A PUT may not skip ahead of the entries stored, a GET
    must name one of them. One-byte GETs are not captured: the grammar already limited them.
    A short tail is captured in one call (all in C); a longer one _TAIL_CHUNK memo opcodes at
    a time, so that memory stays bounded.
    """
    scan = _scan_counted(framed)
    if stop - pos <= _TAIL_BYTES:
        found: Iterator[bytes] = iter(scan.findall(data, pos, stop))
    else:
        found = (match.group(1) for match in scan.finditer(data, pos, stop))
    while True:
        ops = list(itertools.islice(found, _TAIL_CHUNK))
        while ops and not ops[-1]:
            ops.pop()  # the match at the end
        if not ops:
            return True
        if b"" in ops:
            return False  # lost the opcode boundaries: cannot happen on a stream the grammar matched
        count = _memo_count(ops, count)
        if count < 0:
            return False


def _memo_count(ops: list[bytes], count: int) -> int:
    """The entries after ``ops`` (memo opcodes as :func:`_memo_tail` captures them), or -1 if
    one of them names an entry that does not exist."""
    longs = b"".join(ops)
    if len(longs) == 5 * len(ops) and longs[::5] == b"r" * len(ops):
        # Protocols 2 and 3 write LONG_BINPUT with consecutive indices: compare them all at once.
        indices = bytearray(longs)
        del indices[::5]
        found = array.array("I")
        if found.itemsize == 4:  # not on a platform whose unsigned int is not 32 bits
            found.frombytes(bytes(indices))
            if sys.byteorder != "little":
                found.byteswap()
            if found == array.array("I", range(count, count + len(ops))):
                return count + len(ops)
    for op in ops:
        code = op[0]
        if code == 0x94:
            count += 1
            continue
        index = int.from_bytes(op[1:], "little")
        if code == 0x6A:  # LONG_BINGET
            if index >= count:
                return -1
        elif index > count:  # BINPUT, LONG_BINPUT
            return -1
        elif index == count:
            count += 1
    return count


def _frame_fits(length: object, offset: int, end: int) -> bool:
    """The emulator's FRAME check: the frame may not run past the end of the data."""
    return isinstance(length, int) and length <= end - (offset + 9)


def _frames_fit(data: Any, pos: int, stop: int, end: int, framed: bool) -> bool:
    """Every FRAME between ``pos`` (an opcode boundary) and ``stop`` fits before ``end``."""
    for found in _scan_frames(framed).finditer(data, pos, stop):
        op = found.group(1)
        if op and not _frame_fits(int.from_bytes(op[1:], "little"), found.start(1), end):
            return False
    return True


def inert_pickle_end(data: Any, pos: int, end: int, max_stack: int) -> int | None:
    """If the pickle at ``pos`` is data-only and well formed, return the position after its STOP.

    Data-only means it consists solely of opcodes that push constants, fetch or store memo
    entries and build containers, with marks nested at most a few levels deep and the loader's
    stack never deeper than ``max_stack``: loading it cannot import or call anything. Well formed
    means the emulator would read it without error (no stack underflow, unbalanced mark, memo
    index that was never stored, bad UTF-8, or length running past ``end``), so accepting it
    never hides a parse error. None means "emulate it" (it may be malicious, malformed, or just
    unusual); it is never an error. ``data`` is bytes or any buffer (an mmap).
    """
    if max_stack < 4 * _INERT_LEVELS or not _head_is_inert(data, pos, end):
        return None
    framed = False
    if pos + 2 < end and data[pos] == 0x80:
        if data[pos + 1] > HIGHEST_PROTOCOL:
            return None
        framed = data[pos + 1] >= 4
        pos += 2
    head = _memo_head(data, pos, end, framed)
    if head is None:
        return None
    count, walked = head
    max_items = max(1, max_stack // (_INERT_LEVELS + 3))
    tries: tuple[bool, ...]  # without, then with LONG_BINGET and LONG_BINPUT
    if walked == end:  # every memo opcode up to STOP is checked already
        memo, tries = _MEMO_DENSE, (False, True)
    elif count >= _MEMO_DENSE:
        # Past the head, protocols 2 and 3 store with LONG_BINPUT: admit it (and LONG_BINGET)
        # and count. Protocols 4 and 5 (MEMOIZE) rarely need LONG_BINGET: try without first.
        memo, tries = _MEMO_DENSE, (True,) if _uses_put(data, pos, walked, framed) else (False, True)
    else:
        # Few entries in many memo opcodes: rounded down, so that few grammars get compiled.
        memo, tries = 1 << count.bit_length() >> 1, (False,)
    for long_memo in tries:
        after = _match(_inert_pattern(max_items, memo, long_memo, framed), data, pos, end, framed)
        if after is not None:
            if long_memo and walked < after and not _memo_tail(data, walked, after - 1, count, framed):
                return None
            return after
    return None


def _uses_put(data: Any, pos: int, walked: int, framed: bool) -> bool:
    """True if the stream's first memo store is a BINPUT (protocols 1-3) rather than MEMOIZE."""
    found = _scan_counted(framed).match(data, pos, walked)
    return found is not None and found.group(1)[:1] == b"q"


def _match(pattern: re.Pattern[bytes], data: Any, pos: int, end: int, framed: bool) -> int | None:
    """Match the grammar from ``pos``; the position after STOP, or None. FRAME lengths checked."""
    # Frames before `split` cannot run past `end` (they are shorter than _FRAME_CAP). When the
    # stream reaches past it, the top level's batches from there on are matched separately,
    # so that only those need walking for their frames.
    split = max(pos, end - _FRAME_CAP - 16)
    resume = pos
    if split > pos:
        first = pattern.match(data, pos, split)
        if first is not None and first.group("first") is not None:
            if first.group("stop") is not None:
                return int(first.end())
            resume = first.end()
    last = pattern.match(data, resume, end)
    # From `pos` the match must start with the stream's one value; resumed, with no other.
    if last is None or last.group("stop") is None or (last.group("first") is not None) != (resume == pos):
        return None
    if not _frames_fit(data, resume, last.end(), end, framed):
        return None
    return int(last.end())
