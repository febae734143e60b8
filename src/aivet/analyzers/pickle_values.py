"""The symbolic values pickle emulation works with, what it records, and how they are rendered.

:mod:`aivet.analyzers.pickle_vm` runs the opcode stream; the values on its stack are plain
constants or the classes here: :class:`Global` (an imported name), :class:`Call` (the result
of calling something), :class:`DictVal` (a small dict whose items a consumer needs),
:class:`Persistent` and :class:`Opaque` (containers whose contents are not kept). A
:class:`Result` collects every :class:`Use` of a global and every :class:`Anomaly`.
:func:`render` and :func:`render_call` turn values into the bounded text findings show.
The classes use ``__slots__`` and are compared by ``type(x) is ...`` in the hot loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aivet.analyzers.allowlist import Classification


class Global:
    """A name imported by GLOBAL, STACK_GLOBAL or INST."""

    __slots__ = ("module", "name", "full", "use")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self.full = f"{module}.{name}"
        self.use: Use | None = None  # its record, to note cheaply where the value goes


class Call:
    """The result of calling ``func`` (REDUCE, NEWOBJ, OBJ, INST). ``target`` is the dotted
    name this result stands for when it is itself a name (``__import__('os')`` -> ``os``)."""

    __slots__ = ("func", "args", "kwargs", "target", "callee")

    def __init__(self, func: Any, args: Any, kwargs: Any, callee: str | None, target: str | None) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.callee = callee
        self.target = target


class Opaque:
    """A value whose contents are not tracked (a list, a dict, an unresolvable global...)."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


class _FreshList(list):  # type: ignore[type-arg]
    """The stack a MARK opens right after EMPTY_DICT / EMPTY_LIST: its items are the container's first."""

    __slots__ = ()


class DictVal:
    """A small dict whose items are kept because a BUILD, NEWOBJ_EX or TUPLE2 consumes it.

    ``fresh``: the items were set in one step right after the dict was created, so they are all
    of it (a dict filled in several steps, or fetched again from the memo, may hold more than the
    last step shows). ``at``: the position right after the opcode that filled it, for consumers
    that must see it used at once (before the memo could alias it)."""

    __slots__ = ("items", "fresh", "at")

    def __init__(self, items: list[Any], fresh: bool = False, at: int = -1) -> None:
        self.items = items  # flat [key, value, key, value, ...]
        self.fresh = fresh
        self.at = at

    def get(self, key: str) -> Any:
        """The value for ``key`` as the loaded dict has it: the last one set (None if absent)."""
        items = self.items
        found = None
        for i in range(0, len(items) - 1, 2):
            if items[i] == key:
                found = items[i + 1]
        return found


class Persistent:
    """An object the loader's ``persistent_load`` supplies (torch storages)."""

    __slots__ = ("pid",)

    def __init__(self, pid: Any) -> None:
        self.pid = pid


@dataclass
class Use:
    """Every use of one global (by its effective dotted name) in a stream."""

    name: str
    first_offset: int
    first_opcode: str
    references: int = 0
    calls: int = 0
    samples: list[tuple[int, str]] = field(default_factory=list)  # (offset, rendered call)
    verdict: Classification | None = None  # for allowlisted names that depend on arguments
    reason: str = ""
    setstate: bool = False  # BUILD ran the class's __setstate__
    nested: int = 0  # pickle nesting depth where it was first seen (0: the file itself)
    passed_to: str | None = None  # the first callee (or BUILD) it was handed to as a value


@dataclass
class Anomaly:
    """Something in the stream that is not a plain global use (rule chosen by ``kind``)."""

    kind: str  # "unresolved" | "build" | "trailing" | "nested"
    message: str
    offset: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """What emulation found in one stream (and in the pickles nested in it)."""

    uses: dict[str, Use] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)
    anomaly_count: int = 0
    persistent_ids: list[str] = field(default_factory=list)
    persistent_count: int = 0
    pickles: int = 0  # consecutive pickles in the stream
    legacy_torch: bool = False
    joblib_arrays: int = 0
    end: int = 0  # where analysis stopped


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def render(value: Any, depth: int = 0) -> str:
    """Compact, bounded text for a symbolic value (``os.system('id')``, ``<dict>``)."""
    t = type(value)
    if t is str:
        return repr(value[:80]) + ("..." if len(value) > 80 else "")
    if t is bytes:
        return repr(value[:40]) + (f"...({len(value)} bytes)" if len(value) > 40 else "")
    if t is int:
        return repr(value) if value.bit_length() <= 128 else f"<int of {value.bit_length()} bits>"
    if value is None or t is bool or t is float:
        return repr(value)
    if t is Global:
        return str(value.full)
    if depth > 4:
        return "..."
    if t is Call:
        return "<" + render_call(value.callee or render(value.func, depth + 1), value.args, value.kwargs,
                                 depth + 1) + ">"
    if t is tuple:
        inner = ", ".join(render(v, depth + 1) for v in value[:8])
        more = ", ..." if len(value) > 8 else ("," if len(value) == 1 else "")
        return f"({inner}{more})"
    if t is DictVal:
        items = value.items
        pairs = [f"{render(items[i], depth + 1)}: {render(items[i + 1], depth + 1)}"
                 for i in range(0, min(len(items), 16) - 1, 2)]
        return "{" + ", ".join(pairs) + (", ..." if len(items) > 16 else "") + "}"
    if t is Persistent:
        return f"<persistent {render(value.pid, depth + 1)}>"
    if t is Opaque:
        return f"<{value.kind}>"
    return f"<{t.__name__}>"


def render_call(name: str, args: Any, kwargs: Any = None, depth: int = 0) -> str:
    """``name(arg, ...)`` with each argument rendered by :func:`render`; bounded to 300 chars."""
    if type(args) is tuple:
        parts = [render(a, depth) for a in args[:8]]
        if len(args) > 8:
            parts.append("...")
    elif args is None:
        parts = []
    else:
        parts = ["*" + render(args, depth)]
    if type(kwargs) is DictVal:
        items = kwargs.items
        parts += [f"{items[i]}={render(items[i + 1], depth)}" if type(items[i]) is str else "**{...}"
                  for i in range(0, min(len(items), 16) - 1, 2)]
    elif kwargs is not None:
        parts.append("**" + render(kwargs, depth))
    text = f"{name}({', '.join(parts)})"
    return text if len(text) <= 300 else text[:297] + "..."


def symbol(value: Any) -> str | None:
    """The dotted name a value stands for, when it is a name (a global or a resolved call)."""
    t = type(value)
    if t is Global:
        return str(value.full)
    if t is Call:
        return value.target  # type: ignore[no-any-return]
    return None


def _is_constant(value: Any) -> bool:
    t = type(value)
    if t is tuple:
        return all(_is_constant(v) for v in value)
    return t in (str, bytes, int, float, bool) or value is None
