"""What a pickle's BUILD, SETITEM(S), APPEND(S) and ADDITEMS can make the loader run, and
joblib's raw array bytes, for :class:`aivet.analyzers.pickle_vm.PickleVM`.

A loader applies BUILD state with ``__setstate__`` or ``setattr`` and fills containers with
the object's own ``append`` / ``extend`` / ``add``: a pickle that fills an object's instance
dict first can make those lookups land on callables it chose. The checks here report such
sequences as anomalies; ordinary pickles (one BUILD per object, after its items, ordinary
slot names) pass. joblib writes each array's raw bytes right after its wrapper's BUILD:
:func:`skip_joblib_array` skips exactly what joblib reads, so opcodes hidden there are seen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aivet.analyzers import allowlist
from aivet.analyzers.pickle_values import Call, DictVal, Global, Opaque, Persistent, render, symbol
from aivet.formats import FormatError
from aivet.formats.pickle_ops import iter_ops, opname

if TYPE_CHECKING:
    from aivet.analyzers.pickle_vm import PickleVM

# Opcodes that push one value and pop nothing (constants, memo fetches, GLOBAL), and memo stores.
_PUSHES = frozenset(b"NKJM\x8a\x8bGFILSVUTCB\x8e\x8cX\x8d\x88\x89)]}\x8fhjgc")
_MEMO_PUTS = frozenset(b"\x94qrp")
# Allowlisted callables whose result is a mapping (usable as BUILD slot state).
_MAPPINGS = frozenset({"builtins.dict", "collections.OrderedDict", "collections.defaultdict", "collections.Counter",
                       "sklearn.utils._bunch.Bunch"})
_UNREAD_DICT = Opaque("dict")  # slot state filled in pieces or aliased: its items are unknown


def next_to(data: Any, at: int, build: int, *, tuple2: bool = False) -> bool:
    """True if the dict filled just before ``at`` reaches the BUILD at ``build`` directly: only a
    FRAME, or (``tuple2``) TUPLE2 and a memo store of the tuple, in between."""
    if at < 0 or build < at or build - at > 16:
        return False
    if tuple2:
        if data[at] != 0x86:
            return False
        at += 1
        if at < build and data[at] == 0x94:
            at += 1
        elif at + 1 < build and data[at] == 0x71:
            at += 2
        elif at + 4 < build and data[at] == 0x72:
            at += 5
    if at + 9 <= build and data[at] == 0x95:
        at += 9
    return at == build


def build(vm: PickleVM, obj: Any, state: Any, pos: int) -> None:
    if type(state) is Global:
        vm.anomaly("build", f"BUILD state is the global {state.full}", pos, state=state.full)
    if type(obj) is Global:
        vm.anomaly("build", f"BUILD sets attributes on the global {obj.full} itself", pos, target=obj.full)
        return
    if type(obj) is Persistent:
        check_state(vm, obj, state, pos)  # a storage the loader supplies: never BUILT by torch
        return
    if type(obj) is not Call:
        return
    check_state(vm, obj, state, pos)
    if obj.callee is None:
        return
    cls = obj.callee
    if cls in ("copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__") \
            and type(obj.args) is tuple and obj.args:
        cls = symbol(obj.args[0]) or cls
    use = vm.result.uses.get(cls)
    if use is not None:
        use.setstate = True
    if cls == "joblib.numpy_pickle.NumpyArrayWrapper":
        whole = type(state) is DictVal and state.fresh and next_to(vm.data, state.at, pos)
        vm.joblib_pending = state if whole else None
        vm.joblib_wrapper = True
    elif cls == "numpy.dtype":
        vm.dtype_states[id(obj)] = state  # sets a flexible dtype's itemsize and object flag
    elif cls in _JOBLIB_SIDE_FILES:
        # joblib <= 0.9 kept arrays in side files, which it opens with numpy's pickle-enabled load.
        whole = type(state) is DictVal and state.fresh and next_to(vm.data, state.at, pos)
        filename = state.get("filename") if whole else None
        if type(filename) is not str or not filename or filename.startswith((".", "~")) \
                or any(c in filename for c in "/\\:\x00"):
            vm.anomaly("build", f"{cls} loads the file {render(filename)} with numpy's pickle-enabled load: "
                         "a path outside the model's directory, or one that cannot be read", pos,
                         target=cls, filename=render(filename))

def check_state(vm: PickleVM, obj: Call | Persistent, state: Any, pos: int) -> None:
    """What a BUILD's state can make the loader call later.

    The loader looks ``__setstate__`` up on the *instance*, and APPEND / ADDITEMS look up
    ``extend`` / ``append`` / ``add`` there too: once a BUILD has filled the instance dict,
    a second BUILD or an APPEND can call any value it put there. Slot state is applied with
    ``setattr``, so ``__class__`` swaps the object's class (its methods then run wherever the
    object is hashed or passed). Pickles written by a pickler BUILD each object once, after
    its items, with ordinary slot names.
    """
    name = _class_of(obj)
    if id(obj) in vm.built:
        vm.anomaly("build", f"second BUILD on the same {name} object: the state an earlier BUILD put in "
                     "its instance dict can run as __setstate__", pos, target=name)
    vm.built[id(obj)] = obj
    if type(state) is tuple and len(state) == 2:
        slots = state[1]
        if type(slots) is DictVal and not (slots.fresh and next_to(vm.data, slots.at, pos, tuple2=True)):
            slots = _UNREAD_DICT  # filled in pieces, or aliased through the memo: what it holds is unknown
        if type(slots) is DictVal:
            odd = [k for k in slots.items[::2] if type(k) is not str or k.startswith("__")]
            if odd:
                vm.anomaly("build", f"BUILD slot state sets {render(odd[0])} on {name} with setattr "
                             "(swaps its class or internals)", pos, target=name, attribute=render(odd[0]))
        elif type(slots) is Opaque or type(slots) is Call and slots.callee in _MAPPINGS:
            vm.anomaly("build", f"BUILD slot state {render(slots)} on {name} cannot be read; setattr of "
                         "its items may swap the object's class", pos, target=name)

def one_item(vm: PickleVM, start: int, setitem: int) -> bool:
    """True if the opcodes from ``start`` (right after an EMPTY_DICT and its memo store) to the
    SETITEM at ``setitem`` are one key and one value (memo stores allowed): the SETITEM filled a
    fresh dict."""
    if start < 0 or setitem - start > 4096:
        return False
    pushes = 0
    try:
        for _, code, _ in iter_ops(vm.data, start, setitem + 1, stop_at_stop=False):
            if code == 0x73:
                return pushes == 2
            elif code not in _MEMO_PUTS:
                if code not in _PUSHES:
                    return False
                pushes += 1
    except FormatError:
        return False
    return False

def fill(vm: PickleVM, target: Any, op: int, pos: int) -> None:
    """SETITEM(S), APPEND(S) or ADDITEMS on something that is not a fresh list, dict or set."""
    t = type(target)
    what = opname(op)
    if t is Global:
        vm.anomaly("build", f"{what} on the global {target.full} changes the loading process's state",
                     pos, target=target.full, opcode=what)
    elif (t is Call or t is Persistent) and op not in (0x73, 0x75):
        # Not a list or set: the loader calls the object's extend / append / add, which an
        # instance dict filled by BUILD, or a dict subclass's __getattr__ (sklearn's Bunch
        # returns items as attributes), can supply.
        name = _class_of(target)
        if name not in _APPENDABLE:
            vm.anomaly("build", f"{what} on a {name} object calls its extend / append / add, which the "
                         "pickle's own state can supply", pos, target=name, opcode=what)

def skip_joblib_array(vm: PickleVM, pos: int) -> int:
    """joblib writes the array's raw bytes right after the wrapper's BUILD; skip them."""
    state = vm.joblib_pending
    vm.joblib_pending = None
    vm.joblib_wrapper = False
    vm.result.joblib_arrays += 1
    if type(state) is not DictVal:
        # Not one dict filled at once right before the BUILD, as joblib writes it: the state
        # may hold more than the emulator saw (a key set earlier, or through a memo alias).
        raise FormatError("joblib array wrapper without a readable state", pos)
    shape = state.get("shape")
    dtype = state.get("dtype")
    align = state.get("numpy_array_alignment_bytes")
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
        raise FormatError("joblib array shape cannot be determined", pos)
    dtype_state = vm.dtype_states.get(id(dtype), _NO_STATE) if type(dtype) is Call else _NO_STATE
    itemsize, has_object = _dtype_itemsize(dtype, dtype_state)
    if has_object:
        # Object arrays are a nested pickle (protocol 5) right here in the stream.
        inner = type(vm)(vm.data, vm.limits, ecosystem=vm.ecosystem, nesting=vm.nesting,
                         result=vm.result, origin=vm.origin, deadline=vm.deadline, end=vm.end)
        _, after = inner.run_one(pos)
        vm.ops += inner.ops
        return after
    if itemsize is None:
        raise FormatError("joblib array dtype cannot be determined", pos)
    count = 1
    for d in shape:
        count *= d
    if align is not None:  # joblib reads the padding byte for any value but None
        if pos >= vm.end:
            raise FormatError("joblib array padding missing", pos)
        pos += 1 + vm.data[pos]
    nbytes = count * itemsize
    if nbytes > vm.end - pos:
        raise FormatError(f"joblib array of {nbytes} bytes runs past the end", pos)
    return pos + nbytes


_DTYPE_SIZES = {"b": 1, "B": 1, "?": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": 8, "L": 8, "q": 8, "Q": 8,
                "e": 2, "f": 4, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32}


_NO_STATE = Opaque("no state")
# Allowlisted classes whose instances are real lists, sets or deques: APPEND(S) / ADDITEMS on them
# call the type's own methods.
_APPENDABLE = frozenset({"builtins.list", "builtins.set", "collections.deque"})


def _class_of(obj: Call | Persistent) -> str:
    """The class (or callee) that made ``obj``, seen through copyreg's reconstructors."""
    if not isinstance(obj, Call):
        return "persistent"
    cls = obj.callee
    if cls in ("copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__") \
            and type(obj.args) is tuple and obj.args:
        arg = symbol(obj.args[0])
        cls = allowlist.normalize(arg) if arg else cls
    return cls or render(obj.func)


_JOBLIB_SIDE_FILES = frozenset({"joblib.numpy_pickle_compat.NDArrayWrapper", "joblib.numpy_pickle_compat.ZNDArrayWrapper"})


def _dtype_itemsize(dtype: Any, state: Any = _NO_STATE) -> tuple[int | None, bool]:
    """Item size and object flag of a symbolic ``numpy.dtype('f8', ...)`` call as numpy ends up with
    it after the BUILD ``state``; (None, False) if unknown.

    numpy's dtype __setstate__ takes a flexible dtype's (V, S, U) item size from the state's elsize,
    and the object flag of V, S, U and datetime dtypes from its flags: joblib then reads that many
    bytes, or a nested pickle, so the emulator must skip exactly the same.
    """
    if type(dtype) is not Call or dtype.callee not in ("numpy.dtype",) or type(dtype.args) is not tuple \
            or not dtype.args or type(dtype.args[0]) is not str:
        return None, False
    code = dtype.args[0].lstrip("<>|=")
    if code.startswith("O"):
        return None, True
    if state is not _NO_STATE:
        if type(state) is not tuple or len(state) < 8 or type(state[5]) is not int or type(state[7]) is not int:
            return None, False
        kind = code[:1]
        if kind in ("V", "S", "a", "U", "M", "m") and state[7] & 1:
            return None, True
        if kind in ("V", "S", "a", "U"):
            return (state[5], False) if state[5] >= 0 else (None, False)
    if code[:1] in ("V", "S", "a", "U") and code[1:].isdigit():
        return int(code[1:]) * (4 if code[0] == "U" else 1), False
    if code[:1] in "iufcbm M".replace(" ", "") and code[1:].isdigit():
        return int(code[1:]), False
    if code in _DTYPE_SIZES:
        return _DTYPE_SIZES[code], False
    return None, False
