"""torch's tensor record as one superinstruction of the pickle emulator.

torch.save writes every tensor as the same ~30 opcodes. :func:`tensor_record` proves with
one regex match that the bytes at a position have that shape and applies the record's effects
in one step; :class:`aivet.analyzers.pickle_vm.PickleVM` falls back to its opcode loop for any
other shape. The memo and string rules both paths share (:func:`memo_put`, :func:`decode_text`)
live here too, so the two cannot drift apart.
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING, Any

from aivet.formats import FormatError

if TYPE_CHECKING:
    from aivet.analyzers.pickle_vm import PickleVM

_unpack_I = struct.Struct("<I").unpack_from
_unpack_i = struct.Struct("<i").unpack_from


def decode_text(data: Any, start: int, stop: int) -> str:
    """Decode a pickle string as the loader does (UTF-8, lone surrogates allowed)."""
    raw = data[start:stop]
    try:
        return raw.decode()  # type: ignore[no-any-return]
    except UnicodeDecodeError:
        return str(raw, "utf-8", "surrogatepass")


def memo_put(memo: list[Any], idx: int, value: Any, pos: int) -> None:
    """Store at a memo index. Picklers number the memo densely; a gap would make our
    indices diverge from the loader's (it numbers MEMOIZE by entry count), so fail closed."""
    if idx == len(memo):
        memo.append(value)
    elif idx < len(memo):
        memo[idx] = value
    else:
        raise FormatError(f"memo index {idx} skips ahead of {len(memo)} entries (not written by a pickler)",
                          pos)


# torch.save writes every tensor as the same ~30 opcodes:
#   _rebuild_tensor_v2(persistent(('storage', FloatStorage, key, 'cpu', numel)), offset,
#                      size, stride, requires_grad, OrderedDict())
# After the first tensor its names and constant strings are memo fetches, so the record's
# opcode *shape* repeats exactly, only arguments change. One regex match proves a record has
# that shape (each alternative starts with a different opcode byte, so the match is the one
# tokenisation the loop would read); the emulator then applies the record's effects in
# stream order: the same memo stores and fetches, persistent id, calls and counts as opcode
# by opcode, whatever the fetched values are. Any other shape is left to the loop.
_R_GET = rb"(h.|j....)"
_R_PUT = rb"(q.|r....|\x94)"
_R_INT = rb"(?:K.|M..|J....|\x8a(?:\x01.|\x02..|\x03...|\x04....|\x05.{5}|\x06.{6}|\x07.{7}|\x08.{8}))"
# A shape: EMPTY_TUPLE, TUPLE1-3 or MARK ... TUPLE, then its memo store (two groups: the tuple's
# opcodes, and the store, which the loop would also take after an empty tuple, and not require).
_R_SHAPE = (rb"(\)|" + _R_INT + rb"(?:\x85|" + _R_INT + rb"(?:\x86|" + _R_INT + rb"\x87))"
            rb"|\(" + _R_INT + rb"{0,64}t)(q.|r....|\x94)?")
_RECORD_HEAD = re.compile(rb"\(\(" + _R_GET + _R_GET + rb"(X....|\x8c.)", re.S)
_RECORD_TAIL = re.compile(_R_PUT + _R_GET + rb"(" + _R_INT + rb")t" + _R_PUT + rb"Q(" + _R_INT + rb")" + _R_SHAPE
                          + _R_SHAPE + rb"([\x88\x89])" + _R_GET + rb"\)R" + _R_PUT + rb"t" + _R_PUT + rb"R"
                          + _R_PUT, re.S)


def _fetch(memo: list[Any], get: bytes) -> Any:
    """BINGET / LONG_BINGET given the opcode and its argument."""
    return memo[get[1] if get[0] == 0x68 else _unpack_I(get, 1)[0]]


def _int_at(raw: bytes, i: int) -> tuple[int, int]:
    """The BININT1 / BININT2 / BININT / LONG1 at ``raw[i]``, and the position after it."""
    op = raw[i]
    if op == 0x4B:
        return raw[i + 1], i + 2
    if op == 0x4D:
        return raw[i + 1] | raw[i + 2] << 8, i + 3
    if op == 0x4A:
        return _unpack_i(raw, i + 1)[0], i + 5
    n = raw[i + 1]
    return int.from_bytes(raw[i + 2:i + 2 + n], "little", signed=True), i + 2 + n


_INT_OPS = (0x4B, 0x4D, 0x4A, 0x8A)


def _store(memo: list[Any], put: bytes, value: Any, match: re.Match[bytes], group: int) -> None:
    """BINPUT / LONG_BINPUT / MEMOIZE given the opcode and its argument (``match.group(group)``)."""
    op = put[0]
    if op == 0x94:
        memo.append(value)
        return
    idx = put[1] if op == 0x71 else _unpack_I(put, 1)[0]
    if idx == len(memo):
        memo.append(value)
    else:
        memo_put(memo, idx, value, match.end(group))


def _shape(memo: list[Any], match: re.Match[bytes], group: int, known: dict[bytes, tuple[int, ...]]) -> tuple[int, ...]:
    """The tuple of ints in ``match.group(group)``, memoized by the store in ``group + 1`` if any.

    ``known`` maps the tuple's opcodes to the tuple: a checkpoint repeats a few shapes thousands
    of times, and the ints are a pure function of those bytes.
    """
    raw = match.group(group)
    shape = known.get(raw)
    if shape is None:
        i = 1 if raw[0] == 0x28 else 0
        items = []
        while raw[i] in _INT_OPS:
            value, i = _int_at(raw, i)
            items.append(value)
        shape = known[raw] = tuple(items)
    put = match.group(group + 1)
    if put is not None:
        _store(memo, put, shape, match, group + 1)
    return shape


def tensor_record(vm: PickleVM, func: Any, pos: int, memo: list[Any], chunk_end: int) -> tuple[Any, int] | None:
    """Apply, for ``vm``, a torch tensor record that starts at ``pos`` (its two MARKs) in one step.

    ``func`` is the callable already on the stack. Returns the record's value and the
    position after it, or ``None`` when the bytes there do not have the record's shape.
    Bytes past ``chunk_end`` (where the loop's opcode count stops) are counted here.
    """
    data = vm.data
    end = vm.end
    head = _RECORD_HEAD.match(data, pos, end)
    if head is None:
        return None
    key_op = head.group(3)
    k0 = head.end()
    k1 = k0 + (_unpack_I(key_op, 1)[0] if key_op[0] == 0x58 else key_op[1])
    tail = _RECORD_TAIL.match(data, k1, end) if k1 <= end else None
    if tail is None:
        return None
    put, loc, numel, put_pid, offset, _, _, _, _, grad, od, put_od, put_args, put_result = tail.groups()
    storage = _fetch(memo, head.group(1))
    storage_cls = _fetch(memo, head.group(2))
    try:
        key = data[k0:k1].decode()
    except UnicodeDecodeError:
        key = decode_text(data, k0, k1)
    _store(memo, put, key, tail, 1)
    pid = (storage, storage_cls, key, _fetch(memo, loc), _int_at(numel, 0)[0])
    _store(memo, put_pid, pid, tail, 4)
    at = tail.end(4)  # the BINPERSID
    persistent = vm.persistent(pid, at)
    storage_offset = _int_at(offset, 0)[0]
    sizes = _shape(memo, tail, 6, vm.shapes)
    strides = _shape(memo, tail, 8, vm.shapes)
    at = tail.start(12) - 1  # the first REDUCE
    dict_call = vm.call(_fetch(memo, od), (), None, at, 0x52)
    _store(memo, put_od, dict_call, tail, 12)
    args = (persistent, storage_offset, sizes, strides, grad == b"\x88", dict_call)
    _store(memo, put_args, args, tail, 13)
    at = tail.start(14) - 1  # the second REDUCE
    value = vm.call(func, args, None, at, 0x52)
    _store(memo, put_result, value, tail, 14)
    after = tail.end()
    if after > chunk_end:
        vm.ops += after - chunk_end
    return value, after
