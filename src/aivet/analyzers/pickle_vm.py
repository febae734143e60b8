"""Symbolic emulation of pickle opcode streams: what would be imported and called, never unpickled.

The emulator keeps the unpickler's stack, metastack (marks) and memo, but the
values on them are symbols: constants (str, bytes, int, float, bool, None and
small tuples of those), :class:`Global` (an imported name), :class:`Call` (the
result of calling something) and opaque containers whose contents are not
kept. That is enough to resolve the names a pickle imports (``STACK_GLOBAL``
with names built on the stack or fetched from the memo), to follow call
chains (``getattr(__import__('os'), 'system')``, ``attrgetter``,
``methodcaller``, ``functools.partial``) to the callable that really runs,
and to render each call with its constant arguments.

Speed matters: checkpoints hold millions of opcodes. The decoder is one loop
over the bytes with an if-chain ordered by how common each opcode is, no
per-opcode objects, a list for the dense memo, and containers kept opaque.
Limits are checked per chunk of input rather than per opcode. Large pickles of plain data
(no opcode that imports, calls or builds) are not emulated at all: a walk in C
(:func:`aivet.formats.pickle_ops.inert_pickle_end`) proves there is nothing to find and that
the stream is well formed (about 4x faster than emulation for protocols 4-5, 1.5x for 2-3);
anything it declines is emulated as before. Checkpoints are mostly torch's tensor record, the
same ~30 opcodes per tensor: once a regex has matched that shape, :func:`pickle_record.tensor_record`
applies the record in one step with the same effects (about 1.6x faster on a checkpoint of
thousands of tensors; tests/test_pickle_tensor_record.py holds the two paths to one result).
"""

from __future__ import annotations

import codecs
import struct
import time
from typing import Any

from aivet.analyzers import allowlist, pickle_state
from aivet.analyzers.allowlist import Classification
from aivet.analyzers.pickle_record import decode_text, memo_put, tensor_record
from aivet.analyzers.pickle_values import (
    Anomaly,
    Call,
    DictVal,
    Global,
    Opaque,
    Persistent,
    Result,
    Use,
    _FreshList,
    _is_constant,
    render,
    render_call,
    symbol,
)
from aivet.formats import FormatError, LimitExceeded
from aivet.formats.pickle_ops import MAX_LINE, inert_pickle_end, iter_ops, opname, plausible_stream
from aivet.limits import Limits

LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_CHUNK = 1 << 16  # bytes between limit checks
_MAX_TUPLE = 64  # longer tuples become opaque
_MAX_ANOMALIES = 200
_MAX_PERSISTENT_SAMPLES = 5
# Streams at least this long are first tried as data-only pickles (a walk in C, see
# pickle_ops.inert_pickle_end); below it the walk's one-off set-up costs more than emulating.
INERT_MIN_BYTES = 1 << 20
TENSOR_RECORDS = True  # torch's tensor record as one step (pickle_record); tests turn it off to compare

_unpack_I = struct.Struct("<I").unpack_from
_unpack_i = struct.Struct("<i").unpack_from
_unpack_H = struct.Struct("<H").unpack_from
_unpack_Q = struct.Struct("<Q").unpack_from
_unpack_d = struct.Struct(">d").unpack_from


_LIST = Opaque("list")
_DICT = Opaque("dict")
_SET = Opaque("set")
_FROZENSET = Opaque("frozenset")
_TUPLE = Opaque("tuple")
_BUFFER = Opaque("buffer")
_DYNAMIC = Opaque("unresolved global")
_FLOAT = Opaque("float")
_DATA = Opaque("data")  # the value of a data-only pickle that was walked, not emulated
_KEEPS_DICT = (0x62, 0x92, 0x86)  # BUILD, NEWOBJ_EX, TUPLE2: a dict's items just before them are kept

_IMPORTERS = frozenset({"builtins.__import__", "importlib.import_module", "importlib.__import__", "pydoc.locate",
                        "pkgutil.resolve_name", "pydoc.pipes.locate"})
_LOADERS = frozenset({"pickle.loads", "pickle.load", "pickle._loads", "dill.loads", "cloudpickle.loads",
                      "pickle.Unpickler", "numpy.loads", "joblib.load", "torch.load"})
# Callees whose arguments decide something (what the result names, or a pickle to emulate).
_ARGUMENTS_MATTER = _IMPORTERS | _LOADERS | {"builtins.getattr", "functools.partial", "functools.partialmethod",
                                             "operator.attrgetter", "operator.itemgetter", "operator.methodcaller"}


# ---------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------

class PickleVM:
    """Emulate one byte stream (possibly several consecutive pickles) symbolically.

    ``data`` is bytes or an mmap (anything whose slices are bytes); ``end`` stops
    reading early (the byte limit). ``ecosystem``
    selects the allowlist for arguments of conditional globals. Findings are
    collected in :attr:`result` as the stream is read, so they survive a
    :class:`FormatError` raised part way through.
    """

    def __init__(self, data: Any, limits: Limits, *, ecosystem: str | None = None, nesting: int = 0,
                 result: Result | None = None, origin: int | None = None, deadline: float | None = None,
                 end: int | None = None) -> None:
        self.data = data
        self.end = len(data) if end is None else min(end, len(data))
        self.limits = limits
        self.ecosystem = ecosystem
        self.nesting = nesting
        self.result = result if result is not None else Result()
        self.origin = origin  # offset in the outer stream of a nested pickle's bytes constant
        self.deadline = deadline if deadline is not None else time.monotonic() + limits.max_seconds_per_file
        self.ops = 0
        self._counted_only: dict[str, Use] = {}  # raw global name -> its Use, once calls need only counting
        self._verdicts: dict[tuple[Any, ...], tuple[Classification, str]] = {}  # conditional calls seen
        # Objects whose instance dict the pickle has filled (BUILD, or a call that sets state), by
        # id; the values keep them alive so that an id is never reused for another object.
        self.built: dict[int, Any] = {}
        self.shapes: dict[bytes, tuple[int, ...]] = {}  # tensor shapes by their opcodes (pickle_record)
        self.dtype_states: dict[int, Any] = {}  # BUILD state of numpy.dtype calls, by id (kept alive above)

    # -- recording ----------------------------------------------------------------------------
    def _off(self, pos: int) -> int:
        return pos if self.origin is None else self.origin

    def _use(self, name: str, pos: int, op: int) -> Use:
        use = self.result.uses.get(name)
        if use is None:
            use = Use(name, self._off(pos), opname(op), nested=self.nesting)
            self.result.uses[name] = use
        return use

    def reference(self, name: str, pos: int, op: int) -> None:
        self._use(name, pos, op).references += 1

    def anomaly(self, kind: str, message: str, pos: int, **details: Any) -> None:
        res = self.result
        res.anomaly_count += 1
        if len(res.anomalies) < _MAX_ANOMALIES:
            if self.nesting:
                details["nested"] = self.nesting
            res.anomalies.append(Anomaly(kind, message, self._off(pos), details))

    def call(self, func: Any, args: Any, kwargs: Any, pos: int, op: int) -> Call:
        """Record calling ``func`` and return the symbolic result."""
        if type(func) is Global:
            return self._call_global(func.full, func, args, kwargs, pos, op)
        callee = symbol(func)
        eff_args = args
        via = None
        if type(func) is Call:
            fc = func.callee
            if fc == "operator.methodcaller" and type(func.args) is tuple and func.args \
                    and type(func.args[0]) is str and type(args) is tuple and args:
                base = symbol(args[0])
                callee = f"{base}.{func.args[0]}" if base else None
                eff_args = func.args[1:]
                via = render(func)
            elif fc in ("functools.partial", "functools.partialmethod") and type(func.args) is tuple and func.args:
                callee = symbol(func.args[0])
                eff_args = func.args[1:] + args if type(args) is tuple else args
                via = render(func)
            elif fc in ("operator.attrgetter", "operator.itemgetter") and func.target is None:
                callee = fc  # calling the getter object is a lookup; the result's name is its target
                via = render(func)
            elif callee is not None:
                via = render(func)
        if callee is None:
            self.anomaly("unresolved", f"call of a value that is not a resolvable global: {render(func)}",
                         pos, call=render_call(render(func), args, kwargs), opcode=opname(op))
            return Call(func, args, kwargs, None, None)
        return self._call_global(callee, func, eff_args, kwargs, pos, op, via)

    def _call_global(self, name: str, func: Any, eff_args: Any, kwargs: Any, pos: int, op: int,
                     via: str | None = None) -> Call:
        """Record a call of the global ``name`` (the hot path: every tensor in a checkpoint is one)."""
        if type(eff_args) is tuple:
            # A global handed to a call may be called, iterated or hashed by it (defaultdict,
            # _rebuild_from_type_v2, numpy's random ctors...): note where each one goes.
            for a in eff_args:
                if type(a) is Global and a.use is not None and a.use.passed_to is None:
                    a.use.passed_to = name
        if kwargs is not None and type(kwargs) is DictVal:  # NEWOBJ_EX keyword arguments
            for a in kwargs.items[1::2]:
                if type(a) is Global and a.use is not None and a.use.passed_to is None:
                    a.use.passed_to = name
        if via is None:
            use = self._counted_only.get(name)
            if use is not None:
                use.calls += 1
                if use.name not in allowlist.CONDITIONAL:
                    return Call(func, eff_args, kwargs, use.name, None)
                self._conditional(use, eff_args, kwargs)  # every call: its verdicts are cached
                result = Call(func, eff_args, kwargs, use.name, None)
                if use.name in allowlist.STATEFUL:
                    self.built[id(result)] = result
                return result
        callee = allowlist.normalize(name)
        use = self._use(callee, pos, op)
        use.calls += 1
        limit = self.limits.max_reported_calls_per_global
        if len(use.samples) >= limit and via is None and callee not in _ARGUMENTS_MATTER:
            # Its samples are full and the result names nothing: from now on a call of it is only
            # counted (and, for a conditional name, its arguments checked).
            self._counted_only[name] = use
        if len(use.samples) < limit:
            text = render_call(callee, eff_args, kwargs)
            if via is not None:
                text += f"  [via {via}]"
            use.samples.append((self._off(pos), text))
        if callee in allowlist.CONDITIONAL:
            self._conditional(use, eff_args, kwargs)  # every call: its verdicts are cached
        target = self._target(callee, func, eff_args)
        if callee in _LOADERS and type(eff_args) is tuple and eff_args \
                and (type(eff_args[0]) is bytes or callee.endswith("loads") and type(eff_args[0]) is str):
            self._nested(eff_args[0], pos, forced=True)
        result = Call(func, eff_args, kwargs, callee, target)
        if callee in allowlist.STATEFUL:
            self.built[id(result)] = result  # its attributes come from the pickle, as after a BUILD
        return result

    def _conditional(self, use: Use, args: Any, kwargs: Any = None) -> None:
        """Decide an allowlisted name whose safety depends on the call (cached per argument names)."""
        if type(args) is tuple:
            names = tuple([a.full if type(a) is Global else a.target if type(a) is Call else None for a in args])
        else:
            names = (symbol(args),)
        if type(kwargs) is DictVal:
            names += tuple([symbol(a) for a in kwargs.items[1::2]])
        # Only codecs.encode is decided by constness (protocol 2 writes bytes as encode(str, 'latin1')).
        constant = False
        if use.name == "codecs.encode":
            constant = type(args) is tuple and len(args) == 2 and type(args[0]) is str and type(args[1]) is str \
                or _is_constant(args)
        key = (use.name, names, constant)
        found = self._verdicts.get(key)
        if found is None:
            found = allowlist.conditional_verdict(use.name, list(names), key[2], self.ecosystem)
            if len(self._verdicts) < 4096:
                self._verdicts[key] = found
        verdict, reason = found
        if verdict is Classification.SAFE:
            if use.verdict is None:
                use.verdict, use.reason = verdict, reason
            return
        order = (Classification.SAFE, Classification.UNKNOWN, Classification.DANGEROUS)
        if use.verdict is None or order.index(verdict) > order.index(use.verdict):
            use.verdict, use.reason = verdict, reason

    @staticmethod
    def _target(callee: str, func: Any, args: Any) -> str | None:
        """What name the call's result stands for, if it is a name lookup."""
        if type(args) is not tuple or not args:
            return None
        first = args[0]
        if callee in _IMPORTERS and type(first) is str:
            return first
        if callee == "builtins.getattr" and len(args) >= 2 and type(args[1]) is str:
            base = symbol(first)
            return f"{base}.{args[1]}" if base else None
        if type(func) is Call and func.callee == "operator.attrgetter" and type(func.args) is tuple \
                and func.args and type(func.args[0]) is str:
            base = symbol(first)
            return f"{base}.{func.args[0]}" if base else None
        if callee in ("functools.partial", "functools.partialmethod"):
            return symbol(first)
        return None

    def _nested(self, value: Any, pos: int, *, forced: bool = False) -> None:
        """Emulate a bytes (or str) constant that is itself a pickle.

        ``forced``: the bytes are passed to a loader (``pickle.loads``), so they are emulated
        whatever they look like. Otherwise only bytes framed like a binary pickle are tried, and
        only a complete, well-formed inner pickle is reported (array data can look like one)."""
        if type(value) is str:
            value = value.encode("latin-1", "replace")
        if type(value) is not bytes or len(value) < 2:
            return
        if not forced and not (value[0] == 0x80 and value[1] <= 5 and value[-1:] == b"."):
            return
        if self.nesting + 1 > self.limits.max_pickle_nesting:
            self.anomaly("nested", "pickle nesting deeper than the limit; inner pickle not analysed", pos,
                         limit="max_pickle_nesting")
            return
        inner_result = self.result if forced else Result()
        inner = PickleVM(value, self.limits, ecosystem=self.ecosystem, nesting=self.nesting + 1,
                         result=inner_result, origin=self._off(pos), deadline=self.deadline)
        try:
            _, after = inner.run_one(0)
        except FormatError as exc:
            if forced:
                self.anomaly("nested", f"embedded pickle is malformed: {exc}", pos, size=len(value))
            return
        finally:
            self.ops += inner.ops
        if not forced:
            if after != len(value):
                return
            self._merge(inner_result)
        self.anomaly("nested", f"a {len(value)}-byte pickle is embedded as a constant", pos, size=len(value),
                     passed_to_loader=forced)

    def _merge(self, other: Result) -> None:
        for name, use in other.uses.items():
            mine = self.result.uses.get(name)
            if mine is None:
                self.result.uses[name] = use
                continue
            mine.references += use.references
            mine.calls += use.calls
            mine.samples.extend(use.samples[: max(0, self.limits.max_reported_calls_per_global - len(mine.samples))])
            mine.setstate = mine.setstate or use.setstate
            mine.passed_to = mine.passed_to or use.passed_to
            if use.verdict is not None and (mine.verdict is None or use.verdict is Classification.DANGEROUS
                                            or mine.verdict is Classification.SAFE):
                mine.verdict, mine.reason = use.verdict, use.reason
        for anomaly in other.anomalies:
            self.result.anomaly_count += 1
            if len(self.result.anomalies) < _MAX_ANOMALIES:
                self.result.anomalies.append(anomaly)

    # -- the stream -----------------------------------------------------------------------------
    def run(self) -> Result:
        """Emulate every consecutive pickle in the data; return :attr:`result`.

        Raises FormatError (malformed) or LimitExceeded; findings found before the
        error are already in :attr:`result`.
        """
        res = self.result
        pos = 0
        end = self.end
        data = self.data
        while True:
            value, pos = self.run_one(pos)
            res.pickles += 1
            res.end = pos
            if res.pickles == 1 and type(value) is int and value == LEGACY_TORCH_MAGIC:
                res.legacy_torch = True
            if res.legacy_torch and res.pickles == 5:
                return res  # the rest is raw storage bytes, never a pickle
            if pos >= end:
                return res
            if res.legacy_torch:
                continue  # torch's legacy loader reads five pickles, whatever their first opcodes
            head = bytes(data[pos:pos + 256])
            if (head[0] == 0x80 and len(head) > 1 and head[1] <= 5) or plausible_stream(head):
                continue
            after = self._try_pickle(pos)
            if after is not None:
                # Not how a pickler starts (``I 1001\n``), but a loader reads it to its STOP.
                res.pickles += 1
                res.end = pos = after
                if pos >= end:
                    return res
                continue
            self.anomaly("trailing", f"{end - pos} bytes after the pickle's STOP are not a pickle", pos,
                         size=end - pos)
            return res

    def _try_pickle(self, pos: int) -> int | None:
        """Emulate the bytes at ``pos`` as a pickle on the side; if they read to a STOP, keep what
        they do and return the position after it. Otherwise (data that is not a pickle) None."""
        trial = PickleVM(self.data, self.limits, ecosystem=self.ecosystem, nesting=self.nesting, result=Result(),
                         origin=self.origin, deadline=self.deadline, end=self.end)
        trial.ops = self.ops
        try:
            _, after = trial.run_one(pos)
        except FormatError:
            return None
        finally:
            self.ops = max(self.ops, trial.ops)
        self._merge(trial.result)
        return after

    def run_one(self, pos: int) -> tuple[Any, int]:
        """Emulate one pickle starting at ``pos``; return (value left by STOP, position after it).

        A data-only pickle of at least :data:`INERT_MIN_BYTES` is walked instead; its value is
        then an opaque placeholder (nothing reads the value of such a pickle).
        """
        self._where = pos
        end = self.end
        if end - pos >= INERT_MIN_BYTES:
            # A data-only pickle imports and calls nothing: emulating it would find nothing, so
            # it is only walked. Each opcode takes a byte, so the span also bounds the count.
            after = inert_pickle_end(self.data, pos, end, self.limits.max_pickle_stack_depth)
            if after is not None and self.ops + (after - pos) <= self.limits.max_pickle_opcodes:
                self.ops += after - pos
                return _DATA, after
        try:
            return self._loop(pos)
        except IndexError:
            raise FormatError("stack underflow, missing memo entry or truncated stream", self._where) from None
        except (struct.error, ValueError, UnicodeDecodeError, OverflowError) as exc:
            raise FormatError(f"bad opcode argument: {exc}", self._where) from None

    _where = 0  # last known position, for errors raised by Python itself (IndexError, struct.error)

    def _loop(self, pos: int) -> tuple[Any, int]:  # noqa: C901 - one flat dispatch loop on purpose
        data = self.data
        end = self.end
        limits = self.limits
        max_depth = limits.max_pickle_stack_depth
        max_ops = limits.max_pickle_opcodes
        stack: list[Any] = []
        metastack: list[list[Any]] = []
        memo: list[Any] = []
        append = stack.append
        start = pos
        v: Any = None
        records = TENSOR_RECORDS
        last_container = -1  # after the last EMPTY_DICT / EMPTY_LIST not followed by a MARK (and its memo store)
        # Module constants the loop compares against, as locals (faster to load).
        DICT, LIST, SET, FreshList = _DICT, _LIST, _SET, _FreshList
        while True:
            chunk_end = min(end, pos + _CHUNK)
            # Each opcode takes at least one byte, so bytes read bound the opcodes executed.
            self.ops += chunk_end - pos
            if self.ops > max_ops:
                self._count_exactly(start, pos)
            if time.monotonic() > self.deadline:
                raise LimitExceeded("max_seconds_per_file", "pickle emulation took too long", pos)
            depth = len(stack) + sum(len(s) for s in metastack[-64:])
            if depth > max_depth or len(metastack) > max_depth:
                raise LimitExceeded("max_pickle_stack_depth", f"stack deeper than {max_depth}", pos)
            if pos >= end:
                raise FormatError("pickle ends without STOP", pos)
            try:
                while pos < chunk_end:
                    op = data[pos]
                    pos += 1
                    if op == 0x68:  # BINGET (the most common opcode in real pickles)
                        idx = data[pos]
                        pos += 1
                        append(memo[idx])  # IndexError: never stored
                        # A memoized dict key is usually followed by a scalar value: fuse the common ones.
                        if pos + 5 < end:
                            nxt = data[pos]
                            if nxt == 0x28:
                                if data[pos + 1] == 0x28 and records and len(metastack) + 2 <= max_depth:
                                    record = tensor_record(self, stack[-1], pos, memo, chunk_end)
                                    if record is not None:
                                        stack[-1], pos = record
                            elif nxt == 0x4A:
                                append(_unpack_i(data, pos + 1)[0])
                                pos += 5
                            elif nxt == 0x4B:
                                append(data[pos + 1])
                                pos += 2
                            elif nxt == 0x4E:
                                append(None)
                                pos += 1
                                if data[pos] == 0x75 and data[pos + 1] not in (0x62, 0x92, 0x86):  # _KEEPS_DICT
                                    stack = metastack.pop()  # fused SETITEMS
                                    append = stack.append
                                    pos += 1
                                    if stack[-1] is not DICT:  # IndexError: nothing under the mark
                                        pickle_state.fill(self, stack[-1], 0x75, pos - 1)
                    elif op == 0x4B:  # BININT1
                        append(data[pos])
                        pos += 1
                    elif op == 0x72 or op == 0x71:  # LONG_BINPUT, BINPUT
                        if op == 0x72:
                            idx = _unpack_I(data, pos)[0]
                            pos += 4
                        else:
                            idx = data[pos]
                            pos += 1
                        if idx == len(memo):
                            memo.append(stack[-1])
                        else:
                            memo_put(memo, idx, stack[-1], pos)
                    elif op == 0x52:  # REDUCE
                        args = stack.pop()
                        stack[-1] = self.call(stack[-1], args, None, pos - 1, op)
                    elif op == 0x51:  # BINPERSID
                        stack[-1] = self.persistent(stack[-1], pos - 1)
                    elif op == 0x4A:  # BININT
                        append(_unpack_i(data, pos)[0])
                        pos += 4
                    elif op == 0x5D or op == 0x7D:  # EMPTY_LIST, EMPTY_DICT
                        v = LIST if op == 0x5D else DICT
                        append(v)
                        # Fuse the memo store and MARK that almost always follow an empty container.
                        if pos + 5 < end:
                            nxt = data[pos]
                            if nxt == 0x94:
                                memo.append(v)
                                pos += 1
                            elif nxt == 0x72 and _unpack_I(data, pos + 1)[0] == len(memo):
                                memo.append(v)
                                pos += 5
                            elif nxt == 0x71 and data[pos + 1] == len(memo):
                                memo.append(v)
                                pos += 2
                            if data[pos] == 0x28:
                                metastack.append(stack)
                                # A dict's first items: marked, so that a BUILD reading them knows they are all.
                                stack = FreshList() if op == 0x7D else []
                                append = stack.append
                                pos += 1
                                if len(metastack) > max_depth:
                                    raise LimitExceeded("max_pickle_stack_depth",
                                                        f"more than {max_depth} nested marks", pos)
                            else:
                                last_container = pos  # a one-item dict's key and value follow (SETITEM)
                    elif op == 0x8C:  # SHORT_BINUNICODE
                        n = data[pos]
                        pos += 1 + n
                        if pos > end:
                            raise FormatError("SHORT_BINUNICODE runs past the end", pos)
                        try:
                            v = data[pos - n:pos].decode()
                        except UnicodeDecodeError:
                            v = decode_text(data, pos - n, pos)
                        append(v)
                        if pos < end:
                            nxt = data[pos]
                            if nxt == 0x94:  # fused MEMOIZE
                                memo.append(v)
                                pos += 1
                    elif op == 0x94:  # MEMOIZE
                        memo.append(stack[-1])
                    elif op == 0x28:  # MARK
                        metastack.append(stack)
                        stack = []
                        append = stack.append
                        if len(metastack) > max_depth:
                            raise LimitExceeded("max_pickle_stack_depth", f"more than {max_depth} nested marks",
                                                pos)
                    elif op == 0x47:  # BINFLOAT
                        if pos + 8 > end:
                            raise FormatError("truncated BINFLOAT", pos)
                        append(_FLOAT)  # the value never decides a verdict; skipping the unpack is faster
                        pos += 8
                        if pos < end and data[pos] == 0x65:
                            stack = metastack.pop()  # fused APPENDS (floats end many lists)
                            append = stack.append
                            pos += 1
                            if stack[-1] is not LIST:  # IndexError: nothing under the mark
                                pickle_state.fill(self, stack[-1], 0x65, pos - 1)
                    elif op == 0x75 or op == 0x65 or op == 0x90:  # SETITEMS, APPENDS, ADDITEMS
                        items = stack
                        stack = metastack.pop()
                        append = stack.append
                        target = stack[-1]  # IndexError: nothing under the mark
                        if target is DICT:
                            if op == 0x75 and len(items) <= 64 and pos < end:
                                # Keep the items when BUILD or NEWOBJ_EX reads the dict next, or
                                # TUPLE2 makes it slot state (a FRAME boundary may sit in between).
                                nxt = data[pos]
                                if nxt == 0x95 and pos + 9 < end:
                                    nxt = data[pos + 9]
                                if nxt in _KEEPS_DICT:
                                    stack[-1] = DictVal(items, type(items) is _FreshList, pos)
                        elif target is not LIST and target is not SET:
                            pickle_state.fill(self, target, op, pos - 1)
                    elif op == 0x4E:  # NONE
                        append(None)
                        if pos + 1 < end and data[pos] == 0x75 and data[pos + 1] not in (0x62, 0x92, 0x86):
                            stack = metastack.pop()  # fused SETITEMS (None is a common last value)
                            append = stack.append
                            pos += 1
                            if stack[-1] is not DICT:  # IndexError: nothing under the mark
                                pickle_state.fill(self, stack[-1], 0x75, pos - 1)
                    elif op == 0x58 or op == 0x8D:  # BINUNICODE, BINUNICODE8
                        if op == 0x58:
                            n = _unpack_I(data, pos)[0]
                            pos += 4
                        else:
                            n = _unpack_Q(data, pos)[0]
                            pos += 8
                        if n > end - pos:
                            raise FormatError(f"string length {n} runs past the end", pos)
                        pos += n
                        try:
                            v = data[pos - n:pos].decode()
                        except UnicodeDecodeError:
                            v = decode_text(data, pos - n, pos)
                        append(v)
                        if pos + 5 < end and data[pos] == 0x72 and _unpack_I(data, pos + 1)[0] == len(memo):
                            memo.append(v)  # fused LONG_BINPUT (protocol 2/3 memoize every string)
                            pos += 5
                    elif op == 0x6A:  # LONG_BINGET
                        idx = _unpack_I(data, pos)[0]
                        pos += 4
                        append(memo[idx])  # IndexError: never stored
                        if pos + 1 < end and data[pos] == 0x28 and data[pos + 1] == 0x28 and records \
                                and len(metastack) + 2 <= max_depth:
                            record = tensor_record(self, stack[-1], pos, memo, chunk_end)
                            if record is not None:
                                stack[-1], pos = record
                    elif op == 0x85:  # TUPLE1
                        stack[-1] = (stack[-1],)
                    elif op == 0x86:  # TUPLE2
                        b = stack.pop()
                        stack[-1] = (stack[-1], b)
                    elif op == 0x87:  # TUPLE3
                        c = stack.pop()
                        b = stack.pop()
                        stack[-1] = (stack[-1], b, c)
                    elif op == 0x74:  # TUPLE
                        items = stack
                        stack = metastack.pop()
                        append = stack.append
                        append(tuple(items) if len(items) <= _MAX_TUPLE else _TUPLE)
                    elif op == 0x29:  # EMPTY_TUPLE
                        append(())
                    elif op == 0x73:  # SETITEM
                        if len(stack) < 3:
                            raise IndexError
                        target = stack[-3]
                        if target is DICT:
                            if pos < end and data[pos] in _KEEPS_DICT:  # a one-item dict, as picklers write it
                                stack[-3] = DictVal(stack[-2:], pickle_state.one_item(self, last_container, pos - 1), pos)
                        else:
                            pickle_state.fill(self, target, op, pos - 1)
                        del stack[-2:]
                    elif op == 0x61:  # APPEND
                        stack.pop()
                        if stack[-1] is not LIST:  # IndexError: nothing to append to
                            pickle_state.fill(self, stack[-1], op, pos - 1)
                    elif op == 0x4D:  # BININT2
                        append(_unpack_H(data, pos)[0])
                        pos += 2
                    elif op == 0x88:  # NEWTRUE
                        append(True)
                    elif op == 0x89:  # NEWFALSE
                        append(False)
                    elif op == 0x43 or op == 0x42 or op == 0x8E or op == 0x96 or op == 0x55 or op == 0x54:
                        # SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8, SHORT_BINSTRING, BINSTRING
                        if op == 0x43 or op == 0x55:
                            n = data[pos]
                            pos += 1
                        elif op == 0x42:
                            n = _unpack_I(data, pos)[0]
                            pos += 4
                        elif op == 0x54:
                            n = _unpack_i(data, pos)[0]
                            pos += 4
                            if n < 0:
                                raise FormatError("negative BINSTRING length", pos)
                        else:
                            n = _unpack_Q(data, pos)[0]
                            pos += 8
                        if n > end - pos:
                            raise FormatError(f"{opname(op)} length {n} runs past the end", pos)
                        pos += n
                        if op == 0x55 or op == 0x54:
                            append(str(data[pos - n:pos], "latin-1"))  # py2 str: the loader decodes it
                        elif n > self.limits.max_string_bytes:
                            append(Opaque("bytes"))
                        else:
                            raw = bytes(data[pos - n:pos])
                            append(raw if op != 0x96 else Opaque("bytearray"))
                            if n > 2 and raw[0] == 0x80:
                                self._nested(raw, pos)
                    elif op == 0x95:  # FRAME
                        n = _unpack_Q(data, pos)[0]
                        pos += 8
                        if n > end - pos:
                            raise FormatError(f"frame of {n} bytes runs past the end", pos)
                    elif op == 0x8A or op == 0x8B:  # LONG1, LONG4
                        if op == 0x8A:
                            n = data[pos]
                            pos += 1
                        else:
                            n = _unpack_i(data, pos)[0]
                            pos += 4
                            if n < 0:
                                raise FormatError("negative LONG4 length", pos)
                        if n > end - pos:
                            raise FormatError("LONG length runs past the end", pos)
                        pos += n
                        append(int.from_bytes(data[pos - n:pos], "little", signed=True) if n <= 64
                               else Opaque("long"))
                    elif op == 0x93:  # STACK_GLOBAL
                        name = stack.pop()
                        module = stack[-1]
                        stack[-1] = self._global(module, name, pos - 1, op)
                    elif op == 0x63 or op == 0x69:  # GLOBAL, INST
                        at = pos - 1
                        module_b, pos = self._line(pos)
                        name_b, pos = self._line(pos)
                        g = self._global(module_b.decode("utf-8", "surrogateescape"),
                                         name_b.decode("utf-8", "surrogateescape"), at, op)
                        if op == 0x63:
                            append(g)
                        else:
                            items = stack
                            stack = metastack.pop()
                            append = stack.append
                            append(self.call(g, tuple(items[:_MAX_TUPLE]), None, at, op))
                    elif op == 0x81:  # NEWOBJ
                        args = stack.pop()
                        stack[-1] = self.call(stack[-1], args, None, pos - 1, op)
                    elif op == 0x92:  # NEWOBJ_EX
                        kwargs = stack.pop()
                        args = stack.pop()
                        stack[-1] = self.call(stack[-1], args, kwargs, pos - 1, op)
                    elif op == 0x6F:  # OBJ
                        items = stack
                        stack = metastack.pop()
                        append = stack.append
                        if not items:
                            raise IndexError
                        append(self.call(items[0], tuple(items[1:_MAX_TUPLE]), None, pos - 1, op))
                    elif op == 0x62:  # BUILD
                        state = stack.pop()
                        pickle_state.build(self, stack[-1], state, pos - 1)
                        if self.joblib_wrapper:
                            pos = pickle_state.skip_joblib_array(self, pos)
                    elif op == 0x2E:  # STOP
                        return stack.pop(), pos  # CPython ignores anything left under the result
                    elif op == 0x30:  # POP
                        if stack:
                            stack.pop()
                        else:
                            stack = metastack.pop()
                            append = stack.append
                    elif op == 0x31:  # POP_MARK
                        stack = metastack.pop()
                        append = stack.append
                    elif op == 0x32:  # DUP
                        append(stack[-1])
                    elif op == 0x6C or op == 0x64:  # LIST, DICT
                        stack = metastack.pop()
                        append = stack.append
                        append(_LIST if op == 0x6C else _DICT)
                    elif op == 0x8F:  # EMPTY_SET
                        append(_SET)
                    elif op == 0x91:  # FROZENSET
                        stack = metastack.pop()
                        append = stack.append
                        append(_FROZENSET)
                    elif op == 0x70 or op == 0x67:  # PUT, GET (text)
                        line, pos = self._line(pos)
                        idx = int(line)
                        if idx < 0:
                            raise FormatError("negative memo index", pos)
                        if op == 0x70:
                            memo_put(memo, idx, stack[-1], pos)
                        else:
                            v = memo[idx]
                            append(v)
                    elif op == 0x49 or op == 0x4C:  # INT, LONG (text)
                        line, pos = self._line(pos)
                        if op == 0x49 and line in (b"00", b"01"):
                            append(line == b"01")
                        else:
                            append(int(line[:-1] if line.endswith(b"L") else line))
                    elif op == 0x46:  # FLOAT
                        line, pos = self._line(pos)
                        append(float(line))
                    elif op == 0x53:  # STRING
                        line, pos = self._line(pos)
                        if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
                            raise FormatError("STRING argument is not quoted", pos)
                        append(codecs.escape_decode(line[1:-1])[0].decode("latin-1"))
                    elif op == 0x56:  # UNICODE
                        line, pos = self._line(pos)
                        append(line.decode("raw-unicode-escape"))
                    elif op == 0x50:  # PERSID
                        line, pos = self._line(pos)
                        append(self.persistent(line.decode("ascii", "replace"), pos))
                    elif op == 0x82 or op == 0x83 or op == 0x84:  # EXT1, EXT2, EXT4
                        if op == 0x82:
                            code = data[pos]
                            pos += 1
                        elif op == 0x83:
                            code = _unpack_H(data, pos)[0]
                            pos += 2
                        else:
                            code = _unpack_i(data, pos)[0]
                            pos += 4
                        self.anomaly("unresolved", f"{opname(op)} loads extension code {code} from the copyreg "
                                     "registry: the global it names depends on the loading process",
                                     pos, opcode=opname(op), code=code)
                        append(Opaque(f"extension {code}"))
                    elif op == 0x80:  # PROTO
                        if data[pos] > 5:
                            raise FormatError(f"unsupported protocol {data[pos]}", pos)
                        pos += 1
                    elif op == 0x97:  # NEXT_BUFFER
                        append(_BUFFER)
                    elif op == 0x98:  # READONLY_BUFFER
                        stack[-1]  # noqa: B018 - must exist
                    else:
                        raise FormatError(f"unknown opcode 0x{op:02x}", pos)
            except (IndexError, struct.error, ValueError, UnicodeDecodeError, OverflowError):
                self._where = pos  # Python raised it: remember where for the FormatError
                raise
            if pos > end:
                raise FormatError("opcode argument runs past the end", pos)

    # -- helpers for rarer opcodes (BUILD and container fills: pickle_state) ----------------------
    joblib_pending: Any = None  # the state of the NumpyArrayWrapper just built, if it can be trusted
    joblib_wrapper = False  # a NumpyArrayWrapper was just built: its array bytes follow (pickle_state)

    def _count_exactly(self, start: int, pos: int) -> None:
        """Bytes read over-count opcodes; once that bound passes the limit, count the real ones."""
        begin = max(start, self._counted_pos)
        real = 0
        try:
            for _ in iter_ops(self.data, begin, pos, stop_at_stop=False):
                real += 1
        except FormatError:
            pass  # raw array bytes (joblib) or the chunk end: the count so far is what matters
        self._exact_ops += real
        self._counted_pos = pos
        self.ops = self._exact_ops
        if self._exact_ops > self.limits.max_pickle_opcodes:
            raise LimitExceeded("max_pickle_opcodes", f"more than {self.limits.max_pickle_opcodes} opcodes", pos)

    _counted_pos = 0
    _exact_ops = 0

    def _line(self, pos: int) -> tuple[bytes, int]:
        data = self.data
        limit = min(self.end, pos + MAX_LINE)
        chunk = bytes(data[pos:limit])
        nl = chunk.find(b"\n")
        if nl < 0:
            raise FormatError("text argument without newline", pos)
        line = chunk[:nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        return line, pos + nl + 1

    def _global(self, module: Any, name: Any, pos: int, op: int) -> Any:
        if type(module) is not str or type(name) is not str:
            self.anomaly("unresolved", f"{opname(op)} with a name computed at load time: "
                         f"{render(module)} . {render(name)}", pos, opcode=opname(op),
                         module=render(module), name=render(name))
            return _DYNAMIC
        g = Global(module, name)
        full = g.full
        if "\n" in full or full != full.strip() or not full.isascii():
            self.anomaly("unresolved", f"global name with unusual characters: {full!r}", pos,
                         opcode=opname(op), name=repr(full))
        use = self._use(allowlist.normalize(full), pos, op)
        use.references += 1
        g.use = use
        return g

    def persistent(self, pid: Any, pos: int) -> Persistent:
        res = self.result
        res.persistent_count += 1
        if len(res.persistent_ids) < _MAX_PERSISTENT_SAMPLES:
            res.persistent_ids.append(render(pid))
        if type(pid) is tuple:
            for v in pid:  # the loader's persistent_load uses the storage class it names
                if type(v) is Global and v.use is not None and v.use.passed_to is None:
                    v.use.passed_to = "persistent_load"
        return Persistent(pid)

