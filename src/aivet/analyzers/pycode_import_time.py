"""Which function bodies of a remote-code module run when the module is imported.

``transformers`` imports ``modeling_*.py`` to build a model, so everything that runs
on import runs before anyone calls the model. Beyond the module body itself, class
bodies, decorators and default arguments, malware hides its payload in bodies that
Python runs implicitly during the import:

* a function called (or passed as a callback, or used as a decorator) from
  module-level code: ``atexit.register(payload)``, ``Thread(target=payload)``,
  ``@payload``;
* a lambda bound to a name and called, or called where it is written;
* a class instantiated at module level (its ``__init__``/``__new__``/``__post_init__``);
* the metaclass of a class defined at module level (``__new__``, ``__init__``,
  ``__prepare__``), ``__init_subclass__`` of a base class that a module-level class
  derives from, ``__set_name__`` of a descriptor instantiated in a class body;
* and, transitively, what those bodies call (``self.method()`` included).

The answer over-approximates on purpose (a scanner raising a severity by one for a
function that does not really run is cheaper than missing one that does), and the
work is linear in the size of the tree: each body is walked at most once.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

from aivet.analyzers.pycode_calls import is_main_guard

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
_ON_CALL = ("__new__", "__init__", "__post_init__", "__del__", "__enter__", "__exit__")  # run when a class is called
# (__del__ runs as soon as an instance made at import is dropped; __enter__/__exit__ for ``with C():``)
_ON_CLASS = ("__new__", "__init__", "__prepare__")  # metaclass methods run when a class statement runs
_MAX_ANCESTORS = 64


def _toplevel(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run on import: the module body and the blocks of its if/try/with/for, not the main guard."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If):
            stack.extend(reversed(node.orelse if is_main_guard(node.test) else [*node.body, *node.orelse]))
        elif isinstance(node, (ast.Try, ast.TryStar)):
            blocks = [*node.body, *(s for h in node.handlers for s in h.body), *node.orelse, *node.finalbody]
            stack.extend(reversed(blocks))
        elif isinstance(node, (ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)):
            stack.extend(reversed([*node.body, *getattr(node, "orelse", [])]))


class _Reach:
    def __init__(self, tree: ast.Module, qualname: Callable[[ast.AST], str | None]) -> None:
        self.qualname = qualname
        self.funcs: dict[str, ast.AST] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.owner: dict[int, ast.ClassDef] = {}  # method id -> its class
        for node in _toplevel(tree.body):
            if isinstance(node, _DEFS):
                self.funcs[node.name] = node
            elif isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
                for m in node.body:
                    if isinstance(m, _DEFS):
                        self.owner[id(m)] = node
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.funcs[t.id] = node.value
        self.reached: set[int] = set()
        self.todo: list[ast.AST] = []
        self._ancestors: dict[int, list[ast.ClassDef]] = {}
        self._methods: dict[tuple[int, str], ast.AST | None] = {}

    def ancestors(self, cls: ast.ClassDef) -> list[ast.ClassDef]:
        """``cls`` and its base classes defined in this module, nearest first (memoised: chains of
        thousands of classes must not cost a walk per class and name)."""
        cached = self._ancestors.get(id(cls))
        if cached is not None:
            return cached
        out: list[ast.ClassDef] = []
        seen: set[int] = set()
        stack = [cls]
        while stack and len(out) < _MAX_ANCESTORS:
            c = stack.pop(0)
            if id(c) in seen:
                continue
            seen.add(id(c))
            out.append(c)
            stack.extend(self.classes[b.id] for b in c.bases[:_MAX_ANCESTORS]
                         if isinstance(b, ast.Name) and b.id in self.classes)
        self._ancestors[id(cls)] = out
        return out

    def method(self, cls: ast.ClassDef, name: str) -> ast.AST | None:
        """The method ``name`` that ``cls`` has (its own or inherited from a class of this module)."""
        key = (id(cls), name)
        if key not in self._methods:
            self._methods[key] = next((m for c in self.ancestors(cls) for m in self._own(c) if m.name == name), None)
        return self._methods[key]

    def _own(self, cls: ast.ClassDef) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        return [m for m in cls.body if isinstance(m, _DEFS)]

    def metaclass(self, cls: ast.ClassDef) -> ast.ClassDef | None:
        for c in self.ancestors(cls):
            for k in c.keywords:
                if k.arg == "metaclass" and isinstance(k.value, ast.Name) and k.value.id in self.classes:
                    return self.classes[k.value.id]
        return None

    def run(self, node: ast.AST | None) -> None:
        if node is not None and id(node) not in self.reached:
            self.reached.add(id(node))
            self.todo.append(node)

    def call_name(self, name: str) -> None:
        """What runs when ``name`` is called (a function, a lambda, a class)."""
        if name in self.funcs:
            self.run(self.funcs[name])
        cls = self.classes.get(name)
        if cls is not None:
            for m in _ON_CALL:
                self.run(self.method(cls, m))
            meta = self.metaclass(cls)
            if meta is not None:
                self.run(self.method(meta, "__call__"))

    def class_statement(self, cls: ast.ClassDef) -> None:
        """What runs when a ``class`` statement runs: metaclass hooks, base ``__init_subclass__``, ``__set_name__``."""
        meta = self.metaclass(cls)
        if meta is not None:
            for m in _ON_CLASS:
                self.run(self.method(meta, m))
        for base in self.ancestors(cls)[1:]:
            self.run(self.method(base, "__init_subclass__"))
        for stmt in cls.body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and isinstance(stmt.value, ast.Call) and isinstance(
                    stmt.value.func, ast.Name) and stmt.value.func.id in self.classes:
                self.run(self.method(self.classes[stmt.value.func.id], "__set_name__"))

    def scan(self, nodes: list[ast.AST], import_time: bool, owner: ast.ClassDef | None) -> None:
        """Mark what ``nodes`` call; at import time, def bodies are skipped (only their decorators and defaults run)."""
        stack = list(nodes)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Call):
                self._call(node, owner)
            if isinstance(node, ast.ClassDef):
                self.class_statement(node)
                for d in node.decorator_list:
                    self._callable(d)
            if isinstance(node, (*_DEFS, ast.Lambda)) and import_time:
                stack.extend([*node.args.defaults, *(d for d in node.args.kw_defaults if d)])
                if not isinstance(node, ast.Lambda):
                    stack.extend(node.decorator_list)
                    for d in node.decorator_list:
                        self._callable(d)
                        if self.qualname(d) == "atexit.register":  # runs at exit: as good as at import
                            self.run(node)
                continue
            if import_time and isinstance(node, ast.If) and is_main_guard(node.test):
                stack.extend(node.orelse)
                continue
            stack.extend(ast.iter_child_nodes(node))

    def _callable(self, node: ast.AST) -> None:
        """``node`` is called (or will be): a name of this module, or a lambda."""
        if isinstance(node, ast.Name):
            self.call_name(node.id)
        elif isinstance(node, ast.Lambda):
            self.run(node)

    def _call(self, node: ast.Call, owner: ast.ClassDef | None) -> None:
        func = node.func
        self._callable(func)
        if (owner is not None and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and func.value.id in ("self", "cls")):
            self.run(self.method(owner, func.attr))
        # Callbacks: atexit.register(f), Thread(target=f), signal.signal(s, f), map(f, ...). A class passed
        # along (AutoModel.register(Config, Model)) is not called by that.
        for a in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(a, ast.Lambda) or (isinstance(a, ast.Name) and a.id in self.funcs):
                self._callable(a)

    def close(self) -> set[int]:
        while self.todo:
            node = self.todo.pop()
            body = [node.body] if isinstance(node, ast.Lambda) else list(getattr(node, "body", []))
            self.scan(body, False, self.owner.get(id(node)))
        return self.reached


def functions_run_at_import(tree: ast.Module, qualname: Callable[[ast.AST], str | None]) -> set[int]:
    """ids of the def and lambda nodes whose bodies run while the module is imported (see the module text)."""
    reach = _Reach(tree, qualname)
    reach.scan(list(tree.body), True, None)
    # PEP 562: a module-level __getattr__ runs when the loader looks up a class the module lacks.
    reach.run(reach.funcs.get("__getattr__"))
    return reach.close()
