"""Name resolution, constant folding and bounded decoding for Python source read with :mod:`ast`.

:class:`Resolver` answers two questions about one module without running it: what a
name really is (``sp.run`` is ``subprocess.run`` after ``import subprocess as sp``;
``getattr(os, 'sys'+'tem')``, ``os.__dict__.get('system')``, ``operator.attrgetter('system')(os)``,
``pkgutil.resolve_name('os:system')`` and ``torch.os.system`` are all ``os.system``) and what an
expression's constant value is (``'o'+'s'``, ``'{}{}'.format(...)``, ``'%s' % ...``,
``base64.b64decode(...)``, ``bytes([...])``, ``chr(c) for c in [...]``, the module docstring).
Every value it builds is bounded by ``max_bytes`` (``Limits.max_decoded_bytes``), checked
before the value is built, and the work by a :class:`FoldBudget` of steps
(``Limits.max_fold_steps``) that a file shares with the code decoded from it: a decompression
bomb, a string multiplied by joins or comprehensions nested over long lists yield nothing,
never a hang. Format specs (``{:>999999999}``) are never evaluated.
:mod:`aivet.analyzers.pycode` uses it to decide what calls mean.
"""

from __future__ import annotations

import ast
import base64
import binascii
import codecs
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from aivet.analyzers.pycode_decode import bounded_decompress, bounded_zlib, slow_codec

FoldValue = str | bytes | int | list[object]
_MAX_FOLD_DEPTH = 40
_MAX_LIST = 100_000
_FORMATTER = string.Formatter()
_PERCENT = re.compile(r"([^%]*)(%%|%s|%.?|$)", re.S)  # literal text, then one conversion
_MAX_ASSIGNMENTS = 8
# Modules that other modules import and so expose as attributes (torch.os is os, tempfile._os is os):
# reached that way they are still themselves.
_REEXPORTED = {"os": "os", "_os": "os", "sys": "sys", "_sys": "sys", "subprocess": "subprocess",
               "_subprocess": "subprocess", "builtins": "builtins", "__builtins__": "builtins", "posix": "posix",
               "nt": "nt", "pty": "pty", "importlib": "importlib", "shutil": "shutil", "ctypes": "ctypes",
               "marshal": "marshal", "pickle": "pickle", "socket": "socket", "_socket": "socket", "runpy": "runpy"}
_MAX_DECODER_WALK = 2000  # nodes looked at for decoders feeding exec  # assignments to one name tried when folding it
BYTES_PER_STEP = 64  # a value of this many bytes (or list items) costs one more folding step
_BUILTINS = frozenset({"exec", "eval", "compile", "execfile", "__import__", "open", "getattr", "setattr",
                       "globals", "vars", "locals", "chr", "ord", "bytes", "bytearray", "str", "dict", "repr",
                       "map", "input", "breakpoint", "memoryview", "object", "type",
                       # ordinary builtins: each one's __self__ is the builtins module (print.__self__.eval)
                       "print", "len", "abs", "hash", "id", "iter", "next", "min", "max", "sum", "sorted",
                       "any", "all", "hasattr", "isinstance", "callable", "divmod", "pow", "round", "delattr"})
_PATH_TYPES = frozenset({"pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath",
                         "pathlib.PurePosixPath"})
_DECODERS = frozenset({
    "base64.b64decode", "base64.standard_b64decode", "base64.urlsafe_b64decode", "base64.decodebytes",
    "base64.decodestring", "base64.b32decode", "base64.b16decode", "base64.b85decode", "base64.a85decode",
    "binascii.a2b_base64", "binascii.unhexlify", "binascii.a2b_hex", "bytes.fromhex", "builtins.bytes.fromhex",
    "codecs.decode", "codecs.encode", "zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress",
    "marshal.loads", "pickle.loads", "builtins.chr"})
# Names a star import could bring in that matter to the checks in pycode (system, b64decode, ...).
_STAR_INTERESTING = frozenset({"system", "popen", "run", "call", "Popen", "check_output", "check_call",
                               "getoutput", "execv", "execve", "execl", "spawnv", "b64decode", "decompress",
                               "loads", "urlopen", "import_module", "getenv", "environ", "remove", "rmtree"})


@dataclass
class FoldBudget:
    """Work left for one source file, shared with the code decoded from it.

    ``remaining`` counts folding steps; building a value also costs a step per
    ``BYTES_PER_STEP`` bytes (or list items), so values copied again and again (a
    megabyte string passed to a thousand calls) run it down as surely as many
    small steps. ``tokens`` counts the Python tokens parsed (the file and decoded
    code together), ``decoded`` the hashes of decoded code already analysed, and
    ``deadline`` is the ``time.monotonic()`` after which analysis stops.
    """

    remaining: int
    tokens: int = 0
    decoded: set[int] = field(default_factory=set)
    deadline: float = math.inf

    @property
    def exhausted(self) -> bool:
        """Whether folding gave up (every fold since has returned ``None``)."""
        return self.remaining < 0


@dataclass(frozen=True)
class Folded:
    """The constant value of an expression, and how it was obtained."""

    value: FoldValue
    obfuscated: bool = False  # went through a decoder (base64, hex, zlib, rot13, chr, reversal)
    composed: bool = False  # assembled from pieces (concatenation, join, f-string)
    steps: tuple[str, ...] = ()

    @property
    def text(self) -> str | None:
        """The value as text (bytes decoded as UTF-8), or ``None`` when it is not text."""
        if isinstance(self.value, str):
            return self.value
        if isinstance(self.value, bytes):
            try:
                return self.value.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return None


def _reexported(qualname: str) -> str:
    """``torch.os`` is ``os``: a dangerous module reached as another module's attribute is still itself
    (``socket.socket``, the class named like its module, stays as it is)."""
    base, _, last = qualname.rpartition(".")
    if base and last in _REEXPORTED and base.rpartition(".")[2] != last:
        return _REEXPORTED[last]
    return qualname


def _join(parts: list[Folded], value: FoldValue) -> Folded:
    """``value``, assembled from ``parts``: composed, and obfuscated when any part was."""
    steps = tuple(s for p in parts for s in p.steps)
    return Folded(value, any(p.obfuscated for p in parts), True, steps[-8:])


class Resolver:
    """Resolves names to dotted qualified names and folds constant expressions of one module.

    Scoping is deliberately flat (one namespace for the whole file): a scanner
    over-approximates, and remote code rarely rebinds ``os`` per function.
    """

    def __init__(self, tree: ast.Module, max_bytes: int, budget: FoldBudget) -> None:
        self.max_bytes = max_bytes
        self.budget = budget
        self.aliases: dict[str, str] = {}
        self.assigned: dict[str, list[ast.expr]] = {}
        self.defined: set[str] = set()
        self.star: list[str] = []
        self._qual_cache: dict[str, str | None] = {}
        self._fold_cache: dict[str, Folded | None] = {}
        self._resolving: set[str] = set()
        self._folding: set[str] = set()
        self._bound: set[str] = set()  # comprehension variables bound while folding (not cached)
        self.augmented: dict[str, list[ast.expr]] = {}  # s += chr(c): pieces added to a name
        self.iterated: dict[str, ast.expr] = {}  # for k in [...]: what a loop variable runs over
        self.called: set[str] = set()  # names called as f(...) somewhere in the module
        doc = tree.body[0] if tree.body else None
        if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
            self.assigned["__doc__"] = [doc.value]  # exec(__doc__): a payload in the module docstring
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = ("." * node.level) + (node.module or "")
                for a in node.names:
                    if a.name == "*":
                        self.star.append(base)
                    else:
                        self.aliases[a.asname or a.name] = f"{base}.{a.name}" if node.module else f"{base}{a.name}"
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.assigned.setdefault(t.id, []).append(node.value)
                    elif (isinstance(t, (ast.Tuple, ast.List)) and isinstance(node.value, (ast.Tuple, ast.List))
                          and len(t.elts) == len(node.value.elts)):
                        # a, b = os.system, 'id': each name gets its own value
                        for te, ve in zip(t.elts, node.value.elts, strict=True):
                            if isinstance(te, ast.Name):
                                self.assigned.setdefault(te.id, []).append(ve)
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and isinstance(node.target, ast.Name) and node.value:
                self.assigned.setdefault(node.target.id, []).append(node.value)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defined.add(node.name)
            elif isinstance(node, ast.arg):
                self.defined.add(node.arg)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                self.called.add(node.func.id)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                self.augmented.setdefault(node.target.id, []).append(node.value)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)) and isinstance(node.target, ast.Name):
                self.iterated.setdefault(node.target.id, node.iter)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                # def f(os=__import__('os')), lambda x, e=eval: e(x): a default is the argument's value
                sig = node.args
                positional = [*sig.posonlyargs, *sig.args]
                pairs = [*zip(positional[len(positional) - len(sig.defaults):], sig.defaults, strict=True),
                         *((k, d) for k, d in zip(sig.kwonlyargs, sig.kw_defaults, strict=True) if d is not None)]
                for arg, default in pairs:
                    self.assigned.setdefault(arg.arg, []).append(default)
        for values in self.assigned.values():
            values.sort(key=lambda v: (getattr(v, "lineno", 0), getattr(v, "col_offset", 0)))

    # -- qualified names ------------------------------------------------------------------------
    def qualname(self, node: ast.AST | None, depth: int = 0) -> str | None:
        """``sp.run`` -> ``subprocess.run`` after ``import subprocess as sp``; ``None`` if unknown."""
        if node is None or depth > _MAX_FOLD_DEPTH:
            return None
        d = depth + 1
        if isinstance(node, ast.Name):
            return self._name(node.id, d)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value, d)
            if base is None:
                return None
            base = base.removesuffix(".__dict__")
            if base == "<globals>":
                return self._name(node.attr, d)
            if node.attr == "__self__" and base.startswith("builtins."):
                return "builtins"  # print.__self__ is the builtins module
            return _reexported(f"{base}.{node.attr}")  # torch.os, os.path.os, tempfile._os: the module itself
        if isinstance(node, ast.Call):
            return self._call_result(node, d)
        if isinstance(node, ast.Subscript):
            base = self.qualname(node.value, d)
            key = self.fold(node.slice, d)
            if base is None or key is None or key.text is None:
                return None
            base = base.removesuffix(".__dict__")
            if base == "sys.modules":
                return key.text
            if base == "<globals>":
                return "builtins" if key.text == "__builtins__" else self._name(key.text, d)
            return f"{base}.{key.text}"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return "pathlib.Path" if self.qualname(node.left, d) in _PATH_TYPES else None
        return None

    def _name(self, name: str, depth: int) -> str | None:
        if name in self.aliases:
            return _reexported(self.aliases[name])  # from .utils import subprocess: still subprocess
        if name in ("__builtins__", "builtins"):
            return "builtins"
        if name in self._qual_cache:
            return self._qual_cache[name]
        if name in self._resolving:  # x = f(x): a cycle, not a module
            return None
        self._resolving.add(name)
        try:
            found = self._name_uncached(name, depth)
        finally:
            self._resolving.discard(name)
        self._qual_cache[name] = found
        return found

    def _name_uncached(self, name: str, depth: int) -> str | None:
        for value in reversed(self.assigned.get(name, [])[-_MAX_ASSIGNMENTS:]):
            if isinstance(value, ast.Name) and value.id == name:  # def f(eval=eval): the builtin
                if name in _BUILTINS:
                    return f"builtins.{name}"
                continue
            if isinstance(value, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
                found = self.qualname(value, depth + 1)
                if found is not None:
                    return found
        if name in self.assigned or name in self.defined:
            return None
        if name in _BUILTINS:
            return f"builtins.{name}"
        for module in self.star:
            if name in _STAR_INTERESTING and not module.startswith("."):
                return f"{module}.{name}"
        return None

    def _member(self, base: str, attr: str, depth: int) -> str | None:
        """``base.attr`` where ``base`` may be a namespace: the globals, a ``__dict__`` or ``sys.modules``."""
        if base == "<globals>":
            return "builtins" if attr == "__builtins__" else self._name(attr, depth)
        if base == "sys.modules":
            return attr
        return f"{base.removesuffix('.__dict__')}.{attr}"

    def callee(self, node: ast.Call) -> str | None:
        """The qualified name of the function ``node`` calls.

        Beyond :meth:`qualname` of the callee, ``operator.methodcaller('system', 'id')(os)``
        calls ``os.system``.
        """
        name = self.qualname(node.func)
        if name is not None:
            return name.removesuffix(".__call__")  # os.system.__call__('id')
        func = node.func
        if isinstance(func, ast.Call) and func.args and node.args and self.qualname(func.func) == "operator.methodcaller":
            base, attr = self.qualname(node.args[0]), self.fold(func.args[0])
            if base is not None and attr is not None and attr.text:
                return self._member(base, attr.text, 1)
        return None

    def _call_result(self, node: ast.Call, depth: int) -> str | None:
        """The qualified name of what a call returns, for the few calls that return modules or names."""
        func_node = node.func
        if isinstance(func_node, ast.Call):  # operator.attrgetter('exec')(builtins)
            if func_node.args and node.args and self.qualname(func_node.func, depth) == "operator.attrgetter":
                base, attr = self.qualname(node.args[0], depth), self.fold(func_node.args[0], depth)
                if base is not None and attr is not None and attr.text:
                    return self._member(base, attr.text, depth)
            return None
        if isinstance(func_node, ast.Attribute) and func_node.attr in ("__getattribute__", "__getattr__") and node.args:
            base = self.qualname(func_node.value, depth)  # os.__getattribute__('system')
            key = self.fold(node.args[-1], depth)
            if base in ("builtins.object", "builtins.type") and len(node.args) == 2:
                base = self.qualname(node.args[0], depth)  # object.__getattribute__(os, 'system')
            return self._member(base, key.text, depth) if base is not None and key is not None and key.text else None
        if isinstance(func_node, ast.Attribute) and func_node.attr in ("get", "__getitem__", "pop") and node.args:
            # sys.modules.get('os'), os.__dict__.get('system'), globals().get('__builtins__')
            base = self.qualname(func_node.value, depth)
            if base is not None and (base in ("sys.modules", "<globals>", "builtins") or base.endswith(".__dict__") or (
                    isinstance(func_node.value, ast.Call) and self.qualname(func_node.value.func, depth) == "builtins.vars")):
                key = self.fold(node.args[0], depth)
                return self._member(base, key.text, depth) if key is not None and key.text else None
        func = self.qualname(node.func, depth)
        if func is None:
            return None
        if func in ("pkgutil.resolve_name", "pydoc.locate") and node.args:
            f = self.fold(node.args[0], depth)
            return f.text.replace(":", ".") if f is not None and f.text else None
        if func in ("builtins.__import__", "importlib.import_module", "importlib.__import__") and node.args:
            f = self.fold(node.args[0], depth)
            return f.text if f is not None and f.text else None
        if func == "builtins.getattr" and len(node.args) >= 2:
            base = self.qualname(node.args[0], depth)
            attr = self.fold(node.args[1], depth)
            if base is None or attr is None or attr.text is None:
                return None
            return self._member(base, attr.text, depth)
        if func in ("builtins.globals", "builtins.locals") or (func == "builtins.vars" and not node.args):
            return "<globals>"
        if func == "builtins.vars" and node.args:
            return self.qualname(node.args[0], depth)
        if func in _PATH_TYPES or func in ("pathlib.Path.home", "pathlib.Path.cwd", "pathlib.Path.expanduser",
                                           "pathlib.Path.resolve"):
            return "pathlib.Path"
        return None

    # -- constant folding -----------------------------------------------------------------------
    def fold(self, node: ast.AST | None, depth: int = 0) -> Folded | None:
        """The constant value of ``node`` if it can be computed without running anything."""
        if node is None or depth > _MAX_FOLD_DEPTH:
            return None
        try:
            result = self._fold(node, depth + 1)
        except (ValueError, TypeError, OverflowError, LookupError, UnicodeError, MemoryError, RecursionError):
            return None
        if result is None:
            return None
        if isinstance(result.value, (str, bytes, list)):
            size = len(result.value)
            if size > (_MAX_LIST if isinstance(result.value, list) else self.max_bytes):
                return None  # strings multiplied, lists doubled by repeated concatenation
            self.budget.remaining -= size // BYTES_PER_STEP  # what using the value may copy
        return result

    def _fold(self, node: ast.AST, d: int) -> Folded | None:
        self.budget.remaining -= 1
        if self.budget.remaining < 0:
            return None
        if isinstance(node, ast.Constant):
            v = node.value
            return Folded(v) if isinstance(v, (str, bytes)) or (isinstance(v, int) and not isinstance(v, bool)) else None
        if isinstance(node, ast.Name):
            return self._fold_name(node.id, d)
        if isinstance(node, ast.JoinedStr):
            parts = [self.fold(v.value if isinstance(v, ast.FormattedValue) else v, d) for v in node.values]
            if any(p is None or p.text is None for p in parts):
                return None
            ok = [p for p in parts if p is not None]
            if sum(len(str(p.text)) for p in ok) > self.max_bytes:
                return None
            return _join(ok, "".join(str(p.text) for p in ok))
        if isinstance(node, ast.BinOp):
            return self._binop(node, d)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.fold(node.operand, d)
            return Folded(-inner.value) if inner is not None and isinstance(inner.value, int) else None
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.fold(e, d) for e in node.elts[:_MAX_LIST]]
            if any(i is None for i in items):
                return None
            ok = [i for i in items if i is not None]
            return Folded([i.value for i in ok], any(i.obfuscated for i in ok), any(i.composed for i in ok))
        if isinstance(node, ast.Subscript):
            return self._subscript(node, d)
        if isinstance(node, ast.Call):
            return self._call(node, d)
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)):
            return self._comprehension(node, d)
        return None

    def _fold_name(self, name: str, d: int) -> Folded | None:
        # Memoised, and a name being folded is not folded again (x = x + 1), so that
        # many reassignments cannot make folding exponential.
        cacheable = name not in self._bound
        if cacheable and name in self._fold_cache:
            return self._fold_cache[name]
        if name in self._folding:
            return None
        self._folding.add(name)
        try:
            found = None
            for value in reversed(self.assigned.get(name, [])[-_MAX_ASSIGNMENTS:]):
                found = self.fold(value, d)
                if found is not None:
                    break
        finally:
            self._folding.discard(name)
        if cacheable:
            self._fold_cache[name] = found
        return found

    def _binop(self, node: ast.BinOp, d: int) -> Folded | None:
        if isinstance(node.op, ast.Div):  # pathlib: Path.home() / ".ssh" / "id_rsa"
            left, right = self.fold(node.left, d), self.fold(node.right, d)
            if left is not None and right is not None and left.text is not None and right.text is not None:
                return _join([left, right], left.text.rstrip("/") + "/" + right.text)
            return None
        left, right = self.fold(node.left, d), self.fold(node.right, d)
        if left is None or right is None:
            return None
        a, b = left.value, right.value
        if isinstance(node.op, ast.Add) and type(a) is type(b) and isinstance(a, (str, bytes, list)):
            if len(a) + len(b) > (_MAX_LIST if isinstance(a, list) else self.max_bytes):  # type: ignore[arg-type]
                return None  # checked before the copy is made
            return _join([left, right], a + b)  # type: ignore[operator]
        if isinstance(node.op, ast.Mult) and isinstance(a, (str, bytes)) and isinstance(b, int):
            if len(a) * max(b, 0) > self.max_bytes:
                return None
            return _join([left, right], a * b)
        if isinstance(node.op, ast.Mod) and isinstance(a, str):
            return self._percent(left, right)
        if isinstance(a, int) and isinstance(b, int) and abs(a) < 1 << 32 and abs(b) < 1 << 32:
            ops = {ast.Add: a + b, ast.Sub: a - b, ast.BitXor: a ^ b, ast.Mult: a * b}
            if type(node.op) in ops:
                return Folded(ops[type(node.op)], left.obfuscated or right.obfuscated)
        return None

    def _subscript(self, node: ast.Subscript, d: int) -> Folded | None:
        base = self.fold(node.value, d)
        if base is None or not isinstance(base.value, (str, bytes, list)):
            return None
        sl = node.slice
        if isinstance(sl, ast.Slice):
            bounds = [self.fold(x, d) if x is not None else None for x in (sl.lower, sl.upper, sl.step)]
            vals = [b.value if b is not None and isinstance(b.value, int) else None for b in bounds]
            if any(x is not None and b is None for x, b in zip((sl.lower, sl.upper, sl.step), bounds, strict=True)):
                return None
            if vals[2] == 0:
                return None
            value = base.value[slice(vals[0], vals[1], vals[2])]
            step = "reverse" if vals[2] is not None and vals[2] < 0 else None
            return Folded(value, base.obfuscated or step is not None, base.composed,
                          base.steps + ((step,) if step else ()))
        index = self.fold(sl, d)
        if index is not None and isinstance(index.value, int) and isinstance(base.value, list):
            item = base.value[index.value]
            return Folded(item, base.obfuscated, base.composed, base.steps) if isinstance(item, (str, bytes, int)) else None
        return None

    def _comprehension(self, node: ast.GeneratorExp | ast.ListComp, d: int) -> Folded | None:
        # chr(c) for c in [...]  /  chr(c ^ k) for c in [...]: the classic character-code disguise.
        if len(node.generators) != 1 or node.generators[0].ifs or not isinstance(node.generators[0].target, ast.Name):
            return None
        gen = node.generators[0]
        seq = self.fold(gen.iter, d)
        if seq is None or not isinstance(seq.value, (list, bytes, str)) or len(seq.value) > _MAX_LIST:
            return None
        var = gen.target.id if isinstance(gen.target, ast.Name) else ""
        out: list[object] = []
        saved = self.assigned.get(var)
        self._bound.add(var)
        try:
            for item in seq.value:
                self.assigned[var] = [ast.Constant(item)]  # type: ignore[arg-type]  # folded constants only
                f = self.fold(node.elt, d)
                if f is None:
                    return None
                out.append(f.value)
        finally:
            self._bound.discard(var)
            if saved is None:
                self.assigned.pop(var, None)
            else:
                self.assigned[var] = saved
        steps = ("chr",) if any(isinstance(n, ast.Call) and self.qualname(n.func) == "builtins.chr"
                                for n in ast.walk(node.elt)) else ()
        return Folded(out, seq.obfuscated or bool(steps), seq.composed, seq.steps + steps)

    def _call(self, node: ast.Call, d: int) -> Folded | None:
        func = node.func
        if isinstance(func, ast.Attribute):
            method = self._method(func, node, d)
            if method is not None:
                return method
        name = self.qualname(func, d)
        if name is None:
            return None
        args = [self.fold(a, d) for a in node.args[:3]]
        first = args[0] if args else None
        if name == "builtins.chr" and first is not None and isinstance(first.value, int):
            return Folded(chr(first.value), True, first.composed, first.steps + ("chr",))
        if name in ("builtins.bytes", "builtins.bytearray") and first is not None:
            if isinstance(first.value, list) and all(isinstance(x, int) for x in first.value):
                return Folded(bytes(first.value), True, first.composed, first.steps + ("bytes",))  # type: ignore[arg-type]
            if isinstance(first.value, str):
                return Folded(first.value.encode("utf-8"), first.obfuscated, first.composed, first.steps)
            return first if isinstance(first.value, bytes) else None
        if name == "builtins.str" and first is not None and isinstance(first.value, str):
            return first
        if name == "builtins.str" and first is not None and isinstance(first.value, bytes) and len(args) > 1:
            return Folded(first.value.decode("utf-8"), first.obfuscated, first.composed, first.steps)
        if name == "builtins.map" and len(node.args) == 2 and self.qualname(node.args[0], d) == "builtins.chr":
            seq = self.fold(node.args[1], d)
            if seq is not None and isinstance(seq.value, (list, bytes)) and all(isinstance(x, int) for x in seq.value):
                return Folded([chr(x) for x in seq.value if isinstance(x, int)], True, seq.composed, seq.steps + ("chr",))
            return None
        if name in ("builtins.list", "builtins.tuple", "builtins.reversed") and first is not None:
            if isinstance(first.value, (list, str, bytes)) and len(first.value) <= _MAX_LIST:
                items = list(first.value)
                if name == "builtins.reversed":
                    return Folded(items[::-1], True, first.composed, first.steps + ("reverse",))
                return Folded(items, first.obfuscated, first.composed, first.steps)
            return None
        if name in ("os.path.expanduser", "os.path.expandvars", "os.path.abspath", "os.path.normpath") and first:
            return first
        if name == "os.path.join" and args and all(a is not None and a.text is not None for a in args):
            ok = [a for a in args if a is not None]
            return _join(ok, "/".join(str(a.text).rstrip("/") for a in ok))
        if name in ("pathlib.Path.home", "os.path.expanduser") and not node.args:
            return Folded("~")
        if name in _PATH_TYPES:
            if not node.args:
                return Folded(".")
            return first
        if name in _DECODERS and first is not None:
            return self._decode(name, first, args[1:], node, d)
        return None

    def _method(self, func: ast.Attribute, node: ast.Call, d: int) -> Folded | None:
        if self.qualname(func.value, d) == "pathlib.Path" and func.attr in ("home",):
            return Folded("~")
        base = self.fold(func.value, d)
        if base is None:
            return None
        if func.attr in ("expanduser", "resolve", "absolute") and isinstance(base.value, str) and not node.args:
            return base  # Path('~/.bashrc').expanduser(): the same path, for these checks
        args = [self.fold(a, d) for a in node.args[:3]]
        v = base.value
        m = func.attr
        if m == "join" and isinstance(v, (str, bytes)) and len(args) == 1 and args[0] is not None:
            items = args[0].value
            if isinstance(items, list) and all(type(x) is type(v) for x in items):
                if len(v) * len(items) + sum(len(x) for x in items if isinstance(x, (str, bytes))) > self.max_bytes:
                    return None
                return _join([base, args[0]], v.join(items))  # type: ignore[arg-type]
            return None
        if m in ("decode", "encode") and isinstance(v, (str, bytes)):
            enc = args[0].text if args and args[0] is not None and args[0].text else "utf-8"
            if enc.lower().replace("-", "_") in ("rot13", "rot_13", "hex", "base64", "zlib", "bz2"):
                return self._decode("codecs.decode", base, [args[0]] if args else [], node, d)
            if slow_codec(enc):
                return None
            if m == "decode" and isinstance(v, bytes):
                return Folded(v.decode(enc, "replace"), base.obfuscated, base.composed, base.steps)
            if m == "encode" and isinstance(v, str):
                return Folded(v.encode(enc, "replace"), base.obfuscated, base.composed, base.steps)
            return None
        if m == "replace" and isinstance(v, (str, bytes)) and len(args) >= 2 and args[0] is not None and args[1] is not None:
            old, new = args[0].value, args[1].value
            if type(old) is type(v) and type(new) is type(v):
                if len(v) + v.count(old) * len(new) > self.max_bytes:  # type: ignore[arg-type]
                    return None
                return _join([base], v.replace(old, new))  # type: ignore[arg-type]
            return None
        if m == "format" and isinstance(v, str):
            keywords = {k.arg: self.fold(k.value, d) for k in node.keywords[:8] if k.arg}
            return self._format(base, [a for a in args], keywords) if len(node.args) <= 3 else None
        if m in ("lower", "upper", "strip", "lstrip", "rstrip", "swapcase") and isinstance(v, str) and not node.args:
            return Folded(getattr(v, m)(), base.obfuscated, base.composed, base.steps)
        return None

    def _format(self, template: Folded, args: list[Folded | None], keywords: dict[str, Folded | None]) -> Folded | None:
        """``template.format(*args, **keywords)`` for plain ``{}``, ``{0}`` and ``{name}`` fields only.

        Conversions, format specs (``{:>99999999}`` would allocate at will) and attribute or
        index access are not evaluated: the result is then unknown.
        """
        self.budget.remaining -= len(str(template.value)) // BYTES_PER_STEP  # parsing walks the template
        if self.budget.remaining < 0:
            return None
        pieces: list[str] = []
        used: list[Folded] = [template]
        auto = size = 0
        for literal, field_name, spec, conversion in _FORMATTER.parse(str(template.value)):
            pieces.append(literal)
            size += len(literal)
            if field_name is None:
                continue
            if spec or conversion:
                return None
            if field_name == "":
                field_name, auto = str(auto), auto + 1
            arg = (args[int(field_name)] if int(field_name) < len(args) else None) if field_name.isdigit() \
                else keywords.get(field_name)
            if arg is None or arg.text is None:
                return None
            used.append(arg)
            pieces.append(arg.text)
            size += len(arg.text)
            if size > self.max_bytes:
                return None
        return _join(used, "".join(pieces))

    def _percent(self, template: Folded, values: Folded) -> Folded | None:
        """``template % values`` for ``%s`` and ``%%`` only (``%99999999d`` would allocate at will)."""
        items = values.value if isinstance(values.value, list) else [values.value]
        self.budget.remaining -= len(str(template.value)) // BYTES_PER_STEP
        if self.budget.remaining < 0:
            return None
        pieces: list[str] = []
        rest = iter(items)
        size = 0
        for literal, conv in _PERCENT.findall(str(template.value)):
            pieces.append(literal)
            if conv == "%%":
                pieces.append("%")
            elif conv == "%s":
                item = next(rest, None)
                if not isinstance(item, (str, int)) or isinstance(item, bool):
                    return None
                pieces.append(str(item))
            elif conv:
                return None
            size += len(literal) + len(pieces[-1])
            if size > self.max_bytes:
                return None
        if next(rest, None) is not None:
            return None
        return _join([template, values], "".join(pieces))

    def _decode(self, name: str, data: Folded, rest: list[Folded | None], node: ast.Call, d: int) -> Folded | None:
        v = data.value
        step = name.rsplit(".", 1)[-1]
        if name == "codecs.decode" or name == "codecs.encode":
            enc = rest[0].text if rest and rest[0] is not None and rest[0].text else None
            if enc is None:
                enc_node = keyword_arg(node, "encoding")
                enc_f = self.fold(enc_node, d) if enc_node is not None else None
                enc = enc_f.text if enc_f is not None else None
            if enc is None:
                return None
            key = enc.lower().replace("-", "_")
            if key in ("rot13", "rot_13") and isinstance(v, str):
                out: FoldValue = codecs.decode(v, "rot13")
            elif key in ("hex", "hex_codec") and isinstance(v, (str, bytes)):
                out = binascii.unhexlify(v)
            elif key in ("base64", "base64_codec", "base_64") and isinstance(v, (str, bytes)):
                out = base64.b64decode(v)
            elif key in ("zlib", "zlib_codec") and isinstance(v, bytes):
                out = bounded_zlib(v, self.max_bytes)
            else:
                return None
            step = key
        elif name in ("zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress") and isinstance(v, bytes):
            out = bounded_decompress(name.split(".")[0], v, self.max_bytes)
        elif name in ("binascii.unhexlify", "binascii.a2b_hex", "bytes.fromhex", "builtins.bytes.fromhex") and isinstance(v, (str, bytes)):
            out = bytes.fromhex(v) if isinstance(v, str) else binascii.unhexlify(v)
        elif name.startswith("base64.") or name == "binascii.a2b_base64":
            if not isinstance(v, (str, bytes)):
                return None
            decoders: dict[str, Callable[[str | bytes], bytes]] = {
                "b32decode": base64.b32decode, "b16decode": base64.b16decode, "b85decode": base64.b85decode,
                "a85decode": base64.a85decode, "urlsafe_b64decode": base64.urlsafe_b64decode}
            fn = decoders.get(step)
            out = fn(v) if fn is not None else base64.b64decode(v)
        else:
            return None
        return Folded(out, True, data.composed, data.steps + (step,))

    def decoders_in(self, node: ast.AST) -> list[str]:
        """Decoding calls anywhere inside ``node`` (bounded walk), e.g. ``['base64.b64decode']``."""
        found: list[str] = []
        stack: list[ast.AST] = [node]
        followed: set[str] = set()
        seen = 0
        while stack and seen < _MAX_DECODER_WALK and self.budget.remaining >= 0:
            n = stack.pop()
            seen += 1
            self.budget.remaining -= 1  # shared with folding: ten thousand exec(x) must not walk forever
            if isinstance(n, ast.Call):
                q = self.qualname(n.func)
                attr = n.func.attr if isinstance(n.func, ast.Attribute) else ""
                if q in _DECODERS and q not in found:
                    found.append(q)
                elif attr in ("fromhex", "translate") and attr not in found:
                    found.append("bytes.fromhex" if attr == "fromhex" else attr)
            elif isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitXor) and "xor" not in found:
                found.append("xor")
            elif isinstance(n, ast.Name) and n.id not in followed and len(followed) < 16:
                # x = zlib.decompress(data); exec(x)  /  s += chr(c); exec(s): follow the name
                followed.add(n.id)
                stack.extend(self.assigned.get(n.id, [])[-_MAX_ASSIGNMENTS:])
                stack.extend(self.augmented.get(n.id, [])[-_MAX_ASSIGNMENTS:])
            stack.extend(ast.iter_child_nodes(n))
        return found


def keyword_arg(node: ast.Call, name: str) -> ast.expr | None:
    """The value of keyword argument ``name`` of ``node``, or ``None`` when it is not given."""
    for k in node.keywords:
        if k.arg == name:
            return k.value
    return None
