"""Constant-string unwinding for chat templates: how obfuscated names are rebuilt.

Payloads hide ``__globals__`` and friends in strings assembled at render time:
``'__gl' ~ 'obals__'``, ``['__cla', 'ss__']|join``, ``'%c' % 95``, ``'{}{}'.format(...)``,
``'__ssalc__'[::-1]``, ``dict(__cla=1, ss__=1)|join``. :class:`TemplateResolver` computes
the constant value of such expressions from the parsed tree, never by rendering, and
every value it builds is capped at :data:`MAX_RESOLVED_CHARS` (checked before building
where the size is attacker-controlled), so no template can make it allocate much.

Each value is small, but a template can ask for many of them: 40,000 ``{{ f % l }}`` over a
2,000-field format string once took 86 s. All work is therefore charged to a
:class:`WorkBudget`, in steps proportional to what Python actually does (one step is roughly
half a microsecond: a node visited, a list item handled, a few characters copied).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from jinja2 import nodes

from aivet.formats import LimitExceeded

MAX_RESOLVED_CHARS = 4096  # constant strings assembled while resolving obfuscation
# Characters built or read whole by C code (slicing, joining, str methods) per step. Time alone
# would allow 64; 4 also bounds memory, since every value built stays memoised: the budget
# then caps what a template can make the resolver hold at ~12 million characters.
CHARS_PER_STEP = 4
FIELD_STEPS = 2  # a %s or {} field filled in Python (measured ~0.9 us)
DEADLINE_EVERY = 4096  # steps between two looks at the clock


class WorkBudget:
    """A deterministic count of analysis steps, with a cooperative wall-clock deadline.

    :meth:`charge` raises :class:`LimitExceeded` naming ``limit`` once more than ``steps``
    steps were charged, or ``max_seconds_per_file`` once ``deadline`` (``time.monotonic()``)
    has passed; the clock is read every :data:`DEADLINE_EVERY` steps only.
    """

    def __init__(self, steps: int, deadline: float | None = None, *, limit: str = "max_template_steps") -> None:
        self.steps = steps
        self.deadline = deadline
        self.limit = limit
        self.used = 0
        self._next_look = DEADLINE_EVERY

    def charge(self, steps: int = 1) -> None:
        """Count ``steps`` more steps of work; raise when the budget or the deadline is spent."""
        self.used += steps
        if self.used > self.steps:
            raise LimitExceeded(self.limit, f"template analysis stopped after {self.steps} steps of work")
        if self.used >= self._next_look:
            self._next_look = self.used + DEADLINE_EVERY
            self.check_deadline()

    def charge_chars(self, chars: int) -> None:
        """Count the work of copying or scanning ``chars`` characters in C code."""
        self.charge(1 + chars // CHARS_PER_STEP)

    def check_deadline(self) -> None:
        """Raise when the deadline has passed (also called between phases that cannot be charged)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise LimitExceeded("max_seconds_per_file", "template analysis ran out of time")


class TemplateResolver:
    """The constant value of template expressions, given the template's ``{% set %}`` assignments."""

    def __init__(self, assignments: dict[str, nodes.Node], budget: WorkBudget | None = None) -> None:
        self.assignments = assignments
        # Without a budget (direct use in tests) work is still bounded per value, not in total.
        self.budget = budget if budget is not None else WorkBudget(1 << 62)
        self.memo: dict[int, Any] = {}
        self.resolving: set[int] = set()

    def resolve(self, node: nodes.Node | None, depth: int = 0) -> Any:
        """The constant value of an expression (str, int, list) when it can be known, else ``None``.

        Raises :class:`LimitExceeded` when the budget is spent (every node is resolved at most
        once: results are memoised by node, so a variable used 10^5 times is built once).
        """
        if node is None or depth > 60:
            return None
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if key in self.resolving:
            return None
        self.budget.charge()
        self.resolving.add(key)
        try:
            value = self._resolve(node, depth + 1)
        finally:
            self.resolving.discard(key)
        if isinstance(node, nodes.Name):
            pass  # the variable's value, checked and charged when it was resolved
        elif isinstance(value, str):
            if len(value) > MAX_RESOLVED_CHARS:
                value = None
            elif not isinstance(node, nodes.Const):
                self.budget.charge_chars(len(value))  # built here
        elif isinstance(value, list):
            self.budget.charge(len(value))  # _small_flat_list walks it in Python
            if not _small_flat_list(value):
                value = None
        self.memo[key] = value
        return value

    def _resolve(self, node: nodes.Node, depth: int) -> Any:
        if isinstance(node, nodes.Const):
            v = node.value
            return v if isinstance(v, (str, int)) and not isinstance(v, bool) else None
        if isinstance(node, nodes.Name) and node.ctx == "load":
            target = self.assignments.get(node.name)
            return self.resolve(target, depth) if target is not None else None
        if isinstance(node, (nodes.List, nodes.Tuple)):
            return self._all_known(node.items, depth)
        if isinstance(node, nodes.Concat):
            parts = self._all_known(node.nodes, depth)
            return None if parts is None else self._join(parts, "")
        if isinstance(node, nodes.Add):
            a = self.resolve(node.left, depth)
            if not isinstance(a, str):
                return None
            b = self.resolve(node.right, depth)
            if isinstance(b, str) and len(a) + len(b) <= MAX_RESOLVED_CHARS:
                return a + b
            return None
        if isinstance(node, nodes.Mul):
            a, b = self.resolve(node.left, depth), self.resolve(node.right, depth)
            if isinstance(a, str) and isinstance(b, int) and 0 <= b and len(a) * b <= MAX_RESOLVED_CHARS:
                return a * b
            return None
        if isinstance(node, nodes.Mod):
            fmt = self.resolve(node.left, depth)
            return _printf(fmt, self.resolve(node.right, depth), self.budget) if isinstance(fmt, str) else None
        if isinstance(node, nodes.Getitem):
            return self._resolve_getitem(node, depth)
        if isinstance(node, nodes.Filter):
            return self._resolve_filter(node, depth)
        if isinstance(node, nodes.Call):
            return self._resolve_call(node, depth)
        return None

    def _resolve_getitem(self, node: nodes.Getitem, depth: int) -> Any:
        base = self.resolve(node.node, depth)
        if not isinstance(base, (str, list)):
            return None
        if isinstance(node.arg, nodes.Slice):
            bounds = [self.resolve(p, depth) if p is not None else None
                      for p in (node.arg.start, node.arg.stop, node.arg.step)]
            if any(b is not None and not isinstance(b, int) for b in bounds) or bounds[2] == 0:
                return None
            return base[slice(*bounds)]
        index = self.resolve(node.arg, depth)
        if isinstance(index, int) and -len(base) <= index < len(base):
            return base[index]
        return None

    def _all_known(self, items: Sequence[nodes.Node], depth: int) -> list[Any] | None:
        """The values of ``items``, or ``None`` at the first unknown one (the rest are not resolved)."""
        values = []
        for item in items:
            value = self.resolve(item, depth)
            if value is None:
                return None
            values.append(value)
        return values

    def _join(self, parts: list[Any], sep: str) -> str | None:
        self.budget.charge(len(parts))  # the str() of each part, and the size check, run in Python
        return _join([str(p) for p in parts], sep)

    def _charge_input(self, base: Any) -> None:
        """Work on an input value that is read whole (``replace``, ``lower``, ``list``)."""
        if isinstance(base, str):
            self.budget.charge_chars(len(base))
        elif isinstance(base, (list, dict)):
            self.budget.charge(len(base))

    def _resolve_filter(self, node: nodes.Filter, depth: int) -> Any:
        base = self.resolve(node.node, depth)
        if base is None:
            return None  # no filter turns an unknown value into a known one: skip the arguments
        args = [self.resolve(a, depth) for a in node.args]
        name = node.name
        self._charge_input(base)
        if name == "join" and isinstance(base, list):
            sep = args[0] if args and isinstance(args[0], str) else ""
            return self._join(base, sep)
        if name == "join" and isinstance(base, dict):
            return self._join(list(base), "")
        if name == "format" and isinstance(base, str):
            return _printf(base, args, self.budget)
        if name in ("list", "reverse") and isinstance(base, (str, list)):
            return list(base) if name == "list" else base[::-1]
        if name in ("first", "last") and isinstance(base, (str, list)) and base:
            return base[0] if name == "first" else base[-1]
        if name in ("lower", "upper", "trim", "string", "title", "capitalize") and isinstance(base, (str, int)):
            text = str(base)
            return {"lower": text.lower, "upper": text.upper, "trim": text.strip, "string": lambda: text,
                    "title": text.title, "capitalize": text.capitalize}[name]()
        if name == "replace" and isinstance(base, str) and len(args) >= 2 \
                and isinstance(args[0], str) and isinstance(args[1], str) and args[0]:
            if len(base) * max(1, len(args[1])) <= MAX_RESOLVED_CHARS:
                return base.replace(args[0], args[1])
        return None

    def _resolve_call(self, node: nodes.Call, depth: int) -> Any:
        func = node.node
        if isinstance(func, nodes.Name) and func.name == "dict" and not node.args:
            self.budget.charge(len(node.kwargs))
            return {kw.key: 1 for kw in node.kwargs}  # dict(__cla=1, ss__=1)|join
        if not isinstance(func, nodes.Getattr):
            return None
        base = self.resolve(func.node, depth)
        if not isinstance(base, str):
            return None
        args = [self.resolve(a, depth) for a in node.args]
        self._charge_input(base)
        if func.attr in ("lower", "upper", "strip", "title", "capitalize", "casefold") and not args:
            return str(getattr(base, func.attr)())
        if func.attr == "join" and len(args) == 1 and isinstance(args[0], list):
            return self._join(args[0], base)
        if func.attr == "format":
            self.budget.charge(FIELD_STEPS * base.count("{"))  # one Python callback per field
            return _brace_format(base, args)
        if func.attr == "replace" and len(args) == 2 and all(isinstance(a, str) for a in args) and args[0]:
            if len(base) * max(1, len(args[1])) <= MAX_RESOLVED_CHARS:
                return base.replace(args[0], args[1])
        return None


def _small_flat_list(items: list[Any]) -> bool:
    """Whether ``items`` holds only strings and integers, MAX_RESOLVED_CHARS characters at most.

    Lists are turned into text (``~``, ``|join``, ``%s``); a list of lists, or of many long
    strings, would make that text huge before any length check could see it.
    """
    size = 0
    for item in items:
        if isinstance(item, str):
            size += len(item)
        elif isinstance(item, int):
            size += 1
        else:
            return False
        if size > MAX_RESOLVED_CHARS:
            return False
    return True


def _join(parts: list[str], sep: str) -> str | None:
    """``sep.join(parts)``, or ``None`` when the result would pass MAX_RESOLVED_CHARS (checked first)."""
    if sum(len(p) for p in parts) + len(sep) * len(parts) > MAX_RESOLVED_CHARS:
        return None
    return sep.join(parts)


_PRINTF_FIELD = re.compile(r"%(.?)", re.S)


def _printf(fmt: str, args: Any, budget: WorkBudget) -> str | None:
    """``fmt % args`` for %s, %c, %d and %% only: no widths, so no attacker-sized padding.

    The text between fields is copied in slices: a Python loop per character made 40,000
    uses of a 4,000-character format string take half a minute.
    """
    values = iter(args if isinstance(args, list) else [args])
    out: list[str] = []
    size = 0  # characters in out, kept as we go: summing out per field would be quadratic
    pos = 0
    for m in _PRINTF_FIELD.finditer(fmt):
        budget.charge(FIELD_STEPS)
        out.append(fmt[pos:m.start()])
        size += m.start() - pos
        pos = m.end()
        spec = m.group(1)
        if spec == "%":
            out.append("%")
            size += 1
            continue
        value = next(values, None)
        if spec not in ("s", "c", "d") or value is None:
            return None  # an unknown value is not the text "None"
        if spec == "c":
            if isinstance(value, int) and 0 <= value < 0x110000:
                out.append(chr(value))
            elif isinstance(value, str) and len(value) == 1:
                out.append(value)
            else:
                return None
        elif spec == "d" and not isinstance(value, int):
            return None
        elif isinstance(value, (str, int)):
            out.append(str(value))
        else:
            return None
        size += len(out[-1])
        if size > MAX_RESOLVED_CHARS:
            return None
    out.append(fmt[pos:])
    return "".join(out)


def _brace_format(fmt: str, args: list[Any]) -> str | None:
    """``fmt.format(*args)`` for plain ``{}`` / ``{0}`` fields only."""
    if any(a is None for a in args):
        return None
    auto = 0

    def field(m: re.Match[str]) -> str:
        nonlocal auto
        index = m.group(1)
        if index == "":
            index_value, auto = auto, auto + 1
        else:
            index_value = int(index)
        if index_value >= len(args):
            raise IndexError
        return str(args[index_value])

    try:
        text = re.sub(r"\{(\d*)\}", field, fmt)
    except (IndexError, ValueError):
        return None
    rest = text.replace("{{", "").replace("}}", "")
    opening = rest.find("{")
    if opening >= 0 and rest.find("}", opening) >= 0:
        return None  # a field this does not fill ({0.attr}, {:>10}); a regex here was quadratic
    text = text.replace("{{", "{").replace("}}", "}")
    return text if len(text) <= MAX_RESOLVED_CHARS else None
