"""Pickle opcodes (protocols 0-5): a table, a bounded decoder and a plausibility check.

Nothing here unpickles. :func:`iter_ops` walks an opcode stream and yields
``(offset, opcode, argument)``; every length field is checked against the
end of the data before it is used, so a hostile length is a
:class:`~aivet.formats.FormatError` carrying the offset, never a huge read.
The symbolic emulator (:mod:`aivet.analyzers.pickle_vm`) inlines the same
decoding in its own loop for speed and shares the tables below.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator

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
