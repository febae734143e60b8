"""Constant-string unwinding for chat templates: how obfuscated names are rebuilt.

Payloads hide ``__globals__`` and friends in strings assembled at render time:
``'__gl' ~ 'obals__'``, ``['__cla', 'ss__']|join``, ``'%c' % 95``, ``'{}{}'.format(...)``,
``'__ssalc__'[::-1]``, ``dict(__cla=1, ss__=1)|join``. :class:`TemplateResolver` computes
the constant value of such expressions from the parsed tree, never by rendering, and
every value it builds is capped at :data:`MAX_RESOLVED_CHARS` (checked before building
where the size is attacker-controlled), so no template can make it allocate much.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import nodes

MAX_RESOLVED_CHARS = 4096  # constant strings assembled while resolving obfuscation


class TemplateResolver:
    """The constant value of template expressions, given the template's ``{% set %}`` assignments."""

    def __init__(self, assignments: dict[str, nodes.Node]) -> None:
        self.assignments = assignments
        self.memo: dict[int, Any] = {}
        self.resolving: set[int] = set()

    def resolve(self, node: nodes.Node | None, depth: int = 0) -> Any:
        """The constant value of an expression (str, int, list) when it can be known, else ``None``."""
        if node is None or depth > 60:
            return None
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if key in self.resolving:
            return None
        self.resolving.add(key)
        try:
            value = self._resolve(node, depth + 1)
        finally:
            self.resolving.discard(key)
        if isinstance(value, str) and len(value) > MAX_RESOLVED_CHARS:
            value = None
        if isinstance(value, list) and not _small_flat_list(value):
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
            items = [self.resolve(i, depth) for i in node.items]
            return None if any(i is None for i in items) else items
        if isinstance(node, nodes.Concat):
            parts = [self.resolve(n, depth) for n in node.nodes]
            return None if any(p is None for p in parts) else _join([str(p) for p in parts], "")
        if isinstance(node, nodes.Add):
            a, b = self.resolve(node.left, depth), self.resolve(node.right, depth)
            if isinstance(a, str) and isinstance(b, str):
                return a + b
            return None
        if isinstance(node, nodes.Mul):
            a, b = self.resolve(node.left, depth), self.resolve(node.right, depth)
            if isinstance(a, str) and isinstance(b, int) and 0 <= b and len(a) * b <= MAX_RESOLVED_CHARS:
                return a * b
            return None
        if isinstance(node, nodes.Mod):
            return _printf(self.resolve(node.left, depth), self.resolve(node.right, depth))
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

    def _resolve_filter(self, node: nodes.Filter, depth: int) -> Any:
        base = self.resolve(node.node, depth)
        args = [self.resolve(a, depth) for a in node.args]
        name = node.name
        if name == "join" and isinstance(base, list):
            sep = args[0] if args and isinstance(args[0], str) else ""
            return _join([str(b) for b in base], sep)
        if name == "join" and isinstance(base, dict):
            return _join(list(base), "")
        if name == "format" and isinstance(base, str):
            return _printf(base, args)
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
            return {kw.key: 1 for kw in node.kwargs}  # dict(__cla=1, ss__=1)|join
        if not isinstance(func, nodes.Getattr):
            return None
        base = self.resolve(func.node, depth)
        args = [self.resolve(a, depth) for a in node.args]
        if not isinstance(base, str):
            return None
        if func.attr in ("lower", "upper", "strip", "title", "capitalize", "casefold") and not args:
            return str(getattr(base, func.attr)())
        if func.attr == "join" and len(args) == 1 and isinstance(args[0], list):
            return _join([str(a) for a in args[0]], base)
        if func.attr == "format":
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


def _printf(fmt: Any, args: Any) -> str | None:
    """``fmt % args`` for %s, %c, %d and %% only: no widths, so no attacker-sized padding."""
    if not isinstance(fmt, str):
        return None
    values = iter(args if isinstance(args, list) else [args])
    out: list[str] = []
    size = 0  # characters in out, kept as we go: summing out per field would be quadratic
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            size += 1
            i += 1
            continue
        spec = fmt[i + 1:i + 2]
        i += 2
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
    if re.search(r"\{[^}]*\}", text.replace("{{", "").replace("}}", "")):
        return None
    text = text.replace("{{", "{").replace("}}", "}")
    return text if len(text) <= MAX_RESOLVED_CHARS else None
